#!/usr/bin/env python3
"""vaultsync against rsync and rclone on one generated vault, local disk to local folder.

    python benchmarks/bench_local.py [--files N] [--repeat K] [--out docs/benchmarks.md]

Generates a seeded vault under /tmp (N files: ~N/500 incompressible attachments of
100 KiB-4 MiB, the rest 0.5-4 KiB notes, ~100 per folder), runs every scenario with every
tool on the same data, and writes the results between the markers in --out (text outside
them is kept). Wall times are medians of K runs; page cache is warm throughout.
Stdlib only; the tools are run as subprocesses.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchkit import KIB, MIB, ROOT, fmt_bytes, provenance, sh, write_section

BIN = ROOT / ".venv" / "bin"
PY = str(BIN / "python") if (BIN / "python").exists() else sys.executable
VS = [str(BIN / "vaultsync")] if (BIN / "vaultsync").exists() else [PY, "-m", "vaultsync"]
SEED = 20040
BEGIN, END = "<!-- bench_local:begin -->", "<!-- bench_local:end -->"
WORDS = ("the a note idea link draft meeting todo project read later book chapter quote "
         "source review plan week daily garden research paper method result open question "
         "answer why how because python sync vault chunk graph tag archive inbox").split()


def generate(src: Path, n_files: int, rng: random.Random) -> tuple[list[Path], list[Path]]:
    n_att = max(2, n_files // 500)
    base = 1_767_225_600  # 2026-01-01: files look old, so no stat-cache "racy" window
    notes = []
    for i in range(n_files - n_att):
        p = src / f"area-{i // 1000:02d}" / f"topic-{i // 100 % 10}" / f"note-{i:05d}.md"
        if i % 100 == 0:
            p.parent.mkdir(parents=True, exist_ok=True)
        size = rng.randint(512, 4 * KIB)
        text = f"# Note {i}\n\ntags: #{rng.choice(WORDS)}\n"
        text += f"see [[note-{rng.randrange(n_files)}]]\n\n"
        while len(text) < size:
            text += " ".join(rng.choices(WORDS, k=40)) + ".\n\n"
        p.write_text(text[:size])
        os.utime(p, (base + i, base + i))
        notes.append(p)
    (src / "attachments").mkdir()
    atts = []
    for j in range(n_att):
        p = src / "attachments" / f"scan-{j:02d}.bin"
        p.write_bytes(rng.randbytes(4 * MIB if j == 0 else rng.randint(100 * KIB, 4 * MIB)))
        os.utime(p, (base + j, base + j))
        atts.append(p)
    return notes, atts


def run(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, str, str]:
    os.sync()  # no tool waits on another's (or the generator's) dirty pages
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    dt = time.perf_counter() - t
    if p.returncode != 0:
        sys.exit(f"FAILED (exit {p.returncode}): {' '.join(cmd)}\n"
                 f"{p.stdout[-2000:]}{p.stderr[-2000:]}")
    return dt, p.stdout, p.stderr


class Bench:
    def __init__(self, tmp: Path, src: Path) -> None:
        self.tmp, self.src = tmp, src
        self.remote = tmp / "vs-remote"
        self.d_rsync, self.d_rclone = tmp / "rsync-dst", tmp / "rclone-dst"
        conf = tmp / "rclone.conf"
        conf.write_text("")
        self.rclone_env = {**os.environ, "RCLONE_CONFIG": str(conf)}

    def vaultsync(self, *args: str) -> tuple[float, dict]:
        dt, out, _ = run([*VS, *args, "--json"])
        return dt, json.loads(out)

    def push(self) -> tuple[float, dict]:
        return self.vaultsync("-C", str(self.src), "push")

    def rsync(self, a: Path, b: Path, *opts: str) -> float:
        cmd = ["rsync", "-a", "--delete", *opts, "--exclude=/.vaultsync/", f"{a}/", f"{b}/"]
        return run(cmd)[0]

    def rclone(self, a: Path, b: Path) -> float:
        cmd = ["rclone", "sync", str(a), str(b), "--exclude=/.vaultsync/**"]
        return run(cmd, env=self.rclone_env)[0]

    def round(self, rows: dict[str, list], fresh: bool = False) -> None:
        """One run of each tool on the current source state; append to rows."""
        if fresh:
            for d in (self.remote, self.d_rsync, self.d_rclone, self.src / ".vaultsync"):
                shutil.rmtree(d, ignore_errors=True)
            t_init = run([*VS, "-C", str(self.src), "init", "--remote", str(self.remote),
                          "--device", "bench"])[0]
            rows["extra"].append(t_init)
        dt, rep = self.push()
        rows["vs"].append(dt + (rows["extra"][-1] if fresh else 0.0))
        rows["inproc"].append(rep["duration_s"])
        rows["puts"].append(rep["traffic"]["puts"])
        rows["up"].append(rep["traffic"]["bytes_up"])
        rows["rsync"].append(self.rsync(self.src, self.d_rsync))
        rows["rclone"].append(self.rclone(self.src, self.d_rclone))

    def clone_round(self, rows: dict[str, list], i: int) -> None:
        outs = [self.tmp / f"pull-{name}-{i}" for name in ("vs", "rsync", "rclone", "fsync")]
        dt, rep = self.vaultsync("clone", str(self.remote), str(outs[0]), "--device", f"c{i}")
        rows["vs"].append(dt)
        rows["inproc"].append(rep["duration_s"])
        rows["puts"].append(rep["traffic"]["gets"])
        rows["up"].append(rep["traffic"]["bytes_down"])
        rows["rsync"].append(self.rsync(self.d_rsync, outs[1]))
        rows["rclone"].append(self.rclone(self.d_rclone, outs[2]))
        rows["extra"].append(self.rsync(self.d_rsync, outs[3], "--fsync"))
        for d in outs:
            if (diff := tree_diff(self.src, d)):
                sys.exit(f"MISMATCH in {d}: {diff}")
            shutil.rmtree(d)


def tree_diff(a: Path, b: Path) -> str:
    def listing(root: Path) -> dict[str, bytes]:
        found = {}
        for dirpath, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if d != ".vaultsync"]
            for f in files:
                p = os.path.join(dirpath, f)
                found[os.path.relpath(p, root)] = Path(p).read_bytes()
        return found
    la, lb = listing(a), listing(b)
    bad = sorted(k for k in la.keys() | lb.keys() if la.get(k) != lb.get(k))
    return f"{len(bad)} files differ, e.g. {bad[:3]}" if bad else ""


def new_rows() -> dict[str, list]:
    return {k: [] for k in ("vs", "rsync", "rclone", "inproc", "puts", "up", "extra")}


def median_time(cmd: list[str], k: int) -> float:
    return statistics.median(run(cmd)[0] for _ in range(k))


def top_imports(src: Path, n: int = 8) -> tuple[float, list[tuple[str, float]]]:
    """`python -X importtime` of a no-change push: total and top-level modules by cumulative."""
    _, _, err = run([PY, "-X", "importtime", "-m", "vaultsync", "-C", str(src), "push"])
    top = []
    for line in err.splitlines():
        if line.startswith("import time:") and "|" in line and "cumulative" not in line:
            _, cum, name = line[len("import time:"):].split("|")
            if not name.startswith("  "):  # top level: exactly one space after '|'
                top.append((name.strip(), int(cum) / 1e6))
    return sum(c for _, c in top), sorted(top, key=lambda x: -x[1])[:n]




def table(results: list[tuple[str, dict[str, list], str]]) -> list[str]:
    out = ["| scenario | vaultsync s | rsync s | rclone s | vs/rsync | vs/rclone "
           "| vs in-process s | vs objects written | vs bytes up |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r, kind in results:
        vs, rs, rc = (statistics.median(r[k]) for k in ("vs", "rsync", "rclone"))
        objs = f"{statistics.median(r['puts']):.0f}"
        up = fmt_bytes(statistics.median(r["up"]))
        if kind == "pull":
            objs, up = f"({objs} gets)", f"({up} down)"
        out.append(f"| {name} (n={len(r['vs'])}) | {vs:.3f} | {rs:.3f} | {rc:.3f} | {vs / rs:.2f}x "
                   f"| {vs / rc:.2f}x | {statistics.median(r['inproc']):.3f} | {objs} | {up} |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=20040)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder")
    a = ap.parse_args()
    k, heavy = a.repeat, min(a.repeat, 3)
    rng = random.Random(SEED)
    tmp = Path(tempfile.mkdtemp(prefix="vaultsync-bench-", dir="/tmp"))
    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    try:
        src = tmp / "vault"
        src.mkdir()
        notes, atts = generate(src, a.files, rng)
        total = sum(p.stat().st_size for p in [*notes, *atts])
        print(f"generated {len(notes)} notes + {len(atts)} attachments, {fmt_bytes(total)} "
              f"in {time.perf_counter() - t0:.1f} s under {tmp}", flush=True)
        b = Bench(tmp, src)
        results = []

        def scenario(name: str, rows: dict[str, list], kind: str = "push") -> None:
            results.append((name, rows, kind))
            print("\n".join(table([results[-1]])[2:]), flush=True)

        rows = new_rows()
        for _ in range(heavy):
            b.round(rows, fresh=True)
        scenario("a. initial upload, fresh destination (vs: init+push)", rows)
        init_s = statistics.median(rows["extra"])  # extra: init

        rows = new_rows()
        for _ in range(k):
            b.round(rows)
        scenario("b. no change", rows)

        rows = new_rows()
        for note in rng.sample(notes, k):
            with note.open("a") as f:
                f.write(f"\nedited {time.time_ns()}\n")
            b.round(rows)
        scenario("c. one note edited", rows)

        rows, big, last = new_rows(), atts[0], 0
        for _ in range(k):
            with big.open("r+b") as f:
                f.seek(2 * MIB - 512)
                f.write(rng.randbytes(KIB))
            last = max(time.time_ns(), last + 1_000_000_000)  # rsync/rclone see a new mtime
            os.utime(big, ns=(last, last))
            b.round(rows)
        scenario("d. 4 MiB attachment, 1 KiB changed mid-file", rows)

        rows = new_rows()
        for i in range(heavy):
            b.clone_round(rows, i)
        scenario("e. pull: vs clone vs copy back to a fresh folder", rows, kind="pull")
        fsync_s = statistics.median(rows["extra"])  # extra: --fsync

        ctx = [("`python -c pass`", median_time([PY, "-c", "pass"], k)),
               ("`vaultsync --help`", median_time([*VS, "--help"], k)),
               ("`python -c 'import vaultsync.cli.app'`",
                median_time([PY, "-c", "import vaultsync.cli.app"], k)),
               ("python os.walk + lstat of the vault", median_time(
                   [PY, "-c", "import os,sys\nfor d,_,fs in os.walk(sys.argv[1]):\n"
                    " for f in fs: os.lstat(os.path.join(d,f))", str(src)], k)),
               ("`vaultsync init` (fresh remote)", init_s),
               ("e. with `rsync -a --fsync` (durable, as vaultsync's writes are)", fsync_s)]
        imp_total, imps = top_imports(src)
        elapsed, load1 = time.perf_counter() - t0, os.getloadavg()[0]
    finally:
        if a.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    git, dirty, argv = provenance("bench_local.py")
    lines = [BEGIN, "",
             f"- date: {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
             f"- machine: nproc {sh('nproc')}, Python {sys.version.split()[0]}, "
             f"{sh('rsync --version')}, {sh('rclone version')}, vaultsync at {git}{dirty}; "
             f"1-min load average {load0:.2f} at start, {load1:.2f} at end",
             f"- command: `{argv}` (whole run {elapsed:.0f} s)",
             f"- data: {len(notes)} notes + {len(atts)} attachments "
             f"= {len(notes) + len(atts)} files, "
             f"{fmt_bytes(total)}, seed {SEED}; K={k} repeats (a and e: {heavy})",
             "- tools: `vaultsync -C SRC push --json`, `rsync -a --delete SRC/ DST/`, "
             "`rclone sync SRC DST` (RCLONE_CONFIG = empty file); peers exclude `.vaultsync/`",
             "", *table(results), "",
             "Medians of wall time of the whole process. *vs in-process* is the `duration_s` that "
             "vaultsync reports itself (wall minus it = interpreter start-up and imports). "
             "Row e reports vaultsync's gets and bytes down instead of writes; every copy is "
             "checked byte for byte against the source.", "",
             "| context | median s |", "|---|---:|",
             *(f"| {n} | {t:.3f} |" for n, t in ctx), "",
             f"Imports of a no-change push (`python -X importtime -m vaultsync -C SRC push`): "
             f"{imp_total:.3f} s in all; top level by cumulative time: "
             + ", ".join(f"{n} {t * 1000:.0f} ms" for n, t in imps) + ".", "", END]
    write_section(Path(a.out), BEGIN, END, lines)
    print(f"wrote {a.out} ({elapsed:.0f} s)")


if __name__ == "__main__":
    main()
