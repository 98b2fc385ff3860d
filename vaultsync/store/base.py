"""The store interface: a handful of methods, capability flags, object-name validation.

A store knows nothing of packs or snapshots: it moves named, immutable-or-replaced byte
strings. Every name is validated here, once, on the way in and on the way out ("no crap
in, no crap out"): a name a hostile remote lists that does not fit is ignored, never
turned into a path.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass

from vaultsync.errors import BadName, IntegrityError

_PART = r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}"
_NAME_RE = re.compile(rf"{_PART}(/{_PART}){{0,7}}\Z")
MAX_OBJECT_SIZE = 1 << 40


def valid_name(name: object) -> bool:
    """A store object name: up to 8 '/'-separated components of [A-Za-z0-9._-], none
    starting with '.', so '..', '.', temporary files and absolute paths never pass."""
    return isinstance(name, str) and _NAME_RE.match(name) is not None


def check_name(name: str) -> str:
    if not valid_name(name):
        raise BadName(f"refusing object name {name!r}")
    return name


@dataclass(frozen=True)
class Capabilities:
    atomic_put: bool = True  # a reader never sees a partial object
    ranged_get: bool = True  # get_range reads only the bytes asked for
    conditional_put: bool = False  # create-if-absent is atomic
    connections: int = 1  # parallel requests that make sense


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    name: str
    size: int


class Store(ABC):
    """Abstract store. Subclasses implement the underscored methods; names arriving here
    are already validated."""

    capabilities = Capabilities()
    url = ""  # display URL: never carries a secret

    def get(self, name: str) -> bytes:
        return self._get(check_name(name))

    def get_range(self, name: str, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0 or length > MAX_OBJECT_SIZE:
            raise IntegrityError(f"absurd range {offset}+{length} for {name}")
        data = self._get_range(check_name(name), offset, length)
        if len(data) != length:
            raise IntegrityError(f"short read of {name}: wanted {length} bytes, got {len(data)}")
        return data

    def put(self, name: str, data: bytes) -> None:
        self._put(check_name(name), data)

    def delete(self, name: str) -> None:
        self._delete(check_name(name))

    def stat(self, name: str) -> ObjectInfo | None:
        return self._stat(check_name(name))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Objects whose names start with `prefix` (a folder such as 'packs/'), any depth.
        Names that fail validation (temporary files, junk) are skipped."""
        if prefix and not valid_name(prefix.rstrip("/")):
            raise BadName(f"refusing prefix {prefix!r}")
        for info in self._list(prefix):
            if valid_name(info.name) and info.name.startswith(prefix):
                yield info

    def exists(self) -> bool:
        """Whether the store's location itself exists (bucket, folder)."""
        return True

    def prepare(self) -> None:
        """Create the location (folder, bucket) when missing: only `init` calls this."""

    def close(self) -> None:
        """Release connections."""

    @abstractmethod
    def _get(self, name: str) -> bytes: ...

    @abstractmethod
    def _get_range(self, name: str, offset: int, length: int) -> bytes: ...

    @abstractmethod
    def _put(self, name: str, data: bytes) -> None: ...

    @abstractmethod
    def _delete(self, name: str) -> None: ...

    @abstractmethod
    def _stat(self, name: str) -> ObjectInfo | None: ...

    @abstractmethod
    def _list(self, prefix: str) -> Iterator[ObjectInfo]: ...


class WrappingStore(Store):
    """Base for behaviour-as-a-wrapper stores (counting, retry, dry-run)."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.capabilities = inner.capabilities
        self.url = inner.url

    def exists(self) -> bool:
        return self.inner.exists()

    def prepare(self) -> None:
        self.inner.prepare()

    def close(self) -> None:
        self.inner.close()

    def _get(self, name: str) -> bytes:
        return self.inner.get(name)

    def _get_range(self, name: str, offset: int, length: int) -> bytes:
        return self.inner.get_range(name, offset, length)

    def _put(self, name: str, data: bytes) -> None:
        self.inner.put(name, data)

    def _delete(self, name: str) -> None:
        self.inner.delete(name)

    def _stat(self, name: str) -> ObjectInfo | None:
        return self.inner.stat(name)

    def _list(self, prefix: str) -> Iterator[ObjectInfo]:
        return self.inner.list(prefix)
