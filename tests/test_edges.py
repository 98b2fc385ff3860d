"""The edges of "never lose a version" (design.md, "Edges"), through the real CLI.

Two devices, A (laptop) and B (desktop), sync through a directory remote. Each test is a
defect of issue 9 that once deleted a file or dropped an edit on another device.
Permission tests run the CLI without CAP_DAC_OVERRIDE (the suite runs as root, which
reads anything), so chmod 000 really makes a file unreadable to it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, Result, run_cli, tree_state, write

# run without the capabilities that let root ignore permission bits
NO_OVERRIDE = ["setpriv", "--inh-caps=-dac_override,-dac_read_search",
               "--bounding-set=-dac_override,-dac_read_search", "--"]
DAY_NS = 86_400 * 10**9


def run_as(prefix: list[str], *args: str, cwd: Path) -> Result:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.run([*prefix, sys.executable, "-m", "vaultsync", *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=120)
    return Result(proc.returncode, proc.stdout, proc.stderr)


def two_devices(tmp_path: Path, notes: int = 4) -> tuple[Path, Path, Path]:
    a, remote, b = tmp_path / "A", tmp_path / "R", tmp_path / "B"
    for i in range(1, notes + 1):
        write(a / f"n{i}.md", f"n{i}\n")
    write(a / "d/x.md", "x\n")
    write(a / "d/y.md", "y\n")
    assert run_cli("init", "--remote", str(remote), "--device", "laptop", cwd=a).code == 0
    assert run_cli("sync", cwd=a).code == 0
    assert run_cli("clone", str(remote), str(b), "--device", "desktop").code == 0
    return a, remote, b


def sync(vault: Path, *args: str) -> Result:
    return run_cli("sync", *args, cwd=vault)


def files(vault: Path) -> dict[str, bytes]:
    return {k: v[0] for k, v in tree_state(vault).items()}


# ---- 1. a path the scan could not read is not a delete ------------------------------

def test_an_unreadable_file_is_not_deleted_on_the_other_device(tmp_path: Path) -> None:
    a, _, b = two_devices(tmp_path)
    (a / "n1.md").chmod(0)
    res = run_as(NO_OVERRIDE, "sync", cwd=a)
    assert res.code == 1, res.out + res.err
    assert "skipped: n1.md" in res.out
    assert sync(b).code == 0
    assert (b / "n1.md").read_text() == "n1\n"


def test_an_unreadable_folder_is_not_deleted_on_the_other_device(tmp_path: Path) -> None:
    a, _, b = two_devices(tmp_path)
    (a / "d").chmod(0)
    try:
        res = run_as(NO_OVERRIDE, "sync", cwd=a)
        assert res.code == 1, res.out + res.err
        assert "skipped: d (cannot read folder" in res.out
        assert sync(b).code == 0
        assert files(b)["d/x.md"] == b"x\n" and files(b)["d/y.md"] == b"y\n"
        write(b / "d/z.md", "new in d\n")  # arrives while A cannot read d: not written there
        assert sync(b).code == 0
        assert run_as(NO_OVERRIDE, "sync", cwd=a).code == 1
    finally:
        (a / "d").chmod(0o755)
    assert sync(a).code == 0
    assert files(a)["d/z.md"] == b"new in d\n"
    assert files(a) == files(b)


def test_an_edit_that_arrives_while_unreadable_lands_once_readable(tmp_path: Path) -> None:
    """B's edit is merged while A cannot read the file: A keeps its old bytes on disk
    (nothing is written over what could not be read). Once readable, those old bytes are
    not an edit of A's: B's version is written, no conflict, nothing reverted."""
    a, _, b = two_devices(tmp_path)
    (a / "n1.md").chmod(0)
    assert run_as(NO_OVERRIDE, "sync", cwd=a).code == 1
    write(b / "n1.md", "n1 edited on B\n")
    assert sync(b).code == 0
    res = run_as(NO_OVERRIDE, "sync", cwd=a)
    assert res.code == 1 and "skipped: n1.md" in res.out, res.out + res.err
    (a / "n1.md").chmod(0o644)
    assert (a / "n1.md").read_text() == "n1\n"  # untouched while unreadable
    res = sync(a)
    assert res.code == 0, res.out + res.err
    assert (a / "n1.md").read_text() == "n1 edited on B\n"
    assert sync(b).code == 0
    assert files(a) == files(b)
    assert not [k for k in files(a) if "conflict" in k]


def test_an_edit_made_while_unreadable_meets_the_other_edit_as_a_conflict(
        tmp_path: Path) -> None:
    a, _, b = two_devices(tmp_path)
    (a / "n1.md").chmod(0)
    assert run_as(NO_OVERRIDE, "sync", cwd=a).code == 1
    write(b / "n1.md", "n1 edited on B\n")
    assert sync(b).code == 0
    assert run_as(NO_OVERRIDE, "sync", cwd=a).code == 1
    (a / "n1.md").chmod(0o644)
    write(a / "n1.md", "n1 edited on A\n")
    assert sync(a).code == 1  # conflict kept
    assert sync(b).code == 0
    both = set(files(a).values())
    assert {b"n1 edited on A\n", b"n1 edited on B\n"} <= both
    assert files(a) == files(b)


def test_a_file_that_keeps_changing_while_read_is_not_a_delete(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vaultsync.engine import scan
    from vaultsync.engine.sync import sync as do_sync

    a, _, b = two_devices(tmp_path)
    real_open = scan._open

    class Growing:
        """A file that someone appends to while it is being read."""

        def __init__(self, path: str) -> None:
            self.f = real_open(path)
            self.path = path
            self.grown = False

        def read(self, n: int = -1) -> bytes:
            if not self.grown:  # once per read of the whole file
                with open(self.path, "ab") as g:
                    g.write(b"+")
                self.grown = True
            return self.f.read(n)

        def fileno(self) -> int:
            return self.f.fileno()

        def __enter__(self) -> Growing:
            return self

        def __exit__(self, *_: object) -> None:
            self.f.close()

    monkeypatch.setattr(scan, "_open", lambda p: Growing(p) if p.endswith("n2.md")
                        else real_open(p))
    write(a / "n2.md", "n2 being written\n")
    report = do_sync(str(a))
    assert [p for p, _ in report.skipped] == ["n2.md"]
    assert report.exit_code == 1
    monkeypatch.undo()
    assert sync(b).code == 0
    assert (b / "n2.md").read_text() == "n2\n"  # the old version stays, not deleted


def test_an_unreadable_vault_folder_is_a_local_failure_not_an_empty_vault(
        tmp_path: Path) -> None:
    a, _, b = two_devices(tmp_path)
    os.chmod(a, 0o311)  # can enter .vaultsync/, cannot list the vault
    try:
        res = run_as(NO_OVERRIDE, "sync", cwd=a)
    finally:
        os.chmod(a, 0o755)
    assert res.code == 7, res.out + res.err
    assert "local" in res.err and str(a) in res.err and "--force" not in res.err
    assert len(res.err.strip().splitlines()) == 1
    assert sync(b).code == 0 and len(files(b)) == 6


def test_a_symlink_where_the_remote_has_a_folder_is_skipped_not_stuck(
        tmp_path: Path) -> None:
    a, remote, b = two_devices(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (b / "notes").symlink_to(outside)
    write(a / "notes/new.md", "new\n")
    assert sync(a).code == 0
    first = sync(b)
    assert first.code == 1 and "skipped: notes (symbolic link" in first.out, first.out
    snapshots = sorted(os.listdir(remote / "snapshots"))
    again = sync(b)
    assert again.code == 1 and "already up to date" in again.out, again.out
    assert sorted(os.listdir(remote / "snapshots")) == snapshots  # no snapshot per run
    assert list(outside.iterdir()) == []
    assert sync(a).code == 0 and (a / "notes/new.md").exists()


# ---- 2. the merge base comes from parent links, never from a clock ------------------

def _behind(vault: Path, rel: str, text: str) -> None:
    """Write as a device whose clock is a day behind would (file mtime a day old)."""
    path = write(vault / rel, text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns - DAY_NS, st.st_mtime_ns - DAY_NS))


def a_day_behind() -> list[str]:
    """A command prefix that runs a program with its clock a day behind (libfaketime,
    preloaded directly: the faketime wrapper's semaphore names can collide)."""
    libs = sorted(Path("/usr/lib").glob("*/faketime/libfaketimeMT.so.1"))
    if not libs:
        pytest.fail("libfaketime is not installed (scripts/install-servers.sh installs it)")
    return ["env", f"LD_PRELOAD={libs[0]}", "FAKETIME=-1d"]


@pytest.mark.parametrize("change", ["revert", "delete"])
def test_a_device_with_a_wrong_clock_never_overwrites_an_edit(
        tmp_path: Path, change: str) -> None:
    behind = a_day_behind()
    a, _, b = two_devices(tmp_path)
    _behind(b, "n1.md", "v2 from B\n")
    res = run_as(behind, "sync", cwd=b)
    assert res.code == 0, res.out + res.err
    assert sync(a).code == 0
    assert (a / "n1.md").read_text() == "v2 from B\n"
    if change == "revert":  # A writes the old text back, having seen v2: an edit
        write(a / "n1.md", "n1\n")
    else:
        (a / "n1.md").unlink()
    res = sync(a)
    assert res.code == 0 and "0 conflict(s)" in res.out, res.out
    assert run_as(behind, "sync", cwd=b).code == 0
    for vault in (a, b):
        if change == "revert":
            assert (vault / "n1.md").read_text() == "n1\n"
        else:
            assert not (vault / "n1.md").exists()
        assert not [k for k in files(vault) if "conflict" in k]


# ---- 3. push passes the safety stops ----------------------------------------------

def test_push_of_an_emptied_vault_stops(tmp_path: Path) -> None:
    a, remote, b = two_devices(tmp_path)
    for p in a.iterdir():
        if p.name != ".vaultsync":
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    heads = {p.name: p.read_bytes() for p in (remote / "heads").iterdir()}
    res = run_cli("push", cwd=a)
    assert res.code == 4, res.out + res.err
    assert "empty" in res.err and "--force" in res.err
    assert {p.name: p.read_bytes() for p in (remote / "heads").iterdir()} == heads
    assert sync(b).code == 0 and len(files(b)) == 6


def test_push_of_a_mass_delete_stops_and_force_goes_through(tmp_path: Path) -> None:
    a, _, b = two_devices(tmp_path, notes=8)
    for i in range(1, 8):
        (a / f"n{i}.md").unlink()
    res = run_cli("push", cwd=a)
    assert res.code == 4 and "would delete 7 of 10" in res.err, res.out + res.err
    assert sync(b).code == 0 and len(files(b)) == 10
    res = run_cli("push", "--max-delete", "80", cwd=a)
    assert res.code == 0 and "7 deleted" in res.out, res.out + res.err
    assert sync(b).code == 0 and sorted(files(b)) == ["d/x.md", "d/y.md", "n8.md"]


def test_push_force_commits_an_emptied_vault(tmp_path: Path) -> None:
    a, _, b = two_devices(tmp_path)
    shutil.rmtree(a / "d")
    for i in range(1, 5):
        (a / f"n{i}.md").unlink()
    assert run_cli("push", cwd=a).code == 4
    assert run_cli("push", "--force", cwd=a).code == 0
    assert sync(b).code == 0 and files(b) == {}
    trash = b / ".vaultsync" / "trash"
    assert len([p for p in trash.rglob("*") if p.is_file()]) == 6  # undone without network


# ---- 5. re-joining folds heads by the graph, not by listing order -------------------

def test_rejoining_never_resurrects_a_replaced_version(tmp_path: Path) -> None:
    """A and B converge on v2 (B replaced v1). A re-joins from scratch: its heads are
    folded by the graph, so A's old head (an ancestor of B's) adds nothing. The old code
    folded heads in the order of their ids and kept v1 as a conflict copy whenever A's
    old head sorted first: the scenario is rebuilt until it does."""
    for attempt in range(40):
        root = tmp_path / f"try{attempt}"
        a, remote, b = two_devices(root, notes=attempt % 5 + 1)
        write(b / "n1.md", "v2\n")
        assert sync(b).code == 0
        assert sync(a).code == 0 and (a / "n1.md").read_text() == "v2\n"
        if _head_snapshot(remote, a) < _head_snapshot(remote, b):
            break
    else:
        pytest.fail("no scenario where the ancestor head sorts first")
    shutil.rmtree(a / ".vaultsync")
    assert run_cli("init", "--remote", str(remote), "--device", "laptop", cwd=a).code == 0
    res = sync(a)
    assert res.code == 0 and "0 conflict(s)" in res.out, res.out
    assert not [k for k in files(a) if "conflict" in k]


def test_a_pull_over_a_head_that_diverged_keeps_this_devices_version(
        tmp_path: Path) -> None:
    """A and B edit n1.md and sync at the same moment: each reads the heads before the
    other writes, so the repository holds two diverged heads. A's pull then takes B's
    version; the old code wrote it over A's own (which B never saw) with no copy."""
    a, remote, b = two_devices(tmp_path)
    write(a / "n1.md", "from A\n")
    write(b / "n1.md", "from B\n")
    before = tmp_path / "R-before"
    shutil.copytree(remote, before)
    assert sync(a).code == 0
    theirs = tmp_path / "R-A"
    remote.rename(theirs)
    before.rename(remote)  # B syncs against the repository as it was before A's sync
    assert sync(b).code == 0
    for src in remote.rglob("*"):  # B's objects and B's head join A's repository
        dst = theirs / src.relative_to(remote)
        if src.is_file() and (not dst.exists() or src.parent.name == "heads"
                              and src.name == _device(b)):
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    shutil.rmtree(remote)
    theirs.rename(remote)
    res = run_cli("pull", cwd=a)
    assert res.code == 1 and "conflict" in res.out, res.out + res.err
    assert sorted(files(a).values()).count(b"from A\n") == 1
    assert sorted(files(a).values()).count(b"from B\n") == 1
    assert sync(a).code == 0 and sync(b).code == 0
    assert files(a) == files(b)


def _device(vault: Path) -> str:
    import tomllib

    return str(tomllib.loads((vault / ".vaultsync/config.toml").read_text())["device_id"])


def _head_snapshot(remote: Path, vault: Path) -> str:
    """The snapshot id the head of `vault`'s device names."""
    import json
    import tomllib

    device = tomllib.loads((vault / ".vaultsync/config.toml").read_text())["device_id"]
    raw = (remote / "heads" / device).read_bytes()
    return str(json.loads(raw[1:])["snapshot"])


# ---- 4. the repository has an identity --------------------------------------------

def _fresh_repository_at(remote: Path, tmp_path: Path, notes: dict[str, str]) -> Path:
    """Another folder creates a new repository where `remote` was."""
    shutil.rmtree(remote)
    c = tmp_path / "C"
    for rel, text in notes.items():
        write(c / rel, text)
    assert run_cli("init", "--remote", str(remote), "--device", "other", cwd=c).code == 0
    assert sync(c).code == 0
    return c


def _assert_rejoined(a: Path, remote: Path, tmp_path: Path, res: Result,
                     code: int = 0) -> None:
    assert res.code == code, res.out + res.err
    assert "already up to date" not in res.out
    assert "not the one this vault last synced with" in res.out
    assert run_cli("verify", "--read-data", "100", cwd=a).code == 0
    fresh = tmp_path / "fresh"
    assert run_cli("clone", str(remote), str(fresh)).code == 0  # every object is there
    assert files(fresh) == files(a)
    assert sync(a).code == 0 and "already up to date" in sync(a).out


def test_a_recreated_repository_is_joined_not_up_to_date(tmp_path: Path) -> None:
    a, remote, _ = two_devices(tmp_path)
    before = files(a)
    _fresh_repository_at(remote, tmp_path, {"other.md": "from C\n", "n1.md": "n1 by C\n"})
    res = sync(a)
    _assert_rejoined(a, remote, tmp_path, res, code=1)  # n1.md differs: both kept
    assert files(a)["other.md"] == b"from C\n"
    assert {b"n1\n", b"n1 by C\n"} <= set(files(a).values())  # both kept, nothing lost
    for rel in before:
        if rel != "n1.md":
            assert files(a)[rel] == before[rel]


def test_a_remote_pointed_at_another_repository_is_joined(tmp_path: Path) -> None:
    a, _, _ = two_devices(tmp_path)
    other = tmp_path / "R2"
    c = tmp_path / "C"
    write(c / "elsewhere.md", "e\n")
    assert run_cli("init", "--remote", str(other), "--device", "other", cwd=c).code == 0
    assert sync(c).code == 0
    config = a / ".vaultsync/config.toml"
    text = config.read_text()
    config.write_text(text.replace(str(tmp_path / "R"), str(other)))
    assert str(other) in config.read_text()
    _assert_rejoined(a, other, tmp_path, sync(a))
    assert files(a)["elsewhere.md"] == b"e\n" and files(a)["n1.md"] == b"n1\n"


def test_a_state_from_before_repo_ids_notices_a_recreated_repository(tmp_path: Path) -> None:
    import sqlite3

    a, remote, _ = two_devices(tmp_path)
    db = sqlite3.connect(a / ".vaultsync/state.db")
    db.execute("DELETE FROM meta WHERE key='repo_id'")
    db.commit()
    db.close()
    _fresh_repository_at(remote, tmp_path, {"other.md": "from C\n"})
    _assert_rejoined(a, remote, tmp_path, sync(a))


# ---- 9. local state is a cache: a damaged state.db re-joins ------------------------

@pytest.mark.parametrize("damage", ["garbage", "truncated", "overwritten", "unreadable"])
def test_a_damaged_state_database_is_set_aside_and_the_vault_rejoins(
        tmp_path: Path, damage: str) -> None:
    a, _, b = two_devices(tmp_path, notes=60)
    write(b / "n2.md", "edited on B\n")
    assert sync(b).code == 0
    write(a / "n3.md", "edited on A\n")
    db = a / ".vaultsync/state.db"
    size = db.stat().st_size
    prefix: list[str] = []
    if damage == "garbage":
        db.write_bytes(os.urandom(size))
    elif damage == "truncated":
        os.truncate(db, size // 2)
    elif damage == "overwritten":
        with open(db, "r+b") as f:
            f.seek(size // 3)
            f.write(os.urandom(size // 3))
    else:
        db.chmod(0)
        prefix = NO_OVERRIDE
    res = run_as(prefix, "sync", cwd=a)
    assert res.code == 0, res.out + res.err
    assert "moved to" in res.out and "re-joins" in res.out
    assert len(res.err.strip().splitlines()) == 0
    assert list((a / ".vaultsync").glob("state.db.damaged-*"))
    assert (a / "n2.md").read_text() == "edited on B\n"
    assert (a / "n3.md").read_text() == "edited on A\n"
    assert sync(b).code == 0 and files(a) == files(b)
    assert sync(a).code == 0 and "already up to date" in sync(a).out


# ---- 10. what a run says is what it did ---------------------------------------------

def test_a_pushed_local_delete_is_counted_as_deleted_remotely(tmp_path: Path) -> None:
    import json

    a, _, b = two_devices(tmp_path)
    (a / "n1.md").unlink()
    res = sync(a, "--dry-run")
    assert "0 deleted here, 1 deleted remotely" in res.out, res.out
    doc = json.loads(sync(a, "--json").out)
    assert (doc["deleted"], doc["deleted_remotely"], doc["uploaded"]) == (0, 1, 0)
    res = sync(b, "-v")
    assert "1 deleted here, 0 deleted remotely" in res.out and "  delete  n1.md" in res.out
    (b / "n2.md").unlink()
    res = run_cli("push", "-v", cwd=b)
    assert "0 added or changed, 1 deleted" in res.out and "  up      n2.md (deleted)" in res.out


def test_an_interrupted_clone_resumes_when_run_again(tmp_path: Path) -> None:
    import signal
    import time

    a, remote, _ = two_devices(tmp_path)
    for i in range(40):
        write(a / f"big/f{i}.bin", os.urandom(256 * 1024))
    assert sync(a).code == 0
    c = tmp_path / "C"
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "vaultsync", "clone", str(remote), str(c)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not (c / ".vaultsync/staging").exists() and time.monotonic() < deadline:
        time.sleep(0.001)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert (c / ".vaultsync").is_dir()
    res = run_cli("clone", str(remote), str(c))
    assert res.code == 0, res.out + res.err
    assert "resumed the interrupted clone" in res.out
    assert files(c) == files(a)
    res = run_cli("clone", str(remote), str(c))  # a finished clone is not cloned again
    assert res.code == 2 and "already a vault" in res.err and "-C" in res.err
    d = tmp_path / "D"
    (d / ".vaultsync").mkdir(parents=True)  # killed before its config was written
    res = run_cli("clone", str(remote), str(d))
    assert res.code == 0 and files(d) == files(a), res.out + res.err
    res = run_cli("clone", str(tmp_path / "elsewhere"), str(c))  # a vault of another URL
    assert res.code == 2 and "not empty" in res.err


def test_a_delete_made_while_ignored_elsewhere_is_not_undone_when_unignored(
        tmp_path: Path) -> None:
    """B ignores d/ while A deletes d/y.md: B's disk keeps its old copy (ignoring never
    deletes). When B drops the rule, that old copy is what B held, not a new file of B's:
    A's delete lands on B instead of B re-adding the file everywhere."""
    a, _, b = two_devices(tmp_path)
    write(b / ".vaultsync/ignore", "d/\n")
    assert sync(b).code == 0
    (a / "d/y.md").unlink()
    assert sync(a).code == 0
    assert sync(b).code == 0 and (b / "d/y.md").exists()  # ignored: left alone
    (b / ".vaultsync/ignore").unlink()
    assert sync(b).code == 0
    assert sync(a).code == 0
    assert not (a / "d/y.md").exists() and not (b / "d/y.md").exists()
    assert files(a) == files(b)


def test_a_lost_head_file_is_published_again(tmp_path: Path) -> None:
    """A's head file is deleted from the remote (by hand, a sync tool, a bad restore)
    before B saw A's last sync: A's next run publishes it again, and B gets A's edit."""
    import tomllib

    a, remote, b = two_devices(tmp_path)
    write(a / "n1.md", "A edit\n")
    assert sync(a).code == 0
    device = tomllib.loads((a / ".vaultsync/config.toml").read_text())["device_id"]
    (remote / "heads" / device).unlink()
    assert sync(b).code == 0 and (b / "n1.md").read_text() == "n1\n"
    assert sync(a).code == 0
    assert (remote / "heads" / device).exists()
    assert sync(b).code == 0 and (b / "n1.md").read_text() == "A edit\n"


def test_restore_to_a_folder_keeps_what_is_there(tmp_path: Path) -> None:
    a, _, b = two_devices(tmp_path)
    write(b / "n1.md", "B unsynced\n")
    same = (b / "n2.md").stat().st_mtime_ns
    res = run_cli("restore", ".", "--to", str(b), cwd=a)
    assert res.code == 1, res.out + res.err
    assert (b / "n1.md").read_text() == "B unsynced\n"
    copies = [k for k in files(b) if k.startswith("n1.conflict-")]
    assert len(copies) == 1 and files(b)[copies[0]] == b"n1\n"
    assert f"conflict: n1.md: the other version is kept as {copies[0]}" in res.out
    assert (b / "n2.md").stat().st_mtime_ns == same  # the same bytes: left alone
    assert not list((a / ".vaultsync").glob("trash/*/*"))  # nothing of B's in A's trash


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_dry_run_and_status_leave_a_damaged_state_database_in_place(
        tmp_path: Path, damage: str) -> None:
    a, _, _ = two_devices(tmp_path, notes=60)
    db = a / ".vaultsync/state.db"
    if damage == "garbage":
        db.write_bytes(os.urandom(db.stat().st_size))
    else:
        os.truncate(db, db.stat().st_size // 2)
    before = db.read_bytes()
    for args in (["sync", "--dry-run"], ["status"]):
        res = run_cli(*args, cwd=a)
        assert res.code in (0, 1) and "a sync moves it aside" in res.out, res.out + res.err
    assert db.read_bytes() == before
    assert not list((a / ".vaultsync").glob("state.db.damaged-*"))
    res = sync(a)
    assert res.code == 0 and "moved to" in res.out, res.out + res.err


def test_a_host_name_change_is_not_a_new_device(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The binding that spots a copied .vaultsync/ is the machine id and the path: a host
    name that changes with the network or the container is the same device; a vault
    bound the old way (host name) keeps its device id too."""
    import socket
    import tomllib

    from vaultsync.engine import config as config_mod
    from vaultsync.engine.sync import sync as do_sync

    a, _, _ = two_devices(tmp_path)
    cfg_path = a / ".vaultsync/config.toml"

    def device() -> str:
        return str(tomllib.loads(cfg_path.read_text())["device_id"])

    before = device()
    legacy = config_mod.legacy_binding(str(a))
    cfg_path.write_text(cfg_path.read_text().replace(config_mod.binding(str(a)), legacy))
    assert do_sync(str(a)).exit_code == 0
    assert device() == before and legacy not in cfg_path.read_text()
    monkeypatch.setattr(socket, "gethostname", lambda: "renamed-by-dhcp")
    report = do_sync(str(a))
    assert report.exit_code == 0 and not report.notices
    assert device() == before
    shutil.copytree(a, tmp_path / "A2")  # a copy is still a new device
    assert any("copied" in n for n in do_sync(str(tmp_path / "A2")).notices)


def test_a_remote_inside_the_vault_is_refused(tmp_path: Path) -> None:
    v = tmp_path / "v"
    write(v / "note.md", "n\n")
    res = run_cli("init", "--remote", "./repo", cwd=v)
    assert res.code == 2 and "inside the vault" in res.err and not (v / ".vaultsync").exists()
    assert run_cli("init", "--remote", str(tmp_path / "R"), cwd=v).code == 0
    config = v / ".vaultsync/config.toml"
    config.write_text(config.read_text().replace(str(tmp_path / "R"), str(v / "sub/repo")))
    res = sync(v)
    assert res.code == 2 and "inside the vault" in res.err and not (v / "sub").exists()


def test_a_malformed_head_file(tmp_path: Path) -> None:
    """Its own malformed head does not stop a device: it publishes it again. Another
    device's is an integrity error (exit 5) that says which file, and what to do."""
    import tomllib

    a, remote, b = two_devices(tmp_path)
    device = tomllib.loads((a / ".vaultsync/config.toml").read_text())["device_id"]
    head = remote / "heads" / device
    good = head.read_bytes()
    head.write_bytes(b"garbage")
    res = sync(b)
    assert res.code == 5 and f"heads/{device}" in res.err and "remove" in res.err
    res = sync(a)
    assert res.code == 0 and "published again" in res.out, res.out + res.err
    assert head.read_bytes() == good
    assert sync(b).code == 0
