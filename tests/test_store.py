"""Store basics that do not need a server (the full contract suite runs every backend)."""

import os
from pathlib import Path

import pytest

from vaultsync.errors import BadName, ObjectNotFound, UsageError
from vaultsync.store.base import valid_name
from vaultsync.store.counting import CountingStore
from vaultsync.store.local import LocalStore
from vaultsync.store.url import display_url, normalize_url, open_store


@pytest.mark.parametrize("name", ["vaultsync.json", "packs/ab/" + "a" * 64, "heads/" + "0" * 32])
def test_valid_names(name: str) -> None:
    assert valid_name(name)


@pytest.mark.parametrize("name", ["", "/abs", "../x", "a/../b", "a/./b", "a//b", ".tmp-1",
                                  "packs/.tmp-x", "a\\b", "a b", "x\x00", "é"])
def test_invalid_names(name: str) -> None:
    assert not valid_name(name)


def test_local_store_is_atomic_and_lists_only_valid_names(tmp_path: Path) -> None:
    store = LocalStore(str(tmp_path))
    store.put("packs/ab/x1", b"data")
    store.put("packs/ab/x1", b"new")  # replace
    (tmp_path / "packs/ab/.tmp-leftover").write_bytes(b"partial")
    (tmp_path / "packs/ab/bad name").write_bytes(b"junk")
    assert [i.name for i in store.list("packs/")] == ["packs/ab/x1"]
    assert store.get("packs/ab/x1") == b"new"
    assert store.get_range("packs/ab/x1", 1, 2) == b"ew"
    with pytest.raises(ObjectNotFound):
        store.get("packs/ab/missing")
    with pytest.raises(BadName):
        store.get("../../etc/passwd")
    store.delete("packs/ab/x1")
    store.delete("packs/ab/x1")  # idempotent
    assert store.stat("packs/ab/x1") is None
    assert not [p for p in os.listdir(tmp_path / "packs/ab") if p.startswith(".tmp-") and
                p != ".tmp-leftover"]


def test_counting_store_counts_requests_and_bytes(tmp_path: Path) -> None:
    store = CountingStore(LocalStore(str(tmp_path)))
    store.put("a", b"12345")
    store.get("a")
    store.get_range("a", 0, 2)
    list(store.list(""))
    t = store.traffic
    assert (t.puts, t.gets, t.lists, t.bytes_up, t.bytes_down) == (1, 2, 1, 5, 7)


def test_urls(tmp_path: Path) -> None:
    assert isinstance(open_store(str(tmp_path)), LocalStore)
    assert open_store(f"file://{tmp_path}").url == f"file://{tmp_path}"
    assert normalize_url("rel/x").startswith("file:///")
    assert display_url("webdav://bob:s3cret@host:8080/dav") == "webdav://bob@host:8080/dav"
    assert "s3cret" not in display_url("sftp://u:s3cret@h/p")
    for bad in ("", "gopher://x/y", "file://otherhost/x"):
        with pytest.raises(UsageError):
            open_store(bad)
