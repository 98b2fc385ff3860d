#!/usr/bin/env python3
"""Time and profile a no-change `vaultsync sync` on a generated vault of small notes.

    python benchmarks/profile_nochange.py --files 100000 [--repeat 5] [--profile OUT.prof]
                                         [--dir /tmp/vs-prof] [--edit]

Generates (once, reused when present) DIR/N/vault: N notes of 200-600 bytes, 100 per
folder (area-XX/topic-Y/note-N.md), all dated 2026-01-01 so the stat cache's racy
window never applies; then `vaultsync init --remote DIR/N/remote --device a` and a
first sync. Then runs a no-change sync K times (and `rsync -a` of the same tree into a
copy of itself, no-change, for comparison) and prints the median wall time and the peak
RSS of each (from wait4's rusage). --profile runs one more under cProfile and prints the
top entries; --edit makes each timed run follow a one-note edit.
"""

from __future__ import annotations

import argparse
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

PY = sys.executable
OLD = 1_767_225_600  # 2026-01-01


def generate(vault: Path, n: int) -> None:
    body = ("# note\n\n" + "lorem ipsum dolor sit amet " * 20)
    for i in range(n):
        folder = vault / f"area-{i // 1000:02d}" / f"topic-{i // 100 % 10}"
        if i % 100 == 0:
            folder.mkdir(parents=True, exist_ok=True)
        p = folder / f"note-{i}.md"
        p.write_text(f"{i}\n" + body[: 200 + i % 400])
        os.utime(p, (OLD, OLD))


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one run."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    dt = time.perf_counter() - t
    out, err = p.communicate()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"FAILED: {' '.join(cmd)}\n{out.decode()[-2000:]}{err.decode()[-2000:]}")
    return dt, usage.ru_maxrss


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--dir", default="/tmp/vs-prof")
    ap.add_argument("--profile", default=None)
    ap.add_argument("--edit", action="store_true")
    ap.add_argument("--no-rsync", action="store_true")
    args = ap.parse_args()
    top = Path(args.dir) / str(args.files)
    vault, remote = top / "vault", top / "remote"
    env = dict(os.environ)
    vs = [PY, "-m", "vaultsync"]
    if not (vault / ".vaultsync").exists():
        shutil.rmtree(top, ignore_errors=True)
        vault.mkdir(parents=True)
        t = time.perf_counter()
        generate(vault, args.files)
        print(f"generated {args.files} notes in {time.perf_counter() - t:.1f} s")
        subprocess.run(vs + ["init", "--remote", str(remote), "--device", "a"], cwd=vault,
                       env=env, check=True, stdout=subprocess.DEVNULL)
        t = time.perf_counter()
        subprocess.run(vs + ["sync"], cwd=vault, env=env, check=True, stdout=subprocess.DEVNULL)
        print(f"first sync {time.perf_counter() - t:.1f} s")
    subprocess.run(vs + ["sync"], cwd=vault, env=env, check=True, stdout=subprocess.DEVNULL)
    note = vault / "area-00" / "topic-0" / "note-0.md"
    runs = []
    for k in range(args.repeat):
        if args.edit:
            note.write_text(f"edit {k} {time.time_ns()}\n")
            os.utime(note, (OLD + k + 1, OLD + k + 1))
        runs.append(timed(vs + ["sync"], vault, env))
    walls = [w for w, _ in runs]
    print(f"vaultsync sync ({'one-note edit' if args.edit else 'no change'}): "
          f"median {statistics.median(walls):.3f} s of {[round(w, 3) for w in walls]}, "
          f"peak RSS {max(r for _, r in runs) / 1024:.0f} MiB")
    if not args.no_rsync:
        copy = top / "rsync-copy"
        if not copy.exists():
            subprocess.run(["rsync", "-a", f"{vault}/", str(copy)], check=True)
        rs = [timed(["rsync", "-a", f"{vault}/", str(copy)], top, env) for _ in range(args.repeat)]
        print(f"rsync -a (no change): median {statistics.median(w for w, _ in rs):.3f} s, "
              f"peak RSS {max(r for _, r in rs) / 1024:.0f} MiB")
    if args.profile:
        if args.edit:
            note.write_text(f"edit p {time.time_ns()}\n")
            os.utime(note, (OLD + 99, OLD + 99))
        subprocess.run([PY, "-m", "cProfile", "-o", args.profile, "-m", "vaultsync", "sync"],
                       cwd=vault, env=env, check=True, stdout=subprocess.DEVNULL)
        stats = pstats.Stats(args.profile)
        stats.sort_stats("tottime").print_stats(18)
        stats.sort_stats("cumulative").print_stats(25)


if __name__ == "__main__":
    main()
