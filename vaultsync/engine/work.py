"""What a sync works on once it has merged: the base and local sides the report and the
safety stops read, the target, and the plan's inputs, cut to where disk and target
differ. Three ways to get there, the cheapest that holds:

- *own*: nothing unseen and the scan is the disk alone (`Session.local`): the merged
  tree is the scan's, nothing is written, the sides are what differs from the base;
- *lean*: the scan is the disk alone: everything from the merge's region, the scan
  looked up key by key (`scanned.Local`), no whole flat ever built;
- *whole*: injected entries (ignored or unread paths kept, phantoms, beliefs, second
  spellings): whole flats, as the rules for those are written."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vaultsync.engine.ignore import IgnoreRules
from vaultsync.engine.localview import disk_view, local_target
from vaultsync.engine.scan import ScanResult
from vaultsync.engine.scanned import Local
from vaultsync.engine.session import Session
from vaultsync.model import Entry, Flat, ObjectId
from vaultsync.reconcile.placement import parent_of
from vaultsync.reconcile.region import narrowed
from vaultsync.repository.repo import Repository

if TYPE_CHECKING:
    from vaultsync.engine.sync import Merged, Regional

DiskKeys = dict[str, tuple[int, int, int]]


@dataclass
class Work:
    base_flat: Flat  # the base (own, lean: where it differs from the disk or the target)
    local: Mapping[str, Entry]  # the scan's entries
    committed: Mapping[str, Entry]  # the merged tree (own, lean: looked up by key)
    target: Flat  # what the vault takes (own: nothing; lean: inside the region)
    base_files: int  # files in the base (safety stops)
    disk_empty: bool  # nothing at all in the vault (safety stops)
    disk: Flat  # the plan's inputs, cut to where disk and target differ (`narrowed`)
    want: Flat
    near_base: Flat
    on_disk: DiskKeys  # what the scan saw of the files the plan touches
    lean: bool = False

    @classmethod
    def of(cls, s: Session, scan: ScanResult, base: ObjectId | None,
           head: ObjectId | None, merged: Merged) -> Work:
        """`head`: the one unseen head when the run fast-forwards to it."""
        local = s.local
        reg = merged.regional
        if local is not None and merged.before is not None:  # own
            empty = not s.tree_loader(scan)(scan.root).entries
            return cls(merged.before, local, local, {}, _files(s, base), empty, {}, {}, {},
                       {}, lean=True)
        if local is not None:
            assert reg is not None
            base_flat = reg.view(base)
            target = reg.view(head) if head is not None else merged.inside
            disk, want, near = lean_plan(reg, local, target, base_flat, s.rules, scan)
            on_disk = {k: d for k in disk if (d := local.disk_key(k)) is not None}
            return cls(base_flat, local, merged.inside, target, _files(s, base),
                       not reg.local_entries(""), disk, want, near, on_disk, lean=True)
        base_flat = s.flat_of(base)
        target = s.flat_of(head) if head is not None else merged.flat
        disk, want, near = narrowed(disk_view(scan), local_target(target, s.rules, scan),
                                    base_flat)
        return cls(base_flat, scan.flat, merged.flat, target, files_in(base_flat),
                   not disk_view(scan), disk, want, near, scan.disk)

    def totals(self, repo: Repository, base: ObjectId | None, inside: Flat,
               ) -> tuple[int, int] | None:
        """The merged tree's file count and size: the base snapshot's, less the base
        side, plus the merged side (elsewhere the two trees are alike); None where the
        sides are whole (the commit counts the tree itself)."""
        if not self.lean:
            return None
        files, size = (0, 0)
        if base is not None:
            snap = repo.get_snapshot(base)
            files, size = snap.files, snap.size
        for flat, sign in ((self.base_flat, -1), (inside, 1)):
            for e in flat.values():
                if not e.is_dir:
                    files += sign
                    size += sign * e.size
        return files, size


def files_in(flat: Flat) -> int:
    return sum(1 for e in flat.values() if not e.is_dir)


def _files(s: Session, base: ObjectId | None) -> int:
    return s.repo.get_snapshot(base).files if base is not None else 0


def lean_plan(reg: Regional, local: Local, target: Flat, base_flat: Flat,
              rules: IgnoreRules, scan: ScanResult) -> tuple[Flat, Flat, Flat]:
    """`narrowed` for a lean run, from the region alone: the disk (the scan's own tree)
    and the target differ only inside it. Each folder that holds a difference is listed
    whole (its other entries are alike in disk, target and base), then `narrowed`."""
    disk = reg.region.restrict(local)
    want = local_target(target, rules, scan, found=local)
    base = dict(base_flat)
    differ = {k for k, e in want.items() if disk.get(k) is not e}
    differ.update(k for k in disk if k not in want)
    for folder in {parent_of(k) for k in differ}:
        for key in reg.children(folder):
            if key not in disk and key not in reg.region.keys:
                entry = local[key]
                disk[key] = want[key] = base[key] = entry
    d, w, b = narrowed(disk, want, base)
    return d, w, b
