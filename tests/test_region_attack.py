"""Attacks on the regional merge (c94159c: engine/sync.Regional, reconcile/region.py).

The old engine (b2e5226) merged whole flat trees; it is the oracle here. Each test marked
FINDING failed on the regional engine when written and passes on b2e5226; the others are
regression tests for attacks that held (each asserts something that could fail).

Two devices, `laptop` (A) and `desk` (B), in process, on a directory remote
(tests/test_sync.py's `pair`).

The cause of the three findings: `localview.complete` injects ignored base entries
(`a/b/...`) into `scan.flat` below a path that is now a *file* on disk; `build_trees`
cannot put them below a file, so `scan.root` lacks them. `Regional` diffs the snapshots
against `scan.root` and, for a region key no diff lists, takes the entry from
`scan.flat`: base and heads are seen holding the injected entries whatever they hold.

Found by a differential fuzzer (three devices, random edits/moves/folder-file swaps/NFD
respellings/ignore edits/prunes/criss-cross merges, old vs new engine, same actions).
Also seen, not a loss: `new_beliefs` no longer records a belief for a path the scan
kept as a file where the target has a folder the rules ignore (old engine did); later a
case-rename of that file then follows a remote edit (new) instead of leaving it behind.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tests.conftest import tree_state, write
from tests.test_sync import OLD, pair
from vaultsync.engine.sync import sync


def files(vault: Path) -> dict[str, bytes]:
    return {k: v[0] for k, v in tree_state(vault).items()}


# ---- FINDING 1: an ignored subfolder below a folder that became a file -----------------

def test_finding_a_remote_delete_below_an_ignored_folder_under_a_new_file_stays_deleted(
        tmp_path: Path) -> None:
    """FINDING. A replaces folder `a/` by a file `a` and ignores `a/b/` (dir rule); B had
    deleted `a/b/Note.md`. A's scan injects the ignored base entries `a/b/...` into its
    flat below the *file* `a`, but its tree (`scan.root`) cannot hold them below a file,
    so the Merkle diff against B's head never lists `a/b/Note.md`, and `Regional.view`
    falls back to the local flat for it: B's head is seen as still holding it. The
    merge keeps it and A's snapshot brings the deleted note back to B.

    Old engine (b2e5226): `a/b/Note.md` stays deleted. Regional engine: resurrected."""
    a, b = pair(tmp_path, {"a/n1.md": "n1", "a/b/n2.md": "n2", "other.md": "o"})
    write(b / "a/b/Note.md", "note", mtime=OLD + 1)
    sync(str(b))
    sync(str(a))
    assert (a / "a/b/Note.md").read_text() == "note"
    (b / "a/b/Note.md").unlink()  # B deletes the note and pushes the delete
    sync(str(b))
    shutil.rmtree(a / "a")  # A: the folder becomes a file, its subfolder b/ ignored
    write(a / "a", "a file now", mtime=OLD + 2)
    write(a / ".vaultsyncignore", "a/b/\n", mtime=OLD + 3)
    sync(str(a))
    sync(str(b))
    assert not (b / "a/b/Note.md").exists(), "a note deleted on B came back from A's sync"
    assert (b / "a/b/n2.md").read_text() == "n2"  # ignored on A: kept (old engine too)


def test_finding_an_ignored_file_below_a_folder_that_became_a_file_is_not_resurrected(
        tmp_path: Path) -> None:
    """FINDING (same cause as above, a file rule this time). B deletes folder `c/`; A
    ignores `Note.md` and replaces folder `c/d/` (which holds `Note.md`) by a file `c/d`.
    A's injected base entry `c/d/Note.md` sits below the file `c/d` in A's flat but not
    in its tree, so the regional merge sees B's head still holding it.

    Old engine: `c/d` is A's file everywhere, no conflict, `c/d/Note.md` gone (B deleted
    it). Regional engine: a conflict on A (`c/d.conflict-...`), and the folder `c/d/`
    with `Note.md` that B deleted comes back on B."""
    a, b = pair(tmp_path, {"c/d/Note.md": "note", "c/s": "s", "other.md": "o"})
    shutil.rmtree(b / "c")
    sync(str(b), force=True)
    write(a / ".vaultsyncignore", "Note.md\n", mtime=OLD + 1)
    shutil.rmtree(a / "c/d")
    write(a / "c/d", "now a file", mtime=OLD + 2)
    r = sync(str(a), force=True)
    assert r.conflicts == [], r.conflicts
    sync(str(b))
    assert files(b).get("c/d") == b"now a file"
    assert not (b / "c/d/Note.md").exists(), "a note deleted on B came back from A's sync"


def test_finding_a_folder_deleted_on_b_is_not_resurrected_by_an_ignored_subfolder(
        tmp_path: Path) -> None:
    """FINDING (same cause). B deletes `a/b/`; A ignores `a/b/` and replaces folder `a/`
    by a file. Old engine: `a` is A's file everywhere, no conflict. Regional engine: a
    conflict on A, and B's deleted `a/b/n2.md` comes back on B."""
    a, b = pair(tmp_path, {"a/n1.md": "n1", "a/b/n2.md": "n2", "other.md": "o"})
    shutil.rmtree(b / "a/b")
    sync(str(b), force=True)
    write(a / ".vaultsyncignore", "a/b/\n", mtime=OLD + 1)
    shutil.rmtree(a / "a")
    write(a / "a", "now a file", mtime=OLD + 2)
    r = sync(str(a), force=True)
    assert r.conflicts == [], r.conflicts
    sync(str(b))
    assert files(b).get("a") == b"now a file"
    assert not (b / "a/b/n2.md").exists(), "a note deleted on B came back from A's sync"


# ---- attacks that held: regression tests ---------------------------------------------

def test_a_big_file_streamed_in_pieces_downloads_whole_through_the_lazy_index(
        tmp_path: Path) -> None:
    """A file over transfer.BATCH_BYTES (16 MiB), written on A, downloaded by B's staging
    threads, which look blobs up one by one in the lazy index (SQLite shared across
    threads); beside it many small new files, so several threads look up at once."""
    a, b = pair(tmp_path, {"other.md": "o"})
    big = os.urandom(40 * 1024 * 1024)
    write(a / "media/big.bin", big, mtime=OLD + 1)
    for i in range(60):
        write(a / f"notes/n{i}.md", os.urandom(3000), mtime=OLD + 2)
    sync(str(a))
    r = sync(str(b))
    assert r.exit_code == 0
    assert (b / "media/big.bin").read_bytes() == big
    assert files(b) == files(a)
    write(b / "media/big.bin", big[:-1] + b"!", mtime=OLD + 3)  # a small edit of it
    sync(str(b))
    sync(str(a))
    assert (a / "media/big.bin").read_bytes() == big[:-1] + b"!"


def test_a_folder_move_meets_new_and_edited_notes_inside_it(tmp_path: Path) -> None:
    """A renames `Drafts/` (with an unchanged sibling folder beside it, carried by id)
    to `Archive/2026/`; B adds and edits notes in `Drafts/`. Both land in the new place,
    nothing stays behind, the sibling is untouched."""
    a, b = pair(tmp_path, {"Drafts/x.md": "x", "Drafts/sub/y.md": "y",
                           "Still/s.md": "s", "other.md": "o"})
    (a / "Archive").mkdir()
    (a / "Drafts").rename(a / "Archive/2026")
    sync(str(a))
    write(b / "Drafts/x.md", "x edited on B", mtime=OLD + 5)
    write(b / "Drafts/sub/new.md", "new on B", mtime=OLD + 6)
    sync(str(b))
    sync(str(a))
    sync(str(b))
    want = {"Archive/2026/x.md": b"x edited on B", "Archive/2026/sub/y.md": b"y",
            "Archive/2026/sub/new.md": b"new on B", "Still/s.md": b"s", "other.md": b"o"}
    assert files(a) == want
    assert files(b) == want


def test_an_nfd_folder_spelling_meets_new_notes_from_an_nfc_device(tmp_path: Path) -> None:
    """A respells `Café/` in NFD (as macOS writes it); B adds a note inside the NFC
    spelling. One folder, both notes, each device keeps its spelling of the folder."""
    import unicodedata
    nfc, nfd = "Caf\u00e9", unicodedata.normalize("NFD", "Caf\u00e9")
    a, b = pair(tmp_path, {f"{nfc}/a.md": "a", "other.md": "o"})
    (a / nfc).rename(a / nfd)
    sync(str(a))
    write(b / f"{nfc}/b.md", "b", mtime=OLD + 5)
    sync(str(b))
    sync(str(a))
    sync(str(b))
    assert sorted(files(a)) == sorted([f"{nfd}/a.md", f"{nfd}/b.md", "other.md"]) or \
        sorted(files(a)) == sorted([f"{nfc}/a.md", f"{nfc}/b.md", "other.md"])
    assert len([p for p in os.listdir(a) if unicodedata.normalize("NFC", p) == nfc]) == 1
    assert len([p for p in os.listdir(b) if unicodedata.normalize("NFC", p) == nfc]) == 1
    assert sorted(unicodedata.normalize("NFC", k) for k in files(b)) == \
        sorted([f"{nfc}/a.md", f"{nfc}/b.md", "other.md"])
