"""Store basics that do not need a server (the full contract suite runs every backend)."""

import os
import time
from pathlib import Path

import pytest

from vaultsync.errors import BadName, ObjectNotFound, TransientError, UsageError
from vaultsync.store._remote import temp_name
from vaultsync.store.base import WrappingStore, temporary_name, valid_name
from vaultsync.store.counting import CountingStore
from vaultsync.store.local import LocalStore
from vaultsync.store.memory import MemoryStore
from vaultsync.store.retry import RetryStore
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


def test_temporary_names() -> None:
    assert temporary_name(temp_name("packs/ab/" + "a" * 64))
    assert temporary_name(temp_name("vaultsync.json"))
    assert temporary_name("/".join("abcdefg") + "/.tmp-0123456789abcdef")  # 7 folders
    assert not temporary_name("/".join("abcdefgh") + "/.tmp-0123456789abcdef")  # 8
    assert not temporary_name("packs/ab/.tmp-0123456789abcdef\n")
    assert not temporary_name("packs/ab/x.tmp-0123456789abcdef")
    assert not temporary_name(None)


def test_local_store_leaves_names_stale_temporaries_finds(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          ) -> None:
    """The directory store's own put names its temporary file so that a killed put
    leaves one `stale_temporaries` finds."""
    store = LocalStore(str(tmp_path))
    store.put("packs/ab/x1", b"data")

    def killed(src: str, dst: str) -> None:
        raise KeyboardInterrupt

    left: list[str] = []
    monkeypatch.setattr(os, "replace", killed)
    monkeypatch.setattr(os, "unlink", lambda path, **kw: left.append(str(path)))
    with pytest.raises(KeyboardInterrupt):
        store.put("packs/ab/x2", b"never renamed")
    monkeypatch.undo()
    assert len(left) == 1  # the cleanup, skipped here as a SIGKILL would skip it
    name = "packs/ab/" + os.path.basename(left[0])
    assert store.stale_temporaries("packs/", 0) == [name]
    store.remove_temporary(name)
    assert store.stale_temporaries("packs/", 0) == []


def test_local_store_root_may_be_a_link(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    store = LocalStore(str(tmp_path / "link"))
    store.put("packs/ab/x1", b"data")
    tmp = real / "packs" / "ab" / ".tmp-0123456789abcdef"
    tmp.write_bytes(b"partial")
    os.utime(tmp, (time.time() - 7200, time.time() - 7200))
    assert store.stale_temporaries("", 3600) == ["packs/ab/.tmp-0123456789abcdef"]
    store.remove_temporary("packs/ab/.tmp-0123456789abcdef")
    assert not tmp.exists()


def test_memory_store_has_no_temporaries() -> None:
    store = MemoryStore()
    store.objects["packs/.tmp-0123456789abcdef"] = b"x"  # cannot happen; ignored anyway
    assert store.stale_temporaries("", 0) == []
    store.remove_temporary("packs/.tmp-0123456789abcdef")


class Flaky(WrappingStore):
    """Fails each temporaries call once with a transient error, then passes it on."""

    def __init__(self, inner: LocalStore) -> None:
        super().__init__(inner)
        self.failed: set[str] = set()

    def _once(self, what: str) -> None:
        if what not in self.failed:
            self.failed.add(what)
            raise TransientError(f"{what}: connection reset")

    def _stale_temporaries(self, prefix: str, older_than_s: float) -> list[str]:
        self._once("list")
        return self.inner.stale_temporaries(prefix, older_than_s)

    def _remove_temporary(self, name: str) -> None:
        self._once("remove")
        self.inner.remove_temporary(name)


def test_wrappers_forward_count_and_retry_temporaries(tmp_path: Path) -> None:
    (tmp_path / "packs").mkdir()
    tmp = tmp_path / "packs" / ".tmp-0123456789abcdef"
    tmp.write_bytes(b"partial")
    os.utime(tmp, (time.time() - 7200, time.time() - 7200))
    counting = CountingStore(Flaky(LocalStore(str(tmp_path))))
    store = RetryStore(counting, sleep=lambda s: None, seed=1)
    assert store.stale_temporaries("packs/", 3600) == ["packs/.tmp-0123456789abcdef"]
    store.remove_temporary("packs/.tmp-0123456789abcdef")
    assert not tmp.exists()
    assert store.retries == 2
    t = counting.traffic
    assert (t.lists, t.deletes, t.requests_down, t.requests_up) == (2, 1, 2, 1)
    with pytest.raises(BadName):  # refused before any wrapper sends anything
        store.remove_temporary("packs/x1")
    assert (t.deletes, store.retries) == (1, 2)
