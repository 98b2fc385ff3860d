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

from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from vaultsync.engine.commit import build_trees
from vaultsync.engine.localview import disk_view, local_target
from vaultsync.engine.materialize import materialize
from vaultsync.engine.merge import count_deletes, merge
from vaultsync.engine.plan import diff
from vaultsync.engine.renames import Move
from vaultsync.engine.report import Report
from vaultsync.engine.session import Changes, Session
from vaultsync.errors import SafetyStop
from vaultsync.model import Flat, ObjectId
from vaultsync.repository.repo import Repository


@dataclass
class Merged:
    flat: Flat
    moves: list[Move] = field(default_factory=list)
    conflicts: list[tuple[str, str]] = field(default_factory=list)
    local_deletes: int = 0


def merge_base(repo: Repository, a: AbstractSet[ObjectId],
               b: AbstractSet[ObjectId]) -> ObjectId | None:
    """The newest snapshot both histories share (None: unrelated histories)."""
    common = a & b
    if not common:
        return None
    return max(common, key=lambda sid: (repo.get_snapshot(sid).time_ns, sid))


def merge_all(s: Session, local: Flat, base: ObjectId | None,
              unseen: list[ObjectId]) -> Merged:
    """Fold every unseen head into the local tree, each merge against the newest common
    ancestor of what has been merged so far and that head."""
    repo = s.repo
    ancestry = repo.ancestors(base) if base else frozenset()
    folded = ancestry
    base_flat = s.flat_of(base)
    result = Merged(local)
    # nothing unseen: merge with base itself, which still finds local moves
    heads: list[ObjectId | None] = list(unseen) or [base]
    for i, head in enumerate(heads):
        head_ancestry = repo.ancestors(head) if head else frozenset()
        mb = merge_base(repo, folded, head_ancestry) if head else base
        res = merge(s.flat_of(mb), result.flat, s.flat_of(head), local_device=s.device)
        if i == 0:
            result.local_deletes = count_deletes(base_flat, local, res.local_moves)
        result.flat = res.merged
        result.moves += res.moves
        result.conflicts += [(c.path, c.copy) for c in res.conflicts]
        folded = folded | head_ancestry
    return result


def remote_flat(s: Session, unseen: list[ObjectId]) -> Flat:
    """The remote side alone: every unseen head folded together (one-way modes)."""
    repo = s.repo
    flat = s.flat_of(unseen[0])
    folded = repo.ancestors(unseen[0])
    for head in unseen[1:]:
        head_ancestry = repo.ancestors(head)
        mb = merge_base(repo, folded, head_ancestry)
        flat = merge(s.flat_of(mb), flat, s.flat_of(head), local_device=s.device).merged
        folded |= head_ancestry
    return flat


def check_safety(s: Session, local: Flat, base_flat: Flat, merged: Merged,
                 max_delete: float, force: bool) -> None:
    if force:
        return
    base_files = sum(1 for e in base_flat.values() if not e.is_dir)
    if base_files and not local:
        raise SafetyStop(
            f"the vault folder is empty but the last sync had {base_files} file(s); nothing "
            "was written. If you really deleted everything, run again with --force"
        )
    if base_files and merged.local_deletes * 100 > max_delete * base_files:
        raise SafetyStop(
            f"this sync would delete {merged.local_deletes} of {base_files} files "
            f"({merged.local_deletes * 100 // base_files}%, over --max-delete {max_delete:g}%); "
            "nothing was written. Check the vault, then use --max-delete or --force"
        )


def sync(root: str, *, dry_run: bool = False, max_delete: float | None = None,
         force: bool = False) -> Report:
    with Session(root, "sync", write=not dry_run) as s:
        report = s.report
        scan = s.scan()
        base = s.adopt_own_head(persist=not dry_run)
        unseen = s.unseen_heads(base)
        changes = s.local_changes(scan, base)
        report.uploaded = Changes.files(changes.added + changes.changed)
        if not unseen and not changes.all() and not scan.restore and not scan.respell:
            if not dry_run:
                s.save_rows(scan.rows)
            report.up_to_date, report.snapshot = True, base
            return report.finish()
        base_flat = s.flat_of(base)
        merged = merge_all(s, scan.flat, base, unseen)
        limit = max_delete if max_delete is not None else s.vault.config.options["max_delete"]
        check_safety(s, scan.flat, base_flat, merged, limit, force)
        report.conflicts = merged.conflicts
        fast_forward = (len(unseen) == 1 and not changes.all()
                        and (base is None or base in s.repo.ancestors(unseen[0])))
        target = s.flat_of(unseen[0]) if fast_forward else merged.flat
        if dry_run:
            plan = diff(disk_view(scan), local_target(target, s.rules), merged.moves)
            report.downloaded = [a.path for a in plan.adds + plan.updates]
            report.deleted = [a.path for a in plan.deletes]
            report.moved = [(a.src or "", a.path) for a in plan.moves]
            report.notices.append("dry run: nothing was written")
            return report.finish()
        new_base: ObjectId | None
        if fast_forward:
            new_base = unseen[0]
        elif not unseen and not changes.all():  # only paths to restore here
            new_base = base
        else:
            root_id, trees = build_trees(merged.flat, s.repo.hasher)
            parents = ((base,) if base else ()) + tuple(unseen)
            new_base, report.new_chunks, report.packs = s.commit(
                root_id, trees, scan, parents, flat=merged.flat)
        updates = materialize(s.repo, s.writer(), disk_view(scan),
                              local_target(target, s.rules), scan.disk, report, merged.moves,
                              base=base_flat, renames=scan.respell)
        s.finish_apply(scan, updates, new_base, target)
        report.snapshot = new_base
        return report.finish()
