"""Two devices syncing at the same moment, round after round, converge with no version
lost. VAULTSYNC_CONCURRENT_ROUNDS raises the rounds for a soak."""

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import REPO_ROOT, run_cli, tree_state
from tests.versions import Versions

ROUNDS = int(os.environ.get("VAULTSYNC_CONCURRENT_ROUNDS", "8"))


def live(root: Path) -> set[bytes]:
    """Every content in the vault's files."""
    return {p.read_bytes() for p in root.rglob("*")
            if p.is_file() and ".vaultsync" not in p.relative_to(root).parts}


def test_two_devices_syncing_at_once_converge(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    v = Versions()
    v.write(a, "shared.md", b"start", time.time_ns(), "a")
    assert run_cli("init", "--remote", str(tmp_path / "remote"), "--device", "a", cwd=a).code == 0
    assert run_cli("sync", cwd=a).code == 0
    assert run_cli("clone", str(tmp_path / "remote"), str(b), "--device", "b").code == 0
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    for i in range(ROUNDS):
        for name, vault in (("a", a), ("b", b)):
            now = time.time_ns()
            v.write(vault, f"{name}-round{i}.md", f"{name} new file in round {i}".encode(), now,
                    name)
            v.write(vault, "shared.md", f"{name} edits shared.md in round {i}".encode(), now, name)
            if i % 3 == 2:
                v.write(vault, f"notes/{i}.md", f"{name} adds the same path in round {i}".encode(),
                        now, name)
        procs = [subprocess.Popen([sys.executable, "-m", "vaultsync", "-C", str(vault), "sync"],
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for vault in (a, b)]
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode in (0, 1), err.decode()
    for vault in (a, b, a, b):
        res = run_cli("sync", cwd=vault)
        assert res.code in (0, 1), res.err
    res = run_cli("sync", cwd=a)
    assert res.code == 0 and res.out.startswith("already up to date"), res.out
    assert tree_state(a) == tree_state(b)
    assert v.lost(live(a)) == set()
    copies = [p.name for p in a.glob("shared.conflict-*.md")]
    assert copies, "concurrent edits of shared.md must have produced conflict copies"
