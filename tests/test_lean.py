"""A lean sync (issue 11: the scan looked up folder by folder, the plan, the report, the
commit's totals and the stat cache computed from the region alone) must do exactly what
the whole-flat sync does. Same random histories of two devices run twice, once lean and
once with the lean path switched off; vaults, snapshots and stat caches must be equal."""

from __future__ import annotations

import os
import random
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import tree_state, write
from vaultsync.engine import oneway, scanned
from vaultsync.engine.session import Session
from vaultsync.engine.sync import sync
from vaultsync.repository.repo import Repository
from vaultsync.store.local import LocalStore

OLD = 1_600_000_000
ROUNDS = int(os.environ.get("VAULTSYNC_LEAN_ROUNDS", "6"))


def act(rng: random.Random, root: Path, step: int) -> None:
    """One random local change, all times fixed (so both runs see the same)."""
    files = sorted(p for p in root.rglob("*") if p.is_file() and ".vaultsync" not in p.parts)
    folders = sorted(p for p in root.rglob("*") if p.is_dir() and ".vaultsync" not in p.parts)
    kind = rng.choice(["add", "add", "edit", "edit", "delete", "move", "move_folder",
                       "ignored", "mkdir"])
    t = OLD + 1000 + step
    if kind == "add" or not files:
        where = rng.choice([root, *folders])
        write(where / f"n{step}.md", f"new {step}", t)
    elif kind == "edit":
        p = rng.choice(files)
        write(p, p.read_text() + f" +{step}", t)
    elif kind == "delete":
        rng.choice(files).unlink()
    elif kind == "move":
        p = rng.choice(files)
        dest = rng.choice([root, *folders]) / f"m{step}-{p.name}"
        if not dest.exists():
            p.rename(dest)
    elif kind == "move_folder" and folders:
        f = rng.choice(folders)
        dest = f.parent / f"{f.name}-r{step}"
        if not dest.exists():
            f.rename(dest)
    elif kind == "ignored":
        write(root / "logs" / f"x{step}.log", "ignored", t)
    else:
        (rng.choice([root, *folders]) / f"d{step}").mkdir(exist_ok=True)


def history(tmp: Path, seed: int) -> tuple[dict, dict, list, dict]:  # type: ignore[type-arg]
    rng = random.Random(seed)
    a, b, remote = tmp / "a", tmp / "b", tmp / "remote"
    for i in range(40):
        write(a / f"f{i % 4}" / f"g{i % 3}" / f"n{i}.md", f"note {i}", OLD + i)
    write(a / ".vaultsync" / "ignore", "logs/\n", OLD)
    oneway.init(str(a), str(remote), "a")
    sync(str(a))
    oneway.clone(str(remote), str(b), "b")
    reports = []
    for step in range(ROUNDS):
        for who in rng.sample([a, b], 2):
            for _ in range(rng.randint(0, 3)):
                act(rng, who, step * 10 + len(reports))
            r = sync(str(who))
            reports.append((who.name, sorted(r.uploaded), sorted(r.downloaded),
                            sorted(r.deleted), sorted(r.moved), len(r.conflicts)))
    sync(str(a))
    sync(str(b))
    repo = Repository.open(LocalStore(str(remote)))
    names = [i.name.split("/", 1)[1] for i in repo.store.list("snapshots/")]
    snaps = sorted((s.files, s.size) for s in map(repo.get_snapshot, names))
    rows = {}
    for v in (a, b):
        db = sqlite3.connect(v / ".vaultsync" / "state.db")
        rows[v.name] = sorted(db.execute("SELECT path, rows FROM folder_rows"))
        db.close()
    return tree_state(a), tree_state(b), [reports, snaps], rows


@pytest.mark.parametrize("seed", range(8))
def test_a_lean_sync_does_what_the_whole_sync_does(tmp_path: Path, seed: int,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    lean = history(tmp_path / "lean", seed)
    whole_scan = Session.scan

    def scan_whole(self: Session):  # type: ignore[no-untyped-def]
        result = whole_scan(self)
        self.local = None  # as if the scan were not the disk alone
        return result

    monkeypatch.setattr(Session, "scan", scan_whole)
    whole = history(tmp_path / "whole", seed)
    assert lean[0] == whole[0] and lean[1] == whole[1]
    def synced(state: dict) -> dict:  # type: ignore[type-arg]
        return {k: v for k, v in state.items() if not k.startswith("logs/")}

    assert synced(lean[0]) == synced(lean[1]), "the two devices did not converge"
    assert lean[2] == whole[2]  # reports of every sync, snapshots' totals
    assert {k: [r[0] for r in v] for k, v in lean[3].items()} == \
        {k: [r[0] for r in v] for k, v in whole[3].items()}  # stat cache folders


def test_a_lean_sync_never_walks_the_whole_scan(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A small change and a second device taking it read the folders they touch: the
    scan's flat is never built, and `Local` refuses to be walked whole."""
    a, b = tmp_path / "a", tmp_path / "b"
    for i in range(60):
        write(a / f"f{i % 6}" / f"n{i}.md", f"note {i}", OLD + i)
    oneway.init(str(a), str(tmp_path / "remote"), "a")
    sync(str(a))
    oneway.clone(str(tmp_path / "remote"), str(b), "b")
    sync(str(b))
    built: list[str] = []
    real = scanned.Record.flat
    monkeypatch.setattr(scanned.Record, "flat",
                        lambda self: built.append("flat") or real(self))  # type: ignore[func-returns-value]
    write(a / "f1" / "n1.md", "edited", OLD + 500)
    (a / "f2").rename(a / "f2-renamed")
    write(a / "f3" / "new.md", "new", OLD + 501)
    up = sync(str(a))
    down = sync(str(b))
    assert built == []
    assert sorted(up.uploaded) == ["f1/n1.md", "f3/new.md"]
    assert len(up.moved) == 10 and len(down.moved) == 10
    assert (b / "f1" / "n1.md").read_text() == "edited"
    assert (b / "f2-renamed" / "n2.md").read_text() == "note 2"
    assert tree_state(a) == tree_state(b)


def test_the_walk_of_a_first_sync_takes_the_scans_own_entries(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Merkle walk of base against disk takes the disk's trees from the entries the
    scan holds, never decoding the bytes it just encoded (a first upload of 100k files
    decoded all 100k entries again: seconds, and a second copy of every entry)."""
    from vaultsync.engine import session as session_mod
    a = tmp_path / "a"
    for i in range(30):
        write(a / f"f{i % 3}" / f"g{i % 2}" / f"n{i}.md", f"note {i}", OLD + i)
    oneway.init(str(a), str(tmp_path / "remote"), "a")
    decoded: list[int] = []
    real = session_mod.decode_tree
    monkeypatch.setattr(session_mod, "decode_tree",
                        lambda data, *w: decoded.append(1) or real(data, *w))  # type: ignore[func-returns-value]
    first = sync(str(a))
    assert len(first.uploaded) == 30 and decoded == []
    write(a / "f1" / "g0" / "n4.md", "edited", OLD + 500)  # and a later sync's walk too
    assert sync(str(a)).uploaded == ["f1/g0/n4.md"] and decoded == []
    oneway.clone(str(tmp_path / "remote"), str(tmp_path / "b"), "b")
    assert tree_state(tmp_path / "b") == tree_state(a)


def test_index_lookups_of_an_upload_and_a_clone_are_batched(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The repository index (a SQLite table in the local cache) is asked for the blobs
    of an upload or a download in batches, not one query per blob (a clone of 100k files
    made 20,000 single queries before it read the index whole)."""
    from vaultsync.engine.state import State
    a = tmp_path / "a"
    for i in range(1200):
        write(a / f"f{i % 4}" / f"n{i}.md", f"note {i}", OLD + i)
    oneway.init(str(a), str(tmp_path / "remote"), "a")
    sync(str(a))
    queries: list[int] = []
    real = State.refs_of
    monkeypatch.setattr(State, "refs_of",
                        lambda self, ids: queries.append(len(ids)) or real(self, ids))  # type: ignore[func-returns-value]
    oneway.clone(str(tmp_path / "remote"), str(tmp_path / "b"), "b")
    assert tree_state(tmp_path / "b") == tree_state(a)
    assert 0 < len(queries) <= 12, f"{len(queries)} index queries for 1,200 files"
    for i in range(600):  # an upload of 600 new files on the clone
        write(tmp_path / "b" / "g" / f"m{i}.md", f"more {i}", OLD + i)
    queries.clear()
    assert len(sync(str(tmp_path / "b")).uploaded) == 600
    assert len(queries) <= 6, f"{len(queries)} index queries for 600 new files"
