"""The three-way merge of base, local and remote: a pure function, trees in, tree out.

The merge table of the design, per path (a path's identity follows moves):

| base -> local | base -> remote | result                                              |
|---------------|----------------|-----------------------------------------------------|
| unchanged     | changed        | take remote                                         |
| changed       | unchanged      | take local                                          |
| changed to X  | changed to X   | X, no conflict (the newer mtime's metadata)         |
| changed to X  | changed to Y   | conflict: keep both (`placement` names the copy)    |
| deleted       | changed        | keep the changed file                               |
| changed       | deleted        | keep the changed file                               |
| deleted       | deleted        | deleted                                             |
| added X       | added Y        | conflict: keep both (same content is one file)      |
| file          | folder         | keep both: the file gets the conflict name          |

"Changed" is the content or the executable bit; the two merge separately. A touch (new
mtime, same bytes) is no change: it never beats an edit nor blocks a delete, but when the
other side left the entry exactly as in base the touched metadata is taken (so a device
that adopts the merged tree converges with it). Moves come from `renames`; collisions,
surviving folders and conflict names from `placement`.
"""

from __future__ import annotations

import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

from vaultsync.model import Entry, Flat, nfc
from vaultsync.reconcile.placement import EDIT, KEPT, NEW, Conflict, Out, place, rank
from vaultsync.reconcile.renames import LOCAL, REMOTE, Move, SideMoves, detect_moves

__all__ = ["Conflict", "MergeResult", "Move", "count_deletes", "merge"]

_EXEC = stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH


@dataclass(frozen=True)
class MergeResult:
    """What both sides converge to, the conflict copies made, and each side's moves."""

    merged: Flat
    conflicts: tuple[Conflict, ...] = ()
    moves: tuple[Move, ...] = ()
    device: str = ""  # the local device id (reporting only: `merged` never depends on it)

    @property
    def local_moves(self) -> tuple[Move, ...]:
        return tuple(m for m in self.moves if m.side == LOCAL)

    @property
    def remote_moves(self) -> tuple[Move, ...]:
        return tuple(m for m in self.moves if m.side == REMOTE)


def merge(
    base: Flat,
    local: Flat,
    remote: Flat,
    *,
    local_device: str,
    case_insensitive: bool = False,
) -> MergeResult:
    """Merge `local` and `remote` against their common ancestor `base`.

    Symmetric: swapping `local` and `remote` gives the same `merged` and conflicts, so two
    devices resolving the same histories converge on one tree. Folders in `merged` carry
    `tree=None` (their ids are recomputed when the tree is written).
    """
    base, local, remote = _plain(base), _plain(local), _plain(remote)
    lmoves, rmoves = detect_moves(base, local), detect_moves(base, remote)
    outs = list(_outputs(base, local, remote, lmoves, rmoves))
    merged, conflicts = place(outs, base, (base, local, remote), case_insensitive)
    moves = lmoves.as_moves(LOCAL) + rmoves.as_moves(REMOTE)
    return MergeResult(merged, conflicts, moves, local_device)


def count_deletes(base: Flat, local: Flat, moves: Iterable[Move] = ()) -> int:
    """Base files this device's own changes delete (its moves excluded): for --max-delete."""
    own = [m for m in moves if m.side == LOCAL]
    files = {m.src for m in own if not m.folder}
    folders = {m.src for m in own if m.folder}
    count = 0
    for key, entry in base.items():
        there = local.get(key)
        if entry.is_dir or (there is not None and not there.is_dir) or key in files:
            continue
        parts = key.split("/")
        if not any("/".join(parts[:i]) in folders for i in range(1, len(parts))):
            count += 1
    return count


def _plain(flat: Flat) -> Flat:
    """Folder tree ids mean nothing to the merge: drop them so equal folders compare equal."""
    return {
        k: replace(e, tree=None) if e.is_dir and e.tree is not None else e for k, e in flat.items()
    }


def _version(side: Flat, key: str, base_entry: Entry) -> Entry | None:
    """The side's version of a base identity living at `key` (None: deleted or replaced)."""
    entry = side.get(key)
    return entry if entry is not None and entry.kind == base_entry.kind else None


def _outputs(
    base: Flat, local: Flat, remote: Flat, lmoves: SideMoves, rmoves: SideMoves
) -> Iterator[Out]:
    for key, b in base.items():
        tl, tr = lmoves.locate(key), rmoves.locate(key)
        lv, rv = _version(local, tl, b), _version(remote, tr, b)
        lmoved, rmoved = tl != key and lv is not None, tr != key and rv is not None
        hints = (lv, rv)
        if tl != key and tr != key and tl != tr:  # two different moves: keep both targets
            if lv is not None:
                yield from _at(tl, merge_one(b, lv, rv, True, rmoved), hints)
            if rv is not None:
                yield from _at(tr, merge_one(b, lv, rv, lmoved, True), hints)
            continue
        where = tl if tl != key else tr
        yield from _at(where, merge_one(b, lv, rv, lmoved, rmoved), hints)
    for side, own, other in ((local, lmoves, rmoves), (remote, rmoves, lmoves)):
        # paths where this side's version of a moved base identity was taken
        landed = {
            t
            for k, b in base.items()
            if (t := own.locate(k)) != k and _version(side, t, b) is not None
        }
        for key, entry in side.items():
            before = base.get(key)
            if (before is not None and before.kind == entry.kind) or key in landed:
                continue
            # new on this side; inside a folder the other side moved, it follows the folder
            yield Out(other.locate_below(key), entry, NEW)


def _at(
    key: str, results: list[tuple[Entry, str]], hints: tuple[Entry | None, ...]
) -> Iterator[Out]:
    for entry, tag in results:
        yield Out(key, _named(entry, key, hints), tag)


def _named(entry: Entry, key: str, hints: tuple[Entry | None, ...]) -> Entry:
    """`entry` under the on-disk spelling of `key`'s last component."""
    last = key.rsplit("/", 1)[-1]
    if nfc(entry.name) == last:
        return entry
    names = sorted(h.name for h in hints if h is not None and nfc(h.name) == last)
    return replace(entry, name=names[-1] if names else last)


def merge_one(
    b: Entry | None, lv: Entry | None, rv: Entry | None, lmoved: bool, rmoved: bool
) -> list[tuple[Entry, str]]:
    """One identity's merge: the entries to keep at its place (two means a conflict)."""
    if b is None:
        return [(e, NEW) for e in (lv, rv) if e is not None]
    if lv is None and rv is None:
        return []  # deleted / deleted
    if lv is None or rv is None:
        kept, moved = (rv, rmoved) if lv is None else (lv, lmoved)
        assert kept is not None
        # deletion never beats an unseen edit, nor a move; a touch does not count
        return [(kept, KEPT)] if moved or not kept.same_version(b) else []
    if b.is_dir:
        return [(_metadata(b, lv, rv), KEPT)]
    lsame, rsame = lv.same_content(b), rv.same_content(b)
    if not lsame and not rsame and not lv.same_content(rv):
        return [(lv, EDIT), (rv, EDIT)]  # edit / edit: placement keeps both
    if lsame and rsame:
        chosen = _metadata(b, lv, rv)
    elif lsame or rsame:
        chosen = lv if rsame else rv  # the side that changed the content
    else:
        chosen = max(lv, rv, key=rank)  # equal edits: the newer mtime
    executable = lv.executable if lv.executable != b.executable else rv.executable
    if chosen.executable != executable:
        donor = lv if lv.executable == executable else rv
        chosen = replace(chosen, mode=(chosen.mode & ~_EXEC) | (donor.mode & _EXEC))
    return [(chosen, KEPT)]


def _metadata(b: Entry, lv: Entry, rv: Entry) -> Entry:
    """Same version on both sides: take a side that touched it, else base.

    A different Unicode spelling of the name alone is no touch: each device keeps its own
    spelling on disk, and treating it as a change would flip the tree back and forth."""
    lsame, rsame = _same_metadata(lv, b), _same_metadata(rv, b)
    if lsame or rsame:
        return b if lsame and rsame else rv if lsame else lv
    return max(lv, rv, key=rank)


def _same_metadata(entry: Entry, base: Entry) -> bool:
    return entry == replace(base, name=entry.name)
