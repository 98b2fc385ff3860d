"""init, clone, push, pull and status: the one-way paths.

push is "local wins" and pull is "remote wins", but neither drops a version the other
side has not seen: the losing side's changes since base are kept as conflict copies
(see `overlay`).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field

from vaultsync.engine import localview
from vaultsync.engine.commit import build_trees
from vaultsync.engine.config import default_device_name
from vaultsync.engine.localview import disk_view, local_target
from vaultsync.engine.materialize import materialize
from vaultsync.engine.remote import open_repository
from vaultsync.engine.report import Report
from vaultsync.engine.scan import ScanResult
from vaultsync.engine.session import Session, rejoining
from vaultsync.engine.sync import (
    DRY_RUN_NOTICE,
    Bases,
    check_safety,
    local_base,
    local_deletes,
    remote_flat,
    sent,
    sync,
)
from vaultsync.engine.treememo import memo_of
from vaultsync.engine.vault import Vault
from vaultsync.engine.work import files_in
from vaultsync.errors import SafetyStop, UsageError
from vaultsync.model import STATE_DIR, Change, ObjectId
from vaultsync.reconcile.merge import MergeResult
from vaultsync.reconcile.overlay import overlay
from vaultsync.reconcile.renames import LOCAL, detect_moves
from vaultsync.store.url import display_url, normalize_url


def init(root: str, remote: str | None, device_name: str | None) -> Report:
    """Make `root` a vault; on a vault without a remote, `--remote` sets one."""
    report = Report("init")
    root = os.path.abspath(root)
    existing = None
    if os.path.isfile(os.path.join(root, STATE_DIR, "config.toml")):
        existing = Vault.find(root)
        if existing.config.remote or not remote:
            where = f" (remote {display_url(existing.config.remote)})" \
                if existing.config.remote else ""
            raise UsageError(f"{root} is already a vault{where}")
    if not os.path.isdir(root):
        raise UsageError(f"{root} does not exist")
    url = ""
    if remote:
        url = normalize_url(remote)
        opened = open_repository(url, create=True, before=Vault(root).check_remote_outside)
        opened.close()
        report.notices.append(f"created a new repository at {display_url(url)}" if opened.created
                              else f"joined the existing repository at {display_url(url)}")
    if existing is not None:
        existing.save_config(existing.config.with_remote(url))
        report.notices.append(f"remote set for {root}")
        return report.finish()
    vault = Vault.create(root, _device_name(device_name), url)
    report.notices.append(f"device {vault.config.device_name} ({vault.config.device_id[:8]})")
    return report.finish()


def _device_name(name: str | None) -> str:
    name = (name or default_device_name()).strip()
    if not name or len(name) > 64 or any(c in name for c in "/\\\x00\n"):
        raise UsageError(f"device name {name!r} must be 1-64 characters, without / or \\")
    return name


def clone(url: str, dest: str, device_name: str | None) -> Report:
    """A new device: a vault in DEST (new or empty) that takes the remote's state. A
    clone that was interrupted (DEST is a vault of this URL that never finished its first
    pull) is resumed by running it again."""
    dest = os.path.abspath(dest)
    url = normalize_url(url)
    if os.path.exists(dest) and (not os.path.isdir(dest) or os.listdir(dest)):
        state = _earlier_clone(dest, url)
        if state == "unfinished":
            report = pull(dest)
            report.command = "clone"
            report.notices.insert(0, f"resumed the interrupted clone into {dest}")
            return report
        if state == "finished":
            raise UsageError(f"{dest} is already a vault of {display_url(url)}; sync it with "
                             f"'vaultsync -C {dest} sync'")
        if state != "empty":
            raise UsageError(f"{dest} exists and is not empty; clone into a new or empty "
                             "folder")
    # fail before creating anything locally
    open_repository(url, before=Vault(dest).check_remote_outside).close()
    created = not os.path.exists(dest)
    os.makedirs(dest, exist_ok=True)
    try:
        Vault.create(dest, _device_name(device_name), url)
    except BaseException:
        if created:
            shutil.rmtree(dest, ignore_errors=True)
        raise
    report = pull(dest)
    report.command = "clone"
    return report


def _earlier_clone(dest: str, url: str) -> str:
    """What an earlier clone of `url` left in `dest`: "unfinished" (a vault of `url` that
    never finished its first pull), "finished", "empty" (killed before its config was
    written: only an empty state folder), or "" (something else)."""
    if os.listdir(dest) == [STATE_DIR] and not os.path.exists(
            os.path.join(dest, STATE_DIR, "config.toml")):
        return "empty"
    if not os.path.isfile(os.path.join(dest, STATE_DIR, "config.toml")):
        return ""
    vault = Vault.find(dest)
    try:
        if vault.config.remote != url:
            return ""
        return "unfinished" if vault.state.base is None else "finished"
    finally:
        vault.close()


@rejoining
def push(root: str, *, max_delete: float | None = None, force: bool = False) -> Report:
    """The remote takes local state; local files are never touched. Versions other
    devices pushed that this vault has not seen stay in the repository as conflict
    copies. Two snapshots: local state (this vault's new base), then that state plus the
    kept versions, merging the other heads (this device's head); the next sync or pull
    brings the copies down. The safety stops are sync's: a push of an emptied or mostly
    deleted vault stops unless forced."""
    with Session(root, "push", write=True) as s:
        base = s.adopt_own_head()
        scan = s.scan()
        unseen = s.unseen_heads(base)
        changes = s.local_changes(scan, base)
        if not unseen and not changes.all() and base is not None:
            return _up_to_date(s, scan, base)
        base_flat = s.flat_of(base)
        check_safety(files_in(base_flat), not disk_view(scan),
                     local_deletes(base_flat, scan.flat),
                     s.max_delete(max_delete), force)
        local_sid = base
        if changes.all() or base is None:
            local_sid, s.report.new_chunks, s.report.packs = s.commit(
                scan.root, scan.trees, scan, (base,) if base else ())
        snapshot = local_sid
        committed = scan.flat
        # versions this disk never received count as unseen: base's, where a path could
        # not be read when they arrived (localview's beliefs)
        pending = localview.pending(scan, s.rules)
        if unseen or pending:
            remote = remote_flat(s, unseen) if unseen else base_flat
            beliefs = localview.read_beliefs(scan, s.rules)
            # a path this run could not read is no local state to push: the remote's
            # version stands there (the base's, injected by the scan, would overwrite
            # what another device wrote since, as a sync never does)
            over = overlay(localview.remote_where_frozen(scan, remote), remote,
                           local_base(base_flat, beliefs))
            if unseen or over.copies:
                root_id, trees = build_trees(over.flat, s.repo.hasher)
                parents = ((local_sid,) if local_sid else ()) + tuple(unseen)
                snapshot, chunks, packs = s.commit(root_id, trees, scan, parents,
                                                   flat=over.flat)
                s.report.new_chunks += chunks
                s.report.packs += packs
                s.report.conflicts = list(over.copies)
                committed = over.flat
        s.report.uploaded, s.report.deleted_remotely, s.report.moved = sent(
            base_flat, scan.flat, committed, changes,
            detect_moves(base_flat, scan.flat).as_moves(LOCAL))
        s.save_rows(scan)
        with s.vault.state.transaction():
            s.vault.state.set_meta("base", local_sid)
            localview.remember_beliefs(s.vault.state, scan, scan.flat, s.rules)
        s.report.snapshot = snapshot
        return s.report.finish()


@rejoining
def pull(root: str) -> Report:
    """Local takes remote state; the remote is never written. Local versions the remote
    does not have are kept beside it as conflict copies (or at their own path when it
    is free), to be pushed by a later sync."""
    with Session(root, "pull", write=False, keeps_state=True) as s:
        base = s.adopt_own_head()
        scan = s.scan()
        unseen = s.unseen_heads(base)
        pending = localview.pending(scan, s.rules)
        if not unseen and not pending:
            return _up_to_date(s, scan, base)
        base_flat = s.flat_of(base)
        # the remote side is every head, this device's own (its base) included: a head
        # that diverged from the base (another device committed beside it, unaware of
        # it) is merged with it, so what only this device's head holds is kept too
        remote, merged = base_flat, list[MergeResult]()
        if unseen and base is None:
            remote = remote_flat(s, unseen)
        elif base is not None and unseen:
            remote, merged = Bases(s).fold(base_flat, s.repo.ancestors(base), unseen)
        beliefs = localview.read_beliefs(scan, s.rules)
        over = overlay(remote, scan.flat, local_base(base_flat, beliefs))
        updates = materialize(s.repo, s.writer(), disk_view(scan),
                              local_target(over.flat, s.rules, scan), scan.disk, s.report,
                              base=base_flat, renames=scan.respell)
        s.report.conflicts += [(c.path, c.copy) for res in merged for c in res.conflicts]
        s.report.conflicts += list(over.copies)
        # a merge of diverged heads has no snapshot to stand on: keep the old base (the
        # next sync commits the merge); a head that contains the base is the new base
        new_base = base
        if len(unseen) == 1 and (base is None or base in s.repo.ancestors(unseen[0])):
            new_base = unseen[0]
        s.finish_apply(scan, updates, new_base, over.flat)
        if base is None and len(unseen) == 1 and not scan.flat:  # a clone: the snapshot
            # is all the disk holds, so its trees are what the next scan would encode
            s.vault.state.add_trees(memo_of(remote, s.repo.get_snapshot(unseen[0]).tree,
                                            s.repo.hasher))
        s.report.snapshot = new_base
        return s.report.finish()


def _up_to_date(s: Session, scan: ScanResult, base: ObjectId | None) -> Report:
    s.save_rows(scan)
    s.report.up_to_date = True
    s.report.snapshot = base
    return s.report.finish()


def _shown(change: Change) -> str:
    """A path as status lists it: folders end with '/'."""
    key, old, new = change
    entry = new if new is not None else old
    return key + "/" if entry is not None and entry.is_dir else key


@dataclass
class Status:
    base: ObjectId | None
    local_added: list[str] = field(default_factory=list)
    local_changed: list[str] = field(default_factory=list)
    local_deleted: list[str] = field(default_factory=list)
    remote_ahead: list[str] = field(default_factory=list)  # device names with unseen heads
    skipped: list[tuple[str, str]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # paths on disk the rules exclude
    plan: Report | None = None  # what `sync` would do (a dry run)
    stop: str | None = None  # or why it would stop
    notices: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        plan = self.plan.to_json() if self.plan is not None else None
        if plan is not None:
            for key in ("traffic", "duration_s", "notices", "new_chunks", "packs"):
                plan.pop(key, None)
        return {"base": self.base, "local": {"added": self.local_added,
                "changed": self.local_changed, "deleted": self.local_deleted},
                "remote_ahead": self.remote_ahead, "sync_plan": plan, "sync_stop": self.stop,
                "ignored": self.ignored, "notices": self.notices,
                "skipped": [{"path": p, "reason": r} for p, r in self.skipped]}


@rejoining
def status(root: str) -> Status:
    with Session(root, "status", write=False) as s:
        scan = s.scan()
        base = s.base
        changes = s.local_changes(scan, base)
        st = Status(base, skipped=list(scan.skipped), ignored=list(scan.ignored),
                    notices=list(s.report.notices))
        st.local_added = [_shown(c) for c in changes.added]
        st.local_changed = [_shown(c) for c in changes.changed]
        st.local_deleted = [_shown(c) for c in changes.deleted]
        seen = s.repo.ancestors(base) if base else frozenset()
        for _device, sid in sorted(s.heads().items()):
            if sid not in seen:
                st.remote_ahead.append(s.repo.get_snapshot(sid).device_name)
    try:
        st.plan = sync(root, dry_run=True)  # the very plan a sync would carry out
    except SafetyStop as exc:
        st.stop = exc.message
    else:  # and what it would skip: names this disk cannot hold that it would bring
        said = {path for path, _ in st.skipped}
        st.skipped += [(p, why) for p, why in st.plan.skipped if p not in said]
        st.notices += [n for n in st.plan.notices
                       if n not in st.notices and n != DRY_RUN_NOTICE]
    return st
