"""A plain directory as a store (a local disk, a USB drive, a network mount).

Uses `os` directly: a no-change sync must not pay fsspec's import. Writes go to a
temporary name in the same folder, are fsynced, then renamed into place; the temporary
file is removed on any failure, Ctrl-C and SIGTERM included.

No OSError leaves this store: the remote's disk refusing us (full, read-only, permission)
is `RemoteRefused`, any other failure `RemoteUnreachable`, both exit 3 and both naming
the remote. (An OSError that escaped would be reported as a local failure.)
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
import sys
import time
from collections.abc import Iterator

from vaultsync.errors import (
    ObjectNotFound,
    RemoteError,
    RemoteRefused,
    RemoteUnreachable,
    refusal,
)
from vaultsync.fsutil import fsync_dir
from vaultsync.store.base import Capabilities, ObjectInfo, Store, temporary_name, valid_name


class LocalStore(Store):
    capabilities = Capabilities(atomic_put=True, ranged_get=True, conditional_put=True,
                                connections=4)

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.url = "file://" + self.root
        self._sentinel = ""

    def require_present(self, name: str) -> None:
        # a folder can lose what it held while looking the same (an unmounted drive
        # leaves its empty mount point): every write checks that `name` is still there
        self._sentinel = name

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
        if self._sentinel and name != self._sentinel and \
                not os.path.isfile(self._path(self._sentinel)):
            # the folder is there but the repository is not: a drive unmounted under its
            # mount point (never write a stray repository into the empty folder)
            raise RemoteUnreachable(f"{self.root} no longer holds the repository "
                                    f"(unmounted?); writing {name}")
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
        try:
            for dirpath, dirnames, filenames in os.walk(start, onerror=_unreadable):
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

    def _stale_temporaries(self, prefix: str, older_than_s: float) -> list[str]:
        # from the root down, never into a symlinked folder (os.walk does not follow
        # them), into only the folders on the way to `prefix` or under it
        if not os.path.isdir(self.root):
            raise self._missing(prefix)
        now = time.time()
        found: list[str] = []
        try:
            for dirpath, dirnames, filenames in os.walk(self.root, onerror=_unreadable):
                rel = os.path.relpath(dirpath, self.root)
                rel = "" if rel == "." else rel.replace(os.sep, "/") + "/"
                dirnames[:] = [d for d in dirnames if _towards(rel + d, prefix)]
                for fn in filenames:
                    name = rel + fn
                    if not (temporary_name(name) and name.startswith(prefix)):
                        continue
                    try:
                        st = os.lstat(os.path.join(dirpath, fn))
                    except FileNotFoundError:
                        continue
                    if stat.S_ISREG(st.st_mode) and now - st.st_mtime > older_than_s:
                        found.append(name)
        except OSError as exc:
            raise self._failed(exc, "listing temporary files in", prefix or "/") from None
        return found

    def _remove_temporary(self, name: str) -> None:
        if not os.path.isdir(self.root):
            raise self._missing(name)
        folder, _, last = name.rpartition("/")
        if sys.platform == "win32":  # no dir_fd there: by path, through real folders only
            self._remove_by_path(name, folder, last)
        else:
            try:
                fd = self._open_folder(folder)
            except OSError as exc:
                raise self._failed(exc, "deleting", name) from None
            if fd is None:
                return  # its folder is gone: so is the file
            try:
                os.unlink(last, dir_fd=fd)
            except (FileNotFoundError, IsADirectoryError):
                pass  # gone, or a folder (not an object): nothing to remove
            except OSError as exc:
                raise self._failed(exc, "deleting", name) from None
            finally:
                os.close(fd)

    if sys.platform == "win32":
        def _remove_by_path(self, name: str, folder: str, last: str) -> None:
            """`_remove_temporary` where os.unlink takes no dir_fd (Windows): each folder
            on the way is checked to be a real folder (no link, no junction) just before."""
            path = self.root
            parts = [*(folder.split("/") if folder else ()), last]
            try:
                for i, part in enumerate(parts):
                    path = os.path.join(path, part)
                    st = os.lstat(path)
                    if st.st_file_attributes & stat.FILE_ATTRIBUTE_REPARSE_POINT:
                        return  # a link or a junction: not the store's own folder or file
                    if stat.S_ISDIR(st.st_mode) != (i < len(parts) - 1):
                        return  # a file where a folder is, or a folder (not an object)
                os.unlink(path)
            except FileNotFoundError:
                pass  # gone: nothing to remove
            except OSError as exc:
                raise self._failed(exc, "deleting", name) from None

    else:
        def _open_folder(self, folder: str) -> int | None:
            """A descriptor of the store's `folder`, opened one component at a time
            without following a symbolic link; None when some component is missing or is
            not a real folder (a file, or a symbolic link: Linux answers ENOTDIR for
            both)."""
            fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
            for part in folder.split("/") if folder else ():
                try:
                    child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW,
                                    dir_fd=fd)
                except (FileNotFoundError, NotADirectoryError):
                    return None
                except OSError as exc:
                    if exc.errno == errno.ELOOP:  # O_NOFOLLOW's answer elsewhere
                        return None
                    raise
                finally:
                    os.close(fd)
                fd = child
            return fd


def _unreadable(exc: OSError) -> None:
    """os.walk's onerror: a folder that is not there lists as empty; one we cannot read
    must not (it would hide heads or packs): fail."""
    if not isinstance(exc, (FileNotFoundError, NotADirectoryError)):
        raise exc


def _towards(folder: str, prefix: str) -> bool:
    """Whether a walk for `prefix` must enter `folder` (a path relative to the root)."""
    return valid_name(folder) and (folder.startswith(prefix) or prefix.startswith(folder + "/"))
