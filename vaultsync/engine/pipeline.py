"""A bounded, ordered thread pipeline: the stages of an upload or a download overlap
(file reads, BLAKE3, zstd and writes release the GIL) while memory stays bounded.

`ordered(fn, items)` runs `fn` on worker threads and hands back the results in the
order of `items`, exactly what `map(fn, items)` would give, with at most `window` items
taken from `items` and not yet handed back. A failure in a worker is raised where
`map` would have raised it (the results before it are handed back first); the items
after it are cancelled, and every worker has stopped before the failure propagates.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

# worker threads for CPU work (hashing, compressing): the cores, a few at most
WORKERS = max(1, min(4, os.cpu_count() or 1))


def ordered(fn: Callable[[T], R], items: Iterable[T], workers: int | None = None,
            window: int | None = None, name: str = "vaultsync-work") -> Iterator[R]:
    """`map(fn, items)` on `workers` threads (default WORKERS), at most `window`
    (default 2 x workers) items in flight. Close the iterator to stop early."""
    workers = WORKERS if workers is None else workers
    if workers <= 1:
        yield from map(fn, items)
        return
    window = max(1, window or 2 * workers)
    pool = ThreadPoolExecutor(workers, thread_name_prefix=name)
    inflight: deque[Future[R]] = deque()
    try:
        for item in items:
            inflight.append(pool.submit(fn, item))
            if len(inflight) >= window:
                yield inflight.popleft().result()
        while inflight:
            yield inflight.popleft().result()
    finally:
        for future in inflight:
            future.cancel()
        pool.shutdown(wait=True)
