"""An exclusive, non-blocking lock on a file, on every platform vaultsync runs on.

POSIX (Linux, macOS, the BSDs): flock(2) on the whole file. Windows: msvcrt's lock on the
file's first byte. Either way the lock belongs to an open descriptor, so the operating
system drops it when the process ends, however it ends (kill -9, a crash, a power cut):
there is never a stale lock to clean up, and no PID file to trust.

The platform is chosen at import time with `sys.platform`, which mypy understands: `mypy
--platform win32` checks the Windows branch, `--platform linux` the other, so an API
that one platform lacks is caught without that machine.
"""

from __future__ import annotations

import errno
import os
import sys

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
