"""Download only what changed: a new version of a large file that shares chunks with the
version this vault holds (an append) takes those chunks from the vault's own file, each
one's id computed from the bytes read; only the new chunks come from the remote."""

from __future__ import annotations

import random
from pathlib import Path

from tests.conftest import write
from vaultsync.engine import oneway
from vaultsync.engine.sync import sync
from vaultsync.engine.transfer import local_chunks
from vaultsync.model import Entry
from vaultsync.repository.repo import Repository
from vaultsync.store.local import LocalStore

OLD = 1_600_000_000
MIB = 1024 * 1024


def test_an_append_to_a_large_file_downloads_only_its_last_chunks(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    big = random.Random(3).randbytes(12 * MIB)
    write(a / "scan.bin", big, OLD)
    write(a / "n.md", "note", OLD)
    oneway.init(str(a), str(tmp_path / "remote"), "a")
    sync(str(a))
    oneway.clone(str(tmp_path / "remote"), str(b), "b")
    write(a / "scan.bin", big + b"appended" * 128, OLD + 1)
    up = sync(str(a))
    down = sync(str(b))
    assert (b / "scan.bin").read_bytes() == big + b"appended" * 128
    assert down.downloaded == ["scan.bin"]
    assert up.traffic.bytes_up < 4 * MIB  # what went up: the changed chunks only
    # down: the new chunks, the snapshot, its trees and index; not 12 MiB again
    assert down.traffic.bytes_down < up.traffic.bytes_up + 256 * 1024, down.traffic


def test_local_chunks_come_from_the_bytes_read_not_from_the_entry(tmp_path: Path) -> None:
    """A file that changed since the scan gives no wrong bytes, only fewer chunks; a file
    that cannot be read gives none."""
    vault = tmp_path / "v"
    data = random.Random(4).randbytes(10 * MIB)
    write(vault / "f.bin", data, OLD)
    oneway.init(str(vault), str(tmp_path / "remote"), "a")
    sync(str(vault))
    repo = Repository.open(LocalStore(str(tmp_path / "remote")))
    from vaultsync.chunking import Chunker

    with (vault / "f.bin").open("rb") as f:
        chunks = list(Chunker(repo.format.chunker, repo.hasher).chunks(f, keep_data=True))
    assert len(chunks) >= 3
    entry = Entry("f.bin", size=len(data), chunks=tuple(c.id for c in chunks))
    got = local_chunks(repo, str(vault), [("f.bin", entry)], lambda k: ("f.bin", entry))
    assert set(got) == set(entry.chunks)
    assert all(repo.hasher.id(v) == k for k, v in got.items())
    # the file's first half changes after the scan: those chunks are simply not found
    changed = random.Random(5).randbytes(5 * MIB) + data[5 * MIB:]
    (vault / "f.bin").write_bytes(changed)
    got = local_chunks(repo, str(vault), [("f.bin", entry)], lambda k: ("f.bin", entry))
    assert got and set(got) < set(entry.chunks)
    assert all(repo.hasher.id(v) == k for k, v in got.items())
    (vault / "f.bin").unlink()
    assert local_chunks(repo, str(vault), [("f.bin", entry)], lambda k: ("f.bin", entry)) == {}
