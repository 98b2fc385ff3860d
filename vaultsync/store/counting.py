"""A wrapper that counts requests and bytes each way (reported by --json)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass

from vaultsync.store.base import ObjectInfo, Store, WrappingStore


@dataclass
class Traffic:
    requests_down: int = 0
    bytes_down: int = 0
    requests_up: int = 0
    bytes_up: int = 0
    puts: int = 0
    gets: int = 0
    lists: int = 0
    deletes: int = 0

    def to_json(self) -> dict[str, int]:
        return asdict(self)


class CountingStore(WrappingStore):
    def __init__(self, inner: Store) -> None:
        super().__init__(inner)
        self.traffic = Traffic()
        self._lock = threading.Lock()

    def _count(self, up: bool, nbytes: int, kind: str) -> None:
        with self._lock:
            t = self.traffic
            if up:
                t.requests_up += 1
                t.bytes_up += nbytes
            else:
                t.requests_down += 1
                t.bytes_down += nbytes
            setattr(t, kind, getattr(t, kind) + 1)

    def _get(self, name: str) -> bytes:
        data = self.inner.get(name)
        self._count(False, len(data), "gets")
        return data

    def _get_range(self, name: str, offset: int, length: int) -> bytes:
        data = self.inner.get_range(name, offset, length)
        self._count(False, len(data), "gets")
        return data

    def _put(self, name: str, data: bytes) -> None:
        self.inner.put(name, data)
        self._count(True, len(data), "puts")

    def _delete(self, name: str) -> None:
        self.inner.delete(name)
        self._count(True, 0, "deletes")

    def _stat(self, name: str) -> ObjectInfo | None:
        info = self.inner.stat(name)
        self._count(False, 0, "gets")
        return info

    def _list(self, prefix: str) -> Iterator[ObjectInfo]:
        self._count(False, 0, "lists")
        return iter(list(self.inner.list(prefix)))

    def _stale_temporaries(self, prefix: str, older_than_s: float) -> list[str]:
        self._count(False, 0, "lists")
        return self.inner.stale_temporaries(prefix, older_than_s)

    def _remove_temporary(self, name: str) -> None:
        self.inner.remove_temporary(name)
        self._count(True, 0, "deletes")
