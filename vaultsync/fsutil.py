"""Small filesystem helpers shared by the directory store, the vault writer and the vault
lock.

Platform-only calls live behind `sys.platform` checks (which `mypy --platform win32` and
`--platform darwin` understand, so an API one platform lacks is caught without that
machine): syncfs and /proc are Linux's, and elsewhere each file gets its own fsync, as on
any filesystem syncfs is not trusted on. The vault lock (`try_lock`) is flock(2) on
POSIX (Linux, macOS, the BSDs) and msvcrt's lock of the file's first byte on Windows.
Either way it belongs to an open descriptor, so the system drops it when the process
ends, however it ends (kill -9, a crash, a power cut): never a stale lock to clean up.
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


# what a non-blocking lock attempt fails with when another descriptor holds the lock
_HELD_ERRNOS = frozenset({errno.EACCES, errno.EAGAIN, errno.EWOULDBLOCK,
                          getattr(errno, "EDEADLOCK", errno.EDEADLK)})


def try_lock(path: str) -> int | None:
    """Open (creating if need be) and lock `path` exclusively without waiting. Returns the
    descriptor that holds the lock (release it with `unlock`), or None when another
    process (or another descriptor of this one) holds it. Other errors are raised."""
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOINHERIT", 0)
    fd = os.open(path, flags, 0o644)
    try:
        held = _lock(fd)
    except BaseException:
        os.close(fd)
        raise
    if not held:
        os.close(fd)
        return None
    return fd


def unlock(fd: int) -> None:
    """Release the lock taken by `try_lock` and close its descriptor."""
    try:
        _unlock(fd)
    except OSError:
        pass  # closing the descriptor releases it anyway
    finally:
        os.close(fd)


if sys.platform == "win32":
    import msvcrt

    def _lock(fd: int) -> bool:
        os.lseek(fd, 0, os.SEEK_SET)  # msvcrt locks bytes from the current position
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError as exc:
            if exc.errno in _HELD_ERRNOS:
                return False
            raise
        return True

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in _HELD_ERRNOS:
                return False
            raise
        return True

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
