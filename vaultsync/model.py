"""The data vaultsync reasons about: ids, tree entries, trees, snapshots.

Plain frozen dataclasses with a canonical encoding and strict decoding; no I/O. Anything
decoded from a remote passes through `decode_tree` / `decode_snapshot`, which reject
hostile names (`..`, `/`, empty, NUL, the reserved `.vaultsync`) and absurd numbers, so
code further on can trust a `Tree` it is handed.
"""

from __future__ import annotations

import json
import re
import stat
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from vaultsync.errors import IntegrityError

ObjectId = str  # 64 lowercase hex digits: a 256-bit repository hash
_ID_RE = re.compile(r"[0-9a-f]{64}\Z")
STATE_DIR = ".vaultsync"
FILE = "f"
DIR = "d"
MAX_SIZE = 1 << 50  # 1 PiB: anything larger in a remote object is hostile or corrupt
MAX_NAME_BYTES = 1024
# the file times a tree holds (ns since 1970, about 1823-2116); the scan clamps to them
MTIME_MIN, MTIME_MAX = -(1 << 62), 1 << 62


def is_object_id(value: object) -> bool:
    return isinstance(value, str) and _ID_RE.match(value) is not None


def nfc(text: str) -> str:
    """The key of a path: its NFC form (a device keeps the spelling it has on disk)."""
    return unicodedata.normalize("NFC", text)


def name_problem(name: object) -> str | None:
    """Why `name` cannot be one component of a vault path, or None when it can."""
    if not isinstance(name, str) or name == "":
        return "empty name"
    if name in (".", ".."):
        return f"relative name {name!r}"
    if "/" in name or "\x00" in name:
        return f"name {name!r} contains a separator or NUL"
    if name == STATE_DIR:
        return f"reserved name {STATE_DIR!r}"
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        return f"name {name!r} is not valid Unicode"
    if len(encoded) > MAX_NAME_BYTES:
        return "name longer than 1024 bytes"
    return None


def check_relpath(path: str) -> str:
    """Validate a '/'-separated relative vault path and return it unchanged."""
    if path.startswith("/"):
        raise IntegrityError(f"absolute path {path!r} refused")
    for part in path.split("/"):
        problem = name_problem(part)
        if problem:
            raise IntegrityError(f"path {path!r} refused: {problem}")
    return path


@dataclass(frozen=True, slots=True)
class Entry:
    """One name in a tree: a file (with its chunk ids) or a folder (with its tree id)."""

    name: str
    kind: str = FILE
    mode: int = 0o644  # permission bits; only the executable bit takes part in merges
    size: int = 0
    mtime_ns: int = 0
    author: str = ""  # device id that wrote this version
    chunks: tuple[ObjectId, ...] = ()
    tree: ObjectId | None = None

    @property
    def is_dir(self) -> bool:
        return self.kind == DIR

    @property
    def executable(self) -> bool:
        return bool(self.mode & stat.S_IXUSR)

    def same_content(self, other: Entry | None) -> bool:
        """Same bytes (or both folders): what 'unchanged' means, whatever the mtime."""
        if other is None or other.kind != self.kind:
            return False
        return self.is_dir or (self.chunks == other.chunks and self.size == other.size)

    def same_version(self, other: Entry | None) -> bool:
        """Same content and executable bit: the merge's notion of equality."""
        return self.same_content(other) and (
            self.is_dir or self.executable == other.executable  # type: ignore[union-attr]
        )

    def to_json(self) -> dict[str, object]:
        if self.is_dir:
            return {"n": self.name, "k": DIR, "i": self.tree}
        return {
            "n": self.name,
            "k": FILE,
            "m": self.mode,
            "s": self.size,
            "t": self.mtime_ns,
            "a": self.author,
            "c": list(self.chunks),
        }


def _sort_key(entry: Entry) -> tuple[str, str]:
    return (nfc(entry.name), entry.name)


@dataclass(frozen=True, slots=True)
class Tree:
    """One folder's entries, sorted canonically; its id is the hash of `encode()`."""

    entries: tuple[Entry, ...] = ()

    @staticmethod
    def of(entries: list[Entry] | tuple[Entry, ...]) -> Tree:
        return Tree(tuple(sorted(entries, key=_sort_key)))

    def encode(self) -> bytes:
        doc = {"v": 1, "e": [e.to_json() for e in self.entries]}
        return canonical_json(doc)


def canonical_json(doc: object) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _load_json(data: bytes, what: str) -> dict:
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise IntegrityError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise IntegrityError(f"{what} is not a JSON object")
    return doc


def _int(value: object, what: str, lo: int = 0, hi: int = MAX_SIZE) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise IntegrityError(f"{what} has an absurd or missing number: {value!r}")
    return value


def _id(value: object, what: str) -> ObjectId:
    if not is_object_id(value):
        raise IntegrityError(f"{what} has an invalid object id: {value!r}")
    return value  # type: ignore[return-value]


def decode_entry(raw: object, what: str, need_tree: bool = True) -> Entry:
    """One entry from its JSON form, refusing hostile names and absurd numbers."""
    if not isinstance(raw, dict):
        raise IntegrityError(f"{what} has a malformed entry")
    name = raw.get("n")
    problem = name_problem(name)
    if problem or not isinstance(name, str):
        raise IntegrityError(f"{what} refused: {problem}")
    if raw.get("k") == DIR:
        tree = _id(raw.get("i"), what) if need_tree or raw.get("i") is not None else None
        return Entry(name=name, kind=DIR, tree=tree)
    if raw.get("k") != FILE:
        raise IntegrityError(f"{what} has an entry of unknown kind")
    chunks = raw.get("c")
    if not isinstance(chunks, list):
        raise IntegrityError(f"{what} has a file without a chunk list")
    author = raw.get("a")
    if not isinstance(author, str) or len(author) > 128:
        raise IntegrityError(f"{what} has a malformed author")
    return Entry(
        name=name,
        kind=FILE,
        mode=_int(raw.get("m"), what, 0, 0o7777),
        size=_int(raw.get("s"), what),
        mtime_ns=_int(raw.get("t"), what, MTIME_MIN, MTIME_MAX),
        author=author,
        chunks=tuple(_id(c, what) for c in chunks),
    )


def decode_tree(data: bytes, what: str = "tree") -> Tree:
    doc = _load_json(data, what)
    if doc.get("v") != 1 or not isinstance(doc.get("e"), list):
        raise IntegrityError(f"{what} has an unknown layout")
    entries = []
    seen: set[str] = set()
    for raw in doc["e"]:
        entry = decode_entry(raw, what)
        if entry.name in seen:
            raise IntegrityError(f"{what} names {entry.name!r} twice")
        seen.add(entry.name)
        entries.append(entry)
    tree = Tree.of(entries)
    if tree.entries != tuple(entries):
        raise IntegrityError(f"{what} is not in canonical order")
    return tree


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A commit: the root tree, the snapshots it descends from, who made it and when."""

    tree: ObjectId
    parents: tuple[ObjectId, ...]
    device: str
    device_name: str
    time_ns: int
    files: int = 0
    size: int = 0
    message: str = ""
    extra: dict[str, object] = field(default_factory=dict, compare=False, hash=False)

    def encode(self) -> bytes:
        doc = {
            "v": 1,
            "tree": self.tree,
            "parents": list(self.parents),
            "device": self.device,
            "device_name": self.device_name,
            "time_ns": self.time_ns,
            "files": self.files,
            "size": self.size,
            "message": self.message,
        }
        return canonical_json(doc)


def decode_snapshot(data: bytes, what: str = "snapshot") -> Snapshot:
    doc = _load_json(data, what)
    if doc.get("v") != 1:
        raise IntegrityError(f"{what} has an unknown layout")
    parents = doc.get("parents")
    if not isinstance(parents, list) or len(parents) > 64:
        raise IntegrityError(f"{what} has malformed parents")
    for key in ("device", "device_name", "message"):
        if not isinstance(doc.get(key), str) or len(doc[key]) > 4096:
            raise IntegrityError(f"{what} has a malformed {key}")
    return Snapshot(
        tree=_id(doc.get("tree"), what),
        parents=tuple(_id(p, what) for p in parents),
        device=doc["device"],
        device_name=doc["device_name"],
        time_ns=_int(doc.get("time_ns"), what, -(1 << 63), 1 << 63),  # any clock: informative
        files=_int(doc.get("files"), what),
        size=_int(doc.get("size"), what),
        message=doc["message"],
    )


# A flat view of a tree: NFC path key -> entry (folders included, as kind DIR).
Flat = dict[str, Entry]


def flatten(root: ObjectId, get_tree: Callable[[ObjectId], Tree]) -> Flat:
    """Every path below `root`, keyed by NFC path; `get_tree` supplies tree objects."""
    out: Flat = {}
    for path, entry in walk(root, get_tree):
        out[path] = entry
    return out


def walk(
    root: ObjectId, get_tree: Callable[[ObjectId], Tree], prefix: str = ""
) -> Iterator[tuple[str, Entry]]:
    for entry in get_tree(root).entries:
        path = prefix + nfc(entry.name)
        yield path, entry
        if entry.is_dir and entry.tree is not None:
            yield from walk(entry.tree, get_tree, path + "/")


def disk_path(flat: Flat, key: str) -> str:
    """The on-disk spelling of `key`, built from the entries' own names."""
    parts = key.split("/")
    out = []
    for i in range(len(parts)):
        entry = flat.get("/".join(parts[: i + 1]))
        out.append(entry.name if entry is not None else parts[i])
    return "/".join(out)


Change = tuple[str, Entry | None, Entry | None]  # (NFC path, entry in a, entry in b)


def diff_trees(
    a: ObjectId | None, b: ObjectId | None, get_tree: Callable[[ObjectId], Tree],
    prefix: str = "", *, folders: bool = False,
) -> Iterator[Change]:
    """Every path whose entry differs between trees `a` and `b` (None: empty tree).
    Subtrees with equal ids are skipped without being loaded: the Merkle property.
    A folder on both sides whose contents differ is yielded too when `folders` is set
    (its entries differ only by tree id); its contents always are."""
    if a == b:
        return
    ea = {nfc(e.name): e for e in get_tree(a).entries} if a else {}
    eb = {nfc(e.name): e for e in get_tree(b).entries} if b else {}
    for name in sorted(ea.keys() | eb.keys()):
        x, y = ea.get(name), eb.get(name)
        if x == y:
            continue
        key = prefix + name
        if x is not None and y is not None and x.is_dir and y.is_dir:
            if folders:
                yield key, x, y
            yield from diff_trees(x.tree, y.tree, get_tree, key + "/", folders=folders)
            continue
        yield key, x, y
        if x is not None and x.is_dir and x.tree:
            yield from ((k, e, None) for k, e in walk(x.tree, get_tree, key + "/"))
        if y is not None and y.is_dir and y.tree:
            yield from ((k, None, e) for k, e in walk(y.tree, get_tree, key + "/"))


def derive_flat(flat: Flat, a: ObjectId | None, b: ObjectId | None,
                get_tree: Callable[[ObjectId], Tree]) -> Flat:
    """`flatten(b)`, given `flat == flatten(a)`: a copy of `flat` with the differences
    patched in. Costs a dict copy plus the subtrees that differ (equal ones are never
    loaded), where `flatten` decodes every tree."""
    out = dict(flat)
    for key, _x, y in diff_trees(a, b, get_tree, folders=True):
        if y is None:
            out.pop(key, None)
        else:
            out[key] = y
    return out


def lookup(root: ObjectId | None, key: str, get_tree: Callable[[ObjectId], Tree]) -> Entry | None:
    """The entry at NFC path `key` in tree `root` (None: not there)."""
    tid = root
    entry = None
    for part in key.split("/"):
        if tid is None:
            return None
        entry = next((e for e in get_tree(tid).entries if nfc(e.name) == part), None)
        if entry is None:
            return None
        tid = entry.tree if entry.is_dir else None
    return entry
