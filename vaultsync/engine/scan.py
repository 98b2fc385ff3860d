"""Scan a vault folder into a Merkle tree, rehashing only files whose stat changed.

The stat cache makes a no-change scan cost a directory walk and one stat per file. The
chunker (and its compiled extension) is imported only when some file must be read.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

from vaultsync.chunking import Chunker, ChunkerParams, Hasher
from vaultsync.engine import progress
from vaultsync.engine.state import StatRow
from vaultsync.model import DIR, FILE, STATE_DIR, Entry, Flat, ObjectId, Tree, name_problem, nfc

TMP_PREFIX = ".vaultsync-tmp-"
RACY_NS = 2_000_000_000  # files modified this recently are not trusted to the stat cache


@dataclass(frozen=True, slots=True)
class ChunkLocation:
    path: str  # absolute path of a file that holds the chunk
    offset: int
    length: int


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

    @property
    def chunker(self) -> Chunker:
        if self._chunker is None:
            self._chunker = Chunker(self.params, self.hasher)
        return self._chunker

    def scan(self) -> ScanResult:
        self.result = ScanResult("", {}, {}, {}, {},
                                 stats={"files": 0, "hashed": 0, "bytes_hashed": 0, "bytes": 0})
        self.progress = progress.current()
        self.progress.start("scan", None, "files")
        self.result.root = self._dir(self.root, "")
        self.progress.finish()
        return self.result

    def _dir(self, abspath: str, prefix: str) -> ObjectId:
        res = self.result
        entries: list[Entry] = []
        keys: set[str] = set()
        try:
            items = sorted(os.scandir(abspath), key=lambda d: d.name)
        except OSError as exc:
            res.skipped.append((prefix.rstrip("/") or ".", f"cannot read folder: {exc.strerror}"))
            items = []
        for item in items:
            name = item.name
            if name == STATE_DIR:
                continue
            if name.startswith(TMP_PREFIX):
                res.stale_temps.append(item.path)
                continue
            rel = prefix + name
            problem = name_problem(name)
            if problem:
                res.skipped.append((os.fsencode(rel).decode("utf-8", "replace"), problem))
                continue
            key = nfc(rel)
            if nfc(name) in keys:
                res.skipped.append((rel, "another name in this folder has the same Unicode form"))
                continue
            try:
                st = item.stat(follow_symlinks=False)
            except OSError as exc:
                res.skipped.append((rel, f"cannot stat: {exc.strerror}"))
                continue
            if stat.S_ISLNK(st.st_mode):
                res.skipped.append((rel, "symbolic link (not synced)"))
                continue
            if self.ignored(key, stat.S_ISDIR(st.st_mode)):
                res.ignored.append(key)
                continue
            if stat.S_ISDIR(st.st_mode):
                tree_id = self._dir(item.path, rel + "/")
                entry = Entry(name=name, kind=DIR, tree=tree_id)
            elif stat.S_ISREG(st.st_mode):
                file_entry = self._file(item.path, key, name, st)
                if file_entry is None:
                    continue
                entry = file_entry
            else:
                res.skipped.append((rel, "not a regular file or folder"))
                continue
            keys.add(nfc(name))
            entries.append(entry)
            res.flat[key] = entry
        tree = Tree.of(entries)
        encoded = tree.encode()
        tree_id = self.hasher.id(encoded)
        res.trees[tree_id] = encoded
        return tree_id

    def _file(self, abspath: str, key: str, name: str, st: os.stat_result) -> Entry | None:
        res = self.result
        res.stats["files"] += 1
        self.progress.advance()
        res.stats["bytes"] += st.st_size
        row = self.cache.get(key)
        if row is not None and row.matches(st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns):
            chunks, author = row.chunks, row.author
        else:
            hashed = self._hash(abspath, key)
            if hashed is None:
                return None
            chunks, st = hashed
            # a touch (same bytes) keeps the version's author; new bytes are ours
            author = row.author if row is not None and row.chunks == chunks else self.device
        mode = stat.S_IMODE(st.st_mode)
        racy = self.now_ns - st.st_mtime_ns < RACY_NS
        res.rows[key] = StatRow(key, st.st_size, -1 if racy else st.st_mtime_ns, st.st_ino,
                                st.st_ctime_ns, mode, author, chunks)
        res.disk[key] = (st.st_size, st.st_mtime_ns, st.st_ino)
        return Entry(name=name, kind=FILE, mode=mode, size=st.st_size, mtime_ns=st.st_mtime_ns,
                     author=author, chunks=chunks)

    def _hash(self, abspath: str, key: str) -> tuple[tuple[ObjectId, ...], os.stat_result] | None:
        """Chunk a file; a file that changes while being read is read again (twice at most)."""
        res = self.result
        for _attempt in range(3):
            try:
                with (self.opener or _open)(abspath) as f:
                    before = os.fstat(f.fileno())
                    chunks = []
                    for c in self.chunker.chunks(f):
                        chunks.append(c.id)
                        res.locations.setdefault(c.id, ChunkLocation(abspath, c.offset, c.length))
                    after = os.fstat(f.fileno())
            except OSError as exc:
                res.skipped.append((key, f"cannot read: {exc.strerror}"))
                return None
            res.stats["hashed"] += 1
            res.stats["bytes_hashed"] += after.st_size
            stable = (before.st_size, before.st_mtime_ns) == (after.st_size, after.st_mtime_ns)
            if stable:
                return tuple(chunks), after
        res.skipped.append((key, "kept changing while being read; will retry next run"))
        return None
