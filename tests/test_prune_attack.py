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

from tests.conftest import REPO_ROOT, run_cli, write
from tests.prune_kit import remote_names

FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"

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
    proc = subprocess.Popen([sys.executable, "-m", "vaultsync", "-C", str(vault), "sync"],
                            env=_hooked_env(tmp_path, gate), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    reached = Path(str(gate) + ".reached")
    end = time.monotonic() + 60
    while not reached.exists() and time.monotonic() < end and proc.poll() is None:
        time.sleep(0.05)
    assert reached.exists(), proc.communicate(timeout=30)
    return proc, gate


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
