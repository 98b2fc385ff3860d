#!/usr/bin/env python3
"""vaultsync prune against restic forget --prune, on one real edit history replayed as syncs.

    git clone --bare https://github.com/obsidianmd/obsidian-help /tmp/obsidian-help.git
    python benchmarks/bench_prune.py --git /tmp/obsidian-help.git [--steps N] [--out FILE.md]
    python benchmarks/bench_prune.py                  # no --git: seeded synthetic history
    python benchmarks/bench_prune.py --quick          # ~20 synthetic steps: a smoke run for CI

History: with --git DIR (a bare or normal git directory), the first-parent commits of REF
(default HEAD), oldest first, starting at --skip, that change at least one file with an
extension in --ext (default md); each becomes one step whose files are those of the
commit's tree (only those extensions, and no hidden path such as `.trash/`, which
vaultsync ignores by default), at the commit's committer time. Without --git, a
seeded generator writes a vault of notes and edits it for --steps steps: appends, edits
in the middle, new notes, daily notes, deletes, renames, folder moves, at times spread
over months (bursts of minutes inside a session, days between sessions).

Replay: one vault folder is made equal to each step in turn (only changed files are
written, with the step's time as mtime); then `vaultsync sync` runs with its clock set
to the step's time (libfaketime preloaded), and `restic backup --time` records the same
folder with the same time. Remote and restic repository are local directories. Then both
forget and delete with the same policy (--keep-last/--keep-daily/--keep-weekly/
--keep-monthly): `vaultsync prune ... --grace 0s` run --prune-runs times (phase 1 writes
the record, phase 2 deletes), `restic forget --prune`. Sizes are apparent bytes of every
file in the repository folder; objects are files. After prune, the data is checked:
`vaultsync verify --read-data 100`, the newest and a sample of kept snapshots checked out
and compared byte for byte with the step they came from; `restic check --read-data`.

Default run: 150 steps, 4-6 minutes on 2 cores (most of it the two tools' start-up and
restic's ~0.4 s of key derivation per command). Knobs: every option below;
VAULTSYNC_BENCH_GIT, VAULTSYNC_BENCH_STEPS, VAULTSYNC_BENCH_SEED and VAULTSYNC_BENCH_BIN
are read as defaults for --git, --steps, --seed and --vaultsync.
Needs `restic` and libfaketime (apt-get install -y restic faketime). Stdlib only;
the tools run as subprocesses. No timing is asserted anywhere; a failing command, a
restored file that differs, or a failed verify/check stops the run with exit 1.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from benchkit import ROOT, fmt_bytes, provenance, sh, write_section

BIN = ROOT / ".venv" / "bin"
PY = str(BIN / "python") if (BIN / "python").exists() else sys.executable
VS = [str(BIN / "vaultsync")] if (BIN / "vaultsync").exists() else [PY, "-m", "vaultsync"]
SEED = 20100
BEGIN, END = "<!-- bench_prune:begin -->", "<!-- bench_prune:end -->"
SYNTH_START = 1_735_732_800  # 2025-01-01 12:00 UTC
WORDS = ("the a note idea link draft meeting todo project read later book chapter quote "
         "source review plan week daily garden research paper method result open question "
         "answer why how because python sync vault chunk graph tag archive inbox").split()


@dataclass
class Step:
    """One point of the history: the vault's files change by `changes` (None = delete)."""
    when: int  # epoch seconds, UTC, strictly increasing
    label: str
    changes: dict[str, bytes | None] = field(default_factory=dict)


# ---------------------------------------------------------------- history: a git repository

def hidden(path: str) -> bool:
    """Paths left out of a replayed history: hidden ones (`.trash/`, `.github/`, `.obsidian/`)
    and editors' leftovers, which vaultsync ignores by default and restic would keep."""
    parts = path.split("/")
    return any(p.startswith(".") for p in parts) or parts[-1].endswith(("~", ".tmp", ".swp")) \
        or ".sync-conflict-" in parts[-1]


def git_steps(gitdir: Path, ref: str, skip: int, n: int, exts: tuple[str, ...]) -> Iterator[Step]:
    """First-parent commits of `ref`, oldest first, that change a file ending in `exts`."""
    git = ["git", f"--git-dir={gitdir}"]
    revs = subprocess.run([*git, "log", "--first-parent", "--reverse", "--format=%H %ct", ref],
                          capture_output=True, text=True, check=True).stdout.split("\n")
    cat = subprocess.Popen([*git, "cat-file", "--batch"], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE)
    w, r = cat.stdin, cat.stdout
    assert w is not None and r is not None

    def blob(oid: str) -> bytes:
        w.write(oid.encode() + b"\n")
        w.flush()
        header = r.readline().split()
        data = r.read(int(header[2]))
        r.read(1)  # the newline after the contents
        return data

    prev: dict[str, str] = {}
    made, last = 0, 0
    try:
        for line in revs:
            if not line.strip():
                continue
            sha, ct = line.split()
            out = subprocess.run([*git, "ls-tree", "-r", "-z", "--full-tree", sha],
                                 capture_output=True, check=True).stdout
            cur: dict[str, str] = {}
            for rec in out.split(b"\0"):
                if not rec:
                    continue
                meta, path = rec.split(b"\t", 1)
                mode, kind, oid = meta.split()
                name = path.decode("utf-8", "surrogateescape")
                if kind == b"blob" and mode in (b"100644", b"100755") \
                        and name.lower().endswith(exts) and not hidden(name):
                    cur[name] = oid.decode()
            changes: dict[str, str | None] = {p: None for p in prev if p not in cur}
            changes.update({p: o for p, o in cur.items() if prev.get(p) != o})
            prev = cur
            if not changes:
                continue  # no text file changed: not a step (restic would still snapshot)
            made += 1
            if made <= skip:
                continue
            when = max(int(ct), last + 1)
            last = when
            if made == skip + 1:  # the first step writes the whole tree into an empty vault
                yield Step(when, sha[:10], {p: blob(o) for p, o in cur.items()})
            else:
                yield Step(when, sha[:10], {p: None if o is None else blob(o)
                                            for p, o in changes.items()})
            if made - skip >= n:
                return
    finally:
        w.close()
        cat.wait()


# ---------------------------------------------------------------- history: synthetic

def _para(rng: random.Random, n_files: int) -> str:
    words = " ".join(rng.choices(WORDS, k=rng.randint(15, 80)))
    link = f" see [[note-{rng.randrange(n_files):04d}]]" if rng.random() < 0.3 else ""
    return f"{words[0].upper()}{words[1:]}.{link}\n\n"


def _note(rng: random.Random, title: str, n_files: int) -> str:
    text = f"# {title}\n\ntags: #{rng.choice(WORDS)} #{rng.choice(WORDS)}\n\n"
    for _ in range(rng.choice((1, 2, 3, 5, 8, 13))):
        if rng.random() < 0.2:
            text += f"## {rng.choice(WORDS).title()} {rng.choice(WORDS)}\n\n"
        text += _para(rng, n_files)
    return text


def synthetic_steps(n: int, seed: int, initial: int = 150) -> Iterator[Step]:
    """A seeded edit history: `initial` notes in a few folders, then n-1 steps of edits."""
    rng = random.Random(seed)
    folders = ["inbox", "projects", "projects/vaultsync", "reading", "people", "archive",
               "areas/health", "areas/work", "areas/home"]
    files: dict[str, str] = {}
    counter = 0

    def new_path() -> str:
        nonlocal counter
        counter += 1
        return f"{rng.choice(folders)}/note-{counter:04d}.md"

    for _ in range(initial):
        p = new_path()
        files[p] = _note(rng, p.rsplit("/", 1)[1][:-3], initial)
    when = SYNTH_START
    yield Step(when, "step 0", {p: t.encode() for p, t in files.items()})
    hot: list[str] = rng.sample(sorted(files), 12)  # notes worked on lately
    for i in range(1, n):
        # a session is a burst of steps minutes apart; sessions are 1-4 days apart
        when += rng.randint(300, 7200) if rng.random() < 0.7 else rng.randint(86400, 4 * 86400)
        ch: dict[str, str | None] = {}
        day = datetime.datetime.fromtimestamp(when, datetime.UTC).strftime("%Y-%m-%d")
        daily = f"journal/{day}.md"
        if daily not in files:  # the first step of a day starts its daily note
            ch[daily] = f"# {day}\n\n" + _para(rng, counter)
        else:
            ch[daily] = files[daily] + f"- {time.strftime('%H:%M', time.gmtime(when))} " \
                + _para(rng, counter)
        for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 5))):
            if rng.random() < 0.15 or not hot:
                hot = [p for p in hot if p in files][-11:] + [rng.choice(sorted(files))]
            p = rng.choice(hot)
            if p not in files:
                continue
            text = ch.get(p) or files[p]
            r = rng.random()
            if r < 0.55:
                text += _para(rng, counter)  # append
            elif r < 0.85:  # rewrite a paragraph in the middle
                paras = text.split("\n\n")
                paras[rng.randrange(len(paras))] = _para(rng, counter).strip()
                text = "\n\n".join(paras)
            else:  # cut the tail
                text = text[: max(40, len(text) * rng.randint(3, 9) // 10)]
            ch[p] = text
        for _ in range(rng.choice((0, 0, 0, 1, 1, 2))):
            p = new_path()
            ch[p] = _note(rng, p.rsplit("/", 1)[1][:-3], counter)
            hot.append(p)
        r = rng.random()
        live = sorted(p for p in files if p not in ch)
        if r < 0.06 and live:  # delete a note
            ch[rng.choice(live)] = None
        elif r < 0.12 and live:  # rename or move a note
            p = rng.choice(live)
            q = f"{rng.choice(folders)}/{rng.choice(WORDS)}-{counter}.md"
            counter += 1
            if q not in files:
                ch[p], ch[q] = None, files[p]
        elif r < 0.13:  # move a whole folder
            src = rng.choice([f for f in folders if f != "inbox"])
            dst = f"archive/{src.replace('/', '-')}-{i}"
            for p in sorted(files):
                if p.startswith(src + "/") and p not in ch:
                    ch[p], ch[dst + p[len(src):]] = None, files[p]
            folders[folders.index(src)] = dst
        for p, t in ch.items():
            if t is None:
                files.pop(p, None)
            else:
                files[p] = t
        yield Step(when, f"step {i}", {p: (None if t is None else t.encode())
                                       for p, t in ch.items()})


# ---------------------------------------------------------------- running the tools

def run(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None,
        ok: tuple[int, ...] = (0,)) -> tuple[float, str, int]:
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd)
    dt = time.perf_counter() - t
    if p.returncode not in ok:
        sys.exit(f"FAILED (exit {p.returncode}): {' '.join(cmd)}\n"
                 f"{p.stdout[-3000:]}{p.stderr[-3000:]}")
    return dt, p.stdout, p.returncode


def stamp(epoch: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch))


def faketime_lib() -> str:
    libs = sorted(glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1"))
    if not libs:
        sys.exit("libfaketime is missing: apt-get install -y faketime")
    return libs[0]


def tree_hashes(root: Path) -> dict[str, str]:
    found = {}
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".vaultsync"]
        for f in files:
            p = os.path.join(dirpath, f)
            found[os.path.relpath(p, root)] = hashlib.sha1(Path(p).read_bytes()).hexdigest()
    return found


def repo_usage(root: Path) -> dict[str, int]:
    """Apparent bytes and files, in all and per top-level folder."""
    out = {"bytes": 0, "objects": 0}
    for dirpath, _, files in os.walk(root):
        top = Path(dirpath).relative_to(root).parts[:1]
        for f in files:
            n = os.lstat(os.path.join(dirpath, f)).st_size
            out["bytes"] += n
            out["objects"] += 1
            k = top[0] if top else f
            out[f"{k}_objects"] = out.get(f"{k}_objects", 0) + 1
            out[f"{k}_bytes"] = out.get(f"{k}_bytes", 0) + n
    return out


class Replay:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.vault, self.remote = tmp / "vault", tmp / "vs-repo"
        self.restic_repo = tmp / "restic-repo"
        self.vault.mkdir()
        self.fake = faketime_lib()
        self.restic_env = {**os.environ, "RESTIC_PASSWORD": "bench", "TZ": "UTC",
                           "RESTIC_REPOSITORY": str(self.restic_repo),
                           "RESTIC_CACHE_DIR": str(tmp / "restic-cache")}
        self.expected: dict[int, dict[str, str]] = {}  # step time -> path -> sha1
        self.current: dict[str, str] = {}
        self.vs_s: list[float] = []
        self.restic_s: list[float] = []
        self.vs_snaps: dict[str, int] = {}  # snapshot id -> step time

    def clock(self, epoch: int) -> dict[str, str]:
        return {**os.environ, "TZ": "UTC", "LD_PRELOAD": self.fake,
                "FAKETIME": f"@{stamp(epoch)}", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}

    def vs(self, *args: str, at: int, ok: tuple[int, ...] = (0,)) -> tuple[float, dict, int]:
        dt, out, rc = run([*VS, "-C", str(self.vault), *args, "--json"], env=self.clock(at),
                          ok=ok)
        return dt, json.loads(out), rc

    def restic(self, *args: str) -> tuple[float, str]:
        dt, out, _ = run(["restic", *args], env=self.restic_env)
        return dt, out

    def start(self, first: int) -> None:
        run([*VS, "-C", str(self.vault), "init", "--remote", str(self.remote),
             "--device", "bench"], env=self.clock(first))
        self.restic("init")

    def apply(self, step: Step) -> None:
        for p, data in step.changes.items():
            if data is None:
                (self.vault / p).unlink(missing_ok=True)
                self.current.pop(p, None)
                d = (self.vault / p).parent
                while d != self.vault and not any(d.iterdir()):
                    d.rmdir()
                    d = d.parent
        for p, data in step.changes.items():
            if data is not None:
                f = self.vault / p
                f.parent.mkdir(parents=True, exist_ok=True)
                f.write_bytes(data)
                os.utime(f, (step.when, step.when))
                self.current[p] = hashlib.sha1(data).hexdigest()
        self.expected[step.when] = dict(self.current)

    def record(self, step: Step, serial: bool) -> None:
        """Both tools take a snapshot of the vault as it is at step.when (+1 min): side by
        side (each reads the vault and writes only its own repository), or one by one."""
        at = step.when + 60
        jobs = [([*VS, "-C", str(self.vault), "sync", "--force", "--json"], self.clock(at)),
                (["restic", "backup", "--quiet", "--host", "bench", "--time", stamp(at),
                  "--exclude", str(self.vault / ".vaultsync"), str(self.vault)],
                 self.restic_env)]
        if serial:
            done = [run(cmd, env=env)[:2] for cmd, env in jobs]
        else:
            procs = [(time.perf_counter(), cmd, subprocess.Popen(
                cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
                for cmd, env in jobs]
            done = []
            for t, cmd, p in procs:
                out, err = p.communicate()
                if p.returncode:
                    sys.exit(f"FAILED (exit {p.returncode}): {' '.join(cmd)}\n"
                             f"{out[-3000:]}{err[-3000:]}")
                done.append((time.perf_counter() - t, out))
        rep = json.loads(done[0][1])
        if rep.get("up_to_date") or not rep.get("snapshot"):
            sys.exit(f"vaultsync made no snapshot at {step.label}: {rep}")
        self.vs_snaps[rep["snapshot"]] = step.when
        self.vs_s.append(done[0][0])
        self.restic_s.append(done[1][0])

    def restic_snapshot_times(self) -> list[int]:
        _, out = self.restic("snapshots", "--json")
        return sorted(int(datetime.datetime.fromisoformat(s["time"]).timestamp()) - 60
                      for s in json.loads(out))

    def check_vs(self, at: int, kept: list[str], sample: int, problems: list[str]) -> int:
        """verify --read-data 100; the newest and (a sample of) the other kept snapshots
        checked out by id and compared byte for byte with their step; `log` lists them."""
        run([*VS, "-C", str(self.vault), "verify", "--read-data", "100", "--json"],
            env=self.clock(at), ok=(0, 1))
        newest = max(kept, key=lambda sid: self.vs_snaps[sid])
        rest = sorted(sid for sid in kept if sid != newest)
        if sample:
            rest = random.Random(SEED).sample(rest, min(sample, len(rest)))
        unreachable = []
        for sid in [newest, *rest]:
            when = self.vs_snaps[sid]
            out = self.tmp / f"checkout-{sid[:12]}"
            p = subprocess.run([*VS, "checkout", str(self.remote), str(out), "--at", sid],
                               capture_output=True, text=True, env=self.clock(at))
            if p.returncode:
                why = p.stderr.strip().splitlines()[-1].split(" (give")[0] if p.stderr else ""
                unreachable.append(f"{sid[:12]} ({stamp(when + 60)}): exit {p.returncode}, "
                                   f"{why.replace(sid, sid[:12])[:100]}")
                continue
            got, want = tree_hashes(out), self.expected[when]
            if got != want:
                bad = sorted(k for k in got.keys() | want.keys() if got.get(k) != want.get(k))
                problems.append(f"MISMATCH: kept snapshot {sid[:12]} ({stamp(when + 60)}) "
                                f"restores {len(bad)} paths that differ from its step, "
                                f"e.g. {bad[:3]}")
            shutil.rmtree(out)
        if unreachable:
            problems.append(f"{len(unreachable)} of {1 + len(rest)} kept snapshots checked "
                            f"cannot be checked out by id: " + "; ".join(unreachable[:4]))
        _, log, _ = self.vs("log", at=at)
        if len(log) != len(kept):
            listed = {s["id"] for s in log}
            missing = sorted((self.vs_snaps[sid], sid) for sid in kept if sid not in listed)
            problems.append(f"`vaultsync log` lists {len(log)} snapshots, prune kept "
                            f"{len(kept)}; not listed: " + ", ".join(
                                f"{sid[:12]} ({stamp(t + 60)})" for t, sid in missing[:4]))
        return 1 + len(rest)


# ---------------------------------------------------------------- report



def table(r: dict) -> list[str]:
    out = ["| tool | snapshots before | kept | repo before | repo after | freed "
           "| objects before | objects after | prune wall s | replay s/step |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, t in (("vaultsync", r["vaultsync"]), ("restic", r["restic"])):
        b, a = t["before"], t["after"]
        freed = 1 - a["bytes"] / b["bytes"] if b["bytes"] else 0.0
        out.append(f"| {name} | {t['snapshots_before']} | {t['snapshots_after']} "
                   f"| {fmt_bytes(b['bytes'], 2)} | {fmt_bytes(a['bytes'], 2)} | {freed:.0%} "
                   f"| {b['objects']} | {a['objects']} | {t['prune_s']:.2f} "
                   f"| {t['replay_s'] / r['steps']:.3f} |")
    vs, rs = r["vaultsync"], r["restic"]
    out.append(f"| vaultsync / restic | {vs['snapshots_before'] / rs['snapshots_before']:.2f}x "
               f"| {vs['snapshots_after'] / max(1, rs['snapshots_after']):.2f}x "
               f"| {vs['before']['bytes'] / rs['before']['bytes']:.2f}x "
               f"| {vs['after']['bytes'] / rs['after']['bytes']:.2f}x | "
               f"| {vs['before']['objects'] / rs['before']['objects']:.2f}x "
               f"| {vs['after']['objects'] / rs['after']['objects']:.2f}x "
               f"| {vs['prune_s'] / rs['prune_s']:.2f}x "
               f"| {vs['replay_s'] / rs['replay_s']:.2f}x |")
    return out


def main() -> None:
    env = os.environ.get
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--git", default=env("VAULTSYNC_BENCH_GIT"),
                    help="git directory of the history to replay (default: synthetic)")
    ap.add_argument("--ref", default="HEAD")
    ap.add_argument("--skip", type=int, default=0, help="skip this many steps of the history")
    ap.add_argument("--steps", type=int, default=int(env("VAULTSYNC_BENCH_STEPS", "150")))
    ap.add_argument("--seed", type=int, default=int(env("VAULTSYNC_BENCH_SEED", str(SEED))))
    ap.add_argument("--ext", default="md", help="comma-separated extensions taken from git")
    ap.add_argument("--quick", action="store_true", help="20 synthetic steps (CI smoke run)")
    ap.add_argument("--keep-last", type=int, default=10)
    ap.add_argument("--keep-daily", type=int, default=7)
    ap.add_argument("--keep-weekly", type=int, default=4)
    ap.add_argument("--keep-monthly", type=int, default=6)
    ap.add_argument("--serial", action="store_true",
                    help="replay: run sync and backup one after the other, not side by side")
    ap.add_argument("--check-sample", type=int, default=0,
                    help="check out only this many kept snapshots besides the newest "
                         "(default 0: all of them)")
    ap.add_argument("--vaultsync", metavar="EXE", default=env("VAULTSYNC_BENCH_BIN"),
                    help="the vaultsync to run (default: .venv/bin/vaultsync of this checkout)")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON ('-': stdout)")
    ap.add_argument("--out", help="write the results between the markers in this markdown file")
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder")
    a = ap.parse_args()
    if a.vaultsync:
        VS[:] = [a.vaultsync]
    if a.quick:
        a.git, a.steps = None, 20
    if shutil.which("restic") is None:
        sys.exit("restic is missing: apt-get install -y restic")
    policy = ["--keep-last", str(a.keep_last), "--keep-daily", str(a.keep_daily),
              "--keep-weekly", str(a.keep_weekly), "--keep-monthly", str(a.keep_monthly)]
    exts = tuple("." + e.strip().lstrip(".").lower() for e in a.ext.split(","))
    if a.git:
        steps: Iterator[Step] = git_steps(Path(a.git), a.ref, a.skip, a.steps, exts)
        origin = sh(f"git --git-dir={a.git} config --get remote.origin.url")
        tip = sh(f"git --git-dir={a.git} rev-parse --short=12 {a.ref}")
        source = (f"git {origin if origin != '?' else a.git} ({a.ref} = {tip}, first parent, "
                  f"*{','.join(exts)})")
    else:
        steps = synthetic_steps(a.steps + a.skip, a.seed, 30 if a.quick else 150)
        source = f"synthetic, seed {a.seed}"
    tmp = Path(tempfile.mkdtemp(prefix="vaultsync-prune-", dir="/tmp"))
    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    r: dict = {"source": source, "policy": " ".join(policy)}
    try:
        rep = Replay(tmp)
        n, first, last, label0 = 0, None, 0, ""
        for step in steps:
            if not a.git and n < a.skip:
                rep.apply(step)
                n += 1
                continue
            if first is None:
                first, label0 = step.when, step.label
                rep.start(step.when)
            rep.apply(step)
            rep.record(step, a.serial)
            last = step.when
            n += 1
            if n % 25 == 0:
                print(f"  {n} steps, at {stamp(step.when)} ({step.label}), "
                      f"{len(rep.current)} files, {time.perf_counter() - t0:.0f} s", flush=True)
        if first is None:
            sys.exit("the history has no step")
        nsteps = len(rep.vs_s)
        vault_bytes = sum((rep.vault / p).stat().st_size for p in rep.current)
        print(f"replayed {nsteps} steps {label0}..{step.label}, {stamp(first)} .. {stamp(last)}; "
              f"vault now {len(rep.current)} files, {fmt_bytes(vault_bytes, 2)}", flush=True)
        r.update(steps=nsteps, first=stamp(first), last=stamp(last), files=len(rep.current),
                 vault_bytes=vault_bytes)

        vs_before, rs_before = repo_usage(rep.remote), repo_usage(rep.restic_repo)
        rs_times_before = rep.restic_snapshot_times()
        for name, u, n_snaps, s in (
                ("vaultsync", vs_before, vs_before.get("snapshots_objects", 0), rep.vs_s),
                ("restic", rs_before, len(rs_times_before), rep.restic_s)):
            print(f"before prune: {name} {n_snaps} snapshots, {fmt_bytes(u['bytes'], 2)} in "
                  f"{u['objects']} objects; replay {sum(s):.1f} s", flush=True)
        at = last + 3600  # prune an hour after the last sync
        vs_prune_s, prune = rep.vs("prune", *policy, "--grace", "0s", at=at)[:2]
        rs_prune_s, _ = rep.restic("forget", "--prune", "--host", "bench", *policy)
        vs_after, rs_after = repo_usage(rep.remote), repo_usage(rep.restic_repo)
        kept = [k["snapshot"] for k in prune["kept"]]
        print(f"vaultsync prune: {vs_prune_s:.2f} s, kept {len(kept)}, repo "
              f"{fmt_bytes(vs_after['bytes'], 2)}; restic forget --prune: {rs_prune_s:.2f} s, "
              f"repo {fmt_bytes(rs_after['bytes'], 2)}", flush=True)
        problems: list[str] = []
        again = rep.vs("prune", *policy, "--grace", "0s", at=at + 60)[1]
        if again["forgotten"] or again["deleted_packs"] or again["deleted_index_segments"]:
            problems.append(f"a second prune with the same policy forgot "
                            f"{len(again['forgotten'])} snapshots, deleted "
                            f"{again['deleted_packs']} packs")
        if vs_after.get("snapshots_objects", 0) != len(kept):
            problems.append(f"prune reports {len(kept)} kept snapshots, snapshots/ holds "
                            f"{vs_after.get('snapshots_objects', 0)}")
        vs_times = sorted(rep.vs_snaps[sid] for sid in kept)
        rs_times = rep.restic_snapshot_times()
        checked = rep.check_vs(at + 3600, kept, a.check_sample, problems)
        rep.restic("check", "--read-data")
        print(f"checked: vaultsync verify --read-data 100, {checked} kept snapshots checked "
              f"out and compared, log; restic check --read-data", flush=True)
        r["vaultsync"] = {"snapshots_before": vs_before.get("snapshots_objects", 0),
                          "snapshots_after": len(kept), "before": vs_before,
                          "after": vs_after, "prune_s": vs_prune_s,
                          "replay_s": sum(rep.vs_s), "prune_report": prune,
                          "second_prune_report": again}
        r["restic"] = {"snapshots_before": len(rs_times_before),
                       "snapshots_after": len(rs_times), "before": rs_before,
                       "after": rs_after, "prune_s": rs_prune_s,
                       "replay_s": sum(rep.restic_s)}
        only_vs = sorted(set(vs_times) - set(rs_times))
        only_rs = sorted(set(rs_times) - set(vs_times))
        r["kept_same"] = not only_vs and not only_rs
        r["kept_only_vaultsync"] = [stamp(t + 60) for t in only_vs]
        r["kept_only_restic"] = [stamp(t + 60) for t in only_rs]
        r["checked_snapshots"] = checked
        r["problems"] = problems
        elapsed, load1 = time.perf_counter() - t0, os.getloadavg()[0]
        r["elapsed_s"] = round(elapsed, 1)
    finally:
        if a.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    git, dirty, argv = provenance("bench_prune.py")
    same = ("the same snapshots" if r["kept_same"] else
            f"different snapshots: only vaultsync keeps {r['kept_only_vaultsync'][:5]}, "
            f"only restic keeps {r['kept_only_restic'][:5]}")
    knobs = " ".join(f"{k}={v}" for k, v in sorted(os.environ.items())
                     if k.startswith("VAULTSYNC_") and not k.startswith("VAULTSYNC_BENCH"))
    checks = ("`vaultsync verify --read-data 100`; the newest and "
              f"{r['checked_snapshots'] - 1} other kept snapshots checked out by id and compared "
              "byte for byte with their step; `vaultsync log` lists every kept snapshot; "
              "`restic check --read-data`")
    lines = [BEGIN, "",
             f"- date: {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
             f"- machine: nproc {sh('nproc')}, Python {sys.version.split()[0]}, "
             f"{sh('restic version')}, vaultsync at {git}{dirty}"
             f"{f' with {knobs}' if knobs else ''}; "
             f"1-min load average {load0:.2f} at start, {load1:.2f} at end",
             f"- command: `{argv}` (whole run {elapsed:.0f} s)",
             f"- history: {source}; {r['steps']} steps from {r['first']} to {r['last']} UTC; "
             f"the vault ends with {r['files']} files, {fmt_bytes(r['vault_bytes'], 2)}",
             f"- policy: `{r['policy']}`; `vaultsync prune ... --grace 0s` (both phases in one "
             f"run) and `restic forget --prune`, an hour after the last step; "
             f"they kept {same}",
             "", *table(r), "",
             "Repository sizes are apparent bytes of every file in the repository folder, "
             "objects are files. *replay s/step* is the mean wall time of one "
             "`vaultsync sync` / `restic backup` over the history, "
             + ("one after the other." if a.serial else
                "the two running side by side (each reads the vault and writes its own "
                "repository), so it is indicative only."),
             "", f"Checked after prune: {checks}. "
             + ("All passed." if not r["problems"] else
                "**Problems found:**"), *(f"- {p}" for p in r["problems"]), "", END]
    print("\n".join(lines[lines.index("") + 1:-2]))
    if a.json:
        doc = json.dumps(r, indent=1)
        if a.json == "-":
            print(doc)
        else:
            Path(a.json).write_text(doc + "\n")
    if a.out:
        write_section(Path(a.out), BEGIN, END, lines)
        print(f"wrote {a.out}")
    if r["problems"]:
        sys.exit("PROBLEMS:\n" + "\n".join(f"- {p}" for p in r["problems"]))


if __name__ == "__main__":
    main()
