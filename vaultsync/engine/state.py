"""The local state database (`VAULT/.vaultsync/state.db`).

Holds the stat cache (path -> size, mtime_ns, inode, ctime_ns, mode, author, chunk ids),
the base snapshot id, the known index segments with their blob references, and a cache
of immutable tree and snapshot objects.

The stat cache is kept folder by folder (`folder_rows`: one row per folder, its files'
rows in one marshalled blob): a vault of 100,000 notes loads in a thousand reads, and a
run that changed one note rewrites one folder. With it, per folder, the digest of the
folder's entries at the last scan and the id of their tree (`folder_trees`, see scan).
A state.db from before keeps its rows in `files`: they are read, and moved into
`folder_rows` by the first run that saves the cache.
"""

from __future__ import annotations

import contextlib
import gc
import marshal
import operator
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple

from vaultsync.model import ObjectId
from vaultsync.repository.packs import BlobRef

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, ino INTEGER, ctime_ns INTEGER,
    mode INTEGER, author TEXT, chunks BLOB);
CREATE TABLE IF NOT EXISTS objects (id TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS folder_rows (path TEXT PRIMARY KEY, rows BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS folder_trees (path TEXT PRIMARY KEY, digest TEXT, tree TEXT);
CREATE TABLE IF NOT EXISTS segments (id TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS blob_refs (
    id TEXT, type INTEGER, pack TEXT, offset INTEGER, length INTEGER, raw INTEGER,
    PRIMARY KEY (id, pack)) WITHOUT ROWID;
"""
# before prune, a blob had one reference (`blobs`, keyed by id alone); a blob stored
# again beside a pack a prune names has two: the old table goes, and the segments with
# it, so the index is read again once
MIGRATE = """
DROP TABLE IF EXISTS blobs;
DELETE FROM segments;
"""


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic garbage collection while a million small objects are built that can
    form no cycle (the stat cache, the scan): each full collection would walk them all,
    a quarter of the scan's time at a million files. Collection resumes after."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class StatRow(NamedTuple):
    """What the stat cache remembers of one file. A tuple: a no-change scan reuses the
    loaded rows as they are, and a whole cache is built and compared at C speed."""

    path: str
    size: int
    mtime_ns: int
    ino: int
    ctime_ns: int
    mode: int
    author: str
    chunks: tuple[ObjectId, ...]

    def matches(self, size: int, mtime_ns: int, ino: int, ctime_ns: int) -> bool:
        return (self.size, self.mtime_ns, self.ino, self.ctime_ns) == (size, mtime_ns, ino,
                                                                       ctime_ns)


class StatCache(dict[str, StatRow]):
    """The stat cache as loaded: path -> row, and for each folder the digest of its
    entries at the last scan with the id of the tree they encode to (`trees`), so an
    unchanged folder is not encoded and hashed again. The scan puts what it saw in
    `seen_trees`; saving the rows saves those too.

    As `State.stat_rows` returns it, the rows are still folder blobs (`folder()` reads
    one folder's); used as a dict, it reads them all first (see _Unread)."""

    source: StatCache | None = None  # unread: another cache of the same rows to share

    def __init__(self, state: State | None = None) -> None:
        super().__init__()
        self.state = state
        self.blobs: dict[str, bytes] = {}  # folder -> its rows as stored (never changed)
        self.by_folder: dict[str, list[StatRow]] = {}  # the same, once read
        self.counts: dict[str, int] = {}  # folder -> rows stored for it
        # the rows stored may differ from these (some came from a state.db from before,
        # or a save since): the next save writes every folder
        self.rewrite = False
        self.trees: dict[str, tuple[str, ObjectId]] = {}
        self.seen_trees: dict[str, tuple[str, ObjectId]] | None = None

    def get_object(self, oid: ObjectId) -> bytes | None:
        return self.state.get_object(oid) if self.state is not None else None

    @property
    def unread(self) -> bool:
        """Whether the rows are still folder blobs (read them by `folder`)."""
        return False

    def read(self) -> None:
        """Decode every folder blob into this dict (done already)."""

    def folder(self, folder: str) -> dict[str, StatRow]:
        """The rows of one folder ('' for the root, else its key), by name: once the
        cache is read, the very rows it holds."""
        rows = self.by_folder.get(folder)
        if rows is None:
            return _decode(folder, self.blobs.get(folder))
        start = len(folder) + 1 if folder else 0
        return {row[0][start:]: row for row in rows}

    def same_rows(self) -> StatCache:
        """Another cache holding these same rows (still unread, if these are)."""
        return StatCache.copy_of(self)

    @staticmethod
    def copy_of(cache: StatCache) -> StatCache:
        if not cache.unread:
            out = StatCache(cache.state)
            out.update(cache)
            return out
        out = _Unread(cache.state)
        out.blobs, out.source = cache.blobs, cache
        return out


class _Unread(StatCache):
    """A stat cache whose rows are still folder blobs: the scan reads them folder by
    folder as it goes; anything that uses it as a dict reads them all first (and the
    object is a plain StatCache from then on)."""

    @property
    def unread(self) -> bool:
        return True

    def read(self) -> None:
        if self.__class__ is not _Unread:
            return  # read already (by a method bound before that)
        source = self.source
        self.__class__ = StatCache  # type: ignore[assignment]
        if source is not None:
            source.read()
            dict.update(self, source)
            self.by_folder, self.counts = source.by_folder, dict(source.counts)
            return
        with paused_gc():
            for folder, blob in self.blobs.items():
                rows = list(_decode(folder, blob).values())
                self.counts[folder] = len(rows)
                self.by_folder[folder] = rows
                dict.update(self, {row[0]: row for row in rows})


def _reading(name: str) -> Callable[..., object]:
    method = getattr(dict, name)

    def read_first(self: _Unread, *args: object, **kwargs: object) -> object:
        self.read()
        for other in args:
            if isinstance(other, _Unread):
                other.read()
        return method(self, *args, **kwargs)

    read_first.__name__ = name
    return read_first


for _name in ("__getitem__", "get", "__contains__", "__iter__", "__len__", "keys",
              "values", "items", "__eq__", "__ne__", "__repr__", "copy", "pop", "popitem",
              "setdefault", "update", "__setitem__", "__delitem__", "clear", "__or__",
              "__ror__", "__ior__", "__reversed__"):
    setattr(_Unread, _name, _reading(_name))


def _decode(folder: str, blob: bytes | None) -> dict[str, StatRow]:
    """A folder's rows from their blob, by name. A blob that cannot be read gives none:
    its files are read again, nothing is lost."""
    if blob is None:
        return {}
    try:
        stored = marshal.loads(blob)
    except (ValueError, EOFError, TypeError):
        return {}
    if type(stored) is not dict:
        return {}
    prefix = folder + "/" if folder else ""
    make = tuple.__new__
    rows = {}
    for name, fields in stored.items():
        if type(fields) is tuple and len(fields) == 7 and type(name) is str:
            key = prefix + name
            rows[name] = make(StatRow, (key, *fields))
    return rows


def _pack_ids(ids: Iterable[ObjectId]) -> bytes:
    return b"".join(bytes.fromhex(i) for i in ids)


def _unpack_ids(blob: bytes) -> tuple[ObjectId, ...]:
    text = blob.hex()
    if len(text) == 64:  # the common case: a note is one chunk
        return (text,)
    return tuple(text[i : i + 64] for i in range(0, len(text), 64))


# what SQLite says of a database file it cannot use at all (as opposed to a disk that
# is full or failing, which is a local failure and no reason to drop the state)
_DAMAGE = ("malformed", "not a database", "file is encrypted", "unable to open database file")
REPO_ID = "repo_id"


def is_damage(exc: BaseException | None) -> bool:
    """Whether `exc` says the state database is damaged or unreadable."""
    return isinstance(exc, sqlite3.DatabaseError) and any(
        word in str(exc).lower() for word in _DAMAGE)


class State:
    def __init__(self, path: str) -> None:
        # one connection; the repository's index is looked up from download threads
        # too (sqlite3 serializes a connection's use: threadsafety 3)
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            self.db.execute("PRAGMA journal_mode=DELETE")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(SCHEMA)
            if self.db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND "
                               "name='blobs'").fetchone():
                self.db.executescript(MIGRATE)
            self.db.execute("SELECT count(*) FROM meta").fetchone()  # a first real read
        except BaseException:
            self.db.close()
            raise

    def close(self) -> None:
        self.db.close()

    # ---- meta ------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str | None) -> None:
        if value is None:
            self.db.execute("DELETE FROM meta WHERE key=?", (key,))
        else:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    @property
    def base(self) -> ObjectId | None:
        return self.get_meta("base")

    # ---- stat cache ------------------------------------------------------------------
    def stat_rows(self) -> StatCache:
        with paused_gc():
            return self._stat_rows()

    def _stat_rows(self) -> StatCache:
        rows = _Unread(self)
        rows.blobs = dict(self.db.execute("SELECT path, rows FROM folder_rows"))
        rows.trees = {path: (digest, tree) for path, digest, tree in
                      self.db.execute("SELECT path, digest, tree FROM folder_trees")}
        legacy = self.db.execute(
            "SELECT path, size, mtime_ns, ino, ctime_ns, mode, author, chunks FROM files")
        first = legacy.fetchone()
        if first is None:
            return rows
        rows.read()  # a state.db from before: its rows are moved on the first save
        make = tuple.__new__
        authors: dict[str, str] = {}  # one string per author
        for path, size, mtime, ino, ctime, mode, author, blob in (first, *legacy):
            author = authors.setdefault(author, author)
            rows[path] = make(StatRow, (path, size, mtime, ino, ctime, mode, author,
                                        _unpack_ids(blob)))
        rows.rewrite = True
        return rows

    def save_stat_rows(self, rows: dict[str, StatRow], old: dict[str, StatRow]) -> None:
        """Make the stat cache `rows`, writing only the folders whose rows differ from
        `old` (what was loaded): a no-change run writes nothing (and, as the scan hands
        back the very rows it loaded, finds so without comparing their fields)."""
        cache = old if isinstance(old, StatCache) else None
        if cache is not None and cache.seen_trees is not None:
            self._save_trees(cache.trees, cache.seen_trees)
        if (isinstance(rows, StatCache) and cache is not None and rows.unread
                and cache.unread and rows.blobs is cache.blobs):
            return  # the scan found every row as stored: nothing was even read
        rewrite = cache is not None and cache.rewrite
        get = old.get
        if not rewrite and len(rows) == len(old) and all(
                map(operator.is_, map(get, rows), rows.values())):
            return  # the same paths, the very rows loaded: nothing changed
        groups: dict[str, dict[str, StatRow]] = {}
        for key, r in rows.items():
            folder, _, name = key.rpartition("/")
            group = groups.get(folder)
            if group is None:
                group = groups[folder] = {}
            group[name] = r
        if cache is not None:
            counts = cache.counts
        else:
            counts = {}
            for key in old:
                folder = key.rpartition("/")[0]
                counts[folder] = counts.get(folder, 0) + 1
        put = [(folder, marshal.dumps({name: r[1:] for name, r in group.items()}, 4))
               for folder, group in groups.items()
               if rewrite or counts.get(folder) != len(group)
               or any((o := get(r[0])) is not r and o != r for r in group.values())]
        gone = [(folder,) for folder in counts if folder not in groups]
        if not put and not gone:
            return
        with self.transaction():
            self.db.executemany("DELETE FROM folder_rows WHERE path=?", gone)
            self.db.executemany("INSERT OR REPLACE INTO folder_rows VALUES (?,?)", put)
            self.db.execute("DELETE FROM files")  # rows of a state.db from before
        if cache is not None:  # storage no longer matches what was loaded
            cache.counts = {folder: len(group) for folder, group in groups.items()}
            cache.rewrite = True

    def save_some_rows(self, groups: dict[str, dict[str, StatRow]], gone: list[str],
                       old: StatCache) -> None:
        """Like `save_stat_rows`, given only the folders a run may have changed (`groups`:
        folder -> its rows by key; `gone`: folders to drop); the others stay as stored.
        A folder whose rows are those loaded is not written again."""
        if old.seen_trees is not None:
            self._save_trees(old.trees, old.seen_trees)
        put = []
        for folder, group in groups.items():
            stored = old.folder(folder)
            start = len(folder) + 1 if folder else 0
            if len(stored) == len(group) and all(
                    stored.get(key[start:]) == r for key, r in group.items()):
                continue
            put.append((folder, marshal.dumps({k[start:]: r[1:] for k, r in group.items()},
                                              4)))
        if not put and not gone:
            return
        with self.transaction():
            self.db.executemany("DELETE FROM folder_rows WHERE path=?", [(f,) for f in gone])
            self.db.executemany("INSERT OR REPLACE INTO folder_rows VALUES (?,?)", put)
        old.rewrite = True  # storage no longer matches what was loaded

    def _save_trees(self, known: dict[str, tuple[str, ObjectId]],
                    seen: dict[str, tuple[str, ObjectId]]) -> None:
        put = [(path, digest, tree) for path, (digest, tree) in seen.items()
               if known.get(path) != (digest, tree)]
        gone = [(path,) for path in known if path not in seen]
        if put or gone:
            with self.transaction():
                self.db.executemany("DELETE FROM folder_trees WHERE path=?", gone)
                self.db.executemany("INSERT OR REPLACE INTO folder_trees VALUES (?,?,?)", put)
            known.clear()
            known.update(seen)

    def add_trees(self, memo: dict[str, tuple[str, ObjectId]]) -> None:
        """Add lines to the memo of folder trees (see engine/treememo)."""
        with self.transaction():
            self.db.executemany("INSERT OR REPLACE INTO folder_trees VALUES (?,?,?)",
                                [(path, d, tree) for path, (d, tree) in memo.items()])

    def transaction(self) -> _Tx:
        return _Tx(self.db)

    def forget_remote(self, repo_id: str) -> None:
        """This vault now syncs with another repository (`repo_id`): everything kept about
        the old one goes (base, phantoms, caches, the index, the stat cache's chunk ids).
        The vault re-joins with an empty base."""
        with self.transaction():
            self.db.execute("DELETE FROM meta")
            self.db.execute("DELETE FROM files")
            self.db.execute("DELETE FROM folder_rows")
            self.db.execute("DELETE FROM folder_trees")
            self.db.execute("DELETE FROM blob_refs")
            self.db.execute("DELETE FROM segments")
            self.set_meta(REPO_ID, repo_id)

    # ---- object cache (repository.ObjectCache) ---------------------------------------
    def get_object(self, oid: ObjectId) -> bytes | None:
        row = self.db.execute("SELECT data FROM objects WHERE id=?", (oid,)).fetchone()
        return bytes(row[0]) if row else None

    def put_object(self, oid: ObjectId, data: bytes) -> None:
        self.db.execute("INSERT OR IGNORE INTO objects VALUES (?, ?)", (oid, data))

    def put_objects(self, items: Iterable[tuple[ObjectId, bytes]]) -> None:
        """Many objects in one transaction (one sync of the database, not one each)."""
        if self.db.in_transaction:
            self.db.executemany("INSERT OR IGNORE INTO objects VALUES (?, ?)", items)
            return
        with self.transaction():
            self.db.executemany("INSERT OR IGNORE INTO objects VALUES (?, ?)", items)

    def index_segments(self) -> set[ObjectId]:
        return {r[0] for r in self.db.execute("SELECT id FROM segments")}

    def index_refs(self) -> Iterator[BlobRef]:
        for r in self.db.execute("SELECT id, type, pack, offset, length, raw FROM blob_refs"):
            yield BlobRef(*r)

    def refs_of(self, ids: list[ObjectId]) -> Iterator[BlobRef]:
        marks = ",".join("?" * len(ids))
        for r in self.db.execute("SELECT id, type, pack, offset, length, raw FROM blob_refs "
                                 f"WHERE id IN ({marks})", ids):
            yield BlobRef(*r)

    def add_index_segment(self, sid: ObjectId, refs: list[BlobRef]) -> None:
        with self.transaction():
            self.db.executemany(
                "INSERT OR IGNORE INTO blob_refs VALUES (?,?,?,?,?,?)",
                [(r.id, r.type, r.pack, r.offset, r.length, r.raw_length) for r in refs],
            )
            self.db.execute("INSERT OR IGNORE INTO segments VALUES (?)", (sid,))

    def clear_index(self) -> None:
        with self.transaction():
            self.db.execute("DELETE FROM blob_refs")
            self.db.execute("DELETE FROM segments")


class _Tx:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN")

    def __exit__(self, exc_type: object, *_: object) -> None:
        if not exc_type:
            self.db.execute("COMMIT")
        elif self.db.in_transaction:  # SQLite rolls back by itself on a full disk
            self.db.execute("ROLLBACK")
