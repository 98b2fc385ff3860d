"""Atomic writes into the vault, and the trash that keeps what a run replaces or deletes.

Every file lands in two steps. `stage`: write the verified chunks to a temporary file (in
`.vaultsync/staging/`, or beside the target when there is no state folder), fsync, set
mode and mtime (files staged together can share one syncfs instead of an fsync each,
`defer_fsyncs`: still durable before any is renamed). `install`: re-check that the
target is what the scan saw, hard-link the old version into the trash, rename the staged
file into place. A run stages everything before it installs anything, so a corrupt
remote leaves the vault untouched; a run killed at any moment leaves each file old or
new, plus stale temporary files that the next run removes.
"""

from __future__ import annotations

import errno
import functools
import os
import secrets
import shutil
import sys
import time
from collections.abc import Iterable

from vaultsync.engine import fsprobe
from vaultsync.engine.fsprobe import FsTraits
from vaultsync.engine.scan import TMP_PREFIX, Respell, is_temp_name
from vaultsync.errors import BadName
from vaultsync.fsutil import O_BINARY, fsync_dir, syncfs, syncfs_works
from vaultsync.model import Entry

DiskKey = tuple[int, int, int]  # size, mtime_ns, inode as the scan saw them
_UTIME_FD = os.utime in os.supports_fd


class TargetChanged(Exception):
    """The file at the target path is not the one the scan saw (edited during the run)."""


def disk_key(path: str) -> DiskKey | None:
    try:
        st = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino)


class VaultWriter:
    def __init__(self, root: str, trash_root: str, staging: str | None = None) -> None:
        self.root = root
        self.staging = staging
        self._shards: set[str] = set()  # staging subfolders made (see `stage`)
        self._dirty: set[str] = set()  # folders whose renames still need an fsync
        self._deferred: int | None = None  # the staging folder, while fsyncs are deferred
        # folders this run found (or made) real, not links: checked once per run, until
        # the run itself removes or renames a folder
        self._real_dirs: set[str] = set()
        self.trash_dir = os.path.join(
            trash_root, time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)
        )
        self._fs: FsTraits | None = None

    @property
    def fs(self) -> FsTraits:
        """What the filesystem under the vault can hold (probed once per process)."""
        if self._fs is None:
            self._fs = fsprobe.traits(self.root)
        return self._fs

    def still(self, path: str, expect: DiskKey | None) -> bool:
        """Whether `path` is what the scan saw (`expect`; None: nothing there). Where
        the filesystem renumbers inodes, size and mtime alone say it (an edit of the same
        size within the mtime's granularity is then missed; the trash keeps what an
        install replaces, so even that is not lost)."""
        now = disk_key(path)
        if now is None or expect is None:
            return now == expect
        return now == expect if self.fs.stable_inodes else now[:2] == expect[:2]

    def abspath(self, rel: str) -> str:
        parts = rel.split("/")
        if any(p in ("", ".", "..") for p in parts):
            raise BadName(f"refusing vault path {rel!r}")
        return os.path.join(self.root, *parts)

    def check_no_links(self, rel: str) -> None:
        """Refuse a path whose existing folders include a symbolic link: a write must
        never escape the vault through one."""
        path = self.root
        for part in rel.split("/")[:-1]:
            path = os.path.join(path, part)
            if path in self._real_dirs:
                continue
            if os.path.islink(path):
                raise BadName(f"refusing to write through symbolic link {rel!r}")
            if not os.path.isdir(path):
                return
            self._real_dirs.add(path)

    def _folders_changed(self) -> None:
        """The run removed or renamed a folder: check every path afresh."""
        self._real_dirs.clear()

    def make_dirs(self, rel: str) -> None:
        path = self.abspath(rel)
        self.check_no_links(rel + "/x")
        os.makedirs(path, exist_ok=True)

    def stage(self, rel: str, entry: Entry, pieces: Iterable[bytes]) -> str:
        """Write a file's bytes and mtime to a temporary file; returns its path. Its mode
        is 0644 or 0755 under the umask: only the executable bit of `entry` counts."""
        token = secrets.token_hex(6)
        if self.staging is not None:
            # spread over STAGING_SHARDS subfolders: one folder of 100k new names makes
            # every create and rename slower (a 20k clone staged 2x as fast this way)
            folder = os.path.join(self.staging, token[:2])
            if folder not in self._shards:
                os.makedirs(folder, exist_ok=True)
                self._shards.add(folder)
        else:
            self.check_no_links(rel)
            folder = os.path.dirname(self.abspath(rel))
            os.makedirs(folder, exist_ok=True)
        tmp = os.path.join(folder, TMP_PREFIX + token)
        try:
            mode = 0o777 if entry.executable else 0o666  # the kernel applies the umask
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | O_BINARY, mode)
            try:
                for piece in pieces:
                    view = memoryview(piece)
                    while view:
                        view = view[os.write(fd, view):]
                if self._deferred is None:
                    os.fsync(fd)
                os.utime(fd if _UTIME_FD else tmp, ns=(entry.mtime_ns, entry.mtime_ns))
            finally:
                os.close(fd)
        except OSError as exc:
            _unlink_quiet(tmp)
            if exc.filename is None:  # a full disk on write() names no file: name it
                raise OSError(exc.errno, exc.strerror, tmp) from exc
            raise
        except BaseException:
            _unlink_quiet(tmp)
            raise
        return tmp

    def defer_fsyncs(self) -> bool:
        """Stage the next files without an fsync each: `sync_staged` makes them all
        durable at once (one syncfs), before any is installed, so every vault write is
        still a temporary file, made durable, then renamed. Only with a staging folder on
        a filesystem where one syncfs is as good as an fsync per file (see
        `fsutil.syncfs_works`); otherwise False, and each staged file is fsynced."""
        if self.staging is None or self._deferred is not None:
            return self._deferred is not None
        os.makedirs(self.staging, exist_ok=True)
        if not syncfs_works(self.staging):
            return False
        # opened before the writes: syncfs reports a write-back error since this open
        self._deferred = os.open(self.staging, os.O_RDONLY)
        return True

    def sync_staged(self) -> None:
        """Every file staged since `defer_fsyncs` made durable (OSError if the disk
        failed them); the deferral ends either way."""
        fd, self._deferred = self._deferred, None
        if fd is None:
            return
        try:
            syncfs(fd)
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, self.staging) from None
        finally:
            os.close(fd)

    def end_deferral(self) -> None:
        """Stop deferring fsyncs without syncing (a failed run discards what it staged)."""
        fd, self._deferred = self._deferred, None
        if fd is not None:
            os.close(fd)

    def install(self, tmp: str, rel: str, expect: DiskKey | None) -> os.stat_result:
        """Rename a staged file to `rel` if the target is still `expect` (None: absent);
        otherwise raise TargetChanged and leave both alone. The old version goes to the
        trash."""
        target = self.abspath(rel)
        self.check_no_links(rel)
        folder = os.path.dirname(target)
        if folder not in self._real_dirs:
            os.makedirs(folder, exist_ok=True)
            self._real_dirs.add(folder)
        if not self.still(target, expect):
            raise TargetChanged(rel)
        if expect is not None:
            self._keep_in_trash(rel, target, link=True)
        try:
            os.replace(tmp, target)
        except FileNotFoundError:
            if os.path.isdir(folder) or not os.path.exists(tmp):
                raise
            self._folders_changed()  # the folder went since this run saw it: make it again
            return self.install(tmp, rel, expect)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            local_tmp = os.path.join(folder, TMP_PREFIX + secrets.token_hex(6))
            shutil.copy2(tmp, local_tmp)
            os.replace(local_tmp, target)
            _unlink_quiet(tmp)
        self._dirty.add(folder)
        return os.stat(target)

    def sync_dirs(self) -> None:
        """fsync every folder a rename touched, once each (or one syncfs for many folders
        of one filesystem, where that is as good): after this the new names are durable.
        Called before the run records its new base."""
        by_disk: dict[int, list[str]] = {}
        for folder in sorted(self._dirty):
            try:
                by_disk.setdefault(os.stat(folder).st_dev, []).append(folder)
            except OSError:
                continue  # gone (a folder the run emptied and removed): nothing to sync
        for folders in by_disk.values():
            if len(folders) > 1 and syncfs_works(folders[0]):
                fd = os.open(folders[0], os.O_RDONLY)  # one syncfs for all its folders
                try:
                    syncfs(fd)
                finally:
                    os.close(fd)
            else:
                for folder in folders:
                    fsync_dir(folder)
        self._dirty.clear()
        self.remove_shards()

    def remove_shards(self) -> None:
        """Remove the staging subfolders this writer made, empty once its staged files
        are installed or discarded (one that still holds a file stays)."""
        for shard in self._shards:
            try:
                os.rmdir(shard)
            except OSError:
                pass
        self._shards.clear()

    def discard(self, tmp: str) -> None:
        _unlink_quiet(tmp)

    def delete_file(self, rel: str, expect: DiskKey) -> None:
        """Move `rel` to the trash, if it is still what the scan saw."""
        target = self.abspath(rel)
        self.check_no_links(rel)
        if not self.still(target, expect):
            raise TargetChanged(rel)
        self._keep_in_trash(rel, target, link=False)

    def move(self, src_rel: str, dst_rel: str, expect: DiskKey) -> os.stat_result:
        """Rename a file within the vault if it is still what the scan saw and nothing
        is at the destination; otherwise raise TargetChanged and touch nothing. On a
        case-insensitive filesystem a rename that only changes case (`note.md` ->
        `Note.md`) finds its own file at the destination, and is carried out."""
        src, dst = self.abspath(src_rel), self.abspath(dst_rel)
        self.check_no_links(src_rel)
        self.check_no_links(dst_rel)
        if not self.still(src, expect):
            raise TargetChanged(src_rel)
        case_only = os.path.lexists(dst)
        if case_only and not self._same_entry(src, dst):
            raise TargetChanged(dst_rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if case_only:
            os.rename(src, dst)
            self._check_case(src_rel, src, dst)
        else:
            try:
                rename_noreplace(src, dst)
            except FileExistsError:
                raise TargetChanged(dst_rel) from None
        self._dirty.update((os.path.dirname(dst), os.path.dirname(src)))
        return os.stat(dst)

    def respell(self, r: Respell) -> bool:
        """Settle a second spelling the scan found: rename it to its collision copy's
        name (never over anything), or move it to the trash when it holds the very bytes
        of the spelling that kept the name. False (nothing done) if it is not what the
        scan saw any more, or the copy's name is taken: the next run looks again."""
        src = self.abspath(r.src)
        self.check_no_links(r.src)
        try:
            st = os.stat(src, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if r.expect is not None and not self.still(src, r.expect):
            return False
        if r.expect is None and self.fs.stable_inodes and st.st_ino != r.ino:
            return False
        if r.dst is None:
            self._keep_in_trash(r.src, src, link=False)
            self._dirty.add(os.path.dirname(src))
            return True
        dst = self.abspath(r.dst)
        self.check_no_links(r.dst)
        try:
            rename_noreplace(src, dst)
        except FileExistsError:
            return False
        self._folders_changed()
        self._dirty.add(os.path.dirname(dst))
        return True

    def rename_case(self, src_rel: str, dst_rel: str) -> bool:
        """Rename a folder to another case of its name, on a disk that ignores case;
        False (nothing done) when `dst_rel` is not the same folder under another case."""
        src, dst = self.abspath(src_rel), self.abspath(dst_rel)
        self.check_no_links(src_rel + "/x")
        if not self._same_entry(src, dst):
            return False
        self._folders_changed()
        os.rename(src, dst)
        self._check_case(src_rel, src, dst)
        self._dirty.add(os.path.dirname(dst))
        return True

    def _same_entry(self, src: str, dst: str) -> bool:
        """`dst` is `src` under another case (a case-insensitive filesystem)."""
        return fsprobe.same_name_here(self.fs, src, dst)

    def _check_case(self, src_rel: str, src: str, dst: str) -> None:
        """After a rename that changes case only: did the new spelling take? Where a
        filesystem keeps the old one, the file goes by way of the trash (a run killed in
        between leaves it there, and the next run fetches it again)."""
        name = os.path.basename(dst)
        if name == os.path.basename(src) or name in os.listdir(os.path.dirname(dst)):
            return
        dest = os.path.join(self.trash_dir, "case-" + secrets.token_hex(4), *src_rel.split("/"))
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        os.rename(dst, dest)
        os.rename(dest, dst)

    def remove_dir_if_empty(self, rel: str) -> bool:
        try:
            os.rmdir(self.abspath(rel))
            self._folders_changed()
            return True
        except OSError:
            return False

    def _keep_in_trash(self, rel: str, target: str, link: bool) -> None:
        dest = os.path.join(self.trash_dir, *rel.split("/"))
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if link:
            try:
                os.link(target, dest)
                return
            except OSError:
                shutil.copy2(target, dest)
                return
        os.replace(target, dest)


def rename_noreplace(src: str, dst: str) -> None:
    """Rename `src` to `dst`, never over an existing `dst` (FileExistsError): one
    renameat2(RENAME_NOREPLACE) where the kernel and filesystem offer it, else a check
    just before the rename (we hold the vault lock; only another program could race)."""
    fn = _renameat2()
    if fn is not None:
        if fn(-100, os.fsencode(src), -100, os.fsencode(dst), 1) == 0:  # AT_FDCWD, NOREPLACE
            return
        import ctypes

        err = ctypes.get_errno()
        if err == errno.EEXIST:
            raise FileExistsError(err, os.strerror(err), dst)
        if err not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EPERM):
            raise OSError(err, os.strerror(err), src, None, dst)
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), dst)
    os.rename(src, dst)


@functools.cache
def _renameat2():  # type: ignore[no-untyped-def]
    if sys.platform != "linux":  # Linux's own call (elsewhere CDLL(None) may not even load)
        return None
    import ctypes  # only a rename that must not overwrite pays for it

    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


def remove_stale_temps(paths: Iterable[str], staging: str | None = None) -> None:
    """Remove temporary files a killed run left behind (we hold the vault lock), and
    the probes of `fsprobe` in the state folder."""
    shards: list[str] = []  # staging subfolders (see VaultWriter.stage)
    if staging is not None and os.path.isdir(staging):
        found = [os.path.join(staging, n) for n in os.listdir(staging)]
        shards = [p for p in found if os.path.isdir(p) and not os.path.islink(p)]
        paths = [*paths, *found, *(os.path.join(d, n) for d in shards for n in os.listdir(d))]
    for p in paths:
        if is_temp_name(os.path.basename(p)) and os.path.isfile(p):
            _unlink_quiet(p)
    for shard in shards:
        try:
            os.rmdir(shard)
        except OSError:
            pass
    meta = os.path.dirname(staging) if staging is not None else None
    if meta is not None and os.path.isdir(meta):
        for name in os.listdir(meta):
            if name.startswith(fsprobe.PROBE_PREFIX):
                path = os.path.join(meta, name)
                if os.path.isdir(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    _unlink_quiet(path)


def empty_trash(trash_root: str, days: int) -> int:
    """Remove trash folders older than `days`; returns how many went."""
    if not os.path.isdir(trash_root):
        return 0
    cutoff = time.time() - days * 86400
    removed = 0
    for name in os.listdir(trash_root):
        path = os.path.join(trash_root, name)
        try:
            if os.stat(path).st_mtime < cutoff:
                shutil.rmtree(path)
                removed += 1
        except OSError:
            continue
    return removed


def _unlink_quiet(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
