"""`vaultsync conflicts`: the conflict copies in the vault, with where both versions came
from. Read-only: nothing in the vault or on the remote is written.

A copy is found on disk by its name (`Note.conflict-20261122-143005-laptop.md`, see
`reconcile.conflicts`); the original is the name without the marker. Its history comes
from the snapshots this vault has synced (its base and the base's ancestors):

- the sync that kept the copy is the first snapshot that holds the copy's version at
  the copy's path; the original path in that snapshot holds the version that won;
- each version came from the first snapshot that holds its bytes, at the original path
  or at the copy's, with that snapshot's device and time; the device that wrote a
  version is the author its entry records.

A copy this vault has not synced yet (or whose history was pruned) still lists: what its
name says (the device and time of its version), and "unknown" for the rest.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from vaultsync.engine.history import all_snapshots, pruned_note
from vaultsync.engine.ignore import Folder, IgnoreRules
from vaultsync.engine.session import Session, rejoining
from vaultsync.model import STATE_DIR, Entry, ObjectId, Snapshot, Tree, lookup, nfc
from vaultsync.reconcile.conflicts import is_conflict_name, original_name

UNKNOWN = "unknown"
# the marker as `reconcile.conflicts.conflict_name` writes it: the losing version's mtime
# (UTC) and its author's device name, made filesystem-safe
_MARKER = re.compile(r"\.conflict-(\d{8})-(\d{6})-([A-Za-z0-9_-]+)")


@dataclass(frozen=True)
class Version:
    """One side of a conflict: who wrote it, when, and the first snapshot holding it."""

    device: str  # the device that wrote this version (UNKNOWN: not found)
    modified_ns: int | None = None  # the file's modification time
    size: int | None = None
    snapshot: ObjectId | None = None  # the first snapshot that holds these bytes
    synced_ns: int | None = None  # that snapshot's time

    def to_json(self) -> dict[str, object]:
        return {"device": self.device, "modified": iso(self.modified_ns), "size": self.size,
                "snapshot": self.snapshot, "synced": iso(self.synced_ns)}


@dataclass(frozen=True)
class ConflictCopy:
    path: str  # the original path (where the winning version is)
    copy: str  # the conflict copy's path
    kept_in: ObjectId | None  # the first snapshot holding the copy: the sync that kept it
    kept_by: str | None  # that snapshot's device
    kept_ns: int | None
    original: Version  # the version that kept the original path
    other: Version  # the version kept as the copy

    def to_json(self) -> dict[str, object]:
        return {"path": self.path, "copy": self.copy,
                "kept": {"snapshot": self.kept_in, "device": self.kept_by,
                         "time": iso(self.kept_ns)},
                "original": self.original.to_json(), "other": self.other.to_json()}


def iso(ns: int | None) -> str | None:
    if ns is None:
        return None
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def find_copies(root: str, rules: IgnoreRules) -> list[tuple[str, str]]:
    """(key, path on disk relative to `root`) of every conflict copy in the vault, sorted
    by key: regular files whose name carries the marker, outside ignored folders and the
    state folder; symbolic links are not followed."""
    found: list[tuple[str, str]] = []

    def walk(folder: str, key: str, view: Folder) -> None:
        try:
            with os.scandir(os.path.join(root, folder) if folder else root) as it:
                items = sorted(it, key=lambda d: d.name)
        except OSError:
            return  # unreadable: a sync reports it; this listing shows what it can read
        for item in items:
            name = nfc(item.name)
            if not key and name == STATE_DIR:
                continue
            rel = f"{folder}/{item.name}" if folder else item.name
            child = f"{key}/{name}" if key else name
            try:
                is_dir = item.is_dir(follow_symlinks=False)
                is_file = item.is_file(follow_symlinks=False)
            except OSError:
                continue
            if view.ignored(name, is_dir):
                continue
            if is_dir:
                walk(rel, child, view.child(name))
            elif is_file and is_conflict_name(name):
                found.append((child, rel))

    walk("", "", rules.folder(""))
    return sorted(found)


@rejoining
def conflicts(root: str) -> tuple[list[ConflictCopy], str | None]:
    """Every conflict copy in the vault, with both versions' devices and times; and a
    note when prune forgot older history."""
    with Session(root, "conflicts", write=False) as s:
        copies = find_copies(s.vault.root, IgnoreRules.load(s.vault.root))
        if not copies:
            return [], None
        snaps = all_snapshots(s.repo)
        base = s.base
        mine = s.repo.ancestors(base) if base is not None else frozenset()
        history = [(sid, snap) for sid, snap in reversed(snaps) if sid in mine]  # oldest 1st
        trees: dict[ObjectId, Tree] = {}

        def get_tree(tid: ObjectId) -> Tree:
            tree = trees.get(tid)
            if tree is None:
                tree = trees[tid] = s.repo.get_tree(tid)
            return tree

        base_tree = s.repo.get_snapshot(base).tree if base is not None else None
        out = [_describe(key, base_tree, history, get_tree) for key, _rel in copies]
        return out, pruned_note(s.repo, snaps)


def _describe(copy: str, base_tree: ObjectId | None,
              history: list[tuple[ObjectId, Snapshot]],
              get_tree: Callable[[ObjectId], Tree]) -> ConflictCopy:
    folder, _, name = copy.rpartition("/")
    path = f"{folder}/{original_name(name)}" if folder else original_name(name)

    def at(tree: ObjectId | None, key: str) -> Entry | None:
        entry = lookup(tree, key, get_tree) if tree is not None else None
        return entry if entry is not None and not entry.is_dir else None

    def first_holding(entry: Entry, upto: int) -> tuple[ObjectId, Snapshot] | None:
        for sid, snap in history[:upto]:
            for key in (path, copy):
                there = at(snap.tree, key)
                if there is not None and there.same_content(entry):
                    return sid, snap
        return None

    def version(entry: Entry | None, upto: int) -> Version:
        if entry is None:
            return Version(UNKNOWN)
        origin = first_holding(entry, upto)
        return Version(entry.author or UNKNOWN, entry.mtime_ns, entry.size,
                       origin[0] if origin else None, origin[1].time_ns if origin else None)

    synced = at(base_tree, copy)
    kept = None
    if synced is not None:
        kept = next((i for i, (_sid, snap) in enumerate(history)
                     if (e := at(snap.tree, copy)) is not None and e.same_content(synced)),
                    None)
    if kept is None:  # not synced yet, or its history is gone: what the name says
        return ConflictCopy(path, copy, None, None, None,
                            version(at(base_tree, path), len(history)), _from_name(name))
    sid, snap = history[kept]
    return ConflictCopy(path, copy, sid, snap.device_name, snap.time_ns,
                        version(at(snap.tree, path), kept + 1), version(synced, kept + 1))


def _from_name(name: str) -> Version:
    """The copy's version as its name tells it: its author's device, its mtime (UTC, to
    the second); no snapshot."""
    match = _MARKER.search(name)
    if match is None:
        return Version(UNKNOWN)
    try:
        when = datetime.strptime(match.group(1) + match.group(2), "%Y%m%d%H%M%S")
    except ValueError:
        return Version(match.group(3))
    return Version(match.group(3), int(when.replace(tzinfo=UTC).timestamp()) * 10**9)
