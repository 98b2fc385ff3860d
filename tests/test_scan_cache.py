"""The scan's caches (issue 11, "cost follows the change"): the stat cache hands back the
rows it loaded and saves nothing when nothing changed; a folder whose entries are those
of the last scan takes its tree from the memo instead of encoding it; and whatever the
edits, the scan with its caches gives the very tree a scan without them gives."""

from __future__ import annotations

import os
import random
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from vaultsync.chunking import ChunkerParams, Hasher
from vaultsync.engine.commit import build_trees
from vaultsync.engine.ignore import DEFAULT_PATTERNS, IgnoreRules
from vaultsync.engine.scan import Scanner, ScanResult
from vaultsync.engine.state import StatCache, State, StatRow
from vaultsync.model import Tree

OLD = 1_600_000_000


def write(path: Path, text: str, mtime: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.utime(path, (mtime, mtime))


def scan(root: Path, cache: dict[str, StatRow]) -> ScanResult:
    rules = IgnoreRules(list(DEFAULT_PATTERNS))
    return Scanner(str(root), "a", cache, ChunkerParams(), ignored=rules.ignored).scan()


def synced(state: State, root: Path) -> tuple[ScanResult, StatCache]:
    """Scan as a sync does: load, scan, keep the trees (a commit caches them), save."""
    cache = state.stat_rows()
    res = scan(root, cache)
    for tid, data in res.trees.items():
        state.put_object(tid, data)
    state.save_stat_rows(res.rows, cache)
    return res, cache


@pytest.fixture
def vault(tmp_path: Path) -> Path:
    root = tmp_path / "v"
    for f in range(3):
        for n in range(4):
            write(root / f"f{f}" / f"n{n}.md", f"note {f} {n}", OLD + n)
    write(root / "top.md", "top", OLD)
    write(root / "f1" / "x.swp", "ignored", OLD)
    return root


def test_a_no_change_scan_reuses_rows_and_trees_and_writes_nothing(
        vault: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = State(str(tmp_path / "state.db"))
    first, _ = synced(state, vault)
    encoded: list[Tree] = []
    real = Tree.encode

    def counted(self: Tree) -> bytes:
        encoded.append(self)
        return real(self)

    monkeypatch.setattr(Tree, "encode", counted)
    cache = state.stat_rows()
    before = state.db.total_changes
    again = scan(vault, cache)
    assert again.root == first.root and again.trees == first.trees
    assert encoded == []  # every folder's tree came from the memo
    rows = again.rows
    assert isinstance(rows, StatCache) and rows.unread and cache.unread  # not even decoded
    state.save_stat_rows(rows, cache)
    assert state.db.total_changes == before  # nothing written
    assert rows == cache and rows == first.rows and not cache.unread
    assert all(rows[k] is cache[k] for k in cache)  # one copy of each row in memory
    again = scan(vault, cache := state.stat_rows())
    flat = again.flat  # built: its rows are those the cache holds once read
    assert all(again.rows[k] is cache[k] for k in cache)
    assert all(flat[k].chunks is cache[k].chunks for k in cache)

    write(vault / "f2" / "n1.md", "edited", OLD + 99)
    edited = scan(vault, state.stat_rows())
    assert len(encoded) == 2  # the edited folder and the root, nothing else
    assert edited.root == scan(vault, {}).root  # as without any cache


def test_a_memo_whose_tree_is_gone_or_damaged_is_not_trusted(vault: Path, tmp_path: Path) -> None:
    state = State(str(tmp_path / "state.db"))
    first, _ = synced(state, vault)
    f0 = scan(vault, {}).flat["f0"].tree
    assert f0 is not None
    state.db.execute("UPDATE objects SET data=? WHERE id=?", (b"damaged", f0))
    state.db.execute("DELETE FROM objects WHERE id=?", (first.root,))
    res = scan(vault, state.stat_rows())
    assert res.root == first.root and res.trees == first.trees
    res = scan(vault, state.stat_rows())
    state.close()  # read after the run: the trees are encoded again from the scan
    assert res.root == first.root and res.trees == first.trees


def test_the_memo_is_keyed_by_the_entries_not_the_stat(vault: Path, tmp_path: Path) -> None:
    """A row the apply step rewrote (same stat, another author) changes the tree."""
    state = State(str(tmp_path / "state.db"))
    synced(state, vault)
    cache = state.stat_rows()
    rows = dict(cache)
    rows["f0/n0.md"] = rows["f0/n0.md"]._replace(author="b")
    state.save_stat_rows(rows, cache)
    res = scan(vault, state.stat_rows())
    assert res.flat["f0/n0.md"].author == "b"
    plain = scan(vault, rows)
    assert res.root == plain.root


def test_random_edits_give_the_tree_a_scan_without_caches_gives(tmp_path: Path) -> None:
    rnd = random.Random(11)
    root = tmp_path / "v"
    state = State(str(tmp_path / "state.db"))
    clock = OLD
    for _round in range(25):
        for _ in range(rnd.randint(1, 6)):
            clock += 1
            folder = root / rnd.choice(["a", "b", "a/c", "d/e/f", "."])
            name = rnd.choice(["n1.md", "n2.md", "x.tmp", "N3.md", "sub"])
            op = rnd.random()
            target = folder / name
            if op < 0.5 and not target.is_dir():
                write(target, rnd.choice(["x", "y", "zz", ""]), clock)
            elif op < 0.7 and target.is_file():
                target.unlink()
            elif op < 0.8 and target.is_file():
                os.utime(target, (clock, clock))  # a touch: same bytes, new mtime
            elif op < 0.9 and target.is_file():
                target.chmod(0o755 if rnd.random() < 0.5 else 0o644)
                os.utime(target, (clock, clock))
            elif target.is_dir() and not any(target.iterdir()):
                target.rmdir()
            else:
                folder.mkdir(parents=True, exist_ok=True)
        res, _ = synced(state, root)
        plain = scan(root, {})
        rows_first = scan(root, state.stat_rows())
        assert rows_first.rows == res.rows  # built alone, before flat
        assert res.root == plain.root == rows_first.root
        assert res.trees == plain.trees
        assert list(res.flat.items()) == list(plain.flat.items())
        assert list(rows_first.flat.items()) == list(plain.flat.items())
        assert res.disk == plain.disk and rows_first.disk == plain.disk
        assert build_trees(res.flat, Hasher())[0] == res.root  # flat is what the tree holds
        for key, entry in res.flat.items():
            if not entry.is_dir:
                row = res.rows[key]
                assert (row.size, row.mode, row.author, row.chunks) == (
                    entry.size, entry.mode, entry.author, entry.chunks)
                assert res.disk[key][::2] == (row.size, row.ino)


def test_a_state_db_from_before_the_memo_opens(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE files (
            path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, ino INTEGER,
            ctime_ns INTEGER, mode INTEGER, author TEXT, chunks BLOB);
        CREATE TABLE objects (id TEXT PRIMARY KEY, data BLOB NOT NULL);
        CREATE TABLE segments (id TEXT PRIMARY KEY);
        CREATE TABLE blob_refs (
            id TEXT, type INTEGER, pack TEXT, offset INTEGER, length INTEGER, raw INTEGER,
            PRIMARY KEY (id, pack)) WITHOUT ROWID;
    """)
    db.execute("INSERT INTO files VALUES ('a.md', 1, 2, 3, 4, 420, 'dev', ?)",
               (bytes(range(32)) * 2,))
    db.commit()
    db.close()
    state = State(str(path))
    rows = state.stat_rows()
    chunk = bytes(range(32)).hex()
    assert rows == {"a.md": StatRow("a.md", 1, 2, 3, 4, 420, "dev", (chunk, chunk))}
    assert rows.trees == {}
    state.save_stat_rows(dict(rows), rows)  # the first save moves them, unchanged
    assert state.db.execute("SELECT count(*) FROM files").fetchone() == (0,)
    assert state.stat_rows() == rows
    state.close()
    assert State(str(path)).stat_rows() == rows


def test_the_stat_cache_is_saved_folder_by_folder(tmp_path: Path) -> None:
    state = State(str(tmp_path / "state.db"))

    def row(key: str, n: int) -> StatRow:
        return StatRow(key, n, n, n, n, 0o644, "dev", (f"{n:064x}",))

    rows = {k: row(k, i) for i, k in enumerate(
        ["a.md", "b.md", "x/a.md", "x/y/a.md", "x/y/b.md", "z/a.md"])}
    state.save_stat_rows(rows, state.stat_rows())
    loaded = state.stat_rows()
    assert loaded == rows and loaded.counts == {"": 2, "x": 1, "x/y": 2, "z": 1}
    new = dict(rows)
    new["x/y/b.md"] = row("x/y/b.md", 99)  # changed
    del new["z/a.md"]  # its folder's last file
    new["w/n.md"] = row("w/n.md", 7)  # a new folder
    before = state.db.total_changes
    state.save_stat_rows(new, loaded)
    assert state.db.total_changes - before == 3  # x/y and w written, z deleted
    assert state.stat_rows() == new
    state.db.execute("UPDATE folder_rows SET rows=? WHERE path='x/y'", (b"\xffdamaged",))
    assert state.stat_rows() == {k: r for k, r in new.items() if not k.startswith("x/y/")}


def test_what_the_scan_read_is_not_matched_again(vault: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    rules = IgnoreRules(list(DEFAULT_PATTERNS))
    res = Scanner(str(vault), "a", {}, ChunkerParams(), ignored=rules).scan()
    assert res.ignored == ["f1/x.swp"]
    asked: list[str] = []
    real = rules.ignored


    def ignored(key: str, is_dir: bool) -> bool:
        asked.append(key)
        return real(key, is_dir)

    monkeypatch.setattr(rules, "ignored", ignored)
    assert all(res.kept(rules, k, e.is_dir) for k, e in res.flat.items())
    assert asked == ["f0", "f1", "f2"]  # folders only: every file was decided by the scan
    assert not res.kept(rules, "f1/x.swp", False) and not res.kept(rules, "f1/y.tmp", False)


def test_a_cache_still_in_blobs_reads_itself_for_any_dict_use(tmp_path: Path) -> None:
    state = State(str(tmp_path / "state.db"))
    rows = {k: StatRow(k, 1, 2, 3, 4, 0o644, "dev", ("0" * 64,)) for k in ("a", "x/b", "x/c")}
    state.save_stat_rows(rows, {})
    Use = Callable[[dict[str, StatRow]], object]
    uses: list[Use] = [
        dict, lambda c: {**c}, len, lambda c: "x/b" in c, list, lambda c: c == rows,
        lambda c: rows == c, lambda c: c.get("a"), lambda c: sorted(c.items()),
        lambda c: c == state.stat_rows(), lambda c: c.copy(), bool]
    wanted = [use(rows) for use in uses]
    wanted[9] = True
    for use, want in zip(uses, wanted, strict=True):
        cache = state.stat_rows()
        assert cache.unread
        assert use(cache) == want
        assert not cache.unread
    assert state.stat_rows().folder("x") == {"b": rows["x/b"], "c": rows["x/c"]}


@pytest.mark.parametrize("after", ["init", "clone"])
def test_the_first_no_change_sync_builds_no_flat(tmp_path: Path, after: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The first sync after init's first sync (or after a clone) has no cache of the
    base's ignored entries yet; it must find them from the Merkle diff of base and disk,
    not by flattening the whole vault (that cost 0.5 s and 90 MiB at 100k files)."""
    from vaultsync.engine import oneway, scanned
    from vaultsync.engine.sync import sync

    a = tmp_path / "a"
    for i in range(30):
        write(a / f"d{i % 3}" / f"n{i}.md", f"note {i}", OLD + i)
    write(a / "logs" / "x.log", "ignored", OLD)
    write(a / ".vaultsync" / "ignore", "logs/\n", OLD)
    oneway.init(str(a), str(tmp_path / "remote"), "a")
    sync(str(a))
    vault = a
    if after == "clone":
        vault = tmp_path / "b"
        oneway.clone(str(tmp_path / "remote"), str(vault), "b")
    built: list[str] = []
    real = scanned.Record.flat
    monkeypatch.setattr(scanned.Record, "flat",
                        lambda self: built.append("flat") or real(self))  # type: ignore[func-returns-value]
    report = sync(str(vault))
    assert built == [], "a no-change sync flattened the scan"
    assert not report.uploaded and not report.downloaded
    monkeypatch.undo()
    write(vault / "d1" / "n1.md", "edited", OLD + 99)  # the cache now serves, and is right
    sync(str(vault))
    assert (tmp_path / "a" / "logs" / "x.log").read_text() == "ignored"


def test_a_clone_leaves_the_memo_of_its_folders(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A clone writes exactly a snapshot, so it records each folder's tree in the memo:
    the first sync after it encodes no tree (at 100k files, half of that sync's time).
    A folder that differs from the snapshot (edited since, a name spelled otherwise on
    disk) misses the memo and is encoded: the trees committed are a plain scan's."""
    from vaultsync.engine import oneway, scanned
    from vaultsync.engine.sync import sync

    a, b = tmp_path / "a", tmp_path / "b"
    for i in range(40):
        write(a / f"d{i % 4}" / f"s{i % 2}" / f"n{i}.md", f"note {i}", OLD + i)
    write(a / "Café" / "thé.md", "non-ASCII names", OLD)  # NFC, as the snapshot holds it
    (a / "empty").mkdir()
    oneway.init(str(a), str(tmp_path / "remote"), "a")
    sync(str(a))
    oneway.clone(str(tmp_path / "remote"), str(b), "b")
    encoded: list[str] = []
    real = scanned.Record.encode
    monkeypatch.setattr(scanned.Record, "encode",
                        lambda self, folder: encoded.append(folder) or real(self, folder))  # type: ignore[func-returns-value]
    first = sync(str(b))
    assert first.up_to_date and encoded == []
    write(b / "d2" / "s1" / "n1.md", "edited on b", OLD + 500)
    second = sync(str(b))
    assert second.uploaded == ["d2/s1/n1.md"]
    assert sorted(encoded) == ["", "d2/", "d2/s1/"]  # the changed folder and its parents
    # the memo gone, every tree is encoded afresh: the same trees as committed
    db = sqlite3.connect(b / ".vaultsync" / "state.db")
    with db:
        db.execute("DELETE FROM folder_trees")
    db.close()
    encoded.clear()
    folders = [p for p in b.rglob("*") if p.is_dir() and ".vaultsync" not in p.parts]
    assert sync(str(b)).up_to_date and len(encoded) == len(folders) + 1  # and the root
    sync(str(a))
    assert (a / "d2" / "s1" / "n1.md").read_text() == "edited on b"
