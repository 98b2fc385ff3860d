"""The repository index, read from the local cache one blob at a time until a caller
needs all of it: a small change looks up the few blobs it writes or reads, not the
index of the whole vault (cost follows the change)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator

from vaultsync.model import ObjectId
from vaultsync.repository.packs import BlobRef

# lookups one by one beyond this many: reading everything at once is cheaper
WHOLE_AFTER = 20_000


def better(best: BlobRef | None, ref: BlobRef,
           condemned: frozenset[ObjectId] | set[ObjectId]) -> bool:
    """Whether `ref` is a better copy of its blob than `best`: the first, or one outside
    the packs a pending prune names where `best` is inside them (the copy to read and
    to build on)."""
    return best is None or (best.pack in condemned and ref.pack not in condemned)


def choose(refs: Iterable[BlobRef], condemned: frozenset[ObjectId] | set[ObjectId],
           ) -> BlobRef | None:
    """Of a blob's copies, the one to use (`better`)."""
    best = None
    for ref in refs:
        if better(best, ref, condemned):
            best = ref
    return best


class LazyIndex:
    """blob id -> BlobRef. `refs_of(ids)` returns the cached refs of those ids;
    `all_refs()` every ref; `condemned()` the packs a pending prune names."""

    def __init__(self, refs_of: Callable[[list[ObjectId]], Iterable[BlobRef]],
                 all_refs: Callable[[], Iterable[BlobRef]],
                 condemned: Callable[[], frozenset[ObjectId] | set[ObjectId]]) -> None:
        self._refs_of, self._all_refs, self._condemned = refs_of, all_refs, condemned
        self._some: dict[ObjectId, BlobRef | None] = {}
        self._all: dict[ObjectId, BlobRef] | None = None
        self._lock = threading.Lock()

    def whole(self) -> dict[ObjectId, BlobRef]:
        with self._lock:
            if self._all is None:
                condemned = self._condemned()
                out: dict[ObjectId, BlobRef] = {}
                for r in self._all_refs():
                    if better(out.get(r.id), r, condemned):
                        out[r.id] = r
                self._all = out
            return self._all

    def warm(self, ids: Iterable[ObjectId]) -> None:
        """Look up many ids at once (one query per batch)."""
        if self._all is not None:
            return
        todo = [i for i in dict.fromkeys(ids) if i not in self._some]
        if len(self._some) + len(todo) > WHOLE_AFTER:
            self.whole()
            return
        condemned = self._condemned()
        with self._lock:
            for start in range(0, len(todo), 500):
                part = todo[start:start + 500]
                found: dict[ObjectId, list[BlobRef]] = {i: [] for i in part}
                for ref in self._refs_of(part):
                    found[ref.id].append(ref)
                for i, refs in found.items():
                    self._some[i] = choose(refs, condemned)

    def get(self, blob_id: ObjectId, default: BlobRef | None = None) -> BlobRef | None:
        if self._all is not None:
            return self._all.get(blob_id, default)
        if blob_id not in self._some:
            self.warm((blob_id,))
            if self._all is not None:
                return self._all.get(blob_id, default)
        ref = self._some.get(blob_id)
        return default if ref is None else ref

    def __contains__(self, blob_id: object) -> bool:
        return isinstance(blob_id, str) and self.get(blob_id) is not None

    def __getitem__(self, blob_id: ObjectId) -> BlobRef:
        ref = self.get(blob_id)
        if ref is None:
            raise KeyError(blob_id)
        return ref

    def __setitem__(self, blob_id: ObjectId, ref: BlobRef) -> None:
        """A blob this run stored (already in the cache, see `RepoWriter`)."""
        with self._lock:
            self._some[blob_id] = ref
            if self._all is not None:
                self._all[blob_id] = ref

    def __iter__(self) -> Iterator[ObjectId]:
        return iter(self.whole())

    def __len__(self) -> int:
        return len(self.whole())

    def items(self) -> Iterable[tuple[ObjectId, BlobRef]]:
        return self.whole().items()

    def values(self) -> Iterable[BlobRef]:
        return self.whole().values()

    def keys(self) -> Iterable[ObjectId]:
        return self.whole().keys()
