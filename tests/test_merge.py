"""The merge table of the design, row by row, plus folders, Unicode, case, names, moves.

Every case runs both ways round (local/remote swapped) and checks the merged tree is the
same: two devices resolving the same histories must converge.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime

import pytest

from tests.flatkit import T0, D, F, files, text, tree, view
from vaultsync.model import Flat
from vaultsync.reconcile.conflicts import conflict_name, device_token, original_name
from vaultsync.reconcile.merge import MergeResult, count_deletes, merge
from vaultsync.reconcile.renames import Move

LAPTOP, DESK = "laptop", "desk"  # laptop edits at t=10, desk at t=20 unless stated


def run(base: Flat, local: Flat, remote: Flat, ci: bool = False) -> MergeResult:
    result = merge(base, local, remote, local_device=LAPTOP, case_insensitive=ci)
    mirror = merge(base, remote, local, local_device=DESK, case_insensitive=ci)
    assert mirror.merged == result.merged, "merge is not symmetric"
    assert mirror.conflicts == result.conflicts
    for key in result.merged:  # every parent is a folder
        if "/" in key:
            assert result.merged[key.rsplit("/", 1)[0]].is_dir
    return result


def copy(name: str, t: int, dev: str) -> str:
    return conflict_name(name, T0 + t * 10**9, dev)


BASE = {"a.md": "A", "keep.md": "K"}

# (row, local, remote, expected files, expected conflicts as (path, copy, reason))
TABLE = [
    (
        "unchanged | changed -> take remote",
        {"a.md": "A", "keep.md": "K"},
        {"a.md": F("R", 20, DESK), "keep.md": "K"},
        {"a.md": "R", "keep.md": "K"},
        [],
    ),
    (
        "changed | unchanged -> take local",
        {"a.md": F("L", 10, LAPTOP), "keep.md": "K"},
        {"a.md": "A", "keep.md": "K"},
        {"a.md": "L", "keep.md": "K"},
        [],
    ),
    (
        "changed to X | changed to X -> X, no conflict",
        {"a.md": F("X", 10, LAPTOP), "keep.md": "K"},
        {"a.md": F("X", 20, DESK), "keep.md": "K"},
        {"a.md": "X", "keep.md": "K"},
        [],
    ),
    (
        "changed to X | changed to Y -> conflict, keep both",
        {"a.md": F("X", 10, LAPTOP), "keep.md": "K"},
        {"a.md": F("Y", 20, DESK), "keep.md": "K"},
        {"a.md": "Y", "a.conflict-20261118-110650-laptop.md": "X", "keep.md": "K"},
        [("a.md", "a.conflict-20261118-110650-laptop.md", "edit/edit")],
    ),
    (
        "deleted | changed -> keep the changed file",
        {"keep.md": "K"},
        {"a.md": F("R", 20, DESK), "keep.md": "K"},
        {"a.md": "R", "keep.md": "K"},
        [],
    ),
    (
        "changed | deleted -> keep the changed file",
        {"a.md": F("L", 10, LAPTOP), "keep.md": "K"},
        {"keep.md": "K"},
        {"a.md": "L", "keep.md": "K"},
        [],
    ),
    (
        "deleted | deleted -> deleted",
        {"keep.md": "K"},
        {"keep.md": "K"},
        {"keep.md": "K"},
        [],
    ),
    (
        "unchanged | deleted -> deleted",
        {"a.md": "A", "keep.md": "K"},
        {"keep.md": "K"},
        {"keep.md": "K"},
        [],
    ),
    (
        "touched | deleted -> deleted (a touch never blocks a delete)",
        {"a.md": F("A", 10, LAPTOP), "keep.md": "K"},
        {"keep.md": "K"},
        {"keep.md": "K"},
        [],
    ),
    (
        "touched | changed -> take the change (a touch never beats an edit)",
        {"a.md": F("A", 30, LAPTOP), "keep.md": "K"},
        {"a.md": F("R", 20, DESK), "keep.md": "K"},
        {"a.md": "R", "keep.md": "K"},
        [],
    ),
    (
        "chmod | deleted -> keep (the executable bit is a change)",
        {"a.md": F("A", 10, LAPTOP, x=True), "keep.md": "K"},
        {"keep.md": "K"},
        {"a.md": "A", "keep.md": "K"},
        [],
    ),
]


@pytest.mark.parametrize(
    "local, remote, expected, conflicts", [row[1:] for row in TABLE], ids=[r[0] for r in TABLE]
)
def test_merge_table(local, remote, expected, conflicts):
    result = run(tree(BASE), tree(local), tree(remote))
    assert files(result.merged) == expected
    assert [(c.path, c.copy, c.reason) for c in result.conflicts] == conflicts


def test_added_both_sides_different_is_a_conflict_named_from_the_loser():
    result = run(tree({}), tree({"n.md": F("L", 10, LAPTOP)}), tree({"n.md": F("R", 20, DESK)}))
    assert files(result.merged) == {"n.md": "R", copy("n.md", 10, LAPTOP): "L"}
    (conflict,) = result.conflicts
    assert (conflict.winner_author, conflict.loser_author, conflict.reason) == (
        DESK,
        LAPTOP,
        "add/add",
    )


def test_added_both_sides_same_content_is_one_file_with_the_newer_mtime():
    result = run(tree({}), tree({"n.md": F("S", 10, LAPTOP)}), tree({"n.md": F("S", 20, DESK)}))
    assert files(result.merged) == {"n.md": "S"}
    assert result.conflicts == ()
    assert result.merged["n.md"].mtime_ns == T0 + 20 * 10**9


def test_equal_edits_keep_the_newer_mtime():
    result = run(tree(BASE), tree({"a.md": F("X", 50, LAPTOP)}), tree({"a.md": F("X", 20, DESK)}))
    assert result.merged["a.md"].author == LAPTOP
    assert result.merged["a.md"].mtime_ns == T0 + 50 * 10**9


def test_conflict_tie_on_mtime_goes_to_the_greater_device_id():
    result = run(
        tree(BASE), tree({"a.md": F("X", 10, "zeta")}), tree({"a.md": F("Y", 10, "alpha")})
    )
    assert text(result.merged["a.md"]) == "X"
    assert result.conflicts[0].copy == copy("a.md", 10, "alpha")


def test_touch_alone_is_taken_as_metadata_only():
    result = run(tree(BASE), tree({**BASE, "a.md": F("A", 10, LAPTOP)}), tree(BASE))
    assert result.merged["a.md"].mtime_ns == T0 + 10 * 10**9
    assert files(result.merged) == BASE


def test_content_and_executable_bit_merge_separately():
    local = tree({**BASE, "a.md": F("A", 10, LAPTOP, x=True)})  # chmod +x
    remote = tree({**BASE, "a.md": F("B", 20, DESK)})  # edit
    result = run(tree(BASE), local, remote)
    assert result.conflicts == ()
    assert text(result.merged["a.md"]) == "B"
    assert result.merged["a.md"].executable
    assert result.merged["a.md"].mode == 0o755


def test_exec_bit_conflicting_edits_keep_each_version_whole():
    local = tree({**BASE, "a.md": F("X", 10, LAPTOP, x=True)})
    remote = tree({**BASE, "a.md": F("Y", 20, DESK)})
    result = run(tree(BASE), local, remote)
    assert not result.merged["a.md"].executable
    assert result.merged[copy("a.md", 10, LAPTOP)].executable


# --- files and folders -----------------------------------------------------------------


def test_file_replaced_by_folder_while_edited_on_the_other_side():
    base = tree({"notes": "old"})
    local = tree({"notes/x.md": F("X", 10, LAPTOP)})  # the file became a folder
    remote = tree({"notes": F("new", 20, DESK)})  # the file was edited
    result = run(base, local, remote)
    assert view(result.merged) == {
        "notes/": None,
        "notes/x.md": "X",
        copy("notes", 20, DESK): "new",
    }
    assert [c.reason for c in result.conflicts] == ["file/folder"]


def test_folder_replaced_by_file_while_a_file_inside_was_edited():
    base = tree({"notes/x.md": "X", "notes/y.md": "Y"})
    local = tree({"notes": F("a file now", 10, LAPTOP)})
    remote = tree({"notes/x.md": F("X2", 20, DESK), "notes/y.md": "Y"})
    result = run(base, local, remote)
    assert view(result.merged) == {
        "notes/": None,
        "notes/x.md": "X2",
        copy("notes", 10, LAPTOP): "a file now",
    }


def test_file_replaced_by_folder_with_no_edit_on_the_other_side_is_taken():
    result = run(tree({"notes": "old"}), tree({"notes/x.md": "X"}), tree({"notes": "old"}))
    assert view(result.merged) == {"notes/": None, "notes/x.md": "X"}
    assert result.conflicts == ()


def test_folder_deleted_one_side_with_a_changed_file_inside_keeps_folder_and_file():
    base = tree({"d/x.md": "X", "d/y.md": "Y", "d/sub/z.md": "Z", "top.md": "T"})
    local = tree({"top.md": "T"})  # deleted d entirely
    remote = tree({"d/x.md": "X", "d/y.md": "Y", "d/sub/z.md": F("Z2", 20, DESK), "top.md": "T"})
    result = run(base, local, remote)
    assert view(result.merged) == {"d/": None, "d/sub/": None, "d/sub/z.md": "Z2", "top.md": "T"}


def test_folder_deleted_one_side_with_a_new_file_inside_keeps_folder_and_file():
    base = tree({"d/x.md": "X"})
    result = run(base, tree({}), tree({"d/x.md": "X", "d/new.md": F("N", 20, DESK)}))
    assert view(result.merged) == {"d/": None, "d/new.md": "N"}


def test_folder_deleted_one_side_untouched_other_goes():
    base = tree({"d/x.md": "X", "d/e/": None, "top.md": "T"})
    result = run(base, tree({"top.md": "T"}), base)
    assert view(result.merged) == {"top.md": "T"}


@pytest.mark.parametrize(
    "base, local, remote, expected",
    [
        ({}, {"e/": None}, {}, {"e/": None}),
        ({"e/": None}, {}, {"e/": None}, {}),
        ({}, {"e/": None}, {"e/": None}, {"e/": None}),
        ({"e/": None}, {}, {}, {}),
    ],
    ids=["added", "deleted", "added-both", "deleted-both"],
)
def test_empty_folders_sync_like_files(base, local, remote, expected):
    assert view(run(tree(base), tree(local), tree(remote)).merged) == expected


# --- Unicode and case -------------------------------------------------------------------

NFC_NAME = unicodedata.normalize("NFC", "Café.md")
NFD_NAME = unicodedata.normalize("NFD", "Café.md")


def test_nfc_and_nfd_spellings_with_equal_bytes_are_one_file():
    result = run(tree({}), tree({NFD_NAME: F("C", 10, LAPTOP)}), tree({NFC_NAME: F("C", 20, DESK)}))
    assert list(result.merged) == [NFC_NAME]
    assert result.conflicts == ()


def test_nfc_and_nfd_spellings_with_different_bytes_are_kept_apart():
    result = run(tree({}), tree({NFD_NAME: F("L", 10, LAPTOP)}), tree({NFC_NAME: F("R", 20, DESK)}))
    assert files(result.merged) == {NFC_NAME: "R", copy(NFC_NAME, 10, LAPTOP): "L"}
    assert all(k == unicodedata.normalize("NFC", k) for k in result.merged)


def test_a_device_spelling_of_an_unchanged_file_is_no_change():
    base = tree({NFC_NAME: "C"})
    result = run(base, tree({NFD_NAME: "C"}), tree({NFC_NAME: F("C2", 20, DESK)}))
    assert files(result.merged) == {NFC_NAME: "C2"}


def test_a_respelled_name_alone_is_no_change_and_keeps_the_base_spelling():
    base = tree({NFC_NAME: "C"})
    result = run(base, tree({NFD_NAME: "C"}), base)
    assert result.merged == base


def test_a_device_that_respelled_a_name_keeps_its_spelling_after_adopting_the_merge():
    base, local = tree({NFC_NAME: "C"}), tree({NFD_NAME: "C"})
    merged = run(base, local, tree({NFC_NAME: "C", "x.md": "X"})).merged
    assert merged[NFC_NAME].name == NFC_NAME
    adopted = merge(local, local, merged, local_device=LAPTOP).merged
    assert adopted[NFC_NAME].name == NFD_NAME and adopted.keys() == merged.keys()


def test_case_collision_equal_bytes_is_one_file_when_case_insensitive():
    local, remote = tree({"Note.md": F("S", 10, LAPTOP)}), tree({"note.md": F("S", 20, DESK)})
    assert files(run(tree({}), local, remote, ci=True).merged) == {"note.md": "S"}
    assert files(run(tree({}), local, remote).merged) == {"Note.md": "S", "note.md": "S"}


def test_case_collision_different_bytes_is_kept_apart_when_case_insensitive():
    local, remote = tree({"Note.md": F("L", 10, LAPTOP)}), tree({"note.md": F("R", 20, DESK)})
    result = run(tree({}), local, remote, ci=True)
    assert files(result.merged) == {"note.md": "R", copy("Note.md", 10, LAPTOP): "L"}
    assert [c.reason for c in result.conflicts] == ["case"]


def test_case_collision_of_folders_merges_them_when_case_insensitive():
    local, remote = tree({"Notes/a.md": "A"}), tree({"notes/b.md": "B"})
    result = run(tree({}), local, remote, ci=True)
    assert view(result.merged) == {"Notes/": None, "Notes/a.md": "A", "Notes/b.md": "B"}
    keys = [k.lower() for k in result.merged]
    assert len(keys) == len(set(keys))


# --- conflict names ----------------------------------------------------------------------

STAMP = int(datetime(2026, 11, 22, 14, 30, 5, 999_999, tzinfo=UTC).timestamp() * 10**6) * 1000


@pytest.mark.parametrize(
    "name, expected",
    [
        ("Note.md", "Note.conflict-20261122-143005-laptop.md"),
        ("backup.tar.gz", "backup.tar.conflict-20261122-143005-laptop.gz"),
        (".gitignore", ".gitignore.conflict-20261122-143005-laptop"),
        ("Makefile", "Makefile.conflict-20261122-143005-laptop"),
        ("Note.conflict-20250101-000000-desk.md", "Note.conflict-20261122-143005-laptop.md"),
        ("Makefile.conflict-20250101-000000-desk-2", "Makefile.conflict-20261122-143005-laptop"),
    ],
)
def test_conflict_names(name, expected):
    assert conflict_name(name, STAMP, "laptop") == expected


def test_conflict_name_attempts_and_unsafe_device_ids():
    assert conflict_name("a.md", STAMP, "laptop", 2) == "a.conflict-20261122-143005-laptop-2.md"
    assert device_token("my laptop/ü.x") == "my_laptop_x"
    assert device_token("") == "unknown"
    assert original_name("a.conflict-20261122-143005-laptop-2.md") == "a.md"


def test_conflict_names_stay_within_255_bytes():
    long = "é" * 125 + ".md"  # 253 bytes
    name = conflict_name(long, STAMP, "laptop")
    assert len(name.encode()) <= 255
    assert name.endswith(".conflict-20261122-143005-laptop.md") and name.startswith("éé")


def test_a_copy_edited_differently_on_two_devices_is_not_copied_into_a_copy_of_a_copy():
    old = copy("Note.md", 1, "phone")
    base = tree({"Note.md": "N", old: "P"})
    local = tree({"Note.md": "N", old: F("P-laptop", 10, LAPTOP)})
    remote = tree({"Note.md": "N", old: F("P-desk", 20, DESK)})
    result = run(base, local, remote)
    assert files(result.merged) == {
        "Note.md": "N",
        old: "P-desk",
        copy("Note.md", 10, LAPTOP): "P-laptop",
    }


def test_a_taken_conflict_name_gets_the_next_number():
    taken = copy("a.md", 10, LAPTOP)
    base = tree({"a.md": "A", taken: "unrelated"})
    local = tree({"a.md": F("X", 10, LAPTOP), taken: "unrelated"})
    remote = tree({"a.md": F("Y", 20, DESK), taken: "unrelated"})
    result = run(base, local, remote)
    again = conflict_name("a.md", T0 + 10 * 10**9, LAPTOP, 2)
    assert files(result.merged) == {"a.md": "Y", taken: "unrelated", again: "X"}


def test_an_existing_copy_with_the_same_bytes_is_reused():
    existing = copy("a.md", 10, LAPTOP)
    base = tree({"a.md": "A"})
    local = tree({"a.md": F("X", 10, LAPTOP)})
    remote = tree({"a.md": F("Y", 20, DESK), existing: F("X", 10, LAPTOP)})
    result = run(base, local, remote)
    assert files(result.merged) == {"a.md": "Y", existing: "X"}


# --- renames -----------------------------------------------------------------------------


def test_an_edit_follows_a_move_made_on_the_other_side():
    base = tree({"a.md": "A", "other.md": "O"})
    local = tree({"b.md": "A", "other.md": "O"})  # moved a -> b
    remote = tree({"a.md": F("A2", 20, DESK), "other.md": "O"})  # edited a
    result = run(base, local, remote)
    assert files(result.merged) == {"b.md": "A2", "other.md": "O"}
    assert result.moves == (Move("a.md", "b.md", "local"),)
    assert result.local_moves == result.moves and result.remote_moves == ()


def test_folder_move_carries_edits_and_new_files_of_the_other_side():
    base = tree({"d/x.md": "X", "d/y.md": "Y", "d/s/z.md": "Z"})
    local = tree(
        {
            "d/x.md": F("X2", 10, LAPTOP),
            "d/y.md": "Y",
            "d/s/z.md": "Z",
            "d/new.md": F("N", 10, LAPTOP),
        }
    )
    remote = tree({"e/x.md": "X", "e/y.md": "Y", "e/s/z.md": "Z"})  # moved d -> e
    result = run(base, local, remote)
    assert view(result.merged) == {
        "e/": None,
        "e/new.md": "N",
        "e/s/": None,
        "e/s/z.md": "Z",
        "e/x.md": "X2",
        "e/y.md": "Y",
    }
    assert result.moves == (Move("d", "e", "remote", folder=True),)


def test_folder_move_with_files_of_equal_bytes_pairs_by_relative_path():
    base = tree({"d/x.md": "same", "d/y.md": "same"})
    local = tree({"e/x.md": "same", "e/y.md": "same"})
    remote = tree({"d/x.md": F("X2", 20, DESK), "d/y.md": "same"})
    assert files(run(base, local, remote).merged) == {"e/x.md": "X2", "e/y.md": "same"}


def test_move_against_delete_keeps_the_moved_file():
    base = tree({"a.md": "A"})
    result = run(base, tree({"b.md": "A"}), tree({}))
    assert files(result.merged) == {"b.md": "A"}


def test_two_different_moves_of_one_file_keep_both_targets():
    base = tree({"a.md": "A"})
    result = run(base, tree({"b.md": "A"}), tree({"c.md": "A"}))
    assert files(result.merged) == {"b.md": "A", "c.md": "A"}


def test_the_same_move_on_both_sides_is_one_file():
    base = tree({"a.md": "A"})
    assert files(run(base, tree({"b.md": "A"}), tree({"b.md": "A"})).merged) == {"b.md": "A"}


def test_ambiguous_moves_fall_back_to_per_path_rules():
    base = tree({"a.md": "dup", "b.md": "dup"})
    local = tree({"c.md": "dup"})  # two paths with those bytes went, one came
    remote = tree({"a.md": F("A2", 20, DESK), "b.md": "dup"})
    result = run(base, local, remote)
    assert result.moves == ()
    assert files(result.merged) == {"a.md": "A2", "c.md": "dup"}


def test_a_move_landing_on_a_path_the_other_side_created_keeps_both():
    base = tree({"a.md": "A"})
    local = tree({"b.md": "A"})
    remote = tree({"a.md": "A", "b.md": F("B", 20, DESK)})
    result = run(base, local, remote)
    assert sorted(files(result.merged).values()) == ["A", "B"]
    assert len(result.conflicts) == 1


def test_count_deletes_counts_own_deletes_but_not_moves():
    base = tree({"a.md": "A", "b.md": "B", "c.md": "C", "d/x.md": "X", "d/y.md": "Y"})
    local = tree({"a2.md": "A", "c.md": "C", "e/x.md": "X", "e/y.md": "Y"})
    result = run(base, local, base)
    assert count_deletes(base, local, result.moves) == 1  # only b.md
    assert count_deletes(base, local) == 4  # a, b, d/x, d/y


def test_result_records_the_device_and_merged_folders_carry_no_tree_id():
    base = {"d": D("d").__class__("d", "d", tree="ab" * 32)}
    result = merge(base, base, base, local_device=LAPTOP)
    assert result.device == LAPTOP
    assert result.merged["d"].tree is None


def test_added_both_sides_equal_bytes_differing_exec_bit_is_one_executable_file():
    local = tree({"run.sh": F("echo", 10, LAPTOP, x=True)})
    remote = tree({"run.sh": F("echo", 20, DESK)})
    result = run(tree({}), local, remote)
    assert files(result.merged) == {"run.sh": "echo"} and result.conflicts == ()
    assert result.merged["run.sh"].executable and result.merged["run.sh"].author == DESK


def test_two_folders_moved_into_one_are_file_moves_not_folder_moves():
    base = tree({"d/x.md": "1", "e/y.md": "2"})
    local = tree({"f/x.md": "1", "f/y.md": "2"})
    remote = tree({"d/x.md": "1", "e/y.md": "2", "d/new.md": F("N", 20, DESK)})
    result = run(base, local, remote)
    assert result.moves == (Move("d/x.md", "f/x.md", "local"), Move("e/y.md", "f/y.md", "local"))
    assert files(result.merged) == {"d/new.md": "N", "f/x.md": "1", "f/y.md": "2"}


def test_a_copy_name_taken_by_a_folder_gets_the_next_number():
    taken = copy("a.md", 10, LAPTOP)
    base = tree({"a.md": "A", taken + "/inner.md": "I"})
    local = tree({"a.md": F("X", 10, LAPTOP), taken + "/inner.md": "I"})
    remote = tree({"a.md": F("Y", 20, DESK), taken + "/inner.md": "I"})
    result = run(base, local, remote)
    assert files(result.merged)[conflict_name("a.md", T0 + 10 * 10**9, LAPTOP, 2)] == "X"


def test_folder_move_against_folder_delete_keeps_the_moved_folder():
    base = tree({"d/x.md": "X", "d/y.md": "Y"})
    result = run(base, tree({"e/x.md": "X", "e/y.md": "Y"}), tree({}))
    assert files(result.merged) == {"e/x.md": "X", "e/y.md": "Y"}


def test_new_subfolder_inside_a_folder_moved_on_the_other_side_follows_it():
    base = tree({"d/x.md": "X"})
    local = tree({"e/x.md": "X"})
    remote = tree({"d/x.md": "X", "d/new/n.md": F("N", 20, DESK)})
    assert view(run(base, local, remote).merged) == {
        "e/": None,
        "e/new/": None,
        "e/new/n.md": "N",
        "e/x.md": "X",
    }


def test_case_only_rename_carries_the_other_sides_edit_when_case_insensitive():
    base = tree({"note.md": "A"})
    local = tree({"Note.md": "A"})
    remote = tree({"note.md": F("A2", 20, DESK)})
    result = run(base, local, remote, ci=True)
    assert files(result.merged) == {"Note.md": "A2"}
    assert result.merged["Note.md"].name == "Note.md"


def test_spelling_of_a_moved_file_is_the_movers():
    base = tree({"a.md": "A"})
    local = tree({NFD_NAME: "A"})  # moved a.md -> Café.md, spelled decomposed on disk
    remote = tree({"a.md": F("A2", 20, DESK)})
    result = run(base, local, remote)
    assert files(result.merged) == {NFC_NAME: "A2"}
    assert result.merged[NFC_NAME].name == NFD_NAME


def test_folder_moved_with_an_edit_inside_still_carries_the_other_sides_edits():
    base = tree({"d/x.md": "X", "d/y.md": "Y"})
    local = tree({"e/x.md": F("X-laptop", 10, LAPTOP), "e/y.md": "Y"})  # moved d->e, edited x
    remote = tree({"d/x.md": F("X-desk", 20, DESK), "d/y.md": F("Y2", 20, DESK)})
    result = run(base, local, remote)
    assert files(result.merged) == {
        "e/x.md": "X-desk",
        "e/" + copy("x.md", 10, LAPTOP): "X-laptop",
        "e/y.md": "Y2",
    }
    assert result.moves == (Move("d", "e", "local", folder=True),)
    assert Move("d", "e", "local", folder=True).covers("d/x.md")
    assert not Move("d", "e", "local", folder=True).covers("dx.md")
