"""Model test, as an adversary: three devices, random edits, deletes, renames and reverts,
syncs, pushes and pulls (some concurrent), and the edges of design.md ("Edges",
"Safety stops"): unreadable files and folders, wrong clocks, a vault that lost its
files, a recreated or re-pointed repository, a re-join, kills, a full disk. After the
faults are lifted and everyone syncs twice, all devices are identical, a fresh clone
equals them, `verify` finds nothing, and no version was lost (tests/versions.py states
the invariant; it is checked after every step too). Every run is also held to the
command line's contract: exit 0, 1 or 4 (7 on a full disk, saying "local"), never a
traceback; the safety stop where design.md requires it (every file of the base gone and
nothing moved: exit 4, this device's head unchanged); SIGTERM exits 130 and leaves no
temporary files.

Runs are reproducible: a virtual clock and fixed device ids (tests/adversary.py), and
kills at the N-th call into vaultsync rather than after a delay.

The actions are the table ACTIONS below; the world they act on (clocks, privileges,
read faults, disks, killable runs) is tests/adversary.py.

Knobs (environment):
  VAULTSYNC_MODEL_EXAMPLES  random examples to run (default 150: under two minutes)
  VAULTSYNC_MODEL_STEPS     most actions per example (default 30)
  VAULTSYNC_MODEL_ACTIONS   comma-separated action names to draw from (default: all)
  VAULTSYNC_MODEL_SKIP      comma-separated action names not to draw
  VAULTSYNC_MODEL_RUN       "examples": only the explicit examples (the defects of issue 9);
                            "random": only generated ones (default: both)
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import signal
import stat
import tempfile
import threading
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, event, example, given, note, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from tests.adversary import (
    CLOCK,
    READ_FAULTS,
    STATE_DIR,
    Disk,
    RepositoryReader,
    World,
    acting_as,
    files_under,
    heads_bytes,
    run_cli,
    temp_files,
)
from tests.conftest import tree_state
from tests.versions import Versions
from vaultsync.engine import oneway
from vaultsync.engine import prune as prune_module
from vaultsync.engine import sync as sync_module
from vaultsync.errors import VaultsyncError
from vaultsync.store.url import normalize_url

EXAMPLES = int(os.environ.get("VAULTSYNC_MODEL_EXAMPLES", "150"))
STEPS = int(os.environ.get("VAULTSYNC_MODEL_STEPS", "30"))
ONLY = {a for a in os.environ.get("VAULTSYNC_MODEL_ACTIONS", "").split(",") if a}
SKIP = {a for a in os.environ.get("VAULTSYNC_MODEL_SKIP", "").split(",") if a}
RANDOM = [Phase.generate, Phase.target, Phase.shrink]
PHASES = {"examples": [Phase.explicit], "random": RANDOM,
          "": [Phase.explicit, Phase.reuse, *RANDOM]}[os.environ.get("VAULTSYNC_MODEL_RUN", "")]

PATHS = ["a.md", "b.md", "d/c.md", "d/e.md", "e/f.md"]
FOLDERS = ["d", "e"]
REPLICAS = 3
SKEWS = (0, -86_400, 3_600, -600)  # seconds: right, a day behind, an hour ahead, 10 min behind
STEP_SECONDS = 10  # the virtual clock advances this much between steps
# A small sync makes 1,000-2,500 calls into vaultsync: kills land all over it, from the
# 10th call on (a handler for SIGTERM cannot be in place before the command line starts).
KILL_CALLS = 3000
COMMANDS = {"sync": sync_module.sync, "push": oneway.push, "pull": oneway.pull}


# ---- the devices and the model ----------------------------------------------------------


@dataclass
class Device:
    index: int
    root: Path  # the vault
    disk: Disk  # the vault's own small disk (tmpfs), which holds `stash` too
    stash: Path  # files the vault lost (an unmounted folder), until `remount`
    skew_ns: int = 0
    remote: str = "R"
    unreadable: dict[str, int] = field(default_factory=dict)  # path -> mode before chmod 000
    faults: dict[str, str] = field(default_factory=dict)  # path -> injected read fault
    mtimes: dict[str, tuple[int, bytes]] = field(default_factory=dict)  # before the fault
    lost: bool = False
    full: bool = False

    @property
    def name(self) -> str:
        return f"r{self.index}"

    def can_touch(self, rel: str) -> bool:
        """Whether the user can change `rel`: not in a lost vault, not an unreadable path
        or inside an unreadable folder."""
        return not self.lost and not any(
            rel == u or rel.startswith(u + "/") or u.startswith(rel + "/")
            for u in [*self.unreadable, *self.faults])

    def holdings(self) -> set[bytes]:
        return set(files_under(self.root).values()) | set(files_under(self.stash).values())

    def read_faults(self) -> dict[str, str]:
        return {os.path.abspath(self.root / rel): kind for rel, kind in self.faults.items()}

    def device_id(self) -> str | None:
        try:
            with open(self.root / STATE_DIR / "config.toml", "rb") as f:
                return str(tomllib.load(f)["device_id"])
        except (OSError, KeyError, tomllib.TOMLDecodeError):
            return None


def free_path(root: Path, rel: str) -> Path:
    """Where a user puts a recovered file whose place is taken: beside it, else at the top."""
    p = Path(rel)
    for k in range(1, 100):
        for cand in (root / p.parent / f"{p.stem}.recovered-{k}{p.suffix}",
                     root / f"recovered-{k}-{p.name}"):
            if not cand.exists() and not blocked(root, cand):
                return cand
    raise AssertionError("no free name")


def blocked(root: Path, path: Path) -> bool:
    """A folder on the way to `path` is a file (or path is a folder)."""
    return path.is_dir() or any(p.is_file() for p in path.parents if root in p.parents)


class Model:
    def __init__(self, tmp: Path, skews: tuple[int, ...]) -> None:
        self.tmp = tmp
        self.remotes = {"R": tmp / "remote", "S": tmp / "remote-s"}
        self.v = Versions()
        self.reader = RepositoryReader()
        self.devices = []
        for i, skew in enumerate(skews):
            disk = Disk(tmp / f"disk{i}")
            self.devices.append(Device(i, disk.path / "vault", disk, disk.path / "stash",
                                       skew * 10**9))
        self.step = 0
        self.held: dict[int, set[bytes]] = {}
        self.lock = threading.Lock()
        self.notes: list[tuple[str, str | None]] = []
        self.pulled: set[int] = set()  # devices that pulled in this step

    def url(self, d: Device) -> str:
        return normalize_url(str(self.remotes[d.remote]))

    def note(self, text: str, kind: str | None = None) -> None:
        """Say what happened (printed with a failing example), and count `kind` in the
        statistics (--hypothesis-show-statistics); any thread."""
        with self.lock:
            self.notes.append((f"  step {self.step}: {text}", kind))

    def flush_notes(self) -> None:
        with self.lock:
            for text, kind in self.notes:
                if currently_in_test_context():
                    note(text)
                    if kind:
                        event(kind)
                else:
                    print(text)
            self.notes.clear()

    def close(self) -> None:
        for d in self.devices:
            d.disk.close()

    # ---- setup ----------------------------------------------------------------------
    def setup(self) -> None:
        d0 = self.devices[0]
        d0.root.mkdir(parents=True)
        self.v.write(d0.root, "a.md", b"initial a", CLOCK.now_ns(d0.skew_ns), d0.name)
        self.v.write(d0.root, "d/c.md", b"initial c", CLOCK.now_ns(d0.skew_ns), d0.name)
        with acting_as(d0.skew_ns):
            oneway.init(str(d0.root), str(self.remotes["R"]), d0.name)
            sync_module.sync(str(d0.root))
        for d in self.devices[1:]:
            with acting_as(d.skew_ns):
                oneway.clone(str(self.remotes["R"]), str(d.root), d.name)
        self.check("setup")

    # ---- running commands, checked against the contract -----------------------------
    def run(self, d: Device, cmd: str, force: bool = False) -> int:
        """One command as the device's user runs it (in-process; through the real entry
        point when its disk is full); checks the exit code and the safety stops."""
        must_stop = self.must_stop(d, cmd, force)
        own = self.own_head(d)
        if cmd == "pull":
            self.pulled.add(d.index)
        if d.full:
            res = run_cli(["-C", str(d.root), cmd, *(["--force"] if force else [])],
                          skew_ns=d.skew_ns, read_faults=d.read_faults(), scratch=self.tmp)
            code, message = res.code, res.err.strip()
        else:
            code, message = self.in_process(d, cmd, force)
        self.note(f"{d.name} {cmd}{' --force' if force else ''}: exit {code} {message[:200]}",
                  f"{cmd}{' on a full disk' if d.full else ''}: exit {code}")
        self.check_exit(d, cmd, code, message, must_stop, own)
        return code

    def in_process(self, d: Device, cmd: str, force: bool) -> tuple[int, str]:
        fn = COMMANDS[cmd]
        kwargs = {"force": True} if force and "force" in inspect.signature(fn).parameters else {}
        with acting_as(d.skew_ns):
            try:
                report = fn(str(d.root), **kwargs)
            except VaultsyncError as exc:
                return exc.exit_code, exc.message
        return report.exit_code, ""

    def must_stop(self, d: Device, cmd: str, force: bool) -> bool:
        """design.md, "Safety stops": every command that commits deletes stops (exit 4,
        nothing written) unless forced, when the vault is empty but its base is not, or
        when it would delete more than 50% of the base's files (moves excluded). The model
        expects it when every base file is gone and whatever the vault holds is new (no
        file there has the bytes of a base file, so nothing is a move)."""
        if cmd not in ("sync", "push") or force:
            return False
        url = self.url(d)
        base = self.reader.base_files(d.root, url)
        if not base or any(os.path.lexists(d.root / p) for p in base):
            return False
        here = {self.reader.chunks_of(url, data) for data in files_under(d.root).values()}
        return not here & set(base.values())

    def own_head(self, d: Device) -> bytes | None:
        return heads_bytes(self.remotes[d.remote]).get(d.device_id() or "")

    def check_exit(self, d: Device, cmd: str, code: int, message: str, must_stop: bool,
                   own: bytes | None) -> None:
        where = f"step {self.step}: {d.name} {cmd}"
        allowed = {0, 1, 4} | ({7} if d.full else set())
        assert code in allowed, f"{where}: exit {code} ({message})"
        assert "Traceback" not in message, f"{where}: a traceback: {message}"
        if "No space left" in message or "disk is full" in message:
            assert code == 7, f"{where}: a full disk is exit 7 (local), not {code}: {message}"
        if code == 7:
            assert "local" in message, f"{where}: exit 7 must say the failure is local: {message}"
        if must_stop:  # on a full disk, failing first (exit 7, nothing committed) is a stop too
            assert code == 4 or (code == 7 and d.full), (
                f"{where}: every file of the base is gone from the vault (none moved), yet "
                f"{cmd} did not stop (exit {code})")
        if code == 4 or must_stop:
            assert self.own_head(d) == own, f"{where}: a stopped run wrote this device's head"

    def command(self, d: Device, cmd: str) -> int:
        """A command as a user runs it: when it stops for the deletes they made themselves,
        they confirm with --force (never when the vault lost its files)."""
        code = self.run(d, cmd)
        if code == 4 and not d.lost and cmd != "pull":
            code = self.run(d, cmd, force=True)
        return code

    # ---- the invariant (tests/versions.py), after every step ----------------------------
    def check(self, what: str) -> None:
        self.flush_notes()
        now = {d.index: d.holdings() for d in self.devices}
        for d in self.devices:
            gone = self.v.vanished(self.held.get(d.index, set()), now[d.index])
            if gone and d.index in self.pulled:  # pull may replace a version another
                gone -= self.reader.held(self.url(d), gone, but=d.device_id())  # device has
            assert not gone, (f"step {self.step} ({what}): {d.name} no longer holds "
                              f"{self.v.describe(gone)}")
        held = set().union(*now.values())
        for remote in self.remotes.values():
            if (remote / "vaultsync.json").is_file():
                held |= self.reader.held(normalize_url(str(remote)), self.v.superseded)
        back = self.v.resurrected(held)
        assert not back, f"step {self.step} ({what}): dead versions came back: " \
                         f"{self.v.describe(back)}"
        self.held = now
        self.pulled.clear()

    def do(self, op: tuple[Any, ...]) -> None:
        self.step += 1
        CLOCK.advance(STEP_SECONDS)
        name, *args = op
        ACTIONS[name].run(self, *args)
        self.check(f"{name}{tuple(args)}")

    # ---- the end ------------------------------------------------------------------------
    def settle(self) -> None:
        """Lift every fault, then everyone syncs twice."""
        self.step += 1
        for d in self.devices:
            readable(self, d.index)
            free(self, d.index)
            remount(self, d.index)
            if d.remote != "R":
                repoint(self, d.index, "R")
        self.check("faults lifted")
        for _ in range(2):
            for d in self.devices:
                CLOCK.advance(STEP_SECONDS)
                self.command(d, "sync")
        self.check("final syncs")

    def final_checks(self) -> None:
        states = [tree_state(d.root) for d in self.devices]
        for d, s in zip(self.devices[1:], states[1:], strict=True):
            diff = sorted(k for k in set(s) | set(states[0]) if s.get(k) != states[0].get(k))
            assert not diff, f"{d.name} differs from r0 at {diff}"
        lost = self.v.lost(files_under(self.devices[0].root).values())
        assert not lost, f"lost: {self.v.describe(lost)}"
        url = normalize_url(str(self.remotes["R"]))
        problems = self.reader.verify(url)
        assert not problems, f"verify: {problems}"
        fresh = self.tmp / "fresh-clone"
        with acting_as(0):
            oneway.clone(url, str(fresh), "checker")
        assert tree_state(fresh) == states[0], "a fresh clone differs from the devices"


# ---- the actions ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Action:
    name: str
    args: tuple[st.SearchStrategy[Any], ...]
    weight: int
    run: Callable[..., None]


ACTIONS: dict[str, Action] = {}
DEV = st.integers(0, REPLICAS - 1)
PATH = st.sampled_from(PATHS)


def action(name: str, *args: st.SearchStrategy[Any], weight: int = 1
           ) -> Callable[[Callable[..., None]], Callable[..., None]]:
    def register(fn: Callable[..., None]) -> Callable[..., None]:
        ACTIONS[name] = Action(name, args, weight, fn)
        return fn
    return register


# -- what users do --------------------------------------------------------------------------


@action("edit", DEV, PATH, weight=4)
def edit(m: Model, i: int, path: str) -> None:
    """Write new bytes to a path (the device's clock sets the mtime)."""
    d = m.devices[i]
    target = d.root / path
    if d.can_touch(path) and not d.full and not blocked(d.root, target):
        data = f"{i} wrote {path} at step {m.step}".encode()
        m.v.write(d.root, path, data, CLOCK.now_ns(d.skew_ns), d.name)


@action("revert", DEV, PATH, st.integers(0, 50))
def revert(m: Model, i: int, path: str, k: int) -> None:
    """Write a dead version's bytes back (undo, a copy from a backup): the ABA case that
    only the right merge base, never a clock, gets right.

    Not when some device's base holds those bytes (at any path): merges compare bytes
    (design.md, "Merge rules"), so for that device the path would be unchanged on the
    reverting side, and its own edit, made having seen those bytes, rightly wins; or
    the bytes at a new path would pair with a deleted base path as a move, which an
    edit on the other side follows."""
    d = m.devices[i]
    target = d.root / path
    dead = [v for v in m.v.at(path) if v in m.v.dead] or sorted(m.v.dead)  # undo, else any
    if not dead or not d.can_touch(path) or d.full or blocked(d.root, target):
        return
    data = dead[-1 - k % len(dead)]
    for other in m.devices:
        url = m.url(other)
        if m.reader.chunks_of(url, data) in m.reader.base_files(other.root, url).values():
            return
    m.v.write(d.root, path, data, CLOCK.now_ns(d.skew_ns), d.name)


@action("delete", DEV, PATH, weight=2)
def delete(m: Model, i: int, path: str) -> None:
    d = m.devices[i]
    if d.can_touch(path) and (d.root / path).is_file():
        m.v.delete(d.root / path, d.name)


@action("rename", DEV, PATH, PATH)
def rename(m: Model, i: int, src: str, dst: str) -> None:
    d = m.devices[i]
    if (src != dst and d.can_touch(src) and d.can_touch(dst) and (d.root / src).is_file()
            and not blocked(d.root, d.root / dst) and not d.full):
        m.v.rename(d.root / src, d.root / dst, d.name)


# -- commands ---------------------------------------------------------------------------------


@action("sync", DEV, weight=4)
def sync(m: Model, i: int) -> None:
    m.command(m.devices[i], "sync")


@action("push", DEV)
def push(m: Model, i: int) -> None:
    m.command(m.devices[i], "push")


@action("pull", DEV)
def pull(m: Model, i: int) -> None:
    m.command(m.devices[i], "pull")


@action("concurrent", DEV, DEV)
def concurrent(m: Model, i: int, j: int) -> None:
    """Two devices sync at the same time."""
    errors: list[BaseException] = []

    def one(d: Device) -> None:
        try:
            m.command(d, "sync")
        except BaseException as exc:  # re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(m.devices[x],)) for x in sorted({i, j})]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    if errors:
        raise errors[0]


@action("race", DEV, DEV)
def race(m: Model, i: int, j: int) -> None:
    """Two devices sync at the same moment, deterministically: each reads the heads
    before the other writes its own (j syncs against a copy of the repository taken
    before i's sync; then j's new objects and head are put into the repository)."""
    a, b = m.devices[i], m.devices[j]
    if i == j or a.remote != b.remote or a.full or b.full:
        return
    remote = m.remotes[a.remote]
    mine, before = m.tmp / "race-i", m.tmp / "race-before"
    shutil.copytree(remote, before)
    m.command(a, "sync")
    remote.rename(mine)
    before.rename(remote)
    try:
        m.command(b, "sync")
    finally:
        theirs = m.tmp / "race-j"
        remote.rename(theirs)
        mine.rename(remote)
        head = f"heads/{b.device_id()}"
        for src in sorted(theirs.rglob("*")):
            rel = src.relative_to(theirs).as_posix()
            dst = remote / rel
            if src.is_file() and (not dst.exists() or rel == head):
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
        shutil.rmtree(theirs)


@action("prune", DEV, st.sampled_from(["0s", "30s", "1h"]))
def prune(m: Model, i: int, grace: str) -> None:
    """`prune --keep-last 1` from a device, with a grace of nothing (both phases now, as
    on a repository one device uses: the model's steps never overlap), three steps, or
    longer than most examples (phase 1 only). Heads and the merge bases they need stay;
    the invariant must hold through it."""
    d = m.devices[i]
    if d.full:
        return
    with acting_as(d.skew_ns):
        try:
            prune_module.prune(str(d.root), prune_module.PruneArgs(keep_last=1, grace=grace))
        except VaultsyncError as exc:
            raise AssertionError(f"step {m.step}: {d.name} prune: {exc.message}") from None
    m.note(f"{d.name} prune --grace {grace}", "prune: exit 0")


@action("force", DEV, st.sampled_from(["sync", "push"]))
def force(m: Model, i: int, cmd: str) -> None:
    """Run with --force. Over a vault that lost its files, the user thereby confirms
    that those files are deleted: the design's "a real delete the device saw"."""
    d = m.devices[i]
    if d.lost:
        for data in files_under(d.stash).values():
            m.v.confirm_deleted(data, d.name)
        shutil.rmtree(d.stash)
        d.lost = False
    m.run(d, cmd, force=True)


# -- the edges ----------------------------------------------------------------------------------


@action("unreadable", DEV, st.sampled_from(PATHS + FOLDERS),
        st.sampled_from(["chmod", "eio", "churn"]), weight=2)
def unreadable(m: Model, i: int, rel: str, how: str) -> None:
    """Make a file or folder unreadable: chmod 000 (product calls run without root's
    override), or an injected read error, or a file that keeps changing while read."""
    d = m.devices[i]
    p = d.root / rel
    if d.lost or not p.exists() or rel in d.unreadable or rel in d.faults:
        return
    if how == "chmod" or p.is_dir():
        d.unreadable[rel] = stat.S_IMODE(p.stat().st_mode)
        os.chmod(p, 0)
    else:
        d.faults[rel] = how
        READ_FAULTS[os.path.abspath(p)] = how
        st_ = p.stat()
        d.mtimes[rel] = (st_.st_mtime_ns, p.read_bytes())
        os.utime(p, ns=(st_.st_atime_ns, st_.st_mtime_ns))  # new ctime: the next scan reads it


@action("readable", DEV)
def readable(m: Model, i: int) -> None:
    """Lift every read fault of the device."""
    d = m.devices[i]
    for rel, mode in sorted(d.unreadable.items(), key=lambda kv: len(kv[0])):
        if os.path.lexists(d.root / rel):
            os.chmod(d.root / rel, mode)
    d.unreadable.clear()
    for path in d.read_faults():
        READ_FAULTS.pop(path, None)
    for rel, (mtime_ns, data) in d.mtimes.items():  # what kept touching it is done
        if (d.root / rel).is_file() and (d.root / rel).read_bytes() == data:
            os.utime(d.root / rel, ns=(mtime_ns, mtime_ns))
    d.faults.clear()
    d.mtimes.clear()


@action("lose", DEV)
def lose(m: Model, i: int) -> None:
    """The vault loses every file (an unmounted folder: only .vaultsync/ is left)."""
    d = m.devices[i]
    if d.lost or d.unreadable or d.faults or d.full:
        return
    d.stash.mkdir(parents=True, exist_ok=True)
    for entry in sorted(d.root.iterdir()):
        if entry.name != STATE_DIR:
            entry.rename(d.stash / entry.name)
    d.lost = True


@action("stray", DEV)
def stray(m: Model, i: int) -> None:
    """An app saves a new file into a vault that lost its files (the empty mount point):
    the vault is not empty, but it lost most of its files. (A new name: at a lost file's
    path it would be an edit, and a vault of two notes that lost one and had the other
    rewritten lost 50%, which design.md's --max-delete lets through.)"""
    d = m.devices[i]
    if d.lost and not d.full:
        path = f"stray-{m.step}.md"
        data = f"{i} wrote {path} into a lost vault".encode()
        m.v.write(d.root, path, data, CLOCK.now_ns(d.skew_ns), d.name)


@action("remount", DEV)
def remount(m: Model, i: int) -> None:
    """The lost files come back; where a path is taken by other bytes meanwhile, the
    user puts the old file beside it."""
    d = m.devices[i]
    if not d.lost or d.full:  # folders to make on a full disk: later
        return
    for rel, data in sorted(files_under(d.stash).items()):
        dst = d.root / rel
        if dst.is_file() and dst.read_bytes() == data:
            continue
        if dst.exists() or blocked(d.root, dst):
            dst = free_path(d.root, rel)
        dst.parent.mkdir(parents=True, exist_ok=True)
        (d.stash / rel).rename(dst)
    for folder in sorted(p for p in d.stash.rglob("*") if p.is_dir()):
        dst = d.root / folder.relative_to(d.stash)
        if not dst.exists() and not blocked(d.root, dst):
            dst.mkdir(parents=True)
    shutil.rmtree(d.stash)
    d.lost = False


@action("clock", DEV, st.sampled_from(SKEWS))
def clock(m: Model, i: int, skew: int) -> None:
    """The device's clock jumps (set by hand, or corrected by NTP)."""
    m.devices[i].skew_ns = skew * 10**9


@action("kill", DEV, st.sampled_from(["sync", "push", "pull"]), st.integers(10, KILL_CALLS))
def kill(m: Model, i: int, cmd: str, at: int) -> None:
    """SIGKILL at the `at`-th call into vaultsync of a run; then it runs again."""
    interrupt(m, i, cmd, signal.SIGKILL, at)


@action("term", DEV, st.sampled_from(["sync", "push", "pull"]), st.integers(10, KILL_CALLS))
def term(m: Model, i: int, cmd: str, at: int) -> None:
    """SIGTERM at the `at`-th call: exit 130, temporary files removed; then a re-run."""
    interrupt(m, i, cmd, signal.SIGTERM, at)


def interrupt(m: Model, i: int, cmd: str, sig: int, at: int) -> None:
    """Run a command through the real entry point; it receives `sig` at its `at`-th call
    into vaultsync (if it gets that far). Then the user runs it again."""
    d = m.devices[i]
    must_stop = m.must_stop(d, cmd, False)
    own = m.own_head(d)
    res = run_cli(["-C", str(d.root), cmd], skew_ns=d.skew_ns, read_faults=d.read_faults(),
                  signal_at=at, sig=sig, scratch=m.tmp)
    m.note(f"{d.name} {cmd} with {signal.Signals(sig).name} at call {at}: "
           f"{'fired' if res.fired else 'not reached'}, exit {res.code} {res.err.strip()[:200]}",
           f"{signal.Signals(sig).name} {'fired' if res.fired else 'not reached'}")
    where = f"step {m.step}: {d.name} {cmd}"
    if not res.fired:
        m.check_exit(d, cmd, res.code, res.err.strip(), must_stop, own)
    elif sig == signal.SIGTERM:
        assert res.code == 130, f"{where}: SIGTERM must exit 130, not {res.code}: {res.err}"
        left = temp_files(m.remotes[d.remote], d.root)
        assert not left, f"{where}: SIGTERM left temporary files {left}"
    if must_stop:
        assert m.own_head(d) == own, f"{where}: a run over a vault that lost its files wrote"
    m.command(d, cmd)


@action("recreate", DEV)
def recreate(m: Model, k: int) -> None:
    """The repository is deleted and made anew at the same URL, from device k (which
    re-joins); the other devices still remember the old one."""
    d = m.devices[k]
    if d.full:
        return
    shutil.rmtree(m.remotes["R"], ignore_errors=True)
    d.remote = "R"
    join(m, d)


@action("repoint", DEV, st.sampled_from(["R", "S"]))
def repoint(m: Model, i: int, which: str) -> None:
    """`remote` in config.toml is pointed at another repository (made if missing)."""
    d = m.devices[i]
    if d.full or d.remote == which:
        return
    remote = m.remotes[which]
    if not (remote / "vaultsync.json").is_file():
        scratch = Path(tempfile.mkdtemp(dir=m.tmp))
        with acting_as(0):
            oneway.init(str(scratch), str(remote), "scratch")
    config = d.root / STATE_DIR / "config.toml"
    lines = config.read_text().splitlines()
    lines = [f"remote = {json.dumps(normalize_url(str(remote)))}" if ln.startswith("remote =")
             else ln for ln in lines]
    config.write_text("\n".join(lines) + "\n")
    d.remote = which


@action("rejoin", DEV)
def rejoin(m: Model, i: int) -> None:
    """rm -rf .vaultsync; init --remote URL; sync."""
    d = m.devices[i]
    if not d.full:
        join(m, d)
        m.command(d, "sync")


def join(m: Model, d: Device) -> None:
    shutil.rmtree(d.root / STATE_DIR, ignore_errors=True)
    with acting_as(d.skew_ns):
        oneway.init(str(d.root), m.url(d), d.name)


@action("fill", DEV, st.integers(0, 64 * 1024))
def fill(m: Model, i: int, leave: int) -> None:
    """The device's disk fills up but for `leave` bytes (its runs then go through the
    real entry point, whose exit code must say 7, local)."""
    d = m.devices[i]
    d.full = d.disk.fill(leave)


@action("free", DEV)
def free(m: Model, i: int) -> None:
    d = m.devices[i]
    d.disk.free()
    d.full = False


# ---- the test ------------------------------------------------------------------------------


@st.composite
def script(draw: st.DrawFn) -> list[tuple[Any, ...]]:
    """Up to STEPS actions, drawn by weight. The length is drawn first: st.lists would
    average 5 actions, too few for the faults to meet."""
    drawn = [a for a in ACTIONS.values() if (not ONLY or a.name in ONLY) and a.name not in SKIP]
    one = st.one_of([st.tuples(st.just(a.name), *a.args) for a in drawn for _ in range(a.weight)])
    return [draw(one) for _ in range(draw(st.integers(0, STEPS)))]


SKEW = st.sampled_from(SKEWS)


@settings(max_examples=EXAMPLES, deadline=None,
          phases=PHASES,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(skews=st.tuples(SKEW, SKEW, SKEW), steps=script())
# The defects of issue 9, each as the model finds it:
# 1. a path the scan could not read is pushed as a delete (a file; a folder)
@example(skews=(0, 0, 0), steps=[("unreadable", 0, "a.md", "chmod"), ("sync", 0), ("sync", 1)])
@example(skews=(0, 0, 0), steps=[("unreadable", 0, "d", "chmod"), ("sync", 0), ("sync", 1)])
# 2. a wrong clock picks the merge base: an edit (back to old bytes) is overwritten
@example(skews=(0, -86_400, 0), steps=[("edit", 1, "a.md"), ("sync", 1), ("sync", 0),
                                       ("sync", 2), ("revert", 0, "a.md", 0), ("sync", 0)])
# 3. push of a vault that lost its files is not stopped
@example(skews=(0, 0, 0), steps=[("lose", 0), ("push", 0), ("sync", 1)])
# 4. a recreated repository, or remote pointed elsewhere, looks up to date
@example(skews=(0, 0, 0), steps=[("recreate", 1), ("edit", 0, "b.md"), ("sync", 0)])
@example(skews=(0, 0, 0), steps=[("repoint", 0, "S"), ("edit", 0, "b.md"), ("sync", 0)])
# 5. re-joining resurrects a replaced version (when the old head is folded first: heads
#    are folded in snapshot-id order, and the idle first step sets the times that decide it)
@example(skews=(0, 0, 0), steps=[("clock", 2, 0), ("edit", 1, "a.md"), ("sync", 1), ("sync", 0),
                                 ("sync", 2), ("rejoin", 0)])
# Found by this test: a sync folds an unseen head that another unseen head contains, and a
# version replaced in the newer head comes back as a conflict copy (no re-join needed)
@example(skews=(0, 0, 0), steps=[("edit", 0, "a.md"), ("edit", 0, "a.md"), ("edit", 1, "a.md"),
                                 ("concurrent", 0, 0), ("edit", 0, "a.md"), ("concurrent", 1, 1),
                                 ("concurrent", 1, 2), ("edit", 1, "a.md"), ("edit", 2, "a.md"),
                                 ("sync", 1)])
# Found by this test: a full disk while saving local state is a traceback (exit 70), not
# exit 7: after a recreated repository, and after a plain change of the stat cache
@example(skews=(0, 0, 0), steps=[("recreate", 0), ("fill", 1, 0), ("sync", 1)])
@example(skews=(0, 0, 0), steps=[("sync", 1), ("unreadable", 1, "a.md", "chmod"), ("fill", 1, 0),
                                 ("sync", 1)])
# Found by this test: a version another device moved into a folder this device cannot
# read left this disk, then the repository was recreated: lost
@example(skews=(0, 0, 0), steps=[("edit", 0, "a.md"), ("rename", 1, "a.md", "d/e.md"),
                                 ("concurrent", 0, 1), ("unreadable", 0, "d", "chmod"),
                                 ("sync", 0), ("recreate", 0)])
# Found by this test: a version another device moved onto a path this device cannot
# read left this disk
@example(skews=(0, 0, 0), steps=[("rename", 1, "a.md", "d/c.md"), ("sync", 1),
                                 ("unreadable", 0, "d/c.md", "chmod"), ("sync", 0),
                                 ("readable", 0), ("sync", 0)])
# Found by this test: a merge commit during a prune's grace carries another device's
# file whose chunk is only in a pack the record names (not here, so not uploadable):
# "neither in the repository nor in this vault", exit 5
@example(skews=(0, 0, 0), steps=[
    ("edit", 0, "a.md"), ("edit", 0, "a.md"), ("sync", 0), ("sync", 0), ("sync", 0),
    ("sync", 0), ("edit", 0, "a.md"), ("edit", 0, "a.md"), ("edit", 0, "a.md"),
    ("edit", 1, "a.md"), ("concurrent", 0, 1), ("kill", 0, "sync", 10), ("prune", 0, "30s"),
    ("sync", 0), ("sync", 0), *[("edit", 0, "a.md")] * 10, ("edit", 1, "a.md")])
# Found by this test: two prunes in a row, then a sync: a pack the index names is gone
@example(skews=(0, 0, 0), steps=[("rejoin", 1), ("edit", 0, "b.md"), ("sync", 0),
                                 ("prune", 0, "0s"), ("prune", 0, "0s")])
@example(skews=(0, 0, 0), steps=[("rejoin", 1), ("edit", 0, "a.md"), ("sync", 0),
                                 ("edit", 1, "a.md"), ("prune", 0, "0s"), ("prune", 0, "0s")])
# Found by this test: a pull over two diverged heads overwrites this device's own
# version, which the other device never saw, with the other's (no conflict copy)
@example(skews=(0, 0, 0), steps=[("edit", 0, "a.md"), ("edit", 1, "a.md"), ("race", 0, 1),
                                 ("pull", 0)])
# Found by this test: a path unread across a re-join, then concurrent edits of it on two
# other devices: the base version at the join comes back as a conflict copy
@example(skews=(0, 0, 0), steps=[("edit", 0, "a.md"), ("unreadable", 0, "a.md", "chmod"),
                                 ("rejoin", 0), ("edit", 1, "a.md"), ("edit", 2, "a.md"),
                                 ("race", 1, 2), ("sync", 0)])
# Found by this test: a push from a device that cannot read a path pushed the base's
# version there over what another device wrote since (a dead version came back)
@example(skews=(0, 0, 0), steps=[("edit", 0, "a.md"), ("unreadable", 1, "a.md", "chmod"),
                                 ("sync", 0), ("sync", 1), ("edit", 0, "a.md"),
                                 ("force", 0, "sync"), ("push", 1)])
def test_devices_converge_and_never_lose_a_version(skews: tuple[int, int, int],
                                                   steps: list[tuple[Any, ...]]) -> None:
    with World(), tempfile.TemporaryDirectory() as tmp:
        m = Model(Path(tmp), skews)
        try:
            m.setup()
            if currently_in_test_context():
                event(f"{len(steps) // 10 * 10}+ steps")
            for op in steps:
                m.do(op)
            m.settle()
            m.final_checks()
        except BaseException:
            m.flush_notes()
            raise
        finally:
            for d in m.devices:
                readable(m, d.index)
            m.close()


# ---- the adversary's own check: a fault that silently does nothing finds nothing ------------


def test_every_fault_reaches_vaultsync(tmp_path: Path) -> None:
    """A skewed clock dates snapshots; chmod 000, an injected read error and a file that
    keeps changing make the scan skip the path; a signal lands mid-run; a full disk
    fails a run. (What vaultsync must then do is the model's business, not this test's.)"""
    with World():
        m = Model(tmp_path, (0, -86_400, 0))
        try:
            m.setup()
            reader_repo = m.reader._open(m.url(m.devices[0]))
            for i in (0, 1):
                edit(m, i, "b.md" if i else "e/f.md")
                assert m.run(m.devices[i], "sync") in (0, 1)
            heads = reader_repo.read_heads()
            times = [reader_repo.get_snapshot(heads[m.devices[i].device_id()]).time_ns
                     for i in (0, 1)]
            assert 86_000 < (times[0] - times[1]) / 1e9 < 86_800, "r1's clock is a day behind"

            d = m.devices[0]
            for rel, how in (("a.md", "chmod"), ("d", "chmod"), ("e/f.md", "eio")):
                unreadable(m, 0, rel, how)
            edit(m, 0, "b.md")
            unreadable(m, 0, "b.md", "churn")
            with acting_as(d.skew_ns):
                skipped = {path for path, _reason in oneway.status(str(d.root)).skipped}
            assert {"a.md", "e/f.md", "b.md"} <= skipped and any(p.startswith("d") for p in skipped)
            readable(m, 0)

            res = run_cli(["-C", str(d.root), "sync"], skew_ns=0, read_faults={},
                          signal_at=10, sig=signal.SIGKILL, scratch=tmp_path)
            assert res.fired and res.code == -signal.SIGKILL

            fill(m, 0, 0)
            if d.full:
                edit(m, 1, "a.md")
                assert m.run(m.devices[1], "sync") in (0, 1)
                res = run_cli(["-C", str(d.root), "sync"], skew_ns=0, read_faults={},
                              scratch=tmp_path)
                assert res.code != 0
                assert any(w in res.err for w in ("disk full", "disk is full", "No space left"))
        finally:
            for dev in m.devices:
                readable(m, dev.index)
            m.close()
