"""The world that the model test (tests/test_sync_model.py) turns against vaultsync.

Each device of the model gets, in-process and thread-safely (two devices sync at once in
two threads):

- its own wall clock: a virtual clock with a fixed start, so runs reproduce exactly
  (snapshot ids depend on snapshot times), plus the device's skew;
- its own unreadable paths: product calls run with the file-permission capabilities
  dropped in the calling thread (tests run as root, whom `chmod 000` does not stop), and
  injected read faults (EIO, a file that keeps changing while it is read) through the
  scanner's `_open`;
- its own small disk (a tmpfs, root only) that can be filled up;
- runs that can be killed: `run_cli` runs the real entry point in a subprocess with the
  same faults (tests/adversary_run.py), under `faketime` for the device's clock and
  `setpriv` for its privileges, and can make it send itself SIGKILL or SIGTERM at the
  N-th call into vaultsync code (a reproducible point, unlike a timer).

It also reads repositories the way the invariants need (tests/versions.py): what the
newest heads hold, and that nothing they name is missing.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import glob
import hashlib
import io
import itertools
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

REPO_ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = ".vaultsync"

# ---- whose world this thread is in ---------------------------------------------------

_tls = threading.local()


def _skew() -> int | None:
    """The clock skew (ns) of the device this thread acts as; None: not acting."""
    return getattr(_tls, "skew_ns", None)


# ---- the virtual clock -----------------------------------------------------------------

EPOCH_NS = 1_780_000_000 * 10**9  # 2026-05-28 20:26:40 UTC: a fixed start


class VirtualClock:
    """Wall-clock time as the devices see it: a fixed start that the model advances
    between steps, plus 1 µs per reading (readings differ, as on a real clock). A
    device's time is this plus its skew. Threads that act as no device see real time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ns = EPOCH_NS

    def reset(self) -> None:
        with self._lock:
            self._ns = EPOCH_NS

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._ns += int(seconds * 1e9)

    def now_ns(self, skew_ns: int = 0) -> int:
        with self._lock:
            self._ns += 1000
            return self._ns + skew_ns


CLOCK = VirtualClock()
_real_time: dict[str, Any] = {"time": time.time, "time_ns": time.time_ns, "gmtime": time.gmtime,
              "localtime": time.localtime}


def _time_ns() -> int:
    skew = _skew()
    return _real_time["time_ns"]() if skew is None else CLOCK.now_ns(skew)


def _time() -> float:
    return _time_ns() / 1e9


def _gmtime(secs: float | None = None) -> time.struct_time:
    return _real_time["gmtime"](_time() if secs is None else secs)


def _localtime(secs: float | None = None) -> time.struct_time:
    return _real_time["localtime"](_time() if secs is None else secs)


_fake_time = {"time": _time, "time_ns": _time_ns, "gmtime": _gmtime, "localtime": _localtime}

# ---- deterministic device ids ----------------------------------------------------------

_ids = itertools.count()


def _new_device_id() -> str:
    """Device ids in a fixed sequence per example (they order heads, hence merges)."""
    return hashlib.sha256(f"model-device-{next(_ids)}".encode()).hexdigest()[:32]


def reset_ids() -> None:
    global _ids
    _ids = itertools.count()


# ---- injected read faults --------------------------------------------------------------

READ_FAULTS: dict[str, str] = {}  # absolute path -> "eio" | "churn"
_real_open: Callable[[str], BinaryIO] | None = None


class _Churning:
    """A file that another program keeps touching while vaultsync reads it."""

    def __init__(self, f: BinaryIO, path: str) -> None:
        self._f, self._path = f, path

    def read(self, n: int = -1) -> bytes:
        st = os.stat(self._path)
        os.utime(self._path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
        return self._f.read(n)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)

    def __enter__(self) -> _Churning:
        return self

    def __exit__(self, *exc: object) -> None:
        self._f.close()


def _faulty_open(path: str) -> BinaryIO:
    kind = READ_FAULTS.get(os.path.abspath(path))
    if kind == "eio":
        raise OSError(errno.EIO, os.strerror(errno.EIO), path)
    assert _real_open is not None
    f = _real_open(path)
    return _Churning(f, path) if kind == "churn" else f  # type: ignore[return-value]


def install_read_faults() -> None:
    """Route the scanner's reads through READ_FAULTS (idempotent)."""
    global _real_open
    from vaultsync.engine import scan

    assert hasattr(scan, "_open"), "vaultsync.engine.scan._open is gone: update the adversary"
    if scan._open is not _faulty_open:
        _real_open = scan._open
        scan._open = _faulty_open  # type: ignore[assignment]


def uninstall_read_faults() -> None:
    from vaultsync.engine import scan

    if _real_open is not None and scan._open is _faulty_open:
        scan._open = _real_open  # type: ignore[assignment]
    READ_FAULTS.clear()


# ---- privileges --------------------------------------------------------------------------

_CAP_VERSION_3 = 0x20080522
_DAC = (1 << 1) | (1 << 2)  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


_libc = ctypes.CDLL(None, use_errno=True)


def _thread_dac(enable: bool) -> bool:
    """Raise or drop CAP_DAC_* in this thread's effective set (capabilities are per
    thread on Linux); returns whether they were effective before."""
    hdr, data = _CapHeader(_CAP_VERSION_3, 0), (_CapData * 2)()
    if _libc.capget(ctypes.byref(hdr), data) != 0:
        raise OSError(ctypes.get_errno(), "capget")
    before = data[0].effective & _DAC == _DAC
    data[0].effective = (data[0].effective | _DAC) if enable else (data[0].effective & ~_DAC)
    hdr = _CapHeader(_CAP_VERSION_3, 0)
    if _libc.capset(ctypes.byref(hdr), data) != 0:
        raise OSError(ctypes.get_errno(), "capset")
    return before


@contextlib.contextmanager
def acting_as(skew_ns: int) -> Iterator[None]:
    """In this thread: the device's clock, and a user's privileges (permission bits
    apply) rather than root's."""
    _tls.skew_ns = skew_ns
    was = _thread_dac(False) if os.geteuid() == 0 else False
    try:
        yield
    finally:
        if was:
            _thread_dac(True)
        _tls.skew_ns = None


FAKETIME = next(iter(sorted(glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1"))), None)
SETPRIV = ["setpriv", "--inh-caps=-dac_override,-dac_read_search",
           "--bounding-set=-dac_override,-dac_read_search", "--"]

# ---- installing and removing the world --------------------------------------------------


class World:
    """Patches that give every device thread its own world; `with World(): ...`."""

    def __init__(self) -> None:
        self._undo: list[tuple[object, str, object]] = []

    def _patch(self, obj: object, name: str, value: object) -> None:
        self._undo.append((obj, name, getattr(obj, name)))
        setattr(obj, name, value)

    def __enter__(self) -> World:
        import vaultsync.engine.config  # noqa: F401 - load what the patches below cover
        import vaultsync.engine.sync  # noqa: F401

        CLOCK.reset()
        reset_ids()
        for name, fake in _fake_time.items():
            self._patch(time, name, fake)
        real_id = vaultsync.engine.config.new_device_id
        for modname, mod in list(sys.modules.items()):
            if not modname.startswith("vaultsync") or mod is None:
                continue
            for name, real in _real_time.items():
                if getattr(mod, name, None) is real:  # `from time import time_ns`
                    self._patch(mod, name, _fake_time[name])
            if getattr(mod, "new_device_id", None) is real_id:
                self._patch(mod, "new_device_id", _new_device_id)
        install_read_faults()
        return self

    def __exit__(self, *exc: object) -> None:
        uninstall_read_faults()
        while self._undo:
            obj, name, value = self._undo.pop()
            setattr(obj, name, value)


# ---- a disk of its own ----------------------------------------------------------------


class Disk:
    """A small tmpfs for one device so that its disk can fill up (root only). Without
    it (not root, no mount), `fill` does nothing and says so."""

    SIZE = 8 * 1024 * 1024

    def __init__(self, mountpoint: Path) -> None:
        self.path = mountpoint
        self.filler = mountpoint / "filler"
        mountpoint.mkdir(parents=True, exist_ok=True)
        self.mounted = os.geteuid() == 0 and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={self.SIZE},mode=0755", "tmpfs", str(mountpoint)],
            capture_output=True).returncode == 0

    def fill(self, leave: int) -> bool:
        """Fill the disk but for about `leave` bytes; returns whether it is now full."""
        if not self.mounted:
            return False
        self.free()
        st = os.statvfs(self.path)
        size = st.f_bavail * st.f_frsize - leave
        size -= size % st.f_frsize
        if size <= 0:
            return True
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.posix_fallocate(fd, 0, size)
        finally:
            os.close(fd)
        return True

    def free(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.filler.unlink()

    def close(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.path)], capture_output=True)
            self.mounted = False


# ---- runs in a subprocess ----------------------------------------------------------------


@dataclass
class CliRun:
    code: int  # negative: killed by that signal
    out: str
    err: str
    fired: bool  # the signal was sent


def run_cli(args: list[str], *, skew_ns: int, read_faults: dict[str, str],
            signal_at: int | None = None, sig: int | None = None, scratch: Path,
            timeout: float = 120) -> CliRun:
    """The real entry point (`python -m vaultsync` through tests/adversary_run.py) as
    the device would run it: its clock (libfaketime, starting at the virtual clock's time
    plus its skew), a user's privileges (setpriv), its read faults, and optionally a
    signal sent to itself at the `signal_at`-th call into vaultsync code."""
    start = CLOCK.now_ns(skew_ns) // 10**9
    stamp = time.strftime("@%Y-%m-%d %H:%M:%S", _real_time["gmtime"](start))
    fired = scratch / f"fired-{os.getpid()}-{threading.get_ident()}"
    fired.unlink(missing_ok=True)
    spec = {"read_faults": read_faults, "signal_at": signal_at, "signal": sig,
            "fired": str(fired)}
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TZ="UTC",
               FAKETIME_DONT_FAKE_MONOTONIC="1", VAULTSYNC_ADVERSARY=json.dumps(spec))
    cmd = [sys.executable, "-m", "tests.adversary_run", *args]
    if FAKETIME:  # the library, not the `faketime` wrapper, which hides how the child died
        env.update(LD_PRELOAD=FAKETIME, FAKETIME=stamp)
    if os.geteuid() == 0 and shutil.which("setpriv"):
        cmd = SETPRIV + cmd
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    was_fired = fired.exists()
    fired.unlink(missing_ok=True)
    return CliRun(proc.returncode, proc.stdout, proc.stderr, was_fired)


def temp_files(*roots: Path) -> list[str]:
    """Temporary files a run left behind: `.tmp-*` in a directory remote, and
    `.vaultsync-tmp-*` or staged files in a vault."""
    found = []
    for root in roots:
        for dirpath, _dirs, files in os.walk(root):
            here = Path(dirpath)
            staging = STATE_DIR in here.parts and "staging" in here.parts[-2:]  # or a shard
            for name in files:
                if name.startswith((".tmp-", ".vaultsync-tmp-")) or staging:
                    found.append(os.path.join(dirpath, name))
    return found


# ---- reading what a vault and a repository hold ------------------------------------------


def files_under(root: Path) -> dict[str, bytes]:
    """relative path -> bytes of every file below root, outside `.vaultsync/` (read as
    root: unreadable files count)."""
    out: dict[str, bytes] = {}
    if not root.is_dir():
        return out
    for dirpath, dirs, files in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        if rel == ".":
            dirs[:] = [d for d in dirs if d != STATE_DIR]
            rel = ""
        for name in files:
            p = os.path.join(dirpath, name)
            if os.path.isfile(p) and not os.path.islink(p):
                out[os.path.join(rel, name)] = Path(p).read_bytes()
    return out


def heads_bytes(remote: Path) -> dict[str, bytes]:
    """The raw heads of a directory remote: whether a run wrote one."""
    heads = remote / "heads"
    if not heads.is_dir():
        return {}
    return {p.name: p.read_bytes() for p in sorted(heads.iterdir()) if p.is_file()}


def base_of(root: Path) -> str | None:
    """The vault's base snapshot id, read from state.db without writing to it (the
    vault's disk may be full)."""
    db = root / STATE_DIR / "state.db"
    if not db.is_file():
        return None
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        row = con.execute("SELECT value FROM meta WHERE key = 'base'").fetchone()
    except sqlite3.Error:
        return None
    finally:
        con.close()
    return str(row[0]) if row and row[0] else None


class RepositoryReader:
    """What a repository's newest heads hold, read with vaultsync's own decoders but
    none of its sync logic. Object caches are kept per repository id, so a recreated
    repository is read afresh."""

    def __init__(self) -> None:
        self._objects: dict[str, dict[str, bytes]] = {}
        self._chunks: dict[tuple[object, bytes], tuple[str, ...]] = {}

    def _open(self, url: str) -> Any:
        from vaultsync.repository.repo import MemoryCache, Repository
        from vaultsync.store.url import open_store

        store = open_store(url)
        repo = Repository.open(store)
        cache = MemoryCache()
        cache.objects = self._objects.setdefault(repo.format.repo_id, {})
        return Repository(store, repo.format, cache)

    def chunk_ids(self, repo: Any, data: bytes) -> tuple[str, ...]:
        from vaultsync.chunking import Chunker

        key = (repo.format.chunker, data)
        if key not in self._chunks:
            chunker = Chunker(repo.format.chunker, repo.hasher)
            self._chunks[key] = tuple(c.id for c in chunker.chunks(io.BytesIO(data)))
        return self._chunks[key]

    def held(self, url: str, candidates: Iterable[bytes], but: str | None = None) -> set[bytes]:
        """The candidates that a file in one of the repository's newest heads (a head
        that is no other head's ancestor) holds, the head of device `but` excepted. A
        head that names a missing snapshot, tree or chunk is an AssertionError."""
        from vaultsync.errors import VaultsyncError
        from vaultsync.model import flatten

        repo = self._open(url)
        try:
            heads = repo.read_heads()
            ancestry: dict[str, set[str]] = {}
            for device, sid in heads.items():
                seen: set[str] = set()
                todo = [sid]
                while todo:
                    cur = todo.pop()
                    if cur in seen:
                        continue
                    seen.add(cur)
                    try:
                        todo.extend(repo.lineage.parents(cur))  # through prune's grafts
                    except VaultsyncError as exc:
                        raise AssertionError(
                            f"{url}: history of head {device[:8]} names snapshot {cur[:12]}: "
                            f"{exc}") from None
                ancestry[sid] = seen - {sid}
            newest = {s for s in ancestry if not any(s in a for a in ancestry.values())}
            newest -= {sid for device, sid in heads.items() if device == but}
            held_chunks: set[tuple[str, ...]] = set()
            for sid in sorted(newest):
                try:
                    flat = flatten(repo.get_snapshot(sid).tree, repo.get_tree)
                    index = repo.index
                except VaultsyncError as exc:
                    raise AssertionError(f"{url}: head snapshot {sid[:12]}: {exc}") from None
                for path, entry in flat.items():
                    if entry.is_dir:
                        continue
                    missing = [c for c in entry.chunks if c not in index]
                    assert not missing, (f"{url}: head snapshot {sid[:12]} names {path} whose "
                                         f"chunks the repository does not have")
                    held_chunks.add(tuple(entry.chunks))
            return {c for c in candidates if self.chunk_ids(repo, c) in held_chunks}
        finally:
            repo.store.close()

    def base_files(self, root: Path, url: str) -> dict[str, tuple[str, ...]]:
        """path -> chunk ids of every file in the vault's base snapshot, as this repository
        knows it (none if there is no base, or the repository does not know it: then a
        sync is a join)."""
        from vaultsync.errors import VaultsyncError
        from vaultsync.model import flatten

        base = base_of(root)
        if base is None:
            return {}
        repo = self._open(url)
        try:
            flat = flatten(repo.get_snapshot(base).tree, repo.get_tree)
        except VaultsyncError:
            return {}
        finally:
            repo.store.close()
        return {k: tuple(e.chunks) for k, e in flat.items() if not e.is_dir}

    def chunks_of(self, url: str, data: bytes) -> tuple[str, ...]:
        """The chunk ids this repository gives these bytes."""
        repo = self._open(url)
        try:
            return self.chunk_ids(repo, data)
        finally:
            repo.store.close()

    def verify(self, url: str) -> list[str]:
        from vaultsync.repository.verify import verify

        repo = self._open(url)
        try:
            return list(verify(repo, read_data=100).problems)
        finally:
            repo.store.close()
