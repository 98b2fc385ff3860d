"""The merge on the region around what changed equals the flat merge of whole trees.

The flat merge (`reconcile.merge` over every path) is the oracle: for random base, local
and remote trees (the generators of test_merge_properties: edits, moves, folder moves,
file/folder swaps, respellings, chmods) under unchanged folders of their own, the regional
merge (`engine.sync.Regional`: only the region is seen, the rest carried by id) gives
the same merged tree (same root id), the same conflicts and moves, and the same count of
local deletes. And `derive_flat` (a snapshot's flat from the scan's, patched where they
differ) equals `flatten`.

Examples: VAULTSYNC_HYPOTHESIS_EXAMPLES (default 200).
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import assume, given
from hypothesis import strategies as st

from tests.flatkit import F, tree
from tests.test_merge_properties import SETTINGS, apply, base_files, build_base, ops
from vaultsync.chunking import Hasher
from vaultsync.engine.commit import build_trees
from vaultsync.engine.sync import Regional, local_deletes
from vaultsync.model import DIR, Entry, Flat, ObjectId, Tree, decode_tree, derive_flat, flatten
from vaultsync.reconcile.merge import merge
from vaultsync.reconcile.region import carry, narrowed

HASHER = Hasher()
# folders every side holds alike, so that most of a tree is outside the region
STILL = {f"z{i}/n{j}.md": F(f"still {i} {j}") for i in range(3) for j in range(3)}
STILL |= {"z0/deep/a.md": F("deep"), "d/still.md": F("beside")}


class Store:
    """Trees by id, as a repository and a scan hold them."""

    def __init__(self) -> None:
        self.trees: dict[ObjectId, bytes] = {}

    def put(self, flat: Flat) -> tuple[ObjectId, Flat]:
        """Store `flat`'s trees; returns its root and the flat with folder ids filled."""
        ids: dict[str, ObjectId] = {}
        root, trees = build_trees(flat, HASHER, ids)
        self.trees.update(trees)
        return root, {k: Entry(e.name, kind=DIR, tree=ids[k]) if e.is_dir else e
                      for k, e in flat.items()}

    def load(self, tid: ObjectId) -> Tree:
        return decode_tree(self.trees[tid])


def with_still(flat: Flat) -> Flat:
    out = dict(flat)
    for path, entry in STILL.items():
        parts = path.split("/")
        if any(k in out and not out[k].is_dir
               for k in ("/".join(parts[:i]) for i in range(1, len(parts) + 1))):
            continue  # a side made a file where the still folder is: leave it
        for i in range(1, len(parts)):
            out.setdefault("/".join(parts[:i]), Entry(name=parts[i - 1], kind=DIR, mode=0o755))
        out[path] = replace(entry, name=parts[-1])
    return out


def plain(flat: Flat) -> Flat:
    """Folders as a tree records them: a name (ids aside)."""
    return {k: Entry(e.name, kind=DIR) if e.is_dir else e for k, e in flat.items()}


def regional_merge(store: Store, base: Flat, local: Flat, remote: Flat,
                   ) -> tuple[ObjectId, Flat, object, int]:
    """The engine's path: region, views, settle, carry and sparse build."""
    broot, _ = store.put(base)
    rroot, _ = store.put(remote)
    lroot, local = store.put(local)
    reg = Regional(lroot, local, store.load, {"B": broot, "R": rroot})
    out: dict[str, object] = {}

    def attempt() -> list:
        lview, bview = reg.region.restrict(local), reg.view("B")
        res = merge(bview, lview, reg.view("R"), local_device="L")
        out.update(res=res, deletes=local_deletes(bview, lview))
        return [res]

    reg.settle(attempt)
    res = out["res"]
    trees: dict[ObjectId, bytes] = {}
    root = reg.build(res.merged, trees, HASHER)  # type: ignore[attr-defined]
    store.trees.update(trees)
    whole = carry(res.merged, local, reg.region)  # type: ignore[attr-defined]
    return root, whole, res, out["deletes"]  # type: ignore[return-value]


@SETTINGS
@given(base_files, st.lists(ops, max_size=5), st.lists(ops, max_size=5))
def test_the_regional_merge_is_the_flat_merge(spec, lscript, rscript) -> None:  # type: ignore[no-untyped-def]
    base = with_still(build_base(spec))
    local = with_still(apply(base, lscript, "L", list(range(1, 6))))
    remote = with_still(apply(base, rscript, "R", list(range(11, 16))))
    store = Store()
    oracle = merge(base, local, remote, local_device="L")
    want_root, _ = build_trees(oracle.merged, HASHER)
    root, whole, res, deletes = regional_merge(store, base, local, remote)
    assert plain(whole) == plain(oracle.merged)
    assert root == want_root
    # every tree the root names is stored (new ones built, the rest carried by id)
    assert plain(flatten(root, store.load)) == plain(oracle.merged)
    assert res.conflicts == oracle.conflicts  # type: ignore[attr-defined]
    assert res.moves == oracle.moves  # type: ignore[attr-defined]
    assert deletes == local_deletes(base, local)


@SETTINGS
@given(base_files, st.lists(ops, max_size=5))
def test_a_derived_flat_is_the_flattened_tree(spec, script) -> None:  # type: ignore[no-untyped-def]
    store = Store()
    a_root, a = store.put(with_still(build_base(spec)))
    b_root, b = store.put(with_still(apply(a, script, "L", list(range(1, 6)))))
    assert derive_flat(a, a_root, b_root, store.load) == flatten(b_root, store.load)
    assert derive_flat(a, a_root, None, store.load) == {}


def test_an_unchanged_folder_is_never_read() -> None:
    """Cost follows the change: an edit in one folder reads only the trees on its path."""
    store = Store()
    base = with_still({"d": Entry("d", kind=DIR), "d/a.md": F("1", name="a.md")})
    local = dict(base)
    local["d/a.md"] = F("2", 1, "L", name="a.md")
    broot, _ = store.put(base)
    lroot, lflat = store.put(local)
    reads: list[ObjectId] = []

    def load(tid: ObjectId) -> Tree:
        reads.append(tid)
        return store.load(tid)

    reg = Regional(lroot, lflat, load, {"B": broot})
    assert reg.region.keys == {"d", "d/a.md", "d/still.md"}
    assert "z0" not in reg.region.keys and not reg.region.opaque
    z0 = lflat["z0"].tree
    assert z0 not in reads
    trees: dict[ObjectId, bytes] = {}
    root = reg.build(reg.region.restrict(lflat), trees, HASHER)
    assert root == lroot and z0 not in reads
    assert len(trees) == 2  # the root and d: the only folders encoded


def test_a_conflict_copy_never_takes_the_name_of_an_unchanged_sibling() -> None:
    """The region lists every entry of a folder with a change: a copy name held by a
    file nobody touched is taken, so the copy gets the next one (as the flat merge)."""
    base = with_still(tree({"d/a.md": "1"}))
    local, remote = dict(base), dict(base)
    local["d/a.md"] = F("2", 1, "L", name="a.md")
    remote["d/a.md"] = F("3", 2, "R", name="a.md")
    first = merge(base, local, remote, local_device="L")
    (copy,) = [c.copy for c in first.conflicts]
    for side in (base, local, remote):  # that very name, untouched on every side
        side[copy] = F("older copy", name=copy.rsplit("/", 1)[-1])
    oracle = merge(base, local, remote, local_device="L")
    root, whole, res, _ = regional_merge(Store(), base, local, remote)
    assert [c.copy for c in res.conflicts] == [c.copy for c in oracle.conflicts]  # type: ignore[attr-defined]
    assert oracle.conflicts[0].copy != copy
    assert plain(whole) == plain(oracle.merged) and whole[copy].chunks == F("older copy").chunks


def test_a_merge_that_puts_something_below_an_opaque_folder_opens_it() -> None:
    """The safety net: `settle` opens an unchanged folder the merge wrote below (the
    flat merge never does today; a rule that would must not lose the folder's files)."""
    store = Store()
    lroot, local = store.put(with_still(tree({"d/a.md": "1"})))
    base = dict(local)
    base["d/a.md"] = F("0", name="a.md")
    broot, _ = store.put(base)
    reg = Regional(lroot, local, store.load, {"B": broot})
    assert reg.region.opaque == set() and "z0" not in reg.region.keys
    reg.region.opaque.add("z0")  # as if z0 were a sibling seen only as an entry
    reg.region.keys.add("z0")
    calls: list[int] = []

    def attempt() -> list:
        calls.append(1)
        merged = reg.region.restrict(local)
        if len(calls) == 1:
            merged["z0/new.md"] = F("new", name="new.md")  # lands below the opaque z0
        return [merge({}, merged, merged, local_device="L")]

    reg.settle(attempt)
    assert len(calls) == 2 and "z0" not in reg.region.opaque
    assert {"z0/deep", "z0/deep/a.md", "z0/n0.md"} <= reg.region.keys


@SETTINGS
@given(base_files, st.lists(ops, max_size=5), st.lists(ops, max_size=5), st.booleans())
def test_the_narrowed_plan_is_the_whole_plan(spec, lscript, rscript, fold_case) -> None:  # type: ignore[no-untyped-def]
    """Materialize plans on `narrowed` flats: the same actions, and the same names cut
    by the disk (case collisions), as on whole trees."""
    from vaultsync.engine.diskfit import fit
    from vaultsync.reconcile.plan import diff

    base = with_still(build_base(spec))
    disk = with_still(apply(base, lscript, "L", list(range(1, 6))))
    remote = with_still(apply(base, rscript, "R", list(range(11, 16))))
    folded = {k.casefold() for k in disk}
    assume(not fold_case or len(folded) == len(disk))  # a disk that folds case holds one
    res = merge(base, disk, remote, local_device="L")  # the disk may fold case: fit cuts
    # the target shares the disk's entries where the merge kept them, as `carry` does
    target = {k: disk[k] if k in disk and disk[k] == e else e for k, e in res.merged.items()}
    near_disk, near_target, near_base = narrowed(disk, target, base)
    assert diff(near_disk, near_target, res.moves) == diff(disk, target, res.moves)
    fold = str.casefold if fold_case else str
    whole = fit(disk, target, base, fold, lambda name: name != "x")
    near = fit(near_disk, near_target, near_base, fold, lambda name: name != "x")
    assert near.refused == whole.refused
    assert near.flat == {k: e for k, e in whole.flat.items() if k in near_target}


def test_a_narrowed_plan_sees_the_unchanged_name_a_new_one_folds_onto() -> None:
    from vaultsync.engine.diskfit import fit

    disk = tree({"d/Note.md": "kept", "d/other.md": "o", "e/x.md": "x"})
    target = dict(disk)
    target["d/note.md"] = F("new", 1, "R", name="note.md")  # folds onto d/Note.md
    near_disk, near_target = narrowed(disk, target)
    assert set(near_target) == {"d", "d/Note.md", "d/note.md", "d/other.md"}
    near = fit(near_disk, near_target, {}, str.casefold, lambda name: True)
    assert list(near.refused) == ["d/note.md"]
