import json

import pytest

from vaultsync import codec
from vaultsync.chunking import Hasher
from vaultsync.errors import FormatTooNew, IntegrityError, NotARepository, RemoteUnreachable
from vaultsync.repository.format import RepoFormat, decode_format
from vaultsync.repository.index import decode_segment, encode_segment
from vaultsync.repository.packs import CHUNK, TREE, BlobRef, PackWriter, decode_blob, read_trailer
from vaultsync.repository.repo import Repository
from vaultsync.store.counting import CountingStore
from vaultsync.store.local import LocalStore
from vaultsync.store.memory import MemoryStore

H = Hasher()


def blobs(n: int) -> list[tuple[str, bytes]]:
    out = []
    for i in range(n):
        raw = (f"note {i}\n" * (i + 1)).encode()
        out.append((H.id(raw), raw))
    return out


def test_pack_round_trip_and_trailer() -> None:
    pw = PackWriter(H, 1 << 20)
    items = blobs(20)
    for bid, raw in items:
        assert pw.add(bid, CHUNK, raw)
    assert not pw.add(items[0][0], CHUNK, items[0][1])  # duplicates are dropped
    pack_id, data, refs = pw.finish()
    assert pack_id == H.id(data)
    assert read_trailer(data, pack_id) == refs
    for (_, raw), ref in zip(items, refs, strict=True):
        assert decode_blob(ref, data[ref.offset : ref.offset + ref.length], H) == raw


def test_corrupt_blob_is_detected() -> None:
    pw = PackWriter(H, 1 << 20, compress=False)
    bid, raw = blobs(1)[0]
    pw.add(bid, CHUNK, raw)
    _, data, [ref] = pw.finish()
    stored = bytearray(data[ref.offset : ref.offset + ref.length])
    stored[-1] ^= 1
    with pytest.raises(IntegrityError, match="hash mismatch"):
        decode_blob(ref, bytes(stored), H)
    with pytest.raises(IntegrityError):
        read_trailer(data[:-3], "p" * 64)
    with pytest.raises(IntegrityError):
        read_trailer(b"xy", "p" * 64)


def test_index_segment_round_trip_and_hostile_segments() -> None:
    refs = [BlobRef(H.id(bytes([i])), CHUNK if i % 2 else TREE, H.id(b"p%d" % (i % 3)),
                    i * 10, 10, 9) for i in range(30)]
    stored = encode_segment(refs)
    by_id = lambda r: r.id  # noqa: E731
    assert sorted(decode_segment(stored, "s"), key=by_id) == sorted(refs, key=by_id)
    raw = codec.decode(stored, 1 << 20, "s")
    for bad in (raw[:-5], raw[:20], raw.replace(b"VSIDX01", b"XXIDX01")):
        with pytest.raises(IntegrityError):
            decode_segment(codec.encode(bad), "s")
    # an absurd length in a record
    absurd = bytearray(raw)
    absurd[-8:-4] = (1 << 31).to_bytes(4, "little")
    with pytest.raises(IntegrityError):
        decode_segment(codec.encode(bytes(absurd)), "s")


def test_open_refuses_non_repositories(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RemoteUnreachable):
        Repository.open(LocalStore(str(tmp_path / "missing")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(NotARepository):
        Repository.open(LocalStore(str(tmp_path / "empty")))
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "file.txt").write_text("x")
    with pytest.raises(NotARepository, match="not empty"):
        Repository.create(LocalStore(str(tmp_path / "junk")), RepoFormat.new())


def test_newer_format_refuses_writes_but_allows_reads() -> None:
    store = MemoryStore()
    Repository.create(store, RepoFormat.new())
    doc = json.loads(store.get("vaultsync.json"))
    doc["format"] = 2
    store.put("vaultsync.json", json.dumps(doc).encode())
    repo = Repository.open(store)
    with pytest.raises(FormatTooNew, match="newer"):
        repo.format.check_writable()
    doc["format"] = 1
    doc["features"]["mandatory"] = ["encryption-v1"]
    store.put("vaultsync.json", json.dumps(doc).encode())
    with pytest.raises(FormatTooNew, match="encryption-v1"):
        Repository.open(store).format.check_writable()
    doc["features"]["read_mandatory"] = ["encryption-v1"]
    store.put("vaultsync.json", json.dumps(doc).encode())
    with pytest.raises(FormatTooNew):
        Repository.open(store)


def test_malformed_config_is_an_integrity_error() -> None:
    for bad in (b"{", b"[]", b'{"format": "one"}', b'{"format": 1, "repo_id": "../x"}'):
        with pytest.raises(IntegrityError):
            decode_format(bad)


def test_coalesced_reads_fetch_many_blobs_in_few_requests() -> None:
    inner = MemoryStore()
    repo = Repository.create(inner, RepoFormat.new(pack_size=1 << 20))
    writer = repo.writer()
    items = blobs(200)
    for bid, raw in items:
        writer.add(bid, CHUNK, raw)
    writer.commit_index()
    counting = CountingStore(inner)
    reader = Repository.open(counting)
    assert reader.index.keys() >= {bid for bid, _ in items}
    got = dict(reader.read_blobs(bid for bid, _ in items))
    assert got == dict(items)
    assert counting.traffic.gets == 1 + 1 + 1  # config, index segment, one coalesced range


def test_index_is_cached_and_rebuilt_when_segments_vanish() -> None:
    store = MemoryStore()
    repo = Repository.create(store, RepoFormat.new())
    w = repo.writer()
    bid, raw = blobs(1)[0]
    w.add(bid, CHUNK, raw)
    w.commit_index()
    cache = repo.cache
    counting = CountingStore(store)
    again = Repository.open(counting, cache=cache)
    assert len(again.index) == 1
    assert counting.traffic.gets == 1  # only vaultsync.json: the segment came from cache
    for info in list(store.list("index/")):
        store.delete(info.name)
    assert len(Repository.open(store, cache=cache).index) == 0


class SlowStore(MemoryStore):
    """Counts how many puts and ranged gets overlap in time."""

    def __init__(self) -> None:
        super().__init__()
        import threading
        self.gauge = threading.Lock()
        self.now = 0
        self.most = 0

    def _busy(self, fn, *args):  # type: ignore[no-untyped-def]
        import time
        with self.gauge:
            self.now += 1
            self.most = max(self.most, self.now)
        try:
            time.sleep(0.02)
            return fn(*args)
        finally:
            with self.gauge:
                self.now -= 1

    def _put(self, name: str, data: bytes) -> None:
        self._busy(super()._put, name, data)

    def _get_range(self, name: str, offset: int, length: int) -> bytes:
        return self._busy(super()._get_range, name, offset, length)


def test_pack_transfers_run_in_parallel_but_bounded() -> None:
    store = SlowStore()
    repo = Repository.create(store, RepoFormat.new(pack_size=2048), transfers=3)
    writer = repo.writer()
    raws = [__import__("random").Random(i).randbytes(3000) for i in range(24)]
    items = [(H.id(raw), raw) for raw in raws]
    for bid, raw in items:
        writer.add(bid, CHUNK, raw)
    writer.commit_index()
    assert writer.packs_written >= 6 and store.most == 3  # never more than 3 at once
    assert store.stat(next(iter(store.list("index/"))).name) is not None
    store.most = 0
    reader = Repository.open(store, transfers=3)
    assert dict(reader.read_blobs(bid for bid, _ in items)) == dict(items)
    assert store.most == 3
    repo.close()
    reader.close()
