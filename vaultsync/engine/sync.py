"""`vaultsync sync`: the two-way sync, step by step (design.md, "The sync").

1. lock, config, base            (Session)
2. scan                          (stat cache; rehash only what changed)
3. read heads; nothing unseen and nothing changed locally: stop
4. merge local with every unseen head, each against its common ancestor (pure)
5. safety stops; upload chunks and trees, index segment, snapshot, head (commit order)
6. apply the plan to the vault   (staged, verified, atomic; trash for what goes)
7. record the new base
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from vaultsync.chunking import Hasher
from vaultsync.engine.localview import read_beliefs
from vaultsync.engine.materialize import fit_to_disk, materialize
from vaultsync.engine.report import Report
from vaultsync.engine.scan import ScanResult
from vaultsync.engine.session import Changes, Session, rejoining
from vaultsync.engine.work import Work
from vaultsync.errors import SafetyStop
from vaultsync.model import Change, Entry, Flat, ObjectId, Tree, diff_trees, lookup, nfc
from vaultsync.reconcile.merge import MergeResult, count_deletes, merge
from vaultsync.reconcile.plan import diff
from vaultsync.reconcile.region import carry, open_up, region, sparse_trees
from vaultsync.reconcile.renames import LOCAL, Move, detect_moves

DRY_RUN_NOTICE = "dry run: nothing was written"


@dataclass
class Merged:
    whole: Callable[[], Flat]  # the merged tree, all of it (built when first asked for)
    moves: list[Move] = field(default_factory=list)
    conflicts: list[tuple[str, str]] = field(default_factory=list)
    local_deletes: int = 0
    # the merge ran on the region around what differs (`Regional`); `inside` is its
    # result there, `flat` the whole tree (the rest carried from the local tree)
    regional: Regional | None = None
    inside: Flat = field(default_factory=dict)
    hasher: Hasher | None = None
    _flat: Flat | None = None
    built: tuple[ObjectId, dict[ObjectId, bytes]] | None = None  # the tree as it is
    before: Flat | None = None  # `own_changes`: the base where the tree differs

    @property
    def flat(self) -> Flat:
        if self._flat is None:
            self._flat = self.whole()
        return self._flat

    def build(self) -> tuple[ObjectId, dict[ObjectId, bytes]]:
        """The merged tree's root and the trees a commit stores: only folders in or
        above the region are encoded, the rest are carried by id."""
        if self.built is not None:
            return self.built
        assert self.regional is not None and self.hasher is not None
        trees: dict[ObjectId, bytes] = {}  # the carried ones are the scan's (`commit`)
        return self.regional.build(self.inside, trees, self.hasher), trees


View = Callable[[ObjectId | None], Flat]


class Bases:
    """Merge bases from the snapshot graph (`lineage`), never from a clock.

    The base of two histories is their nearest common ancestor. After criss-cross merges
    there can be several; then they are merged among themselves, in id order, into one
    virtual base (as git's recursive merge does), so every device computes the same.
    `view` gives a snapshot's flat tree (default: the whole of it)."""

    def __init__(self, s: Session, view: View | None = None) -> None:
        self.s = s
        self.view = view or s.flat_of
        self.lineage = s.repo.lineage
        self._virtual: dict[tuple[ObjectId, ...], Flat] = {}
        self.results: list[MergeResult] = []  # every merge made, virtual bases' included

    def between(self, a: AbstractSet[ObjectId], b: AbstractSet[ObjectId]) -> Flat:
        return self.of(self.lineage.nearest_common(a, b))

    def of(self, nearest: tuple[ObjectId, ...]) -> Flat:
        if len(nearest) <= 1:
            return self.view(nearest[0] if nearest else None)
        if nearest not in self._virtual:
            flat, _ = self.fold(self.view(nearest[0]),
                                self.lineage.ancestors(nearest[0]), nearest[1:])
            self._virtual[nearest] = flat
        return self._virtual[nearest]

    def involved(self, history: frozenset[ObjectId], heads: Iterable[ObjectId],
                 ) -> set[ObjectId | None]:
        """Every snapshot whose tree `fold(..., history, heads)` reads: the heads and
        their merge bases, virtual bases' parts included (None: the empty tree)."""
        out: set[ObjectId | None] = set()
        for head in heads:
            head_history = self.lineage.ancestors(head)
            nearest = self.lineage.nearest_common(history, head_history)
            out.add(head)
            out.update(nearest or (None,))
            if len(nearest) > 1:
                out |= self.involved(self.lineage.ancestors(nearest[0]), nearest[1:])
            history = history | head_history
        return out

    def fold(self, flat: Flat, history: frozenset[ObjectId], heads: Iterable[ObjectId],
             beliefs: dict[str, Entry | None] | None = None,
             ) -> tuple[Flat, list[MergeResult]]:
        """Merge each head into `flat` (whose history is `history`) against the base of
        the two histories. `beliefs` correct the first merge's base where `flat` is a
        disk that never received a version its base names (see `local_base`)."""
        results = []
        for head in heads:
            head_history = self.lineage.ancestors(head)
            mb = local_base(self.between(history, head_history), beliefs or {})
            beliefs = None
            res = merge(mb, flat, self.view(head), local_device=self.s.device)
            results.append(res)
            self.results.append(res)
            flat = res.merged
            history = history | head_history
        return flat, results


def local_base(base_flat: Flat, beliefs: dict[str, Entry | None]) -> Flat:
    """The base as this disk knows it: where a version was merged but never written
    here (its path could not be read), the disk still holds what it held before."""
    if not beliefs:
        return base_flat
    out = dict(base_flat)
    for key, entry in beliefs.items():
        if entry is None:
            out.pop(key, None)
        else:
            out[key] = entry
    return out


class Regional:
    """Snapshots' trees seen only inside the region around what differs from the local
    tree (`reconcile.region`): what every tree holds alike is never flattened, merged
    or encoded, but carried from the local tree (folders by id).

    `local` is the flat of the tree `root` (its folders' entries name their trees);
    `load` reads a tree, the local ones included; `roots` maps each snapshot the merge
    reads to its root tree (None: the empty tree); `also`: keys to see anyway."""

    def __init__(self, root: ObjectId, local: Mapping[str, Entry],
                 load: Callable[[ObjectId], Tree],
                 roots: dict[ObjectId | None, ObjectId | None], also: Iterable[str] = (),
                 orphans: AbstractSet[str] = frozenset()) -> None:
        """`orphans`: keys of `local` that its tree cannot hold (below a file); each
        tree's entry there is looked up by path."""
        self.root, self.local, self._load = root, local, load
        self.orphans = orphans
        self.diffs: dict[ObjectId | None, dict[str, Entry | None]] = {}
        changed = set(also) | set(orphans)
        for sid, tree in roots.items():
            diff = self.diffs[sid] = {}
            for key, x, y in diff_trees(root, tree, load, folders=True):
                diff[key] = y
                if not (x and y and x.is_dir and y.is_dir and x.name == y.name):
                    changed.add(key)  # a folder whose contents alone differ: not itself
            for key in orphans:
                diff[key] = lookup(tree, key, load)
        self.region = region(changed, self.children, local)

    @classmethod
    def of(cls, s: Session, scan: ScanResult, sids: Iterable[ObjectId | None],
           also: Iterable[str] = ()) -> Regional:
        local = s.local if s.local is not None else scan.flat
        return cls(scan.root, local, s.tree_loader(scan),  # type: ignore[arg-type]
                   {sid: s.root_of(sid) for sid in sids}, also, s.orphans)

    def local_entries(self, folder: str) -> tuple[Entry, ...]:
        if not folder:
            return self._load(self.root).entries
        if folder in self.orphans:
            return ()  # not in the local tree: what is below it is listed by the diffs
        entry = self.local.get(folder)
        if entry is None or not entry.is_dir or entry.tree is None:
            return ()
        return self._load(entry.tree).entries

    def children(self, folder: str) -> list[str]:
        prefix = folder + "/" if folder else ""
        return [prefix + nfc(e.name) for e in self.local_entries(folder)]

    def view(self, sid: ObjectId | None) -> Flat:
        """The snapshot's flat tree inside the region."""
        diff, local, out = self.diffs[sid], self.local, {}
        for key in self.region.keys:
            if key in diff:
                entry = diff[key]
                if entry is not None:
                    out[key] = entry
            elif key in local:
                out[key] = local[key]
        return out

    def settle(self, attempt: Callable[[], list[MergeResult]]) -> list[MergeResult]:
        """Run `attempt` (every merge, on this region's views) until no merge puts
        anything below a folder it saw only as an entry; such folders are opened."""
        while True:
            results = attempt()
            strays = set().union(*(self.region.strays(r.merged) for r in results))
            if not strays:
                return results
            open_up(self.region, strays, self.local, self.children)

    def build(self, merged: Flat, trees: dict[ObjectId, bytes], hasher: Hasher,
              ) -> ObjectId:
        """The root of the merged tree; new trees go into `trees`. Only folders in or
        above the region are encoded, the rest are carried by id."""

        def encode(entries: list[Entry]) -> ObjectId:
            encoded = Tree.of(entries).encode()
            tid = hasher.id(encoded)
            trees[tid] = encoded
            return tid

        return sparse_trees(merged, self.region, self.local_entries, self.local, encode)


def merge_all(s: Session, scan: ScanResult, base: ObjectId | None,
              unseen: Sequence[ObjectId]) -> Merged:
    """Fold every unseen head into the local tree, each against the nearest common
    ancestor of what is merged so far and that head (heads in `lineage` order), on the
    region where the trees differ (`Regional`)."""
    history = s.repo.ancestors(base) if base else frozenset()
    beliefs = read_beliefs(scan, s.rules)
    sids = {base, *unseen} | Bases(s).involved(history, unseen)
    reg = Regional.of(s, scan, sids, also=beliefs)
    local: Flat = {}
    base_flat: Flat = {}
    flat: Flat = {}
    results: list[MergeResult] = []

    def attempt() -> list[MergeResult]:
        nonlocal local, base_flat, flat, results
        bases = Bases(s, reg.view)
        local, base_flat = reg.region.restrict(reg.local), reg.view(base)
        if unseen:
            flat, results = bases.fold(local, history, unseen, beliefs)
            return bases.results
        # nothing unseen: merge with base itself, which still finds local moves
        res = merge(local_base(base_flat, beliefs), local, base_flat, local_device=s.device)
        flat, results = res.merged, [res]
        return results

    reg.settle(attempt)
    inside = flat
    result = Merged(lambda: carry(inside, scan.flat, reg.region), regional=reg, inside=flat,
                    hasher=s.repo.hasher, local_deletes=local_deletes(base_flat, local))
    for res in results:
        result.moves += res.moves
        result.conflicts += [(c.path, c.copy) for c in res.conflicts]
    return result


def own_changes(scan: ScanResult, diff: Iterable[Change]) -> Merged:
    """With nothing unseen on a disk that is all the scan holds, the merged tree is the
    scan's own tree: no merge. `diff`: the base against the scan's tree, folders whose
    contents differ included (`Session.versus_disk`). `inside` holds what differs (the
    files that can be new to the repository; the base side is `before`), and the trees
    to store are those of the folders that differ."""
    before: Flat = {}
    after: Flat = {}
    trees = {scan.root: scan.trees[scan.root]}
    for key, old, new in diff:
        if old is not None:
            before[key] = old
        if new is not None:
            after[key] = new
            if new.is_dir and new.tree is not None:
                trees[new.tree] = scan.trees[new.tree]
    moves = list(detect_moves(before, after).as_moves(LOCAL))
    return Merged(lambda: scan.flat, moves=moves, inside=after, before=before,
                  local_deletes=count_deletes(before, after, moves),
                  built=(scan.root, trees))


def remote_flat(s: Session, unseen: Sequence[ObjectId]) -> Flat:
    """The remote side alone: every unseen head folded together (one-way modes)."""
    bases = Bases(s)
    flat, _ = bases.fold(s.flat_of(unseen[0]), s.repo.ancestors(unseen[0]), unseen[1:])
    return flat


def local_deletes(base_flat: Flat, local: Flat) -> int:
    """Base files this device's own changes delete, its moves excluded (--max-delete)."""
    return count_deletes(base_flat, local, detect_moves(base_flat, local).as_moves(LOCAL))


def sent(base_flat: Flat, local: Mapping[str, Entry], committed: Mapping[str, Entry],
         changes: Changes,
         moves: Iterable[Move]) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    """What this device's own changes did to the committed tree, for the report: files
    whose new content went up, files deleted for the other devices (not those a merge
    kept, nor moves) and files moved (renamed, content unchanged: nothing went up)."""
    moved: list[tuple[str, str]] = []
    for m in moves:
        if m.side != LOCAL:
            continue
        if not m.folder:
            moved.append((m.src, m.dst))
            continue
        for key, entry in base_flat.items():
            there = m.dst + key[len(m.src):]
            if not entry.is_dir and key.startswith(m.src + "/") and there in local:
                moved.append((key, there))
    sources, targets = {s for s, _ in moved}, dict((d, s) for s, d in moved)
    uploaded = [k for k in Changes.files(changes.added + changes.changed)
                if k not in targets or not local[k].same_content(base_flat.get(targets[k]))]
    deleted = [k for k in Changes.files(changes.deleted)
               if k not in sources and k not in committed]
    return uploaded, deleted, moved


def check_safety(base_files: int, disk_empty: bool, deletes: int, max_delete: float,
                 force: bool) -> None:
    """The safety stops of every command that commits this device's deletes
    (`base_files`: files in the base; `disk_empty`: nothing at all in the vault)."""
    if force:
        return
    if base_files and disk_empty:
        raise SafetyStop(
            f"the vault folder is empty but the last sync had {base_files} file(s); nothing "
            "was written. If you really deleted everything, run again with --force"
        )
    if base_files and deletes * 100 > max_delete * base_files:
        raise SafetyStop(
            f"this run would delete {deletes} of {base_files} files "
            f"({deletes * 100 / base_files:.3g}%, over --max-delete {max_delete:g}%); "
            "nothing was written. Check the vault, then use --max-delete or --force"
        )


@rejoining
def sync(root: str, *, dry_run: bool = False, max_delete: float | None = None,
         force: bool = False) -> Report:
    with Session(root, "sync", write=not dry_run) as s:
        report = s.report
        if dry_run:  # a sync would stop at a newer format: so does its dry run
            s.repo.format.check_writable()
        base = s.adopt_own_head(persist=not dry_run)
        scan = s.scan()
        unseen = s.unseen_heads(base)
        # one Merkle walk: the changes, and (folders whose contents differ included) what
        # a run with nothing to merge commits
        differs = list(s.versus_disk(scan, base, folders=True))
        changes = Changes.of(differs)
        if not unseen and not changes.all() and not scan.restore and not scan.respell:
            if not dry_run:
                s.save_rows(scan)
            report.up_to_date, report.snapshot = True, base
            return report.finish()
        own = s.local is not None and not unseen  # the scan's tree is the result
        merged = own_changes(scan, differs) if own else merge_all(s, scan, base, unseen)
        fast_forward = (len(unseen) == 1 and not changes.all()
                        and (base is None or base in s.repo.ancestors(unseen[0])))
        w = Work.of(s, scan, base, unseen[0] if fast_forward else None, merged)
        check_safety(w.base_files, w.disk_empty, merged.local_deletes,
                     s.max_delete(max_delete), force)
        report.conflicts = merged.conflicts
        report.uploaded, report.deleted_remotely, report.moved = sent(
            w.base_flat, w.local, w.committed, changes, merged.moves)
        disk, want, near_base = w.disk, w.want, w.near_base
        if dry_run:  # the plan materialize would carry out, phantoms included
            fitted = fit_to_disk(s.writer().fs, disk, want, near_base, merged.moves)
            said = {path for path, _ in report.skipped}
            report.skipped += [(k, why) for k, (_, why) in sorted(fitted.refused.items())
                               if k not in said]
            plan = diff(disk, fitted.flat, merged.moves)
            report.downloaded = [a.path for a in plan.adds + plan.updates]
            report.deleted = [a.path for a in plan.deletes]
            report.moved += [(a.src or "", a.path) for a in plan.moves]
            report.notices.append(DRY_RUN_NOTICE)
            return report.finish()
        new_base: ObjectId | None = base

        def publish() -> None:
            """Step 5, once every incoming file is staged here: a disk too full for them
            stops the run before anything is committed."""
            nonlocal new_base
            if fast_forward:
                new_base = unseen[0]
            elif unseen or changes.all():  # else: only paths to restore here
                root_id, trees = merged.build()
                parents = ((base,) if base else ()) + tuple(unseen)
                new_base, report.new_chunks, report.packs = s.commit(
                    root_id, trees, scan, parents, flat=lambda: merged.flat,
                    changed=merged.inside, totals=w.totals(s.repo, base, merged.inside))

        updates = materialize(s.repo, s.writer(), disk, want, w.on_disk, report,
                              merged.moves, base=near_base, renames=scan.respell,
                              before_install=publish)
        s.finish_apply(scan, updates, new_base, w.target, lean=s.local is not None)
        report.snapshot = new_base
        return report.finish()

