"""Temporary objects that killed uploads left behind (`.tmp-<16 hex>`, written and never
renamed), on every store: `stale_temporaries` names the old ones under a prefix and
`remove_temporary` removes them; a fresh one, a normal object, a look-alike or a name
outside the prefix is never named, and a normal object can never be removed this way.

Each temporary is left the way an interrupted upload leaves it: written on the server's
disk (directory), PUT under its temporary name (WebDAV), written through SFTP; then aged
on the server (os.utime on the server's folder; SFTP's SETSTAT)."""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable
from pathlib import Path

import paramiko
import pytest

from tests.backends.conftest import Backend
from vaultsync.errors import BadName
from vaultsync.store._remote import temp_name
from vaultsync.store.base import Store
from vaultsync.store.counting import CountingStore
from vaultsync.store.memory import MemoryStore
from vaultsync.store.retry import RetryStore

GRACE = 3600.0
OLD = 2 * 86400.0  # two days
FRESH = 60.0  # a minute: younger than GRACE, older than 30 s
Get = Callable[[str], Backend]
PARTIAL = b"the first bytes of a pack that never arrived whole"
HAS_TEMPORARIES = {"directory", "webdav-apache", "webdav-apache-shallow", "webdav-wsgidav",
                   "sftp-sshd"}


def names(store: Store, prefix: str = "") -> list[str]:
    return sorted(info.name for info in store.list(prefix))


def leave(backend: Backend, store: Store, name: str, age_s: float, *,
          folder: bool = False) -> None:
    """Leave `name` (a file, or with `folder` a folder) as a killed upload would,
    last modified `age_s` seconds ago. Its parent folder must exist."""
    when = time.time() - age_s
    kind = backend.kind
    root = backend.disk_root(store)
    if kind == "directory":
        assert root is not None
        path = root / name
        path.mkdir() if folder else path.write_bytes(PARTIAL)
        os.utime(path, (when, when))
    elif kind.startswith("webdav-"):
        from vaultsync.store.webdav import WebDAVStore

        assert isinstance(store, WebDAVStore) and root is not None
        resp = store.session.request("MKCOL" if folder else "PUT",
                                     store._href(name, folder=folder),
                                     data=None if folder else PARTIAL, timeout=30)
        assert resp.status_code in (200, 201, 204), (resp.status_code, resp.text)
        os.utime(root / name, (when, when))
    elif kind == "sftp-sshd":
        from vaultsync.store.sftp import SFTPStore

        assert isinstance(store, SFTPStore)

        def make(ftp: paramiko.SFTPClient) -> None:
            path = store._path(name)
            if folder:
                ftp.mkdir(path)
            else:
                ftp.putfo(io.BytesIO(PARTIAL), path)
            ftp.utime(path, (when, when))

        store._run(make, name, write=True)
    elif kind.startswith("s3-"):  # vaultsync never writes one; a stray key is ignored
        from vaultsync.store.s3 import S3Store

        assert isinstance(store, S3Store)
        store.fs.pipe_file(f"{store.bucket}/{store._key(name)}", PARTIAL)
    else:
        assert isinstance(store, MemoryStore)
        store.objects[name] = PARTIAL


def age_object(backend: Backend, store: Store, name: str, age_s: float) -> None:
    """Make a normal object look old, where the server keeps plain files."""
    root = backend.disk_root(store)
    if root is not None:
        when = time.time() - age_s
        os.utime(root / name, (when, when))


def on_disk(backend: Backend, store: Store, name: str) -> bool | None:
    root = backend.disk_root(store)
    return None if root is None else os.path.lexists(root / name)


OBJECTS = {"vaultsync.json": b"{}", "packs/ab/obj1": b"1", "packs/cd/obj2": b"22",
           "index/i1": b"i"}


def test_stale_temporaries_found_and_removed(store: Store, backend: Backend) -> None:
    for name, data in OBJECTS.items():
        store.put(name, data)
    old_pack = temp_name("packs/ab/x")
    fresh_pack = temp_name("packs/cd/x")
    old_index = temp_name("index/x")
    old_top = temp_name("vaultsync.json")
    for name, age in ((old_pack, OLD), (fresh_pack, FRESH), (old_index, OLD),
                      (old_top, OLD)):
        leave(backend, store, name, age)
    if backend.kind not in HAS_TEMPORARIES:
        assert store.stale_temporaries("", 0) == []
        store.remove_temporary(old_pack)  # nothing to do, no error
        assert names(store) == sorted(OBJECTS)
        return
    assert store.stale_temporaries("packs/", GRACE) == [old_pack]
    assert store.stale_temporaries("packs/a", GRACE) == [old_pack]
    assert store.stale_temporaries("packs/ab/", GRACE) == [old_pack]
    assert store.stale_temporaries("packs/cd/", GRACE) == []  # too young
    assert store.stale_temporaries("packs/cd/", 30) == [fresh_pack]
    assert store.stale_temporaries("packs/", 30) == sorted([old_pack, fresh_pack])
    assert store.stale_temporaries("index/", GRACE) == [old_index]
    assert store.stale_temporaries("heads/", GRACE) == []  # no such folder
    assert store.stale_temporaries("", GRACE) == sorted([old_pack, old_index, old_top])

    # through the wrappers the engine puts around every store
    wrapped = CountingStore(store)
    retrying = RetryStore(wrapped, attempts=2, sleep=lambda s: None)
    assert retrying.stale_temporaries("packs/", GRACE) == [old_pack]
    retrying.remove_temporary(old_pack)
    assert (wrapped.traffic.lists, wrapped.traffic.deletes) == (1, 1)
    assert on_disk(backend, store, old_pack) is False
    assert store.stale_temporaries("packs/", GRACE) == []
    store.remove_temporary(old_pack)  # already gone: no error
    store.remove_temporary(temp_name("nofolder/x"))  # nor in a folder that is not there

    for name in (old_index, old_top):
        store.remove_temporary(name)
    assert store.stale_temporaries("", GRACE) == []
    assert store.stale_temporaries("", 30) == [fresh_pack]  # left alone
    assert on_disk(backend, store, fresh_pack) is True
    assert names(store) == sorted(OBJECTS)
    assert {n: store.get(n) for n in OBJECTS} == OBJECTS


def test_normal_objects_are_never_temporaries(store: Store, backend: Backend) -> None:
    for name, data in OBJECTS.items():
        store.put(name, data)
        age_object(backend, store, name, OLD)
    assert store.stale_temporaries("", 0) == []
    refused = [*OBJECTS, "packs/ab/.tmp-0123", ".tmp-0123456789ABCDEF",
               "packs/ab/.tmp-0123456789abcdef0", "packs/ab/.tmp-0123456789abcdeg",
               "../.tmp-0123456789abcdef", "/packs/.tmp-0123456789abcdef",
               "packs//.tmp-0123456789abcdef", "packs/.x/.tmp-0123456789abcdef",
               "packs/.tmp-0123456789abcdef/.tmp-0123456789abcdef",
               "/".join("abcdefgh") + "/.tmp-0123456789abcdef", "", "packs/ab/"]
    for bad in refused:
        with pytest.raises(BadName):
            store.remove_temporary(bad)
    for bad_prefix in ("../", "/etc/", ".tmp-", "packs/.tmp-0123456789abcdef/"):
        with pytest.raises(BadName):
            store.stale_temporaries(bad_prefix, 0)
    with pytest.raises(ValueError):
        store.stale_temporaries("", -1)
    assert names(store) == sorted(OBJECTS)
    assert {n: store.get(n) for n in OBJECTS} == OBJECTS


@pytest.mark.parametrize("kind", sorted(HAS_TEMPORARIES))
def test_look_alikes_are_left_alone(backends: Get, kind: str) -> None:
    backend = backends(kind)
    store = backend.open()
    store.put("packs/ab/obj1", b"1")
    short = "packs/ab/.tmp-0123"
    upper = "packs/ab/.tmp-0123456789ABCDEF"
    longer = "packs/ab/.tmp-0123456789abcdef0"
    folder = "packs/ab/.tmp-00112233445566ff"
    for name in (short, upper, longer):
        leave(backend, store, name, OLD)
    leave(backend, store, folder, OLD, folder=True)
    leave(backend, store, folder + "/.tmp-0123456789abcdef", OLD)  # in a hidden folder
    assert store.stale_temporaries("", 0) == []
    store.remove_temporary(folder)  # a folder is not an object: nothing removed
    for name in (short, upper, longer, folder, folder + "/.tmp-0123456789abcdef"):
        assert on_disk(backend, store, name) is True, name
    assert names(store) == ["packs/ab/obj1"]


@pytest.mark.parametrize("kind", ["directory", "sftp-sshd"])
def test_symbolic_links_never_followed(backends: Get, kind: str, tmp_path: Path) -> None:
    """Old temporaries reachable only through a symbolic link (to a folder outside the
    store, or a link named like a temporary) are neither named nor removed."""
    backend = backends(kind)
    store = backend.open()
    root = backend.disk_root(store)
    assert root is not None
    outside = tmp_path / "outside"
    (outside / "deeper").mkdir(parents=True)
    tmp = ".tmp-0123456789abcdef"
    when = time.time() - OLD
    for path in (outside / tmp, outside / "deeper" / tmp, outside / "target"):
        path.write_bytes(b"not the store's")
        os.utime(path, (when, when))
    store.put("packs/ab/obj1", b"1")
    (root / "packs" / "ln").symlink_to(outside)  # a folder inside that is a link
    (root / "index").symlink_to(outside)  # the prefix's own folder is a link
    (root / "packs" / "ab" / ".tmp-00000000000000aa").symlink_to(outside / "target")
    os.utime(root / "packs" / "ab" / ".tmp-00000000000000aa", (when, when),
             follow_symlinks=False)
    for prefix in ("", "packs/", "packs/ln/", "index/", "index/deeper/"):
        assert store.stale_temporaries(prefix, 0) == [], prefix
    for name in (f"packs/ln/{tmp}", f"index/{tmp}", f"index/deeper/{tmp}"):
        store.remove_temporary(name)  # refused silently: the way there is a link
    store.remove_temporary("packs/ab/.tmp-00000000000000aa")  # only the link goes
    assert not os.path.lexists(root / "packs" / "ab" / ".tmp-00000000000000aa")
    assert sorted(p.name for p in outside.rglob("*")) == sorted([tmp, tmp, "target",
                                                                 "deeper"])


def test_webdav_age_is_by_the_server_clock() -> None:
    from vaultsync.store.webdav import _age, _Entry

    def entry(modified: str | None, date: str | None) -> _Entry:
        return _Entry("packs/.tmp-0123456789abcdef", False, 1, modified, date)

    # a server whose clock is years behind ours: its own Date decides, not ours
    assert _age(entry("Sat, 01 Jan 2000 00:00:00 GMT", "Mon, 03 Jan 2000 00:00:00 GMT")) \
        == 2 * 86400
    assert _age(entry("Sat, 01 Jan 2000 00:00:00 GMT", "Sat, 01 Jan 2000 00:01:00 -0000")) \
        == 60
    no_date = _age(entry("Sat, 01 Jan 2000 00:00:00 GMT", None))  # ours, then
    assert no_date is not None and no_date > 20 * 365 * 86400
    for unreadable in (None, "", "yesterday", "Sat, 99 Foo 2000"):  # never stale
        assert _age(entry(unreadable, "Mon, 03 Jan 2000 00:00:00 GMT")) is None
