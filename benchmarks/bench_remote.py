#!/usr/bin/env python3
"""vaultsync against rclone and restic over S3 (SeaweedFS), WebDAV (Apache) and SFTP (OpenSSH).

    python benchmarks/bench_remote.py [--files N] [--repeat K] [--backends s3,webdav,sftp]
    python benchmarks/bench_remote.py --quick --out /tmp/b.md     # 200 files, K=1: CI smoke

Starts real servers on 127.0.0.1 with tests/backends/servers.py (SeaweedFS `weed mini`,
Apache mod_dav, OpenSSH sshd) and puts a counting proxy (benchmarks/countproxy.py) in
front of each: every tool talks to the server through it, so connections, bytes each way
and HTTP requests by method are counted the same way for all three. For SFTP the proxy
counts bytes (SSH is encrypted); the requests come from the server's own log: sshd runs
the external sftp-server with `-l DEBUG3`, which logs each request it serves.

One seeded vault (bench_local's generator: 0.5-4 KiB notes, 100 per folder, attachments,
one of 20 MiB). Each round, per backend, from empty destinations, every tool in turn:

  initial  vaultsync init + sync; rclone sync; restic init + backup
  clone    a second replica from the remote into an empty folder: vaultsync clone;
           rclone copy remote -> folder; restic restore latest (fresh cache)
  nochange sync again, nothing changed (restic: backup again)
  change   10 notes edited, 1 KiB appended to the 20 MiB attachment, a folder of notes
           renamed (bench_local.small_change); then sync / rclone sync / restic backup
  second   the second replica takes the change: vaultsync sync on the clone; rclone sync
           remote -> replica; restic restore latest into an empty folder (a full restore:
           restic 0.14 can neither skip unchanged files nor delete moved ones)

Every second replica is compared byte for byte with the source after clone and second.
restic is a backup (encrypted, deduplicated, one-way): its clone and second rows are full
restores. Without a native WebDAV backend, restic reaches WebDAV through rclone
(`-r rclone:REMOTE:path`, i.e. `rclone serve restic --stdio` behind it), so the requests
are rclone's on restic's behalf. Reported: medians over the rounds of wall time, requests
(up = those that change the remote, down = the rest), bytes each way and connections,
with ratios to rclone. Results go between the bench_remote markers in --out. A failed
command or a differing replica is listed under the tables and the script exits 1; a
missing server or tool stops it at once (exit 2).
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
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench_local import SEED, VS_DEFAULT, VS_ENV, check_vaultsync, generate, small_change, tree_diff
from benchkit import ROOT, fmt_bytes, provenance, sh, write_section
from countproxy import CountProxy, Counts

sys.path.insert(0, str(ROOT))
import pytest  # noqa: E402 - servers.py reports a server that cannot start with pytest.fail

from tests.backends import servers  # noqa: E402

BEGIN, END = "<!-- bench_remote:begin -->", "<!-- bench_remote:end -->"
BACKENDS = {"s3": "S3: SeaweedFS `weed mini`", "webdav": "WebDAV: Apache mod_dav",
            "sftp": "SFTP: OpenSSH sshd"}
TOOLS = ("vaultsync", "rclone", "restic")
STEPS = {"initial": "initial upload", "clone": "clone", "nochange": "no change",
         "change": "small change", "second": "second device"}
RESTORES = ("clone", "second")  # restic's rows there are full restores
BUCKET = "bench"
RESTIC_PASSWORD = "vs-bench-restic"
# requests that change the remote; every other request counts as "down"
HTTP_UP = {"PUT", "POST", "DELETE", "MKCOL", "MOVE", "COPY", "PROPPATCH", "LOCK", "UNLOCK"}
SFTP_UP = {"write", "mkdir", "rmdir", "remove", "rename", "posix-rename", "setstat",
           "fsetstat", "lsetstat", "fsync", "symlink", "hardlink", "open-write"}
SFTP_REQUEST = re.compile(r"^debug\d: request \d+: (?!sent )([a-z-]+)(.*)$")


# ------------------------------------------------------------------------------ running

@dataclass
class Sample:
    seconds: float
    code: int
    counts: Counts
    requests: Counter[str]  # by method (HTTP) or SFTP request kind
    out: str = ""
    report: dict = field(default_factory=dict)  # vaultsync's --json document

    def up(self, ups: set[str]) -> int:
        return sum(n for k, n in self.requests.items() if k in ups)

    def down(self, ups: set[str]) -> int:
        return sum(n for k, n in self.requests.items() if k not in ups)


def run(cmd: list[str], env: dict[str, str],
        cwd: Path | None = None) -> tuple[float, int, str, dict]:
    """One command, timed: (seconds, exit code, its output if it failed, its --json
    document if it printed one)."""
    os.sync()  # no command waits on another's (or the generator's) dirty pages
    t = time.perf_counter()
    p = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    dt = time.perf_counter() - t
    if p.returncode != 0:
        return dt, p.returncode, f"{' '.join(cmd)}\n{p.stdout[-1500:]}{p.stderr[-1500:]}", {}
    return dt, 0, "", json.loads(p.stdout) if p.stdout.startswith("{") else {}


def sftp_requests(lines: list[str]) -> Counter[str]:
    """SFTP requests in sftp-server's DEBUG3 log lines: one `request N: KIND` line each
    (opens split into open-read / open-write by their flags)."""
    kinds: Counter[str] = Counter()
    for line in lines:
        m = SFTP_REQUEST.match(line)
        if m:
            kind = m.group(1)
            if kind == "open":
                flags = int(m.group(2).split()[-1]) if m.group(2).split() else 0
                kind = "open-write" if flags & 0x02 else "open-read"  # SSH2_FXF_WRITE
            kinds[kind] += 1
        elif "process_extended_get_users_groups_by_id: uids len" in line:
            kinds["users-groups-by-id"] += 1
    return kinds


class Backend:
    """One server with a counting proxy in front, and how each tool reaches it."""

    def __init__(self, kind: str, root: Path, home: Path) -> None:
        self.kind, self.root, self.home = kind, root, home
        self.sftp_log: Path | None = None
        self.env: dict[str, str] = {}
        self.rclone_env: dict[str, str] = {}
        if kind == "s3":
            self.server = servers.start_seaweedfs(root)
            self._s3_bucket()
        elif kind == "webdav":
            self.server = servers.start_apache(root)
        else:
            self.sftp_log = root / "run" / "sftp-requests.log"
            self.server = servers.start_sshd(root, sftp_log=self.sftp_log)
        self.proxy = CountProxy(self.server.port, http=kind != "sftp")
        self._log_at = 0
        self._configure()

    def _s3_bucket(self) -> None:
        """An open port is not a working S3 yet (SeaweedFS needs its volume server):
        create the bucket and write one object, directly, retrying for a bounded time."""
        import s3fs

        fs = s3fs.S3FileSystem(key=servers.S3_KEY, secret=servers.S3_SECRET,
                               skip_instance_cache=True,
                               endpoint_url=self.server.info["endpoint"])
        deadline = time.monotonic() + servers.STARTUP_TIMEOUT
        while True:
            try:
                if not fs.exists(BUCKET):
                    fs.mkdir(BUCKET)
                fs.pipe_file(f"{BUCKET}/probe", b"ok")
                fs.rm_file(f"{BUCKET}/probe")
                return
            except Exception as exc:  # noqa: BLE001 - reported on timeout
                if time.monotonic() > deadline:
                    raise SystemExit(f"{self.server.name} never accepted a write ({exc!r}); "
                                     f"log tail:\n{self.server.log_tail()}") from exc
                time.sleep(0.2)

    def _configure(self) -> None:
        port, srv = self.proxy.port, self.server
        rc = "RCLONE_CONFIG_BENCH_"
        if self.kind == "s3":
            self.env = {"AWS_ACCESS_KEY_ID": servers.S3_KEY,
                        "AWS_SECRET_ACCESS_KEY": servers.S3_SECRET,
                        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
            self.rclone_env = {rc + "TYPE": "s3", rc + "PROVIDER": "SeaweedFS",
                               rc + "ENDPOINT": f"http://127.0.0.1:{port}",
                               rc + "ACCESS_KEY_ID": servers.S3_KEY,
                               rc + "SECRET_ACCESS_KEY": servers.S3_SECRET,
                               rc + "REGION": "us-east-1"}
        elif self.kind == "webdav":
            self.env = {"VAULTSYNC_WEBDAV_USER": servers.DAV_USER,
                        "VAULTSYNC_WEBDAV_PASSWORD": servers.DAV_PASSWORD}
            obscured = subprocess.run(["rclone", "obscure", servers.DAV_PASSWORD],
                                      capture_output=True, text=True, check=True).stdout
            self.rclone_env = {rc + "TYPE": "webdav", rc + "URL": f"http://127.0.0.1:{port}/",
                               rc + "VENDOR": "other", rc + "USER": servers.DAV_USER,
                               rc + "PASS": obscured.strip()}
        else:
            kh = self.root / "ssh" / "known_hosts_proxy"
            kh.write_text(f"[127.0.0.1]:{port} {srv.info['host_key_line']}\n")
            ssh = self.home / ".ssh"
            ssh.mkdir(parents=True, exist_ok=True)
            (ssh / "config").write_text(
                f"Host 127.0.0.1\n  Port {port}\n  User root\n  IdentityFile {srv.info['key']}\n"
                f"  IdentitiesOnly yes\n  UserKnownHostsFile {kh}\n")
            self.ssh_cmd = (f"ssh -F /dev/null -p {port} -i {srv.info['key']} "
                            f"-o IdentitiesOnly=yes -o UserKnownHostsFile={kh} "
                            "-o StrictHostKeyChecking=yes -o BatchMode=yes root@127.0.0.1 -s sftp")
            self.rclone_env = {rc + "TYPE": "sftp", rc + "HOST": "127.0.0.1",
                               rc + "PORT": str(port), rc + "USER": "root",
                               rc + "KEY_FILE": srv.info["key"],
                               rc + "KNOWN_HOSTS_FILE": str(kh),
                               rc + "DISABLE_HASHCHECK": "true"}

    # where each tool keeps its copy on the server, per round
    def vs_url(self, r: int) -> str:
        port = self.proxy.port
        if self.kind == "s3":
            return f"s3://{BUCKET}/vaultsync-{r}"
        if self.kind == "webdav":
            return f"webdav://127.0.0.1:{port}/vaultsync-{r}"
        return f"sftp://root@127.0.0.1:{port}{self.server.info['data']}/vaultsync-{r}"

    def rclone_path(self, r: int) -> str:
        if self.kind == "s3":
            return f"bench:{BUCKET}/rclone-{r}"
        if self.kind == "webdav":
            return f"bench:rclone-{r}"
        return f"bench:{self.server.info['data']}/rclone-{r}"

    def restic_repo(self, r: int) -> list[str]:
        if self.kind == "s3":
            return ["-r", f"s3:http://127.0.0.1:{self.proxy.port}/{BUCKET}/restic-{r}"]
        if self.kind == "webdav":
            return ["-r", f"rclone:bench:restic-{r}"]
        return ["-r", f"sftp:root@127.0.0.1:{self.server.info['data']}/restic-{r}",
                "-o", f"sftp.command={self.ssh_cmd}"]

    def measure(self, cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> Sample:
        self.proxy.reset()
        if self.sftp_log is not None:
            self._log_at = self.sftp_log.stat().st_size if self.sftp_log.exists() else 0
        seconds, code, out, report = run(cmd, env, cwd)
        counts = self.proxy.take()
        if self.sftp_log is None:
            requests = Counter(counts.methods)
        else:
            time.sleep(0.05)  # sftp-server writes its last lines as its session ends
            with open(self.sftp_log, errors="replace") as f:
                f.seek(self._log_at)
                requests = sftp_requests(f.read().splitlines())
        return Sample(seconds, code, counts, requests, out, report)

    def stop(self) -> None:
        self.proxy.stop()
        self.server.stop()


# ------------------------------------------------------------------------------ the bench

class Bench:
    def __init__(self, tmp: Path, src: Path, vs_exe: str) -> None:
        self.tmp, self.src, self.vs_exe = tmp, src, vs_exe
        self.home = tmp / "home"
        self.home.mkdir()
        self.results: dict[str, dict[str, dict[str, list[Sample]]]] = {}
        self.problems: list[str] = []
        self.load_max = 0.0
        clean = {k: v for k, v in os.environ.items()
                 if not k.startswith(("AWS_", "VAULTSYNC_", "RCLONE_", "RESTIC_"))
                 and k not in ("SSH_AUTH_SOCK",)}
        # every tool: a scratch HOME (no ~/.ssh, ~/.aws, ~/.config/rclone of the user)
        absent = str(tmp / "absent")  # never created
        # rclone's remotes come from RCLONE_CONFIG_BENCH_* variables; it writes what it
        # detects (the SFTP shell type) into this file, as into a user's config
        (tmp / "rclone.conf").write_text("")
        self.base = {**clean, "HOME": str(self.home), "AWS_EC2_METADATA_DISABLED": "true",
                     "AWS_CONFIG_FILE": absent, "AWS_SHARED_CREDENTIALS_FILE": absent,
                     "RCLONE_CONFIG": str(tmp / "rclone.conf"),
                     "RESTIC_PASSWORD": RESTIC_PASSWORD}

    def d(self, tool: str, which: str) -> Path:
        return self.tmp / f"{tool}-{which}"

    def record(self, be: Backend, step: str, tool: str, s: Sample) -> None:
        self.load_max = max(self.load_max, os.getloadavg()[0])
        self.results.setdefault(be.kind, {}).setdefault(step, {}).setdefault(tool, []).append(s)
        if s.code != 0:
            self.problems.append(f"{be.kind}/{step}/{tool}: exit {s.code}: {s.out.strip()}")
        if be.proxy.open_connections:
            self.problems.append(f"{be.kind}/{step}/{tool}: {be.proxy.open_connections} "
                                 "connections still open after the command: counts incomplete")
        if s.counts.unparsed:
            self.problems.append(f"{be.kind}/{step}/{tool}: {s.counts.unparsed} HTTP streams "
                                 "the proxy could not follow: requests undercounted")

    # the three tools, each as the user would run it
    def vs(self, be: Backend, *args: str) -> Sample:
        env = {**self.base, **VS_ENV_EXTRA, **be.env}
        return be.measure([self.vs_exe, *args], env)

    def rclone(self, be: Backend, *args: str) -> Sample:
        env = {k: v for k, v in {**self.base, **be.rclone_env}.items() if k != "AWS_CA_BUNDLE"}
        # (Debian's rclone 1.60 fails to build its S3 client while AWS_CA_BUNDLE is set)
        return be.measure(["rclone", *args], env)

    def restic(self, be: Backend, cache: str, *args: str, cwd: Path | None = None) -> Sample:
        env = {k: v for k, v in {**self.base, **be.env, **be.rclone_env,
                                 "RESTIC_CACHE_DIR": str(self.tmp / f"restic-cache-{cache}")
                                 }.items() if k not in ("AWS_ENDPOINT_URL", "AWS_CA_BUNDLE")}
        return be.measure(["restic", *args], env, cwd)

    def round(self, be: Backend, r: int, folders: list[Path], big: Path,
              rng: random.Random, progress: Callable[[str], None]) -> None:
        src, url, rpath, repo = self.src, be.vs_url(r), be.rclone_path(r), be.restic_repo(r)
        for d in self.tmp.iterdir():
            if d.name.startswith(("vs-", "rclone-", "restic-")):
                shutil.rmtree(d)
        shutil.rmtree(src / ".vaultsync", ignore_errors=True)
        excl_rc = ["--exclude", "/.vaultsync/**"]
        excl_rs = [f"--exclude={src / '.vaultsync'}"]
        backup = ["backup", ".", "--host", "bench", *excl_rs]

        def both(a: Sample, b: Sample) -> Sample:
            return Sample(a.seconds + b.seconds, a.code or b.code, _sum(a.counts, b.counts),
                          a.requests + b.requests, a.out or b.out, b.report)

        # initial
        init = self.vs(be, "-C", str(src), "init", "--remote", url, "--device", "bench")
        self.record(be, "initial", "vaultsync",
                    both(init, self.vs(be, "-C", str(src), "sync", "--json")))
        self.record(be, "initial", "rclone", self.rclone(be, "sync", str(src), rpath, *excl_rc))
        init = self.restic(be, "1", *repo, "init")
        self.record(be, "initial", "restic",
                    both(init, self.restic(be, "1", *repo, *backup, cwd=src)))
        progress("initial")
        # clone: a second device made from the remote
        self.record(be, "clone", "vaultsync", self.vs(be, "clone", url, str(self.d("vs", "dev2")),
                                                      "--device", "dev2", "--json"))
        self.record(be, "clone", "rclone",
                    self.rclone(be, "copy", rpath, str(self.d("rclone", "dev2"))))
        self.record(be, "clone", "restic", self.restic(
            be, "2", *repo, "restore", "latest", "--target", str(self.d("restic", "dev2"))))
        self.check(be, "clone")
        progress("clone")
        # no change
        self.record(be, "nochange", "vaultsync", self.vs(be, "-C", str(src), "sync", "--json"))
        self.record(be, "nochange", "rclone", self.rclone(be, "sync", str(src), rpath, *excl_rc))
        self.record(be, "nochange", "restic", self.restic(be, "1", *repo, *backup, cwd=src))
        progress("no change")
        # small change, made once for all three tools
        small_change(src, folders, big, r, rng)
        self.record(be, "change", "vaultsync", self.vs(be, "-C", str(src), "sync", "--json"))
        self.record(be, "change", "rclone", self.rclone(be, "sync", str(src), rpath, *excl_rc))
        self.record(be, "change", "restic", self.restic(be, "1", *repo, *backup, cwd=src))
        progress("small change")
        # the second device takes it
        self.record(be, "second", "vaultsync",
                    self.vs(be, "-C", str(self.d("vs", "dev2")), "sync", "--json"))
        self.record(be, "second", "rclone",
                    self.rclone(be, "sync", rpath, str(self.d("rclone", "dev2"))))
        shutil.rmtree(self.d("restic", "dev2"))  # restic 0.14 restores into an empty folder
        self.record(be, "second", "restic", self.restic(
            be, "2", *repo, "restore", "latest", "--target", str(self.d("restic", "dev2"))))
        self.check(be, "second device")
        progress("second device")

    def check(self, be: Backend, when: str) -> None:
        for tool in TOOLS:
            d = self.d("vs" if tool == "vaultsync" else tool, "dev2")
            diff = tree_diff(self.src, d) if d.exists() else "no replica"
            if diff:
                self.problems.append(f"{be.kind}: after {when}, {tool}'s second replica: {diff}")


VS_ENV_EXTRA = {"PYTHONPATH": VS_ENV["PYTHONPATH"]}


def _sum(a: Counts, b: Counts) -> Counts:
    return Counts(a.connections + b.connections, a.bytes_up + b.bytes_up,
                  a.bytes_down + b.bytes_down, a.methods + b.methods, a.unparsed + b.unparsed)


# ------------------------------------------------------------------------------ report

def med(samples: list[Sample], f: Callable[[Sample], float]) -> float | None:
    if not samples or any(s.code != 0 for s in samples):
        return None
    return statistics.median(f(s) for s in samples)


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None:
        return "-"
    return f"{a / b:.2f}x" if b else "-"


def table(b: Bench, kind: str) -> list[str]:
    ups = SFTP_UP if kind == "sftp" else HTTP_UP
    word = "SFTP requests" if kind == "sftp" else "requests"
    out = [f"| step | tool | wall s | wall / rclone | {word} up / down | requests / rclone | "
           "bytes up / down | bytes / rclone | conns | requests by kind |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    res = b.results.get(kind, {})
    for step, label in STEPS.items():
        by = res.get(step, {})

        def m(tool: str, f: Callable[[Sample], float], by=by) -> float | None:
            return med(by.get(tool, []), f)
        for tool in TOOLS:
            samples = by.get(tool, [])
            if not samples:
                continue
            t = m(tool, lambda s: s.seconds)
            up, down = m(tool, lambda s: s.up(ups)), m(tool, lambda s: s.down(ups))
            bu, bd = m(tool, lambda s: s.counts.bytes_up), m(tool, lambda s: s.counts.bytes_down)
            conns = m(tool, lambda s: s.counts.connections)
            req = None if up is None or down is None else up + down
            nbytes = None if bu is None or bd is None else bu + bd
            peer = tool != "rclone"
            rc_t = m("rclone", lambda s: s.seconds)
            rc_r = m("rclone", lambda s: s.up(ups) + s.down(ups))
            rc_b = m("rclone", lambda s: s.counts.bytes_up + s.counts.bytes_down)
            kinds = Counter(samples[len(samples) // 2].requests) if t is not None else Counter()
            name = f"{tool} (full restore)" if tool == "restic" and step in RESTORES else tool
            cells = [label, name,
                     "FAIL" if t is None else f"{t:.2f}",
                     ratio(t, rc_t) if peer else "",
                     "-" if req is None else f"{up:.0f} / {down:.0f}",
                     ratio(req, rc_r) if peer else "",
                     "-" if nbytes is None else f"{fmt_bytes(bu)} / {fmt_bytes(bd)}",
                     ratio(nbytes, rc_b) if peer else "",
                     "-" if conns is None else f"{conns:.0f}",
                     ", ".join(f"{k} {n}" for k, n in kinds.most_common(6))
                     + (", ..." if len(kinds) > 6 else "")]
            out.append("| " + " | ".join(cells) + " |")
    own = []
    for step, label in STEPS.items():
        reps = [s.report["traffic"] for s in res.get(step, {}).get("vaultsync", [])
                if s.report.get("traffic")]
        if reps:
            t = reps[len(reps) // 2]
            label = "initial upload (the sync, not init)" if step == "initial" else label
            own.append(f"{label} {t['requests_up']} / {t['requests_down']}, "
                       f"{fmt_bytes(t['bytes_up'])} / {fmt_bytes(t['bytes_down'])}")
    if own:
        out += ["", "vaultsync's own count (`--json` traffic: store operations up / down, "
                "payload bytes up / down): " + "; ".join(own) + "."]
    return out


HEADER = [
    "Written by `benchmarks/bench_remote.py`. Servers on 127.0.0.1 (started by the script "
    "through `tests/backends/servers.py`), each behind a counting proxy "
    "(`benchmarks/countproxy.py`) that every tool goes through: *conns* are TCP "
    "connections, *bytes* are counted on the wire each way (HTTP headers included; for "
    "SFTP, the encrypted SSH stream). HTTP requests are counted by method from the client "
    "stream; SFTP requests from the server's log (`sftp-server -l DEBUG3`: one line per "
    "request). *up* = requests that change the remote (HTTP PUT, POST, DELETE, MKCOL, "
    "MOVE, COPY, PROPPATCH; SFTP open for writing, write, mkdir, remove, rename, setstat, "
    "fsync), *down* = the rest (GET, HEAD, PROPFIND; SFTP open for reading, read, close, "
    "stat, opendir, readdir, realpath, ...). Ratios are to rclone in the same step: wall "
    "time, requests (up + down) and bytes (up + down).",
    "",
    "Steps, in this order each round, from empty destinations: *initial upload* (vaultsync "
    "`init` + `sync`; `rclone sync`; `restic init` + `backup`), *clone* (a second replica "
    "from the remote in an empty folder: `vaultsync clone`; `rclone copy`; `restic restore "
    "latest` with an empty cache), *no change*, *small change* (10 notes edited, 1 KiB "
    "appended to the 20 MiB attachment, a folder of 100 notes renamed), *second device* "
    "(`vaultsync sync` on the clone; `rclone sync` remote -> second replica; restic: a "
    "full `restore latest` into an empty folder). Both second replicas of every tool are "
    "compared byte for byte with the source after *clone* and after *second device*. "
    "restic is a backup tool (encrypted, deduplicated, one-way); its *clone* and *second "
    "device* rows are full restores, not syncs. Tools run as a user would: vaultsync with "
    "its defaults (transfers: 8 S3, 4 WebDAV, 1 SFTP); rclone with its defaults "
    "(`--transfers 4 --checkers 8`; WebDAV vendor `other`, so size-only comparison; SFTP "
    "with `disable_hashcheck`, which avoids one remote `md5sum` per file); restic with its "
    "defaults; restic reaches WebDAV through rclone (`-r rclone:...`, as restic has no "
    "WebDAV backend), so its WebDAV requests are rclone's on its behalf.",
]


# ------------------------------------------------------------------------------ main

def versions() -> str:
    weed = sh(f"{servers.SERVER_VENV}/bin/weed version").split()  # version 8000GB 4.48 ...
    ssh = sh("dpkg-query -W -f '${Version}' openssh-server")
    return (f"{sh('rclone version')}, {sh('restic version').split(' compiled')[0]}, "
            f"SeaweedFS {weed[2] if len(weed) > 2 else '?'}, "
            f"{sh('/usr/sbin/apache2 -v').split(': ', 1)[-1]}, "
            f"{sh('/usr/sbin/sshd -V 2>&1').split(',')[0]} (Debian {ssh})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=1, help="rounds (K); numbers are medians")
    ap.add_argument("--backends", default="s3,webdav,sftp")
    ap.add_argument("--quick", action="store_true", help="200 files, 1 round (a smoke run)")
    ap.add_argument("--out", default=None, help="default docs/benchmarks.md (--quick: none)")
    ap.add_argument("--vaultsync", metavar="EXE", default=VS_DEFAULT)
    ap.add_argument("--keep", action="store_true", help="keep the scratch folders")
    a = ap.parse_args()
    if a.quick:
        a.files, a.repeat = 200, 1
    kinds = [k.strip() for k in a.backends.split(",") if k.strip()]
    if not kinds or any(k not in BACKENDS for k in kinds):
        sys.exit(f"--backends: a comma-separated list of {', '.join(BACKENDS)}")
    out = a.out or (None if a.quick else str(ROOT / "docs" / "benchmarks.md"))
    for tool in ("rclone", "restic", "ssh"):
        if not shutil.which(tool):
            print(f"{tool} not found: run scripts/install-servers.sh", file=sys.stderr)
            sys.exit(2)
    vs_py = check_vaultsync(a.vaultsync)
    subprocess.run([vs_py, "-m", "compileall", "-q", str(ROOT / "vaultsync")], check=True,
                   env=VS_ENV, stdout=subprocess.DEVNULL)
    rng = random.Random(SEED)
    tmp = Path(tempfile.mkdtemp(prefix="vaultsync-bench-remote-", dir="/tmp"))
    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    src = tmp / "vault"
    src.mkdir()
    folders, big = generate(src, a.files, rng)
    total = sum(p.stat().st_size for p in src.rglob("*") if p.is_file())
    n_att = max(2, a.files // 500)
    data = (f"{a.files - n_att} notes of 0.5-4 KiB (100 per folder) + {n_att} attachments "
            f"(one of 20 MiB) = {a.files} files, {fmt_bytes(total)}, seed {SEED}")
    print(f"{data}; under {tmp}", flush=True)
    b = Bench(tmp, src, a.vaultsync)
    try:
        for kind in kinds:
            root = servers.make_scratch()
            try:
                be = Backend(kind, root, b.home)
            except pytest.fail.Exception as exc:  # a server that cannot start: no result
                print(f"{kind}: {exc}", file=sys.stderr)
                sys.exit(2)
            try:
                for r in range(a.repeat):
                    def progress(step: str, kind: str = kind, r: int = r) -> None:
                        print(f"{kind} round {r + 1}/{a.repeat}: {step} done at "
                              f"{time.perf_counter() - t0:.0f} s", flush=True)
                    b.round(be, r, folders, big, rng, progress)
            finally:
                be.stop()
                if not a.keep:
                    servers.remove_scratch(root)
                else:
                    print(f"kept {root}")
        elapsed, load1 = time.perf_counter() - t0, os.getloadavg()[0]
    finally:
        if a.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    git, dirty, argv = provenance("bench_remote.py")
    code_commit = sh(f"git -C {ROOT} log -1 --format=%h -- vaultsync pyproject.toml")
    body: list[str] = []
    for kind in kinds:
        body += [f"#### {BACKENDS[kind]}", "", *table(b, kind), ""]
    print("\n".join(body), flush=True)
    lines = [BEGIN, "", *HEADER, "",
             f"- date: {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
             f"- machine: nproc {sh('nproc')}, Python {sys.version.split()[0]}, {versions()}, "
             f"vaultsync at {git}{dirty} (vaultsync/ last changed in {code_commit}); 1-min "
             f"load average {load0:.2f} at start, {load1:.2f} at end, {b.load_max:.2f} at "
             "most (after each command)",
             f"- command: `{argv}` (whole run {elapsed:.0f} s, servers' start and stop "
             "included)",
             f"- data: {data}; rounds: {a.repeat}", "", *body]
    if b.problems:
        lines += ["**Problems in this run:**", "",
                  *(f"- {p.splitlines()[0]}" for p in b.problems), ""]
    lines.append(END)
    if out:
        write_section(Path(out), BEGIN, END, lines)
        print(f"wrote {out} ({elapsed:.0f} s)")
    for p in b.problems:
        print(f"PROBLEM: {p}", file=sys.stderr)
    sys.exit(1 if b.problems else 0)


if __name__ == "__main__":
    main()
