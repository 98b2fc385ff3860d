import io
import random
import tracemalloc

import pytest

from vaultsync import codec
from vaultsync.chunking import Chunker, ChunkerParams, Hasher
from vaultsync.errors import IntegrityError

SEED = 20261123
# Golden: the default repository parameters cut this seeded data exactly here. Changing
# the chunker (or its parameters) changes every id and makes existing repositories
# re-upload everything: this test must not be "fixed" by updating the numbers.
GOLDEN_LENGTHS = [458881, 964530, 340373, 222614, 735801, 408186, 713019, 378906, 355659,
                  422760, 808219, 482508]
GOLDEN_ID_PREFIXES = ["1409b542309dbcd6", "ff4079c3d31379d4", "c108c055240bea80",
                      "3a8f55addb9657cd", "94543e0777cff442", "d675715785a4d1a8"]


def seeded(n: int, seed: int = SEED) -> bytes:
    return random.Random(seed).randbytes(n)


def test_golden_chunk_boundaries_and_ids() -> None:
    chunks = list(Chunker(ChunkerParams(), Hasher()).chunks(io.BytesIO(seeded(6 * 1024 * 1024))))
    assert [c.length for c in chunks] == GOLDEN_LENGTHS
    assert [c.id[:16] for c in chunks[:6]] == GOLDEN_ID_PREFIXES
    assert ChunkerParams().to_json() == {"algorithm": "fastcdc-2020", "min": 131072,
                                         "avg": 524288, "max": 2097152}


def test_hasher_is_blake3_256() -> None:
    assert Hasher().id(b"") == "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"


def test_compiled_fastcdc_is_what_runs() -> None:
    chunker = Chunker(ChunkerParams(), Hasher())
    assert chunker._cdc.__module__ == "fastcdc.fastcdc_cy"


def test_missing_compiled_fastcdc_fails_loudly(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import sys

    from vaultsync.errors import MissingDependency

    monkeypatch.setitem(sys.modules, "fastcdc.fastcdc_cy", None)  # import now fails
    with pytest.raises(MissingDependency, match="compiled FastCDC"):
        Chunker(ChunkerParams(), Hasher())


class TinyReads(io.RawIOBase):
    """A stream that hands out data in awkward small pieces."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.pos, self.step = data, 0, step

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = self.step if n < 0 else min(n, self.step)
        out = self.data[self.pos : self.pos + n]
        self.pos += len(out)
        return out


@pytest.mark.parametrize("block", [1024, 4096, 50_000])
def test_streaming_gives_the_same_cuts_as_one_buffer(block: int) -> None:
    params = ChunkerParams(256, 1024, 4096)
    data = seeded(300_000, seed=7)
    whole = Chunker(params, Hasher())
    whole.block = 10**9
    reference = [(c.offset, c.length, c.id) for c in whole.chunks(io.BytesIO(data))]
    streaming = Chunker(params, Hasher())
    streaming.block = block
    got = [(c.offset, c.length, c.id) for c in streaming.chunks(TinyReads(data, block))]
    assert got == reference
    assert sum(length for _, length, _ in got) == len(data)


def test_empty_stream_has_no_chunks() -> None:
    assert list(Chunker(ChunkerParams(), Hasher()).chunks(io.BytesIO(b""))) == []


def test_large_file_is_streamed_not_loaded(tmp_path) -> None:  # type: ignore[no-untyped-def]
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:  # 256 MiB, sparse except for some data at both ends
        f.write(seeded(1 << 20))
        f.seek(256 << 20)
        f.write(seeded(1 << 20, seed=2))
    chunker = Chunker(ChunkerParams(), Hasher())
    tracemalloc.start()
    total = 0
    with open(big, "rb") as f:
        for c in chunker.chunks(f):
            total += c.length
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert total == big.stat().st_size
    assert peak < 48 << 20, f"peak memory {peak >> 20} MiB: the file was not streamed"


def test_chunker_params_are_validated() -> None:
    with pytest.raises(IntegrityError):
        ChunkerParams(4096, 1024, 2048)
    with pytest.raises(IntegrityError):
        ChunkerParams.from_json({"algorithm": "rabin", "min": 1, "avg": 2, "max": 3})


def test_codec_round_trip_and_compression_only_when_it_helps() -> None:
    text = b"# note\n" * 1000
    noise = seeded(5000)
    assert codec.encode(text)[0] == codec.ZSTD and len(codec.encode(text)) < len(text) // 10
    assert codec.encode(noise)[0] == codec.RAW
    for raw in (text, noise, b""):
        assert codec.decode(codec.encode(raw), len(raw), "t") == raw


def test_codec_refuses_bombs_and_garbage() -> None:
    bomb = codec.encode(b"\0" * 10_000_000)
    with pytest.raises(IntegrityError, match="absurd"):
        codec.decode(bomb, 1000, "t")
    with pytest.raises(IntegrityError):
        codec.decode(b"\x01garbage", 1000, "t")
    with pytest.raises(IntegrityError, match="unknown codec"):
        codec.decode(b"\x09abc", 1000, "t")
    with pytest.raises(IntegrityError):
        codec.decode(b"\x00" + b"x" * 20, 10, "t")


def test_verify_raises_on_mismatch() -> None:
    h = Hasher()
    h.verify(b"abc", h.id(b"abc"), "x")
    with pytest.raises(IntegrityError, match="hash mismatch"):
        h.verify(b"abd", h.id(b"abc"), "x")


def test_a_corrupt_blob_does_not_spoil_the_threads_reused_decompressor() -> None:
    good = codec.encode(b"note text " * 500)
    assert good[0] == codec.ZSTD
    for blob in (good[: len(good) // 2], good[:-3] + b"\xff\xff\xff"):
        with pytest.raises(IntegrityError):
            codec.decode(blob, 10_000, "blob")
        assert codec.decode(good, 10_000, "blob") == b"note text " * 500
