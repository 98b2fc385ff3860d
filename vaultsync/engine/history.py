"""Looking back: log, a file's versions, restore, and read-only checkout."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from vaultsync.chunking import Chunker
from vaultsync.engine import fsprobe
from vaultsync.engine.apply import VaultWriter, disk_key
from vaultsync.engine.diskfit import CANNOT_HOLD
from vaultsync.engine.materialize import check_entries, fit_to_disk, spelling, stage_all
from vaultsync.engine.remote import open_repository
from vaultsync.engine.report import Report
from vaultsync.engine.session import Session, rejoining
from vaultsync.errors import UsageError
from vaultsync.model import Entry, Flat, ObjectId, Snapshot, flatten, lookup, nfc
from vaultsync.reconcile.conflicts import TAKEN, copy_path
from vaultsync.repository.repo import MemoryCache, Repository
from vaultsync.repository.verify import VerifyReport, verify
from vaultsync.store.url import normalize_url


@dataclass(frozen=True)
class LogLine:
    id: ObjectId
    snapshot: Snapshot
    entry: Entry | None = None  # for a file's history: its version in this snapshot

    def to_json(self) -> dict[str, object]:
        snap = self.snapshot
        doc: dict[str, object] = {
            "id": self.id, "time": _iso(snap.time_ns), "device": snap.device_name,
            "parents": list(snap.parents), "files": snap.files, "size": snap.size,
        }
        if self.entry is not None:
            doc["file"] = {"size": self.entry.size, "mtime": _iso(self.entry.mtime_ns),
                           "chunks": len(self.entry.chunks)}
        return doc


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def all_snapshots(repo: Repository) -> list[tuple[ObjectId, Snapshot]]:
    """Every snapshot reachable from a head, newest first."""
    ids: set[ObjectId] = set()
    for sid in repo.read_heads().values():
        ids |= repo.ancestors(sid)
    snaps = [(sid, repo.get_snapshot(sid)) for sid in ids]
    snaps.sort(key=lambda x: (x[1].time_ns, x[0]), reverse=True)
    return snaps


def pruned_note(repo: Repository, snaps: list[tuple[ObjectId, Snapshot]]) -> str | None:
    """When prune forgot part of the history: what is left, in words (else None)."""
    if not repo.prune_state.forgotten:
        return None
    oldest = f"; the oldest kept snapshot is {snaps[-1][0][:12]} ({_iso(snaps[-1][1].time_ns)})" \
        if snaps else ""
    return f"older history was pruned (vaultsync prune){oldest}"


def resolve(repo: Repository, at: str | None, default: ObjectId | None) -> ObjectId:
    """A snapshot from an id (or unique prefix of 6+ hex digits) or a time."""
    if at is None:
        if default is None:
            snaps = all_snapshots(repo)
            if not snaps:
                raise UsageError("the repository has no snapshots yet")
            return snaps[0][0]
        return default
    snaps = all_snapshots(repo)
    text = at.strip().lower()
    if len(text) >= 6 and all(c in "0123456789abcdef" for c in text):
        found = [sid for sid, _ in snaps if sid.startswith(text)]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise UsageError(f"snapshot prefix {at!r} is ambiguous")
        if any(sid.startswith(text) for sid in repo.prune_state.forgotten):
            raise UsageError(f"snapshot {at} was pruned: {pruned_note(repo, snaps)}")
    note = pruned_note(repo, snaps)
    when = _parse_time(at)
    if when is None:
        raise UsageError(f"no snapshot {at!r} (give a snapshot id or a time like "
                         "2026-11-22T14:30)" + (f"; {note}" if note else ""))
    older = [sid for sid, snap in snaps if snap.time_ns <= when]
    if not older:
        if note:
            raise UsageError(f"no kept snapshot at or before {at}: {note}")
        raise UsageError(f"no snapshot at or before {at}")
    return older[0]


def _parse_time(text: str) -> int | None:
    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.astimezone()  # local time, as the user typed it
    return int(dt.timestamp() * 1e9) + 999_999_999  # inclusive of that second


def vault_key(vault_root: str, path: str) -> str:
    """The key of a path given on the command line: relative to the vault (or absolute
    inside it), normalised ('./a/../b.md' is 'b.md'); '' for the vault itself."""
    rel = os.path.relpath(os.path.abspath(path), vault_root) if os.path.isabs(path) \
        else os.path.normpath(path)
    key = nfc(rel.replace(os.sep, "/").strip("/"))
    if key == ".." or key.startswith("../"):
        raise UsageError(f"{path} is outside the vault")
    return "" if key == "." else key


@rejoining
def log(root: str, path: str | None) -> tuple[list[LogLine], str | None]:
    """Every snapshot, newest first; or, for `path`, the snapshots that hold a new version
    of that file; and a note when prune forgot older history. A path that is a file in no
    snapshot is a usage error, not an empty answer."""
    with Session(root, "log", write=False) as s:
        snaps = all_snapshots(s.repo)
        note = pruned_note(s.repo, snaps)
        if path is None:
            return [LogLine(sid, snap) for sid, snap in snaps], note
        key = vault_key(s.vault.root, path)
        lines: list[LogLine] = []
        last: Entry | None = None
        folder = False
        for sid, snap in reversed(snaps):  # oldest first, to spot each new version
            entry = lookup(snap.tree, key, s.repo.get_tree) if key else None
            folder = folder or (entry is not None and entry.is_dir)
            if entry is not None and not entry.is_dir and not entry.same_version(last):
                lines.append(LogLine(sid, snap, entry))
            last = entry
        if not lines:
            if not snaps:
                raise UsageError("the repository has no snapshots yet")
            if folder:
                raise UsageError(f"{path} is a folder: log shows the versions of a file")
            note = pruned_note(s.repo, snaps)
            if note:
                raise UsageError(f"{path} has no version in the kept snapshots: {note}")
            raise UsageError(f"{path} has no version in any snapshot (no file of that name "
                             "was ever synced)")
        return list(reversed(lines)), note


def _select(flat: Flat, key: str) -> Flat:
    if key in ("", "."):
        return dict(flat)
    return {k: e for k, e in flat.items() if k == key or k.startswith(key + "/")}


@rejoining
def restore(root: str, path: str, at: str | None, to: str | None) -> Report:
    with Session(root, "restore", write=False) as s:
        sid = resolve(s.repo, at, s.base)
        key = vault_key(s.vault.root, path)
        chosen = _select(s.flat_of(sid), key)
        if not chosen:
            raise UsageError(f"{path} is not in snapshot {sid[:12]}")
        s.report.snapshot = sid
        if to is None:  # what it replaces goes to the trash; said when it was not synced
            _write_all(s.repo, s.writer(), chosen, lambda k: spelling(k, {}, chosen),
                       s.report, synced=s.flat_of(s.base).get)
        else:  # another folder: nothing there is replaced, nor put in this vault's trash
            vw, rel, chosen = _destination(os.path.abspath(to), key, chosen, s.vault.trash)
            _write_all(s.repo, vw, chosen, rel, s.report)
        return s.report.finish()


def _destination(dest: str, key: str, chosen: Flat, trash: str):  # type: ignore[no-untyped-def]
    """Where `restore --to DEST` puts things: a single file goes to DEST (or inside it, if
    DEST is a folder); a folder's contents go below DEST."""
    entry = chosen.get(key)
    if entry is not None and not entry.is_dir:
        if os.path.isdir(dest):
            dest = os.path.join(dest, entry.name)
        name = os.path.basename(dest)
        return VaultWriter(os.path.dirname(dest), trash), lambda k: name, chosen
    strip = len(key) + 1 if key not in ("", ".") else 0
    os.makedirs(dest, exist_ok=True)
    inside = {k: e for k, e in chosen.items() if k != key}
    return VaultWriter(dest, trash), lambda k: k[strip:], inside


def _write_all(repo: Repository, vw: VaultWriter, flat: Flat, rel_of, report: Report,
               synced: Callable[[str], Entry | None] | None = None) -> None:
    """Write `flat` below the writer's folder, each key at `rel_of(key)`: every file staged
    and verified first, then installed; names this disk cannot hold are reported and
    skipped, never a stop. A file already there stays when it holds those bytes. In the
    vault (`synced` gives the last synced version of a key) it is replaced, into the
    trash, with a notice when it held a version not synced yet. Anywhere else it is kept,
    and the restored version goes beside it under a conflict name (exit 1)."""
    keys = {nfc(rel_of(k)): k for k in flat}
    fitted = fit_to_disk(vw.fs, {}, {rel: flat[k] for rel, k in keys.items()}, {})
    for rel, (_entry, why) in sorted(fitted.refused.items()):
        report.skipped.append((keys[rel], why))
    refused: list[str] = []  # folders this disk would not make
    for rel, entry in sorted(fitted.flat.items()):
        if entry.is_dir:
            try:
                vw.make_dirs(rel_of(keys[rel]))
            except OSError as exc:
                if not _refused(exc, vw, rel_of(keys[rel])):
                    raise
                refused.append(rel)
                report.skipped.append((keys[rel], f"{CANNOT_HOLD} ({exc.strerror})"))
    files = [(keys[rel], e) for rel, e in sorted(fitted.flat.items())
             if not e.is_dir and not any(rel.startswith(r + "/") for r in refused)]
    check_entries(repo, files)
    staged: dict[str, str] = {}
    try:
        stage_all(repo, vw, [(rel_of(key), entry) for key, entry in files], staged)
        for key, entry in files:
            rel = rel_of(key)
            now = disk_key(vw.abspath(rel))
            if now is not None:
                held = _chunks_of(repo, vw.abspath(rel))
                if held == entry.chunks:  # already there
                    vw.discard(staged.pop(rel))
                    continue
                if synced is None:
                    copy = _beside(vw, rel, entry)
                    vw.install(staged.pop(rel), copy, None)
                    report.conflicts.append((key, copy))
                    continue
                old = synced(key)
                if old is None or old.is_dir or held != old.chunks:
                    where = os.path.relpath(os.path.join(vw.trash_dir, *rel.split("/")),
                                            vw.root)
                    report.notices.append(f"{key} held changes not synced yet: that version "
                                          f"is in {where}")
            try:
                vw.install(staged[rel], rel, now)
            except OSError as exc:
                if not _refused(exc, vw, rel):
                    raise
                vw.discard(staged.pop(rel))
                report.skipped.append((key, f"{CANNOT_HOLD} ({exc.strerror})"))
                continue
            del staged[rel]
            report.downloaded.append(key)
    finally:
        for tmp in staged.values():  # what a failure or an interrupt left staged
            vw.discard(tmp)
    vw.sync_dirs()


def _chunks_of(repo: Repository, path: str) -> tuple[ObjectId, ...] | None:
    """The chunk ids of the file at `path` (None: not a readable file)."""
    try:
        with open(path, "rb") as f:
            return tuple(c.id for c in Chunker(repo.format.chunker, repo.hasher).chunks(f))
    except OSError:
        return None


def _beside(vw: VaultWriter, rel: str, entry: Entry) -> str:
    """A free path beside `rel` for `entry`, named as a conflict copy."""
    folder = rel.rpartition("/")[0]

    def at(key: str) -> Entry | None:
        name = key.rpartition("/")[2]
        there = os.path.join(os.path.dirname(vw.abspath(rel)), name)
        return TAKEN if os.path.lexists(there) else None

    place = copy_path(nfc(rel), entry, at, spelled=rel.rpartition("/")[2])
    return f"{folder}/{place.name}" if folder else place.name


def _refused(exc: OSError, vw: VaultWriter, rel: str) -> bool:
    """Whether writing `rel` failed because this disk cannot hold its name."""
    folder = os.path.dirname(vw.abspath(rel))
    return fsprobe.name_refused(exc, vw.fs, rel.rpartition("/")[2], folder)


def checkout(url: str, dest: str, at: str | None) -> Report:
    """Export a snapshot into DEST with read access only: no device, no state, no writes."""
    report = Report("checkout")
    dest = os.path.abspath(dest)
    if os.path.exists(dest) and (not os.path.isdir(dest) or os.listdir(dest)):
        raise UsageError(f"{dest} exists and is not empty; check out into a new or empty folder")
    remote = open_repository(normalize_url(url))
    report.traffic = remote.traffic
    try:
        repo = remote.repo
        sid = resolve(repo, at, None)
        flat = flatten(repo.get_snapshot(sid).tree, repo.get_tree)
        os.makedirs(dest, exist_ok=True)
        vw = VaultWriter(dest, os.path.join(dest, ".vaultsync-trash-unused"))
        _write_all(repo, vw, flat, lambda k: spelling(k, {}, flat), report)
        report.snapshot = sid
    finally:
        remote.close()
    return report.finish()


@rejoining
def verify_remote(root: str, read_data: float) -> VerifyReport:
    """Check the repository on the remote itself: a fresh object cache, so nothing this
    vault keeps locally (trees, snapshots, the index) can stand in for a missing object."""
    with Session(root, "verify", write=False) as s:
        remote_only = Repository(s.store, s.repo.format, MemoryCache(), s.repo.transfers)
        try:
            return verify(remote_only, read_data)
        finally:
            remote_only.close()

