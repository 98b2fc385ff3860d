"""plan.diff: the actions that turn the scanned vault into the merged tree."""

from __future__ import annotations

from hypothesis import given

from tests.flatkit import F, files, tree
from tests.test_merge_properties import (
    SETTINGS,
    base_files,
    both,
    build_base,
    scripts,
    sides,
    times,
)
from vaultsync.model import Flat
from vaultsync.reconcile.merge import merge
from vaultsync.reconcile.plan import (
    ADD,
    CHMOD,
    DELETE,
    MKDIR,
    MOVE,
    RMDIR,
    UPDATE,
    Action,
    Plan,
    diff,
)


def simulate(old: Flat, plan: Plan) -> Flat:
    """Carry out a plan on a dict the way apply must, checking each step is possible."""
    flat = dict(old)

    def parent_ok(key: str) -> None:
        if "/" in key:
            assert flat[key.rsplit("/", 1)[0]].is_dir, f"no folder for {key}"

    for act in plan.steps():
        if act.op in (DELETE, RMDIR, UPDATE, CHMOD):
            assert flat[act.path] == act.old, f"{act.op} {act.path}: not what was scanned"
        if act.op == DELETE:
            del flat[act.path]
        elif act.op == RMDIR:
            assert not any(k.startswith(act.path + "/") for k in flat), "folder not empty"
            del flat[act.path]
        elif act.op == MOVE:
            assert act.src is not None and flat.pop(act.src) == act.old
            assert act.path not in flat
            parent_ok(act.path)
            flat[act.path] = act.entry
        else:
            assert act.entry is not None
            if act.op in (MKDIR, ADD):
                assert act.path not in flat, f"{act.op} over {act.path}"
            parent_ok(act.path)
            flat[act.path] = act.entry
    return flat


def same_tree(a: Flat, b: Flat) -> bool:
    return a.keys() == b.keys() and all(a[k].same_version(b[k]) for k in a)


def test_diff_of_equal_trees_is_empty_and_ignores_mtime():
    old = tree({"a.md": "A", "d/b.md": "B"})
    new = tree({"a.md": F("A", 99, "desk"), "d/b.md": "B"})
    assert diff(old, new).is_empty
    assert diff(old, old).counts() == dict.fromkeys(
        (MKDIR, MOVE, DELETE, RMDIR, ADD, UPDATE, CHMOD), 0
    )


def test_diff_kinds_of_action():
    old = tree({"a.md": "A", "b.md": "B", "c.md": "C", "x.sh": "X", "gone/": None})
    new = tree({"a.md": "A2", "moved.md": "B", "x.sh": F("X", x=True), "n/new.md": "N"})
    plan = diff(old, new)
    assert plan.updates == (Action(UPDATE, "a.md", new["a.md"], old["a.md"]),)
    assert plan.moves == (Action(MOVE, "moved.md", new["moved.md"], old["b.md"], "b.md"),)
    assert [a.path for a in plan.deletes] == ["c.md"]
    assert [a.path for a in plan.chmods] == ["x.sh"]
    assert [a.path for a in plan.mkdirs] == ["n"]
    assert [a.path for a in plan.adds] == ["n/new.md"]
    assert [a.path for a in plan.rmdirs] == ["gone"]
    assert same_tree(simulate(old, plan), new)


def test_remote_folder_move_becomes_local_renames_even_for_equal_bytes():
    base = tree({"d/x.md": "same", "d/y.md": "same"})
    remote = tree({"e/x.md": "same", "e/y.md": "same"})
    result = merge(base, base, remote, local_device="laptop")
    plan = diff(base, result.merged, result.moves)
    assert [(a.src, a.path) for a in plan.moves] == [("d/x.md", "e/x.md"), ("d/y.md", "e/y.md")]
    assert plan.adds == () and plan.deletes == ()
    assert files(simulate(base, plan)) == files(remote)


def test_losing_local_version_is_renamed_to_its_conflict_copy():
    base = tree({"a.md": "A"})
    local = tree({"a.md": F("L", 10, "laptop")})
    remote = tree({"a.md": F("R", 20, "desk")})
    result = merge(base, local, remote, local_device="laptop")
    plan = diff(local, result.merged, result.moves)
    assert [(a.src, a.path) for a in plan.moves] == [("a.md", result.conflicts[0].copy)]
    assert [a.path for a in plan.adds] == ["a.md"]
    assert same_tree(simulate(local, plan), result.merged)


def test_file_replaced_by_folder_deletes_before_making_the_folder():
    old, new = tree({"n": "file"}), tree({"n/x.md": "X"})
    plan = diff(old, new)
    assert [a.op for a in plan.steps()] == [DELETE, MKDIR, ADD]
    assert same_tree(simulate(old, plan), new)


@SETTINGS
@given(base_files, both, scripts, scripts, times, times)
def test_applying_the_plan_gives_the_merged_tree(spec, shared, lscript, rscript, lt, rt):
    base = build_base(spec)
    local, remote = sides(base, shared, lscript, rscript, lt, rt)
    result = merge(base, local, remote, local_device="laptop")
    for scanned in (local, remote):
        plan = diff(scanned, result.merged, result.moves)
        assert same_tree(simulate(scanned, plan), result.merged)
