"""Make the vault match a target tree: the local half of pull, clone, restore and sync.

Deletions only remove a file that is still what the scan saw, and move it to the trash.
Writes go through `VaultWriter` (atomic, verified). A file edited during the run is never
overwritten: the incoming version is kept beside it as a conflict copy.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from vaultsync.engine import progress
from vaultsync.engine.apply import DiskKey, TargetChanged, VaultWriter, disk_key
from vaultsync.engine.conflicts import conflict_name
from vaultsync.engine.plan import ADD, CHMOD, DELETE, MKDIR, MOVE, RMDIR, UPDATE, Action, diff
from vaultsync.engine.renames import Move
from vaultsync.engine.report import Report
from vaultsync.engine.scan import RACY_NS
from vaultsync.engine.state import StatRow
from vaultsync.engine.transfer import batches, pieces, prefetch
from vaultsync.errors import IntegrityError
from vaultsync.model import Entry, Flat
from vaultsync.repository.repo import Repository


def spelling(key: str, local: Flat, target: Flat) -> str:
    """The on-disk path for `key`: this device's spelling where it has one."""
    parts = key.split("/")
    out = []
    for i in range(len(parts)):
        k = "/".join(parts[: i + 1])
        entry = local.get(k) or target.get(k)
        out.append(entry.name if entry is not None else parts[i])
    return "/".join(out)


def stat_row(key: str, entry: Entry, st: os.stat_result) -> StatRow:
    racy = time.time_ns() - st.st_mtime_ns < RACY_NS
    return StatRow(key, st.st_size, -1 if racy else st.st_mtime_ns, st.st_ino, st.st_ctime_ns,
                   st.st_mode & 0o7777, entry.author, entry.chunks)


def check_entries(repo: Repository, entries: list[tuple[str, Entry]]) -> None:
    """Before anything is written: every chunk is indexed and the sizes add up, so a
    hostile tree claiming absurd sizes or unknown chunks is refused up front."""
    for key, entry in entries:
        total = sum(repo.ref(c).raw_length for c in entry.chunks)
        if total != entry.size:
            raise IntegrityError(f"{key}: chunks add up to {total} bytes, the tree says "
                                 f"{entry.size}")


# errors that mean "this filesystem cannot hold this name" (too long, bad bytes, a
# character the filesystem refuses)
UNWRITABLE = {errno.ENAMETOOLONG, errno.EILSEQ, errno.EINVAL}


STAGERS = 4  # files written and fsynced at once: fsync latency overlaps


def stage_all(repo: Repository, vw: VaultWriter,
              files: list[tuple[str, Entry]]) -> dict[str, str]:
    """Download, verify and stage every file (key -> temporary file), a few at a time;
    on any failure, remove what was staged and re-raise: the vault is untouched."""
    staged: dict[str, str] = {}
    submitted: list[Future[str]] = []
    bar = progress.current()
    bar.start("download", sum(e.size for _, e in files), "bytes")

    def stage(key: str, entry: Entry, data: Iterator[bytes]) -> str:
        tmp = vw.stage(key, entry, data)
        bar.advance(entry.size)
        return tmp

    try:
        with ThreadPoolExecutor(STAGERS, thread_name_prefix="vaultsync-stage") as pool:
            for batch in batches(files):
                blobs = prefetch(repo, batch)
                futures = [(key, pool.submit(stage, key, te, pieces(repo, te, blobs)))
                           for key, te in batch]
                submitted += [f for _, f in futures]
                for key, future in futures:
                    staged[key] = future.result()
    except BaseException:
        # the pool has finished every write it started: remove each staged file
        for future in submitted:
            if future.done() and not future.cancelled() and future.exception() is None:
                vw.discard(future.result())
        raise
    finally:
        bar.finish()
    return staged


def materialize(repo: Repository, vw: VaultWriter, local: Flat, target: Flat,
                disk: dict[str, DiskKey], report: Report,
                hints: Iterable[Move] = ()) -> dict[str, StatRow | None]:
    """Turn the vault (`local`, as scanned) into `target`; returns stat-cache updates
    (None: path gone).

    Every new file is downloaded, verified and staged before the vault changes at all:
    a corrupt or missing remote object stops the run with the vault untouched. Moves are
    local renames (nothing downloaded). A path edited since the scan is never
    overwritten: the incoming version lands beside it as a conflict copy."""
    plan = diff(local, target, hints)
    writes = plan.adds + plan.updates
    check_entries(repo, [(a.path, a.entry) for a in writes if a.entry is not None])
    staged = stage_all(repo, vw, [(a.path, a.entry) for a in writes if a.entry is not None])
    rows: dict[str, StatRow | None] = {}
    for action in plan.steps():
        try:
            _carry_out(action, vw, local, target, disk, staged, rows, report)
        except OSError as exc:
            if exc.errno not in UNWRITABLE or action.entry is None:
                raise
            if action.path not in {path for path, _ in report.skipped}:  # said once
                report.skipped.append((action.path, f"this filesystem cannot hold this "
                                                    f"name ({exc.strerror})"))
            report.unwritable[action.path] = action.entry
            if action.path in staged:
                vw.discard(staged[action.path])
    # equal bytes, other mtime: take the merged mtime (two equal edits keep the newer)
    for key, te in target.items():
        le = local.get(key)
        if (not te.is_dir and le is not None and key in disk and le.same_version(te)
                and le.mtime_ns != te.mtime_ns and key not in rows):
            _fix_metadata(vw, key, spelling(key, local, target), le, te, disk[key], rows)
    vw.sync_dirs()
    return rows


def _carry_out(a: Action, vw: VaultWriter, local: Flat, target: Flat,
               disk: dict[str, DiskKey], staged: dict[str, str],
               rows: dict[str, StatRow | None], report: Report) -> None:
    here = spelling(a.path, local, target)
    if a.op == DELETE:
        try:
            vw.delete_file(spelling(a.path, local, {}), disk[a.path])
            report.deleted.append(a.path)
            rows[a.path] = None
        except TargetChanged:
            report.skipped.append((a.path, "changed during the run; kept, will sync next run"))
    elif a.op == MKDIR:
        vw.make_dirs(here)
    elif a.op == RMDIR:
        vw.remove_dir_if_empty(spelling(a.path, local, {}))
    elif a.op == MOVE:
        assert a.src is not None and a.entry is not None
        try:
            st = vw.move(spelling(a.src, local, {}), here, disk[a.src])
        except TargetChanged:
            report.skipped.append((a.src, "changed during the run; will sync next run"))
            return
        rows[a.src] = None
        report.moved.append((a.src, a.path))
        rows[a.path] = _settle(vw, a.path, here, a.entry, st)
    elif a.op in (ADD, UPDATE):
        assert a.entry is not None
        expect = disk.get(a.path) if a.op == UPDATE else None
        try:
            rows[a.path] = stat_row(a.path, a.entry, vw.install(staged[a.path], here, expect))
            report.downloaded.append(a.path)
        except TargetChanged:
            folder, _, name = here.rpartition("/")
            copy = conflict_name(name, a.entry.mtime_ns, a.entry.author)
            copy = f"{folder}/{copy}" if folder else copy
            vw.install(staged[a.path], copy, None)
            report.conflicts.append((a.path, copy))
    elif a.op == CHMOD:
        assert a.entry is not None and a.old is not None
        _fix_metadata(vw, a.path, here, a.old, a.entry, disk[a.path], rows)


def _settle(vw: VaultWriter, key: str, rel: str, entry: Entry, st: os.stat_result) -> StatRow:
    """Give a moved file the mode of its merged entry."""
    if st.st_mode & 0o7777 != entry.mode & 0o7777:
        os.chmod(vw.abspath(rel), entry.mode & 0o7777)
        st = os.stat(vw.abspath(rel))
    return stat_row(key, entry, st)


def _fix_metadata(vw: VaultWriter, key: str, rel: str, le: Entry, te: Entry, expect: DiskKey,
                  rows: dict[str, StatRow | None]) -> None:
    if le.mode == te.mode and le.mtime_ns == te.mtime_ns and le.author == te.author:
        return
    path = vw.abspath(rel)
    if disk_key(path) != expect:
        return  # edited during the run: the next run sees it
    if le.mode != te.mode:
        os.chmod(path, te.mode & 0o7777)
    if le.mtime_ns != te.mtime_ns:
        os.utime(path, ns=(te.mtime_ns, te.mtime_ns))
    rows[key] = stat_row(key, te, os.stat(path))
