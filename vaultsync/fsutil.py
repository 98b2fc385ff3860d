"""Small filesystem helpers shared by the directory store and the vault writer.

Platform-only calls live behind `sys.platform` checks (which `mypy --platform win32` and
`--platform darwin` understand): syncfs and /proc are Linux's; elsewhere each file gets
its own fsync, as on any filesystem syncfs is not trusted on.
"""

from __future__ import annotations

import errno
import functools
import os
import sys

# Binary mode for os.open: on Windows a descriptor opened without it translates newlines
# and stops reading at Ctrl-Z. 0 (nothing to ask) everywhere else.
O_BINARY: int = getattr(os, "O_BINARY", 0)


def fsync_dir(folder: str) -> None:
    """Make renames in `folder` durable. Filesystems that refuse fsync on a folder
    (EINVAL, EBADF) are let be; a real I/O error is raised."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EBADF):
            raise
    finally:
        os.close(fd)


# Filesystems whose syncfs(2) writes back every file's data and metadata and flushes the
# disk's cache, as fsync(2) of each file would (local block filesystems and tmpfs).
# FUSE, network and overlay filesystems are left out: there, fsync per file.
SYNCFS_TYPES = frozenset({"ext2", "ext3", "ext4", "xfs", "btrfs", "f2fs", "tmpfs", "vfat",
                          "exfat"})
_fs_types: dict[int, str | None] = {}


def fs_type(path: str) -> str | None:
    """The type of the filesystem holding `path` (Linux: /proc/self/mountinfo), or None."""
    if sys.platform != "linux":
        return None
    try:
        dev = os.stat(path).st_dev
    except OSError:
        return None
    if dev not in _fs_types:
        _fs_types[dev] = None
        want = f"{os.major(dev)}:{os.minor(dev)}"
        try:
            with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
                for line in f:
                    fields = line.split()
                    if len(fields) > 2 and fields[2] == want and " - " in line:
                        _fs_types[dev] = line.split(" - ", 1)[1].split()[0]
                        break
        except OSError:
            pass
    return _fs_types[dev]


def syncfs_works(path: str) -> bool:
    """Whether one `syncfs` makes every file written under `path` since an fd of it was
    opened durable, and reports a write-back error as fsync would: Linux 5.8 or later
    (syncfs reports write-back errors since then), on a filesystem of SYNCFS_TYPES."""
    if sys.platform != "linux" or _syncfs() is None:
        return False
    try:
        release = tuple(int(x) for x in os.uname().release.split("-")[0].split(".")[:2])
    except ValueError:
        return False
    return release >= (5, 8) and fs_type(path) in SYNCFS_TYPES


def syncfs(fd: int) -> None:
    """syncfs(2) on the filesystem of `fd`: OSError on failure (a write-back error since
    `fd` was opened, for one)."""
    fn = _syncfs()
    if fn is None:
        raise OSError(errno.ENOSYS, "syncfs is not available")
    if fn(fd) != 0:
        import ctypes

        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@functools.cache
def _syncfs():  # type: ignore[no-untyped-def]
    if sys.platform != "linux":
        return None
    import ctypes  # only a run that writes many files pays for it

    try:
        fn = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn
