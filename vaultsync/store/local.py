"""A plain directory as a store (a local disk, a USB drive, a network mount).

Uses `os` directly: a no-change sync must not pay fsspec's import. Writes go to a
temporary name in the same folder, are fsynced, then renamed into place.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Iterator

from vaultsync.errors import ObjectNotFound, RemoteUnreachable
from vaultsync.fsutil import fsync_dir
from vaultsync.store.base import Capabilities, ObjectInfo, Store


class LocalStore(Store):
    capabilities = Capabilities(atomic_put=True, ranged_get=True, conditional_put=True,
                                connections=4)

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.url = "file://" + self.root

    def _path(self, name: str) -> str:
        return os.path.join(self.root, *name.split("/"))

    def exists(self) -> bool:
        return os.path.isdir(self.root)

    def prepare(self) -> None:
        os.makedirs(self.root, exist_ok=True)

    def _missing(self, name: str) -> Exception:
        if not os.path.isdir(self.root):
            return RemoteUnreachable(f"remote folder {self.root} does not exist (not mounted?)")
        return ObjectNotFound(name)

    def _get(self, name: str) -> bytes:
        try:
            with open(self._path(name), "rb") as f:
                return f.read()
        except (FileNotFoundError, NotADirectoryError):
            raise self._missing(name) from None

    def _get_range(self, name: str, offset: int, length: int) -> bytes:
        try:
            with open(self._path(name), "rb") as f:
                f.seek(offset)
                return f.read(length)
        except (FileNotFoundError, NotADirectoryError):
            raise self._missing(name) from None

    def _put(self, name: str, data: bytes) -> None:
        path = self._path(name)
        folder = os.path.dirname(path)
        if not os.path.isdir(self.root):
            raise self._missing(name)
        os.makedirs(folder, exist_ok=True)
        tmp = os.path.join(folder, f".tmp-{secrets.token_hex(8)}")
        try:
            with open(tmp, "xb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        fsync_dir(folder)

    def _delete(self, name: str) -> None:
        try:
            os.unlink(self._path(name))
        except FileNotFoundError:
            pass

    def _stat(self, name: str) -> ObjectInfo | None:
        try:
            st = os.stat(self._path(name))
        except (FileNotFoundError, NotADirectoryError):
            if not os.path.isdir(self.root):
                raise self._missing(name) from None
            return None
        if not stat.S_ISREG(st.st_mode):
            return None  # a folder is not an object
        return ObjectInfo(name, st.st_size)

    def _list(self, prefix: str) -> Iterator[ObjectInfo]:
        if not os.path.isdir(self.root):
            raise self._missing(prefix)
        folder = prefix.rpartition("/")[0]  # "packs/a" lists under packs/, then filters
        start = self._path(folder) if folder else self.root
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames.sort()
            rel = os.path.relpath(dirpath, self.root)
            rel = "" if rel == "." else rel.replace(os.sep, "/") + "/"
            for fn in sorted(filenames):
                try:
                    size = os.stat(os.path.join(dirpath, fn)).st_size
                except FileNotFoundError:
                    continue
                yield ObjectInfo(rel + fn, size)
