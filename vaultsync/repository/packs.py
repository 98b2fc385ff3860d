"""Packs: many blobs (chunks and trees) back to back in one remote object.

Layout: blob, blob, ..., trailer, trailer length (u32 LE), magic b"VSPACK01".
Each blob is a codec byte + payload (see `vaultsync.codec`). The trailer is a sequence
of fixed records (id 32 bytes, type u8, stored length u32, raw length u32) in blob order,
so a pack can be re-indexed from itself. A pack's name is the hash of its bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from vaultsync import codec
from vaultsync.chunking import Hasher
from vaultsync.errors import IntegrityError
from vaultsync.model import ObjectId

MAGIC = b"VSPACK01"
_REC = struct.Struct("<32sBII")
_TAIL = struct.Struct("<I8s")
CHUNK = 0
TREE = 1
BLOB_TYPES = (CHUNK, TREE)
MAX_BLOB_RAW = 64 * 1024 * 1024  # chunker max and tree size bound


def pack_name(pack_id: ObjectId) -> str:
    return f"packs/{pack_id[:2]}/{pack_id}"


@dataclass(frozen=True, slots=True)
class BlobRef:
    """Where a blob lives: pack id, byte offset and stored length, raw length."""

    id: ObjectId
    type: int
    pack: ObjectId
    offset: int
    length: int
    raw_length: int


class PackWriter:
    """Collects blobs until the pack reaches its target size."""

    def __init__(self, hasher: Hasher, target_size: int, compress: bool = True) -> None:
        self.hasher = hasher
        self.target_size = target_size
        self.compress = compress
        self._parts: list[bytes] = []
        self._records: list[tuple[ObjectId, int, int, int, int]] = []
        self._size = 0
        self._ids: set[ObjectId] = set()

    def __len__(self) -> int:
        return len(self._records)

    @property
    def ids(self) -> frozenset[ObjectId]:
        """The blobs buffered for the pack being filled."""
        return frozenset(self._ids)

    @property
    def full(self) -> bool:
        return self._size >= self.target_size

    def add(self, blob_id: ObjectId, blob_type: int, raw: bytes) -> bool:
        """Add a blob; False if this pack already holds it."""
        if blob_id in self._ids:
            return False
        return self.add_encoded(blob_id, blob_type, codec.encode(raw, self.compress), len(raw))

    def add_encoded(self, blob_id: ObjectId, blob_type: int, stored: bytes,
                    raw_length: int) -> bool:
        """Add a blob already through the codec (`codec.encode(raw, self.compress)`, done
        on another thread); False if this pack already holds it."""
        if blob_id in self._ids:
            return False
        self._records.append((blob_id, blob_type, self._size, len(stored), raw_length))
        self._parts.append(stored)
        self._size += len(stored)
        self._ids.add(blob_id)
        return True

    def seal(self) -> SealedPack:
        """The blobs collected so far, as a pack to build (on any thread); resets the
        writer for the next pack."""
        sealed = SealedPack(self.hasher, self._parts, self._records)
        self._parts, self._records, self._size, self._ids = [], [], 0, set()
        return sealed

    def finish(self) -> tuple[ObjectId, bytes, list[BlobRef]]:
        """The pack's id, its bytes and the references to its blobs; resets the writer."""
        return self.seal().build()


@dataclass(frozen=True, slots=True)
class SealedPack:
    hasher: Hasher
    parts: list[bytes]
    records: list[tuple[ObjectId, int, int, int, int]]

    def build(self) -> tuple[ObjectId, bytes, list[BlobRef]]:
        """The pack's id, its bytes and the references to its blobs (once)."""
        trailer = b"".join(
            _REC.pack(bytes.fromhex(bid), btype, length, raw)
            for bid, btype, _off, length, raw in self.records
        )
        data = b"".join([*self.parts, trailer, _TAIL.pack(len(trailer), MAGIC)])
        self.parts.clear()  # the blobs live on in `data` only (memory: one copy per pack)
        pack_id = self.hasher.id(data)
        refs = [BlobRef(bid, btype, pack_id, off, length, raw)
                for bid, btype, off, length, raw in self.records]
        return pack_id, data, refs


def read_trailer(data: bytes, pack_id: ObjectId) -> list[BlobRef]:
    """Parse a whole pack's trailer (used by verify and index rebuilds)."""
    if len(data) < _TAIL.size:
        raise IntegrityError(f"pack {pack_id[:12]} is truncated")
    tlen, magic = _TAIL.unpack_from(data, len(data) - _TAIL.size)
    if magic != MAGIC or tlen % _REC.size or tlen > len(data) - _TAIL.size:
        raise IntegrityError(f"pack {pack_id[:12]} has a corrupt trailer")
    start = len(data) - _TAIL.size - tlen
    refs, offset = [], 0
    for pos in range(start, start + tlen, _REC.size):
        raw_id, btype, length, raw = _REC.unpack_from(data, pos)
        if btype not in BLOB_TYPES or raw > MAX_BLOB_RAW or offset + length > start:
            raise IntegrityError(f"pack {pack_id[:12]} has a corrupt trailer record")
        refs.append(BlobRef(raw_id.hex(), btype, pack_id, offset, length, raw))
        offset += length
    return refs


def decode_blob(ref: BlobRef, stored: bytes, hasher: Hasher) -> bytes:
    """Decode a blob read from its pack and verify it against its id."""
    what = f"blob {ref.id[:12]} in pack {ref.pack[:12]}"
    raw = codec.decode(stored, ref.raw_length, what)
    if len(raw) != ref.raw_length:
        raise IntegrityError(f"{what}: wrong length")
    hasher.verify(raw, ref.id, what)
    return raw
