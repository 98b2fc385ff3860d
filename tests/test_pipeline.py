"""The overlapped upload and download (issue 11): worker threads read, hash, compress
and write while the run goes on. Whatever the threads, the repository and the vault must
come out exactly as one thread makes them, memory stays bounded, and a failure in one
worker stops the run the way it always did."""

from __future__ import annotations

import errno
import io
import os
import random
import shutil
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import tree_state, write
from vaultsync import fsutil
from vaultsync.engine import apply, materialize, oneway, pipeline, transfer
from vaultsync.errors import ChangedDuringRun, IntegrityError, LocalFailure
from vaultsync.repository.packs import pack_name
from vaultsync.repository.repo import Repository
from vaultsync.store.local import LocalStore

OLD = 1_600_000_000


# ---- the ordered, bounded pipeline ----------------------------------------------------

@pytest.mark.parametrize("workers", [1, 2, 4])
def test_ordered_gives_what_map_gives(workers: int) -> None:
    rng = random.Random(workers)
    items = [rng.randbytes(rng.randrange(50)) for _ in range(300)]

    def slow_len(b: bytes) -> tuple[int, bytes]:
        time.sleep(rng.random() / 2000)  # workers finish out of order
        return len(b), b[::-1]

    assert list(pipeline.ordered(slow_len, items, workers=workers, window=5)) == \
        list(map(slow_len, items))


def test_ordered_keeps_at_most_window_items_taken_and_not_handed_back() -> None:
    taken = handed = 0
    most = 0

    def source():  # type: ignore[no-untyped-def]
        nonlocal taken
        for i in range(200):
            taken += 1
            yield i

    for _ in pipeline.ordered(lambda i: i, source(), workers=3, window=4):
        handed += 1
        most = max(most, taken - handed + 1)  # +1: the one in the caller's hands
        time.sleep(0.0005)  # a slow consumer: the workers would run ahead if they could
    assert handed == 200 and most <= 4


def test_a_failing_worker_raises_in_order_and_every_worker_stops() -> None:
    taken = 0
    started: list[int] = []

    def source():  # type: ignore[no-untyped-def]
        nonlocal taken
        for i in range(1000):
            taken += 1
            yield i

    def work(i: int) -> int:
        started.append(i)
        if i == 37:
            raise ChangedDuringRun("file 37 changed")
        time.sleep(0.001)
        return i

    got = []
    with pytest.raises(ChangedDuringRun, match="file 37"):
        for r in pipeline.ordered(work, source(), workers=3, window=6, name="vs-test-fail"):
            got.append(r)
    assert got == list(range(37))  # everything before the failure, nothing after
    assert taken <= 37 + 6  # the source was not drained
    assert max(started) < 37 + 6
    assert not [t for t in threading.enumerate() if t.name.startswith("vs-test-fail")]


def test_closing_the_pipeline_early_stops_its_threads() -> None:
    it = pipeline.ordered(lambda i: i * 2, range(10_000), workers=2, name="vs-test-close")
    assert [next(it) for _ in range(3)] == [0, 2, 4]
    it.close()  # what a failure in the consumer does (the generator is closed)
    assert not [t for t in threading.enumerate() if t.name.startswith("vs-test-close")]


# ---- upload: the same packs as one thread writes --------------------------------------

def random_vault(root: Path, seed: int) -> None:
    """Notes, a few multi-chunk files, duplicates and an empty file."""
    rng = random.Random(seed)
    for i in range(120):
        write(root / f"d{i % 5}/n{i}.md", rng.randbytes(rng.randrange(1, 5000)).hex(), mtime=OLD)
    for i in range(3):
        write(root / f"big/f{i}.bin", rng.randbytes(rng.randrange(200_000, 400_000)),
              mtime=OLD)
    write(root / "d0/same.md", (root / "d1/n1.md").read_bytes(), mtime=OLD)  # one blob
    write(root / "empty.md", b"", mtime=OLD)


def packs_and_index(remote: Path) -> set[str]:
    return {p.relative_to(remote).as_posix() for p in remote.rglob("*")
            if p.is_file() and p.relative_to(remote).parts[0] in ("packs", "index")}


def test_parallel_upload_writes_the_very_packs_one_thread_writes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    random_vault(tmp_path / "src", seed=11)
    outcomes = []
    for workers, task_bytes, task_files in ((1, 4 << 20, 256), (3, 100_000, 3),
                                            (4, 1, 1)):
        monkeypatch.setattr(pipeline, "WORKERS", workers)
        monkeypatch.setattr(transfer, "TASK_BYTES", task_bytes)
        monkeypatch.setattr(transfer, "TASK_FILES", task_files)
        vault, remote = tmp_path / f"v{workers}", tmp_path / f"r{workers}"
        shutil.copytree(tmp_path / "src", vault)
        oneway.init(str(vault), str(remote), "a")
        oneway.push(str(vault))
        outcomes.append(packs_and_index(remote))
        oneway.clone(str(remote), str(tmp_path / f"c{workers}"), "c")
        assert tree_state(tmp_path / f"c{workers}") == tree_state(tmp_path / "src")
    assert outcomes[0] and outcomes[0] == outcomes[1] == outcomes[2]


def test_a_file_edited_under_an_upload_worker_stops_the_push_with_nothing_published(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    random_vault(tmp_path / "a", seed=12)
    oneway.init(str(tmp_path / "a"), str(tmp_path / "remote"), "a")
    monkeypatch.setattr(pipeline, "WORKERS", 3)
    monkeypatch.setattr(transfer, "TASK_FILES", 2)
    real = transfer._read_encoded

    def edited_under_us(repo, writer, path, items):  # type: ignore[no-untyped-def]
        if path.endswith("n77.md"):  # a file well inside the run, on some worker
            with open(path, "r+b") as f:
                f.write(b"edited")
        return real(repo, writer, path, items)

    monkeypatch.setattr(transfer, "_read_encoded", edited_under_us)
    with pytest.raises(ChangedDuringRun, match="n77.md changed while uploading"):
        oneway.push(str(tmp_path / "a"))
    remote = tmp_path / "remote"
    assert not list((remote / "index").glob("*")) and not list((remote / "snapshots").glob("*"))
    assert not [p for p in (remote / "heads").glob("*")]
    monkeypatch.setattr(transfer, "_read_encoded", real)
    assert oneway.push(str(tmp_path / "a")).snapshot  # the re-run publishes
    oneway.clone(str(remote), str(tmp_path / "b"), "b")
    assert tree_state(tmp_path / "b") == tree_state(tmp_path / "a")


def exit_code(*argv: str) -> int:
    """`vaultsync ARGV` in this process (so monkeypatches apply); its exit code."""
    from vaultsync.cli.app import main

    with pytest.raises(SystemExit) as info:
        main(list(argv))
    return int(info.value.code or 0)


def test_a_failed_upload_worker_is_the_exit_code_one_thread_gives(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = tmp_path / "a"
    random_vault(a, seed=13)
    assert exit_code("-C", str(a), "init", "--remote", str(tmp_path / "remote")) == 0
    monkeypatch.setattr(pipeline, "WORKERS", 4)
    monkeypatch.setattr(transfer, "TASK_FILES", 1)
    real = transfer._read_encoded

    def vanished(repo, writer, path, items):  # type: ignore[no-untyped-def]
        if path.endswith("n50.md"):
            os.unlink(path)  # gone after the scan: the worker's read fails
        return real(repo, writer, path, items)

    monkeypatch.setattr(transfer, "_read_encoded", vanished)
    assert exit_code("-C", str(a), "push") == ChangedDuringRun.exit_code == 1
    assert not list((tmp_path / "remote/heads").glob("*"))
    monkeypatch.setattr(transfer, "_read_encoded", real)
    assert exit_code("-C", str(a), "push") == 0


# ---- download: staged in overlapping batches, made durable before any rename ----------

def pushed(tmp_path: Path, seed: int = 14) -> Path:
    a = tmp_path / "a"
    random_vault(a, seed)
    oneway.init(str(a), str(tmp_path / "remote"), "a")
    oneway.push(str(a))
    return a


def count_syncs(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    calls = {"fsync": 0, "syncfs": 0}
    real_fsync, real_syncfs = os.fsync, apply.syncfs

    def fsync(fd: int) -> None:
        calls["fsync"] += 1
        real_fsync(fd)

    def syncfs(fd: int) -> None:
        calls["syncfs"] += 1
        real_syncfs(fd)

    monkeypatch.setattr(apply.os, "fsync", fsync)
    monkeypatch.setattr(apply, "syncfs", syncfs)
    return calls


@pytest.mark.skipif(not fsutil.syncfs_works("/tmp"), reason="needs syncfs (Linux >= 5.8)")
def test_a_clone_makes_its_staged_files_durable_with_one_syncfs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = pushed(tmp_path)
    monkeypatch.setattr(transfer, "BATCH_BYTES", 50_000)  # many batches in flight
    monkeypatch.setattr(materialize, "STAGE_FILES", 3)
    calls = count_syncs(monkeypatch)
    order: list[str] = []
    real_install, real_syncfs = apply.VaultWriter.install, apply.syncfs

    def install(self, tmp, rel, expect):  # type: ignore[no-untyped-def]
        order.append("install")
        return real_install(self, tmp, rel, expect)

    def syncfs(fd: int) -> None:
        order.append("syncfs")
        real_syncfs(fd)

    monkeypatch.setattr(apply.VaultWriter, "install", install)
    monkeypatch.setattr(apply, "syncfs", syncfs)
    oneway.clone(str(tmp_path / "remote"), str(tmp_path / "b"), "b")
    assert tree_state(tmp_path / "b") == tree_state(a)
    assert calls["fsync"] < 10  # not one per file (the state folder's own few)
    assert order[0] == "syncfs" and order.count("install") == 125  # durable, then renamed


def test_where_syncfs_is_not_trusted_every_staged_file_is_fsynced(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = pushed(tmp_path)
    monkeypatch.setattr(apply, "syncfs_works", lambda path: False)
    calls = count_syncs(monkeypatch)
    oneway.clone(str(tmp_path / "remote"), str(tmp_path / "b"), "b")
    assert tree_state(tmp_path / "b") == tree_state(a)
    assert calls["fsync"] >= 125 and calls["syncfs"] == 0


@pytest.mark.skipif(not fsutil.syncfs_works("/tmp"), reason="needs syncfs (Linux >= 5.8)")
def test_a_disk_that_fails_the_syncfs_leaves_the_vault_untouched(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pushed(tmp_path)
    oneway.clone(str(tmp_path / "remote"), str(tmp_path / "b"), "b")
    write(tmp_path / "a/d0/n0.md", "a new version", mtime=OLD + 5)
    write(tmp_path / "a/new.md", "new", mtime=OLD + 5)
    oneway.push(str(tmp_path / "a"))
    before = tree_state(tmp_path / "b")

    def failing(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(apply, "syncfs", failing)
    with pytest.raises(OSError) as info:
        oneway.pull(str(tmp_path / "b"))
    assert info.value.errno == errno.EIO and "staging" in str(info.value.filename)
    assert exit_code("-C", str(tmp_path / "b"), "pull") == LocalFailure.exit_code == 7
    assert tree_state(tmp_path / "b") == before
    assert not list((tmp_path / "b/.vaultsync/staging").iterdir())


def test_a_corrupt_blob_in_a_later_batch_stops_every_stager_and_removes_their_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = pushed(tmp_path, seed=15)
    monkeypatch.setattr(transfer, "BATCH_BYTES", 20_000)
    monkeypatch.setattr(materialize, "STAGE_FILES", 2)
    repo = Repository.open(LocalStore(str(tmp_path / "remote")))
    from vaultsync.model import flatten

    sid = next(iter(repo.read_heads().values()))
    flat = flatten(repo.get_snapshot(sid).tree, repo.get_tree)
    last = flat["d4/n99.md"]  # written late in the clone
    ref = repo.ref(last.chunks[0])
    pack = tmp_path / "remote" / pack_name(ref.pack)
    data = bytearray(pack.read_bytes())
    data[ref.offset + ref.length // 2] ^= 0xFF
    pack.write_bytes(bytes(data))
    with pytest.raises(IntegrityError):
        oneway.clone(str(tmp_path / "remote"), str(tmp_path / "b"), "b")
    b = tmp_path / "b"
    files = [p for p in b.rglob("*") if p.is_file() and ".vaultsync" not in p.parts]
    assert files == []  # nothing installed
    assert not list((b / ".vaultsync/staging").iterdir())  # every staged file removed
    assert a.exists()


def test_the_writer_checks_a_folder_once_per_run_yet_never_writes_through_a_link(
        tmp_path: Path) -> None:
    from vaultsync.errors import BadName
    from vaultsync.model import FILE, Entry

    root = tmp_path / "v"
    root.mkdir()
    vw = apply.VaultWriter(str(root), str(tmp_path / "trash"), str(tmp_path / "staging"))
    entry = Entry(name="x.md", kind=FILE, size=1, mtime_ns=OLD * 10**9)
    vw.install(vw.stage("a/b/x.md", entry, [b"1"]), "a/b/x.md", None)
    os.unlink(root / "a/b/x.md")
    os.rmdir(root / "a/b")  # removed behind the writer's back: made again
    vw.install(vw.stage("a/b/y.md", entry, [b"2"]), "a/b/y.md", None)
    assert (root / "a/b/y.md").read_bytes() == b"2"
    os.unlink(root / "a/b/y.md")
    assert vw.remove_dir_if_empty("a/b")  # removed by the run: checked afresh after
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", root / "a/b")
    tmp = vw.stage("a/b/z.md", entry, [b"3"])
    with pytest.raises(BadName, match="symbolic link"):
        vw.install(tmp, "a/b/z.md", None)
    assert not list((tmp_path / "elsewhere").iterdir())


# ---- scan: large files hashed ahead of the walk ----------------------------------------

def scan_of(root: Path, cache: dict | None = None, opener=None):  # type: ignore[no-untyped-def]
    from vaultsync.chunking import ChunkerParams
    from vaultsync.engine.scan import Scanner

    params = ChunkerParams(1024, 4096, 16384)
    return Scanner(str(root), "dev", cache or {}, params, opener=opener).scan()


def summary(res):  # type: ignore[no-untyped-def]
    return (res.root, res.locations, res.rows, res.stats, sorted(res.skipped), res.trees)


def test_a_scan_hashing_ahead_finds_what_a_sequential_scan_finds(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vaultsync import chunking

    root = tmp_path / "v"
    random_vault(root, seed=16)
    rng = random.Random(16)
    for i in range(12):  # many large files in one folder: several jobs in flight
        write(root / f"big/g{i}.bin", rng.randbytes(rng.randrange(20_000, 90_000)), mtime=OLD)
    monkeypatch.setattr(chunking, "PREHASH_MIN", 10_000)
    read_by: dict[str, set[str]] = {}

    def opener(path: str):  # type: ignore[no-untyped-def]
        read_by.setdefault(path, set()).add(threading.current_thread().name)
        if path.endswith("g3.bin"):
            raise OSError(errno.EIO, os.strerror(errno.EIO), path)
        return open(path, "rb")  # noqa: SIM115

    monkeypatch.setattr(chunking, "PREHASH_WORKERS", 1)
    sequential = scan_of(root, opener=opener)
    assert not any(t.startswith("vaultsync-hash") for ts in read_by.values() for t in ts)
    read_by.clear()
    monkeypatch.setattr(chunking, "PREHASH_WORKERS", 3)
    ahead = scan_of(root, opener=opener)
    assert summary(ahead) == summary(sequential)
    assert ("big/g3.bin", "cannot read: Input/output error") in ahead.skipped
    hashed_ahead = {p for p, ts in read_by.items() if any(t.startswith("vaultsync-hash")
                                                          for t in ts)}
    assert len(hashed_ahead) >= 12 and all(os.path.getsize(p) >= 10_000 for p in hashed_ahead)
    # nothing changed: the stat cache vouches for every file but the unreadable one
    read_by.clear()
    again = scan_of(root, cache=ahead.rows, opener=opener)
    assert [os.path.basename(p) for p in read_by] == ["g3.bin"] and again.root == ahead.root


def test_a_large_file_changing_while_hashed_ahead_is_read_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vaultsync import chunking

    root = tmp_path / "v"
    write(root / "a.bin", random.Random(1).randbytes(60_000), mtime=OLD)
    monkeypatch.setattr(chunking, "PREHASH_MIN", 10_000)
    monkeypatch.setattr(chunking, "PREHASH_WORKERS", 2)
    reads: list[str] = []

    class Touched(io.BufferedReader):
        def read(self, n: int | None = -1) -> bytes:
            os.utime(path, (OLD + 1, OLD + 1))  # touched while the read is under way
            return super().read(n)

    def opener(p: str):  # type: ignore[no-untyped-def]
        reads.append(threading.current_thread().name)
        raw = io.FileIO(p, "rb")
        return Touched(raw) if len(reads) == 1 else io.BufferedReader(raw)

    path = str(root / "a.bin")

    res = scan_of(root, opener=opener)
    assert reads[0].startswith("vaultsync-hash") and len(reads) == 2
    assert res.rows["a.bin"].mtime_ns == (OLD + 1) * 10**9 and res.skipped == []


# ---- trees: a clone reads a vault's folders in a few requests ---------------------------

def test_a_clone_reads_every_folder_in_a_few_requests_and_caches_them_in_one_go(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vaultsync.engine.state import State

    a = tmp_path / "a"
    for i in range(60):  # 60 folders (3 levels deep), a note in each
        write(a / f"p{i % 3}/q{i % 12}/r{i}/n.md", f"note {i}", mtime=OLD)
    oneway.init(str(a), str(tmp_path / "remote"), "a")
    oneway.push(str(a))
    reads: list[str] = []
    real_range = LocalStore._get_range

    def get_range(self, name, offset, length):  # type: ignore[no-untyped-def]
        reads.append(name)
        return real_range(self, name, offset, length)

    puts: list[int] = []
    real_put, real_puts = State.put_object, State.put_objects
    monkeypatch.setattr(State, "put_object", lambda self, oid, data: (
        puts.append(1), real_put(self, oid, data))[1])
    monkeypatch.setattr(State, "put_objects", lambda self, items: (
        puts.append(len(items := list(items))), real_puts(self, items))[1])
    monkeypatch.setattr(LocalStore, "_get_range", get_range)
    oneway.clone(str(tmp_path / "remote"), str(tmp_path / "b"), "b")
    assert tree_state(tmp_path / "b") == tree_state(a)
    # 1 + 3 + 12 + 60 folders: read a level at a time (coalesced reads: 77 before),
    # stored in the state database by one call, not one per folder
    assert len(reads) <= 3 * 4 * len(set(reads)), reads
    assert 76 in puts and puts.count(1) <= 2


def test_staged_files_spread_over_subfolders_that_go_with_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A clone stages its files in subfolders of .vaultsync/staging (one folder of 100k
    new names slows every create and rename), removed once the files are installed;
    temporary files a killed run left in them go on the next run, and so do the
    subfolders."""
    a = tmp_path / "a"
    for i in range(300):
        write(a / f"d{i % 3}" / f"n{i}.md", f"note {i}", OLD + i)
    oneway.init(str(a), str(tmp_path / "remote"), "a")
    from vaultsync.engine.sync import sync
    sync(str(a))
    shards: set[str] = set()
    real = apply.VaultWriter.stage

    def stage(self, rel, entry, pieces):  # type: ignore[no-untyped-def]
        tmp = real(self, rel, entry, pieces)
        shards.add(os.path.relpath(os.path.dirname(tmp), self.staging))
        return tmp

    monkeypatch.setattr(apply.VaultWriter, "stage", stage)
    b = tmp_path / "b"
    oneway.clone(str(tmp_path / "remote"), str(b), "b")
    assert tree_state(b) == tree_state(a)
    assert len(shards) > 50 and all(len(s) == 2 and "/" not in s for s in shards), shards
    staging = b / ".vaultsync" / "staging"
    assert list(staging.iterdir()) == []  # every subfolder went with its files
    # what a killed run leaves: staged files in subfolders, and an empty subfolder
    for shard, name in [("ab", ".vaultsync-tmp-0123456789ab"), ("cd", None)]:
        (staging / shard).mkdir()
        if name:
            (staging / shard / name).write_text("half a note")
    (staging / "ab" / "keep.md").write_text("not ours: never removed")
    write(b / "d0" / "n0.md", "edited", OLD + 999)
    assert sync(str(b)).uploaded == ["d0/n0.md"]
    assert sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*")) == \
        ["ab", "ab/keep.md"]
