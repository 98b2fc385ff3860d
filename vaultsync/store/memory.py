"""An in-memory store for engine unit tests; `memory://NAME` shares one per process.
A put is atomic here: no temporary objects (`stale_temporaries` answers [])."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from vaultsync.errors import ObjectNotFound
from vaultsync.store.base import Capabilities, ObjectInfo, Store

_registry: dict[str, MemoryStore] = {}
_registry_lock = threading.Lock()


class MemoryStore(Store):
    capabilities = Capabilities(atomic_put=True, ranged_get=True, conditional_put=True,
                                connections=8)

    def __init__(self, name: str = "") -> None:
        self.objects: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self.url = f"memory://{name}"

    @classmethod
    def named(cls, name: str) -> MemoryStore:
        with _registry_lock:
            if name not in _registry:
                _registry[name] = cls(name)
            return _registry[name]

    def _get(self, name: str) -> bytes:
        with self._lock:
            if name not in self.objects:
                raise ObjectNotFound(name)
            return self.objects[name]

    def _get_range(self, name: str, offset: int, length: int) -> bytes:
        return self._get(name)[offset : offset + length]

    def _put(self, name: str, data: bytes) -> None:
        with self._lock:
            self.objects[name] = bytes(data)

    def _delete(self, name: str) -> None:
        with self._lock:
            self.objects.pop(name, None)

    def _stat(self, name: str) -> ObjectInfo | None:
        with self._lock:
            data = self.objects.get(name)
        return None if data is None else ObjectInfo(name, len(data))

    def _list(self, prefix: str) -> Iterator[ObjectInfo]:
        with self._lock:
            items = sorted((k, len(v)) for k, v in self.objects.items() if k.startswith(prefix))
        for name, size in items:
            yield ObjectInfo(name, size)
