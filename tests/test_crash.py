"""Kill -9 a push or a pull at random moments, re-run it, and check nothing was lost.

Rounds are bounded; VAULTSYNC_CRASH_ROUNDS raises them for a longer soak."""

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import REPO_ROOT, run_cli, tree_state, write

ROUNDS = int(os.environ.get("VAULTSYNC_CRASH_ROUNDS", "6"))


def fill(root: Path, version: str, n: int = 150) -> None:
    rng = random.Random(version)
    for i in range(n):
        write(root / f"d{i % 7}/note-{i}.md", f"{version} {i}\n" + rng.randbytes(6000).hex(),
              mtime=1_600_000_000 + i)


def kill_after(args: list[str], cwd: Path, delay: float) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "vaultsync", *args], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def timed(args: list[str], cwd: Path) -> float:
    """How long an uninterrupted run takes: kills are spread over that window."""
    start = time.monotonic()
    assert run_cli(*args, cwd=cwd).code == 0
    return time.monotonic() - start


def no_temp_files(root: Path) -> bool:
    return not [p for p in root.rglob("*") if p.name.startswith(".vaultsync-tmp-")
                and ".vaultsync/" not in p.as_posix()]


def test_pull_killed_at_random_moments_then_rerun(tmp_path: Path) -> None:
    a = tmp_path / "a"
    fill(a, "v1")
    assert run_cli("init", "--remote", str(tmp_path / "remote"), cwd=a).code == 0
    assert run_cli("push", cwd=a).code == 0
    assert run_cli("clone", str(tmp_path / "remote"), str(tmp_path / "b0")).code == 0
    fill(a, "v2")
    assert run_cli("push", cwd=a).code == 0
    want = tree_state(a)
    shutil.copytree(tmp_path / "b0", tmp_path / "timing")
    window = timed(["pull"], tmp_path / "timing")
    rng = random.Random(1)
    for i in range(ROUNDS):
        b = tmp_path / f"b{i + 1}"
        shutil.copytree(tmp_path / "b0", b)
        kill_after(["pull"], b, window * (i + rng.random()) / ROUNDS)
        res = run_cli("pull", cwd=b)
        assert res.code == 0, res.err
        assert tree_state(b) == want, f"round {i}"
        assert no_temp_files(b)
        assert run_cli("pull", cwd=b).out.startswith("already up to date")


def test_push_killed_at_random_moments_then_rerun(tmp_path: Path) -> None:
    rng = random.Random(2)
    t = tmp_path / "timing"
    fill(t, "timing", n=100)
    assert run_cli("init", "--remote", str(tmp_path / "remote-t"), cwd=t).code == 0
    window = timed(["push"], t)
    for i in range(ROUNDS):
        a = tmp_path / f"a{i}"
        fill(a, f"round {i}", n=100)
        remote = tmp_path / f"remote{i}"
        assert run_cli("init", "--remote", str(remote), cwd=a).code == 0
        kill_after(["push"], a, window * (i + rng.random()) / ROUNDS)
        res = run_cli("push", cwd=a)
        assert res.code == 0, res.err
        assert run_cli("clone", str(remote), str(tmp_path / f"c{i}")).code == 0
        assert tree_state(tmp_path / f"c{i}") == tree_state(a)
        assert run_cli("push", cwd=a).out.startswith("already up to date")
