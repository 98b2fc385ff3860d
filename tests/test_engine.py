"""The one-way engine end to end on a directory remote, in process."""

import os
import random
import shutil
from pathlib import Path

import pytest

from tests.conftest import tree_state, write
from vaultsync.engine import oneway, scan
from vaultsync.engine.apply import VaultWriter
from vaultsync.engine.history import checkout, log, restore
from vaultsync.engine.session import Session
from vaultsync.engine.vault import Vault
from vaultsync.errors import BadName, IntegrityError, LockHeld
from vaultsync.model import DIR, Entry, Snapshot, Tree, flatten
from vaultsync.repository.packs import pack_name
from vaultsync.repository.repo import Repository
from vaultsync.store.local import LocalStore

OLD = 1_600_000_000  # a past mtime: files older than the racy window are stat-cached


def make_vault(tmp_path: Path, name: str = "a", files: dict[str, str] | None = None) -> Path:
    root = tmp_path / name
    root.mkdir()
    for rel, text in (files or {"Note.md": "# hello\n", "sub/deep/x.md": "x\n"}).items():
        write(root / rel, text, mtime=OLD)
    oneway.init(str(root), str(tmp_path / "remote"), name)
    return root


def remote_objects(tmp_path: Path) -> dict[str, bytes]:
    base = tmp_path / "remote"
    return {p.relative_to(base).as_posix(): p.read_bytes() for p in base.rglob("*") if p.is_file()}


def test_push_clone_edit_pull_round_trip(tmp_path: Path) -> None:
    a = make_vault(tmp_path)
    os.chmod(a / "Note.md", 0o755)
    r = oneway.push(str(a))
    assert r.snapshot and sorted(r.uploaded) == ["Note.md", "sub/deep/x.md"]
    oneway.clone(str(tmp_path / "remote"), str(tmp_path / "b"), "b")
    b = tmp_path / "b"
    assert tree_state(a) == tree_state(b)
    write(a / "Note.md", "# changed\n", mtime=OLD + 10)
    shutil.rmtree(a / "sub")
    write(a / "new/y.md", "y\n", mtime=OLD)
    r = oneway.push(str(a))
    assert sorted(r.uploaded) == ["Note.md", "new/y.md"]
    assert r.deleted_remotely == ["sub/deep/x.md"] and r.deleted == []  # nothing here
    r = oneway.pull(str(b))
    assert sorted(r.downloaded) == ["Note.md", "new/y.md"] and r.deleted == ["sub/deep/x.md"]
    assert tree_state(a) == tree_state(b)
    assert not (b / "sub").exists()  # the deleted folders went too
    # the deleted and the overwritten versions are in the trash, not gone
    trashed = {p.name: p.read_text() for p in (b / ".vaultsync/trash").rglob("*") if p.is_file()}
    assert trashed == {"x.md": "x\n", "Note.md": "# hello\n"}


def test_trash_older_than_the_configured_days_is_emptied(tmp_path: Path) -> None:
    a = make_vault(tmp_path)
    oneway.push(str(a))
    b = tmp_path / "b"
    oneway.clone(str(tmp_path / "remote"), str(b), "b")
    old = b / ".vaultsync/trash/20200101-000000-abcdef"
    write(old / "gone.md", "old")
    os.utime(old, (OLD, OLD))
    recent = b / ".vaultsync/trash/20991231-000000-abcdef"
    write(recent / "kept.md", "recent")
    write(a / "Note.md", "v2", mtime=OLD + 1)
    oneway.push(str(a))
    oneway.pull(str(b))
    assert not old.exists() and (recent / "kept.md").exists()
    assert any(p.name == "Note.md" for p in (b / ".vaultsync/trash").rglob("*"))


def test_second_scan_reads_no_file_contents(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    a = make_vault(tmp_path, files={f"n{i}.md": f"note {i}" for i in range(50)})
    oneway.push(str(a))
    reads: list[str] = []
    real_open = scan._open
    monkeypatch.setattr(scan, "_open", lambda p: reads.append(p) or real_open(p))
    r = oneway.push(str(a))
    assert r.up_to_date and reads == []
    write(a / "n7.md", "changed", mtime=OLD + 5)
    oneway.push(str(a))
    assert [os.path.basename(p) for p in reads] == ["n7.md"]


def test_merkle_ids_change_only_along_the_changed_path(tmp_path: Path) -> None:
    a = make_vault(tmp_path, files={"x/1/a.md": "a", "x/2/b.md": "b", "y/c.md": "c"})
    with Session(str(a), "t", write=False) as s:
        first = s.scan()
    write(a / "x/1/a.md", "A", mtime=OLD + 1)
    with Session(str(a), "t", write=False) as s:
        second = s.scan()
    changed = {k for k, e in second.flat.items() if e.is_dir and e.tree != first.flat[k].tree}
    assert changed == {"x", "x/1"}
    assert second.root != first.root


def test_pushing_2000_small_notes_writes_tens_of_objects(tmp_path: Path) -> None:
    files = {f"notes/{i // 100}/note-{i}.md": f"# Note {i}\n" + "lorem ipsum " * (i % 50)
             for i in range(2000)}
    a = make_vault(tmp_path, files=files)
    r = oneway.push(str(a))
    assert r.traffic.puts == len(remote_objects(tmp_path)) - 1  # all but vaultsync.json
    assert 3 < r.traffic.puts < 100, r.traffic
    assert r.packs > 1  # test packs are 64 KiB: the data spans several


def test_push_keeps_unseen_remote_versions_as_copies_and_leaves_local_alone(
        tmp_path: Path) -> None:
    a = make_vault(tmp_path)
    oneway.push(str(a))
    oneway.clone(str(tmp_path / "remote"), str(tmp_path / "b"), "b")
    write(tmp_path / "b/Note.md", "from b", mtime=OLD + 20)
    write(tmp_path / "b/b-only.md", "b's new note", mtime=OLD + 20)
    oneway.push(str(tmp_path / "b"))
    write(a / "Note.md", "from a", mtime=OLD + 30)
    before = tree_state(a)
    r = oneway.push(str(a))
    assert tree_state(a) == before  # push never touches local files
    assert r.conflicts == [("Note.md", "Note.conflict-20200913-122700-b.md")]
    assert r.exit_code == 1
    r = oneway.pull(str(a))  # the kept versions come down with the next pull
    assert (a / "Note.md").read_text() == "from a"
    assert (a / "Note.conflict-20200913-122700-b.md").read_text() == "from b"
    assert (a / "b-only.md").read_text() == "b's new note"
    oneway.pull(str(tmp_path / "b"))
    assert tree_state(tmp_path / "b") == tree_state(a)


def test_pull_keeps_local_edits_as_copies(tmp_path: Path) -> None:
    a = make_vault(tmp_path)
    oneway.push(str(a))
    oneway.clone(str(tmp_path / "remote"), str(tmp_path / "b"), "b")
    write(a / "Note.md", "new upstream", mtime=OLD + 40)
    oneway.push(str(a))
    write(tmp_path / "b/Note.md", "local edit", mtime=OLD + 41)
    write(tmp_path / "b/local-only.md", "mine", mtime=OLD + 41)
    remote_before = remote_objects(tmp_path)
    r = oneway.pull(str(tmp_path / "b"))
    assert remote_objects(tmp_path) == remote_before  # pull never writes the remote
    assert (tmp_path / "b/Note.md").read_text() == "new upstream"
    assert r.conflicts == [("Note.md", "Note.conflict-20200913-122721-b.md")]
    assert (tmp_path / "b/Note.conflict-20200913-122721-b.md").read_text() == "local edit"
    assert (tmp_path / "b/local-only.md").read_text() == "mine"


def test_corrupt_pack_fails_pull_and_leaves_the_vault_untouched(tmp_path: Path) -> None:
    a = make_vault(tmp_path, files={"a.md": "alpha " * 100, "b.md": "beta " * 100})
    oneway.push(str(a))
    oneway.clone(str(tmp_path / "remote"), str(tmp_path / "b"), "b")
    write(a / "a.md", "changed alpha " * 100, mtime=OLD + 1)
    before_packs = set((tmp_path / "remote/packs").rglob("*"))
    r = oneway.push(str(a))
    assert r.packs == 1
    [pack] = [p for p in (tmp_path / "remote/packs").rglob("*")
              if p.is_file() and p not in before_packs]
    data = bytearray(pack.read_bytes())
    data[5] ^= 0xFF
    pack.write_bytes(bytes(data))
    before = tree_state(tmp_path / "b")
    with pytest.raises(IntegrityError):
        oneway.pull(str(tmp_path / "b"))
    assert tree_state(tmp_path / "b") == before
    assert not list((tmp_path / "b").rglob(".vaultsync-tmp-*"))


def test_corrupt_object_late_in_a_pull_leaves_the_vault_untouched(
        tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from vaultsync.engine import transfer
    monkeypatch.setattr(transfer, "BATCH_BYTES", 2000)  # many small batches
    a = make_vault(tmp_path, files={f"n{i:02}.md": f"one {i}" for i in range(30)})
    oneway.push(str(a))
    oneway.clone(str(tmp_path / "remote"), str(tmp_path / "b"), "b")
    for i in range(30):
        write(a / f"n{i:02}.md", random.Random(i).randbytes(4000).hex(), mtime=OLD + 9)
    sid = oneway.push(str(a)).snapshot
    repo = Repository.open(LocalStore(str(tmp_path / "remote")))
    last = flatten(repo.get_snapshot(sid).tree, repo.get_tree)["n29.md"]
    ref = repo.ref(last.chunks[-1])  # the last file's data: fetched in the last batch
    pack = tmp_path / "remote" / pack_name(ref.pack)
    data = bytearray(pack.read_bytes())
    data[ref.offset + ref.length // 2] ^= 0xFF
    pack.write_bytes(bytes(data))
    before = tree_state(tmp_path / "b")
    with pytest.raises(IntegrityError):
        oneway.pull(str(tmp_path / "b"))
    assert tree_state(tmp_path / "b") == before
    assert not list((tmp_path / "b/.vaultsync/staging").iterdir())


def test_tree_claiming_a_wrong_size_is_refused_before_writing(tmp_path: Path) -> None:
    a = make_vault(tmp_path, files={"a.md": "12345"})
    oneway.push(str(a))
    repo = Repository.open(LocalStore(str(tmp_path / "remote")))
    [cid] = [r.id for r in repo.index.values() if r.type == 0]
    raw = Tree.of([Entry("a.md", size=10**12, mtime_ns=1, author="x", chunks=(cid,))]).encode()
    tid = repo.hasher.id(raw)
    w = repo.writer()
    w.add_tree(tid, raw)
    w.commit_index()
    sid = repo.put_snapshot(Snapshot(tree=tid, parents=(), device="e" * 32, device_name="evil",
                                     time_ns=2))
    repo.write_head("e" * 32, sid)
    for head in (tmp_path / "remote/heads").iterdir():
        if head.name != "e" * 32:
            head.unlink()
    with pytest.raises(IntegrityError, match="add up"):
        checkout(str(tmp_path / "remote"), str(tmp_path / "co"), sid)
    assert not any(p.is_file() for p in (tmp_path / "co").rglob("*"))


def _publish_hostile_tree(tmp_path: Path, name: str) -> None:
    """Write a snapshot whose root tree names `name`, bypassing the encoder's checks."""
    repo = Repository.open(LocalStore(str(tmp_path / "remote")))
    raw = (b'{"e":[{"a":"x","c":[],"k":"f","m":420,"n":"%s","s":0,"t":0}],"v":1}'
           % name.encode())
    tid = repo.hasher.id(raw)
    w = repo.writer()
    w.add_tree(tid, raw)
    w.commit_index()
    sid = repo.put_snapshot(Snapshot(tree=tid, parents=(), device="e" * 32, device_name="evil",
                                     time_ns=1))
    repo.write_head("e" * 32, sid)


@pytest.mark.parametrize("name", ["../escape.md", "/etc/passwd", ".vaultsync", ""])
def test_hostile_tree_names_are_refused(tmp_path: Path, name: str) -> None:
    (tmp_path / "remote").mkdir()
    Repository.create(LocalStore(str(tmp_path / "remote")), __import__(
        "vaultsync.repository.format", fromlist=["RepoFormat"]).RepoFormat.new())
    _publish_hostile_tree(tmp_path, name)
    with pytest.raises(IntegrityError):
        oneway.clone(str(tmp_path / "remote"), str(tmp_path / "b"), "b")
    assert not (tmp_path / "escape.md").exists()
    assert not any(p.name != ".vaultsync" for p in (tmp_path / "b").iterdir())


def test_writes_never_follow_a_symlinked_folder(tmp_path: Path) -> None:
    a = make_vault(tmp_path, files={"notes/x.md": "x"})
    oneway.push(str(a))
    b = tmp_path / "b"
    b.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (b / "notes").symlink_to(outside)
    oneway.init(str(b), str(tmp_path / "remote"), "b")
    report = oneway.pull(str(b))  # the link is skipped (reported), never written through
    assert ("notes", "symbolic link (not synced)") in report.skipped
    assert report.exit_code == 1
    assert list(outside.iterdir()) == []
    vw = VaultWriter(str(b), str(tmp_path / "trash"))  # and the writer itself refuses
    with pytest.raises(BadName, match="symbolic link"):
        vw.make_dirs("notes/deeper")
    assert list(outside.iterdir()) == []


def test_lock_is_exclusive(tmp_path: Path) -> None:
    a = make_vault(tmp_path)
    with Session(str(a), "t", write=False):
        with pytest.raises(LockHeld):
            oneway.push(str(a))
    oneway.push(str(a))  # released


def test_copied_state_registers_a_new_device(tmp_path: Path) -> None:
    a = make_vault(tmp_path)
    oneway.push(str(a))
    shutil.copytree(a, tmp_path / "copy", symlinks=True)
    first = Vault.find(str(a)).config.device_id
    write(tmp_path / "copy/extra.md", "e", mtime=OLD)
    r = oneway.push(str(tmp_path / "copy"))
    assert any("new device" in n for n in r.notices)
    assert Vault.find(str(tmp_path / "copy")).config.device_id != first
    assert Vault.find(str(a)).config.device_id == first


def test_log_restore_and_checkout(tmp_path: Path) -> None:
    a = make_vault(tmp_path, files={"n.md": "v1", "d/e.md": "e1"})
    first = oneway.push(str(a)).snapshot
    write(a / "n.md", "v2", mtime=OLD + 100)
    write(a / "d/e.md", "e2", mtime=OLD + 100)
    second = oneway.push(str(a)).snapshot
    assert [line.id for line in log(str(a), None)[0]] == [second, first]
    assert [line.id for line in log(str(a), "n.md")[0]] == [second, first]
    restore(str(a), "n.md", first, None)
    assert (a / "n.md").read_text() == "v1"
    assert any(p.read_text() == "v2" for p in (a / ".vaultsync/trash").rglob("n.md"))
    restore(str(a), "d", first[:10], str(tmp_path / "out"))
    assert (tmp_path / "out/e.md").read_text() == "e1"
    restore(str(a), "d/e.md", first, str(tmp_path / "single.md"))
    assert (tmp_path / "single.md").read_text() == "e1"
    r = checkout(str(tmp_path / "remote"), str(tmp_path / "co"), first)
    assert r.snapshot == first
    assert (tmp_path / "co/n.md").read_text() == "v1" and not (tmp_path / "co/.vaultsync").exists()


def test_folders_and_empty_folders_are_entries(tmp_path: Path) -> None:
    a = make_vault(tmp_path, files={"a.md": "a"})
    (a / "empty" / "nested").mkdir(parents=True)
    oneway.push(str(a))
    oneway.clone(str(tmp_path / "remote"), str(tmp_path / "b"), "b")
    assert (tmp_path / "b/empty/nested").is_dir()


def test_unchanged_tree_is_skipped_by_id(tmp_path: Path) -> None:
    tree = Tree.of([Entry("a", kind=DIR, tree="0" * 64)])
    assert Tree.of(list(tree.entries)).encode() == tree.encode()
