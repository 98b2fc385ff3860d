"""Prune: forget snapshots by a retention policy and delete what nothing kept needs, in
two phases, with no lock (design.md, "Pruning"; Duplicacy's fossil collection is the
anchor).

Phase 1 (`plan`, then a "pending" record): which snapshots go (the policy's choice,
minus every head and every merge base the heads still need), and which packs (no live
blob, or mostly dead ones whose live blobs are copied out, or packs no index names: an
upload that never committed; and small packs, once there are several, to be merged).
Nothing is deleted. From then on every run that reads the records treats those packs as
gone for new snapshots and never builds on those snapshots (`Repository.has_blob`,
`Repository.buildable`, `engine/transfer.upload` and the check just before a commit in
`engine/commit.py`).

Phase 2 (`collect`, for records older than the grace): what is live is computed again
from every snapshot that is on the remote now (a sync that committed in the meantime
is counted, whatever it reused); live blobs that only named packs hold are copied
into new packs; one index segment naming every blob of every pack that stays replaces
all earlier segments; a "forgotten" record lists the deleted snapshots that kept ones
still name as parents, with grafts (their nearest kept ancestors); then segments,
packs, snapshots and records are deleted, in that order. A run killed anywhere leaves
a valid repository, and the next prune finishes the work.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from vaultsync.errors import (
    ConcurrentPrune,
    IntegrityError,
    MarkerDamaged,
    RemoteUnreachable,
)
from vaultsync.model import ObjectId, is_object_id
from vaultsync.repository.format import CONFIG_NAME
from vaultsync.repository.index import encode_segment
from vaultsync.repository.packs import BlobRef, pack_name
from vaultsync.repository.records import (
    FORGOTTEN,
    MARKER,
    PENDING,
    PREFIX,
    PruneState,
    Record,
    encode_marker,
    read_record,
)
from vaultsync.repository.repo import Repository
from vaultsync.repository.retention import NS, Policy, keep

FEATURE = "prune"  # a repository a prune wrote: clients that ignore records must not write
REPACK_BELOW = 0.5  # a pack with less than this share of live bytes is copied out
SMALL_PACK = 0.25  # a pack under this share of the pack size is small ...
MERGE_SMALL_AT = 4  # ... and this many small packs are merged into full ones
TEMP_FOLDERS = ("packs/", "index/", "snapshots/", "heads/", PREFIX)


@dataclass
class PruneReport:
    snapshots: int | None = None  # on the remote when the prune began (its first listing)
    kept: dict[ObjectId, str] = field(default_factory=dict)  # id -> why
    forgotten: list[ObjectId] = field(default_factory=list)  # named by this run's record
    deleted_snapshots: list[ObjectId] = field(default_factory=list)
    deleted_packs: int = 0
    deleted_segments: int = 0
    repacked_blobs: int = 0
    repacked_bytes: int = 0
    freed_bytes: int = 0  # pack bytes deleted, minus what was copied out
    planned_bytes: int = 0  # what this run's record frees once its grace has passed
    temps_removed: int = 0
    pending: list[tuple[ObjectId, int]] = field(default_factory=list)  # (record, due ns)
    record: ObjectId | None = None
    notices: list[str] = field(default_factory=list)


class Pruner:
    def __init__(self, repo: Repository, policy: Policy, grace_s: int, *, device: str,
                 own_base: ObjectId | None = None, dry_run: bool = False,
                 now_ns: Callable[[], int] | None = None) -> None:
        self.repo = repo
        self.policy = policy
        self.grace_ns = grace_s * NS
        self.device = device
        self.own_base = own_base
        self.dry_run = dry_run
        self.now_ns = now_ns or (lambda: time.time_ns())  # the clock at call time
        self.report = PruneReport()

    # ---- the run -------------------------------------------------------------------
    def run(self) -> PruneReport:
        try:
            self.repo.refresh_prune()
        except MarkerDamaged:
            self._rebuild_marker()
        self._adopt_orphans()
        state = self.repo.prune_state
        now = self.now_ns()
        # due: older than the grace, less 1% (a daily cron run with --grace 24h collects
        # the record of the day before, though it runs a few seconds earlier)
        due = [r for r in state.pending if now - r.time_ns >= self.grace_ns * 0.99]
        if due:
            self.collect(due)
        record = self.plan()
        if record is not None and self.dry_run and self.grace_ns == 0:
            self.collect([record])  # what both phases would do now (writes nothing)
        elif record is not None and not self.dry_run:
            self._mark_repository()
            self.repo.store.put(f"{PREFIX}{record.id}", record.encode())
            self._publish(self.repo.prune_state.ids | {record.id})
            self.report.record = record.id
            if self.grace_ns == 0:
                self.collect([record])
        self._remove_temps()
        self.report.pending = [(r.id, r.time_ns + self.grace_ns)
                               for r in self.repo.prune_state.pending]
        return self.report

    def _publish(self, ids: Iterable[ObjectId]) -> None:
        """Name the records in force in the marker (then every run honours them)."""
        state = self.repo.prune_state
        if self.repo.store.stat(CONFIG_NAME) is None:
            raise RemoteUnreachable(f"{self.repo.store.url} no longer holds the repository "
                                    "(unmounted?); prune stopped")
        now = self.repo._load_records(fresh=True)
        if now.stamp != state.stamp:
            raise ConcurrentPrune(
                "another prune changed the repository's prune records while this one ran "
                f"({MARKER}); this one stopped before deleting anything more: run it again")
        self.repo.store.put(MARKER, encode_marker(ids, state.generation + 1))
        self.repo.refresh_prune()

    def _orphans(self) -> list[Record]:
        """Records on the remote that the marker does not name."""
        repo, published = self.repo, self.repo.prune_state.ids
        out = []
        for info in repo.store.list(PREFIX):
            rid = info.name[len(PREFIX):]
            if is_object_id(rid) and rid not in published:
                try:
                    out.append(read_record(rid, repo.store.get, repo.hasher))
                except IntegrityError:  # not a record vaultsync wrote: left alone
                    continue
        return out

    def _adopt_orphans(self) -> None:
        """Records the marker does not name. A forgotten one (the marker was lost or
        replaced) names history that is gone: it is published again. A pending one (a
        prune killed before publishing it) was never honoured, so it is never
        collected: it goes once it is an hour old (a younger one may belong to a prune
        running now, about to publish it)."""
        if self.dry_run:
            return
        orphans = self._orphans()
        forgotten = {r.id for r in orphans if r.kind == FORGOTTEN}
        if forgotten:
            self._publish(self.repo.prune_state.ids | forgotten)
        for r in orphans:
            if r.kind == PENDING and self.now_ns() - r.time_ns > 3600 * NS:
                self.repo.store.delete(f"{PREFIX}{r.id}")

    def _rebuild_marker(self) -> None:
        """The marker cannot be read: write it again naming every forgotten record on
        the remote (pending ones were honoured by nobody who could not read it: they are
        orphans now)."""
        if self.dry_run:
            raise MarkerDamaged(f"{MARKER} is malformed; run 'vaultsync prune' (without "
                                "--dry-run) to rebuild it")
        self.repo._prune = PruneState()
        forgotten = [r.id for r in self._orphans() if r.kind == FORGOTTEN]
        self.repo.store.put(MARKER, encode_marker(forgotten, 1))
        self.repo.refresh_prune()
        self.report.notices.append(f"{MARKER} was malformed: rebuilt from the records on "
                                   "the remote")

    def _mark_repository(self) -> None:
        """List the feature in vaultsync.json once: a client that does not read the
        records (an older vaultsync) then refuses to write, rather than reusing a blob
        a prune is about to delete."""
        fmt = self.repo.format
        if FEATURE in fmt.mandatory:
            return
        new = replace(fmt, mandatory=tuple(sorted({*fmt.mandatory, FEATURE})))
        self.repo.store.put(CONFIG_NAME, new.encode())
        self.repo.format = new

    # ---- what the graph needs --------------------------------------------------------
    def needed(self, heads: Iterable[ObjectId], listed: set[ObjectId]) -> dict[ObjectId, str]:
        """Heads, this vault's own base, and every merge base a sync of the current heads
        computes: for each head as a device's base, the nearest common ancestors of its
        history with each other tip in fold order, and, where there are several, the
        bases of the virtual base they fold into."""
        lineage = self.repo.lineage
        out: dict[ObjectId, str] = {h: "head" for h in heads}
        if self.own_base in listed:
            out.setdefault(self.own_base, "this vault's base")
        tips = lineage.tips(out)
        work: list[tuple[ObjectId, ...]] = []
        for start in tips:
            work += self._fold_bases(start, tips)
        done: set[tuple[ObjectId, ...]] = set()
        while work:
            nearest = work.pop()
            if nearest in done:
                continue
            done.add(nearest)
            for sid in nearest:
                out.setdefault(sid, "merge base")
            if len(nearest) > 1:  # the virtual base: nearest[0] folded with the rest
                work += self._fold_bases(nearest[0], nearest[1:])
        return out

    def _fold_bases(self, start: ObjectId,
                    others: Iterable[ObjectId]) -> list[tuple[ObjectId, ...]]:
        """The merge bases of folding `others`, in order, into `start` (as
        `engine.sync.Bases.fold` does: each against the history merged so far); an
        other that history already contains adds nothing."""
        lineage = self.repo.lineage
        history = lineage.ancestors(start)
        out = []
        for sid in others:
            if sid in history:
                continue
            other = lineage.ancestors(sid)
            out.append(lineage.nearest_common(history, other))
            history = history | other
        return out

    def _listed_snapshots(self) -> set[ObjectId]:
        """The snapshots on the remote now; the first listing of the run is the count
        the report gives."""
        names = (i.name.split("/", 1)[1] for i in self.repo.store.list("snapshots/"))
        listed = {n for n in names if is_object_id(n)}
        if self.report.snapshots is None:
            self.report.snapshots = len(listed)
        return listed

    # ---- phase 1 -------------------------------------------------------------------
    def plan(self) -> Record | None:
        repo = self.repo
        heads = repo.read_heads()
        listed = self._listed_snapshots()
        repo.index  # noqa: B018 (every segment, for the pack accounting)
        named = repo.prune_state.named_snapshots
        times = {sid: repo.get_snapshot(sid).time_ns for sid in sorted(listed - named)}
        kept = dict(self.needed(heads.values(), listed))
        if self.policy.empty:
            self.report.notices.append("no retention policy (--keep-* or [prune] in "
                                       "config.toml): every snapshot is kept; only data "
                                       "no snapshot needs is removed")
            kept.update({sid: "no policy" for sid in times if sid not in kept})
        else:
            for sid, why in keep(times.items(), self.policy, self.now_ns()).items():
                kept.setdefault(sid, why)
        self.report.kept = {s: w for s, w in kept.items() if s in listed}
        forget = set(times) - set(kept)
        self.report.forgotten = sorted(forget)
        live = self.live_blobs(listed - named - forget)
        packs, planned = self._dead_packs(live, repo.prune_state.condemned_packs)
        self.report.planned_bytes = planned
        if not forget and not packs:
            return None
        return self._named(Record(PENDING, self.now_ns(), self.device, frozenset(forget),
                                  frozenset(packs)))

    def _named(self, record: Record) -> Record:
        return replace(record, id=self.repo.hasher.id(record.encode()))

    def _dead_packs(self, live: set[ObjectId],
                    skip: frozenset[ObjectId]) -> tuple[set[ObjectId], int]:
        """Packs to name: no live blob, too few live bytes, or in no index; and the
        bytes deleting them frees (their size minus the live bytes copied out)."""
        sizes = self._pack_sizes()
        live_bytes: dict[ObjectId, int] = defaultdict(int)
        dead_bytes: dict[ObjectId, int] = defaultdict(int)
        for ref in self.repo.cache.index_refs():
            if ref.id in live:
                live_bytes[ref.pack] += ref.length
            else:
                dead_bytes[ref.pack] += ref.length
        out: set[ObjectId] = set()
        frees = 0
        for pack, size in sizes.items():
            if pack in skip:
                continue
            used, unused = live_bytes.get(pack, 0), dead_bytes.get(pack, 0)
            indexed = used or unused
            # blob bytes only: a pack of a few tiny live blobs is mostly trailer, and
            # copying them out would write the very same pack again
            if not indexed or unused > (used + unused) * REPACK_BELOW:
                out.add(pack)
                frees += size - used
        # each sync of a few notes leaves a small pack: once there are several, their
        # live blobs are copied into full-size packs (fewer objects, fewer requests for
        # a clone); the merged pack is small again only while the data is
        small = [p for p, size in sizes.items() if p not in skip and p not in out
                 and size < self.repo.format.pack_size * SMALL_PACK]
        if len(small) >= MERGE_SMALL_AT:
            out.update(small)
            frees += sum(sizes[p] - live_bytes.get(p, 0) for p in small)
        return out, frees

    def _pack_sizes(self) -> dict[ObjectId, int]:
        out = {}
        for info in self.repo.store.list("packs/"):
            parts = info.name.split("/")
            if len(parts) == 3 and is_object_id(parts[2]) and parts[1] == parts[2][:2]:
                out[parts[2]] = info.size
        return out

    def live_blobs(self, snapshots: Iterable[ObjectId]) -> set[ObjectId]:
        """Every tree and chunk the snapshots name; shared subtrees are read once, and
        the trees of one level are fetched together (coalesced reads)."""
        repo = self.repo
        trees: set[ObjectId] = set()
        chunks: set[ObjectId] = set()
        level = {repo.get_snapshot(sid).tree for sid in snapshots}
        while level:
            level -= trees
            trees |= level
            missing = [t for t in sorted(level) if repo.cache.get_object(t) is None]
            for tid, raw in repo.read_blobs(missing):
                repo.cache.put_object(tid, raw)
            nxt: set[ObjectId] = set()
            for tid in level:
                for entry in repo.get_tree(tid).entries:
                    if entry.is_dir:
                        if entry.tree is not None:
                            nxt.add(entry.tree)
                    else:
                        chunks.update(entry.chunks)
            level = nxt
        return trees | chunks

    # ---- phase 2 -------------------------------------------------------------------
    def collect(self, records: list[Record]) -> None:
        repo, store = self.repo, self.repo.store
        # the order matters: snapshots, then segments, then the index. Each snapshot's
        # segments were written before it (commit order), so the index read below names
        # every blob of every listed snapshot; and every segment deleted below is one
        # whose references are read (and kept) below
        heads = repo.read_heads()
        listed = self._listed_snapshots()
        segments = [i.name for i in store.list("index/")]
        repo.reload_index()
        repo.index  # noqa: B018 (loads every segment listed now)
        needed = self.needed(heads.values(), listed)
        doomed_snaps = set().union(*(r.snapshots for r in records)) & listed
        doomed_snaps -= set(needed)
        remaining = listed - doomed_snaps
        live = self.live_blobs(remaining)
        sizes = self._pack_sizes()
        doomed_packs = set().union(*(r.packs for r in records)) & set(sizes)
        refs_of: dict[ObjectId, list[BlobRef]] = defaultdict(list)
        for ref in repo.cache.index_refs():
            refs_of[ref.id].append(ref)
        writer = repo.writer()
        copied = 0
        for bid in sorted(live):
            refs = refs_of.get(bid, [])
            if any(r.pack not in doomed_packs for r in refs):
                continue
            if not refs:
                raise IntegrityError(
                    f"blob {bid[:12]} that a kept snapshot needs is in no index; prune "
                    "deleted nothing (run 'vaultsync verify')")
            if not self.dry_run:
                writer.add(bid, refs[0].type, repo.read_blob(bid), again=True)
            self.report.repacked_blobs += 1
            copied += refs[0].length
        if not self.dry_run:
            writer.flush()
            writer.wait()
            # a copy can be the very pack it came from (same blobs, same order, same id)
            doomed_packs -= {r.pack for r in writer.refs}
        self.report.repacked_bytes += copied
        self.report.freed_bytes += max(0, sum(sizes[p] for p in doomed_packs) - copied)
        self.report.deleted_packs += len(doomed_packs)
        self.report.deleted_snapshots += sorted(doomed_snaps)
        self.report.deleted_segments += len(segments)
        if self.dry_run:
            return
        kept_refs = [r for refs in refs_of.values() for r in refs
                     if r.pack not in doomed_packs] + writer.refs
        new_segment = None
        if kept_refs:
            stored = encode_segment(_distinct(kept_refs))
            new_segment = f"index/{repo.hasher.id(stored)}"
            store.put(new_segment, stored)
        state = repo.prune_state
        dangling = {p for sid in remaining for p in repo.get_snapshot(sid).parents
                    if p not in remaining}
        forgotten = self._named(Record(
            FORGOTTEN, self.now_ns(), self.device,
            frozenset(dangling & (state.forgotten | doomed_snaps)),
            grafts=self._grafts(remaining)))
        if forgotten.snapshots or forgotten.grafts:  # published before anything goes
            store.put(f"{PREFIX}{forgotten.id}", forgotten.encode())
            self._publish(state.ids | {forgotten.id})
        self._delete(n for n in segments if n != new_segment)
        self._delete(pack_name(p) for p in sorted(doomed_packs))
        self._delete(f"snapshots/{s}" for s in sorted(doomed_snaps))
        done = {r.id for r in records} | {r.id for r in state.forgotten_records}
        done.discard(forgotten.id)
        keep = (repo.prune_state.ids - done) | (
            {forgotten.id} if forgotten.snapshots or forgotten.grafts else set())
        self._publish(keep)
        self._delete(f"{PREFIX}{rid}" for rid in sorted(done))
        repo.reload_index()

    def _grafts(self, remaining: set[ObjectId]
                ) -> tuple[tuple[ObjectId, tuple[ObjectId, ...]], ...]:
        """For each snapshot that stays but names a parent that goes (or went): its
        nearest ancestors that stay, found through the history as it is now (before
        anything is deleted), so containment among kept snapshots survives."""
        repo, lineage = self.repo, self.repo.lineage
        out = []
        for sid in sorted(remaining):
            if set(repo.get_snapshot(sid).parents) <= remaining:
                continue
            out.append((sid, lineage.nearest(lineage.parents(sid),
                                             lambda cur: cur in remaining)))
        return tuple(out)

    def _delete(self, names: Iterable[str]) -> None:
        for name in names:
            self.repo.store.delete(name)

    def _remove_temps(self) -> None:
        store = self.repo.store
        for folder in TEMP_FOLDERS:
            for name in store.stale_temporaries(folder, self.grace_ns / NS):
                if not self.dry_run:
                    store.remove_temporary(name)
                self.report.temps_removed += 1


def _distinct(refs: list[BlobRef]) -> list[BlobRef]:
    """One reference per (blob, pack)."""
    return list({(r.id, r.pack): r for r in refs}.values())
