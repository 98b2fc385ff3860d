"""What the vault's filesystem can hold, found by asking it (design.md, Edges: foreign
filesystems).

A vault may live on exFAT (a USB drive, a camera card), FAT or an SMB mount: no
permission bits (every file reads as 0777), names compared without case, characters
such as `:?*<>|"` refused. Nothing here guesses from a filesystem's type name; each
trait is probed, once per process and vault:

- permission bits: create a file 0600 in the state folder, chmod it 0700, and see
  whether the mode follows;
- case: does `.VAULTSYNC` name the same folder as `.vaultsync`?
- a name: can a file of exactly that name be created (in a scratch folder of the state
  folder)? Asked only for names that look foreign-unsafe, and to confirm that a failed
  write failed because of its name, never to hide another error.

On Windows a probe cannot be trusted for every name: `CON.md` opens the console,
`Note.` creates `Note`, `a:b.md` writes a stream `b.md` of a file `a`, all "successfully".
There the names Windows cannot hold (`windows_problem`) are refused by rule, before any
probe.
"""

from __future__ import annotations

import errno
import functools
import os
import secrets
import shutil
import stat
import sys
import threading
from dataclasses import dataclass, field

from vaultsync.model import STATE_DIR

PROBE_PREFIX = ".vaultsync-tmp-probe-"  # a stale temp (scan.TMP_PREFIX) if a run dies
# what creating or renaming to a name this filesystem cannot hold fails with: exFAT over
# FUSE says ENOENT, the kernel's vfat EINVAL, macOS EILSEQ for bad UTF-8, all of them
# ENAMETOOLONG. ENOENT also means "no such folder": a failed write is put down to its name
# only when a probe of the bare name in an existing folder fails too.
NAME_ERRNOS = frozenset({errno.ENOENT, errno.EINVAL, errno.EILSEQ, errno.ENAMETOOLONG})
_FOREIGN_UNSAFE = frozenset('\\:*?"<>|')
MAX_NAME_BYTES = 255  # what most filesystems hold in one name
# Names Windows keeps for devices, with or without an extension (`CON`, `con.md`,
# `LPT1.tar.gz`): Microsoft's "Naming Files, Paths, and Namespaces", with the superscript
# digits Windows also reads as 1, 2, 3.
_WINDOWS_DEVICES = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{port}{n}" for port in ("COM", "LPT") for n in "0123456789\u00b9\u00b2\u00b3"})
WINDOWS = sys.platform == "win32"  # refuse `windows_problem` names by rule (tests set it)


@dataclass
class FsTraits:
    """The traits of the filesystem holding a vault (or a checkout destination)."""

    probe_dir: str  # an existing folder on that filesystem where probes may be made
    modes: bool = True  # holds permission bits (False: every file reads alike, e.g. 0777)
    case_insensitive: bool = False
    # Inode numbers that name a file for as long as it exists. Filesystems without
    # permission bits make theirs up: exFAT over FUSE and the kernel's vfat give a file a
    # new number once the kernel forgets it (seen between a scan and the apply step).
    stable_inodes: bool = True
    # Windows: names it cannot hold are refused by rule (a probe may "succeed" wrongly)
    windows_names: bool = False
    _names: dict[str, bool] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def holds(self, name: str) -> bool:
        """Whether a file named `name` can exist here (probed once per name)."""
        if self.windows_names and windows_problem(name) is not None:
            return False
        with self._lock:
            known = self._names.get(name)
        if known is None:
            known = _try_name(self.probe_dir, name)
            with self._lock:
                self._names[name] = known
        return known

    def fold(self, name: str) -> str:
        """The form under which this filesystem compares `name` with its siblings."""
        return name.lower() if self.case_insensitive else name


def suspicious(name: str) -> bool:
    """A name some filesystem in common use cannot hold: worth a probe before writing."""
    if any(c in _FOREIGN_UNSAFE or ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        return True
    too_long = len(name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES
    return too_long or name.endswith((" ", ".")) or _windows_device(name)


def windows_problem(name: str) -> str | None:
    """Why Windows cannot hold `name` as a file or folder name (None: it can): a
    character it refuses (`<>:"/\\|?*` and control characters), a trailing dot or space
    (Windows drops them, so the file would land under another name), or a name it keeps
    for a device (`CON`, `aux.md`, `COM1.txt`: the extension does not help)."""
    bad = sorted({c for c in name if c in _FOREIGN_UNSAFE or c == "/" or ord(c) < 0x20})
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        return f"Windows does not allow {shown} in a name"
    if name.endswith((" ", ".")) and name not in (".", ".."):
        return "Windows drops a trailing dot or space from a name"
    if _windows_device(name):
        return f"Windows keeps {name.split('.')[0].rstrip(' ').upper()!r} for a device"
    return None


def _windows_device(name: str) -> bool:
    """`CON`, `con.md`, `Aux .txt`, `LPT1.tar.gz`: the part before the first dot, trailing
    spaces dropped, is a device name (compared without case)."""
    return name.split(".", 1)[0].rstrip(" ").upper() in _WINDOWS_DEVICES


def traits(root: str) -> FsTraits:
    """The probed traits of the filesystem under `root` (a vault, or a folder to write
    into), memoized per folder and device for this process."""
    root = os.path.abspath(root)
    try:
        dev = os.stat(root).st_dev
    except OSError:
        dev = -1
    return _traits(root, dev)


@functools.lru_cache(maxsize=16)
def _traits(root: str, dev: int) -> FsTraits:
    meta = os.path.join(root, STATE_DIR)
    probe_dir = meta if os.path.isdir(meta) else root
    found = FsTraits(probe_dir=probe_dir, windows_names=WINDOWS)
    found.case_insensitive = _case_insensitive(probe_dir, by_name=probe_dir == meta)
    found.modes = _has_modes(probe_dir)
    found.stable_inodes = found.modes
    return found


def _case_insensitive(folder: str, by_name: bool) -> bool:
    """Does the swapped-case spelling of a name find it too (and is not a name of its
    own in the listing)? Inode numbers are not compared: exFAT over FUSE numbers each
    spelling apart. With `by_name`, `folder` is the state folder (`.vaultsync` in the
    vault): its own name is asked, nothing is written."""
    if by_name:
        parent, name = os.path.split(folder.rstrip(os.sep))
        return _found_as(parent, name)
    probe = os.path.join(folder, PROBE_PREFIX + "case-" + secrets.token_hex(4))
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError:
        return False
    os.close(fd)
    try:
        return _found_as(folder, os.path.basename(probe))
    finally:
        _unlink_quiet(probe)


def _found_as(folder: str, name: str) -> bool:
    other = name.swapcase()
    try:
        return os.path.lexists(os.path.join(folder, other)) and other not in os.listdir(folder)
    except OSError:
        return False


def same_name_here(fs: FsTraits, a: str, b: str) -> bool:
    """Whether paths `a` and `b` (another case of one name) are one entry on this disk."""
    if a == b or not fs.case_insensitive or fs.fold(a) != fs.fold(b):
        return False
    return _found_as_spelled(b)


def _found_as_spelled(path: str) -> bool:
    folder, name = os.path.split(path)
    try:
        return os.path.lexists(path) and name not in os.listdir(folder)
    except OSError:
        return False


def _has_modes(folder: str) -> bool:
    """Does a file's mode follow chmod here? (exFAT, FAT and most SMB mounts: no.) When no
    probe can be made (a read-only folder), the bits are taken as real."""
    probe = os.path.join(folder, PROBE_PREFIX + "mode-" + secrets.token_hex(4))
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError:
        return True
    try:
        os.close(fd)
        modes = []
        for want in (0o700, 0o600):
            os.chmod(probe, want)
            modes.append(stat.S_IMODE(os.stat(probe).st_mode) == want)
        return all(modes)
    except OSError:  # chmod refused (vfat without `quiet`)
        return False
    finally:
        _unlink_quiet(probe)


def _try_name(folder: str, name: str) -> bool:
    """Create and remove a file named `name` in a scratch folder below `folder`."""
    scratch = os.path.join(folder, PROBE_PREFIX + "name-" + secrets.token_hex(4))
    try:
        os.mkdir(scratch, 0o700)
    except OSError:
        return True  # cannot probe: let the real write decide (and report its error)
    try:
        fd = os.open(os.path.join(scratch, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        return True
    except OSError as exc:
        if exc.errno in NAME_ERRNOS:
            return False
        return True
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def name_refused(exc: OSError, fs: FsTraits, name: str, folder: str) -> bool:
    """Whether a failed create or rename to `folder/name` failed because this filesystem
    cannot hold `name`: the error is a naming error, `folder` exists, and a probe of the
    bare name fails too. Anything else is a real error for the caller to raise."""
    if exc.errno not in NAME_ERRNOS:
        return False
    if exc.errno == errno.ENAMETOOLONG:
        return True
    return os.path.isdir(folder) and not fs.holds(name)


@functools.cache
def _umask() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _umask_lock:  # no /proc: read it the old way (set and restore)
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


_umask_lock = threading.Lock()


def exec_toggled(mode: int, executable: bool) -> int:
    """`mode` with its executable bits set (where it is readable, under the umask) or
    cleared: a chmod that changes only what syncs."""
    if not executable:
        return stat.S_IMODE(mode) & ~0o111
    return (stat.S_IMODE(mode) | ((stat.S_IMODE(mode) & 0o444) >> 2)) & ~_umask() | 0o100


def _unlink_quiet(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
