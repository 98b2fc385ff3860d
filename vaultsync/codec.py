"""The blob codec pipeline: one codec byte in front of every stored blob.

Codec 0 is raw, codec 1 is zstd. A future encrypted format adds codecs (compress, then
encrypt) here. No other module imports `zstandard`.
"""

from __future__ import annotations

import threading

import zstandard

from vaultsync.errors import IntegrityError

RAW = 0
ZSTD = 1
_local = threading.local()


def _compressor() -> zstandard.ZstdCompressor:  # one per thread: not thread-safe
    c = getattr(_local, "c", None)
    if c is None:
        c = _local.c = zstandard.ZstdCompressor(level=3, write_content_size=True)
    return c


def _decompressor() -> zstandard.ZstdDecompressor:
    d = getattr(_local, "d", None)
    if d is None:
        d = _local.d = zstandard.ZstdDecompressor()
    return d


def encode(data: bytes, compress: bool = True) -> bytes:
    """Codec byte + payload; zstd only where it saves at least 1/16 of the bytes."""
    if compress and len(data) >= 64:
        packed = _compressor().compress(data)
        if len(packed) < len(data) - len(data) // 16:
            return bytes([ZSTD]) + packed
    return bytes([RAW]) + data


def decode(blob: bytes, max_size: int, what: str) -> bytes:
    """Inverse of `encode`; refuses outputs over `max_size` (decompression bombs)."""
    if not blob:
        raise IntegrityError(f"{what}: empty blob")
    codec, payload = blob[0], blob[1:]
    if codec == RAW:
        if len(payload) > max_size:
            raise IntegrityError(f"{what}: blob larger than its recorded size")
        return bytes(payload)
    if codec == ZSTD:
        try:
            size = zstandard.frame_content_size(payload)
        except zstandard.ZstdError:
            raise IntegrityError(f"{what}: corrupt compressed blob") from None
        if size < 0 or size > max_size:
            raise IntegrityError(f"{what}: compressed blob claims an absurd size")
        try:
            return _decompressor().decompress(payload, max_output_size=max_size)
        except zstandard.ZstdError:
            raise IntegrityError(f"{what}: corrupt compressed blob") from None
    raise IntegrityError(f"{what}: unknown codec {codec}")
