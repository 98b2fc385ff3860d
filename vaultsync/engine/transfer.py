"""Moving blobs: new chunks and trees up into packs, file contents down into the vault."""

from __future__ import annotations

import os
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator

from vaultsync.engine import pipeline, progress
from vaultsync.engine.scan import ChunkLocation
from vaultsync.errors import ChangedDuringRun, IntegrityError
from vaultsync.fsutil import O_BINARY
from vaultsync.model import Entry, ObjectId
from vaultsync.repository.packs import CHUNK
from vaultsync.repository.repo import Repository, RepoWriter

BATCH_BYTES = 16 * 1024 * 1024
TASK_BYTES = 2 * 1024 * 1024  # an upload worker's task: chunks of about this many bytes
TASK_FILES = 256  # or of this many files
STREAM_CHUNKS = 16  # chunks fetched at a time for a file larger than BATCH_BYTES


Relocate = Callable[[set[ObjectId]], dict[ObjectId, ChunkLocation]]


def upload(repo: Repository, writer: RepoWriter, files: Iterable[Entry],
           locations: dict[ObjectId, ChunkLocation], trees: dict[ObjectId, bytes],
           relocate: Relocate) -> int:
    """Pack every chunk of `files` and every tree that the repository lacks; returns the
    number of new chunks.

    Chunk bytes are re-read from the files the scan hashed and verified again, so a file
    edited since the scan is never committed under a stale id. A chunk the stat cache
    vouched for but the repository lacks (a new or pruned remote) is found again by
    `relocate`; one found nowhere is an integrity error. A chunk only in a pack that a
    pending prune names is copied out of it."""
    missing: dict[ObjectId, ChunkLocation | None] = {}
    files = list(files)
    repo.index.warm(c for entry in files for c in entry.chunks)  # one query per 500
    for entry in files:
        for cid in entry.chunks:
            if cid not in missing and cid not in writer.pending and not repo.has_blob(cid):
                missing[cid] = locations.get(cid)
    unlocated = {cid for cid, loc in missing.items() if loc is None}
    # stored, but in a pack a pending prune names (a file from another device that this
    # commit carries on): copied from there into a new pack, verified on the way
    named = sorted(cid for cid in unlocated if cid in repo.index)
    for cid, data in repo.read_blobs(named):
        writer.add(cid, CHUNK, data)
        del missing[cid]
    unlocated.difference_update(named)
    if unlocated:
        found = relocate(unlocated)
        lost = unlocated - found.keys()
        if lost:
            raise IntegrityError(f"{len(lost)} chunk(s) are neither in the repository nor in "
                                 f"this vault (first: {min(lost)[:12]})")
        missing.update(found)
    by_file: dict[str, list[tuple[ObjectId, ChunkLocation]]] = defaultdict(list)
    for cid, loc in missing.items():
        assert loc is not None
        by_file[loc.path].append((cid, loc))
    bar = progress.current()
    bar.start("upload", sum(loc.length for loc in missing.values() if loc), "bytes")

    def read(task: list[tuple[str, list[tuple[ObjectId, ChunkLocation]]]]) -> list[Encoded]:
        return [blob for path, items in task for blob in _read_encoded(repo, writer, path, items)]

    # files are read, verified and compressed on worker threads, a few MiB per task and
    # a few tasks ahead; packs are filled here in the same order as one thread would
    for blobs in pipeline.ordered(read, _tasks(by_file), name="vaultsync-read"):
        for cid, stored, raw_length in blobs:
            writer.add_encoded(cid, CHUNK, stored, raw_length)
            bar.advance(raw_length)
    bar.finish()
    writer.add_trees(trees)
    return len(missing) + len(named)


Encoded = tuple[ObjectId, bytes, int]  # blob id, stored bytes (codec applied), raw length


def _tasks(by_file: dict[str, list[tuple[ObjectId, ChunkLocation]]],
           ) -> Iterator[list[tuple[str, list[tuple[ObjectId, ChunkLocation]]]]]:
    """The chunks to read, by path, cut into tasks of about TASK_BYTES or TASK_FILES
    files (a large file's chunks spread over several tasks)."""
    task: list[tuple[str, list[tuple[ObjectId, ChunkLocation]]]] = []
    size = 0
    for path, items in sorted(by_file.items()):
        items.sort(key=lambda x: x[1].offset)
        part: list[tuple[ObjectId, ChunkLocation]] = []
        for item in items:
            part.append(item)
            size += item[1].length
            if size >= TASK_BYTES:
                task.append((path, part))
                yield task
                task, part, size = [], [], 0
        if part:
            task.append((path, part))
        if len(task) >= TASK_FILES:
            yield task
            task, size = [], 0
    if task:
        yield task


def _read_encoded(repo: Repository, writer: RepoWriter, path: str,
                  items: list[tuple[ObjectId, ChunkLocation]]) -> list[Encoded]:
    """Read chunks of one file, check each against its id (the file may have changed
    since the scan), and put each through the codec."""
    out = []
    try:
        fd = os.open(path, os.O_RDONLY | O_BINARY)
        try:
            for cid, loc in items:
                data = _pread(fd, loc.length, loc.offset)
                if repo.hasher.id(data) != cid:
                    raise ChangedDuringRun(f"{path} changed while uploading; run again")
                out.append((cid, writer.encode(data), len(data)))
        finally:
            os.close(fd)
    except OSError as exc:
        raise ChangedDuringRun(f"{path} could not be read: {exc.strerror}; run again") from None
    return out


def batches(entries: list[tuple[str, Entry]]) -> Iterator[list[tuple[str, Entry]]]:
    """Group small files so their chunks are fetched together (coalesced reads)."""
    batch: list[tuple[str, Entry]] = []
    size = 0
    for item in entries:
        if item[1].size > BATCH_BYTES:
            yield [item]
            continue
        batch.append(item)
        size += item[1].size
        if size >= BATCH_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def prefetch(repo: Repository, batch: list[tuple[str, Entry]],
             have: dict[ObjectId, bytes] | None = None) -> dict[ObjectId, bytes]:
    """The chunks of a batch of files, read from the repository and verified, but for
    those `have` (found in this vault's own files) holds."""
    if len(batch) == 1 and batch[0][1].size > BATCH_BYTES:
        return {}
    ids = [c for _, e in batch for c in e.chunks if not have or c not in have]
    return dict(repo.read_blobs(ids))


def pieces(repo: Repository, entry: Entry, blobs: dict[ObjectId, bytes],
           have: dict[ObjectId, bytes] | None = None) -> Iterator[bytes]:
    """A file's bytes, chunk by chunk, each verified (streamed for large files); a
    chunk `have` holds is not read from the repository."""
    have = have or {}
    if all(c in blobs or c in have for c in entry.chunks):
        for c in entry.chunks:
            yield blobs[c] if c in blobs else have[c]
        return
    for i in range(0, len(entry.chunks), STREAM_CHUNKS):
        part = entry.chunks[i : i + STREAM_CHUNKS]
        got = dict(repo.read_blobs([c for c in part if c not in have]))
        for c in part:
            yield got[c] if c in got else have[c]


REUSE_MIN = 2  # chunks a new version must have for its old one to be read for them
REUSE_BYTES = 256 * 1024 * 1024  # at most this much kept in memory from local files


def local_chunks(repo: Repository, root: str, writes: Iterable[tuple[str, Entry]],
                 old: Callable[[str], tuple[str, Entry] | None]) -> dict[ObjectId, bytes]:
    """Chunks a new version shares with the version this vault holds at its path (an
    append to a large file: all but the last), read from the vault's own file instead of
    the repository. `old(key)`: (relative path on disk, entry) of the version there.
    Each chunk's id is computed from the bytes read, so a file that changed since the
    scan gives no wrong bytes, only fewer chunks; a file that cannot be read, none."""
    out: dict[ObjectId, bytes] = {}
    chunker = None
    kept = 0
    for key, entry in writes:
        if len(entry.chunks) < REUSE_MIN:
            continue
        there = old(key)
        if there is None or there[1].is_dir:
            continue
        wanted = set(entry.chunks) & set(there[1].chunks)
        wanted -= out.keys()
        if not wanted:
            continue
        if chunker is None:
            from vaultsync.chunking import Chunker
            chunker = Chunker(repo.format.chunker, repo.hasher)
        try:
            with open(os.path.join(root, *there[0].split("/")), "rb") as f:
                for c in chunker.chunks(f, keep_data=True):
                    if c.id in wanted and c.data is not None:
                        out[c.id] = c.data
                        kept += c.length
        except OSError:
            continue
        if kept >= REUSE_BYTES:
            break
    return out


if sys.platform == "win32":  # no pread there: seek, then read (one thread per descriptor)
    def _pread(fd: int, length: int, offset: int) -> bytes:
        os.lseek(fd, offset, os.SEEK_SET)
        parts, left = [], length
        while left:
            piece = os.read(fd, left)
            if not piece:
                break
            parts.append(piece)
            left -= len(piece)
        return b"".join(parts)
else:
    _pread = os.pread
