"""Kill -9 `vaultsync prune --keep-last 1 --grace 0s` at random moments: after each kill
the repository verifies with every byte read, a re-run of prune finishes the work, and a
fresh clone equals the vault.

The history is long (two devices, many syncs, small packs) so that a prune has hundreds
of objects to write and delete and a kill lands inside that work; each round says where
it landed, and at least one round must land mid-run (the remote neither as it was nor as
a finished prune leaves it). VAULTSYNC_PRUNE_CRASH_ROUNDS raises the rounds (default 6),
VAULTSYNC_PRUNE_CRASH_SYNCS the history (default 40 syncs)."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, run_cli, tree_state, write
from tests.prune_kit import cli_json, remote_counts
from tests.test_crash import kill_after
from vaultsync.engine.oneway import clone, init
from vaultsync.engine.sync import sync

ROUNDS = int(os.environ.get("VAULTSYNC_PRUNE_CRASH_ROUNDS", "6"))
SYNCS = int(os.environ.get("VAULTSYNC_PRUNE_CRASH_SYNCS", "40"))
PRUNE = ["prune", "--keep-last", "1", "--grace", "0s"]


def build_history(world: Path, rng: random.Random) -> None:
    """Two devices take turns editing, adding and deleting notes and syncing (in process:
    only the prunes under test go through the command line)."""
    a, b = world / "a", world / "b"
    for i in range(30):
        write(a / f"d{i % 4}/note-{i}.md", rng.randbytes(rng.randrange(2000, 9000)).hex())
    init(str(a), str(world / "remote"), "a")
    sync(str(a))
    clone(str(world / "remote"), str(b), "b")
    for step in range(SYNCS):
        vault = (a, b)[step % 2]
        notes = sorted(vault.rglob("*.md"))
        for p in rng.sample(notes, 4):
            write(p, f"step {step}\n" + rng.randbytes(rng.randrange(2000, 9000)).hex())
        write(vault / f"d{step % 4}/new-{step}.md", rng.randbytes(3000).hex())
        if step % 3 == 2:
            rng.choice(notes).unlink()
        sync(str(vault))  # conflicts too: both edit while the other has not pulled
    for vault in (a, b, a):
        sync(str(vault))
    assert tree_state(a) == tree_state(b)


def copy_world(template: Path, dst: Path) -> Path:
    """A copy of both devices and their remote (the copies register as new devices)."""
    shutil.copytree(template, dst)
    for dev in ("a", "b"):
        cfg = dst / dev / ".vaultsync/config.toml"
        cfg.write_text(cfg.read_text().replace(str(template / "remote"), str(dst / "remote")))
    return dst


def kill_when(vault: Path, delay: float) -> tuple[float, int | None]:
    """Run the prune and SIGKILL it `delay` seconds after its first write (the prune/
    folder appears: its record), never during the interpreter's start-up. Returns how
    long it ran after that write and its exit code (-9: killed)."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "vaultsync", *PRUNE], cwd=vault, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = vault.parent / "remote" / "prune"
    deadline = time.monotonic() + 60
    while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    began = time.monotonic()
    try:
        proc.wait(timeout=delay if delay != float("inf") else 60)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    return time.monotonic() - began, proc.returncode


def shape(remote: Path) -> tuple[int, int, int, int]:
    """(snapshots, packs, index segments, prune records) on a directory remote."""
    c = remote_counts(remote)
    return c["snapshots"], c["packs"], c["index"], c["prune"]


def test_prune_killed_at_random_moments_then_rerun(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULTSYNC_PACK_SIZE", "4096")
    rng = random.Random(int(os.environ.get("VAULTSYNC_PRUNE_CRASH_SEED", "7")))
    template = tmp_path / "template"
    build_history(template, rng)
    before = shape(template / "remote")
    assert before[0] > SYNCS and before[1] > SYNCS and before[2] > SYNCS, before

    timing = copy_world(template, tmp_path / "timing")
    work, rc = kill_when(timing / "a", float("inf"))  # uninterrupted: how long the work is
    assert rc == 0, rc
    after = shape(timing / "remote")
    assert after[0] < before[0] and after[2] == 1 and after[3] <= 1, (before, after)

    landed: list[str] = []
    for i in range(ROUNDS):
        world = copy_world(template, tmp_path / f"w{i}")
        remote = world / "remote"
        if i % 3 == 0:  # a timer from the start: start-up, reads, the first write
            kill_after(PRUNE, world / "a", (work + 0.4) * rng.random())
        else:  # a timer from the first write, spread over the work
            kill_when(world / "a", 0.8 * work * (i + rng.random()) / ROUNDS)
        killed = shape(remote)
        where = "before" if killed == before else "after" if killed == after else "mid-run"
        landed.append(f"{where} {killed}")
        res = run_cli("verify", "--read-data", "100", cwd=world / "a")
        assert res.code == 0, (i, where, killed, res.out, res.err)
        _, doc = cli_json(*PRUNE, cwd=world / "a")
        assert doc["pending"] == [], (i, where, killed, doc["pending"])
        assert shape(remote) == after, (i, where, killed, shape(remote))
        res = run_cli("verify", "--read-data", "100", cwd=world / "a")
        assert res.code == 0, (i, where, killed, res.out, res.err)
        assert run_cli("clone", str(remote), str(world / "c"), "--device", "c").code == 0
        assert tree_state(world / "c") == tree_state(world / "a"), f"round {i}"
        for dev in ("a", "b"):
            res = run_cli("sync", cwd=world / dev)
            assert res.code == 0 and "already up to date" in res.out, (dev, res.out)
    print(f"prune work {work:.2f}s; kills landed: {landed}")
    assert any(w.startswith("mid-run") for w in landed), landed
