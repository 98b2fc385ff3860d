from vaultsync.model import DIR, Entry
from vaultsync.reconcile.overlay import overlay

A, B, C = "a" * 64, "b" * 64, "c" * 64
T0 = 1_600_000_000 * 10**9


def f(name: str, chunk: str, author: str = "x", mtime: int = T0) -> Entry:
    return Entry(name, size=1, mtime_ns=mtime, author=author, chunks=(chunk,))


def d(name: str) -> Entry:
    return Entry(name, kind=DIR)


def test_winner_keeps_its_paths_and_the_losers_edits_become_copies() -> None:
    base = {"n.md": f("n.md", A)}
    winner = {"n.md": f("n.md", B, "laptop")}
    loser = {"n.md": f("n.md", C, "desk")}
    out = overlay(winner, loser, base)
    assert out.flat["n.md"].chunks == (B,)
    assert out.copies == (("n.md", "n.conflict-20200913-122640-desk.md"),)
    assert out.flat["n.conflict-20200913-122640-desk.md"].chunks == (C,)


def test_unchanged_and_equal_versions_add_nothing() -> None:
    base = {"n.md": f("n.md", A), "m.md": f("m.md", A)}
    winner = {"n.md": f("n.md", B)}  # m.md deleted by the winner
    loser = {"n.md": f("n.md", B, mtime=T0 + 5), "m.md": f("m.md", A)}
    assert overlay(winner, loser, base).flat == winner


def test_loser_edit_of_a_file_the_winner_deleted_keeps_its_path() -> None:
    base = {"x.md": f("x.md", A)}
    out = overlay({}, {"x.md": f("x.md", B)}, base)
    assert out.flat == {"x.md": f("x.md", B)} and out.copies == ()


def test_loser_additions_get_their_folders_and_never_sit_under_a_file() -> None:
    winner = {"x": f("x", A)}
    loser = {"x": d("x"), "x/y.md": f("y.md", B), "new": d("new"), "new/z.md": f("z.md", C)}
    out = overlay(winner, loser, {})
    assert out.flat["x"].chunks == (A,)
    assert out.flat["new"].is_dir and out.flat["new/z.md"].chunks == (C,)
    [(orig, moved)] = out.copies
    assert orig == "x/y.md" and moved.startswith("x.conflict-") and moved.endswith("/y.md")
    assert out.flat[moved.rpartition("/")[0]].is_dir


def test_a_copy_is_never_a_copy_of_a_copy() -> None:
    name = "n.conflict-20200913-122640-desk.md"
    base = {name: f(name, A)}
    out = overlay({name: f(name, B)}, {name: f(name, C, "tab")}, base)
    assert [c for _, c in out.copies] == ["n.conflict-20200913-122640-tab.md"]


def test_folders_the_loser_merely_still_has_are_not_brought_back() -> None:
    base = {"old": d("old"), "old/x.md": f("x.md", A)}
    loser = {"old": d("old"), "old/x.md": f("x.md", A), "empty": d("empty")}
    out = overlay({}, loser, base)
    assert out.flat == {"empty": d("empty")}
