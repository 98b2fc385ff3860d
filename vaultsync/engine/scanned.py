"""What a scan found (`ScanResult`), with the record it is built from.

The scan records each file the stat cache knew as the cache's own row, and a folder
whose rows all were found as stored as nothing but its subfolders; `flat`, `disk`,
`rows` and `trees` are built from that record when first read, in the scan's order. A
no-change sync reads only the rows, and those are the stored ones, never even decoded.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator, Mapping
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

    def own_tree(self, tree_id: ObjectId) -> Tree | None:
        """A tree of this scan from the entries it holds (the very objects `flat` has
        or will have), not decoded from its encoding; None once the record is gone
        (`flat` was built) or for a tree that is not the scan's."""
        record: Record | None = self.__dict__.get("_record")
        if record is None:
            return None
        folder = record.tree_folders.get(tree_id)
        return None if folder is None else record.tree(folder, share=False)

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
        self.tree_folders: dict[ObjectId, str] = {}  # each tree of the scan -> its folder
        self.cache = cache

    def fetch(self, tree_id: ObjectId) -> bytes | None:
        """A tree's encoding from the object cache."""
        return self.cache.get_object(tree_id) if self.cache is not None else None

    def items(self, prefix: str, share: bool = True) -> list[tuple]:
        """A folder's items, those of a Stored folder with its files read back (`share`:
        the whole cache is read first, so the rows are its very objects: a run that
        reads every folder this way reads them all anyway)."""
        items = self.folders[prefix]
        if items.__class__ is not Stored:
            return items
        assert self.cache is not None
        if share:
            self.cache.read()
        named = [(row[0][len(prefix):], (row[0], row))
                 for row in self.cache.folder(prefix[:-1]).values()]
        named += [(item[1].name, item) for item in items]
        named.sort(key=operator.itemgetter(0))  # the scan's order: by name (ASCII names)
        return [item for _, item in named]

    def tree(self, folder: str, share: bool = True) -> Tree:
        start = len(folder)
        return Tree.of([item_entry(it, start) for it in self.items(folder, share)])

    def encode(self, folder: str) -> bytes:
        return self.tree(folder).encode()

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
            _rows_of(self.items(prefix), rows)
        return rows


def _rows_of(items: list[tuple], rows: dict[str, StatRow]) -> dict[str, StatRow]:
    """The stat rows of a folder's files among its `items` (see Record), into `rows`."""
    for item in items:
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


class Local(Mapping[str, Entry]):
    """The scan's files and folders looked up one folder at a time, never the whole
    `flat` (a small change reads the folders it touches): `get`, `in` and `[]` as on
    `flat`, `disk_key` as on `disk`, the same entry objects on every call. Built from the
    record, or from `flat` and `disk` once those exist."""

    def __init__(self, scan: ScanResult) -> None:
        self._record: Record | None = scan.__dict__.get("_record")
        if self._record is None or "flat" in scan.__dict__:
            self._record = None
            self._flat, self._disk = scan.flat, scan.disk
        self._folders: dict[str, dict[str, tuple]] = {}

    def _info(self, key: str) -> tuple | None:
        if self._record is None:
            entry = self._flat.get(key)
            return None if entry is None else (entry, self._disk.get(key))
        folder, _, _ = key.rpartition("/")
        prefix = folder + "/" if folder else ""
        known = self._folders.get(prefix)
        if known is None:
            known = self._folders[prefix] = {}
            if prefix in self._record.folders:
                start = len(prefix)
                for item in self._record.items(prefix, share=False):
                    second = item[1]
                    if second.__class__ is StatRow:
                        known[item[0]] = (item_entry(item, start),
                                          (second[1], second[2], second[3]))
                    elif len(item) == 4:
                        known[item[0]] = (second, item[3])
                    else:
                        known[item[0]] = (second, None)
        return known.get(key)

    def get(self, key: str, default: Entry | None = None) -> Entry | None:  # type: ignore[override]
        info = self._info(key)
        return default if info is None else info[0]  # type: ignore[no-any-return]

    def __getitem__(self, key: str) -> Entry:
        info = self._info(key)
        if info is None:
            raise KeyError(key)
        return info[0]  # type: ignore[no-any-return]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._info(key) is not None

    def __iter__(self) -> Iterator[str]:
        raise TypeError("Local is looked up key by key, never walked whole")

    def __len__(self) -> int:
        raise TypeError("Local is looked up key by key, never counted whole")

    def disk_key(self, key: str) -> tuple[int, int, int] | None:
        info = self._info(key)
        return None if info is None else info[1]  # type: ignore[no-any-return]

    def rows_by_folder(self, updates: dict[str, StatRow | None], stored: StatCache,
                       ) -> tuple[dict[str, dict[str, StatRow]], list[str]] | None:
        """The stat cache after this run, for the folders it changes only: (folder ->
        its rows by key, folders to drop). None: no record (use the whole rows)."""
        record = self._record
        if record is None:
            return None
        groups: dict[str, dict[str, StatRow]] = {}
        for prefix, items in record.folders.items():
            if items.__class__ is Stored:
                continue  # every row as stored
            groups[prefix[:-1]] = _rows_of(items, {})
        for key, row in updates.items():
            folder = key.rpartition("/")[0]
            group = groups.get(folder)
            if group is None:
                scanned = (folder + "/" if folder else "") in record.folders
                group = groups[folder] = (
                    {r[0]: r for r in stored.folder(folder).values()} if scanned else {})
            if row is None:
                group.pop(key, None)
            else:
                group[key] = row
        on_disk = {prefix[:-1] for prefix in record.folders}
        known = stored.blobs.keys() if stored.unread else stored.counts.keys()
        gone = [f for f in known if f not in on_disk and not groups.get(f)]
        gone += [f for f, rows in groups.items() if not rows and f in known]
        return {f: rows for f, rows in groups.items() if rows}, gone
