"""Ignore rules: defaults for vaults, .vaultsyncignore, and that changing the rules never
deletes anything on another device."""

from collections.abc import Iterator
from pathlib import Path

from tests.conftest import run_cli, tree_state, write
from vaultsync.engine import oneway
from vaultsync.engine.commit import build_trees
from vaultsync.engine.ignore import IgnoreRules
from vaultsync.engine.sync import sync
from vaultsync.model import Change, Tree, decode_tree, diff_trees, flatten
from vaultsync.repository.repo import Repository
from vaultsync.store.local import LocalStore

OLD = 1_600_000_000


def remote_paths(tmp_path: Path) -> set[str]:
    repo = Repository.open(LocalStore(str(tmp_path / "remote")))
    heads = repo.read_heads().values()
    newest = max(heads, key=lambda sid: repo.get_snapshot(sid).time_ns)
    return set(flatten(repo.get_snapshot(newest).tree, repo.get_tree))


def test_default_rules_match_vault_clutter() -> None:
    rules = IgnoreRules.load("/nonexistent")
    for path in (".obsidian/workspace.json", ".obsidian/workspace-mobile.json", ".DS_Store",
                 "notes/.DS_Store", "a.md.swp", "x~", ".trash/old.md", ".git/HEAD",
                 "n.sync-conflict-20250101-000000-ABC.md"):
        assert rules.ignored(path, False), path
    assert rules.ignored(".trash", True)
    for path in (".obsidian/app.json", "Note.md", "Attachments/a.png", ".vaultsyncignore"):
        assert not rules.ignored(path, False), path


def test_ignored_files_are_not_synced_and_the_rules_travel(tmp_path: Path) -> None:
    a = tmp_path / "a"
    write(a / "Note.md", "n", mtime=OLD)
    write(a / ".obsidian/app.json", "{}", mtime=OLD)
    write(a / ".obsidian/workspace.json", "{layout}", mtime=OLD)
    write(a / "Private/secret.md", "s", mtime=OLD)
    write(a / ".vaultsyncignore", "Private/\n", mtime=OLD)
    oneway.init(str(a), str(tmp_path / "remote"), "a")
    sync(str(a))
    assert remote_paths(tmp_path) == {"Note.md", ".obsidian", ".obsidian/app.json",
                                      ".vaultsyncignore"}
    oneway.clone(str(tmp_path / "remote"), str(tmp_path / "b"), "b")
    assert (tmp_path / "b/.vaultsyncignore").read_text() == "Private/\n"
    res = run_cli("status", "--ignored", cwd=a)
    assert "ignored: .obsidian/workspace.json" in res.out.splitlines()
    assert "ignored: Private" in res.out.splitlines()


def test_ignoring_a_path_never_deletes_it_elsewhere(tmp_path: Path) -> None:
    a = tmp_path / "a"
    write(a / "Drafts/d.md", "draft", mtime=OLD)
    write(a / "n.md", "n", mtime=OLD)
    oneway.init(str(a), str(tmp_path / "remote"), "a")
    sync(str(a))
    b = tmp_path / "b"
    oneway.clone(str(tmp_path / "remote"), str(b), "b")
    write(a / ".vaultsyncignore", "Drafts/\n", mtime=OLD + 1)
    (a / "Drafts/d.md").unlink()  # even deleting it while it is ignored
    r = sync(str(a))
    assert r.deleted == [] and "Drafts/d.md" in remote_paths(tmp_path)
    sync(str(b))  # b gets the rules too, and keeps its file
    assert (b / "Drafts/d.md").read_text() == "draft"
    # the rule goes again: a's absence of the file (deleted while ignored) is not a
    # deletion, the synced version comes back
    (a / ".vaultsyncignore").unlink()
    r = sync(str(a))
    assert (a / "Drafts/d.md").read_text() == "draft"
    assert sync(str(a)).up_to_date
    sync(str(b))
    assert tree_state(a) == tree_state(b)


def test_a_device_that_ignores_a_path_neither_writes_nor_sends_it(tmp_path: Path) -> None:
    a = tmp_path / "a"
    write(a / "n.md", "n", mtime=OLD)
    oneway.init(str(a), str(tmp_path / "remote"), "a")
    write(a / ".vaultsync/ignore", "*.log\n")  # this device only
    sync(str(a))
    b = tmp_path / "b"
    oneway.clone(str(tmp_path / "remote"), str(b), "b")
    write(b / "run.log", "b's log", mtime=OLD + 1)
    sync(str(b))
    assert "run.log" in remote_paths(tmp_path)
    sync(str(a))
    assert not (a / "run.log").exists()  # the remote's version is not written here
    write(a / "run.log", "a's own log", mtime=OLD + 2)
    assert sync(str(a)).up_to_date  # ... and the local one is not sent
    write(b / "run.log", "b's second log", mtime=OLD + 3)
    sync(str(b))
    sync(str(a))
    sync(str(b))
    assert (a / "run.log").read_text() == "a's own log"
    assert (b / "run.log").read_text() == "b's second log"
    assert not list(b.glob("run.conflict-*"))


def test_the_incremental_ignored_cache_equals_a_full_recount(tmp_path: Path) -> None:
    """After new snapshots, only changed paths are checked against the rules; the result
    must be what checking every path gives."""
    from vaultsync.engine import localview
    from vaultsync.engine.session import Session

    a, b = tmp_path / "a", tmp_path / "b"
    write(a / "n.md", "n", mtime=OLD)
    oneway.init(str(a), str(tmp_path / "remote"), "a")
    write(a / ".vaultsync/ignore", "logs/\n*.bak\n")
    sync(str(a))
    oneway.clone(str(tmp_path / "remote"), str(b), "b")
    for i, (path, text) in enumerate([("logs/1.txt", "1"), ("x.bak", "x"), ("d/y.bak", "y"),
                                      ("logs/2.txt", "2"), ("n.md", "n2")]):
        write(b / path, text, mtime=OLD + i)
        sync(str(b))
        sync(str(a))
    (b / "logs/1.txt").unlink()
    (b / "x.bak").unlink()
    sync(str(b))
    sync(str(a))

    def ignored_now(recount: bool) -> dict:  # type: ignore[type-arg]
        with Session(str(a), "t", write=False) as s:
            scan = s.scan()  # the scan's own call finds it from the cache, incrementally
            if recount:
                s.vault.state.set_meta(localview.IGNORED_CACHE, None)
            # the scan's tree now holds the injected entries too: diff with the disk's
            disk_root, disk_trees = build_trees(localview.disk_view(scan), s.repo.hasher)

            def versus_disk(sid: str | None) -> Iterator[Change]:
                def get(tid: str) -> Tree:
                    raw = disk_trees.get(tid)
                    return decode_tree(raw) if raw is not None else s.repo.get_tree(tid)
                return diff_trees(s.root_of(sid), disk_root, get)

            return localview._ignored_in_base(scan, s.vault.state, s.rules,
                                              s.base, s.flat_of,  # type: ignore[arg-type]
                                              s.changes_between, versus_disk)

    incremental = ignored_now(recount=False)
    full = ignored_now(recount=True)
    assert {k: (e.kind, e.chunks) for k, e in incremental.items()} == \
        {k: (e.kind, e.chunks) for k, e in full.items()}
    assert set(full) == {"logs", "logs/2.txt", "d", "d/y.bak"}
    assert not (a / "logs").exists() and not (a / "d/y.bak").exists()
