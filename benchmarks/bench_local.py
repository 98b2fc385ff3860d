#!/usr/bin/env python3
"""vaultsync against rsync, Unison and rclone on one generated vault, local disk to local folder.

    python benchmarks/bench_local.py [--files N] [--repeat K] [--out docs/benchmarks.md]
    python benchmarks/bench_local.py --quick --out /tmp/b.md     # 300 files, K=1, ~15 s
    python benchmarks/bench_local.py --tiny 1000000 --repeat 3    # 1M notes of ~100 bytes

Generates a seeded vault under /tmp (N files: ~N/500 incompressible attachments, one of
20 MiB and the others 100 KiB-4 MiB, the rest 0.5-4 KiB notes, 100 per folder). Each of K
rounds starts from empty destinations and runs, with every tool on the same data:

  initial  first upload to an empty remote (vaultsync: init + sync; Unison: first run,
           which builds its archive)
  clone    a second replica made from the remote in an empty folder (vaultsync clone;
           rsync/rclone: copy remote -> replica 2; Unison: remote <-> replica 2, archive 2)
  nochange sync again, nothing changed
  change   10 notes edited, 1 KiB appended to the 20 MiB attachment, a folder of 100
           notes renamed; then sync
  second   the second replica takes that change (vaultsync sync on device 2; rsync and
           rclone: remote -> replica 2; Unison: remote <-> replica 2)

vaultsync runs `sync` (two-way) throughout; Unison is two-way with its saved archives
(`-batch -auto -times`, UNISON = a scratch folder, so ~/.unison is never touched); rsync
(`-a --delete`) and rclone (`sync`) are one-way copies. Every second replica is compared
byte for byte with the source after `clone` and after `second`. Reported: medians of wall
time over K rounds, ratios, the peak RSS of each process (GNU time: ru_maxrss from wait4), and
whether the issue-11 targets are met (reported, never asserted).

--tiny N: N notes of ~100 bytes, 100 per folder; steps initial (once), no change and one
note edited (K each); peers rsync and rclone.

The vaultsync that runs is ROOT's (this checkout: ROOT/.venv/bin/vaultsync, else the
console script beside sys.executable, with PYTHONPATH=ROOT); the script checks that it
imports vaultsync from ROOT. Results go between the bench_local markers in --out, one
sub-block per data size (a run replaces only its own). A failed command or a differing
replica is listed under the table, and the script exits 1. Stdlib only.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchkit import KIB, MIB, ROOT, fmt_bytes, provenance, read_section, sh, write_section

BIN = ROOT / ".venv" / "bin"
PY = str(BIN / "python") if (BIN / "python").exists() else sys.executable
VS_DEFAULT = str(BIN / "vaultsync") if (BIN / "vaultsync").exists() else \
    str(Path(sys.executable).parent / "vaultsync")
VS_ENV = {**{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
          "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
TIME = "/usr/bin/time"  # GNU time: the peak RSS of the command alone
SEED = 20040
BEGIN, END = "<!-- bench_local:begin -->", "<!-- bench_local:end -->"
SUB = re.compile(r"<!-- bench_local run (\S+) -->\n.*?<!-- bench_local run \1 end -->\n?", re.S)
WORDS = ("the a note idea link draft meeting todo project read later book chapter quote "
         "source review plan week daily garden research paper method result open question "
         "answer why how because python sync vault chunk graph tag archive inbox").split()
OLD = 1_767_225_600  # 2026-01-01: generated files look old (outside the stat cache's racy window)
TOOLS = ("vaultsync", "rsync", "unison", "rclone")
STEPS = {"initial": "initial upload", "nochange": "no change", "change": "small change",
         "second": "second device", "clone": "clone"}
TINY_STEPS = {"initial": "initial upload", "nochange": "no change", "edit": "one note edited"}
RSS_LIMIT = 150 * MIB


# ------------------------------------------------------------------------------ data

def generate(src: Path, n_files: int, rng: random.Random) -> tuple[list[Path], Path]:
    """The vault: folders of 100 notes (returned) and attachments; returns the 20 MiB one."""
    n_att = max(2, n_files // 500)
    folders = []
    for i in range(n_files - n_att):
        p = src / f"area-{i // 1000:02d}" / f"topic-{i // 100 % 10}" / f"note-{i:05d}.md"
        if i % 100 == 0:
            p.parent.mkdir(parents=True, exist_ok=True)
            folders.append(p.parent)
        size = rng.randint(512, 4 * KIB)
        text = f"# Note {i}\n\ntags: #{rng.choice(WORDS)}\n"
        text += f"see [[note-{rng.randrange(n_files)}]]\n\n"
        while len(text) < size:
            text += " ".join(rng.choices(WORDS, k=40)) + ".\n\n"
        p.write_text(text[:size])
        os.utime(p, (OLD + i, OLD + i))
    (src / "attachments").mkdir()
    for j in range(n_att):
        p = src / "attachments" / f"scan-{j:03d}.bin"
        p.write_bytes(rng.randbytes(20 * MIB if j == 0 else rng.randint(100 * KIB, 4 * MIB)))
        os.utime(p, (OLD + j, OLD + j))
    return folders, src / "attachments" / "scan-000.bin"


def generate_tiny(src: Path, n: int) -> list[Path]:
    """n notes of ~100 bytes, 100 per folder: plain writes, no per-file utime; the caller
    waits out the racy window afterwards."""
    filler = (" ".join(WORDS) + " ") * 4
    notes = []
    for i in range(n):
        folder = src / f"f{i // 100 // 100:03d}" / f"d{i // 100 % 100:02d}"
        if i % 100 == 0:
            folder.mkdir(parents=True)
        p = folder / f"n{i:07d}.md"
        head = f"# n{i}\n"
        off = i * 7 % 200
        with open(p, "w") as f:
            f.write(head + filler[off:off + 100 - len(head) - 1] + "\n")
        if i % 997 == 0:
            notes.append(p)
    return notes


def small_change(src: Path, folders: list[Path], big: Path, r: int,
                 rng: random.Random) -> None:
    """Round r's change: 10 notes of other folders edited, 1 KiB appended to `big`,
    folders[r] renamed (and updated in the list)."""
    old = folders[r]
    others = [f for i, f in enumerate(folders) if i != r]
    notes = rng.sample([p for f in others for p in sorted(f.iterdir())], 10)
    for note in notes:
        with note.open("a") as f:
            f.write(f"\nedited in round {r}: {rng.choice(WORDS)}\n")
    with big.open("ab") as f:
        f.write(rng.randbytes(KIB))
    folders[r] = old.with_name(f"{old.name}-renamed-{r}")
    old.rename(folders[r])


def tree_diff(a: Path, b: Path) -> str:
    """Which files (outside a top-level .vaultsync/) differ between a and b, byte for byte;
    one file in memory at a time."""
    def listing(root: Path) -> set[str]:
        found = set()
        for dirpath, dirs, files in os.walk(root):
            if dirpath == str(root):
                dirs[:] = [d for d in dirs if d != ".vaultsync"]
            found.update(os.path.relpath(os.path.join(dirpath, f), root) for f in files)
        return found
    la, lb = listing(a), listing(b)
    bad = sorted(la ^ lb) + sorted(
        k for k in la & lb if (a / k).read_bytes() != (b / k).read_bytes())
    return f"{len(bad)} files differ, e.g. {bad[:3]}" if bad else ""


# ------------------------------------------------------------------------------ running

@dataclass
class Run:
    seconds: float
    rss: int  # bytes: peak resident set of the process (and any children it waited for)
    code: int
    out: str = ""
    report: dict = field(default_factory=dict)  # vaultsync's --json document


def run(cmd: list[str], env: dict[str, str] | None = None) -> Run:
    """One command, timed, with its peak RSS; output kept for errors and JSON. The RSS
    comes from GNU time (wait4's ru_maxrss of its child): ru_maxrss of a child of this
    process would start at this process's own peak, which exec carries over."""
    os.sync()  # no tool waits on another's (or the generator's) dirty pages
    with tempfile.NamedTemporaryFile("w+") as rss, tempfile.TemporaryFile("w+") as out, \
            tempfile.TemporaryFile("w+") as err:
        t = time.perf_counter()
        code = subprocess.run([TIME, "-f", "%M", "-o", rss.name, *cmd], stdout=out,
                              stderr=err, env=env).returncode
        dt = time.perf_counter() - t
        out.seek(0)
        err.seek(0)
        text, etext = out.read(), err.read()
        last = (rss.read().strip().splitlines() or ["0"])[-1]
    r = Run(dt, int(last) * KIB if last.isdigit() else 0, code, text if code == 0 else
            f"{' '.join(cmd)}\n{text[-1500:]}{etext[-1500:]}")
    if code == 0 and text.startswith("{"):
        r.report = json.loads(text)
    return r


class Bench:
    """Every tool's replicas under one scratch folder; results[step][tool] = [Run, ...]."""

    def __init__(self, tmp: Path, src: Path, vs: str, tools: tuple[str, ...]) -> None:
        self.tmp, self.src, self.vs_exe, self.tools = tmp, src, vs, tools
        self.results: dict[str, dict[str, list[Run]]] = {}
        self.problems: list[str] = []
        self.load_max = 0.0  # the 1-min load average, sampled after every command
        conf = tmp / "rclone.conf"
        conf.write_text("")
        self.rclone_env = {**os.environ, "RCLONE_CONFIG": str(conf)}
        self.unison_env = {**os.environ, "UNISON": str(tmp / "unison-home")}

    def d(self, tool: str, which: str) -> Path:
        return self.tmp / f"{tool}-{which}"

    def record(self, step: str, tool: str, r: Run) -> Run:
        self.load_max = max(self.load_max, os.getloadavg()[0])
        self.results.setdefault(step, {}).setdefault(tool, []).append(r)
        if r.code != 0:
            self.problems.append(f"{step}/{tool}: exit {r.code}: {r.out.strip()}")
        return r

    def vs(self, *args: str) -> Run:
        return run([self.vs_exe, *args], env=VS_ENV)

    def copy(self, tool: str, a: Path, b: Path) -> Run:
        """One pass of a peer from a to b (Unison: both ways)."""
        if tool == "rsync":
            return run(["rsync", "-a", "--delete", "--exclude=/.vaultsync/", f"{a}/", f"{b}/"])
        if tool == "rclone":
            return run(["rclone", "sync", str(a), str(b), "--exclude=/.vaultsync/**"],
                       env=self.rclone_env)
        return run(["unison", str(a), str(b), "-batch", "-auto", "-times", "-ui", "text",
                    "-ignore", "Path .vaultsync"], env=self.unison_env)

    def fresh(self) -> None:
        for d in self.tmp.iterdir():
            if d.name not in ("vault", "rclone.conf"):
                shutil.rmtree(d)
        shutil.rmtree(self.src / ".vaultsync", ignore_errors=True)
        (self.tmp / "unison-home").mkdir()

    def step(self, step: str, dev2: bool = False) -> None:
        """Every tool syncs once: the source with replica 1, or (dev2) replica 1 with 2."""
        for tool in self.tools:
            if tool == "vaultsync":
                where = self.d("vs", "dev2") if dev2 else self.src
                self.last = self.record(step, tool,
                                        self.vs("-C", str(where), "sync", "--json"))
            else:
                a, b = (self.d(tool, "1"), self.d(tool, "2")) if dev2 else \
                    (self.src, self.d(tool, "1"))
                self.record(step, tool, self.copy(tool, a, b))

    def initial(self) -> None:
        self.fresh()
        init = self.vs("-C", str(self.src), "init", "--remote", str(self.d("vs", "remote")),
                       "--device", "bench")
        sync = self.vs("-C", str(self.src), "sync", "--json")
        both = Run(init.seconds + sync.seconds, max(init.rss, sync.rss),
                   init.code or sync.code, init.out if init.code else sync.out, sync.report)
        self.record("initial", "vaultsync", both)
        for tool in self.tools[1:]:
            self.d(tool, "1").mkdir()  # Unison wants its roots; rsync and rclone do not mind
            self.record("initial", tool, self.copy(tool, self.src, self.d(tool, "1")))

    def clone(self) -> None:
        r = self.vs("clone", str(self.d("vs", "remote")), str(self.d("vs", "dev2")),
                    "--device", "dev2", "--json")
        self.record("clone", "vaultsync", r)
        for tool in self.tools[1:]:
            self.d(tool, "2").mkdir()
            self.record("clone", tool, self.copy(tool, self.d(tool, "1"), self.d(tool, "2")))

    def check_replicas(self, when: str) -> None:
        for tool in self.tools:
            d = self.d("vs", "dev2") if tool == "vaultsync" else self.d(tool, "2")
            if d.exists() and (diff := tree_diff(self.src, d)):
                self.problems.append(f"after {when}, {tool}'s second replica: {diff}")


def median(runs: list[Run], attr: str = "seconds") -> float | None:
    if not runs or any(r.code != 0 for r in runs):
        return None
    return statistics.median(getattr(r, attr) for r in runs)


def median_time(cmd: list[str], k: int, env: dict[str, str] | None = None) -> float:
    return statistics.median(run(cmd, env).seconds for _ in range(k))


def top_imports(vs_py: str, src: Path, n: int = 8) -> tuple[float, list[tuple[str, float]]]:
    """`python -X importtime` of a no-change sync: total and top-level modules by cumulative."""
    p = subprocess.run([vs_py, "-X", "importtime", "-m", "vaultsync", "-C", str(src), "sync"],
                       capture_output=True, text=True, env=VS_ENV)
    top = []
    for line in p.stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "cumulative" not in line:
            _, cum, name = line[len("import time:"):].split("|")
            if not name.startswith("  "):  # top level: exactly one space after '|'
                top.append((name.strip(), int(cum) / 1e6))
    return sum(c for _, c in top), sorted(top, key=lambda x: -x[1])[:n]


# ------------------------------------------------------------------------------ report

def target(step: str, med: dict[str, float | None], files: int) -> tuple[str, bool | None]:
    """The issue-11 target of a step and whether vaultsync met it (None: not measured)."""
    near = "rsync" if files >= 100_000 else "unison"
    peers, factor = {"initial": (["rclone"], 1.0), "nochange": (["rsync", "unison"], 1.0),
                     "change": ([near], 1.5), "second": ([near], 1.5),
                     "clone": (["rsync"], 1.0)}.get(step, ([], 1.0))
    peers = [p for p in peers if p in med]
    if not peers:
        return "-", None
    text = " and ".join(f"<= {'' if factor == 1 else f'{factor}x '}{p}" for p in peers)
    vs = med["vaultsync"]
    if vs is None or any(med[p] is None for p in peers):
        return text, None
    return text, all(vs <= factor * med[p] for p in peers)  # type: ignore[operator]


def yes(ok: bool | None) -> str:
    return "n/a" if ok is None else ("yes" if ok else "**no**")


def tables(b: Bench, steps: dict[str, str], files: int) -> list[str]:
    peers = [t for t in TOOLS[1:] if t in b.tools]
    head = ["step", *(f"{t} s" for t in b.tools), *(f"vs/{p}" for p in peers),
            "vs peak RSS", "target", "met", "RSS < 150 MiB"]
    out = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 4) + "---|---|---|"]
    for step, label in steps.items():
        res = b.results.get(step, {})
        med = {t: median(res.get(t, [])) for t in b.tools}
        rss = median(res.get("vaultsync", []), "rss")
        cells = [f"{label} (n={len(res.get('vaultsync', []))})"]
        cells += ["FAIL" if med[t] is None else f"{med[t]:.3f}" for t in b.tools]
        for p in peers:
            vs, pm = med["vaultsync"], med[p]
            cells.append("-" if vs is None or pm is None else f"{vs / pm:.2f}x")
        text, ok = target(step, med, files)
        cells += ["-" if rss is None else fmt_bytes(rss), text, yes(ok),
                  yes(None if rss is None else rss < RSS_LIMIT)]
        out.append("| " + " | ".join(cells) + " |")
    out += ["", "| step | vs in-process s | vs files up / down / moved | vs requests up / down "
            "| vs bytes up / down | " + " | ".join(f"{p} peak RSS" for p in peers) + " |",
            "|---|---:|---:|---:|---:|" + "---:|" * len(peers)]
    for step, label in steps.items():
        res = b.results.get(step, {})
        reps = [r.report for r in res.get("vaultsync", []) if r.report]
        if not reps:
            continue

        def m(f, reps=reps) -> float:
            return statistics.median(f(x) for x in reps)
        def t(key: str, reps=reps) -> float:
            return statistics.median(x["traffic"][key] for x in reps)
        cells = [label, f"{m(lambda x: x['duration_s']):.3f}",
                 " / ".join(f"{m(lambda x, f=f: x.get(f, 0)):.0f}"
                            for f in ("uploaded", "downloaded", "moved")),
                 f"{t('requests_up'):.0f} / {t('requests_down'):.0f}",
                 f"{fmt_bytes(t('bytes_up'))} / {fmt_bytes(t('bytes_down'))}"]
        for p in peers:
            rss = median(res.get(p, []), "rss")
            cells.append("FAIL" if rss is None else fmt_bytes(rss))
        out.append("| " + " | ".join(cells) + " |")
    return out


def merge_block(out: Path, key: str, sub: list[str], header: list[str]) -> None:
    """Write `sub` as this run's sub-block (replacing one with the same key) in the block."""
    start, stop = f"<!-- bench_local run {key} -->", f"<!-- bench_local run {key} end -->"
    text = "\n".join([start, *sub, stop]) + "\n"
    subs = [m.group(0) for m in SUB.finditer(read_section(out, BEGIN, END))]
    subs = [text if s.startswith(start + "\n") else s for s in subs]
    if text not in subs:
        subs.append(text)
    write_section(out, BEGIN, END, [BEGIN, "", *header, "", "\n".join(s.rstrip("\n") + "\n"
                                                                         for s in subs), END])


HEADER = [
    "Written by `benchmarks/bench_local.py`: one sub-block per data size, each from one run "
    "(its command and commit are in it). Every tool runs on the same generated vault in the "
    "same run, local disk to local folder, page cache warm, `os.sync()` before each command. "
    "Steps, in the order they run in each round (every round starts from empty "
    "destinations): *initial* (vaultsync `init` + `sync`, Unison's first run builds its "
    "archive); *clone* (vaultsync `clone`; rsync/rclone copy the remote into an empty "
    "folder; Unison syncs the remote with an empty folder, building a second archive); "
    "*no change*; *small change* (10 notes edited, 1 KiB appended to a 20 MiB attachment, "
    "a folder of 100 notes renamed); *second device* (vaultsync `sync` on the clone; "
    "rsync/rclone copy remote -> second replica; Unison syncs remote <-> second replica). "
    "Every second replica is compared byte for byte with the source after *clone* and "
    "after *second device*.",
    "",
    "Tools: `vaultsync -C DIR sync --json`; `rsync -a --delete SRC/ DST/`; `unison A B "
    "-batch -auto -times -ui text -ignore 'Path .vaultsync'` (UNISON = a scratch folder); "
    "`rclone sync SRC DST` (RCLONE_CONFIG = an empty file); the peers exclude `.vaultsync/`. "
    "Times are medians of wall time over the rounds (n); *vs peak RSS* is the median of "
    "vaultsync's peak RSS (`/usr/bin/time -f %M`: the ru_maxrss `wait4` gives GNU time for "
    "its child; initial: the larger of init and sync). Targets "
    "(issue 11, reported, not asserted): initial <= rclone; no change <= rsync and <= "
    "Unison; small change and second device <= 1.5x Unison below 100k files, <= 1.5x rsync "
    "from 100k; clone <= rsync; peak RSS < 150 MiB (the target is at 100k).",
]


# ------------------------------------------------------------------------------ main

def check_vaultsync(exe: str) -> str:
    """The vaultsync that runs must import from ROOT: a benchmark of another checkout's
    code is worse than none."""
    head = Path(exe).read_text(errors="replace").splitlines()[0] if Path(exe).exists() else ""
    if not head.startswith("#!"):
        sys.exit(f"not a console script: {exe}")
    py = head[2:].strip()
    where = subprocess.run([py, "-c", "import vaultsync; print(vaultsync.__file__)"],
                           capture_output=True, text=True, env=VS_ENV).stdout.strip()
    if not where.startswith(str(ROOT / "vaultsync") + os.sep):
        sys.exit(f"{exe} imports vaultsync from {where or '?'}, not from {ROOT}")
    return py


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=3, help="rounds (K); times are medians")
    ap.add_argument("--quick", action="store_true", help="300 files, 1 round (a smoke run)")
    ap.add_argument("--tiny", type=int, metavar="N", help="N notes of ~100 bytes instead")
    ap.add_argument("--out", default=None, help="default docs/benchmarks.md (--quick: none)")
    ap.add_argument("--vaultsync", metavar="EXE", default=VS_DEFAULT)
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder")
    a = ap.parse_args()
    if a.quick:
        a.files, a.repeat = 300, 1
    out = a.out or (None if a.quick else str(ROOT / "docs" / "benchmarks.md"))
    for tool in ("rsync", "unison", "rclone", TIME):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found: run scripts/install-servers.sh "
                     "(apt: rsync unison rclone time)")
    vs_py = check_vaultsync(a.vaultsync)
    # bytecode written now, not in the first timed run (nor in every run, if this
    # environment says PYTHONDONTWRITEBYTECODE)
    subprocess.run([vs_py, "-m", "compileall", "-q", str(ROOT / "vaultsync")], check=True,
                   env=VS_ENV, stdout=subprocess.DEVNULL)
    rng = random.Random(SEED)
    tmp = Path(tempfile.mkdtemp(prefix="vaultsync-bench-", dir="/tmp"))
    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    src = tmp / "vault"
    src.mkdir()
    try:
        if a.tiny:
            key, steps = f"tiny={a.tiny}", TINY_STEPS
            b = Bench(tmp, src, a.vaultsync, ("vaultsync", "rsync", "rclone"))
            notes = generate_tiny(src, a.tiny)
            gen_s = time.perf_counter() - t0
            time.sleep(2.1)  # past vaultsync's racy window: the stat cache trusts every file
            n_files, total = a.tiny, sum(p.stat().st_size for p in notes) * a.tiny // len(notes)
            data = (f"{a.tiny} notes of ~100 bytes, 100 per folder "
                    f"({a.tiny // 100} folders, ~{fmt_bytes(total)}; generated in {gen_s:.0f} s)")
            print(data, flush=True)
            b.initial()
            for r in range(a.repeat):
                b.step("nochange")
                with notes[r % len(notes)].open("a") as f:
                    f.write(f"edited {r}\n")
                b.step("edit")
                if b.last.code == 0 and b.last.report.get("uploaded") != 1:
                    b.problems.append(f"edit: vaultsync uploaded {b.last.report.get('uploaded')}")
        else:
            key, steps = f"files={a.files}", STEPS
            b = Bench(tmp, src, a.vaultsync, TOOLS)
            folders, big = generate(src, a.files, rng)
            total = sum(p.stat().st_size for p in src.rglob("*") if p.is_file())
            n_files = a.files
            data = (f"{a.files - max(2, a.files // 500)} notes of 0.5-4 KiB (100 per folder) + "
                    f"{max(2, a.files // 500)} attachments (one of 20 MiB) = {a.files} files, "
                    f"{fmt_bytes(total)}, seed {SEED}")
            print(f"{data}; generated in {time.perf_counter() - t0:.0f} s under {tmp}", flush=True)
            for r in range(a.repeat):
                b.initial()
                b.clone()
                b.check_replicas("clone")
                b.step("nochange")
                small_change(src, folders, big, r, rng)
                b.step("change")
                b.step("second", dev2=True)
                b.check_replicas("second device")
                print(f"round {r + 1}/{a.repeat} done at {time.perf_counter() - t0:.0f} s",
                      flush=True)
        k = max(3, a.repeat)
        ctx = [("`python -c pass`", median_time([vs_py, "-c", "pass"], k)),
               ("`vaultsync --help`", median_time([a.vaultsync, "--help"], k, VS_ENV)),
               ("python os.walk + lstat of the vault", median_time(
                   [vs_py, "-c", "import os,sys\nfor d,_,fs in os.walk(sys.argv[1]):\n"
                    " for f in fs: os.lstat(os.path.join(d,f))", str(src)], k))]
        imp_total, imps = top_imports(vs_py, src)
        elapsed, load1 = time.perf_counter() - t0, os.getloadavg()[0]
    finally:
        if a.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    git, dirty, argv = provenance("bench_local.py")
    code_commit = sh(f"git -C {ROOT} log -1 --format=%h -- vaultsync pyproject.toml")
    body = tables(b, steps, n_files)
    print("\n".join(body), flush=True)
    size = f"{a.tiny:,} tiny notes" if a.tiny else f"{a.files:,} files"
    sub = [f"### {size}", "",
           f"- date: {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
           f"- machine: nproc {sh('nproc')}, Python {sys.version.split()[0]}, "
           f"{sh('rsync --version')}, {sh('unison -version')}, {sh('rclone version')}, "
           f"vaultsync at {git}{dirty} (vaultsync/ last changed in {code_commit}); "
           f"1-min load average {load0:.2f} at start, {load1:.2f} at end, "
           f"{b.load_max:.2f} at most (after each command)",
           f"- command: `{argv}` (whole run {elapsed:.0f} s)",
           f"- data: {data}; rounds: {a.repeat}", "", *body, "",
           "| context | median s |", "|---|---:|", *(f"| {n} | {t:.3f} |" for n, t in ctx), "",
           f"Imports of a no-change sync (`python -X importtime -m vaultsync -C SRC sync`): "
           f"{imp_total:.3f} s in all; top level by cumulative time: "
           + ", ".join(f"{n} {t * 1000:.0f} ms" for n, t in imps) + ".", ""]
    if b.problems:
        sub += ["**Problems in this run:**", "", *(f"- {p.splitlines()[0]}" for p in b.problems),
                ""]
    if out:
        merge_block(Path(out), key, sub, HEADER)
        print(f"wrote {out} ({elapsed:.0f} s)")
    for p in b.problems:
        print(f"PROBLEM: {p}", file=sys.stderr)
    sys.exit(1 if b.problems else 0)


if __name__ == "__main__":
    main()
