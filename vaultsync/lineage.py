"""The snapshot graph: heads, ancestors, nearest common ancestors, the order heads fold in.

Pure over the parent links (a function from a snapshot id to its parents): no clock, no
I/O of its own. Wall-clock times never choose a merge base; they only pick a conflict's
winner and name its copy (design.md, "Edges"), so a device whose clock is a day off can
lose a tie-break, never an edit.

- `ancestors(s)`: `s` and everything it descends from.
- `nearest_common(a, b)`: the common ancestors of two histories that no other common
  ancestor descends from. Usually one; two or more after criss-cross merges, and then
  the caller merges them into one virtual base (`fold_order` gives their order).
- `tips(heads)`: the heads no other head descends from (a head that another head
  contains adds nothing to a merge), in fold order: by id, since no tip is an ancestor
  of another. The result of folding never depends on the order heads were listed in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from collections.abc import Set as AbstractSet

from vaultsync.model import ObjectId

Parents = Callable[[ObjectId], tuple[ObjectId, ...]]


class Lineage:
    def __init__(self, parents: Parents) -> None:
        self._parents = parents
        self._ancestors: dict[ObjectId, frozenset[ObjectId]] = {}

    def parents(self, sid: ObjectId) -> tuple[ObjectId, ...]:
        return self._parents(sid)

    def ancestors(self, sid: ObjectId) -> frozenset[ObjectId]:
        """`sid` and every snapshot it descends from (kept: snapshots are immutable)."""
        known = self._ancestors.get(sid)
        if known is not None:
            return known
        seen: set[ObjectId] = set()
        todo = [sid]
        while todo:
            cur = todo.pop()
            if cur in seen:
                continue
            cached = self._ancestors.get(cur)
            if cached is not None:
                seen |= cached
                continue
            seen.add(cur)
            todo.extend(self._parents(cur))
        result = frozenset(seen)
        self._ancestors[sid] = result
        return result

    def history(self, sids: Iterable[ObjectId | None]) -> frozenset[ObjectId]:
        """Every snapshot any of `sids` contains (None: the empty history)."""
        out: frozenset[ObjectId] = frozenset()
        for sid in sids:
            if sid is not None:
                out |= self.ancestors(sid)
        return out

    def nearest_common(self, a: AbstractSet[ObjectId],
                       b: AbstractSet[ObjectId]) -> tuple[ObjectId, ...]:
        """The nearest common ancestors of two histories (ancestor-closed sets), by id.

        Their intersection is ancestor-closed too, so a common snapshot that another
        common snapshot descends from is the parent of some common snapshot: the
        nearest ones are exactly the common snapshots that are nobody's parent there."""
        common = a & b
        inner = {p for sid in common for p in self._parents(sid)}
        return tuple(sorted(common - inner))

    def tips(self, heads: Iterable[ObjectId]) -> tuple[ObjectId, ...]:
        """The heads that no other head contains, in fold order (by id)."""
        distinct = set(heads)
        contained: set[ObjectId] = set()
        for sid in distinct:
            contained |= self.ancestors(sid) - {sid}
        return tuple(sorted(distinct - contained))

    def nearest(self, sids: Iterable[ObjectId],
                keep: Callable[[ObjectId], bool]) -> tuple[ObjectId, ...]:
        """The first snapshots `keep` accepts on every path down from `sids` (they
        included), walking through those it refuses; tips only, in fold order. Prune uses
        it for the parents a new snapshot may have and for the grafts that stand in for
        forgotten history."""
        found: set[ObjectId] = set()
        todo, seen = list(sids), set()
        while todo:
            sid = todo.pop()
            if sid in seen:
                continue
            seen.add(sid)
            if keep(sid):
                found.add(sid)
            else:
                todo.extend(self._parents(sid))
        return self.tips(found)

    def unseen(self, heads: Iterable[ObjectId], base: ObjectId | None) -> tuple[ObjectId, ...]:
        """The tips of `heads` that `base` does not contain: what a sync must merge."""
        seen = self.ancestors(base) if base is not None else frozenset()
        return self.tips(h for h in heads if h not in seen)
