"""Which entries of a target tree this disk can hold (design.md, Edges: foreign
filesystems). Pure: the filesystem's answers come in as two functions.

A target may hold names this disk refuses (`Meeting 10:30?.md` on exFAT), or several
names that this disk takes for one (`Dir/` and `dir/` where case is ignored). Of names
that fold to one, one is written: the one already on disk here, else the one in base,
else the first by bytes. The others, and names this disk cannot hold, stay out of the
vault with everything below them: phantoms, reported on each run and kept as they are in
the tree the other devices see (never deleted, moved or merged for them).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from vaultsync.engine.scan import is_temp_name
from vaultsync.model import STATE_DIR, Entry, Flat

CANNOT_HOLD = "this filesystem cannot hold this name"


@dataclass
class Fit:
    flat: Flat  # what is written here
    refused: dict[str, tuple[Entry, str]] = field(default_factory=dict)  # key -> entry, why


def _last(key: str) -> str:
    return key.rpartition("/")[2]


def fit(local: Flat, target: Flat, base: Flat, fold: Callable[[str], str],
        holds: Callable[[str], bool], moved_here: frozenset[str] = frozenset()) -> Fit:
    """`target` without what this disk cannot hold. `local` is what is on disk (its names
    are held, by definition), `moved_here` the target paths an entry on disk moves to,
    `fold` the form under which this disk compares sibling names, `holds(name)` whether
    it can hold a name (asked only of names not on disk)."""
    children: dict[str, list[str]] = defaultdict(list)
    for key in target:
        children[key.rpartition("/")[0]].append(key)
    out = Fit({})

    def refuse(key: str, why: str) -> None:
        todo = [(key, why)]
        while todo:
            key, why = todo.pop()
            out.refused[key] = (target[key], why)
            todo += [(c, f"inside {key}, which this disk cannot hold")
                     for c in children.get(key, ())]

    folders = [""]
    while folders:  # folder by folder, from the root: a refused folder's contents go too
        folder = folders.pop()
        groups: dict[str, list[str]] = {}
        for key in children.get(folder, ()):
            groups.setdefault(fold(target[key].name), []).append(key)
        for folded, keys in groups.items():
            if len(keys) > 1:
                keys.sort(key=lambda k: (k not in local, k not in moved_here, k not in base,
                                         target[k].name.encode()))
                for other in keys[1:]:
                    refuse(other, f"this filesystem ignores case, and {_last(keys[0])!r} "
                                  "takes this name here")
            winner = keys[0]
            why = None if winner in local else _refusal(target[winner].name, folder, folded,
                                                        fold, holds)
            if why is not None:
                refuse(winner, why)
                continue
            out.flat[winner] = target[winner]
            if target[winner].is_dir:
                folders.append(winner)
    return out


def _refusal(name: str, folder: str, folded: str, fold: Callable[[str], str],
             holds: Callable[[str], bool]) -> str | None:
    """Why this disk cannot hold `name` in `folder` (None: it can)."""
    if is_temp_name(name):  # the scan here would remove it as a stale temporary file
        return "a name vaultsync keeps for its temporary files"
    if folder == "" and folded == fold(STATE_DIR):  # `.VaultSync` where case is ignored
        return f"this filesystem ignores case, and {STATE_DIR!r} is vaultsync's own folder"
    return None if holds(name) else CANNOT_HOLD
