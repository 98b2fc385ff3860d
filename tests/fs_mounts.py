"""Real foreign filesystems for the tests: an exFAT image (mkfs.exfat from exfatprogs) on a
loop device, mounted through FUSE (mount.exfat-fuse from exfat-fuse). Root is needed, as
CI has; `scripts/install-servers.sh` installs the two packages.

A mount that cannot be made is a test failure, never a skip (with or without
VAULTSYNC_REQUIRE_SERVERS, which CI sets): a suite that silently stops testing exFAT
would let defect 12 of issue 9 come back.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

TOOLS = ("mkfs.exfat", "losetup", "mount.exfat-fuse", "umount")


class MountFailed(Exception):
    pass


def _run(*cmd: str, timeout: float = 60) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise MountFailed(f"{' '.join(cmd)}: {exc}") from None
    if proc.returncode != 0:
        raise MountFailed(f"{' '.join(cmd)} exited {proc.returncode}: "
                          f"{(proc.stderr or proc.stdout).strip()}")
    return proc.stdout.strip()


def why_not() -> str:
    """Why this machine cannot mount exFAT here ('' when it should be able to)."""
    missing = [t for t in TOOLS if shutil.which(t) is None
               and not os.path.exists(f"/usr/sbin/{t}") and not os.path.exists(f"/sbin/{t}")]
    if missing:
        return (f"missing {', '.join(missing)}: run scripts/install-servers.sh as root "
                "(apt packages exfatprogs exfat-fuse)")
    if os.geteuid() != 0:
        return "a loop device and a FUSE mount need root (CI runs the suite as root)"
    return ""


def _tool(name: str) -> str:
    for path in (shutil.which(name), f"/usr/sbin/{name}", f"/sbin/{name}"):
        if path and os.path.exists(path):
            return path
    return name


@contextlib.contextmanager
def exfat(workdir: Path, size_mb: int = 64) -> Iterator[Path]:
    """Mount a fresh exFAT filesystem below `workdir`; yields the mount point. Unmounted
    and detached afterwards, whatever happened in between."""
    reason = why_not()
    if reason:
        raise MountFailed(reason)
    image, mnt = workdir / "exfat.img", workdir / "mnt"
    mnt.mkdir(parents=True, exist_ok=True)
    with open(image, "wb") as f:
        f.truncate(size_mb * 1024 * 1024)
    _run(_tool("mkfs.exfat"), "-L", "VSTEST", str(image))
    loop = ""
    mounted = False
    try:
        for attempt in range(5):  # `losetup -f` races with other workers for a free device
            try:
                loop = _run(_tool("losetup"), "--find", "--show", str(image))
                break
            except MountFailed:
                if attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))
        _run(_tool("mount.exfat-fuse"), loop, str(mnt))
        mounted = True
        if not os.path.ismount(mnt):
            raise MountFailed(f"mount.exfat-fuse {loop} {mnt} succeeded but {mnt} is not "
                              "a mount point")
        yield mnt
    finally:
        if mounted:
            _unmount(mnt)
        if loop:
            with contextlib.suppress(MountFailed):
                _run(_tool("losetup"), "-d", loop)
        with contextlib.suppress(OSError):
            image.unlink()


def _unmount(mnt: Path) -> None:
    """Unmount, waiting a little for a busy filesystem (a vault's process just ended)."""
    for attempt in range(20):
        try:
            _run(_tool("umount"), str(mnt))
            return
        except MountFailed:
            if attempt == 19:
                with contextlib.suppress(MountFailed):
                    _run(_tool("umount"), "-l", str(mnt))  # lazy: never leave it behind
                return
            time.sleep(0.25)
