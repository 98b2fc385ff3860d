"""Make the vault match a target tree: the local half of pull, clone, restore and sync.

Deletions only remove a file that is still what the scan saw, and move it to the trash.
Writes go through `VaultWriter` (atomic, verified). A file edited during the run is never
overwritten: the incoming version is kept beside it as a conflict copy.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from dataclasses import replace

from vaultsync.engine import fsprobe, progress
from vaultsync.engine.apply import DiskKey, TargetChanged, VaultWriter
from vaultsync.engine.diskfit import CANNOT_HOLD, Fit, fit
from vaultsync.engine.report import Report
from vaultsync.engine.scan import RACY_NS, Respell, clamp_time, tree_mode
from vaultsync.engine.state import StatRow
from vaultsync.engine.transfer import batches, local_chunks, pieces, prefetch
from vaultsync.errors import IntegrityError, LocalFailure
from vaultsync.model import Entry, Flat, ObjectId
from vaultsync.reconcile.conflicts import TAKEN, copy_path
from vaultsync.reconcile.plan import (
    ADD,
    CHMOD,
    DELETE,
    MKDIR,
    MOVE,
    RMDIR,
    UPDATE,
    Action,
    Plan,
    diff,
)
from vaultsync.reconcile.renames import Move
from vaultsync.repository.repo import Repository

# the effective ids where access(2) can ask for them (not on Windows: NotImplementedError)
_EFFECTIVE = os.access in os.supports_effective_ids


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
    """The stat cache row of a file just written: the mode is the entry's executable bit
    (a filesystem without permission bits keeps it there, see `Scanner._mode`)."""
    racy = abs(time.time_ns() - st.st_mtime_ns) < RACY_NS
    return StatRow(key, st.st_size, -1 if racy else clamp_time(st.st_mtime_ns), st.st_ino,
                   clamp_time(st.st_ctime_ns), tree_mode(entry.executable), entry.author,
                   entry.chunks)


def check_entries(repo: Repository, entries: list[tuple[str, Entry]]) -> None:
    """Before anything is written: every chunk is indexed and the sizes add up, so a
    hostile tree claiming absurd sizes or unknown chunks is refused up front."""
    repo.index.warm(c for _, entry in entries for c in entry.chunks)
    for key, entry in entries:
        total = sum(repo.ref(c).raw_length for c in entry.chunks)
        if total != entry.size:
            raise IntegrityError(f"{key}: chunks add up to {total} bytes, the tree says "
                                 f"{entry.size}")


STAGERS = 4  # threads writing staged files (fsync latency overlaps where there is one)
STAGE_FILES = 32  # files a staging thread writes per task


class _Stagers:
    """The bookkeeping of files staged by worker threads, so a failure or an interrupt
    removes every one of them. An interrupt can land anywhere in the main thread, even
    inside the executor starting a worker (which it then never joins), so the workers
    themselves record what they wrote, and once stopped none starts another write."""

    def __init__(self) -> None:
        self.made: list[str] = []
        self.active = 0
        self.stopped = False
        self.idle = threading.Condition()

    def stage(self, vw: VaultWriter, key: str, entry: Entry, data: Iterator[bytes]) -> str:
        with self.idle:
            if self.stopped:
                raise CancelledError(key)
            self.active += 1
        try:
            tmp = vw.stage(key, entry, data)
            with self.idle:
                self.made.append(tmp)
            return tmp
        finally:
            with self.idle:
                self.active -= 1
                self.idle.notify_all()

    def stop_and_discard(self, vw: VaultWriter) -> None:
        with self.idle:
            self.stopped = True
            while self.active:
                self.idle.wait()
        for tmp in self.made:
            vw.discard(tmp)
        vw.remove_shards()


def stage_all(repo: Repository, vw: VaultWriter, files: list[tuple[str, Entry]],
              staged: dict[str, str] | None = None,
              have: dict[ObjectId, bytes] | None = None) -> dict[str, str]:
    """Download, verify and stage every file (key -> temporary file, into `staged`, the
    caller's to discard if it fails later); on any failure, remove what was staged and
    re-raise: the vault is untouched.

    The stages overlap: while STAGERS threads write one batch of files (`batches`), the
    next batch is read, decompressed and verified (on the repository's transfer threads);
    at most two batches are in memory. Staged files are made durable at the end, all at
    once where one syncfs does it (`VaultWriter.defer_fsyncs`), else one by one.
    Chunks `have` holds (read from this vault's own files) are not downloaded."""
    staged = {} if staged is None else staged
    stagers = _Stagers()
    bar = progress.current()
    bar.start("download", sum(e.size for _, e in files), "bytes")

    def stage(group: list[tuple[str, Entry]], blobs: dict[ObjectId, bytes],
              ) -> list[tuple[str, str]]:
        out = []
        for key, entry in group:
            out.append((key, stagers.stage(vw, key, entry, pieces(repo, entry, blobs, have))))
            bar.advance(entry.size)
        return out

    def collect(futures: list[Future[list[tuple[str, str]]]]) -> None:
        for future in futures:
            staged.update(future.result())

    pool = ThreadPoolExecutor(STAGERS, thread_name_prefix="vaultsync-stage")
    inflight: deque[list[Future[list[tuple[str, str]]]]] = deque()
    try:
        vw.defer_fsyncs()
        for batch in batches(files):
            blobs = prefetch(repo, batch, have)  # while the batch before is written
            inflight.append([pool.submit(stage, batch[i : i + STAGE_FILES], blobs)
                             for i in range(0, len(batch), STAGE_FILES)])
            del blobs
            while len(inflight) > 1:
                collect(inflight.popleft())
        while inflight:
            collect(inflight.popleft())
        pool.shutdown(wait=True)
        vw.sync_staged()
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        stagers.stop_and_discard(vw)
        vw.end_deferral()
        staged.clear()
        raise
    finally:
        bar.finish()
    return staged


def materialize(repo: Repository, vw: VaultWriter, local: Flat, target: Flat,
                disk: dict[str, DiskKey], report: Report,
                hints: Iterable[Move] = (), *, base: Flat | None = None,
                renames: Iterable[Respell] = (),
                before_install: Callable[[], object] | None = None,
                ) -> dict[str, StatRow | None]:
    """Turn the vault (`local`, as scanned) into `target`; returns stat-cache updates
    (None: path gone).

    The target is cut to what this disk can hold (`diskfit`; `base` decides between names
    it takes for one): the rest are phantoms, in `report.unwritable`. Then every new file
    is downloaded, verified and staged before the vault changes at all: a corrupt or
    missing remote object stops the run with the vault untouched. `before_install`
    (sync's commit) runs once all is staged, unless a version to write is not in the
    repository yet (then first). Then the second spellings the scan found (`renames`) are
    settled and the plan is carried out. Moves are local renames (nothing downloaded). A
    path edited since the scan is never overwritten: the incoming version lands beside it
    as a conflict copy. One name this disk refuses never stops the rest."""
    hints = tuple(hints)
    fitted = fit_to_disk(vw.fs, local, target, base or {}, hints)
    for key, (entry, why) in fitted.refused.items():
        _refuse(report, key, entry, why)
    target = fitted.flat
    local, disk = respell_folders(vw, local, disk, target)
    plan = diff(local, target, hints)
    writes = [(a.path, a.entry) for a in plan.adds + plan.updates if a.entry is not None]
    check_writable(vw, plan, local, target)
    if before_install is not None and not all(
            repo.has_blob(c) for _, e in writes for c in e.chunks):
        before_install()  # a version only this vault holds is written: upload it first
        before_install = None
    check_entries(repo, writes)
    staged: dict[str, str] = {}
    try:
        have = local_chunks(repo, vw.root, [(a.path, a.entry) for a in plan.updates
                                            if a.entry is not None],
                            lambda k: ((spelling(k, local, {}), local[k]) if k in local
                                       else None))
        stage_all(repo, vw, writes, staged, have)
        del have
        if before_install is not None:  # sync's commit, once every file is staged here:
            before_install()  # a disk too full for them stops the run, nothing committed
        settle_spellings(vw, renames, report)  # after the commit read them where they were
        rows = _install(plan, vw, local, target, disk, staged, report)
    except BaseException:
        for tmp in staged.values():  # installed ones were renamed away: a no-op for them
            vw.discard(tmp)
        raise
    # equal bytes, other mtime: take the merged mtime (two equal edits keep the newer)
    for key, te in target.items():
        le = local.get(key)
        if (not te.is_dir and le is not None and key in disk and le.same_version(te)
                and le.mtime_ns != te.mtime_ns and key not in rows):
            _fix_metadata(vw, key, spelling(key, local, target), le, te, disk[key], rows)
    vw.sync_dirs()
    return rows


def _install(plan: Plan, vw: VaultWriter, local: Flat, target: Flat,
             disk: dict[str, DiskKey], staged: dict[str, str],
             report: Report) -> dict[str, StatRow | None]:
    """Carry out the plan's steps with every new file staged; a name this disk refuses
    becomes a phantom (with everything inside a refused folder) and the rest goes on."""
    rows: dict[str, StatRow | None] = {}
    refused: list[str] = []  # folders this disk would not make
    for action in plan.steps():
        inside = next((r for r in refused if _below(action.path, r)), None)
        if inside is not None and action.entry is not None:
            _refuse(report, action.path, action.entry, f"inside {inside}, which this disk "
                                                       "cannot hold")
            _discard(vw, staged, action.path)
            continue
        try:
            _carry_out(action, vw, local, target, disk, staged, rows, report)
        except OSError as exc:
            here = spelling(action.path, local, target)
            folder = os.path.dirname(vw.abspath(here))
            if action.entry is None or not fsprobe.name_refused(exc, vw.fs, _last(here),
                                                                folder):
                raise
            _refuse(report, action.path, action.entry, f"{CANNOT_HOLD} ({exc.strerror})")
            _discard(vw, staged, action.path)
            if action.op == MKDIR:
                refused.append(action.path)
            elif action.op == MOVE and action.src is not None:
                _drop_source(vw, action.src, local, disk, rows, report)
    return rows


def check_writable(vw: VaultWriter, plan: Plan, local: Flat, target: Flat) -> None:
    """Before anything is committed or changed: every folder the plan writes into (or
    deletes, moves, makes folders in) can be written, so a folder this device may not
    write stops the run as a local failure with nothing committed, not halfway through."""
    folders: set[str] = set()
    for a in plan.steps():
        if a.op == CHMOD:
            continue
        for key in (a.path, a.src):
            if key is not None:
                folders.add(os.path.dirname(vw.abspath(spelling(key, local, target))))
    for folder in sorted(folders):
        while not os.path.isdir(folder) and os.path.dirname(folder) != folder:
            folder = os.path.dirname(folder)  # made by the run: its parent must be writable
        if not os.access(folder, os.W_OK | os.X_OK, effective_ids=_EFFECTIVE):
            raise LocalFailure(f"local permission denied: cannot write into {folder}; "
                               "nothing was committed (fix its permissions, or ignore it)")


def fit_to_disk(fs: fsprobe.FsTraits, local: Flat, target: Flat, base: Flat,
                hints: Iterable[Move] = ()) -> Fit:
    """`target` cut to what the disk of `fs` can hold, as `materialize` writes it (a dry
    run can show the same: `.flat` is what would be written, `.refused` the phantoms)."""
    return fit(local, target, base, fs.fold,
               lambda name: not fsprobe.suspicious(name) or fs.holds(name),
               frozenset(m.dst for m in hints if m.src in local))


def _last(rel: str) -> str:
    return rel.rpartition("/")[2]


def _below(key: str, folder: str) -> bool:
    return key == folder or key.startswith(folder + "/")


def _refuse(report: Report, key: str, entry: Entry, why: str) -> None:
    """A target entry this disk cannot hold: a phantom, reported once per run."""
    report.unwritable[key] = entry
    if key not in {path for path, _ in report.skipped}:
        report.skipped.append((key, why))


def _discard(vw: VaultWriter, staged: dict[str, str], key: str) -> None:
    if key in staged:
        vw.discard(staged.pop(key))


def _drop_source(vw: VaultWriter, src: str, local: Flat, disk: dict[str, DiskKey],
                 rows: dict[str, StatRow | None], report: Report) -> None:
    """A move whose new name this disk refuses: the old name is not in the target any
    more (left here, the next run would push it back as a new file), so it goes to the
    trash; its bytes stay in the phantom, and in the repository."""
    try:
        vw.delete_file(spelling(src, local, {}), disk[src])
    except TargetChanged:
        report.skipped.append((src, "changed during the run; kept, will sync next run"))
        return
    rows[src] = None


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
            _keep_beside(vw, a.path, a.entry, staged.pop(a.path), local, target, disk, report)
    elif a.op == CHMOD:
        assert a.entry is not None and a.old is not None
        _fix_metadata(vw, a.path, here, a.old, a.entry, disk[a.path], rows)


def _keep_beside(vw: VaultWriter, key: str, entry: Entry, tmp: str, local: Flat,
                 target: Flat, disk: dict[str, DiskKey], report: Report) -> None:
    """`key` changed on disk during the run: the incoming version, staged as `tmp`, is
    kept beside it under a conflict copy's name (`copy_path`: the first free one, or one
    that already holds these bytes)."""
    here = spelling(key, local, target)
    folder = here.rpartition("/")[0]

    def at(k: str) -> Entry | None:
        rel = f"{folder}/{_last(k)}" if folder else _last(k)
        if os.path.lexists(vw.abspath(rel)):  # on disk: what the scan saw there, if still so
            seen = local.get(k)
            unchanged = k in disk and vw.still(vw.abspath(rel), disk[k])
            return seen if seen is not None and unchanged else TAKEN
        return target.get(k)  # free on disk; the target may still want it

    for _attempt in range(5):  # a name taken between the check and the rename: next one
        where = copy_path(key, entry, at, spelled=_last(here))
        if where.exists:
            vw.discard(tmp)
            break
        copy = f"{folder}/{where.name}" if folder else where.name
        try:
            vw.install(tmp, copy, None)
            break
        except TargetChanged:
            continue
    else:
        vw.discard(tmp)
        report.skipped.append((key, "changed during the run, and no name was free to keep "
                                    "the incoming version beside it; it stays in the "
                                    "repository"))
        return
    report.conflicts.append((key, where.key))


def settle_spellings(vw: VaultWriter, renames: Iterable[Respell], report: Report) -> None:
    """Carry out what the scan decided for second spellings of one name (NFC and NFD):
    each is renamed to its collision copy's name (a conflict, reported once: the copy is
    in the tree already) or, holding the very same bytes, moved to the trash."""
    for r in sorted(renames, key=lambda r: r.src.count("/")):  # folders before contents
        try:
            done = vw.respell(r)
        except OSError:
            done = False
        if not done:
            report.skipped.append((r.key, f"a second spelling of this name, {r.src!r}, "
                                          "could not be renamed; will retry next run"))
        elif r.dst is None:
            report.notices.append(f"{r.src!r} had the same bytes as {r.key!r} under another "
                                  "spelling: kept once, the other is in the trash")
        else:
            report.conflicts.append((r.key, r.copy or r.dst))


def respell_folders(vw: VaultWriter, local: Flat, disk: dict[str, DiskKey],
                    target: Flat) -> tuple[Flat, dict[str, DiskKey]]:
    """On a disk that ignores case, a folder that another device renamed by case only
    (`dir/` -> `Dir/`) is renamed here first, and `local` and `disk` follow; otherwise
    its files would be written into the old spelling and pushed back from there."""
    if not vw.fs.case_insensitive:
        return local, disk
    fold = vw.fs.fold
    wanted = {(k.rpartition("/")[0], fold(e.name)): k
              for k, e in target.items() if e.is_dir and k not in local}
    tried: set[str] = set()
    while wanted:
        found = [(k, wanted[(k.rpartition("/")[0], fold(e.name))])
                 for k, e in sorted(local.items(), key=lambda ke: ke[0].count("/"))
                 if e.is_dir and k not in target and k not in tried
                 and (k.rpartition("/")[0], fold(e.name)) in wanted]
        found = [(old, new) for old, new in found if new not in local]
        if not found:
            break
        old, new = found[0]
        tried.add(old)
        old_rel = spelling(old, local, {})
        new_rel = old_rel.rpartition("/")[0] + "/" + target[new].name if "/" in old_rel \
            else target[new].name
        if not vw.rename_case(old_rel, new_rel):
            continue

        def moved(k: str, old: str = old, new: str = new) -> str:
            return new + k[len(old):] if k == old or k.startswith(old + "/") else k

        local = {moved(k): (replace(e, name=target[new].name) if k == old else e)
                 for k, e in local.items()}
        disk = {moved(k): v for k, v in disk.items()}
    return local, disk


def _settle(vw: VaultWriter, key: str, rel: str, entry: Entry, st: os.stat_result) -> StatRow:
    """Give a moved file the executable bit of its merged entry (where the disk has one)."""
    if vw.fs.modes and bool(st.st_mode & stat.S_IXUSR) != entry.executable:
        os.chmod(vw.abspath(rel), fsprobe.exec_toggled(st.st_mode, entry.executable))
        st = os.stat(vw.abspath(rel))
    return stat_row(key, entry, st)


def _fix_metadata(vw: VaultWriter, key: str, rel: str, le: Entry, te: Entry, expect: DiskKey,
                  rows: dict[str, StatRow | None]) -> None:
    """Same bytes, another executable bit or mtime. Only the bit syncs, never the rest of
    a mode; on a disk without permission bits it is only remembered (the stat cache)."""
    if le.executable == te.executable and le.mtime_ns == te.mtime_ns \
            and le.author == te.author:
        return
    path = vw.abspath(rel)
    if not vw.still(path, expect):
        return  # edited during the run: the next run sees it
    if le.executable != te.executable and vw.fs.modes:
        os.chmod(path, fsprobe.exec_toggled(os.stat(path).st_mode, te.executable))
    if le.mtime_ns != te.mtime_ns:
        os.utime(path, ns=(te.mtime_ns, te.mtime_ns))
    rows[key] = stat_row(key, te, os.stat(path))
