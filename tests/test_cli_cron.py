"""Cron and CI use: --wait on the lock, --log-file, VAULTSYNC_* variables, progress only
on a terminal."""

import fcntl
import os
import pty
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, run_cli

SAMPLE = REPO_ROOT / "fixtures" / "sample-vault"


@pytest.fixture
def vault(tmp_path: Path) -> Path:
    v = tmp_path / "vault"
    shutil.copytree(SAMPLE, v)
    assert run_cli("init", "--remote", str(tmp_path / "remote"), cwd=v).code == 0
    return v


def hold_lock(vault: Path, seconds: float) -> threading.Thread:
    fd = os.open(vault / ".vaultsync/lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)

    def release() -> None:
        time.sleep(seconds)
        os.close(fd)

    t = threading.Thread(target=release)
    t.start()
    return t


def test_wait_for_the_lock(vault: Path) -> None:
    t = hold_lock(vault, 0.8)
    res = run_cli("--wait", "0.2", "sync", cwd=vault)
    assert res.code == 6 and "waited 0.2 s" in res.err
    res = run_cli("--wait", "30", "sync", cwd=vault)  # the holder lets go after 0.8 s
    t.join()
    assert res.code == 0, res.err


def test_log_file_records_the_run(vault: Path, tmp_path: Path) -> None:
    log = tmp_path / "logs/vaultsync.log"
    log.parent.mkdir()
    assert run_cli("--log-file", str(log), "sync", cwd=vault).code == 0
    assert run_cli("--log-file", str(log), "-C", str(tmp_path / "nope"), "sync").code == 2
    lines = log.read_text().splitlines()
    assert lines[0].endswith(f"vaultsync --log-file {log} sync (cwd {vault})")
    assert "synced to snapshot" in lines[1] and lines[3].endswith("exit 0")
    assert "does not exist" in lines[-2] and lines[-1].endswith("exit 2")
    assert all(line[:4] == "2026" or line[:2] == "20" for line in lines)


def test_environment_variables_configure_a_cron_job(vault: Path, tmp_path: Path) -> None:
    env = {"VAULTSYNC_DIR": str(vault), "VAULTSYNC_LOG_FILE": str(tmp_path / "log"),
           "VAULTSYNC_MAX_DELETE": "90"}
    assert run_cli("sync", cwd=tmp_path, env=env).code == 0
    for p in list(vault.rglob("*.md"))[:4]:
        p.unlink()
    res = run_cli("sync", cwd=tmp_path, env=env)  # 4 of 7 deleted: under 90%
    assert res.code == 0, res.err
    assert "synced to snapshot" in (tmp_path / "log").read_text()


def run_with_terminal_stderr(args: list[str], cwd: Path) -> tuple[int, str]:
    """Run the CLI with stderr on a pseudo-terminal; returns (exit code, what it drew)."""
    main, sub = pty.openpty()
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), COLUMNS="100", TERM="xterm")
    proc = subprocess.Popen([sys.executable, "-m", "vaultsync", *args], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=sub)
    os.close(sub)
    chunks = []
    while True:
        try:
            data = os.read(main, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(main)
    return proc.returncode, b"".join(chunks).decode(errors="replace")


def test_progress_only_on_a_terminal_and_never_with_quiet(vault: Path) -> None:
    code, drawn = run_with_terminal_stderr(["sync"], vault)
    assert code == 0 and "Scanning" in drawn
    (vault / "new.md").write_text("x")
    code, drawn = run_with_terminal_stderr(["--quiet", "sync"], vault)
    assert code == 0 and drawn == ""
    (vault / "new2.md").write_text("y")
    res = run_cli("sync", cwd=vault)  # stderr is a pipe here: no progress
    assert res.code == 0 and res.err == ""
