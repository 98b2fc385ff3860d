"""Every platform the notes live on (issue 12): the vault lock without fcntl-only code,
names Windows cannot hold kept out by rule, and the Windows and macOS branches checked by
mypy here (they are type-checked for their platform, not run: README, Platforms).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, Result, run_cli, write
from vaultsync import fsutil
from vaultsync.engine.fsprobe import FsTraits, suspicious, windows_problem
from vaultsync.model import flatten
from vaultsync.repository.repo import Repository
from vaultsync.store.local import LocalStore

OLD = 1_600_000_000

# ---- the vault lock -----------------------------------------------------------------------

HOLDER = """
import sys, time
from vaultsync import fsutil
fd = fsutil.try_lock(sys.argv[1])
print("held" if fd is not None else "busy", flush=True)
time.sleep(60)
"""


def hold_in_another_process(path: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], text=True,
                            stdout=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)))
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    return proc


def test_the_lock_is_exclusive_and_released_by_unlock(tmp_path: Path) -> None:
    path = str(tmp_path / "lock")
    fd = fsutil.try_lock(path)
    assert fd is not None
    assert fsutil.try_lock(path) is None, "a second descriptor must not get it"
    fsutil.unlock(fd)
    again = fsutil.try_lock(path)
    assert again is not None
    fsutil.unlock(again)


@pytest.fixture
def vault(tmp_path: Path) -> Path:
    v = tmp_path / "vault"
    write(v / "note.md", "# note\n", mtime=OLD)
    assert run_cli("init", "--remote", str(tmp_path / "remote"), "--device", "a", cwd=v).code == 0
    return v


def test_a_run_holding_the_lock_stops_another_with_exit_6_until_killed(vault: Path) -> None:
    """The lock another process holds is vaultsync's lock (exit 6, one line); killed with
    SIGKILL, it leaves nothing stale: the next run goes through at once."""
    holder = hold_in_another_process(vault / ".vaultsync" / "lock")
    try:
        res = run_cli("sync", cwd=vault)
        assert res.code == 6, (res.out, res.err)
        assert res.err.strip().splitlines() == [
            f"vaultsync: another vaultsync run is using {vault}; try again when it "
            "finishes, or pass --wait SECONDS"]
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.communicate()
    assert (vault / ".vaultsync" / "lock").exists()  # left behind, and harmless
    started = time.monotonic()
    res = run_cli("sync", cwd=vault)
    assert res.code == 0, res.err
    assert time.monotonic() - started < 30


def test_a_finished_run_leaves_the_lock_free_and_names_its_pid(vault: Path) -> None:
    assert run_cli("sync", cwd=vault).code == 0
    lock = vault / ".vaultsync" / "lock"
    assert lock.read_text().strip().isdigit()  # the pid of the run that held it last
    fd = fsutil.try_lock(str(lock))
    assert fd is not None
    fsutil.unlock(fd)


# ---- names Windows cannot hold ------------------------------------------------------------

@pytest.mark.parametrize("name, why", [
    ("CON", "'CON' for a device"),
    ("con.md", "'CON' for a device"),
    ("aux.txt", "'AUX' for a device"),
    ("Nul.tar.gz", "'NUL' for a device"),
    ("PRN", "'PRN' for a device"),
    ("COM1.md", "'COM1' for a device"),
    ("lpt9", "'LPT9' for a device"),
    ("COM\u00b9.md", "'COM\u00b9' for a device"),
    ("AUX .md", "'AUX' for a device"),
    ("CONOUT$", "'CONOUT$' for a device"),
    ("Note.", "trailing dot or space"),
    ("Note ", "trailing dot or space"),
    ("a:b.md", "':'"),
    ("what?.md", "'?'"),
    ('say "hi".md', "'\"'"),
    ("a<b>c.md", "'<', '>'"),
    ("x|y*z", "'*', '|'"),
    ("back\\slash", "'\\\\'"),
    ("tab\there", "'\\t'"),
])
def test_windows_problem_refuses_what_windows_cannot_hold(name: str, why: str) -> None:
    problem = windows_problem(name)
    assert problem is not None and why in problem, problem
    assert suspicious(name), "a name Windows refuses is one to check before writing"


@pytest.mark.parametrize("name", [
    "Note.md", "CONSOLE.md", "COM10.md", "LPT.md", "auxiliary.txt", "Connie.md", "nul-notes",
    ".gitignore", "Meeting notes.md", "über.md", "a.b.c", "con-fig.md", "x.con",
])
def test_windows_problem_lets_ordinary_names_be(name: str) -> None:
    assert windows_problem(name) is None


def test_the_windows_rule_answers_before_any_probe(tmp_path: Path) -> None:
    """On Windows a probe of `CON.md` or `a:b.md` "succeeds" (the console, a stream): the
    rule must answer first. On Linux the same names are held."""
    linux = FsTraits(probe_dir=str(tmp_path))
    windows = FsTraits(probe_dir=str(tmp_path), windows_names=True)
    for name in ("CON.md", "a:b.md", "Note.", "aux"):
        assert linux.holds(name), name
        assert not windows.holds(name), name
    assert windows.holds("Note.md")
    assert not list(tmp_path.iterdir()), "probes leave nothing behind"


# the CLI with the Windows rule on (fsprobe.WINDOWS, as on Windows itself)
AS_WINDOWS = """
import sys
import vaultsync.engine.fsprobe as fsprobe
fsprobe.WINDOWS = True
sys.argv = ["vaultsync", *sys.argv[1:]]
from vaultsync.cli.app import entry
entry()
"""


def run_as_windows(*args: str, cwd: Path | None = None) -> Result:
    proc = subprocess.run([sys.executable, "-c", AS_WINDOWS, *args], cwd=cwd,
                          env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
                          capture_output=True, text=True, timeout=120)
    return Result(proc.returncode, proc.stdout, proc.stderr)


WINDOWS_UNSAFE = ["CON.md", "aux.txt", "Note.", "a:b.md", "dir./inside.md", "LPT1/x.md"]


def test_a_windows_device_keeps_names_it_cannot_hold_as_phantoms(tmp_path: Path) -> None:
    """A Linux device syncs notes Windows cannot hold; the Windows device clones the rest
    (exit 1, each name reported), and its own edits sync back without deleting, moving or
    changing any of those notes for the Linux device."""
    linux, remote = tmp_path / "linux", tmp_path / "remote"
    for rel in [*WINDOWS_UNSAFE, "ok.md", "sub/fine.md"]:
        write(linux / rel, f"{rel}\n", mtime=OLD)
    assert run_cli("init", "--remote", str(remote), "--device", "linux", cwd=linux).code == 0
    assert run_cli("sync", cwd=linux).code == 0

    win = tmp_path / "win"
    res = run_as_windows("clone", str(remote), str(win), "--device", "win")
    assert res.code == 1, (res.out, res.err)
    assert "Traceback" not in res.err
    on_disk = sorted(p.relative_to(win).as_posix() for p in win.rglob("*")
                     if ".vaultsync" not in p.parts)
    assert on_disk == ["ok.md", "sub", "sub/fine.md"]
    shown = res.out + res.err
    for rel in ("CON.md", "aux.txt", "Note.", "a:b.md", "dir.", "LPT1"):
        assert rel in shown, (rel, shown)

    (win / "ok.md").write_text("edited on windows\n")
    res = run_as_windows("sync", cwd=win)
    assert res.code == 1, (res.out, res.err)  # the phantoms are reported on each sync
    assert run_cli("sync", cwd=linux).code == 0
    assert (linux / "ok.md").read_text() == "edited on windows\n"
    for rel in WINDOWS_UNSAFE:
        assert (linux / rel).read_text() == f"{rel}\n", rel
    repo = Repository.open(LocalStore(str(remote)))
    for sid in repo.read_heads().values():
        keys = flatten(repo.get_snapshot(sid).tree, repo.get_tree)
        assert set(WINDOWS_UNSAFE) <= set(keys), sid


# ---- platform-only APIs ------------------------------------------------------------------

@pytest.mark.parametrize("platform", ["win32", "darwin"])
def test_mypy_finds_no_platform_only_api_for(platform: str, tmp_path: Path) -> None:
    """`fcntl.flock`, `os.pread`, `os.O_DIRECTORY` used without a `sys.platform` check
    fail here: what would stop vaultsync from starting (or working) on that platform."""
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--platform", platform, "--cache-dir",
         str(tmp_path / "cache"), "--config-file", str(REPO_ROOT / "pyproject.toml"),
         str(REPO_ROOT / "vaultsync")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
