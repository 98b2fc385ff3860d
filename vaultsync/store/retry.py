"""Retry transient store failures with exponential backoff and jitter.

The convention between stores and this wrapper:

* A store raises `vaultsync.errors.TransientError` (a `RemoteUnreachable`, exit code 3)
  for a failure that may go away if the same request is sent again: a timeout, a refused
  or dropped connection, an HTTP 5xx or 429, S3 SlowDown/RequestTimeout, an SSH session
  that died mid-request.
* Every other error is permanent and passes through at once: `ObjectNotFound`,
  `AuthError`, `NotARepository`, `BadName`, a plain `RemoteUnreachable` (a folder that is
  not mounted, a bucket that does not exist).
* Python's own `ConnectionError` and `TimeoutError` escaping a store are treated as
  transient too (belt and braces: a store should have mapped them).

The network stores do not retry on their own (botocore and s3fs retries are turned off),
so there is exactly one retry layer and its bounds are the real bounds: at most
`attempts` tries and `max_elapsed` seconds per operation. When they are used up the last
`TransientError` is raised again, with the count in its message.

Every store operation is safe to repeat: PUT of an immutable, content-named object writes
the same bytes; a head is single-writer; DELETE is idempotent. `list()` is read whole
inside one attempt, so a retry never yields a name twice.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from vaultsync.errors import TransientError
from vaultsync.store.base import ObjectInfo, Store, WrappingStore

T = TypeVar("T")


class RetryStore(WrappingStore):
    def __init__(
        self,
        inner: Store,
        *,
        attempts: int = 6,
        base_delay: float = 0.25,
        max_delay: float = 8.0,
        max_elapsed: float = 60.0,
        seed: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(inner)
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.max_elapsed = max_elapsed
        self._random = random.Random(seed)
        self._sleep = sleep
        self._clock = clock
        self.retries = 0  # transient failures seen and retried, for reports and tests

    def _delay(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max_delay, base_delay * 2**attempt)]."""
        return self._random.uniform(0, min(self.max_delay, self.base_delay * (2**attempt)))

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        start = self._clock()
        attempt = 0
        while True:
            try:
                return fn()
            except (TransientError, ConnectionError, TimeoutError) as exc:
                err = exc if isinstance(exc, TransientError) else TransientError(
                    f"{what} on {self.url} failed: {type(exc).__name__}"
                )
                attempt += 1
                elapsed = self._clock() - start
                delay = self._delay(attempt - 1)
                if attempt >= self.attempts or elapsed + delay > self.max_elapsed:
                    raise TransientError(
                        f"{err.message} (gave up after {attempt} attempt"
                        f"{'s' if attempt > 1 else ''} in {elapsed:.1f} s)"
                    ) from exc
                self.retries += 1
                self._sleep(delay)

    def exists(self) -> bool:
        return self._call("exists", self.inner.exists)

    def prepare(self) -> None:
        self._call("prepare", self.inner.prepare)

    def _get(self, name: str) -> bytes:
        return self._call(f"GET {name}", lambda: self.inner.get(name))

    def _get_range(self, name: str, offset: int, length: int) -> bytes:
        return self._call(f"GET {name}", lambda: self.inner.get_range(name, offset, length))

    def _put(self, name: str, data: bytes) -> None:
        self._call(f"PUT {name}", lambda: self.inner.put(name, data))

    def _delete(self, name: str) -> None:
        self._call(f"DELETE {name}", lambda: self.inner.delete(name))

    def _stat(self, name: str) -> ObjectInfo | None:
        return self._call(f"STAT {name}", lambda: self.inner.stat(name))

    def _list(self, prefix: str) -> Iterator[ObjectInfo]:
        return iter(self._call(f"LIST {prefix or '/'}", lambda: list(self.inner.list(prefix))))

    def _stale_temporaries(self, prefix: str, older_than_s: float) -> list[str]:
        return self._call(f"LIST temporaries {prefix or '/'}",
                          lambda: self.inner.stale_temporaries(prefix, older_than_s))

    def _remove_temporary(self, name: str) -> None:
        self._call(f"DELETE {name}", lambda: self.inner.remove_temporary(name))
