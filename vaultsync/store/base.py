"""The store interface: a handful of methods, capability flags, object-name validation.

A store knows nothing of packs or snapshots: it moves named, immutable-or-replaced byte
strings. Every name is validated here, once, on the way in and on the way out ("no crap
in, no crap out"): a name a hostile remote lists that does not fit is ignored, never
turned into a path.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from vaultsync.errors import BadName, IntegrityError

_PART = r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}"
_NAME_RE = re.compile(rf"{_PART}(/{_PART}){{0,7}}\Z")
_TEMP_RE = re.compile(r"\.tmp-[0-9a-f]{16}\Z")  # what `_remote.temp_name` and local puts make
MAX_OBJECT_SIZE = 1 << 40


def valid_name(name: object) -> bool:
    """A store object name: up to 8 '/'-separated components of [A-Za-z0-9._-], none
    starting with '.', so '..', '.', temporary files and absolute paths never pass."""
    return isinstance(name, str) and _NAME_RE.match(name) is not None


def check_name(name: str) -> str:
    if not valid_name(name):
        raise BadName(f"refusing object name {name!r}")
    return name


def temporary_name(name: object) -> bool:
    """A temporary upload object's name: a folder any object could live in, then
    '.tmp-' and 16 lowercase hex digits. Such names never pass `valid_name`."""
    if not isinstance(name, str):
        return False
    folder, _, last = name.rpartition("/")
    return _TEMP_RE.match(last) is not None and valid_name(f"{folder}/x" if folder else "x")


def check_temporary(name: str) -> str:
    if not temporary_name(name):
        raise BadName(f"refusing temporary object name {name!r}")
    return name


def check_prefix(prefix: str) -> str:
    if prefix and not valid_name(prefix.rstrip("/")):
        raise BadName(f"refusing prefix {prefix!r}")
    return prefix


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

    def require_present(self, name: str) -> None:
        """From now on, refuse to write (RemoteUnreachable) if `name` is gone: the store
        no longer holds what it held (a directory store on an unmounted drive). Stores
        whose location cannot silently turn into an empty one ignore it."""

    def stale_temporaries(self, prefix: str, older_than_s: float) -> list[str]:
        r"""Names (relative to the store root, e.g. 'packs/ab/.tmp-0123456789abcdef') of
        temporary upload objects under `prefix` (a folder such as 'packs/', any depth, ''
        for all) whose last modification is more than `older_than_s` seconds ago, by the
        store's own clock as the server reports it (mtime from stat, PROPFIND
        getlastmodified, SFTP attributes). Only names whose last component matches
        r'\.tmp-[0-9a-f]{16}\Z' are ever returned, sorted. A store without temporaries
        (S3: atomic PUT; memory) returns []."""
        if not older_than_s >= 0:  # NaN too
            raise ValueError(f"older_than_s must be >= 0, not {older_than_s!r}")
        found = self._stale_temporaries(check_prefix(prefix), float(older_than_s))
        return sorted({n for n in found if temporary_name(n) and n.startswith(prefix)})

    def remove_temporary(self, name: str) -> None:
        """Delete one name returned by `stale_temporaries`; its last component must match
        the temporary pattern and the rest be a valid object folder (anything else:
        BadName); a name already gone is not an error."""
        self._remove_temporary(check_temporary(name))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Objects whose names start with `prefix` (a folder such as 'packs/'), any depth.
        Names that fail validation (temporary files, junk) are skipped."""
        for info in self._list(check_prefix(prefix)):
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

    def _stale_temporaries(self, prefix: str, older_than_s: float) -> Iterable[str]:
        """Candidates; `stale_temporaries` keeps only temporary names under `prefix`.
        The default is for stores that never write a temporary object."""
        return ()

    def _remove_temporary(self, name: str) -> None:
        """The default: a store without temporaries has none to remove."""


class WrappingStore(Store):
    """Base for behaviour-as-a-wrapper stores (counting, retry, dry-run)."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.capabilities = inner.capabilities
        self.url = inner.url

    def require_present(self, name: str) -> None:
        self.inner.require_present(name)

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

    def _stale_temporaries(self, prefix: str, older_than_s: float) -> Iterable[str]:
        return self.inner.stale_temporaries(prefix, older_than_s)

    def _remove_temporary(self, name: str) -> None:
        self.inner.remove_temporary(name)
