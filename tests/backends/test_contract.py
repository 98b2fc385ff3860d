"""One contract, every store: memory, directory, S3 (SeaweedFS, moto), WebDAV (Apache,
WsgiDAV), SFTP (OpenSSH). Each network store talks to a real server on 127.0.0.1."""

from __future__ import annotations

import os
import random
import threading

import pytest

from tests.backends.conftest import Backend
from vaultsync.errors import EXIT_INTEGRITY, BadName, IntegrityError, ObjectNotFound
from vaultsync.store.base import ObjectInfo, Store


def names(store: Store, prefix: str = "") -> list[str]:
    return sorted(info.name for info in store.list(prefix))


def test_round_trip_and_stat(store: Store) -> None:
    store.put("vaultsync.json", b'{"format": 1}')
    store.put("packs/ab/abcdef", b"pack bytes")
    store.put("a/b/c/d/e/f/g/h", b"deep")
    assert store.get("vaultsync.json") == b'{"format": 1}'
    assert store.get("packs/ab/abcdef") == b"pack bytes"
    assert store.get("a/b/c/d/e/f/g/h") == b"deep"
    assert store.stat("packs/ab/abcdef") == ObjectInfo("packs/ab/abcdef", 10)
    assert store.stat("packs/ab/nothere") is None
    assert store.stat("packs") is None  # a folder is not an object
    assert store.stat("packs/ab") is None


def test_overwrite(store: Store) -> None:
    store.put("heads/dev1", b"first version, longer")
    store.put("heads/dev1", b"second")
    assert store.get("heads/dev1") == b"second"
    assert list(store.list("heads/")) == [ObjectInfo("heads/dev1", 6)]
    store.put("heads/dev1", b"")
    assert store.get("heads/dev1") == b""


def test_get_range(store: Store) -> None:
    data = bytes(range(256)) * 4  # 1024 bytes
    store.put("packs/00/p", data)
    assert store.get_range("packs/00/p", 0, 10) == data[:10]
    assert store.get_range("packs/00/p", 500, 100) == data[500:600]
    assert store.get_range("packs/00/p", 1014, 10) == data[-10:]  # up to the very end
    assert store.get_range("packs/00/p", 1023, 1) == data[-1:]
    assert store.get_range("packs/00/p", 1024, 0) == b""  # empty range at the end
    assert store.get_range("packs/00/p", 0, 1024) == data
    with pytest.raises(IntegrityError, match="short read"):
        store.get_range("packs/00/p", 1020, 10)  # runs past the end


def test_list_by_prefix(store: Store) -> None:
    objects = {
        "packs/aa/1": b"1", "packs/ab/2": b"22", "packs/ab/3": b"333",
        "index/i1": b"i", "heads/dev1": b"h", "headsx/other": b"x", "vaultsync.json": b"{}",
    }
    for name, data in objects.items():
        store.put(name, data)
    assert names(store) == sorted(objects)
    assert names(store, "packs/") == ["packs/aa/1", "packs/ab/2", "packs/ab/3"]
    assert names(store, "packs/ab/") == ["packs/ab/2", "packs/ab/3"]
    assert names(store, "packs/a") == ["packs/aa/1", "packs/ab/2", "packs/ab/3"]
    assert names(store, "packs/ab/3") == ["packs/ab/3"]
    assert names(store, "heads/") == ["heads/dev1"]  # not headsx/
    assert names(store, "heads") == ["heads/dev1", "headsx/other"]
    assert names(store, "nothing/") == []
    assert names(store, "packs/zz/") == []
    sizes = {info.name: info.size for info in store.list("packs/")}
    assert sizes == {"packs/aa/1": 1, "packs/ab/2": 2, "packs/ab/3": 3}


def test_delete_is_idempotent(store: Store) -> None:
    store.put("snapshots/s1", b"snap")
    store.put("snapshots/s2", b"keep")
    store.delete("snapshots/s1")
    assert store.stat("snapshots/s1") is None
    assert names(store, "snapshots/") == ["snapshots/s2"]
    with pytest.raises(ObjectNotFound):
        store.get("snapshots/s1")
    store.delete("snapshots/s1")  # again: no error
    store.delete("snapshots/never-existed")
    store.delete("nofolder/never-existed")
    assert store.get("snapshots/s2") == b"keep"


def test_missing_object(store: Store) -> None:
    store.put("index/present", b"x")
    for call in (lambda: store.get("index/absent"),
                 lambda: store.get_range("index/absent", 0, 1),
                 lambda: store.get("nofolder/absent")):
        with pytest.raises(ObjectNotFound) as info:
            call()
        assert info.value.exit_code == EXIT_INTEGRITY
        assert "absent" in str(info.value)


def test_binary_data(store: Store) -> None:
    rng = random.Random(42)
    big = rng.randbytes(3 * 1024 * 1024 + 17)
    every_byte = bytes(range(256)) * 3
    store.put("packs/ff/empty", b"")
    store.put("packs/ff/bytes", every_byte)
    store.put("packs/ff/big", big)
    assert store.get("packs/ff/empty") == b""
    assert store.stat("packs/ff/empty") == ObjectInfo("packs/ff/empty", 0)
    assert store.get("packs/ff/bytes") == every_byte
    assert store.get("packs/ff/big") == big
    assert store.get_range("packs/ff/big", 1_000_000, 1_500_000) == big[1_000_000:2_500_000]
    assert store.get_range("packs/ff/big", len(big) - 100, 100) == big[-100:]
    sizes = {info.name: info.size for info in store.list("packs/ff/")}
    assert sizes == {"packs/ff/empty": 0, "packs/ff/bytes": 768, "packs/ff/big": len(big)}


BAD_NAMES = ["", "../escape", "/absolute", "a//b", ".tmp-123", "packs/.hidden", "a/../b",
             "trailing/", "sp ace", "back\\slash", "x" * 201, "/".join("abcdefghi")]


def test_invalid_names_refused(store: Store) -> None:
    calls = (lambda n: store.put(n, b"x"), store.get, lambda n: store.get_range(n, 0, 1),
             store.stat, store.delete)
    for bad in BAD_NAMES:
        for call in calls:
            with pytest.raises(BadName):
                call(bad)
    for bad_prefix in ("../", "/etc/", ".tmp-"):
        with pytest.raises(BadName):
            list(store.list(bad_prefix))
    assert names(store) == []  # nothing was written


def test_no_temporary_names_visible(store: Store, backend: Backend) -> None:
    expected = sorted(f"packs/{i % 3:02x}/obj{i}" for i in range(12))
    for i, name in enumerate(sorted(expected)):
        store.put(name, os.urandom(100 + i))
        store.put(name, os.urandom(50 + i))  # overwrite too
    assert names(store) == expected
    on_disk = backend.disk_names(store)
    if on_disk is not None:  # the server keeps plain files: no temp file left behind
        assert on_disk == expected


def test_concurrent_puts_and_gets(store: Store) -> None:
    errors: list[BaseException] = []
    payload = {f"packs/{t:02x}/o{i}": os.urandom(1000 + 37 * i) for t in range(4)
               for i in range(5)}

    def worker(t: int) -> None:
        try:
            for i in range(5):
                name = f"packs/{t:02x}/o{i}"
                store.put(name, payload[name])
                assert store.get(name) == payload[name]
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert not errors, errors
    assert names(store, "packs/") == sorted(payload)


def test_concurrent_puts_into_one_new_folder(store: Store) -> None:
    """Writers racing to create the same folders (MKCOL/mkdir races) all succeed."""
    errors: list[BaseException] = []
    start = threading.Barrier(6, timeout=30)

    def worker(folder: str, t: int) -> None:
        try:
            start.wait()
            store.put(f"{folder}/o{t}", b"%d" % t)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    for r in range(3):
        folder = f"index/r{r}/deeper"
        threads = [threading.Thread(target=worker, args=(folder, t)) for t in range(6)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
        assert not errors, errors
        assert names(store, f"index/r{r}/") == [f"{folder}/o{t}" for t in range(6)]


def test_exists_and_prepare(backend: Backend) -> None:
    fresh = backend.open(backend.location(new_bucket=True), prepare=False)
    if backend.kind != "memory":  # a memory store has no location to create
        assert fresh.exists() is False
    fresh.prepare()
    assert fresh.exists() is True
    fresh.prepare()  # twice is fine
    fresh.put("heads/d", b"1")
    assert fresh.get("heads/d") == b"1"


def test_nested_location(backend: Backend) -> None:
    """A repository in a sub-sub-folder (or under a deep S3 prefix) is created whole."""
    base = backend.location()
    deep = backend.open(base + "/sub/vault")
    deep.put("heads/d", b"deep")
    assert deep.get("heads/d") == b"deep"
    assert names(deep) == ["heads/d"]
    if backend.kind != "memory":  # memory:// names are separate stores, not folders
        parent = backend.open(base, prepare=False)
        assert names(parent) == ["sub/vault/heads/d"]


def test_url_is_displayable(store: Store, backend: Backend) -> None:
    from tests.backends.servers import DAV_PASSWORD, S3_SECRET

    for text in (store.url, repr(store)):
        assert DAV_PASSWORD not in text and S3_SECRET not in text
    assert store.url.split("://")[0] in ("memory", "file", "s3", "webdav", "sftp")


def test_nothing_printed(backend: Backend, capfd: pytest.CaptureFixture[str]) -> None:
    """stdout is the CLI's API: no store may print (webdavclient3's mkdir() would)."""
    store = backend.open()  # prepare() makes folders
    store.put("a/b/c/obj", b"x")
    store.get("a/b/c/obj")
    list(store.list(""))
    store.delete("a/b/c/obj")
    out, err = capfd.readouterr()
    assert out == "" and err == ""
