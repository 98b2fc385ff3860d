"""Minimal reproductions of what the prune soak, crash and backend tests found, one
deterministic test each (the long tests find them by chance; these find them always)."""

from __future__ import annotations

import base64
import random
from pathlib import Path

from tests.conftest import run_cli, write


def test_a_merge_that_takes_a_file_whose_chunks_sit_in_a_named_pack_syncs(
        tmp_path: Path) -> None:
    """Phase 1 names a mostly dead pack whose few live blobs are copied out in phase 2.
    Until then a device that merges a file it has never had (its chunks only in that
    pack) must read them back from the pack and store them again, not stop with exit 5
    ("chunk(s) are neither in the repository nor in this vault") for the whole grace."""
    a, b, remote = tmp_path / "a", tmp_path / "b", tmp_path / "remote"
    write(a / "one.md", "one")
    assert run_cli("init", "--remote", str(remote), "--device", "a", cwd=a).code == 0
    assert run_cli("sync", cwd=a).code == 0
    assert run_cli("clone", str(remote), str(b), "--device", "b").code == 0
    write(a / "w.md", "a small note b has never seen")
    write(a / "big.md", base64.b64encode(random.Random(1).randbytes(40000)))
    assert run_cli("sync", cwd=a).code == 0  # one pack: w.md and big.md
    (a / "big.md").unlink()
    assert run_cli("sync", cwd=a).code == 0  # that pack is now mostly dead
    res = run_cli("prune", "--keep-last", "1", "--grace", "1h", cwd=a)
    assert res.code == 0 and "pending" in res.out, res.out  # phase 1 names the pack
    write(b / "one.md", "b's edit")  # not a fast-forward: b commits a merge
    res = run_cli("sync", cwd=b)
    assert res.code == 0, res.err
    assert (b / "w.md").read_text() == "a small note b has never seen"
    res = run_cli("verify", "--read-data", "100", cwd=b)
    assert res.code == 0, res.out + res.err


def test_a_commit_between_phase2_reading_the_index_and_listing_the_snapshots(
        tmp_path: Path) -> None:
    """Phase 2 reads the index, then the heads and snapshots: a sync on another device
    that commits in between (segment, snapshot, head: all after the index was read) is
    a snapshot whose trees the prune's index does not have. The prune must count it
    (its blobs are live) and finish, not stop with exit 5 ("blob ... is not in the
    repository index"): the soak met this at random."""
    from vaultsync.engine.sync import sync
    from vaultsync.repository.prune import Pruner
    from vaultsync.repository.repo import Repository
    from vaultsync.repository.retention import Policy
    from vaultsync.store.local import LocalStore

    a, b, remote = tmp_path / "a", tmp_path / "b", tmp_path / "remote"
    write(a / "one.md", "one")
    assert run_cli("init", "--remote", str(remote), "--device", "a", cwd=a).code == 0
    assert run_cli("sync", cwd=a).code == 0
    assert run_cli("clone", str(remote), str(b), "--device", "b").code == 0
    for i in range(3):
        write(a / "one.md", f"one, edit {i}")
        assert run_cli("sync", cwd=a).code == 0
    commits: list[str] = []

    class CommitDuringPhase2(LocalStore):
        """Runs b's sync when the prune lists heads after writing its record (that is
        phase 2, just after it read the index)."""

        def list(self, prefix: str = ""):  # type: ignore[no-untyped-def]
            if prefix == "heads/" and (remote / "prune").is_dir() and not commits:
                write(b / "new.md", "b's note, committed while the prune collects")
                commits.append(sync(str(b)).snapshot or "")
            return super().list(prefix)

    repo = Repository.open(CommitDuringPhase2(str(remote)))
    report = Pruner(repo, Policy(keep_last=1), 0, device="p").run()
    repo.close()
    assert commits and commits[0], "b's sync did not commit during the prune"
    assert report.deleted_snapshots, report
    res = run_cli("verify", "--read-data", "100", cwd=b)
    assert res.code == 0, res.out + res.err
    res = run_cli("sync", cwd=a)
    assert res.code == 0 and (a / "new.md").read_text().startswith("b's note"), res.err


def test_the_local_index_keeps_every_copy_of_a_blob(tmp_path: Path) -> None:
    """A blob a sync stored again beside a pack a pending record names is in two packs.
    `Repository._load_index` prefers the copy outside the named packs, and phase 2 copies
    a blob out of a doomed pack only when no other pack holds it; both need every copy
    from the vault's index cache. The SQLite cache keeps one per blob id (INSERT OR
    IGNORE on a primary key), whichever segment came first: so phase 2 may copy out a
    blob a sync already stored again (the backend test saw it repack the whole restored
    file) and the consolidated index then forgets the sync's copy."""
    from vaultsync.engine.state import State
    from vaultsync.repository.packs import CHUNK, BlobRef

    blob, named, fresh = "1" * 64, "2" * 64, "3" * 64
    state = State(str(tmp_path / "state.db"))
    state.add_index_segment("4" * 64, [BlobRef(blob, CHUNK, named, 0, 100, 90)])
    state.add_index_segment("5" * 64, [BlobRef(blob, CHUNK, fresh, 0, 100, 90)])
    packs = {r.pack for r in state.index_refs() if r.id == blob}
    state.close()
    assert packs == {named, fresh}
