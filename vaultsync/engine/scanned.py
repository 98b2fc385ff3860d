"""What a scan found (`ScanResult`), with the record it is built from.

The scan records each file the stat cache knew as the cache's own row, and a folder
whose rows all were found as stored as nothing but its subfolders; `flat`, `disk`,
`rows` and `trees` are built from that record when first read, in the scan's order. A
no-change sync reads only the rows, and those are the stored ones, never even decoded.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field

from vaultsync.chunking import Hasher
from vaultsync.engine.fsprobe import FsTraits
from vaultsync.engine.ignore import IgnoreRules
from vaultsync.engine.state import StatCache, StatRow, paused_gc
from vaultsync.model import FILE, Entry, Flat, ObjectId, Tree


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

    def kept(self, rules: IgnoreRules, key: str, is_dir: bool) -> bool:
        """Whether `rules` (those of this scan) keep the path `key`: for a file this scan
        read, its own decision, so no path is matched twice; else the rules'."""
        if (not is_dir and key in self.disk
                and not (self.respell and any(r.copy == key for r in self.respell))):
            return True  # a collision copy's name was never matched: ask the rules
        return not rules.ignored(key, is_dir)

    # `flat`, `disk`, `rows` and `trees` of a scan are built when first read (see
    # Record): a no-change sync reads only the rows, which then are the loaded ones
    def _build(self, name: str) -> dict:
        done = self.__dict__
        record: Record = done["_record"]
        if name == "trees":
            done["trees"] = record.all_trees()
        elif name == "rows" and "flat" not in done:
            done["rows"] = (record.unchanged.same_rows() if record.unchanged is not None
                            else record.rows())
        else:
            flat, disk, rows = record.flat()
            done.setdefault("rows", rows)
            done["flat"], done["disk"] = flat, disk
        if all(field in done for field in LAZY_FIELDS):
            del done["_record"]
        return done[name]  # type: ignore[no-any-return]


LAZY_FIELDS = ("flat", "rows", "disk", "trees")


def _lazy(name: str) -> property:
    def get(self: ScanResult) -> dict:
        found = self.__dict__.get(name)
        return found if found is not None else self._build(name)

    def put(self: ScanResult, value: dict) -> None:
        self.__dict__[name] = value

    return property(get, put)


for _name in LAZY_FIELDS:  # after @dataclass, whose __init__ sets them as usual
    setattr(ScanResult, _name, _lazy(_name))


class Stored(list):  # type: ignore[type-arg]
    """The items of a folder whose files all are in the stat cache as stored: its
    folders' items only (see Record.items)."""


class Record:
    """What a scan found, folder by folder, in the order its entries come (the order
    of `flat`): `folders` maps a folder's key prefix to its items, each one of
    - (key, row) or (key, row, name): a file the stat cache knew, all of its entry in
      the row (`name`: the spelling on disk, where it is not the key's last name);
    - (key, entry, row, disk): any other file;
    - (key, entry, prefix): a folder, whose own items are under `prefix`.
    `unchanged`: the stat cache as loaded when every row of it was found again as it is
    (then it is the new one too)."""

    def __init__(self, hasher: Hasher, trees: dict[ObjectId, bytes],
                 cache: StatCache | None) -> None:
        self.folders: dict[str, list[tuple]] = {}
        self.unchanged: StatCache | None = None
        self.hasher = hasher
        self.trees = trees  # the trees this scan encoded
        self.kept_trees: dict[str, ObjectId] = {}  # folder -> its tree, from the memo
        self.cache = cache

    def fetch(self, tree_id: ObjectId) -> bytes | None:
        """A tree's encoding from the object cache."""
        return self.cache.get_object(tree_id) if self.cache is not None else None

    def items(self, prefix: str) -> list[tuple]:
        """A folder's items, those of a Stored folder with its files read back."""
        items = self.folders[prefix]
        if items.__class__ is not Stored:
            return items
        assert self.cache is not None
        self.cache.read()  # a run that reads this reads the whole cache: share its rows
        named = [(row[0][len(prefix):], (row[0], row))
                 for row in self.cache.folder(prefix[:-1]).values()]
        named += [(item[1].name, item) for item in items]
        named.sort(key=operator.itemgetter(0))  # the scan's order: by name (ASCII names)
        return [item for _, item in named]

    def encode(self, folder: str) -> bytes:
        start = len(folder)
        return Tree.of([item_entry(it, start) for it in self.items(folder)]).encode()

    def all_trees(self) -> dict[ObjectId, bytes]:
        """Every tree of the scan: those of folders the memo gave too, from the object
        cache, else encoded again (the very bytes: the memo is keyed by the entries)."""
        trees = self.trees
        for folder, tree_id in self.kept_trees.items():
            if tree_id in trees:
                continue
            try:
                encoded = self.fetch(tree_id)
            except Exception:  # noqa: BLE001 - e.g. the state is closed: encode instead
                encoded = None
            if encoded is None or self.hasher.id(encoded) != tree_id:
                encoded = self.encode(folder)
                if self.hasher.id(encoded) != tree_id:
                    raise RuntimeError(f"the tree memo of {folder or '/'} does not hold")
            trees[tree_id] = encoded
        return trees

    def flat(self) -> tuple[Flat, dict[str, tuple[int, int, int]], dict[str, StatRow]]:
        flat: Flat = {}
        disk: dict[str, tuple[int, int, int]] = {}
        rows: dict[str, StatRow] = {}

        def walk(prefix: str) -> None:
            start = len(prefix)
            for item in self.items(prefix):
                key, second = item[0], item[1]
                if second.__class__ is StatRow:
                    row = second
                    rows[key] = row
                    disk[key] = (row[1], row[2], row[3])
                    flat[key] = Entry(item[2] if len(item) == 3 else key[start:], FILE,
                                      row[5], row[1], row[2], row[6], row[7])
                elif len(item) == 4:
                    rows[key], disk[key] = item[2], item[3]
                    flat[key] = second
                else:
                    walk(item[2])
                    flat[key] = second

        with paused_gc():
            walk("")
        return flat, disk, rows

    def rows(self) -> dict[str, StatRow]:
        rows: dict[str, StatRow] = {}
        for prefix in self.folders:
            for item in self.items(prefix):
                second = item[1]
                if second.__class__ is StatRow:
                    rows[item[0]] = second
                elif len(item) == 4:
                    rows[item[0]] = item[2]
        return rows



def item_entry(item: tuple, start: int) -> Entry:
    """The entry of a folder's item (see Record); `start`: its folder's key length."""
    second = item[1]
    if second.__class__ is not StatRow:
        return second  # type: ignore[no-any-return]
    key, row = item[0], second
    return Entry(item[2] if len(item) == 3 else key[start:], FILE, row[5], row[1], row[2],
                 row[6], row[7])
