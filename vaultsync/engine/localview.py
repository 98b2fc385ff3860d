"""The vault as the merge must see it, which is more than what is on disk.

Some entries count as present and unchanged although the scan did not find them:
- paths the scan could not read (an unreadable file or folder, a file that kept
  changing, a symbolic link where a file was): "frozen" for this run. Not a delete: they
  keep their base version (nothing propagates from here), and nothing is written at or
  below them. Where the merge moved such a path (or an ignored one) on, the disk still
  holds the old version: that "belief" is remembered and corrects the local side's merge
  base until the path is read and written again, so an old version there is never taken
  for an edit;
- phantoms: synced names this filesystem cannot hold (never deleted for the others);
- ignored paths: their last synced version stays as it is (ignoring never deletes);
- paths that just stopped being ignored and are not on disk: not a deletion either, so
  the synced version is written here.
They go into `scan.flat` for the merge and are listed in `scan.injected`; the plan that
changes the vault compares the target with `disk_view(scan)`, what really is there.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import replace

from vaultsync.chunking import Hasher
from vaultsync.engine.commit import build_trees
from vaultsync.engine.ignore import IgnoreRules
from vaultsync.engine.report import Report
from vaultsync.engine.scan import ScanResult
from vaultsync.engine.state import State
from vaultsync.model import DIR, Change, Entry, Flat, ObjectId, decode_entry, nfc

PHANTOMS = "unwritable"
IGNORED_CACHE = "ignored_base"
RULES = "ignore_rules"
BELIEFS = "unapplied"
Lookup = Mapping[str, Entry]  # a flat, or the scan's entries looked up (`scanned.Local`)


def _load(state: State, key: str) -> dict[str, Entry | None]:
    raw = state.get_meta(key)
    doc = json.loads(raw) if raw else {}
    return {k: None if v is None else decode_entry(v, f"saved {key} entry", need_tree=False)
            for k, v in doc.items()}


def _dump(entries: dict[str, Entry | None]) -> str | None:
    if not entries:
        return None
    return json.dumps({k: None if e is None else e.to_json() for k, e in entries.items()})


def unread_paths(skipped: Iterable[tuple[str, str]]) -> set[str]:
    """Keys of the paths the scan found but could not read (every skip is one)."""
    return {nfc(path) for path, _ in skipped if path != "."}


def below(key: str, roots: AbstractSet[str]) -> bool:
    """Whether `key` is one of `roots` or inside one of them."""
    if not roots:
        return False
    while key:
        if key in roots:
            return True
        key = key.rpartition("/")[0]
    return False


def complete(scan: ScanResult, state: State, rules: IgnoreRules, base: ObjectId | None,
             flat_of: Callable[[ObjectId | None], Flat], hasher: Hasher,
             changes_since: Callable[[ObjectId, ObjectId], Iterable[Change]],
             versus_disk: Callable[[ObjectId], Iterable[Change]]) -> None:
    """Add the entries that count as present though not on disk (see the module doc).
    `changes_since(a, b)`: what differs between two snapshots; `versus_disk(sid)`: what
    differs between a snapshot and the scan's tree (equal subtrees skipped, both)."""
    extra: Flat = {}
    unignored: set[str] = set()
    scan.frozen = unread_paths(scan.skipped)
    scan.beliefs = _load(state, BELIEFS)
    if scan.frozen and base is not None:
        for key, entry in flat_of(base).items():
            if below(key, scan.frozen):
                extra[key] = entry
    for key, phantom in _load(state, PHANTOMS).items():
        if phantom is not None:
            extra[key] = scan.phantoms[key] = phantom
            scan.skipped.append((key, "this filesystem cannot hold this name"))
    if base is not None:
        extra.update(_ignored_in_base(scan, state, rules, base, flat_of, changes_since,
                                      versus_disk))
        old = state.get_meta(RULES)
        if old is not None and json.loads(old) != rules.lines:
            was = IgnoreRules(json.loads(old))
            for key, entry in flat_of(base).items():
                if was.ignored(key, entry.is_dir) and not rules.ignored(key, entry.is_dir):
                    extra.setdefault(key, entry)
                    unignored.add(key)
    for key in sorted(extra, key=lambda k: k.count("/")):
        parent = key.rpartition("/")[0]
        if key in scan.flat or (parent and parent not in scan.flat):
            continue
        scan.flat[key] = extra[key]
        scan.injected.add(key)
        if key in unignored:
            scan.restore.add(key)
    if scan.injected:
        ids: dict[str, ObjectId] = {}
        scan.root, scan.trees = build_trees(scan.flat, hasher, ids)
        for key, tid in ids.items():  # the folders' entries name their new trees
            if key:
                scan.flat[key] = replace(scan.flat[key], tree=tid)


def orphans(scan: ScanResult) -> set[str]:
    """Injected keys below an entry that is a file here (a folder that became a file,
    its ignored or unread contents kept): in `scan.flat`, for the merge, but no tree of
    this disk can hold them."""
    out: set[str] = set()
    for key in scan.injected:
        parent = key.rpartition("/")[0]
        while parent:
            entry = scan.flat.get(parent)
            if entry is not None and not entry.is_dir:
                out.add(key)
                break
            parent = parent.rpartition("/")[0]
    return out


def _ignored_in_base(scan: ScanResult, state: State, rules: IgnoreRules, base: ObjectId,
                     flat_of: Callable[[ObjectId | None], Flat],
                     changes_since: Callable[[ObjectId, ObjectId], Iterable[Change]],
                     versus_disk: Callable[[ObjectId], Iterable[Change]]) -> Flat:
    """Base entries the rules exclude, with their folders. Cached per (base, rules);
    after a new base with the same rules only the paths that changed are checked
    (the Merkle diff skips the rest), so a sync never matches every path again.
    Without a cache, only base entries the disk lacks (or holds as the other kind) are
    matched: what the scan found and kept is not ignored, so where base and disk trees
    are equal there is nothing to match (the first sync after init or clone)."""
    raw = state.get_meta(IGNORED_CACHE)
    doc = json.loads(raw) if raw else {}
    if doc.get("base") == base and doc.get("rules") == rules.digest:
        return {k: decode_entry(v, "cached entry", need_tree=False)
                for k, v in doc["entries"].items()}
    kept: Flat = {}
    if doc.get("rules") == rules.digest and doc.get("base"):
        kept = {k: decode_entry(v, "cached entry", need_tree=False)
                for k, v in doc["entries"].items()}
        for key, _old, new in changes_since(doc["base"], base):
            if new is None or not rules.ignored(key, new.is_dir):
                kept.pop(key, None)
            else:
                _keep(kept, key, new)
        for key in [k for k, e in kept.items() if e.is_dir]:  # folders nothing needs now
            if not any(k.startswith(key + "/") for k in kept) and not rules.ignored(key, True):
                kept.pop(key)
    else:
        for key, entry, seen in versus_disk(base):
            if entry is not None and (seen is None or seen.is_dir != entry.is_dir) \
                    and rules.ignored(key, entry.is_dir):
                _keep(kept, key, entry)
        copies = {r.copy for r in scan.respell if r.copy}  # found, but never matched
        for key in sorted(copies - kept.keys()):
            entry = flat_of(base).get(key)
            if entry is not None and rules.ignored(key, entry.is_dir):
                _keep(kept, key, entry)
    state.set_meta(IGNORED_CACHE, json.dumps({
        "base": base, "rules": rules.digest,
        "entries": {k: e.to_json() for k, e in kept.items()}}))
    return kept


def _keep(kept: Flat, key: str, entry: Entry) -> None:
    """Keep `entry` and make sure its folders are there too."""
    kept[key] = entry
    parts = key.split("/")
    for i in range(1, len(parts)):
        kept.setdefault("/".join(parts[:i]), Entry(name=parts[i - 1], kind=DIR))


def matcher(rules: IgnoreRules, scan: ScanResult, found: Lookup | None = None,
            ) -> Callable[[str, bool], bool]:
    """`rules.ignored`, without matching again what the scan already matched: a path
    it found on disk (same kind, under its own name, not a collision copy) and kept is
    not ignored. `found`: the scan's entries (default `scan.flat`)."""
    copies = {r.copy for r in scan.respell if r.copy}
    flat = found if found is not None else scan.flat

    def ignored(key: str, is_dir: bool) -> bool:
        seen = flat.get(key)
        if (seen is not None and seen.is_dir == is_dir and key not in scan.injected
                and key not in copies):
            return False
        return rules.ignored(key, is_dir)

    return ignored


def disk_view(scan: ScanResult) -> Flat:
    """What really is on disk: the scan without the injected entries."""
    return {k: e for k, e in scan.flat.items() if k not in scan.injected}


def local_target(target: Flat, rules: IgnoreRules, scan: ScanResult,
                 found: Lookup | None = None) -> Flat:
    """What the vault itself should hold: `target` minus ignored paths (the remote's
    versions of those are not written here) and minus what this run cannot touch (paths
    it could not read: those keep what the disk holds). A file whose version `target`
    has only below such a path (another device moved it there) stays where it is, so
    the disk never gives up a version it cannot write in its new place."""
    ignored = matcher(rules, scan, found)
    out = {k: e for k, e in target.items()
           if not ignored(k, e.is_dir) and not below(k, scan.frozen)}
    if scan.frozen:
        out.update(_held_back(target, out, scan))
    return out


def remote_where_frozen(scan: ScanResult, remote: Flat) -> Flat:
    """The scan's tree with `remote`'s entries in place of its own at and below the
    paths it could not read (those hold the base's versions, not what the disk has)."""
    if not scan.frozen:
        return scan.flat
    out = {k: e for k, e in scan.flat.items() if not below(k, scan.frozen)}
    out.update((k, e) for k, e in remote.items() if below(k, scan.frozen))
    return out


def _held_back(target: Flat, out: Flat, scan: ScanResult) -> Flat:
    """Files on disk that `out` drops while their content is in `target` only below a
    frozen path; with their folders. Recorded in `scan.held_back` (a belief keeps them
    from counting as new files on the next run)."""
    stranded = {e.chunks for k, e in target.items()
                if not e.is_dir and e.size and below(k, scan.frozen)}
    stranded -= {e.chunks for e in out.values() if not e.is_dir}
    kept: Flat = {}
    if not stranded:
        return kept
    disk = disk_view(scan)
    for key, entry in disk.items():
        if key in out or entry.is_dir or entry.chunks not in stranded:
            continue
        kept[key] = entry
        scan.held_back.add(key)
        parent = key.rpartition("/")[0]
        while parent and parent not in out:
            kept[parent] = disk[parent]
            parent = parent.rpartition("/")[0]
    return kept


def read_beliefs(scan: ScanResult, rules: IgnoreRules) -> dict[str, Entry | None]:
    """The beliefs that correct this run's merge base: those of paths it reads. A path
    still unread (or still ignored) is injected with its base version, no change, so its
    belief must not make that version look like an edit."""
    return {k: e for k, e in scan.beliefs.items()
            if not below(k, scan.frozen) and not rules.ignored(k, e is not None and e.is_dir)}


def pending(scan: ScanResult, rules: IgnoreRules) -> bool:
    """Whether a path this run reads has a belief: a version merged while it was not
    read, which this disk never received (push and pull have work even with nothing
    unseen)."""
    return bool(read_beliefs(scan, rules))


def new_beliefs(scan: ScanResult, target: Flat, rules: IgnoreRules,
                found: Lookup | None = None) -> dict[str, Entry | None]:
    """What the disk holds where this run neither read nor wrote (frozen paths, ignored
    ones, files held back) and `target` moved on: the old belief, else the version the
    scan has for it. Once such a path is read again, an old version there is not taken
    for an edit."""
    out: dict[str, Entry | None] = {}
    flat = found if found is not None else scan.flat
    ignored = matcher(rules, scan, flat)
    # a path on disk the scan kept (not injected, not a collision copy, not frozen nor
    # held back) was read and is not ignored: only the others can need a belief
    maybe = {k for k in target if k not in flat} | scan.injected | scan.held_back
    maybe |= {r.copy for r in scan.respell if r.copy}
    if scan.frozen:
        maybe |= {k for k in scan.flat if below(k, scan.frozen)}
    for key in maybe:
        entry = target.get(key) or flat[key]
        if (not below(key, scan.frozen) and key not in scan.held_back
                and not ignored(key, entry.is_dir)):
            continue
        held = scan.beliefs[key] if key in scan.beliefs else flat.get(key)
        want = target.get(key)
        if held is None and want is None:
            continue
        if held is not None and want is not None and held.same_version(want):
            continue
        out[key] = held
    return out


def remember(state: State, scan: ScanResult, written: set[str], target: Flat,
             report: Report, rules: IgnoreRules, found: Lookup | None = None) -> None:
    """After a run that applied `target`: names this disk still cannot hold, and the
    rules in force (to spot paths that stop being ignored). Call inside a transaction."""
    phantoms: dict[str, Entry] = {
        k: e for k, e in scan.phantoms.items() if k in target and k not in written}
    phantoms.update(report.unwritable)
    state.set_meta(PHANTOMS, _dump(dict(phantoms)))
    state.set_meta(BELIEFS, _dump(new_beliefs(scan, target, rules, found)))
    state.set_meta(RULES, json.dumps(rules.lines))


def remember_beliefs(state: State, scan: ScanResult, target: Flat, rules: IgnoreRules) -> None:
    """After a run whose new base holds `target`: what the disk still holds where the run
    did not look (`new_beliefs`). Call inside a transaction."""
    state.set_meta(BELIEFS, _dump(new_beliefs(scan, target, rules)))
