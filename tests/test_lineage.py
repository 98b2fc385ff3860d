"""The snapshot graph (`vaultsync.lineage`): properties over random histories.

The lineage sees parent links only, never a time: the merge base and the fold order
cannot depend on a clock. The fold of several heads must not depend on the order the
heads are listed in. Brute-force definitions serve as oracles."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from vaultsync.engine.sync import Bases
from vaultsync.lineage import Lineage
from vaultsync.model import Entry, Flat
from vaultsync.reconcile.merge import merge


@st.composite
def graphs(draw: st.DrawFn) -> dict[str, tuple[str, ...]]:
    """A random snapshot DAG: node i may have parents among nodes < i (merges too)."""
    n = draw(st.integers(1, 12))
    parents: dict[str, tuple[str, ...]] = {}
    for i in range(n):
        k = draw(st.integers(0, min(i, 3)))
        ps = draw(st.lists(st.integers(0, i - 1), min_size=k, max_size=k, unique=True)) \
            if i else []
        parents[f"s{i:02d}"] = tuple(f"s{p:02d}" for p in ps)
    return parents


def brute_ancestors(parents: dict[str, tuple[str, ...]], sid: str) -> set[str]:
    out, todo = set(), [sid]
    while todo:
        cur = todo.pop()
        if cur not in out:
            out.add(cur)
            todo.extend(parents[cur])
    return out


@settings(max_examples=200, deadline=None)
@given(graphs(), st.data())
def test_ancestors_and_nearest_common_match_their_definitions(
        parents: dict[str, tuple[str, ...]], data: st.DataObject) -> None:
    lin = Lineage(lambda s: parents[s])
    nodes = sorted(parents)
    for sid in nodes:
        assert lin.ancestors(sid) == brute_ancestors(parents, sid)
    xs = data.draw(st.lists(st.sampled_from(nodes), min_size=1, max_size=3))
    ys = data.draw(st.lists(st.sampled_from(nodes), min_size=1, max_size=3))
    a, b = lin.history(xs), lin.history(ys)
    common = a & b
    want = sorted(c for c in common
                  if not any(c != d and c in brute_ancestors(parents, d) for d in common))
    assert list(lin.nearest_common(a, b)) == want
    assert lin.nearest_common(a, b) == lin.nearest_common(b, a)


@settings(max_examples=200, deadline=None)
@given(graphs(), st.data())
def test_nearest_kept_ancestors_preserve_containment(
        parents: dict[str, tuple[str, ...]], data: st.DataObject) -> None:
    """What prune's grafts rely on: with some snapshots forgotten, linking each kept one
    to its nearest kept ancestors (`nearest`) keeps exactly the ancestry among kept
    snapshots that the full graph had."""
    lin = Lineage(lambda s: parents[s])
    nodes = sorted(parents)
    kept = set(data.draw(st.lists(st.sampled_from(nodes), min_size=1, unique=True)))
    grafted = {s: lin.nearest(parents[s], lambda c: c in kept) for s in kept}
    short = Lineage(lambda s: grafted[s])
    for sid in kept:
        assert short.ancestors(sid) == brute_ancestors(parents, sid) & kept
    for sid in nodes:  # each answer is kept, and an ancestor of sid
        for found in lin.nearest([sid], lambda c: c in kept):
            assert found in kept and found in brute_ancestors(parents, sid)


@settings(max_examples=200, deadline=None)
@given(graphs(), st.data())
def test_tips_do_not_depend_on_listing_order(parents: dict[str, tuple[str, ...]],
                                             data: st.DataObject) -> None:
    lin = Lineage(lambda s: parents[s])
    heads = data.draw(st.lists(st.sampled_from(sorted(parents)), min_size=1, max_size=5))
    tips = lin.tips(heads)
    shuffled = list(heads) * 2
    random.Random(data.draw(st.integers())).shuffle(shuffled)
    assert lin.tips(shuffled) == tips
    assert list(tips) == sorted(tips)
    for t in tips:  # no tip contains another; every head is inside some tip
        assert not any(t != u and t in lin.ancestors(u) for u in tips)
    for h in heads:
        assert any(h in lin.ancestors(t) for t in tips)
    base = data.draw(st.sampled_from(sorted(parents)))
    seen = lin.ancestors(base)
    assert set(lin.unseen(heads, base)) == set(lin.tips(h for h in heads if h not in seen))


class FakeRepo:
    def __init__(self, parents: dict[str, tuple[str, ...]]) -> None:
        self.lineage = Lineage(lambda s: parents[s])

    def ancestors(self, sid: str) -> frozenset[str]:
        return self.lineage.ancestors(sid)


class FakeSession:
    """What `Bases` needs of a session: the graph, each snapshot's tree, a device."""

    def __init__(self, parents: dict[str, tuple[str, ...]], flats: dict[str, Flat]) -> None:
        self.repo = FakeRepo(parents)
        self.flats = flats
        self.device = "d" * 32

    def flat_of(self, sid: str | None) -> Flat:
        return self.flats[sid] if sid is not None else {}


def _entry(name: str, text: str, mtime: int) -> Entry:
    chunk = format(abs(hash(text)) % 16**64, "064x")
    return Entry(name=name, size=len(text), mtime_ns=mtime, author="dev", chunks=(chunk,))


@st.composite
def histories(draw: st.DrawFn) -> tuple[dict[str, tuple[str, ...]], dict[str, Flat]]:
    """A DAG whose snapshots hold a few notes: each snapshot merges its parents' trees
    (as a sync would) and then edits or deletes some notes, at random times."""
    parents = draw(graphs())
    flats: dict[str, Flat] = {}
    for sid in sorted(parents):
        ps = parents[sid]
        flat: Flat = dict(flats[ps[0]]) if ps else {}
        for other in ps[1:]:
            flat = merge(Bases(FakeSession(parents, flats)).between(
                FakeRepo(parents).ancestors(ps[0]), FakeRepo(parents).ancestors(other)),
                flat, flats[other], local_device="x" * 32).merged
        for name in draw(st.lists(st.sampled_from(["a.md", "b.md", "c.md"]), max_size=2)):
            if draw(st.booleans()):
                flat[name] = _entry(name, f"{sid} {name}", draw(st.integers(0, 10**18)))
            else:
                flat.pop(name, None)
        flats[sid] = flat
    return parents, flats


@settings(max_examples=100, deadline=None)
@given(histories(), st.data())
def test_the_fold_of_several_heads_does_not_depend_on_their_listing(
        history: tuple[dict[str, tuple[str, ...]], dict[str, Flat]],
        data: st.DataObject) -> None:
    parents, flats = history
    s = FakeSession(parents, flats)
    nodes = sorted(parents)
    heads = data.draw(st.lists(st.sampled_from(nodes), min_size=1, max_size=4))
    base = data.draw(st.sampled_from([None, *nodes]))
    local = flats[base] if base is not None else {}
    history_set = s.repo.ancestors(base) if base else frozenset()
    results = []
    for order in (heads, list(reversed(heads)), sorted(heads, key=hash)):
        unseen = s.repo.lineage.unseen(order, base)
        flat, _ = Bases(s).fold(dict(local), history_set, unseen)  # type: ignore[arg-type]
        results.append(flat)
    assert results[0] == results[1] == results[2]


@settings(max_examples=100, deadline=None)
@given(histories(), st.data())
def test_a_disk_that_already_holds_the_newest_head_rejoins_without_conflicts(
        history: tuple[dict[str, tuple[str, ...]], dict[str, Flat]],
        data: st.DataObject) -> None:
    """Re-joining (no base) with the newest state on disk: heads the newest one contains
    add nothing, so nothing is conflicted and nothing old comes back (issue 9, defect 5:
    folding an old head first resurrected its versions as conflict copies)."""
    parents, flats = history
    s = FakeSession(parents, flats)
    newest = data.draw(st.sampled_from(sorted(parents)))
    older = sorted(s.repo.ancestors(newest))
    heads = [newest, *data.draw(st.lists(st.sampled_from(older), max_size=3))]
    random.Random(data.draw(st.integers())).shuffle(heads)
    unseen = s.repo.lineage.unseen(heads, None)
    flat, results = Bases(s).fold(dict(flats[newest]), frozenset(), unseen)  # type: ignore[arg-type]
    assert not [c for r in results for c in r.conflicts]
    assert {k: e.chunks for k, e in flat.items()} == \
        {k: e.chunks for k, e in flats[newest].items()}
