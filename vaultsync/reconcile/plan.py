"""What applying a merge to a vault means: the actions that turn one Flat into another.

`diff(old, new)` compares the vault as scanned (`old`) with the merged tree (`new`) and
returns a `Plan`. Pure data, no I/O: the apply step carries it out, checking before each
action that the path still holds `Action.old` (if not, that is a conflict, not an
overwrite). Differences of mtime or of Unicode spelling alone are not actions: a device
keeps the spelling it has on disk.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from vaultsync.model import Entry, Flat
from vaultsync.reconcile.renames import Move, content_key

MKDIR = "mkdir"  # create a folder
MOVE = "move"  # rename `src` to `path` (then set `entry`'s mode and mtime)
DELETE = "delete"  # remove a file (to the trash) that still holds `old`
RMDIR = "rmdir"  # remove a folder once empty
ADD = "add"  # write a new file
UPDATE = "update"  # replace `old`'s content with `entry`'s (old goes to the trash)
CHMOD = "chmod"  # same bytes, another executable bit


@dataclass(frozen=True, slots=True)
class Action:
    op: str
    path: str
    entry: Entry | None = None  # what `path` must hold afterwards (None: nothing)
    old: Entry | None = None  # what `path` (for MOVE: `src`) holds now
    src: str | None = None  # MOVE only


@dataclass(frozen=True)
class Plan:
    mkdirs: tuple[Action, ...] = ()
    moves: tuple[Action, ...] = ()
    deletes: tuple[Action, ...] = ()
    rmdirs: tuple[Action, ...] = ()
    adds: tuple[Action, ...] = ()
    updates: tuple[Action, ...] = ()
    chmods: tuple[Action, ...] = ()

    def steps(self) -> tuple[Action, ...]:
        """A safe order: deletes, mkdirs (shallow first), moves, rmdirs (deep first),
        writes, chmods. A path freed by a delete or move is free before anything is
        written there, which also matters on case-insensitive filesystems."""
        return (
            self.deletes
            + self.mkdirs
            + self.moves
            + self.rmdirs
            + self.adds
            + self.updates
            + self.chmods
        )

    @property
    def is_empty(self) -> bool:
        return not self.steps()

    def counts(self) -> dict[str, int]:
        return {
            MKDIR: len(self.mkdirs),
            MOVE: len(self.moves),
            DELETE: len(self.deletes),
            RMDIR: len(self.rmdirs),
            ADD: len(self.adds),
            UPDATE: len(self.updates),
            CHMOD: len(self.chmods),
        }


def _is_file(entry: Entry | None) -> bool:
    return entry is not None and not entry.is_dir


def _is_dir(entry: Entry | None) -> bool:
    return entry is not None and entry.is_dir


def _depth(key: str) -> tuple[int, str]:
    return (key.count("/"), key)


def diff(old: Flat, new: Flat, hints: Iterable[Move] = ()) -> Plan:
    """The plan that turns `old` into `new`; `hints` (a merge's moves) pair renames that
    content alone cannot (several files with equal bytes)."""
    gone = {k for k, e in old.items() if not e.is_dir and not _is_file(new.get(k))}
    came = {k for k, e in new.items() if not e.is_dir and not _is_file(old.get(k))}
    rewritten = {
        k
        for k, e in old.items()
        if not e.is_dir and _is_file(new.get(k)) and not e.same_content(new[k])
    }
    # a rename never lands on a folder that must go first, nor leaves one to be made; a
    # file about to be rewritten may move away first (a losing version to its copy name)
    sources = {k for k in gone if not _is_dir(new.get(k))} | rewritten
    targets = {k for k in came if not _is_dir(old.get(k))}
    pairs = _pair(old, new, sources, targets, hints)
    moved_from = set(pairs.values())
    moves = tuple(Action(MOVE, dst, new[dst], old[src], src) for dst, src in sorted(pairs.items()))
    deletes = tuple(Action(DELETE, k, None, old[k]) for k in sorted(gone - moved_from))
    adds = [Action(ADD, k, new[k]) for k in sorted(came - pairs.keys())]
    updates, chmods = [], []
    for key, entry in sorted(new.items()):
        before = old.get(key)
        if entry.is_dir or not _is_file(before):
            continue
        assert before is not None
        if key in moved_from:
            adds.append(Action(ADD, key, entry))  # its old bytes moved away just before
        elif not entry.same_content(before):
            updates.append(Action(UPDATE, key, entry, before))
        elif entry.executable != before.executable:
            chmods.append(Action(CHMOD, key, entry, before))
    mkdirs = tuple(
        Action(MKDIR, k, new[k], old.get(k))
        for k in sorted(new, key=_depth)
        if new[k].is_dir and not _is_dir(old.get(k))
    )
    rmdirs = tuple(
        Action(RMDIR, k, None, old[k])
        for k in sorted(old, key=_depth, reverse=True)
        if old[k].is_dir and not _is_dir(new.get(k))
    )
    adds.sort(key=lambda a: a.path)
    return Plan(mkdirs, moves, deletes, rmdirs, tuple(adds), tuple(updates), tuple(chmods))


def _pair(
    old: Flat, new: Flat, sources: set[str], targets: set[str], hints: Iterable[Move]
) -> dict[str, str]:
    """dst -> src renames: first as the merge's moves say, then by unique content."""
    pairs: dict[str, str] = {}
    used: set[str] = set()
    for move in hints:
        for src in sorted(k for k in sources if move.covers(k)):
            dst = move.dst + src[len(move.src) :]
            fits = dst in targets and dst not in pairs and src not in used
            if fits and old[src].same_content(new[dst]):
                pairs[dst] = src
                used.add(src)
    by_content: dict[tuple, tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
    for src in sources - used:
        if old[src].size:
            by_content[content_key(old[src])][0].append(src)
    for dst in targets - pairs.keys():
        if new[dst].size:
            by_content[content_key(new[dst])][1].append(dst)
    for srcs, dsts in by_content.values():
        if len(srcs) == 1 and len(dsts) == 1:
            pairs[dsts[0]] = srcs[0]
    return pairs
