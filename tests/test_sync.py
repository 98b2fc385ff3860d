"""Two-way sync scenarios, in process, on a directory remote."""

import os
import shutil
import unicodedata
from pathlib import Path

import pytest

from tests.conftest import tree_state, write
from vaultsync.engine import materialize as materialize_mod
from vaultsync.engine import oneway
from vaultsync.engine.sync import sync
from vaultsync.engine.vault import Vault
from vaultsync.errors import SafetyStop
from vaultsync.model import flatten
from vaultsync.repository.repo import Repository
from vaultsync.store.local import LocalStore

OLD = 1_600_000_000


def remote_state(tmp_path: Path) -> dict[str, bytes]:
    base = tmp_path / "remote"
    return {p.relative_to(base).as_posix(): p.read_bytes() for p in base.rglob("*") if p.is_file()}


def pair(tmp_path: Path, files: dict[str, str]) -> tuple[Path, Path]:
    """Two devices, `laptop` and `desk`, in sync on `files`."""
    a = tmp_path / "laptop"
    a.mkdir()
    for rel, text in files.items():
        write(a / rel, text, mtime=OLD)
    oneway.init(str(a), str(tmp_path / "remote"), "laptop")
    sync(str(a))
    oneway.clone(str(tmp_path / "remote"), str(tmp_path / "desk"), "desk")
    return a, tmp_path / "desk"


def converge(*vaults: Path) -> None:
    for _ in range(2):
        for v in vaults:
            sync(str(v))
    first = tree_state(vaults[0])
    for v in vaults[1:]:
        assert tree_state(v) == first


def test_edit_edit_conflict_keeps_both_with_the_same_names_everywhere(tmp_path: Path) -> None:
    a, b = pair(tmp_path, {"Note.md": "base", "other.md": "o"})
    write(a / "Note.md", "laptop", mtime=OLD + 100)
    write(b / "Note.md", "desk", mtime=OLD + 200)  # newer: wins the original path
    assert sync(str(a)).conflicts == []
    r = sync(str(b))
    assert r.conflicts == [("Note.md", "Note.conflict-20200913-122820-laptop.md")]
    assert r.exit_code == 1
    r = sync(str(a))
    assert r.conflicts == [] and r.exit_code == 0  # downloading a copy is no conflict
    converge(a, b)
    assert (a / "Note.md").read_text() == "desk"
    assert (a / "Note.conflict-20200913-122820-laptop.md").read_text() == "laptop"


def test_edit_beats_delete_both_ways(tmp_path: Path) -> None:
    a, b = pair(tmp_path, {"x.md": "x", "y.md": "y", "keep1.md": "1", "keep2.md": "2"})
    (a / "x.md").unlink()
    write(b / "x.md", "edited on desk", mtime=OLD + 5)
    write(a / "y.md", "edited on laptop", mtime=OLD + 5)
    (b / "y.md").unlink()
    sync(str(a))
    sync(str(b))
    converge(a, b)
    assert (a / "x.md").read_text() == "edited on desk"
    assert (a / "y.md").read_text() == "edited on laptop"


def test_remote_delete_moves_the_local_file_to_trash(tmp_path: Path) -> None:
    a, b = pair(tmp_path, {f"n{i}.md": str(i) for i in range(4)})
    (a / "n1.md").unlink()
    sync(str(a))
    r = sync(str(b))
    assert r.deleted == ["n1.md"] and not (b / "n1.md").exists()
    assert [p.read_text() for p in (b / ".vaultsync/trash").rglob("n1.md")] == ["1"]


def test_moves_upload_and_download_nothing(tmp_path: Path) -> None:
    files = {f"Projects/p{i}.md": f"project {i} " * 200 for i in range(5)}
    a, b = pair(tmp_path, {**files, "Inbox.md": "inbox " * 300})
    (a / "Projects").rename(a / "Archive")
    (a / "Inbox.md").rename(a / "Archive/Inbox.md")
    r = sync(str(a))
    assert r.new_chunks == 0 and r.traffic.bytes_up < 3000  # trees, index, snapshot, head
    write(b / "Projects/p0.md", "edited on desk while it moved", mtime=OLD + 9)
    r = sync(str(b))
    assert r.downloaded == [] and sorted(r.moved)[:1] == [("Inbox.md", "Archive/Inbox.md")]
    assert (b / "Archive/p0.md").read_text() == "edited on desk while it moved"
    assert not (b / "Projects").exists()
    converge(a, b)


def test_identical_edits_are_no_conflict(tmp_path: Path) -> None:
    a, b = pair(tmp_path, {"n.md": "old"})
    write(a / "n.md", "same new text", mtime=OLD + 1)
    write(b / "n.md", "same new text", mtime=OLD + 2)
    sync(str(a))
    r = sync(str(b))
    assert r.conflicts == [] and r.exit_code == 0
    converge(a, b)
    assert os.stat(a / "n.md").st_mtime_ns == (OLD + 2) * 10**9  # the newer mtime


def test_first_sync_of_two_non_empty_folders(tmp_path: Path) -> None:
    a = tmp_path / "laptop"
    write(a / "same.md", "equal", mtime=OLD)
    write(a / "diff.md", "from laptop", mtime=OLD + 1)
    oneway.init(str(a), str(tmp_path / "remote"), "laptop")
    sync(str(a))
    b = tmp_path / "desk"
    write(b / "same.md", "equal", mtime=OLD + 3)
    write(b / "diff.md", "from desk", mtime=OLD + 2)
    oneway.init(str(b), str(tmp_path / "remote"), "desk")  # joins: empty base
    r = sync(str(b))
    assert [c for c, _ in r.conflicts] == ["diff.md"]
    converge(a, b)
    assert sorted(p.name for p in a.iterdir() if p.name != ".vaultsync") == [
        "diff.conflict-20200913-122641-laptop.md", "diff.md", "same.md"]


def test_max_delete_and_empty_vault_stop_everything(tmp_path: Path) -> None:
    a, b = pair(tmp_path, {f"n{i}.md": str(i) for i in range(10)})
    for i in range(6):
        (a / f"n{i}.md").unlink()
    before = remote_state(tmp_path)
    with pytest.raises(SafetyStop, match="6 of 10"):
        sync(str(a))
    assert remote_state(tmp_path) == before
    sync(str(a), max_delete=70)
    for p in b.iterdir():
        if p.name != ".vaultsync":
            p.unlink()
    with pytest.raises(SafetyStop, match="empty"):
        sync(str(b))
    assert (a / "n9.md").exists()
    # deletes that arrive from another device land in the trash, unguarded
    b2 = tmp_path / "b2"
    oneway.clone(str(tmp_path / "remote"), str(b2), "b2")
    for i in range(6, 10):
        (a / f"n{i}.md").unlink()
    sync(str(a), force=True)
    assert sync(str(b2)).deleted and not any(b2.glob("*.md"))


def test_a_folder_move_is_not_a_mass_delete(tmp_path: Path) -> None:
    a, _ = pair(tmp_path, {f"d/n{i}.md": f"note {i}" for i in range(10)})
    (a / "d").rename(a / "e")
    r = sync(str(a))
    assert r.exit_code == 0


def test_dry_run_writes_nothing_anywhere(tmp_path: Path) -> None:
    a, b = pair(tmp_path, {"n.md": "1", "m.md": "2"})
    write(a / "n.md", "laptop edit", mtime=OLD + 1)
    sync(str(a))
    write(b / "m.md", "desk edit", mtime=OLD + 1)
    (b / "x.md").write_text("new")
    remote_before, vault_before = remote_state(tmp_path), tree_state(b)
    vault = Vault.find(str(b))
    state_before = (vault.state.base, vault.state.stat_rows())
    vault.close()
    r = sync(str(b), dry_run=True)
    assert r.downloaded == ["n.md"] and sorted(r.uploaded) == ["m.md", "x.md"]
    assert remote_state(tmp_path) == remote_before and tree_state(b) == vault_before
    vault = Vault.find(str(b))
    # only the cache of immutable remote objects may have grown
    assert (vault.state.base, vault.state.stat_rows()) == state_before
    vault.close()


def test_file_edited_during_the_sync_is_kept(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    a, b = pair(tmp_path, {"n.md": "base"})
    write(a / "n.md", "from laptop", mtime=OLD + 1)
    sync(str(a))
    real = materialize_mod.materialize

    def edit_then_apply(*args, **kwargs):  # type: ignore[no-untyped-def]
        write(b / "n.md", "typed during the sync")  # after the scan, before the write
        return real(*args, **kwargs)

    monkeypatch.setattr("vaultsync.engine.sync.materialize", edit_then_apply)
    r = sync(str(b))
    monkeypatch.undo()
    assert (b / "n.md").read_text() == "typed during the sync"
    [(path, copy)] = r.conflicts
    assert path == "n.md" and (b / copy).read_text() == "from laptop"
    converge(a, b)
    assert (a / "n.md").read_text() == "typed during the sync"


def test_nfc_and_nfd_spellings_are_one_path(tmp_path: Path) -> None:
    nfd = unicodedata.normalize("NFD", "Café.md")
    a, b = pair(tmp_path, {nfd: "v1"})
    assert (b / nfd).exists() or (b / unicodedata.normalize("NFC", nfd)).exists()
    c = tmp_path / "c"
    write(c / unicodedata.normalize("NFC", "Café.md"), "v1", mtime=OLD)
    oneway.init(str(c), str(tmp_path / "remote"), "c")
    r = sync(str(c))
    assert r.conflicts == []
    write(c / unicodedata.normalize("NFC", "Café.md"), "v2", mtime=OLD + 1)
    sync(str(c))
    sync(str(a))
    assert (a / nfd).read_text() == "v2"  # a keeps its own spelling on disk
    assert [p.name for p in a.iterdir() if p.name != ".vaultsync"] == [nfd]


def test_names_this_filesystem_cannot_hold_are_skipped_never_deleted(tmp_path: Path) -> None:
    a, b = pair(tmp_path, {"ok.md": "ok"})
    long_name = "n" * 300 + ".md"  # fits the repository (1024 bytes), not ext4 (255)
    from vaultsync.engine import sync as sync_mod
    from vaultsync.model import Entry

    real = sync_mod.merge_all

    def inject(s, local, base, unseen):  # type: ignore[no-untyped-def]
        merged = real(s, local, base, unseen)
        ok = merged.flat["ok.md"]
        merged.flat[long_name] = merged.inside[long_name] = Entry(
            long_name, size=ok.size, mtime_ns=OLD * 10**9, author="far", chunks=ok.chunks)
        return merged

    write(b / "from-b.md", "b", mtime=OLD)  # something unseen: `a` merges
    sync(str(b))
    sync_mod.merge_all = inject  # a device with a roomier filesystem added the long name
    try:
        write(a / "extra.md", "e", mtime=OLD)
        r = sync(str(a))
    finally:
        sync_mod.merge_all = real
    assert r.exit_code == 1 and [p for p, _ in r.skipped] == [long_name]
    r = sync(str(b))
    assert r.exit_code == 1 and [p for p, _ in r.skipped] == [long_name]
    assert (b / "extra.md").exists()
    write(a / "ok.md", "edit", mtime=OLD + 1)
    for v in (a, b, a):
        r = sync(str(v))
        assert [p for p, _ in r.skipped] == [long_name]  # reported again, never deleted
    repo = Repository.open(LocalStore(str(tmp_path / "remote")))
    head = repo.read_heads()[Vault.find(str(a)).config.device_id]
    assert long_name in flatten(repo.get_snapshot(head).tree, repo.get_tree)


def test_sync_after_push_and_pull_history(tmp_path: Path) -> None:
    a, b = pair(tmp_path, {"n.md": "1"})
    write(a / "n.md", "2", mtime=OLD + 1)
    oneway.push(str(a))
    r = sync(str(b))
    assert r.downloaded == ["n.md"]
    shutil.rmtree(tmp_path / "laptop" / ".vaultsync" / "trash", ignore_errors=True)
    converge(a, b)


def test_a_no_change_sync_is_one_list_and_a_few_tiny_gets(tmp_path: Path) -> None:
    a, b = pair(tmp_path, {"n.md": "1"})
    write(b / "m.md", "from b", mtime=OLD)
    sync(str(b))  # b commits: two devices, two heads
    sync(str(a))
    r = sync(str(a))
    assert r.up_to_date
    t = r.traffic
    assert (t.lists, t.gets, t.requests_up) == (1, 1 + 2, 0)  # config + each head
