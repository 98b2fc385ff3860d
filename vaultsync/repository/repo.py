"""The repository: one object that reads and writes a format-1 repository on a store.

It knows the object kinds (packs, index segments, trees, snapshots, heads) and verifies
every object it reads against its id. It does not decide what to commit or in which
order: that is `engine`'s job (see `engine/commit.py`).
"""

from __future__ import annotations

import json
import re
import threading
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

from vaultsync import codec
from vaultsync.chunking import Hasher
from vaultsync.errors import (
    IntegrityError,
    NotARepository,
    ObjectNotFound,
    RemoteUnreachable,
)
from vaultsync.lineage import Lineage
from vaultsync.model import (
    ObjectId,
    Snapshot,
    Tree,
    canonical_json,
    decode_snapshot,
    decode_tree,
    is_object_id,
)
from vaultsync.repository.format import CONFIG_NAME, RepoFormat, decode_format
from vaultsync.repository.index import decode_segment, encode_segment
from vaultsync.repository.lazyindex import LazyIndex
from vaultsync.repository.packs import (
    TREE,
    BlobRef,
    PackWriter,
    SealedPack,
    decode_blob,
    pack_name,
)
from vaultsync.repository.records import (
    MARKER,
    PREFIX,
    PruneState,
    decode_marker,
    load_records,
)
from vaultsync.store.base import Store

DEVICE_RE = re.compile(r"[0-9a-f]{32}\Z")
COALESCE_GAP = 256 * 1024
COALESCE_MAX = 16 * 1024 * 1024
MAX_SNAPSHOT = 1024 * 1024
MAX_HEAD = 4096


class ObjectCache(Protocol):
    """Local cache of immutable objects (trees, snapshots) and of index segments."""

    def get_object(self, oid: ObjectId) -> bytes | None: ...
    def put_object(self, oid: ObjectId, data: bytes) -> None: ...
    def put_objects(self, items: Iterable[tuple[ObjectId, bytes]]) -> None: ...
    def index_segments(self) -> set[ObjectId]: ...
    def index_refs(self) -> Iterable[BlobRef]: ...
    def add_index_segment(self, sid: ObjectId, refs: list[BlobRef]) -> None: ...
    def clear_index(self) -> None: ...
    def refs_of(self, ids: list[ObjectId]) -> Iterable[BlobRef]: ...


class MemoryCache:
    def __init__(self) -> None:
        self.objects: dict[ObjectId, bytes] = {}
        self.segments: dict[ObjectId, list[BlobRef]] = {}

    def get_object(self, oid: ObjectId) -> bytes | None:
        return self.objects.get(oid)

    def put_object(self, oid: ObjectId, data: bytes) -> None:
        self.objects[oid] = data

    def put_objects(self, items: Iterable[tuple[ObjectId, bytes]]) -> None:
        self.objects.update(items)

    def index_segments(self) -> set[ObjectId]:
        return set(self.segments)

    def index_refs(self) -> Iterable[BlobRef]:
        for refs in self.segments.values():
            yield from refs

    def add_index_segment(self, sid: ObjectId, refs: list[BlobRef]) -> None:
        self.segments[sid] = refs

    def clear_index(self) -> None:
        self.segments.clear()

    def refs_of(self, ids: list[ObjectId]) -> Iterable[BlobRef]:
        wanted = set(ids)
        return [r for r in self.index_refs() if r.id in wanted]


def check_device_id(device: str) -> str:
    if not DEVICE_RE.match(device):
        raise IntegrityError(f"invalid device id {device!r}")
    return device


class Repository:
    def __init__(self, store: Store, fmt: RepoFormat, cache: ObjectCache | None = None,
                 transfers: int | None = None) -> None:
        self.store = store
        self.format = fmt
        self.hasher = Hasher()
        self.cache: ObjectCache = cache or MemoryCache()
        self._index: LazyIndex | None = None
        self._prune: PruneState | None = None
        self.marker_listed: bool | None = None  # the last heads listing showed MARKER
        self._reloaded = False
        self._reload_lock = threading.Lock()
        # the snapshot graph, read through parent links (answers kept for this object's
        # life); a link to a snapshot prune deleted ends the history there (`records`)
        self.lineage = Lineage(self._parents)
        self.malformed_own_head = False
        self._fetched: dict[ObjectId, Tree] = {}  # trees read ahead, not yet asked for
        # parallel pack transfers: the store's sensible number unless told otherwise
        self.transfers = max(1, min(32, transfers or store.capabilities.connections))
        self._pool: ThreadPoolExecutor | None = None

    def pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.transfers, thread_name_prefix="vaultsync")
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    # ---- opening -------------------------------------------------------------------
    @classmethod
    def open(cls, store: Store, cache: ObjectCache | None = None,
             transfers: int | None = None) -> Repository:
        try:
            data = store.get(CONFIG_NAME)
        except ObjectNotFound:
            if not store.exists():
                raise RemoteUnreachable(f"{store.url} does not exist") from None
            raise NotARepository(
                f"no vaultsync repository at {store.url} (create one with "
                "'vaultsync init --remote URL')"
            ) from None
        fmt = decode_format(data)
        fmt.check_readable()
        store.require_present(CONFIG_NAME)
        return cls(store, fmt, cache, transfers)

    @classmethod
    def create(cls, store: Store, fmt: RepoFormat, cache: ObjectCache | None = None,
               transfers: int | None = None) -> Repository:
        """Create a repository in an empty location (or open the one already there)."""
        store.prepare()
        if store.stat(CONFIG_NAME) is not None:
            return cls.open(store, cache, transfers)
        if next(iter(store.list("")), None) is not None:
            raise NotARepository(
                f"{store.url} is not empty and holds no vaultsync repository; "
                "choose an empty location"
            )
        store.put(CONFIG_NAME, fmt.encode())
        store.require_present(CONFIG_NAME)
        return cls(store, fmt, cache, transfers)

    # ---- prune records ---------------------------------------------------------------
    @property
    def prune_state(self) -> PruneState:
        """The prune records on the remote (one LIST per run; records are immutable and
        cached locally by id)."""
        if self._prune is None:
            self._prune = self._load_records()
        return self._prune

    def _load_records(self, fresh: bool = False) -> PruneState:
        """The records the marker names; without asking the store when this run's heads
        listing showed no marker (`fresh`: ask anyway)."""
        if not fresh and self.marker_listed is False:
            return PruneState()
        try:
            ids, stamp, generation = decode_marker(self.store.get(MARKER))
        except ObjectNotFound:
            return PruneState()
        return load_records(ids, self._get_record, self.hasher, stamp, generation)

    def _get_record(self, name: str) -> bytes:
        rid = name[len(PREFIX):]
        stored = self.cache.get_object(rid)
        if stored is None or self.hasher.id(stored) != rid:
            stored = self.store.get(name)
            self.cache.put_object(rid, stored)
        return stored

    def refresh_prune(self) -> bool:
        """Read the records again (before a commit); whether a prune wrote the marker
        since this run last read it. Then the index is read again too: what a prune
        named or deleted meanwhile is no longer there for new snapshots to use."""
        before = self.prune_state.stamp
        self._prune = self._load_records(fresh=True)
        if self._prune.stamp == before:
            return False
        self._index = None
        return True

    def _parents(self, sid: ObjectId) -> tuple[ObjectId, ...]:
        """A snapshot's parents as the kept history has them: links to snapshots prune
        deleted are dropped and the snapshot's graft (its nearest kept ancestors) stands
        in (`records`)."""
        parents = self.get_snapshot(sid).parents
        if not parents:
            return parents
        state = self.prune_state
        kept = tuple(p for p in parents if p not in state.forgotten)
        graft = state.grafts.get(sid, ()) if len(kept) < len(parents) else ()
        return kept + tuple(g for g in graft if g not in kept)

    def buildable(self, parents: Iterable[ObjectId]) -> tuple[ObjectId, ...]:
        """`parents` for a new snapshot, none named by a pending prune record: a named one
        gives way to its nearest ancestors that are not named (or to nothing), and a
        parent another parent contains is dropped."""
        named = self.prune_state.named_snapshots
        return self.lineage.nearest(parents, lambda sid: sid not in named)

    # ---- index ---------------------------------------------------------------------
    @property
    def index(self) -> LazyIndex:
        if self._index is None:
            self._index = self._load_index()
        return self._index

    def _load_index(self, retries: int = 3) -> LazyIndex:
        remote = {i.name.split("/", 1)[1] for i in self.store.list("index/")}
        remote = {s for s in remote if is_object_id(s)}
        known = self.cache.index_segments()
        if not known <= remote:  # segments vanished (prune): rebuild from scratch
            self.cache.clear_index()
            known = set()
        for sid in sorted(remote - known):
            try:
                stored = self.store.get(f"index/{sid}")
            except ObjectNotFound:  # consolidated by a prune since the listing
                if retries:
                    return self._load_index(retries - 1)
                raise
            self.hasher.verify(stored, sid, f"index segment {sid[:12]}")
            self.cache.add_index_segment(sid, decode_segment(stored, f"index segment {sid[:12]}"))
        # looked up blob by blob; a blob in several packs (uploaded again beside a pack
        # a prune named): the copy outside the named packs is the one to read and to
        # build on (`lazyindex.choose`)
        return LazyIndex(self.cache.refs_of, self.cache.index_refs,
                         lambda: self.prune_state.condemned_packs)

    def has_blob(self, blob_id: ObjectId) -> bool:
        """Whether a new snapshot may use the stored blob: it is in the index, in a pack
        no pending prune record names."""
        ref = self.index.get(blob_id)
        return ref is not None and ref.pack not in self.prune_state.condemned_packs

    def reload_index(self) -> None:
        self._index = None

    def ref(self, blob_id: ObjectId) -> BlobRef:
        ref = self.index.get(blob_id)
        if ref is None:
            raise IntegrityError(f"blob {blob_id[:12]} is not in the repository index")
        return ref

    # ---- blobs ---------------------------------------------------------------------
    def read_blob(self, blob_id: ObjectId) -> bytes:
        ref = self.ref(blob_id)
        try:
            stored = self.store.get_range(pack_name(ref.pack), ref.offset, ref.length)
        except ObjectNotFound:
            if not self._index_reloaded() or self.ref(blob_id) == ref:
                raise
            return self.read_blob(blob_id)
        return decode_blob(ref, stored, self.hasher)

    def read_blobs(self, blob_ids: Iterable[ObjectId]) -> Iterator[tuple[ObjectId, bytes]]:
        """Read many blobs with coalesced ranged reads, each verified, in pack order. A
        pack that is gone (a prune deleted it after copying its live blobs out, since
        this run read the index) sends the rest to the new index, once."""
        wanted = list(dict.fromkeys(blob_ids))
        done: set[ObjectId] = set()
        try:
            for bid, data in self._read_blobs(wanted):
                done.add(bid)
                yield bid, data
        except ObjectNotFound:
            if not self._index_reloaded():
                raise
            yield from self._read_blobs([b for b in wanted if b not in done])

    def _read_blobs(self, blob_ids: list[ObjectId]) -> Iterator[tuple[ObjectId, bytes]]:
        by_pack: dict[ObjectId, list[BlobRef]] = defaultdict(list)
        self.index.warm(blob_ids)  # one query per 500, not one per blob
        for bid in blob_ids:
            ref = self.ref(bid)
            by_pack[ref.pack].append(ref)
        groups: list[list[BlobRef]] = []
        for _pack, refs in sorted(by_pack.items()):
            refs.sort(key=lambda r: r.offset)
            group: list[BlobRef] = []
            for ref in refs:
                if group and (ref.offset - (group[-1].offset + group[-1].length) > COALESCE_GAP
                              or ref.offset + ref.length - group[0].offset > COALESCE_MAX):
                    groups.append(group)
                    group = []
                group.append(ref)
            if group:
                groups.append(group)
        if self.transfers > 1 and len(groups) > 1:
            results: Iterable[list[tuple[ObjectId, bytes]]] = self.pool().map(
                self._read_group, groups)
        else:
            results = map(self._read_group, groups)
        for blobs in results:
            yield from blobs

    def _index_reloaded(self) -> bool:
        """Read the records and the index again (at most once per run: a prune may have
        run since this run read them); whether it did. Call from the run's own thread
        (the local cache is a SQLite connection)."""
        with self._reload_lock:
            if self._reloaded:
                return True
            self._reloaded = True
            self._index = None
            self._prune = self._load_records(fresh=True)
            self.index  # noqa: B018
            return True

    def _read_group(self, group: list[BlobRef]) -> list[tuple[ObjectId, bytes]]:
        """One ranged read covering `group` (blobs of one pack), each blob verified."""
        start = group[0].offset
        end = max(r.offset + r.length for r in group)
        data = self.store.get_range(pack_name(group[0].pack), start, end - start)
        out = []
        for ref in group:
            stored = data[ref.offset - start : ref.offset - start + ref.length]
            out.append((ref.id, decode_blob(ref, stored, self.hasher)))
        return out

    def writer(self) -> RepoWriter:
        return RepoWriter(self)

    # ---- trees -----------------------------------------------------------------------
    def get_tree(self, tree_id: ObjectId) -> Tree:
        tree = self._fetched.pop(tree_id, None)
        if tree is not None:
            return tree
        data = self.cache.get_object(tree_id)
        if data is None or self.hasher.id(data) != tree_id:
            return self._fetch_trees(tree_id)
        return decode_tree(data, f"tree {tree_id[:12]}")

    def _fetch_trees(self, root: ObjectId) -> Tree:
        """A tree the local cache lacks, read together with every tree below it that the
        cache lacks too, a level at a time (coalesced ranged reads on the transfer
        threads, each blob verified), and kept in the cache in one go: a clone reads a
        vault's folders in a few requests and one transaction, not one of each per
        folder. A level below the first that cannot be read is left to be read when
        asked for (with the error it has then)."""
        trees: dict[ObjectId, Tree] = {}
        stored: list[tuple[ObjectId, bytes]] = []
        level = [root]
        while level:
            try:
                got = dict(self.read_blobs(level))
            except (IntegrityError, ObjectNotFound):
                if level[0] == root:
                    raise
                break
            below: dict[ObjectId, None] = {}
            for tid in level:
                tree = trees[tid] = decode_tree(got[tid], f"tree {tid[:12]}")
                stored.append((tid, got[tid]))
                for e in tree.entries:
                    if e.tree is not None and e.tree not in trees and e.tree not in below \
                            and self.cache.get_object(e.tree) is None:
                        below[e.tree] = None
            level = list(below)
        self.cache.put_objects(stored)
        self._fetched.update(trees)  # decoded once: handed out once each, then dropped
        return self._fetched.pop(root)

    # ---- snapshots -------------------------------------------------------------------
    def get_snapshot(self, sid: ObjectId) -> Snapshot:
        stored = self.cache.get_object(sid)
        if stored is None or self.hasher.id(stored) != sid:
            stored = self.store.get(f"snapshots/{sid}")
            self.hasher.verify(stored, sid, f"snapshot {sid[:12]}")
            self.cache.put_object(sid, stored)
        return decode_snapshot(codec.decode(stored, MAX_SNAPSHOT, f"snapshot {sid[:12]}"))

    def put_snapshot(self, snap: Snapshot) -> ObjectId:
        stored = codec.encode(snap.encode())
        sid = self.hasher.id(stored)
        self.store.put(f"snapshots/{sid}", stored)
        self.cache.put_object(sid, stored)
        return sid

    def ancestors(self, sid: ObjectId) -> frozenset[ObjectId]:
        """`sid` and every snapshot it descends from (see `lineage`)."""
        return self.lineage.ancestors(sid)

    # ---- heads -----------------------------------------------------------------------
    def read_heads(self, own: str | None = None) -> dict[str, ObjectId]:
        """Every device's head. A malformed head stops the run (a repository no device can
        read must be looked at), except `own`'s, which is left out: that device publishes
        it again on its next commit (`malformed_own_head` says so)."""
        heads = {}
        self.malformed_own_head = False
        self.marker_listed = False
        for info in self.store.list("heads/"):
            device = info.name.split("/", 1)[1]
            if info.name == MARKER:
                self.marker_listed = True
            if not DEVICE_RE.match(device):
                continue
            stored = self.store.get(info.name)
            try:
                doc = json.loads(codec.decode(stored, MAX_HEAD, f"head {device}").decode()
                                 or "null")
            except (IntegrityError, ValueError):
                doc = None
            if not isinstance(doc, dict) or not is_object_id(doc.get("snapshot")):
                if device == own:
                    self.malformed_own_head = True
                    continue
                raise IntegrityError(
                    f"the head of device {device[:8]} ({info.name}) is malformed; remove "
                    "that file: the device publishes its head again on its next sync")
            heads[device] = doc["snapshot"]
        return heads

    def write_head(self, device: str, sid: ObjectId) -> None:
        doc = canonical_json({"snapshot": sid})
        self.store.put(f"heads/{check_device_id(device)}", codec.encode(doc, compress=False))


class RepoWriter:
    """Buffers new blobs into packs; `commit_index` writes the index segment.

    A full pack is built (joined, hashed) and stored on the repository's transfer
    threads, at most `transfers` at a time, while the caller fills the next one; its
    references join `refs`, in pack order, once it is stored (`wait`)."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.packs = PackWriter(repo.hasher, repo.format.pack_size)
        self.refs: list[BlobRef] = []
        self.pending: set[ObjectId] = set()
        self.packs_written = 0
        self._uploads: deque[Future[list[BlobRef]]] = deque()  # at most `transfers`

    def encode(self, raw: bytes) -> bytes:
        """A blob through the codec as this writer stores it (safe on any thread)."""
        return codec.encode(raw, self.packs.compress)

    def wants(self, blob_id: ObjectId) -> bool:
        """Whether `add` would store this blob (neither buffered nor in the repository)."""
        return blob_id not in self.pending and not self.repo.has_blob(blob_id)

    def add(self, blob_id: ObjectId, blob_type: int, raw: bytes, again: bool = False) -> None:
        """Buffer a blob unless the repository has it (`again`: store it anyway, as
        prune does when it copies a blob out of a pack it deletes)."""
        if blob_id in self.pending or (not again and self.repo.has_blob(blob_id)):
            return
        self._buffer(blob_id, blob_type, self.encode(raw), len(raw))

    def add_encoded(self, blob_id: ObjectId, blob_type: int, stored: bytes,
                    raw_length: int) -> None:
        """`add` for a blob already through `encode` (done on another thread)."""
        if self.wants(blob_id):
            self._buffer(blob_id, blob_type, stored, raw_length)

    def _buffer(self, blob_id: ObjectId, blob_type: int, stored: bytes,
                raw_length: int) -> None:
        self.packs.add_encoded(blob_id, blob_type, stored, raw_length)
        self.pending.add(blob_id)
        if self.packs.full:
            self.flush()

    def add_tree(self, tree_id: ObjectId, encoded: bytes) -> None:
        self.add(tree_id, TREE, encoded)
        self.repo.cache.put_object(tree_id, encoded)

    def add_trees(self, trees: dict[ObjectId, bytes]) -> None:
        """`add_tree` for many, kept in the local cache in one go."""
        for tree_id, encoded in trees.items():
            self.add(tree_id, TREE, encoded)
        self.repo.cache.put_objects(trees.items())

    def flush(self) -> None:
        if not len(self.packs):
            return
        sealed = self.packs.seal()
        if self.repo.transfers > 1:
            while len(self._uploads) >= self.repo.transfers:
                self.refs.extend(self._uploads.popleft().result())
            self._uploads.append(self.repo.pool().submit(self._store, sealed))
        else:
            self.refs.extend(self._store(sealed))
        self.packs_written += 1

    def _store(self, sealed: SealedPack) -> list[BlobRef]:
        pack_id, data, refs = sealed.build()
        self.repo.store.put(pack_name(pack_id), data)
        return refs

    def forget_written(self) -> None:
        """A prune ran while this writer was at work: the packs it wrote may have been
        named (packs no index names yet) or deleted since. Forget them: what is still
        needed is checked against the index read again, and stored again if missing
        (a pack that did survive is left to a later prune)."""
        self.wait()
        self.pending = set(self.packs.ids)
        self.refs = []

    def wait(self) -> None:
        """Every pack upload finished, its references in `refs` (the first failure is
        raised)."""
        while self._uploads:
            self.refs.extend(self._uploads.popleft().result())

    def commit_index(self) -> ObjectId | None:
        """Flush the last pack and write one index segment naming every new blob, once
        every pack is stored (commit order)."""
        self.flush()
        self.wait()
        if not self.refs:
            return None
        stored = encode_segment(self.refs)
        sid = self.repo.hasher.id(stored)
        self.repo.store.put(f"index/{sid}", stored)
        self.repo.cache.add_index_segment(sid, list(self.refs))
        for r in self.refs:
            self.repo.index[r.id] = r
        self.refs = []
        return sid
