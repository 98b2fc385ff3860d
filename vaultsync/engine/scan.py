"""Scan a vault folder into a Merkle tree, rehashing only files whose stat changed.

The stat cache makes a no-change scan cost a directory walk and one stat per file. The
chunker (and its compiled extension) is imported only when some file must be read.
"""

from __future__ import annotations

import marshal
import operator
import os
import re
import stat
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import BinaryIO

from vaultsync.chunking import Chunker, ChunkerParams, Hasher, Prehasher, cut_file
from vaultsync.engine import fsprobe, progress
from vaultsync.engine.fsprobe import FsTraits
from vaultsync.engine.ignore import Folder, IgnoreRules
from vaultsync.engine.scanned import (
    LAZY_FIELDS,
    ChunkLocation,
    Record,
    Respell,
    ScanResult,
    Stored,
    item_entry,
)
from vaultsync.engine.state import StatCache, StatRow, paused_gc
from vaultsync.engine.treememo import memo_key, sig_of
from vaultsync.model import (
    DIR,
    FILE,
    MAX_NAME_BYTES,
    MTIME_MAX,
    MTIME_MIN,
    STATE_DIR,
    Entry,
    ObjectId,
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
_S_IFMT, _S_IFREG, _S_IFDIR, _S_IXUSR = 0o170000, stat.S_IFREG, stat.S_IFDIR, stat.S_IXUSR
_TIME_MIN, _TIME_MAX = MTIME_MIN, MTIME_MAX


def is_temp_name(name: str) -> bool:
    return _TEMP_NAME.match(name) is not None


def clamp_time(ns: int) -> int:
    return min(max(ns, MTIME_MIN), MTIME_MAX)


def tree_mode(executable: bool) -> int:
    return EXEC_MODE if executable else FILE_MODE


def _open(path: str) -> BinaryIO:
    return open(path, "rb")  # noqa: SIM115 - one place to count reads in tests


class _AskEach:
    """Ignore decisions from a plain callable, asked path by path (tests, other callers);
    `IgnoreRules` gives the scan its compiled per-folder views instead."""

    def __init__(self, ignored: Callable[[str, bool], bool], prefix: str = "") -> None:
        self.ignored, self.prefix = ignored, prefix
        self.files: Callable[[str], bool] | None = lambda name: ignored(prefix + name, False)
        self.dirs: Callable[[str], bool] | None = lambda name: ignored(prefix + name, True)

    def child(self, name: str) -> _AskEach:
        return _AskEach(self.ignored, self.prefix + name + "/")


class Scanner:
    def __init__(
        self,
        root: str,
        device: str,
        cache: dict[str, StatRow],
        params: ChunkerParams,
        hasher: Hasher | None = None,
        opener: Callable[[str], BinaryIO] | None = None,
        ignored: Callable[[str, bool], bool] | IgnoreRules | None = None,
        fs: FsTraits | None = None,
    ) -> None:
        self.root = root
        self.device = device
        self.cache = cache
        self.params = params
        self.hasher = hasher or Hasher()
        self.opener = opener
        rules = getattr(ignored, "__self__", ignored)  # `IgnoreRules.ignored` as well
        self.view: Folder | _AskEach | None = (
            rules.root if isinstance(rules, IgnoreRules)
            else _AskEach(ignored) if callable(ignored) else None)
        self._chunker: Chunker | None = None
        self.now_ns = time.time_ns()
        self.fs = fs
        # large files the stat cache cannot vouch for are hashed on worker threads ahead
        # of the walk (`_dir` submits a folder's, `_hash` takes each in turn)
        self.prehash = Prehasher(lambda: self.chunker, lambda p: (self.opener or _open)(p))
        # trees of unchanged folders come from the state's memo instead of being encoded
        self.memo = cache if isinstance(cache, StatCache) else None
        self._tree_key = b""
        # a cache still in folder blobs is read folder by folder, as the walk goes
        self.by_folder = self.memo is not None and self.memo.unread
        self._rows_of: tuple[str, dict[str, StatRow]] = ("", {})
        self.clean_folders = 0  # folders whose every stored row was found again as is

    @property
    def chunker(self) -> Chunker:
        if self._chunker is None:
            self._chunker = Chunker(self.params, self.hasher)
        return self._chunker

    def scan(self) -> ScanResult:
        res = self.result = ScanResult(
            "", {}, {}, {}, {},
            stats={"files": 0, "hashed": 0, "bytes_hashed": 0, "bytes": 0})
        if self.fs is None:
            self.fs = fsprobe.traits(self.root)
        res.fs = self.fs
        self.progress = progress.current()
        self.progress.start("scan", None, "files")
        if self.memo is not None:
            self.memo.seen_trees = {}
            self._tree_key = memo_key()
        self.record = record = Record(self.hasher, res.trees, self.memo)
        self.reused = 0  # rows of the cache found again as they are
        with paused_gc():
            try:
                res.root = self._dir(self.root, "", self.view)
            finally:
                self.prehash.close()
        if (self.memo is not None and self.by_folder and self.reused == res.stats["files"]
                and self.clean_folders == len(self.memo.blobs)):
            record.unchanged = self.memo  # every row as stored, and no other file
        for name in LAZY_FIELDS:  # built from the record when first read
            del res.__dict__[name]
        res.__dict__["_record"] = record
        self.progress.finish()
        return res

    def _dir(self, abspath: str, prefix: str, view: Folder | _AskEach | None) -> ObjectId:
        """Scan one folder; `prefix` is its path as it will be on disk (a folder that is a
        second spelling is scanned under its collision copy's name); `view`: the ignore
        rules as they apply to its children.

        Every entry costs one stat; a file whose stat the cache knows costs a lookup
        and, when nothing about it changed, the very row that was loaded, recorded as
        it is (its entry is made only if someone reads `flat`)."""
        res = self.result
        try:
            with os.scandir(abspath) as it:
                items = list(it)
        except OSError as exc:
            res.skipped.append((prefix.rstrip("/") or ".", f"cannot read folder: {exc.strerror}"))
            items = []
        ascii_names = "".join(map(_NAME, items)).isascii()
        items.sort(key=_NAME if ascii_names else _fs_name)  # by bytes: the same for ASCII
        kprefix = prefix if prefix.isascii() else nfc(prefix)
        files_ignored = view.files if view is not None else None
        dirs_ignored = view.dirs if view is not None else None
        found: list[tuple[str, os.DirEntry[str], os.stat_result, bool]] = []
        more: dict[str, list[tuple[os.DirEntry[str], os.stat_result]]] = {}
        seen: dict[str, tuple[os.DirEntry[str], os.stat_result]] = {}
        for item in items:
            name = item.name
            if name == STATE_DIR:
                continue
            if name.startswith(TMP_PREFIX) and is_temp_name(name):
                res.stale_temps.append(item.path)
                continue
            if name.isascii() and len(name) <= MAX_NAME_BYTES:
                kname = name  # NFC already, and nothing name_problem could refuse
            else:
                problem = name_problem(name)
                if problem:
                    res.skipped.append((os.fsencode(prefix + name).decode("utf-8", "replace"),
                                        problem))
                    continue
                kname = nfc(name)
            try:
                st = item.stat(follow_symlinks=False)
            except OSError as exc:
                res.skipped.append((prefix + name, f"cannot stat: {exc.strerror}"))
                continue
            fmt = st.st_mode & _S_IFMT
            if fmt == _S_IFREG:
                is_dir, decide = False, files_ignored
            elif fmt == _S_IFDIR:
                is_dir, decide = True, dirs_ignored
            else:
                res.skipped.append((prefix + name, "symbolic link (not synced)"
                                    if fmt == stat.S_IFLNK else "not a regular file or folder"))
                continue
            if decide is not None and decide(kname):
                res.ignored.append(kprefix + kname)
                continue
            if not ascii_names:  # two spellings of one name (NFC and NFD)?
                first = seen.setdefault(kname, (item, st))
                if first[0] is not item:
                    more.setdefault(kname, [first]).append((item, st))
                    continue
            found.append((kname, item, st, is_dir))
        out: list[tuple] = []  # this folder's items (see Record)
        self.record.folders[kprefix] = out
        sig: list[tuple] = []  # what its entries are made of, for the memo of trees
        losers = []
        by_folder = self.by_folder
        if by_folder:
            assert self.memo is not None
            here = self.memo.folder(kprefix[:-1])
            self._rows_of = (kprefix[:-1], here)
            cache_get = here.get
        else:
            here = {}
            cache_get = self.cache.get
        others = 0  # files not taken from the cache as they are
        assert self.fs is not None
        modes, stable = self.fs.modes, self.fs.stable_inodes
        racy_after = self.now_ns - RACY_NS
        racy_before = self.now_ns + RACY_NS
        hot = reused = size_sum = 0
        for kname, item, st, is_dir in found:  # large files to read: hashed ahead
            if not is_dir and self.prehash.wants(st.st_size) and not self._vouched(
                    cache_get(kname if by_folder else kprefix + kname), st):
                self.prehash.submit(item.path)
        for kname, item, st, is_dir in found:
            if more and kname in more:
                spellings = self._rank_spellings(prefix, more[kname])
                losers += spellings[1:]
                item, st = spellings[0]
                is_dir = stat.S_ISDIR(st.st_mode)
            if is_dir:
                self._add(out, sig, self._entry(item, st, prefix, item.name, view))
                continue
            key = kprefix + kname
            row = cache_get(kname if by_folder else key)
            size, mtime, ino, ctime = st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns
            if (row is None or row[1] != size or row[2] != mtime or row[4] != ctime
                    or (row[3] != ino and stable) or racy_after < mtime < racy_before
                    or not _TIME_MIN <= mtime <= _TIME_MAX or not _TIME_MIN <= ctime <= _TIME_MAX):
                others += 1
                self._add(out, sig, self._file(item.path, key, item.name, st, row=row))
                continue
            # the stat cache knows this file: nothing to read, nothing to build. Its
            # entry will share the row's objects (path, numbers, chunk ids)
            key, size, mtime = row[0], row[1], row[2]
            if modes:
                mode = EXEC_MODE if st.st_mode & _S_IXUSR else FILE_MODE
            else:
                mode = EXEC_MODE if row[5] & _S_IXUSR else FILE_MODE
            if mode != row[5] or ino != row[3]:
                row = StatRow(key, size, mtime, ino, ctime, mode, row[6], row[7])
            else:
                reused += 1
            name = item.name
            out.append((key, row) if name is kname else (key, row, name))
            sig.append((name, mode, size, mtime, row[6], row[7]))
            hot += 1
            size_sum += size
        if hot:
            res.stats["files"] += hot
            res.stats["bytes"] += size_sum
            self.reused += reused
            self.progress.advance(hot)
        if losers:
            on_disk = {nfc(item.name) for item in items}
            names = on_disk | {nfc(item_entry(it, len(kprefix)).name) for it in out}
            for item, st in losers:
                added = self._second_spelling(item, st, prefix, names, out, view)
                if added is not None:
                    self._add(out, sig, added)
                    names.add(nfc(added[1].name))
        tree_id = self._tree(kprefix, out, sig)
        if (by_folder and here and ascii_names and not others and not losers
                and reused == hot == len(here)):
            # every row of this folder as stored: the record keeps only its folders
            # (its files come back from the cache's blob, in name order, if asked for)
            self.record.folders[kprefix] = Stored([it for it in out if len(it) == 3
                                                    and it[1].__class__ is Entry])
            self.clean_folders += 1
        return tree_id

    @staticmethod
    def _add(out: list[tuple], sig: list[tuple], item: tuple | None) -> None:
        """Record a folder's or a file's item that carries its entry."""
        if item is None:
            return
        out.append(item)
        sig.append(sig_of(item[1]))

    def _tree(self, folder: str, out: list[tuple], sig: list[tuple]) -> ObjectId:
        """The id of the tree of a folder's items (recorded with its encoding in the
        result): the one it had last time when its entries are the same (`sig`)."""
        memo = self.memo
        if memo is None:
            digest = None
        else:
            digest = self.hasher.id(self._tree_key + marshal.dumps(sig, 2))
            known = memo.trees.get(folder)
            if known is not None and known[0] == digest:  # its bytes: when trees is read
                self.record.kept_trees[folder] = known[1]
                self.record.tree_folders[known[1]] = folder
                memo.seen_trees[folder] = known  # type: ignore[index]
                return known[1]
        encoded = self.record.encode(folder)
        tree_id = self.hasher.id(encoded)
        self.result.trees[tree_id] = encoded
        self.record.tree_folders[tree_id] = folder
        if digest is not None:
            memo.seen_trees[folder] = (digest, tree_id)  # type: ignore[union-attr,index]
        return tree_id

    def _entry(self, item: os.DirEntry[str], st: os.stat_result, prefix: str, name: str,
               view: Folder | _AskEach | None,
               hashed: tuple[tuple[ObjectId, ...], os.stat_result] | None = None,
               ) -> tuple | None:
        """The item (see Record) of a file or folder found on disk as `item`, named
        `name` here."""
        key = nfc(prefix + name)
        if stat.S_ISDIR(st.st_mode):
            inner = view.child(key.rpartition("/")[2]) if view is not None else None
            tree = self._dir(item.path, prefix + name + "/", inner)
            return key, Entry(name=name, kind=DIR, tree=tree), key + "/"
        return self._file(item.path, key, name, st, hashed)

    def _rank_spellings(self, prefix: str, spellings: list) -> list:
        """The spellings of one name, the one that keeps it first: the one this device
        synced last (the stat cache knows its inode), else the first by bytes."""
        key = nfc(prefix + spellings[0][0].name)

        def synced(pair: tuple[os.DirEntry[str], os.stat_result]) -> bool:
            item, st = pair
            if not self.fs or not self.fs.stable_inodes:
                return False  # no evidence: the first by bytes keeps the name
            if not stat.S_ISDIR(st.st_mode):
                row = self._row(key)
                return row is not None and row.ino == st.st_ino
            try:
                children = list(os.scandir(item.path))
                for child in children:
                    row = self._row(key + "/" + nfc(child.name))
                    if row is not None and row.ino == child.stat(follow_symlinks=False).st_ino:
                        return True
            except OSError:
                pass
            return False

        return sorted(spellings, key=lambda p: (not synced(p), os.fsencode(p[0].name)))

    def _second_spelling(self, item: os.DirEntry[str], st: os.stat_result, prefix: str,
                         names: set[str], out: list[tuple],
                         view: Folder | _AskEach | None) -> tuple | None:
        """A second spelling of a name already taken in this folder (whose items so far
        are `out`, their names `names`): the same bytes are one file (this one goes to
        the trash); anything else is kept apart under a collision copy's name. The
        rename is only planned here (`Respell`)."""
        res = self.result
        key = nfc(prefix + item.name)
        kept = next((item_entry(it, len(key) - len(key.rpartition("/")[2]))
                     for it in out if it[0] == key), None)
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
        where = copy_path(key, loser, lambda k: TAKEN if k[len(folder):] in names else None,
                          spelled=item.name)
        expect = None if kind == DIR else _disk_key(st)
        res.respell.append(Respell(key, prefix + item.name, prefix + where.name, where.key,
                                   st.st_ino, expect))
        return self._entry(item, st, prefix, where.name, view, hashed)

    def _row(self, key: str) -> StatRow | None:
        """The cached row of `key`."""
        if not self.by_folder:
            return self.cache.get(key)
        folder, _, name = key.rpartition("/")
        if self._rows_of[0] != folder:
            assert self.memo is not None
            self._rows_of = (folder, self.memo.folder(folder))
        return self._rows_of[1].get(name)

    def _file(self, abspath: str, key: str, name: str, st: os.stat_result,
              hashed: tuple[tuple[ObjectId, ...], os.stat_result] | None = None,
              row: StatRow | None | bool = False,
              ) -> tuple[str, Entry, StatRow, tuple[int, int, int]] | None:
        """The item (see Record) of a file: its entry, its new row, what is on disk
        (`row`: its cached row, if the caller looked it up)."""
        res = self.result
        res.stats["files"] += 1
        self.progress.advance()
        res.stats["bytes"] += st.st_size
        if row is False:
            row = self._row(key)
        assert row is not True
        mtime, ctime = clamp_time(st.st_mtime_ns), clamp_time(st.st_ctime_ns)
        assert self.fs is not None
        ino = st.st_ino if self.fs.stable_inodes or row is None else row.ino  # made-up ones
        if hashed is None and row is not None and row.matches(st.st_size, mtime, ino, ctime):
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
        new = StatRow(key, st.st_size, -1 if racy else mtime, st.st_ino, ctime, mode, author,
                      chunks)
        return key, Entry(name=name, kind=FILE, mode=mode, size=st.st_size, mtime_ns=mtime,
                          author=author, chunks=chunks), new, _disk_key(st)

    def _mode(self, st: os.stat_result, row: StatRow | None) -> int:
        """Only the executable bit syncs. A filesystem without permission bits (exFAT
        reads 0777 everywhere) tells nothing: the bit stays as last synced (the stat
        cache holds it), and a new file there is not executable."""
        assert self.fs is not None
        if self.fs.modes:
            return tree_mode(bool(st.st_mode & stat.S_IXUSR))
        return tree_mode(row is not None and bool(row.mode & stat.S_IXUSR))

    def _vouched(self, row: StatRow | None, st: os.stat_result) -> bool:
        """Whether the stat cache's row vouches for the file as it is (no read needed)."""
        if row is None:
            return False
        assert self.fs is not None
        ino = st.st_ino if self.fs.stable_inodes else row.ino  # made-up ones
        return row.matches(st.st_size, clamp_time(st.st_mtime_ns), ino,
                           clamp_time(st.st_ctime_ns))

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


_NAME = operator.attrgetter("name")


def _fs_name(item: os.DirEntry[str]) -> bytes:
    return os.fsencode(item.name)


def _disk_key(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def _date(ns: int) -> str:
    try:
        return datetime.fromtimestamp(ns // 10**9, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, ValueError, OSError):
        return f"{ns // 10**9} s from 1970"
