"""A plain directory as a store (a local disk, a USB drive, a network mount).

Uses `os` directly: a no-change sync must not pay fsspec's import. Writes go to a
temporary name in the same folder, are fsynced, then renamed into place; the temporary
file is removed on any failure, Ctrl-C and SIGTERM included.

No OSError leaves this store: the remote's disk refusing us (full, read-only, permission)
is `RemoteRefused`, any other failure `RemoteUnreachable`, both exit 3 and both naming
the remote. (An OSError that escaped would be reported as a local failure.)
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Iterator

from vaultsync.errors import (
    ObjectNotFound,
    RemoteError,
    RemoteRefused,
    RemoteUnreachable,
    refusal,
)
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
        try:
            os.makedirs(self.root, exist_ok=True)
        except OSError as exc:
            raise self._failed(exc, "creating the folder", "") from None

    def _missing(self, name: str) -> RemoteError | ObjectNotFound:
        if not os.path.isdir(self.root):
            return RemoteUnreachable(f"remote folder {self.root} does not exist (not mounted?)")
        return ObjectNotFound(name)

    def _failed(self, exc: OSError, doing: str, name: str) -> RemoteError:
        """The remote's own disk failed us: say "remote", which way, and where."""
        what = f" ({doing} {name})" if name else f" ({doing})"
        why = exc.strerror or str(exc)
        refused = refusal(exc)
        if refused is not None:
            words = "permission denied" if refused == "permission denied" else f"is {refused}"
            return RemoteRefused(f"remote {words}: {self.url}{what}: {why}")
        return RemoteUnreachable(f"remote folder {self.url} failed{what}: {why}")

    def _get(self, name: str) -> bytes:
        try:
            with open(self._path(name), "rb") as f:
                return f.read()
        except (FileNotFoundError, NotADirectoryError):
            raise self._missing(name) from None
        except OSError as exc:
            raise self._failed(exc, "reading", name) from None

    def _get_range(self, name: str, offset: int, length: int) -> bytes:
        try:
            with open(self._path(name), "rb") as f:
                f.seek(offset)
                return f.read(length)
        except (FileNotFoundError, NotADirectoryError):
            raise self._missing(name) from None
        except OSError as exc:
            raise self._failed(exc, "reading", name) from None

    def _put(self, name: str, data: bytes) -> None:
        path = self._path(name)
        folder = os.path.dirname(path)
        if not os.path.isdir(self.root):
            raise self._missing(name)
        tmp = os.path.join(folder, f".tmp-{secrets.token_hex(8)}")
        try:
            os.makedirs(folder, exist_ok=True)
            with open(tmp, "xb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            fsync_dir(folder)
        except BaseException as exc:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            if isinstance(exc, OSError):
                raise self._failed(exc, "writing", name) from None
            raise

    def _delete(self, name: str) -> None:
        try:
            os.unlink(self._path(name))
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise self._failed(exc, "deleting", name) from None

    def _stat(self, name: str) -> ObjectInfo | None:
        try:
            st = os.stat(self._path(name))
        except (FileNotFoundError, NotADirectoryError):
            if not os.path.isdir(self.root):
                raise self._missing(name) from None
            return None
        except OSError as exc:
            raise self._failed(exc, "reading", name) from None
        if not stat.S_ISREG(st.st_mode):
            return None  # a folder is not an object
        return ObjectInfo(name, st.st_size)

    def _list(self, prefix: str) -> Iterator[ObjectInfo]:
        if not os.path.isdir(self.root):
            raise self._missing(prefix)
        folder = prefix.rpartition("/")[0]  # "packs/a" lists under packs/, then filters
        start = self._path(folder) if folder else self.root

        def unreadable(exc: OSError) -> None:
            # a folder that is not there lists as empty; one we cannot read must not
            # (it would hide heads or packs): fail
            if not isinstance(exc, (FileNotFoundError, NotADirectoryError)):
                raise exc

        try:
            for dirpath, dirnames, filenames in os.walk(start, onerror=unreadable):
                dirnames.sort()
                rel = os.path.relpath(dirpath, self.root)
                rel = "" if rel == "." else rel.replace(os.sep, "/") + "/"
                for fn in sorted(filenames):
                    try:
                        size = os.stat(os.path.join(dirpath, fn)).st_size
                    except FileNotFoundError:
                        continue
                    yield ObjectInfo(rel + fn, size)
        except OSError as exc:
            raise self._failed(exc, "listing", prefix or "/") from None
