"""The local state database (`VAULT/.vaultsync/state.db`).

Holds the stat cache (path -> size, mtime_ns, inode, ctime_ns, mode, author, chunk ids),
the base snapshot id, the known index segments with their blob references, and a cache
of immutable tree and snapshot objects.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from vaultsync.model import ObjectId
from vaultsync.repository.packs import BlobRef

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, ino INTEGER, ctime_ns INTEGER,
    mode INTEGER, author TEXT, chunks BLOB);
CREATE TABLE IF NOT EXISTS objects (id TEXT PRIMARY KEY, data BLOB NOT NULL);
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
    `seen_trees`; saving the rows saves those too."""

    def __init__(self, state: State | None = None) -> None:
        super().__init__()
        self.state = state
        self.trees: dict[str, tuple[str, ObjectId]] = {}
        self.seen_trees: dict[str, tuple[str, ObjectId]] | None = None

    def get_object(self, oid: ObjectId) -> bytes | None:
        return self.state.get_object(oid) if self.state is not None else None


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
        self.db = sqlite3.connect(path, isolation_level=None)
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
        make = tuple.__new__
        authors: dict[str, str] = {}  # one string per author
        rows = StatCache(self)
        for path, size, mtime, ino, ctime, mode, author, blob in self.db.execute(
                "SELECT path, size, mtime_ns, ino, ctime_ns, mode, author, chunks FROM files"):
            author = authors.setdefault(author, author)
            rows[path] = make(StatRow, (path, size, mtime, ino, ctime, mode, author,
                                        _unpack_ids(blob)))
        rows.trees = {path: (digest, tree) for path, digest, tree in
                      self.db.execute("SELECT path, digest, tree FROM folder_trees")}
        return rows

    def save_stat_rows(self, rows: dict[str, StatRow], old: dict[str, StatRow]) -> None:
        """Make the stat cache `rows`, writing only what differs from `old` (what was
        loaded): a no-change run writes nothing (and, as the scan hands back the very
        rows it loaded, finds so without comparing their fields)."""
        if isinstance(old, StatCache) and old.seen_trees is not None:
            self._save_trees(old.trees, old.seen_trees)
        get = old.get
        changed = [r for key, r in rows.items() if (o := get(key)) is not r and o != r]
        if not changed and len(rows) == len(old):  # then both hold the same paths
            return
        gone = [(key,) for key in old if key not in rows]
        if not changed and not gone:
            return
        with self.transaction():
            self.db.executemany("DELETE FROM files WHERE path=?", gone)
            self.db.executemany(
                "INSERT OR REPLACE INTO files VALUES (?,?,?,?,?,?,?,?)",
                [(r.path, r.size, r.mtime_ns, r.ino, r.ctime_ns, r.mode, r.author,
                  _pack_ids(r.chunks)) for r in changed],
            )

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

    def transaction(self) -> _Tx:
        return _Tx(self.db)

    def forget_remote(self, repo_id: str) -> None:
        """This vault now syncs with another repository (`repo_id`): everything kept about
        the old one goes (base, phantoms, caches, the index, the stat cache's chunk ids).
        The vault re-joins with an empty base."""
        with self.transaction():
            self.db.execute("DELETE FROM meta")
            self.db.execute("DELETE FROM files")
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

    def index_segments(self) -> set[ObjectId]:
        return {r[0] for r in self.db.execute("SELECT id FROM segments")}

    def index_refs(self) -> Iterator[BlobRef]:
        for r in self.db.execute("SELECT id, type, pack, offset, length, raw FROM blob_refs"):
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
