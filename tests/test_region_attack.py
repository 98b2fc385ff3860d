"""Attacks on the regional merge (c94159c: engine/sync.Regional, reconcile/region.py).

The old engine (b2e5226) merged whole flat trees; it is the oracle here. Each test marked
FINDING failed on the regional engine when written and passes on b2e5226; the others are
regression tests for attacks that held (each asserts something that could fail).

Two devices, `laptop` (A) and `desk` (B), in process, on a directory remote
(tests/test_sync.py's `pair`).
"""

from __future__ import annotations

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
