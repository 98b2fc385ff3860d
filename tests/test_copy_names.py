"""The one function that names conflict and collision copies, and the pure rules that cut
a target tree to what a disk can hold (`diskfit`)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from vaultsync.engine import fsprobe
from vaultsync.engine.diskfit import CANNOT_HOLD, fit
from vaultsync.model import DIR, Entry
from vaultsync.reconcile.conflicts import TAKEN, conflict_name, copy_path

A, B = "a" * 64, "b" * 64
T = 1_600_000_000 * 10**9


def f(name: str, chunk: str = A, author: str = "laptop") -> Entry:
    return Entry(name, size=1, mtime_ns=T, author=author, chunks=(chunk,))


def d(name: str) -> Entry:
    return Entry(name, kind=DIR)


def test_copy_path_takes_the_first_free_attempt() -> None:
    first = conflict_name("n.md", T, "laptop")
    assert copy_path("dir/n.md", f("n.md"), {}.get).key == f"dir/{first}"
    taken = {f"dir/{first}": f(first, B)}
    where = copy_path("dir/n.md", f("n.md"), taken.get)
    assert (where.key, where.exists) == (f"dir/{conflict_name('n.md', T, 'laptop', 2)}", False)


def test_copy_path_reuses_a_copy_with_the_same_bytes_never_an_unknown_one() -> None:
    first = conflict_name("n.md", T, "laptop")
    same = copy_path("n.md", f("n.md"), {first: f(first)}.get)
    assert (same.key, same.exists) == (first, True)
    unknown = copy_path("n.md", f("n.md"), lambda k: TAKEN if k == first else None)
    assert unknown.exists is False and unknown.key != first
    folder = copy_path("n.md", f("n.md"), {first: d(first)}.get)  # a folder is not a copy
    assert folder.exists is False and folder.key != first


def test_copy_path_names_from_the_spelling_and_keys_by_nfc() -> None:
    nfd = "cafe\u0301.md"
    where = copy_path("caf\u00e9.md", f(nfd), {}.get, spelled=nfd)
    assert where.name.startswith("cafe\u0301.conflict-")
    assert where.key.startswith("caf\u00e9.conflict-")


def lower(name: str) -> str:
    return name.lower()


def same(name: str) -> str:
    return name


def holds_all(name: str) -> bool:
    return True


def test_of_names_that_fold_to_one_the_one_on_disk_is_written() -> None:
    target = {"Dir": d("Dir"), "Dir/x.md": f("x.md"), "dir": d("dir"), "dir/y.md": f("y.md")}
    on_disk = {"dir": d("dir")}
    out = fit(on_disk, target, {}, lower, holds_all)
    assert sorted(out.flat) == ["dir", "dir/y.md"]
    assert sorted(out.refused) == ["Dir", "Dir/x.md"]
    assert sorted(fit({}, target, {}, same, holds_all).flat) == sorted(target)  # case kept


def test_of_names_that_fold_to_one_base_then_bytes_decide() -> None:
    target = {"note.md": f("note.md"), "Note.md": f("Note.md", B), "NOTE.md": f("NOTE.md")}
    assert list(fit({}, target, {"note.md": f("note.md")}, lower, holds_all).flat) == ["note.md"]
    assert list(fit({}, target, {}, lower, holds_all).flat) == ["NOTE.md"]  # 'O' < 'o'
    moved = fit({}, target, {"note.md": f("note.md")}, lower, holds_all,
                frozenset({"Note.md"}))
    assert list(moved.flat) == ["Note.md"]  # where the file on disk moves to


def test_names_the_disk_refuses_are_refused_with_everything_below() -> None:
    target = {"ok.md": f("ok.md"), "Q?": d("Q?"), "Q?/in.md": f("in.md"), "a:b.md": f("a:b.md"),
              ".vaultsync-tmp-0123456789ab": f(".vaultsync-tmp-0123456789ab"),
              ".vaultsync-tmp-mine.md": f(".vaultsync-tmp-mine.md"), ".VaultSync": d(".VaultSync"),
              "sub": d("sub"), "sub/.VaultSync": f(".VaultSync")}
    asked: list[str] = []

    def holds(name: str) -> bool:
        asked.append(name)
        return not any(c in name for c in ":?")

    out = fit({"ok.md": f("ok.md")}, target, {}, lower, holds)
    assert sorted(out.flat) == [".vaultsync-tmp-mine.md", "ok.md", "sub", "sub/.VaultSync"]
    assert out.refused["Q?"][1] == CANNOT_HOLD and "Q?" in out.refused["Q?/in.md"][1]
    assert sorted(out.refused) == [".VaultSync", ".vaultsync-tmp-0123456789ab", "Q?",
                                   "Q?/in.md", "a:b.md"]
    assert "ok.md" not in asked  # a name on disk is held, by definition


def test_suspicious_names_and_name_errors(tmp_path: Path) -> None:
    assert fsprobe.suspicious("Meeting 10:30?.md") and fsprobe.suspicious("trailing.")
    assert fsprobe.suspicious("x" * 256) and fsprobe.suspicious("tab\there")
    assert not fsprobe.suspicious("Café déjà vu.md")
    (tmp_path / ".vaultsync").mkdir()
    native = fsprobe.traits(str(tmp_path))
    refused = OSError(errno.ENOENT, "No such file or directory")
    # ext4 holds the name: an ENOENT there is a real error (the folder went), not a name
    assert not fsprobe.name_refused(refused, native, "a:b.md", str(tmp_path))
    assert not fsprobe.name_refused(refused, native, "x" * 300, str(tmp_path / "gone"))
    assert not fsprobe.name_refused(OSError(errno.EACCES, "denied"), native, "x" * 300,
                                    str(tmp_path))
    assert fsprobe.name_refused(OSError(errno.ENAMETOOLONG, "long"), native, "x" * 300,
                                str(tmp_path))
    assert sorted(os.listdir(tmp_path / ".vaultsync")) == []


def test_a_chmod_changes_only_the_executable_bits_under_the_umask() -> None:
    umask = os.umask(0o027)
    try:
        fsprobe._umask.cache_clear()
        assert fsprobe.exec_toggled(0o600, True) == 0o700
        assert fsprobe.exec_toggled(0o644, True) == 0o750  # other's bits: the umask says no
        assert fsprobe.exec_toggled(0o755, False) == 0o644
    finally:
        os.umask(umask)
        fsprobe._umask.cache_clear()
