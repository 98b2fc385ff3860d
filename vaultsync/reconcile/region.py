"""The part of the trees a merge must see: cost follows the change.

A merge of flat trees is a function of every path, but where base, local and every head
hold the very same entry (folders: the same tree id), nothing can happen: the merge
keeps it. So the merge only needs the *region* around the paths that differ somewhere:

- every changed path, and every folder above one (a folder can survive for its content);
- every entry of a folder that holds a changed path (names a conflict copy could take,
  collisions between siblings), where unchanged folders stay *opaque*: their entries are
  seen, not what is below them.

Everything else is carried from the local tree as it is, subtrees by id. If the merge
puts anything below an opaque folder (a moved file that lands there), that folder is
opened and the merge runs again, so the result is always the flat merge's
(tests/test_region.py checks this against the flat merge on random trees)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace

from vaultsync.model import Entry, Flat, ObjectId, nfc
from vaultsync.reconcile.placement import parent_of

Children = Callable[[str], Iterable[str]]  # the keys of a folder's entries (local tree)


@dataclass
class Region:
    """`keys`: the paths the merge sees. `through`: folders with a change below them
    (rebuilt on commit). `opaque`: unchanged folders seen as entries only."""

    keys: set[str] = field(default_factory=set)
    through: set[str] = field(default_factory=set)
    opaque: set[str] = field(default_factory=set)

    def restrict(self, flat: Mapping[str, Entry]) -> Flat:
        return {k: flat[k] for k in self.keys if k in flat}

    def strays(self, merged: Flat) -> set[str]:
        """Opaque folders that the merge put something below."""
        out = set()
        for key in merged:
            parent = parent_of(key)
            while parent:
                if parent in self.opaque:
                    out.add(parent)
                parent = parent_of(parent)
        return out


def region(changed: set[str], children: Children, local: Mapping[str, Entry]) -> Region:
    """The region around `changed` (keys where some tree differs from `local`)."""
    reg = Region()
    listed: set[str] = set()
    for key in changed:
        reg.keys.add(key)
        folder = parent_of(key)
        if folder not in listed:
            listed.add(folder)
            reg.keys.update(children(folder))
        while folder and folder not in reg.through:
            reg.through.add(folder)
            reg.keys.add(folder)
            folder = parent_of(folder)
    for key in reg.keys:
        entry = local.get(key)
        if (entry is not None and entry.is_dir and key not in changed
                and key not in reg.through):
            reg.opaque.add(key)
    return reg


def open_up(reg: Region, folders: Iterable[str], local: Mapping[str, Entry],
            children: Children) -> None:
    """Make `folders` transparent: everything below them joins the region."""
    todo = [f for f in folders if f in reg.opaque]
    while todo:
        folder = todo.pop()
        reg.opaque.discard(folder)
        reg.through.add(folder)
        for key in children(folder):
            reg.keys.add(key)
            entry = local.get(key)
            if entry is not None and entry.is_dir:
                todo.append(key)
                reg.opaque.discard(key)


def carry(merged: Flat, local: Flat, reg: Region) -> Flat:
    """The whole merged tree: `local` outside the region, the merge's result inside it;
    opaque folders keep their tree ids (carried by id)."""
    out = dict(local)
    for key in reg.keys:
        out.pop(key, None)
    for key, entry in merged.items():
        if key in reg.opaque and entry.is_dir:
            entry = replace(entry, tree=local[key].tree)
        out[key] = entry
    return out


def sparse_trees(merged: Flat, reg: Region, local_entries: Callable[[str], Iterable[Entry]],
                 local: Mapping[str, Entry], encode: Callable[[list[Entry]], ObjectId],
                 ) -> ObjectId:
    """The root id of the merged tree, encoding only folders in or above the region
    (`encode` stores a folder's entries and returns its id). Unchanged entries come
    from the local tree (`local_entries`), unchanged folders by id."""
    kids: dict[str, list[str]] = {}
    for key in merged:
        kids.setdefault(parent_of(key), []).append(key)

    def build(folder: str) -> ObjectId:
        entries: list[Entry] = []
        prefix = folder + "/" if folder else ""
        for entry in local_entries(folder):
            key = prefix + nfc(entry.name)
            if key not in reg.keys:
                entries.append(entry)  # alike in every tree; a folder carried by id
        for key in kids.get(folder, ()):
            entry = merged[key]
            if entry.is_dir:
                if key in reg.opaque and key not in kids:
                    entry = replace(entry, tree=local[key].tree)
                else:
                    entry = replace(entry, tree=build(key))
            entries.append(entry)
        return encode(entries)

    return build("")



def narrowed(disk: Flat, target: Flat, *others: Flat) -> tuple[Flat, ...]:
    """`disk`, `target` (and `others`, e.g. the base) cut to where the plan that turns
    `disk` into `target` has work: the paths whose entries differ (compared by identity:
    whatever is carried is the very same entry), every folder above them and every entry
    of a folder that holds one (the names a conflict copy or a case collision meets).
    Elsewhere the two are alike and the plan, computed on the whole trees, is empty."""
    differ = {k for k, e in target.items() if disk.get(k) is not e}
    differ.update(k for k in disk if k not in target)
    keys: set[str] = set(differ)
    parents: set[str] = set()
    for key in differ:
        folder = parent_of(key)
        parents.add(folder)
        while folder and folder not in keys:
            keys.add(folder)
            folder = parent_of(folder)
    for side in (disk, target):
        keys.update(k for k in side if parent_of(k) in parents)
    return tuple({k: flat[k] for k in keys if k in flat} for flat in (disk, target, *others))
