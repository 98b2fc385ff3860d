"""Scan a vault folder into a Merkle tree, rehashing only files whose stat changed.

The stat cache makes a no-change scan cost a directory walk and one stat per file. The
chunker (and its compiled extension) is imported only when some file must be read.
"""

from __future__ import annotations

import os
import re
import stat
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import BinaryIO

from vaultsync.chunking import Chunker, ChunkerParams, Hasher, Prehasher, cut_file
from vaultsync.engine import fsprobe, progress
from vaultsync.engine.fsprobe import FsTraits
from vaultsync.engine.state import StatRow
from vaultsync.model import (
    DIR,
    FILE,
    MTIME_MAX,
    MTIME_MIN,
    STATE_DIR,
    Entry,
    Flat,
    ObjectId,
    Tree,
    name_problem,
    nfc,
)
from vaultsync.reconcile.conflicts import TAKEN, copy_path

TMP_PREFIX = ".vaultsync-tmp-"
# what vaultsync itself names temporary files: the prefix, then 12 hex digits (or a probe
# of `fsprobe`). Only these are removed as stale; a user's `.vaultsync-tmp-notes.md` syncs.
_TEMP_NAME = re.compile(re.escape(TMP_PREFIX) + r"(?:[0-9a-f]{12}|probe-[a-z]+-[0-9a-f]+)\Z")
RACY_NS = 2_000_000_000  # files modified this recently are not trusted to the stat cache
# A file dated outside the times a tree can hold (model.MTIME_MIN/MAX, about 1823-2116)
# is recorded at the nearest end, with a notice; never a failed sync.
FILE_MODE, EXEC_MODE = 0o644, 0o755  # a tree records only a file's executable bit


def is_temp_name(name: str) -> bool:
    return _TEMP_NAME.match(name) is not None


def clamp_time(ns: int) -> int:
    return min(max(ns, MTIME_MIN), MTIME_MAX)


def tree_mode(executable: bool) -> int:
    return EXEC_MODE if executable else FILE_MODE


@dataclass(frozen=True, slots=True)
class ChunkLocation:
    path: str  # absolute path of a file that holds the chunk
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class Respell:
    """Two spellings of one name in one folder (NFC and NFD, different bytes): the vault
    write that settles it, left to the apply step of a writing command. `src` (on-disk,
    relative, its folders already as they will be) is renamed to `dst`, a collision copy
    named like a conflict copy (key `copy`); a file with the winner's very bytes goes to
    the trash instead (`dst` None). `ino` (and for a file `expect`: size, mtime, inode)
    is what the scan saw there."""

    key: str
    src: str
    dst: str | None
    copy: str | None
    ino: int
    expect: tuple[int, int, int] | None = None


@dataclass
class ScanResult:
    root: ObjectId
    flat: Flat
    trees: dict[ObjectId, bytes]  # every tree of this scan, encoded
    locations: dict[ObjectId, ChunkLocation]  # chunks of files hashed in this scan
    rows: dict[str, StatRow]  # the new stat cache
    stats: dict[str, int] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    stale_temps: list[str] = field(default_factory=list)
    disk: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # key -> size,mtime,ino
    phantoms: Flat = field(default_factory=dict)  # synced entries this disk cannot hold
    ignored: list[str] = field(default_factory=list)  # paths on disk the rules exclude
    injected: set[str] = field(default_factory=set)  # in `flat` but not on disk
    restore: set[str] = field(default_factory=set)  # injected, to be written here
    # paths the scan could not read (see localview): they keep their base version and
    # are not written this run; beliefs: what such a disk holds where base moved on
    frozen: set[str] = field(default_factory=set)
    beliefs: dict[str, Entry | None] = field(default_factory=dict)
    # files kept on disk because the target moves their version where this run cannot
    # write (below a frozen path): they go once it can (see localview.local_target)
    held_back: set[str] = field(default_factory=set)
    notices: list[str] = field(default_factory=list)  # said, but nothing skipped
    respell: list[Respell] = field(default_factory=list)  # second spellings to settle
    fs: FsTraits | None = None  # what the vault's filesystem can hold


def _open(path: str) -> BinaryIO:
    return open(path, "rb")  # noqa: SIM115 - one place to count reads in tests


class Scanner:
    def __init__(
        self,
        root: str,
        device: str,
        cache: dict[str, StatRow],
        params: ChunkerParams,
        hasher: Hasher | None = None,
        opener: Callable[[str], BinaryIO] | None = None,
        ignored: Callable[[str, bool], bool] | None = None,
        fs: FsTraits | None = None,
    ) -> None:
        self.root = root
        self.device = device
        self.cache = cache
        self.params = params
        self.hasher = hasher or Hasher()
        self.opener = opener
        self.ignored = ignored or (lambda key, is_dir: False)
        self._chunker: Chunker | None = None
        self.now_ns = time.time_ns()
        self.fs = fs
        # large files the stat cache cannot vouch for are hashed on worker threads ahead
        # of the walk (`_dir` submits a folder's, `_hash` takes each in turn)
        self.prehash = Prehasher(lambda: self.chunker, lambda p: (self.opener or _open)(p))

    @property
    def chunker(self) -> Chunker:
        if self._chunker is None:
            self._chunker = Chunker(self.params, self.hasher)
        return self._chunker

    def scan(self) -> ScanResult:
        self.result = ScanResult("", {}, {}, {}, {},
                                 stats={"files": 0, "hashed": 0, "bytes_hashed": 0, "bytes": 0})
        if self.fs is None:
            self.fs = fsprobe.traits(self.root)
        self.result.fs = self.fs
        self.progress = progress.current()
        self.progress.start("scan", None, "files")
        try:
            self.result.root = self._dir(self.root, "")
        finally:
            self.prehash.close()
        self.progress.finish()
        return self.result

    def _dir(self, abspath: str, prefix: str) -> ObjectId:
        """Scan one folder; `prefix` is its path as it will be on disk (a folder that is a
        second spelling is scanned under its collision copy's name)."""
        res = self.result
        try:
            items = sorted(os.scandir(abspath), key=lambda d: os.fsencode(d.name))
        except OSError as exc:
            res.skipped.append((prefix.rstrip("/") or ".", f"cannot read folder: {exc.strerror}"))
            items = []
        found: dict[str, list[tuple[os.DirEntry[str], os.stat_result]]] = defaultdict(list)
        for item in items:
            name = item.name
            if name == STATE_DIR:
                continue
            if is_temp_name(name):
                res.stale_temps.append(item.path)
                continue
            rel = prefix + name
            problem = name_problem(name)
            if problem:
                res.skipped.append((os.fsencode(rel).decode("utf-8", "replace"), problem))
                continue
            try:
                st = item.stat(follow_symlinks=False)
            except OSError as exc:
                res.skipped.append((rel, f"cannot stat: {exc.strerror}"))
                continue
            if stat.S_ISLNK(st.st_mode):
                res.skipped.append((rel, "symbolic link (not synced)"))
                continue
            if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
                res.skipped.append((rel, "not a regular file or folder"))
                continue
            if self.ignored(nfc(rel), stat.S_ISDIR(st.st_mode)):
                res.ignored.append(nfc(rel))
                continue
            found[nfc(name)].append((item, st))
            if stat.S_ISREG(st.st_mode) and self.prehash.wants(st.st_size) \
                    and not self._vouched(self.cache.get(nfc(rel)), st):
                self.prehash.submit(item.path)
        entries: list[Entry] = []
        losers = []
        on_disk = {nfc(item.name) for item in items}
        for spellings in found.values():
            if len(spellings) > 1:
                spellings = self._rank_spellings(prefix, spellings)
                losers += spellings[1:]
            item, st = spellings[0]
            entry = self._entry(item, st, prefix, item.name)
            if entry is not None:
                entries.append(entry)
        for item, st in losers:
            entry = self._second_spelling(item, st, prefix, on_disk, entries)
            if entry is not None:
                entries.append(entry)
        tree = Tree.of(entries)
        encoded = tree.encode()
        tree_id = self.hasher.id(encoded)
        res.trees[tree_id] = encoded
        return tree_id

    def _entry(self, item: os.DirEntry[str], st: os.stat_result, prefix: str, name: str,
               hashed: tuple[tuple[ObjectId, ...], os.stat_result] | None = None,
               ) -> Entry | None:
        """The entry of a file or folder found on disk as `item`, named `name` here."""
        key = nfc(prefix + name)
        if stat.S_ISDIR(st.st_mode):
            entry = Entry(name=name, kind=DIR, tree=self._dir(item.path, prefix + name + "/"))
        else:
            file_entry = self._file(item.path, key, name, st, hashed)
            if file_entry is None:
                return None
            entry = file_entry
        self.result.flat[key] = entry
        return entry

    def _rank_spellings(self, prefix: str, spellings: list) -> list:
        """The spellings of one name, the one that keeps it first: the one this device
        synced last (the stat cache knows its inode), else the first by bytes."""
        key = nfc(prefix + spellings[0][0].name)

        def synced(pair: tuple[os.DirEntry[str], os.stat_result]) -> bool:
            item, st = pair
            if not self.fs or not self.fs.stable_inodes:
                return False  # no evidence: the first by bytes keeps the name
            if not stat.S_ISDIR(st.st_mode):
                row = self.cache.get(key)
                return row is not None and row.ino == st.st_ino
            try:
                children = list(os.scandir(item.path))
                for child in children:
                    row = self.cache.get(key + "/" + nfc(child.name))
                    if row is not None and row.ino == child.stat(follow_symlinks=False).st_ino:
                        return True
            except OSError:
                pass
            return False

        return sorted(spellings, key=lambda p: (not synced(p), os.fsencode(p[0].name)))

    def _second_spelling(self, item: os.DirEntry[str], st: os.stat_result, prefix: str,
                         on_disk: set[str], entries: list[Entry]) -> Entry | None:
        """A second spelling of a name already taken in this folder: the same bytes are
        one file (this one goes to the trash); anything else is kept apart under a
        collision copy's name. The rename is only planned here (`Respell`)."""
        res = self.result
        key = nfc(prefix + item.name)
        kept = res.flat.get(key)
        hashed = None
        if stat.S_ISREG(st.st_mode) and kept is not None and not kept.is_dir:
            hashed = self._hash(item.path, key)
            if hashed is None:
                return None
            if hashed[0] == kept.chunks and hashed[1].st_size == kept.size:
                res.respell.append(Respell(key, prefix + item.name, None, None, st.st_ino,
                                           _disk_key(hashed[1])))
                return None
        kind = DIR if stat.S_ISDIR(st.st_mode) else FILE
        loser = Entry(name=item.name, kind=kind, mtime_ns=clamp_time(st.st_mtime_ns),
                      author=self.device)
        folder = nfc(prefix)
        names = on_disk | {nfc(e.name) for e in entries}
        where = copy_path(key, loser, lambda k: TAKEN if k[len(folder):] in names else None,
                          spelled=item.name)
        expect = None if kind == DIR else _disk_key(st)
        res.respell.append(Respell(key, prefix + item.name, prefix + where.name, where.key,
                                   st.st_ino, expect))
        return self._entry(item, st, prefix, where.name, hashed)

    def _file(self, abspath: str, key: str, name: str, st: os.stat_result,
              hashed: tuple[tuple[ObjectId, ...], os.stat_result] | None = None,
              ) -> Entry | None:
        res = self.result
        res.stats["files"] += 1
        self.progress.advance()
        res.stats["bytes"] += st.st_size
        row = self.cache.get(key)
        mtime, ctime = clamp_time(st.st_mtime_ns), clamp_time(st.st_ctime_ns)
        if hashed is None and self._vouched(row, st):
            chunks, author = row.chunks, row.author
        else:
            hashed = hashed or self._hash(abspath, key)
            if hashed is None:
                return None
            chunks, st = hashed
            mtime, ctime = clamp_time(st.st_mtime_ns), clamp_time(st.st_ctime_ns)
            # a touch (same bytes) keeps the version's author; new bytes are ours
            author = row.author if row is not None and row.chunks == chunks else self.device
        if mtime != st.st_mtime_ns:
            res.notices.append(f"{key}: its date ({_date(st.st_mtime_ns)}) is outside what "
                               f"the repository can record; synced as {_date(mtime)}")
        mode = self._mode(st, row)
        racy = abs(self.now_ns - st.st_mtime_ns) < RACY_NS
        res.rows[key] = StatRow(key, st.st_size, -1 if racy else mtime, st.st_ino, ctime,
                                mode, author, chunks)
        res.disk[key] = _disk_key(st)
        return Entry(name=name, kind=FILE, mode=mode, size=st.st_size, mtime_ns=mtime,
                     author=author, chunks=chunks)

    def _vouched(self, row: StatRow | None, st: os.stat_result) -> bool:
        """Whether the stat cache's row vouches for the file as it is (no read needed)."""
        if row is None:
            return False
        assert self.fs is not None
        ino = st.st_ino if self.fs.stable_inodes else row.ino  # made-up ones
        return row.matches(st.st_size, clamp_time(st.st_mtime_ns), ino,
                           clamp_time(st.st_ctime_ns))

    def _mode(self, st: os.stat_result, row: StatRow | None) -> int:
        """Only the executable bit syncs. A filesystem without permission bits (exFAT
        reads 0777 everywhere) tells nothing: the bit stays as last synced (the stat
        cache holds it), and a new file there is not executable."""
        assert self.fs is not None
        if self.fs.modes:
            return tree_mode(bool(st.st_mode & stat.S_IXUSR))
        return tree_mode(row is not None and bool(row.mode & stat.S_IXUSR))

    def _hash(self, abspath: str, key: str) -> tuple[tuple[ObjectId, ...], os.stat_result] | None:
        """Chunk a file; a file that changes while being read is read again (twice at most)."""
        res = self.result
        for attempt in range(3):
            try:
                cut = self.prehash.take(abspath) if attempt == 0 else None
                cut = cut or cut_file(self.chunker, self.opener or _open, abspath)
            except OSError as exc:
                res.skipped.append((key, f"cannot read: {exc.strerror}"))
                return None
            found, before, after = cut
            chunks = [c.id for c in found]
            for c in found:
                res.locations.setdefault(c.id, ChunkLocation(abspath, c.offset, c.length))
            res.stats["hashed"] += 1
            res.stats["bytes_hashed"] += after.st_size
            stable = (before.st_size, before.st_mtime_ns) == (after.st_size, after.st_mtime_ns)
            if stable:
                return tuple(chunks), after
        res.skipped.append((key, "kept changing while being read; will retry next run"))
        return None


def _disk_key(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def _date(ns: int) -> str:
    try:
        return datetime.fromtimestamp(ns // 10**9, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, ValueError, OSError):
        return f"{ns // 10**9} s from 1970"
