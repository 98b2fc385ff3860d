"""init, clone, push, pull and status: the one-way paths.

Until two-way sync exists, push refuses when the remote moved past this vault's base and
pull refuses when local files changed since base: neither ever overwrites a version the
other side has not seen.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field

from vaultsync.engine.config import default_device_name
from vaultsync.engine.materialize import materialize
from vaultsync.engine.report import Report
from vaultsync.engine.session import Changes, Session, new_format_from_env, open_remote
from vaultsync.engine.vault import Vault
from vaultsync.errors import Diverged, UsageError
from vaultsync.model import STATE_DIR, Change, ObjectId
from vaultsync.repository.repo import Repository
from vaultsync.store.url import display_url, normalize_url


def init(root: str, remote: str | None, device_name: str | None) -> Report:
    report = Report("init")
    root = os.path.abspath(root)
    if os.path.isdir(os.path.join(root, STATE_DIR)):
        raise UsageError(f"{root} is already a vault")
    if not os.path.isdir(root):
        raise UsageError(f"{root} does not exist")
    url = ""
    if remote:
        url = normalize_url(remote)
        store, _ = open_remote(url)
        try:
            if store.exists() and store.stat("vaultsync.json") is not None:
                Repository.open(store)
                report.notices.append(f"joined the existing repository at {display_url(url)}")
            else:
                Repository.create(store, new_format_from_env())
                report.notices.append(f"created a new repository at {display_url(url)}")
        finally:
            store.close()
    vault = Vault.create(root, _device_name(device_name), url)
    report.notices.append(f"device {vault.config.device_name} ({vault.config.device_id[:8]})")
    return report.finish()


def _device_name(name: str | None) -> str:
    name = (name or default_device_name()).strip()
    if not name or len(name) > 64 or any(c in name for c in "/\\\x00\n"):
        raise UsageError(f"device name {name!r} must be 1-64 characters, without / or \\")
    return name


def clone(url: str, dest: str, device_name: str | None) -> Report:
    dest = os.path.abspath(dest)
    if os.path.exists(dest) and (not os.path.isdir(dest) or os.listdir(dest)):
        raise UsageError(f"{dest} exists and is not empty; clone into a new or empty folder")
    url = normalize_url(url)
    store, _ = open_remote(url)
    try:
        Repository.open(store)  # fail before creating anything locally
    finally:
        store.close()
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


def push(root: str) -> Report:
    with Session(root, "push", write=True) as s:
        scan = s.scan()
        base = s.adopt_own_head()
        _refuse_if_remote_moved(s, base)
        if base is not None and s.repo.get_snapshot(base).tree == scan.root:
            s.vault.state.save_stat_rows(scan.rows.values(), replace_all=True)
            s.report.up_to_date = True
            s.report.snapshot = base
            return s.report.finish()
        changes = s.local_changes(scan, base)
        s.report.uploaded = Changes.files(changes.added + changes.changed)
        s.report.deleted = Changes.files(changes.deleted)
        sid, s.report.new_chunks, s.report.packs = s.commit(scan.root, scan.trees, scan,
                                                            (base,) if base else ())
        with s.vault.state.transaction():
            s.vault.state.set_meta("base", sid)
        s.vault.state.save_stat_rows(scan.rows.values(), replace_all=True)
        s.report.snapshot = sid
        return s.report.finish()


def pull(root: str) -> Report:
    with Session(root, "pull", write=False) as s:
        scan = s.scan()
        base = s.adopt_own_head()
        target = _pull_target(s, base)
        if target is None or target == base:
            s.vault.state.save_stat_rows(scan.rows.values(), replace_all=True)
            s.report.up_to_date = True
            s.report.snapshot = base
            return s.report.finish()
        target_flat = s.flat_of(target)
        # A path that already holds the target's version (say, written by a pull that
        # was killed) is no local change to protect.
        local_changes = [
            k for k, _old, new in s.local_changes(scan, base).all()
            if not (target_flat.get(k) is None if new is None else new.same_version(
                target_flat.get(k)))
        ]
        if local_changes:
            raise Diverged(
                f"{len(local_changes)} local change(s) since the last sync (first: "
                f"{local_changes[0]}); push them first, or move them aside, then pull"
            )
        vw = s.writer()
        updates = materialize(s.repo, vw, scan.flat, target_flat, scan.disk, s.report)
        s.finish_apply(scan, updates, target, target_flat)
        s.report.snapshot = target
        return s.report.finish()


def _refuse_if_remote_moved(s: Session, base: ObjectId | None) -> None:
    heads = s.repo.read_heads()
    seen = s.repo.ancestors(base) if base else set()
    foreign = sorted(d for d, sid in heads.items() if sid not in seen)
    if foreign:
        raise Diverged(
            f"the remote has changes this vault has not seen (from {len(foreign)} device(s)); "
            "run 'vaultsync pull' first, then push"
        )


def _pull_target(s: Session, base: ObjectId | None) -> ObjectId | None:
    """The newest remote head, which must descend from every other head and from base."""
    heads = set(s.repo.read_heads().values())
    if not heads:
        return None
    ancestry = {h: s.repo.ancestors(h) for h in heads}
    tops = [h for h in heads if all(other in ancestry[h] for other in heads)]
    if not tops:
        raise Diverged(
            "devices have pushed diverging histories; two-way 'vaultsync sync' is needed "
            "to merge them"
        )
    top = tops[0]
    if base is not None and base not in ancestry[top]:
        if top in s.repo.ancestors(base):
            return base  # we are ahead: nothing to pull
        raise Diverged("this vault and the remote have diverged; use 'vaultsync sync'")
    return top


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

    def to_json(self) -> dict[str, object]:
        return {"base": self.base, "local": {"added": self.local_added,
                "changed": self.local_changed, "deleted": self.local_deleted},
                "remote_ahead": self.remote_ahead,
                "skipped": [{"path": p, "reason": r} for p, r in self.skipped]}


def status(root: str) -> Status:
    with Session(root, "status", write=False) as s:
        scan = s.scan()
        base = s.base
        changes = s.local_changes(scan, base)
        st = Status(base, skipped=list(scan.skipped))
        st.local_added = [_shown(c) for c in changes.added]
        st.local_changed = [_shown(c) for c in changes.changed]
        st.local_deleted = [_shown(c) for c in changes.deleted]
        seen = s.repo.ancestors(base) if base else set()
        for _device, sid in sorted(s.repo.read_heads().items()):
            if sid not in seen:
                st.remote_ahead.append(s.repo.get_snapshot(sid).device_name)
        return st
