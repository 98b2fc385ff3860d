"""The commit order, in one function: packs, then index segment, then snapshot, then
this device's head. A crash between any two steps leaves a valid repository: at worst
packs or a snapshot nothing references yet, which the next run or `prune` handles."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable

from vaultsync.chunking import Hasher
from vaultsync.engine.scan import ChunkLocation
from vaultsync.engine.transfer import Relocate, upload
from vaultsync.model import DIR, MTIME_MAX, Entry, Flat, ObjectId, Snapshot, Tree
from vaultsync.repository.repo import Repository, RepoWriter


def commit(repo: Repository, *, root: ObjectId, trees: dict[ObjectId, bytes],
           files: Callable[[], list[Entry]], locations: dict[ObjectId, ChunkLocation],
           relocate: Relocate, parents: tuple[ObjectId, ...], device: str,
           device_name: str, changed: list[Entry] | None = None,
           carried: dict[ObjectId, bytes] | None = None,
           totals: tuple[int, int] | None = None) -> tuple[ObjectId, int, int]:
    """Upload what the tree `root` needs and publish it; returns (snapshot id, new
    chunks, packs written). `changed`: the files that can be new to the repository
    (the rest are in snapshots it holds), checked alone unless a prune is pending;
    `carried`: trees `root` may name that snapshots it holds have (stored again only
    if a prune is pending). `files()`: every file of the tree, asked for only when all
    must be checked; `totals`: their count and size, if known without them."""
    writer = repo.writer()
    if changed is None or repo.prune_state.condemned_packs:
        changed = files()
        trees = {**(carried or {}), **trees}
    new_chunks = upload(repo, writer, changed, locations, trees, relocate)  # 1. packs
    new_chunks += _away_from_prune(repo, writer, files, trees, locations, relocate)
    writer.commit_index()  # 2. the last pack, then one index segment naming them all
    now = min(max(time.time_ns(), 0), MTIME_MAX)  # a clock before 1970 is not an error
    parents = repo.buildable(parents)
    if totals is None:
        every = files()
        totals = len(every), sum(e.size for e in every)
    snap = Snapshot(tree=root, parents=parents, device=device, device_name=device_name,
                    time_ns=now, files=totals[0], size=totals[1])
    sid = repo.put_snapshot(snap)  # 3. the snapshot
    # a prune that published a record after the check above may have deleted what the
    # snapshot names before it was written (a run stalled longer than the grace, a
    # clock ahead): read again, store again, before the head makes the snapshot count.
    # A prune that publishes later lists the snapshot (it exists now) and keeps its blobs
    new_chunks += _away_from_prune(repo, writer, files, trees, locations, relocate)
    writer.commit_index()  # nothing to write unless a prune ran since the check above
    repo.write_head(device, sid)  # 4. this device's head
    return sid, new_chunks, writer.packs_written


def _away_from_prune(repo: Repository, writer: RepoWriter, files: Callable[[], list[Entry]],
                     trees: dict[ObjectId, bytes], locations: dict[ObjectId, ChunkLocation],
                     relocate: Relocate) -> int:
    """A prune ran while this run was uploading (the marker has a new stamp): the
    records and the index are read again, and whatever this snapshot uses that a prune
    has named or deleted meanwhile is stored again (from the vault's files, else out of
    a named pack, still there), so the snapshot never names a blob that a prune
    deletes, however slow the run was. Returns how many chunks that took."""
    if not repo.refresh_prune():
        return 0
    writer.forget_written()
    return upload(repo, writer, files(), locations, trees, relocate)


def build_trees(flat: Flat, hasher: Hasher, ids: dict[str, ObjectId] | None = None,
                ) -> tuple[ObjectId, dict[ObjectId, bytes]]:
    """Encode a flat tree (a merge result) as Merkle tree objects; returns (root, trees).
    `ids`, if given, receives each folder's tree id by key."""
    children: dict[str, list[str]] = defaultdict(list)
    for key in flat:
        children[key.rpartition("/")[0]].append(key)
    trees: dict[ObjectId, bytes] = {}

    def build(folder: str) -> ObjectId:
        entries = []
        for key in children.get(folder, []):
            entry = flat[key]
            if entry.is_dir:
                entry = Entry(name=entry.name, kind=DIR, tree=build(key))
            entries.append(entry)
        encoded = Tree.of(entries).encode()
        tid = hasher.id(encoded)
        trees[tid] = encoded
        if ids is not None:
            ids[folder] = tid
        return tid

    return build(""), trees
