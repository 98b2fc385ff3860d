"""`vaultsync prune` attacked as a hostile user would (the findings of one session).

Each test is a repro of a defect found through the real CLI on a directory remote. Where
a race needs exact timing, a `sitecustomize` hook (as in test_exit_codes.py) holds one
run at a chosen point until the test lets it go; every wait is bounded.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.adversary import FAKETIME as ADVERSARY_FAKETIME
from tests.conftest import REPO_ROOT, run_cli, write

FAKETIME = str(ADVERSARY_FAKETIME)

PAUSE_HOOK = '''
import os, time
gate = os.environ.get("VS_TEST_PAUSE_GATE")
if gate:
    from vaultsync.repository import repo as _repo
    _orig = _repo.Repository.put_snapshot

    def put_snapshot(self, *a, **k):
        open(gate + ".reached", "w").close()
        end = time.monotonic() + 60
        while os.path.exists(gate) and time.monotonic() < end:
            time.sleep(0.02)
        return _orig(self, *a, **k)

    _repo.Repository.put_snapshot = put_snapshot
'''


def _hooked_env(tmp_path: Path, gate: Path) -> dict[str, str]:
    hook = tmp_path / "hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(PAUSE_HOOK)
    env = dict(os.environ)
    env.update({"PYTHONPATH": f"{hook}:{REPO_ROOT}", "VS_TEST_PAUSE_GATE": str(gate)})
    return env


def _start_paused_sync(tmp_path: Path, vault: Path) -> tuple[subprocess.Popen[str], Path]:
    """`vaultsync sync` in `vault`, held just before it writes its snapshot (after its
    last check of the prune marker). Returns the process and the gate to remove."""
    gate = tmp_path / "gate"
    gate.touch()
    return _held(["-C", str(vault), "sync"], _hooked_env(tmp_path, gate), gate), gate


def _held(args: list[str], env: dict[str, str], gate: Path) -> subprocess.Popen[str]:
    """`vaultsync ARGS` started, once it reached the hook that waits while `gate` is
    there (at most a minute)."""
    proc = subprocess.Popen([sys.executable, "-m", "vaultsync", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    reached = Path(str(gate) + ".reached")
    end = time.monotonic() + 60
    while not reached.exists() and time.monotonic() < end and proc.poll() is None:
        time.sleep(0.05)
    assert reached.exists(), proc.communicate(timeout=30)
    return proc


def _two_devices_and_an_old_version(tmp_path: Path) -> tuple[Path, Path, Path, bytes]:
    """A and B share a remote; f.md was OLD (a big random file) in the first snapshot
    and is "new" in the head of both."""
    remote, a, b = tmp_path / "remote", tmp_path / "A", tmp_path / "B"
    old = os.urandom(200_000).hex().encode()
    write(a / "f.md", old)
    write(a / "g.md", "keep\n")
    assert run_cli("init", "--remote", str(remote), "--device", "A", cwd=a).code == 0
    assert run_cli("-C", str(a), "sync").code == 0
    assert run_cli("clone", str(remote), str(b), "--device", "B").code == 0
    write(a / "f.md", "new\n")
    assert run_cli("-C", str(a), "sync").code == 0
    assert run_cli("-C", str(b), "sync").code == 0
    return remote, a, b, old


# ---- finding 1: a commit that reuses a blob a prune deletes after its last check ------

def test_a_sync_held_after_its_marker_check_never_names_a_blob_two_prunes_delete(
        tmp_path: Path) -> None:
    """B goes back to an old version whose chunk sits in a pack of a snapshot that A's
    prune forgets. B's commit checks the marker before its index segment; A prunes
    (record) and, with its clock two days ahead, prunes again (collects) before B writes
    its snapshot. design.md: "no commit can name a deleted blob, however slow it was";
    format.md: "whatever clock the prune went by"."""
    remote, a, b, old = _two_devices_and_an_old_version(tmp_path)
    write(b / "f.md", old)
    proc, gate = _start_paused_sync(tmp_path, b)
    try:
        assert run_cli("-C", str(a), "prune", "--keep-last", "1").code == 0
        ahead = run_cli("-C", str(a), "prune", "--keep-last", "1",
                        env={"LD_PRELOAD": FAKETIME, "FAKETIME": "+2d"})
        assert ahead.code == 0, ahead.err
    finally:
        gate.unlink()
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    verify = run_cli("-C", str(a), "verify", "--read-data", "100")
    assert verify.code == 0, verify.out + verify.err
    clone = run_cli("clone", str(remote), str(tmp_path / "C"), "--device", "C")
    assert clone.code == 0, clone.err
    assert (tmp_path / "C" / "f.md").read_bytes() == old


def test_a_sync_held_after_its_marker_check_beside_prune_grace_0(tmp_path: Path) -> None:
    """The same window with one `prune --grace 0s` (both phases at once): the repository
    is left with a snapshot naming a deleted blob (verify exit 5, clone exit 5)."""
    remote, a, b, old = _two_devices_and_an_old_version(tmp_path)
    write(b / "f.md", old)
    proc, gate = _start_paused_sync(tmp_path, b)
    try:
        assert run_cli("-C", str(a), "prune", "--keep-last", "1", "--grace", "0s").code == 0
    finally:
        gate.unlink()
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    verify = run_cli("-C", str(a), "verify", "--read-data", "100")
    assert verify.code == 0, verify.out + verify.err
    assert run_cli("clone", str(remote), str(tmp_path / "C"), "--device", "C").code == 0


# ---- finding 2: two prunes at once drop the other's "forgotten" record ------------------

PAUSE_PRUNE_HOOK = '''
import os, time
gate = os.environ.get("VS_TEST_PAUSE_GATE")
if gate:
    from vaultsync.repository import prune as _p
    where = os.environ["VS_TEST_PAUSE_AT"]
    _orig = getattr(_p.Pruner, where)

    def wrapped(self, *a, **k):
        if os.path.exists(gate):
            open(gate + ".reached", "w").close()
            end = time.monotonic() + 60
            while os.path.exists(gate) and time.monotonic() < end:
                time.sleep(0.02)
        return _orig(self, *a, **k)

    setattr(_p.Pruner, where, wrapped)
'''


def _start_paused(tmp_path: Path, args: list[str], at: str
                  ) -> tuple[subprocess.Popen[str], Path]:
    """`vaultsync ARGS`, held at the first call of `Pruner.<at>` until the gate goes."""
    hook = tmp_path / "hook_prune"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(PAUSE_PRUNE_HOOK)
    gate = tmp_path / f"gate_{at}"
    gate.touch()
    env = dict(os.environ)
    env.update({"PYTHONPATH": f"{hook}:{REPO_ROOT}", "VS_TEST_PAUSE_GATE": str(gate),
                "VS_TEST_PAUSE_AT": at})
    return _held(args, env, gate), gate


def _history(tmp_path: Path, syncs: int = 3) -> tuple[Path, Path, Path]:
    remote, a, b = tmp_path / "remote", tmp_path / "A", tmp_path / "B"
    for i in range(5):
        write(a / f"n{i}.md", f"note {i}\n" + os.urandom(2000).hex())
    assert run_cli("init", "--remote", str(remote), "--device", "A", cwd=a).code == 0
    assert run_cli("-C", str(a), "sync").code == 0
    assert run_cli("clone", str(remote), str(b), "--device", "B").code == 0
    for i in range(syncs):
        write(a / "n0.md", f"edit {i}\n" + os.urandom(2000).hex())
        assert run_cli("-C", str(a), "sync").code == 0
    assert run_cli("-C", str(b), "sync").code == 0
    return remote, a, b


def test_two_prunes_at_once_never_drop_a_forgotten_record(tmp_path: Path) -> None:
    """A prune from B reads the marker, then (while it plans) A's prune collects an
    older record: it publishes a "forgotten" record and deletes snapshots that kept ones
    name as parents. B then writes the marker from what it read first: A's forgotten
    record is dropped, and the kept snapshots point at deleted parents (verify exit 5,
    clone exit 5). format.md/automation.md: two prunes at once are safe. (A's clock is
    two days ahead so that its collect is due; a daily cron run 24 h later is the same.)"""
    remote, a, b = _history(tmp_path)
    assert run_cli("-C", str(a), "prune", "--keep-last", "1").code == 0  # record R0
    for i in range(3):
        write(a / "n1.md", f"more {i}\n" + os.urandom(2000).hex())
        assert run_cli("-C", str(a), "sync").code == 0
    assert run_cli("-C", str(b), "sync").code == 0
    proc, gate = _start_paused(tmp_path, ["-C", str(b), "prune", "--keep-last", "1"],
                               "_publish")
    try:
        p1 = run_cli("-C", str(a), "prune", "--keep-last", "1",
                     env={"LD_PRELOAD": FAKETIME, "FAKETIME": "+2d"})
        assert p1.code == 0, p1.err
    finally:
        gate.unlink()
        out, err = proc.communicate(timeout=60)
    # B notices that the marker changed under it and stops before deleting (exit 6, as
    # for another run holding a vault), or finishes if it got there first
    assert proc.returncode in (0, 6), err
    if proc.returncode == 6:
        assert "another prune" in err and "run it again" in err, err
        again = run_cli("-C", str(b), "prune", "--keep-last", "1")
        assert again.code == 0, again.err
    verify = run_cli("-C", str(a), "verify", "--read-data", "100")
    assert verify.code == 0, verify.out + verify.err
    clone = run_cli("clone", str(remote), str(tmp_path / "C"), "--device", "C")
    assert clone.code == 0, clone.err


# ---- finding 3: the advice for a malformed marker breaks a pruned repository ----------

def test_following_the_malformed_marker_advice_keeps_the_repository_clonable(
        tmp_path: Path) -> None:
    """A malformed heads/prune stops every command with exit 5. It once said "remove
    that file and run prune again", and doing that in a repository a prune had collected
    lost the forgotten record for good (verify and clone exit 5). Now it says to run
    prune, which rebuilds the marker from the records; and a marker deleted anyway is
    rebuilt by the next prune too."""
    from vaultsync import codec

    remote, a, b = _history(tmp_path, syncs=4)
    assert run_cli("-C", str(a), "prune", "--keep-last", "1", "--grace", "0s").code == 0
    assert run_cli("-C", str(a), "verify").code == 0
    (remote / "heads" / "prune").write_bytes(codec.encode(b'{"v":1}', compress=False))
    res = run_cli("-C", str(a), "sync")
    assert res.code == 5 and "run 'vaultsync prune' to rebuild it" in res.err, res.err
    res = run_cli("-C", str(a), "prune")  # as told
    assert res.code == 0 and "rebuilt" in res.out, res.out + res.err
    verify = run_cli("-C", str(a), "verify")
    assert verify.code == 0, verify.out + verify.err
    (remote / "heads" / "prune").unlink()  # not as told
    assert run_cli("-C", str(a), "prune").code == 0
    verify = run_cli("-C", str(a), "verify")
    assert verify.code == 0, verify.out + verify.err
    clone = run_cli("clone", str(remote), str(tmp_path / "C"), "--device", "C")
    assert clone.code == 0, clone.err


# ---- finding 4: one device's clock ahead makes keep-within forget the real history -----

def test_keep_within_is_not_anchored_on_a_snapshot_from_a_clock_days_ahead(
        tmp_path: Path) -> None:
    """B syncs once with its clock 30 days ahead. `--keep-within 2d` counts from the
    newest snapshot, B's, so every snapshot A made in the last two days (real time) but
    its head is forgotten: a single wrong clock defeats the policy."""
    import json

    remote, a, b = _history(tmp_path, syncs=3)
    write(b / "n4.md", "from the future\n")
    assert run_cli("-C", str(b), "sync", env={"LD_PRELOAD": FAKETIME,
                                              "FAKETIME": "+30d"}).code == 0
    write(a / "n3.md", "today\n")
    assert run_cli("-C", str(a), "sync").code == 0
    res = run_cli("-C", str(a), "prune", "--keep-within", "2d", "--dry-run", "--json")
    assert res.code == 0, res.err
    doc = json.loads(res.out)
    # every snapshot is from the last few seconds of real time: none should be forgotten
    assert doc["forgotten"] == [], doc["kept"]


# ---- finding 5: a remote full to the last byte can never be pruned -------------------

def test_prune_on_a_remote_full_to_the_last_byte_says_so_and_works_once_freed(
        tmp_path: Path) -> None:
    """The remote (a 2 MiB tmpfs) fills up to the last byte. Prune must publish a
    record before it deletes anything (syncs elsewhere rely on it), so it cannot start:
    it exits 3 with one line that says the remote is full, the repository stays whole,
    and once a little space is free, prune frees the rest."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                   check=True, timeout=30)
    try:
        remote, a = mnt / "remote", tmp_path / "A"
        write(a / "keep.md", "keep\n")
        assert run_cli("init", "--remote", str(remote), "--device", "A", cwd=a).code == 0
        for _ in range(6):
            write(a / "big.md", os.urandom(150_000))
            assert run_cli("-C", str(a), "sync").code == 0
        fd = os.open(mnt / "filler", os.O_WRONLY | os.O_CREAT)  # the rest of the disk
        try:
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
        res = run_cli("-C", str(a), "prune", "--keep-last", "1", "--grace", "0s")
        assert res.code == 3 and "full" in res.err and "Traceback" not in res.err, res.err
        assert run_cli("-C", str(a), "verify").code == 0
        with open(mnt / "filler", "r+b") as f:  # a little space back
            f.truncate(os.path.getsize(mnt / "filler") - 64 * 1024)
        res = run_cli("-C", str(a), "prune", "--keep-last", "1", "--grace", "0s")
        assert res.code == 0, res.err
        assert len(list((remote / "snapshots").iterdir())) == 1
        assert run_cli("-C", str(a), "verify", "--read-data", "100").code == 0
    finally:
        subprocess.run(["umount", "-l", str(mnt)], timeout=30)


# ---- finding 6: a remote unmounted mid-run: prune reports success -------------------

def test_a_remote_unmounted_during_prune_is_exit_3_not_success(tmp_path: Path) -> None:
    """The directory remote is a mount; it goes away while prune deletes. Deleting a
    name that is gone is not an error, and `put` creates the folders it misses, so the
    run writes heads/prune into the bare mount point and exits 0, saying it deleted and
    freed what it never touched. Expected: exit 3 (remote unreachable), as at start-up
    ("does not exist (not mounted?)")."""
    remote, a, b = _history(tmp_path, syncs=3)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "--bind", str(remote), str(mnt)], check=True, timeout=30)
    try:
        cfg = a / ".vaultsync" / "config.toml"
        cfg.write_text(cfg.read_text().replace(remote.as_uri(), mnt.as_uri())
                       .replace(str(remote), str(mnt)))
        proc, gate = _start_paused(
            tmp_path, ["-C", str(a), "prune", "--keep-last", "1", "--grace", "0s"], "_delete")
        subprocess.run(["umount", "-l", str(mnt)], check=True, timeout=30)
        gate.unlink()
        out, err = proc.communicate(timeout=60)
        leftovers = sorted(p.relative_to(mnt).as_posix() for p in mnt.rglob("*"))
        assert proc.returncode == 3, (proc.returncode, out, err, leftovers)
        assert leftovers == []
    finally:
        subprocess.run(["umount", "-l", str(mnt)], timeout=30, capture_output=True)
