"""Make the vault match a target tree: the local half of pull, clone, restore and sync.

Deletions only remove a file that is still what the scan saw, and move it to the trash.
Writes go through `VaultWriter` (atomic, verified). A file edited during the run is never
overwritten: the incoming version is kept beside it as a conflict copy.
"""

from __future__ import annotations

import os
import time

from vaultsync.engine.apply import DiskKey, TargetChanged, VaultWriter, disk_key
from vaultsync.engine.report import Report
from vaultsync.engine.scan import RACY_NS
from vaultsync.engine.state import StatRow
from vaultsync.engine.transfer import batches, pieces, prefetch
from vaultsync.errors import IntegrityError
from vaultsync.model import Entry, Flat
from vaultsync.repository.repo import Repository


def conflict_name(rel: str, mtime_ns: int, device: str) -> str:
    """`Note.md` -> `Note.conflict-20261122-143005-laptop.md` (marker before the last
    suffix; dotfiles and names without a suffix get it at the end)."""
    folder, _, name = rel.rpartition("/")
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(mtime_ns / 1e9))
    token = "".join(c if c.isalnum() or c in "-_" else "-" for c in device)[:40] or "device"
    marker = f"conflict-{stamp}-{token}"
    stem, dot, ext = name.rpartition(".")
    new = f"{stem}.{marker}.{ext}" if dot and stem else f"{name}.{marker}"
    return f"{folder}/{new}" if folder else new


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


def materialize(repo: Repository, vw: VaultWriter, local: Flat, target: Flat,
                disk: dict[str, DiskKey], report: Report,
                device_name: str) -> dict[str, StatRow | None]:
    """Apply `target` over `local`; returns stat-cache updates (None: path gone).

    Every new file is downloaded, verified and staged before the vault changes at all:
    a corrupt or missing remote object stops the run with the vault untouched."""
    rows: dict[str, StatRow | None] = {}
    todo: list[tuple[str, Entry]] = []
    same: list[tuple[str, Entry]] = []
    for key, te in sorted(target.items()):
        le = local.get(key)
        if te.is_dir:
            continue
        if le is not None and not le.is_dir and le.same_content(te):
            same.append((key, te))
        else:
            todo.append((key, te))
    check_entries(repo, todo)
    staged: list[tuple[str, Entry, str]] = []
    try:
        for batch in batches(todo):
            blobs = prefetch(repo, batch)
            for key, te in batch:
                staged.append((key, te, vw.stage(key, te, pieces(repo, te, blobs))))
    except BaseException:
        for _, _, tmp in staged:
            vw.discard(tmp)
        raise
    # 1. files that go away (or turn into folders): to the trash, deepest first
    for key in sorted(local, reverse=True):
        gone = target.get(key)
        if local[key].is_dir or (gone is not None and not gone.is_dir):
            continue
        try:
            vw.delete_file(spelling(key, local, {}), disk[key])
            report.deleted.append(key)
            rows[key] = None
        except TargetChanged:
            report.skipped.append((key, "changed during the run; kept, will sync next run"))
    # 2. folders that go away, if nothing is left in them
    for key in sorted((k for k, e in local.items() if e.is_dir), key=lambda k: -k.count("/")):
        kept = target.get(key)
        if kept is None or not kept.is_dir:
            vw.remove_dir_if_empty(spelling(key, local, {}))
    # 3. folders that appear
    for key in sorted(k for k, e in target.items() if e.is_dir):
        le = local.get(key)
        if le is None or not le.is_dir:
            vw.make_dirs(spelling(key, local, target))
    # 4. staged files into place; a file edited during the run keeps its place and the
    #    incoming version lands beside it as a conflict copy
    for key, te, tmp in staged:
        rel = spelling(key, local, target)
        le = local.get(key)
        expect = disk.get(key) if le is not None and not le.is_dir else None
        try:
            rows[key] = stat_row(key, te, vw.install(tmp, rel, expect))
            report.downloaded.append(key)
        except TargetChanged:
            copy = conflict_name(rel, te.mtime_ns, device_name)
            vw.install(tmp, copy, None)
            report.conflicts.append((key, copy))
    # 5. same bytes: only mode and mtime
    for key, te in same:
        _fix_metadata(vw, key, spelling(key, local, target), local[key], te, disk[key], rows)
    return rows


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
