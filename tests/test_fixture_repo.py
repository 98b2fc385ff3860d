"""A repository written by an earlier version (fixtures/repo-v1) must stay readable."""

import json
import shutil
from pathlib import Path

from tests.conftest import REPO_ROOT
from vaultsync.chunking import Hasher
from vaultsync.engine.history import all_snapshots, checkout
from vaultsync.repository.packs import pack_name, read_trailer
from vaultsync.repository.repo import Repository
from vaultsync.store.local import LocalStore

FIXTURE = REPO_ROOT / "fixtures" / "repo-v1"
MANIFEST = json.loads((REPO_ROOT / "fixtures" / "repo-v1.manifest.json").read_text())


def test_fixture_repository_checks_out_byte_for_byte(tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    shutil.copytree(FIXTURE, remote)
    r = checkout(str(remote), str(tmp_path / "out"), None)
    got = {}
    for p in sorted((tmp_path / "out").rglob("*")):
        if p.is_file():
            st = p.stat()
            got[p.relative_to(tmp_path / "out").as_posix()] = {
                "blake3": Hasher().id(p.read_bytes()), "size": st.st_size,
                "mtime_ns": st.st_mtime_ns, "executable": bool(st.st_mode & 0o100)}
    assert got == MANIFEST
    assert r.snapshot is not None


def test_fixture_history_and_objects_verify(tmp_path: Path) -> None:
    repo = Repository.open(LocalStore(str(FIXTURE)))
    snaps = all_snapshots(repo)
    assert len(snaps) == 2 and snaps[0][1].parents == (snaps[1][0],)
    older = tmp_path / "older"
    checkout(str(FIXTURE), str(older), snaps[1][0])
    assert "Edited in the second snapshot" not in (older / "Welcome.md").read_text()
    packs = {ref.pack for ref in repo.index.values()}
    for pack in packs:
        data = repo.store.get(pack_name(pack))
        assert repo.hasher.id(data) == pack
        assert {r.id for r in read_trailer(data, pack)} == {
            r.id for r in repo.index.values() if r.pack == pack}
    for bid in repo.index:
        repo.read_blob(bid)  # every blob decodes and verifies
