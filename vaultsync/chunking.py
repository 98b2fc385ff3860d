"""Content-defined chunking (FastCDC, compiled path only) and the repository hasher.

Every id in a repository comes from `Hasher`: plain BLAKE3-256 today, keyed BLAKE3 in
a future encrypted format. No other module imports `blake3`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO

import blake3

from vaultsync.errors import IntegrityError, MissingDependency
from vaultsync.model import ObjectId


class Hasher:
    """Computes repository object ids. `key` makes it keyed BLAKE3 (future encryption)."""

    name = "blake3"

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key

    def _new(self, data: bytes | memoryview = b"") -> blake3.blake3:
        return blake3.blake3(data, key=self._key) if self._key else blake3.blake3(data)

    def id(self, data: bytes | memoryview) -> ObjectId:
        return self._new(data).hexdigest()

    def verify(self, data: bytes | memoryview, expected: ObjectId, what: str) -> None:
        """Raise IntegrityError unless `data` hashes to `expected`."""
        actual = self.id(data)
        if actual != expected:
            raise IntegrityError(
                f"{what}: hash mismatch (expected {expected[:12]}, got {actual[:12]})")


@dataclass(frozen=True)
class ChunkerParams:
    """Repository parameters: every device must cut files the same way."""

    min_size: int = 128 * 1024
    avg_size: int = 512 * 1024
    max_size: int = 2 * 1024 * 1024

    def __post_init__(self) -> None:
        ok = (
            64 <= self.min_size <= self.avg_size <= self.max_size <= 64 * 1024 * 1024
            and self.avg_size >= 256
            and self.max_size >= 1024
        )
        if not ok:
            raise IntegrityError(f"invalid chunker parameters {self}")

    def to_json(self) -> dict[str, object]:
        return {"algorithm": "fastcdc-2020", "min": self.min_size, "avg": self.avg_size,
                "max": self.max_size}

    @classmethod
    def from_json(cls, doc: object) -> ChunkerParams:
        if not isinstance(doc, dict) or doc.get("algorithm") != "fastcdc-2020":
            raise IntegrityError("repository uses an unknown chunker")
        try:
            return cls(int(doc["min"]), int(doc["avg"]), int(doc["max"]))
        except (KeyError, TypeError, ValueError):
            raise IntegrityError("repository chunker parameters are malformed") from None


@dataclass(frozen=True, slots=True)
class Chunk:
    id: ObjectId
    offset: int
    length: int
    data: bytes | None = None


def _compiled_fastcdc():  # type: ignore[no-untyped-def]
    try:
        from fastcdc.fastcdc_cy import fastcdc_cy
    except ImportError as exc:
        raise MissingDependency(
            "the compiled FastCDC extension (fastcdc.fastcdc_cy) is missing; its pure-Python "
            "fallback is ~100x slower and is never used. Reinstall 'fastcdc' from a wheel."
        ) from exc
    return fastcdc_cy


class Chunker:
    """Cuts a stream into content-defined chunks without reading it all into memory."""

    def __init__(self, params: ChunkerParams, hasher: Hasher) -> None:
        self.params = params
        self.hasher = hasher
        self._cdc = _compiled_fastcdc()
        self.block = max(8 * 1024 * 1024, 4 * params.max_size)

    def chunks(self, stream: BinaryIO, keep_data: bool = False) -> Iterator[Chunk]:
        p = self.params
        buf = b""
        base = 0
        eof = False
        while True:
            if not eof:
                data = stream.read(self.block)
                eof = not data
                buf = buf + data if buf else data
            if not buf:
                return
            if not eof and len(buf) < p.max_size:
                continue  # no chunk is final before max_size bytes follow its start
            if eof and len(buf) <= p.min_size:  # FastCDC never cuts below min_size
                yield Chunk(self.hasher.id(buf), base, len(buf), bytes(buf) if keep_data else None)
                return
            view = memoryview(buf)
            consumed = 0
            for c in self._cdc(view, p.min_size, p.avg_size, p.max_size):
                # A chunk is final once max_size bytes follow its start, or at EOF.
                if not eof and c.offset + p.max_size > len(buf):
                    break
                piece = view[c.offset : c.offset + c.length]
                yield Chunk(self.hasher.id(piece), base + c.offset, c.length,
                            bytes(piece) if keep_data else None)
                consumed = c.offset + c.length
            view.release()
            buf = buf[consumed:]
            base += consumed
            if eof and not buf:
                return


Cut = tuple[list[Chunk], os.stat_result, os.stat_result]  # chunks, fstat before, after


def cut_file(chunker: Chunker, opener: Callable[[str], BinaryIO], path: str,
             stop: Callable[[], bool] = lambda: False) -> Cut:
    """A file's chunks, with its fstat before and after the read (equal unless it changed
    meanwhile). OSError if it cannot be read; CancelledError once `stop()` says so."""
    with opener(path) as f:
        before = os.fstat(f.fileno())
        chunks = []
        for c in chunker.chunks(f):
            if stop():
                raise CancelledError(path)
            chunks.append(c)
        after = os.fstat(f.fileno())
    return chunks, before, after


PREHASH_MIN = 256 * 1024  # smaller files: Python's per-file work holds the GIL anyway
PREHASH_WORKERS = max(1, min(4, os.cpu_count() or 1))


class Prehasher:
    """Cuts and hashes large files on worker threads ahead of a caller that walks them in
    its own order (the scan): it `submit`s the files of a folder it will read, then
    `take`s each result where it would have read that file. File reads, FastCDC and
    BLAKE3 release the GIL, so the walk and the small files go on meanwhile. Results
    are the caller's to check, as for its own reads (`cut_file`); a file not submitted
    (`take` gives None) the caller reads itself. Memory: a read block per worker."""

    def __init__(self, chunker: Callable[[], Chunker], opener: Callable[[str], BinaryIO],
                 workers: int | None = None) -> None:
        self._chunker = chunker
        self._opener = opener
        self._workers = PREHASH_WORKERS if workers is None else workers
        self._pool: ThreadPoolExecutor | None = None
        self._jobs: dict[str, Future[Cut]] = {}
        self._stopped = False

    def wants(self, size: int) -> bool:
        return self._workers > 1 and size >= PREHASH_MIN

    def submit(self, path: str) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="vaultsync-hash")
        if path not in self._jobs:
            chunker = self._chunker()  # made here, on the caller's thread
            self._jobs[path] = self._pool.submit(cut_file, chunker, self._opener, path,
                                                 lambda: self._stopped)

    def take(self, path: str) -> Cut | None:
        """The submitted file's chunks (waiting for them), its OSError raised; None if
        it was not submitted."""
        job = self._jobs.pop(path, None)
        return None if job is None else job.result()

    def close(self) -> None:
        """Stop: jobs not started are dropped, running ones end at their next chunk."""
        self._stopped = True
        for job in self._jobs.values():
            job.cancel()
        self._jobs.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
