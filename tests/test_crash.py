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
    assert run_cli(*args, cwd=cwd).code in (0, 1)  # 1: conflicts kept
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


def test_sync_killed_at_random_moments_then_rerun(tmp_path: Path) -> None:
    """A sync that merges, uploads and writes locally, killed anywhere: the re-run and
    one more round leave both devices identical with every version present."""
    from tests.versions import Versions

    t = tmp_path / "template"
    fill(t / "a", "v1", n=120)
    assert run_cli("init", "--remote", str(t / "remote"), "--device", "a", cwd=t / "a").code == 0
    assert run_cli("sync", cwd=t / "a").code == 0
    assert run_cli("clone", str(t / "remote"), str(t / "b"), "--device", "b").code == 0
    fill(t / "b", "from b", n=60)  # b rewrites half the notes and syncs
    assert run_cli("sync", cwd=t / "b").code == 0
    rng = random.Random(3)

    def copy_world(dst: Path) -> Path:
        """A copy of both devices and their remote (the copies register as new devices)."""
        shutil.copytree(t, dst)
        for dev in ("a", "b"):
            cfg = dst / dev / ".vaultsync/config.toml"
            cfg.write_text(cfg.read_text().replace(str(t / "remote"), str(dst / "remote")))
        return dst

    timing = copy_world(tmp_path / "timing")
    write(timing / "a/d0/note-0.md", "a's edit")
    window = timed(["sync", "--force"], timing / "a")
    for i in range(ROUNDS):
        world = copy_world(tmp_path / f"w{i}")
        v = Versions()
        for p in (world / "b").rglob("*.md"):  # b's versions (a's are replaced by b's)
            v.written.setdefault(p.read_bytes(), "b")
        now = time.time_ns()
        v.write(world / "a", "d0/note-0.md", f"a's edit in round {i}".encode(), now, "a")
        v.write(world / "a", "d1/note-1.md", f"a's other edit in round {i}".encode(), now, "a")
        kill_after(["sync", "--force"], world / "a", window * (i + rng.random()) / ROUNDS)
        for dev in ("a", "b", "a", "b"):
            res = run_cli("sync", "--force", cwd=world / dev)
            assert res.code in (0, 1), res.err
        assert tree_state(world / "a") == tree_state(world / "b"), f"round {i}"
        live = {p.read_bytes() for p in (world / "a").rglob("*")
                if p.is_file() and ".vaultsync" not in p.relative_to(world / "a").parts}
        assert v.lost(live) == set(), f"round {i}"
        assert no_temp_files(world / "a")
