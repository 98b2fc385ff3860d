"""Index segments: immutable objects mapping blob ids to (pack, offset, length).

Encoding (before the codec): magic b"VSIDX01\\n", u32 pack count, pack ids (32 bytes
each), u32 record count, records (id 32 bytes, type u8, pack number u32, offset u64,
stored length u32, raw length u32). One segment is written per committing run; readers
union all segments. The object name is the hash of the stored bytes.
"""

from __future__ import annotations

import struct

from vaultsync import codec
from vaultsync.errors import IntegrityError
from vaultsync.repository.packs import BLOB_TYPES, MAX_BLOB_RAW, BlobRef

MAGIC = b"VSIDX01\n"
_U32 = struct.Struct("<I")
_REC = struct.Struct("<32sBIQII")
MAX_SEGMENT = 256 * 1024 * 1024
MAX_PACK_SIZE = 1 << 32


def encode_segment(refs: list[BlobRef]) -> bytes:
    packs = sorted({r.pack for r in refs})
    number = {p: i for i, p in enumerate(packs)}
    parts = [MAGIC, _U32.pack(len(packs))]
    parts += [bytes.fromhex(p) for p in packs]
    parts.append(_U32.pack(len(refs)))
    parts += [
        _REC.pack(bytes.fromhex(r.id), r.type, number[r.pack], r.offset, r.length, r.raw_length)
        for r in sorted(refs, key=lambda r: r.id)
    ]
    return codec.encode(b"".join(parts))


def decode_segment(stored: bytes, what: str) -> list[BlobRef]:
    data = codec.decode(stored, MAX_SEGMENT, what)
    try:
        if data[: len(MAGIC)] != MAGIC:
            raise IntegrityError(f"{what}: not an index segment")
        pos = len(MAGIC)
        (npacks,) = _U32.unpack_from(data, pos)
        pos += 4
        if npacks * 32 > len(data):
            raise IntegrityError(f"{what}: absurd pack count")
        packs = [data[pos + 32 * i : pos + 32 * (i + 1)].hex() for i in range(npacks)]
        pos += 32 * npacks
        (nrecs,) = _U32.unpack_from(data, pos)
        pos += 4
        if pos + nrecs * _REC.size != len(data):
            raise IntegrityError(f"{what}: wrong length for {nrecs} records")
        refs = []
        for _ in range(nrecs):
            raw_id, btype, pno, off, length, raw = _REC.unpack_from(data, pos)
            pos += _REC.size
            if (btype not in BLOB_TYPES or pno >= npacks or raw > MAX_BLOB_RAW
                    or length > MAX_BLOB_RAW + 1024 or off + length > MAX_PACK_SIZE
                    or length == 0):
                raise IntegrityError(f"{what}: corrupt record")
            refs.append(BlobRef(raw_id.hex(), btype, packs[pno], off, length, raw))
        return refs
    except struct.error:
        raise IntegrityError(f"{what}: truncated") from None
