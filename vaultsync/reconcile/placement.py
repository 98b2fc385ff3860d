"""Putting merged entries at their paths: collisions, surviving folders, conflict copies.

Every merged identity arrives as an `Out` (a path and an entry). Several may land on one
path, or (on a case-insensitive filesystem) on paths equal under case folding:

- folders are one folder; a file that meets a folder takes a conflict name;
- a path that is an ancestor of anything kept is a folder (a folder deleted on one side
  stays while something inside it survives, restored from any side that had it);
- files with equal bytes are one file (the newer mtime's entry, executable if any was);
- different files: the newer mtime stays (tie: the greater device id), each other content
  becomes a conflict copy named from its own mtime and author (`conflicts.copy_path`: a
  taken copy name gets `-2`, `-3`...; a copy name already holding the same bytes is that
  copy).

Everything is ordered by data, never by which side an entry came from: the result is the
same whichever device computes it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace

from vaultsync.model import DIR, Entry, Flat, nfc
from vaultsync.reconcile.conflicts import copy_path
from vaultsync.reconcile.renames import content_key

NEW = "new"  # an identity with no base: an add
EDIT = "edit"  # one of the two sides of an edit/edit conflict
KEPT = "kept"  # anything else

EDIT_EDIT = "edit/edit"
ADD_ADD = "add/add"
FILE_FOLDER = "file/folder"
CASE = "case"
COLLISION = "collision"  # e.g. a moved file landing on a path the other side created


@dataclass(frozen=True, slots=True)
class Out:
    key: str
    entry: Entry
    tag: str = KEPT


@dataclass(frozen=True, slots=True)
class Conflict:
    """A version kept under a conflict name: `copy` next to the winner at `path`."""

    path: str
    copy: str
    winner_author: str
    loser_author: str
    reason: str


@dataclass(frozen=True, slots=True)
class _Copy:
    origin: str  # the path the loser wanted (its name gives the copy's name)
    entry: Entry
    winner: str  # path of what stayed
    winner_author: str
    reason: str


def rank(entry: Entry) -> tuple:
    """Total order on versions: newer mtime, then greater device id, then the rest."""
    return (
        entry.mtime_ns,
        entry.author,
        entry.name,
        entry.kind,
        entry.mode,
        entry.size,
        entry.chunks,
        entry.tree or "",
    )


def parent_of(key: str) -> str:
    return key.rsplit("/", 1)[0] if "/" in key else ""


def last_of(key: str) -> str:
    return key.rsplit("/", 1)[-1]


def join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


def _fold_case(key: str) -> str:
    return nfc(key.lower())


def _same(key: str) -> str:
    return key


def place(
    outs: list[Out], base: Flat, sources: tuple[Flat, ...], case_insensitive: bool
) -> tuple[Flat, tuple[Conflict, ...]]:
    """Lay `outs` into one Flat; `sources` supply folders to restore (base, local, remote)."""
    fold = _fold_case if case_insensitive else _same
    groups: dict[str, list[Out]] = defaultdict(list)
    members: dict[str, set[str]] = defaultdict(set)
    for out in outs:
        groups[fold(out.key)].append(out)
        members[fold(out.key)].add(out.key)
    ancestors = _close({parent_of(o.key) for o in outs})
    for ancestor in ancestors:
        groups.setdefault(fold(ancestor), [])
        members[fold(ancestor)].add(ancestor)
    required = {fold(a) for a in ancestors}
    alias: dict[str, str] = {"": ""}
    placed: Flat = {}
    taken: dict[str, str] = {}  # folded key -> placed key
    copies: list[_Copy] = []
    for folded in sorted(groups, key=lambda f: (f.count("/"), f)):
        group, keys = groups[folded], members[folded]
        files = [o for o in group if not o.entry.is_dir]
        dirs = [o for o in group if o.entry.is_dir]
        if dirs or folded in required:
            key, entry = _folder(dirs, keys, base, sources, alias)
            for k in keys:
                alias[k] = key
            for o in files:
                copies.append(_Copy(_moved(o.key, alias), o.entry, key, entry.author, FILE_FOLDER))
        else:
            key, entry, losers = _files(files, alias)
            for loser in losers:
                copies.append(replace(loser, winner=key, winner_author=entry.author))
        placed[key] = entry
        taken[fold(key)] = key
    conflicts = [_name_copy(c, placed, taken, fold) for c in sorted(copies, key=_copy_order)]
    merged = {k: placed[k] for k in sorted(placed)}
    return merged, tuple(sorted(conflicts, key=lambda c: (c.path, c.copy)))


def _close(keys: set[str]) -> set[str]:
    """`keys` and all their ancestors (the root "" excluded)."""
    out: set[str] = set()
    for key in keys:
        while key and key not in out:
            out.add(key)
            key = parent_of(key)
    return out


def _moved(key: str, alias: dict[str, str]) -> str:
    """`key` under its parent's placed spelling (folders equal under case fold are one)."""
    return join(alias[parent_of(key)], last_of(key))


def _respell(entry: Entry, key: str) -> Entry:
    last = last_of(key)
    return entry if nfc(entry.name) == last else replace(entry, name=last)


def _folder(
    dirs: list[Out], keys: set[str], base: Flat, sources: tuple[Flat, ...], alias: dict
) -> tuple[str, Entry]:
    def order(k: str) -> tuple[bool, str]:
        there = base.get(k)
        return (there is None or not there.is_dir, k)

    if dirs:
        canon = min((o.key for o in dirs), key=order)
        entry = max((o.entry for o in dirs if o.key == canon), key=rank)
    else:
        canon = min(keys, key=order)
        found = [s[k] for s in sources for k in keys if k in s and s[k].is_dir]
        entry = max(found, key=rank) if found else Entry(name=last_of(canon), kind=DIR, mode=0o755)
    key = _moved(canon, alias)
    return key, _respell(replace(entry, tree=None), key)


def _files(files: list[Out], alias: dict) -> tuple[str, Entry, list[_Copy]]:
    if len(files) == 1:  # the common case: nothing else wants this path
        key = _moved(files[0].key, alias)
        return key, _respell(files[0].entry, key), []
    classes: dict[tuple, list[Out]] = defaultdict(list)
    for o in files:
        classes[content_key(o.entry)].append(o)
    reps = []
    for same in classes.values():
        best = max(same, key=lambda o: rank(o.entry))
        entry = best.entry
        if not entry.executable and any(o.entry.executable for o in same):
            donor = max((o.entry for o in same if o.entry.executable), key=rank)
            entry = replace(entry, mode=entry.mode | (donor.mode & 0o111))
        reps.append(Out(best.key, entry, best.tag))
    reps.sort(key=lambda o: rank(o.entry), reverse=True)
    winner = reps[0]
    key = _moved(winner.key, alias)
    reason = _reason(files)
    losers = [_Copy(_moved(o.key, alias), o.entry, key, "", reason) for o in reps[1:]]
    return key, _respell(winner.entry, key), losers


def _reason(files: list[Out]) -> str:
    if len({o.key for o in files}) > 1:
        return CASE
    tags = {o.tag for o in files}
    if EDIT in tags:
        return EDIT_EDIT
    if tags == {NEW}:
        return ADD_ADD
    return COLLISION


def _copy_order(copy: _Copy) -> tuple:
    return (copy.origin, rank(copy.entry))


def _name_copy(copy: _Copy, placed: Flat, taken: dict[str, str], fold) -> Conflict:
    last = last_of(copy.origin)
    name = copy.entry.name if nfc(copy.entry.name) == last else last

    def at(key: str) -> Entry | None:
        holder = taken.get(fold(key))
        return None if holder is None else placed[holder]

    where = copy_path(copy.origin, copy.entry, at, spelled=name)
    if where.exists:
        key = taken[fold(where.key)]  # that copy exists already (the same conflict)
    else:
        key = where.key
        placed[key] = replace(copy.entry, name=where.name)
        taken[fold(key)] = key
    return Conflict(copy.winner, key, copy.winner_author, copy.entry.author, copy.reason)
