"""One command's hold on a vault: lock, config, remote repository, scan."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from vaultsync.chunking import Chunker
from vaultsync.engine import localview
from vaultsync.engine.apply import VaultWriter, empty_trash, remove_stale_temps
from vaultsync.engine.commit import commit
from vaultsync.engine.ignore import IgnoreRules
from vaultsync.engine.remote import open_repository
from vaultsync.engine.report import Report
from vaultsync.engine.scan import ChunkLocation, Scanner, ScanResult
from vaultsync.engine.scanned import Local
from vaultsync.engine.state import REPO_ID, StatCache, StatRow, is_damage
from vaultsync.engine.transfer import Relocate
from vaultsync.engine.vault import Vault
from vaultsync.errors import LocalFailure, NoRemote, StateDamaged, VaultsyncError
from vaultsync.model import (
    Change,
    Entry,
    Flat,
    ObjectId,
    Tree,
    decode_tree,
    derive_flat,
    diff_trees,
    disk_path,
    flatten,
)
from vaultsync.store.url import display_url


@dataclass
class Changes:
    """What changed from one tree to another: paths added, changed (content, executable
    bit or kind) and deleted. A new mtime on the same bytes is no change."""

    added: list[Change] = field(default_factory=list)
    changed: list[Change] = field(default_factory=list)
    deleted: list[Change] = field(default_factory=list)

    @classmethod
    def of(cls, diff: Iterable[Change]) -> Changes:
        out = cls()
        for change in diff:
            _, old, new = change
            if old is None:
                out.added.append(change)
            elif new is None:
                out.deleted.append(change)
            elif not old.same_version(new):
                out.changed.append(change)
        return out

    def all(self) -> list[Change]:
        return sorted(self.added + self.changed + self.deleted)

    @staticmethod
    def files(changes: list[Change]) -> list[str]:
        return [k for k, old, new in changes if not (new or old).is_dir]  # type: ignore[union-attr]




class Session:
    """One command's hold on a vault. `write`: the command may write the repository;
    `keeps_state`: it records a new base locally (default: as `write`)."""

    def __init__(self, root: str, command: str, write: bool,
                 keeps_state: bool | None = None) -> None:
        self.report = Report(command)
        self._rejoin = False
        self._settled: tuple[ObjectId | None] | None = None
        self.cached_rows: dict[str, StatRow] = {}
        self._flats: dict[ObjectId, Flat] = {}
        # flat_of derives snapshots' flats from the scan (`_held`: its flat without
        # what its tree cannot hold, when that is not all of it)
        self._reference: ScanResult | None = None
        self._held: Flat | None = None
        # the scan, folder by folder, while it is the disk alone (see `lean`)
        self.local: Local | None = None
        self.orphans: set[str] = set()  # in the scan's flat but not in its tree
        self._heads: dict[str, ObjectId] | None = None
        self.rules = IgnoreRules([])
        self.vault = Vault.find(root)
        self.keeps_state = write if keeps_state is None else keeps_state
        self.vault.read_only = not self.keeps_state
        try:
            self.vault.lock()
            self.vault.check_binding()
            cfg = self.vault.config
            if not cfg.remote:
                raise NoRemote(
                    f"{self.vault.root} has no remote; set one with 'vaultsync init --remote URL'"
                )
            self.remote = open_repository(cfg.remote, cfg.remote_options,
                                          cache=self.vault.state,
                                          before=self.vault.check_remote_outside)
            self.store, self.repo = self.remote.store, self.remote.repo
            self.report.traffic = self.remote.traffic
            if write:
                self.repo.format.check_writable()
            self._check_identity(self.keeps_state)
            self.report.notices.extend(self.vault.notices)
        except BaseException:
            self.vault.close()
            raise

    def _check_identity(self, persist: bool) -> None:
        """The repository has an identity (its repo_id, kept with the base). A remote URL
        that now answers with another repository (recreated, or the config changed) is a
        join with an empty base, never "already up to date". A state from before repo_id
        was kept is checked once by its base snapshot being there."""
        state = self.vault.state
        current = self.repo.format.repo_id
        known = state.get_meta(REPO_ID)
        if known == current:
            return
        base = state.base
        if known is None and (base is None or self.store.stat(f"snapshots/{base}")):
            if persist:
                state.set_meta(REPO_ID, current)
            return
        self.report.notices.append(
            f"the repository at {display_url(self.vault.config.remote)} is not the one this "
            "vault last synced with (it was recreated, or the remote changed): joining it "
            "with an empty base: files with equal bytes are one file, versions that differ "
            "are kept side by side")
        self._rejoin = True
        if persist:
            state.forget_remote(current)
    @property
    def device(self) -> str:
        return self.vault.config.device_id

    @property
    def base(self) -> ObjectId | None:
        """This run's base: once `adopt_own_head` settled it, that one."""
        if self._settled is not None:
            return self._settled[0]
        return None if self._rejoin else self.vault.state.base

    def adopt_own_head(self, persist: bool = True) -> ObjectId | None:
        """This run's base (call before the scan): the recorded base, moved forward to
        this device's own head when a run committed that head but was killed before
        recording it locally (crash between steps 5 and 7; only a snapshot of local state,
        whose one parent is base, is adopted: a merge snapshot may not have reached the
        vault yet, so it stays a head to merge), and moved back when the remote lost it
        (`_base_on_remote`)."""
        base = self.base
        own = self.heads().get(self.device)
        parents = () if base is None else (base,)
        if own is not None and own != base and self.repo.get_snapshot(own).parents == parents:
            base = own
        base = self._base_on_remote(base, persist)
        if persist and base != self.vault.state.base:
            with self.vault.state.transaction():
                self.vault.state.set_meta("base", base)
        self._settled = (base,)
        return base

    def _base_on_remote(self, base: ObjectId | None, persist: bool) -> ObjectId | None:
        """`base`, if the remote still has it. A remote can go back in time (restored
        from an older copy, a head file lost): building on a snapshot it no longer holds
        would leave a repository no device can read, and "up to date" would hide this
        vault's last changes. A snapshot still there but named by no head is published
        again (this device's head); one that is gone gives way to the newest snapshot of
        this vault's history the remote still holds (or none: a join)."""
        heads = self.heads()
        lineage = self.repo.lineage
        if base is None:
            return None
        held = base in heads.values() or any(
            base in lineage.ancestors(h) for h in heads.values())
        if held and not self.repo.malformed_own_head:
            return base
        named = base in self.repo.prune_state.named_snapshots  # a prune will delete it
        if held or (not named and self.store.stat(f"snapshots/{base}") is not None):
            own = heads.get(self.device)
            if persist and (own is None or own in lineage.ancestors(base)):
                self.repo.write_head(self.device, base)  # published again
                self._heads = None
            return base
        try:
            mine = lineage.ancestors(base)  # from this vault's cache of snapshots
        except VaultsyncError:
            mine = frozenset()
        nearest = lineage.nearest_common(mine, lineage.history(heads.values()))
        still = nearest[0] if len(nearest) == 1 else None
        why = ("it was pruned while this vault was away" if named or base in
               self.repo.prune_state.forgotten or self.repo.prune_state.ids
               else "was it restored from an older copy?")
        self.report.notices.append(
            f"the remote no longer holds this vault's last sync ({why}): syncing again from "
            + (f"snapshot {still[:12]}, the newest it still has" if still else "nothing "
               "(a join)") + "; versions that differ are kept side by side")
        return still

    def unseen_heads(self, base: ObjectId | None) -> list[ObjectId]:
        """The heads this vault's base does not contain, minus any head another of them
        contains, in the order they fold in (`lineage`: fixed by the graph, not by the
        listing or by any clock)."""
        return list(self.repo.lineage.unseen(self.heads().values(), base))

    def max_delete(self, given: float | None) -> float:
        """--max-delete, else the vault's max_delete option."""
        return given if given is not None else float(self.vault.config.options["max_delete"])

    def scan(self) -> ScanResult:
        # entries record the device *name* as their author: it is what conflict copies
        # are named after (Note.conflict-20261122-143005-laptop.md)
        self.cached_rows = self.vault.state.stat_rows()
        self.rules = IgnoreRules.load(self.vault.root)
        scanner = Scanner(self.vault.root, self.vault.config.device_name,
                          self.cached_rows,
                          self.repo.format.chunker, self.repo.hasher,
                          ignored=self.rules.ignored)
        result = scanner.scan()
        self._reference = result
        self.local = Local(result)  # before `complete`, which may build the flat
        for path, reason in result.skipped:
            if path == ".":  # the vault folder itself: nothing to compare, nothing to do
                raise LocalFailure(f"local vault folder {self.vault.root} cannot be read "
                                   f"({reason}); nothing was written")
        self.report.notices.extend(result.notices)
        if self.keeps_state:  # a dry run removes nothing, not even a killed run's temps
            remove_stale_temps(result.stale_temps, self.vault.staging)
        localview.complete(result, self.vault.state, self.rules, self.base, self.flat_of,
                           self.repo.hasher, self.changes_between,
                           lambda sid: self.versus_disk(result, sid))
        # injected entries below what is a file here count for the merge, but no tree
        # can hold them: flat_of derives from the flat that the tree does hold
        self.orphans = localview.orphans(result)
        if result.injected or result.frozen or result.respell or result.restore \
                or result.beliefs or result.held_back:
            self.local = None  # not the disk alone: the whole flats
        if self.orphans:
            self._held = {k: e for k, e in result.flat.items() if k not in self.orphans}
        self.report.skipped.extend(result.skipped)
        return result

    def save_rows(self, scan: ScanResult,
                  updates: dict[str, StatRow | None] | None = None) -> None:
        """The stat cache after this run: the scan's rows with `updates` (None: gone).
        Where the scan is the disk alone, only the folders this run changed are looked
        at (`Local.rows_by_folder`); a no-change run reads none."""
        cache = self.cached_rows
        some = (self.local.rows_by_folder(updates or {}, cache)
                if self.local is not None and isinstance(cache, StatCache)
                and not cache.rewrite and (updates or "rows" not in scan.__dict__) else None)
        if some is not None:
            assert isinstance(cache, StatCache)
            self.vault.state.save_some_rows(some[0], some[1], cache)
            return
        rows = scan.rows
        if updates:
            rows = dict(rows)
            for key, row in updates.items():
                if row is None:
                    rows.pop(key, None)
                else:
                    rows[key] = row
        self.vault.state.save_stat_rows(rows, cache)

    def finish_apply(self, scan: ScanResult, updates: dict[str, StatRow | None],
                     new_base: ObjectId | None, target: Flat, lean: bool = False) -> None:
        """Step 7: the stat cache, the names this disk refused, and the new base.
        `target`: the tree applied; `lean`: only its part where the disk changed (then
        the scan is looked up key by key, never walked)."""
        self.save_rows(scan, updates)
        with self.vault.state.transaction():
            localview.remember(self.vault.state, scan, set(updates), target, self.report,
                               self.rules, self.local if lean else None)
            self.vault.state.set_meta("base", new_base)
        empty_trash(self.vault.trash, self.vault.config.options["trash_days"])

    def writer(self) -> VaultWriter:
        return VaultWriter(self.vault.root, self.vault.trash, self.vault.staging)

    def root_of(self, sid: ObjectId | None) -> ObjectId | None:
        return self.repo.get_snapshot(sid).tree if sid is not None else None

    def tree_loader(self, scan: ScanResult | None = None) -> Callable[[ObjectId], Tree]:
        """Trees from this scan (its own entries where it still holds them, else its
        encodings), else from the repository (and its local cache)."""
        def get(tid: ObjectId) -> Tree:
            if scan is None:
                return self.repo.get_tree(tid)
            own = scan.own_tree(tid)
            if own is not None:
                return own
            encoded = scan.trees.get(tid)  # read when needed
            return decode_tree(encoded) if encoded is not None else self.repo.get_tree(tid)

        return get

    def changes_between(self, old: ObjectId, new: ObjectId) -> Iterable[Change]:
        """What differs between two snapshots (equal subtrees skipped)."""
        return diff_trees(self.root_of(old), self.root_of(new), self.tree_loader())

    def versus_disk(self, scan: ScanResult, sid: ObjectId | None,
                    folders: bool = False) -> Iterator[Change]:
        """What differs between a snapshot and the scan's tree (equal subtrees skipped;
        `folders`: see `diff_trees`)."""
        return diff_trees(self.root_of(sid), scan.root, self.tree_loader(scan),
                          folders=folders)

    def local_changes(self, scan: ScanResult, base: ObjectId | None) -> Changes:
        return Changes.of(self.versus_disk(scan, base))

    def relocate(self, scan: ScanResult) -> Relocate:
        """Find chunks again by re-reading the local files whose entries name them."""

        def find(cids: set[ObjectId]) -> dict[ObjectId, ChunkLocation]:
            found: dict[ObjectId, ChunkLocation] = {}
            chunker = Chunker(self.repo.format.chunker, self.repo.hasher)
            for key, entry in scan.flat.items():
                if entry.is_dir or cids.isdisjoint(entry.chunks):
                    continue
                path = os.path.join(self.vault.root, *disk_path(scan.flat, key).split("/"))
                try:
                    with open(path, "rb") as f:
                        for c in chunker.chunks(f):
                            found.setdefault(c.id, ChunkLocation(path, c.offset, c.length))
                except OSError:
                    continue
            return found

        return find

    def commit(self, root: ObjectId, trees: dict[ObjectId, bytes], scan: ScanResult,
               parents: tuple[ObjectId, ...], flat: Flat | Callable[[], Flat] | None = None,
               changed: Flat | None = None, totals: tuple[int, int] | None = None,
               ) -> tuple[ObjectId, int, int]:
        """Commit the tree `root` (whose flat is `flat`, or what `flat()` makes, else the
        scan's); `changed`: the part of it that can hold files new to the repository
        (default: all; then `trees` must be all the trees `root` names that the
        repository may lack); `totals`: its files' count and size, if known."""
        def files() -> list[Entry]:
            whole = flat() if callable(flat) else flat if flat is not None else scan.flat
            return [e for e in whole.values() if not e.is_dir]

        check = None if changed is None else [e for e in changed.values() if not e.is_dir]
        return commit(self.repo, root=root, trees=trees, files=files, locations=scan.locations,
                      relocate=self.relocate(scan), parents=parents, device=self.device,
                      device_name=self.vault.config.device_name, changed=check,
                      carried=None if changed is None else scan.trees, totals=totals)

    def flat_of(self, sid: ObjectId | None) -> Flat:
        """A snapshot's flat tree, built once per run (callers must not change it)."""
        if sid is None:
            return {}
        if sid not in self._flats:
            root = self.repo.get_snapshot(sid).tree
            if self._reference is None:
                self._flats[sid] = flatten(root, self.repo.get_tree)
            else:  # the scan, patched where the snapshot differs (equal subtrees: free)
                ref = self._reference
                held = self._held if self._held is not None else ref.flat
                self._flats[sid] = derive_flat(held, ref.root, root, self.tree_loader(ref))
        return self._flats[sid]

    def heads(self) -> dict[str, ObjectId]:
        """The remote's heads, read once per run (step 3: one LIST, a few tiny GETs)."""
        if self._heads is None:
            self._heads = self.repo.read_heads(own=self.device)
            if self.repo.malformed_own_head:
                self.report.notices.append("this device's head on the remote was malformed: "
                                           "it is published again")
        return self._heads

    def close(self) -> None:
        try:
            self.remote.close()
        finally:
            self.vault.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, _type: object, exc: BaseException | None, _tb: object) -> None:
        notice, in_memory = None, False
        try:
            if exc is not None and is_damage(exc):
                if self.vault.read_only:  # left as it is: the next try works in memory
                    notice = (f"the local state database is damaged ({exc}): a sync moves "
                              "it aside and re-joins the repository")
                    in_memory = True
                else:  # set aside under the lock
                    notice = self.vault.set_aside_state(exc)
        finally:
            self.close()
        if notice is not None:  # `rejoining` runs the command again
            damaged = StateDamaged(notice)
            damaged.in_memory = in_memory
            raise damaged from exc


R = TypeVar("R")


def rejoining(command: Callable[..., R]) -> Callable[..., R]:
    """Run a command again, once, when its state database turned out damaged (it was
    moved aside: local state is a cache of the remote plus the base, and the vault
    re-joins); the notice goes into the report."""

    @functools.wraps(command)
    def run(*args: object, **kwargs: object) -> R:
        try:
            return command(*args, **kwargs)
        except StateDamaged as damaged:
            if damaged.in_memory:
                with Vault.memory_state():
                    result = command(*args, **kwargs)
            else:
                result = command(*args, **kwargs)
            notices = getattr(result, "notices", None)
            if isinstance(notices, list):
                notices.insert(0, damaged.message)
            return result

    return run
