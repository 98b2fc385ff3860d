"""Prune records: `prune/<id>`, what a prune decided, read by every run (design.md,
"Pruning").

Two kinds, each immutable and named by the hash of its stored bytes:

- "pending" (phase 1): snapshots and packs a prune will delete once the grace period
  has passed. A run that sees one never reuses a blob of a named pack (it uploads that
  chunk again) and never names a named snapshot as the parent of a new one.
- "forgotten" (after phase 2): the deleted snapshots that surviving snapshots still
  name as parents, and grafts: for each surviving snapshot with such a link, its nearest
  surviving ancestors. `Repository.lineage` reads parents through both (a link to a
  forgotten snapshot is dropped, the graft stands in), so no run walks into history that
  is gone (not even through its own local cache), and which kept snapshot contains which
  stays exactly as it was: a head that another head contains is still seen as contained.
  Each phase 2 writes a new one and drops the old: it only lists the targets of dangling
  links and the snapshots that have them, so it stays as small as the kept history.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property

from vaultsync import codec
from vaultsync.chunking import Hasher
from vaultsync.errors import IntegrityError, MarkerDamaged, ObjectNotFound
from vaultsync.model import ObjectId, canonical_json, is_object_id

PREFIX = "prune/"
# the records in force: a run learns of them from the heads listing it makes anyway (no
# extra request where no prune ever ran); only a record named here is honoured, and
# only a record honoured from its creation on is ever collected
MARKER = "heads/prune"
PENDING = "pending"
FORGOTTEN = "forgotten"
MAX_RECORD = 64 * 1024 * 1024


@dataclass(frozen=True)
class Record:
    kind: str
    time_ns: int
    device: str = ""
    snapshots: frozenset[ObjectId] = frozenset()
    packs: frozenset[ObjectId] = frozenset()
    id: ObjectId = ""
    grafts: tuple[tuple[ObjectId, tuple[ObjectId, ...]], ...] = ()  # (snapshot, ancestors)

    def encode(self) -> bytes:
        return codec.encode(canonical_json({
            "v": 1, "kind": self.kind, "time_ns": self.time_ns, "device": self.device,
            "snapshots": sorted(self.snapshots), "packs": sorted(self.packs),
            "grafts": {sid: sorted(anc) for sid, anc in sorted(self.grafts)}}))


def decode_record(stored: bytes, rid: ObjectId) -> Record:
    what = f"prune record {rid[:12]} (prune/{rid})"
    try:
        doc = json.loads(codec.decode(stored, MAX_RECORD, what))
    except (ValueError, UnicodeDecodeError):
        doc = None
    if (not isinstance(doc, dict) or doc.get("v") != 1
            or doc.get("kind") not in (PENDING, FORGOTTEN)
            or not isinstance(doc.get("time_ns"), int) or isinstance(doc["time_ns"], bool)
            or not isinstance(doc.get("device"), str)
            or not _ids(doc.get("snapshots")) or not _ids(doc.get("packs"))
            or not isinstance(doc.get("grafts", {}), dict)
            or not all(is_object_id(k) and _ids(v) for k, v in doc.get("grafts", {}).items())):
        raise IntegrityError(f"{what} is malformed; remove that file and run prune again")
    grafts = tuple((k, tuple(v)) for k, v in sorted(doc.get("grafts", {}).items()))
    return Record(doc["kind"], doc["time_ns"], doc["device"], frozenset(doc["snapshots"]),
                  frozenset(doc["packs"]), rid, grafts)


def _ids(value: object) -> bool:
    return isinstance(value, list) and all(is_object_id(v) for v in value)


def _union(sets: Iterable[frozenset[ObjectId]]) -> frozenset[ObjectId]:
    return frozenset().union(*sets)


@dataclass(frozen=True)
class PruneState:
    """Every record on the remote, as one run sees it (what is derived from them is
    computed once: lineage asks for it at every snapshot it walks)."""

    pending: tuple[Record, ...] = ()
    forgotten_records: tuple[Record, ...] = ()
    stamp: str = ""  # the marker's ("": no marker); new with every write
    generation: int = 0  # the marker's (0: no marker); every prune that writes it adds one

    @cached_property
    def forgotten(self) -> frozenset[ObjectId]:
        return _union(r.snapshots for r in self.forgotten_records)

    @cached_property
    def grafts(self) -> dict[ObjectId, tuple[ObjectId, ...]]:
        return {sid: anc for r in self.forgotten_records for sid, anc in r.grafts}

    @cached_property
    def named_snapshots(self) -> frozenset[ObjectId]:
        return _union(r.snapshots for r in self.pending)

    @cached_property
    def condemned_packs(self) -> frozenset[ObjectId]:
        return _union(r.packs for r in self.pending)

    @cached_property
    def ids(self) -> frozenset[ObjectId]:
        return frozenset(r.id for r in (*self.pending, *self.forgotten_records))


def read_record(rid: ObjectId, get: Callable[[str], bytes], hasher: Hasher) -> Record:
    """One record: read (`get(name)` -> stored bytes), verified against its id, decoded."""
    stored = get(f"{PREFIX}{rid}")
    hasher.verify(stored, rid, f"prune record {rid[:12]}")
    return decode_record(stored, rid)


def load_records(ids: Iterable[ObjectId], get: Callable[[str], bytes],
                 hasher: Hasher, stamp: str = "", generation: int = 0) -> PruneState:
    """The records `ids`. A record deleted since the marker was read is skipped: a
    prune that finished its phase 2 removes its records."""
    pending: list[Record] = []
    forgotten: list[Record] = []
    for rid in sorted(ids):
        if not is_object_id(rid):
            continue
        try:
            record = read_record(rid, get, hasher)
        except ObjectNotFound:
            continue
        (pending if record.kind == PENDING else forgotten).append(record)
    return PruneState(tuple(pending), tuple(forgotten), stamp, generation)


def encode_marker(ids: Iterable[ObjectId], generation: int) -> bytes:
    """The marker: the records in force, a generation that every prune that writes it
    raises, and a random stamp (a run that sees another stamp at its commit than at its
    start knows a prune ran meanwhile, whatever the records say now)."""
    return codec.encode(canonical_json({"v": 1, "records": sorted(set(ids)),
                                        "generation": generation,
                                        "stamp": secrets.token_hex(8)}), compress=False)


def decode_marker(stored: bytes) -> tuple[list[ObjectId], str, int]:
    """The records the marker names, its stamp (new with every write: two prunes that
    write the same generation still write different stamps) and its generation."""
    try:
        doc = json.loads(codec.decode(stored, MAX_RECORD, MARKER))
    except (ValueError, UnicodeDecodeError):
        doc = None
    gen = doc.get("generation", 0) if isinstance(doc, dict) else None
    if (not isinstance(doc, dict) or doc.get("v") != 1 or not _ids(doc.get("records"))
            or not isinstance(gen, int) or isinstance(gen, bool) or gen < 0
            or not isinstance(doc.get("stamp", ""), str)):
        raise MarkerDamaged(f"{MARKER} is malformed; run 'vaultsync prune' to rebuild it "
                            "(do not delete it: it names the history prune forgot)")
    return list(doc["records"]), f"{gen}:{doc.get('stamp', '')}", gen
