"""benchmarks/bench_prune.py --quick still runs end to end: a 20-step synthetic history
replayed into vaultsync and restic, both pruned with one policy, the kept snapshots
checked out and compared. Nothing about time is asserted; restic and libfaketime come
from scripts/install-servers.sh, and a missing one is a failure, not a skip."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_prune_quick_runs_and_both_tools_keep_the_same_snapshots(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_prune.py"), "--quick",
         "--json", str(out)],
        capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r = json.loads(out.read_text())
    assert r["steps"] == 20 and r["problems"] == []
    for tool in ("vaultsync", "restic"):
        t = r[tool]
        assert t["snapshots_before"] == 20
        assert 0 < t["snapshots_after"] < 20
        assert t["after"]["bytes"] < t["before"]["bytes"]
    assert r["kept_same"], (r["kept_only_vaultsync"], r["kept_only_restic"])
