"""Small filesystem helpers shared by the directory store and the vault writer."""

from __future__ import annotations

import errno
import os


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
