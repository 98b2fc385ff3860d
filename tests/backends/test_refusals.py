"""A remote that refuses a write (full, read-only, permission denied) is `RemoteRefused`:
exit 3, a message that says "remote", which refusal, and the display URL (never a
password), no temporary object left behind, and no retry loop (it is not transient).

WebDAV and SFTP run against real servers whose folder is a small tmpfs (full) or a folder
the server's user may not write; S3's answers are botocore's own error documents, since
neither test server can be made full or read-only.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Callable
from pathlib import Path

import botocore.exceptions as bex
import pytest

from tests.backends import servers
from tests.backends.conftest import Backend, unique
from tests.backends.test_failures import raises_clean
from tests.edge_env import remount, tmpfs
from vaultsync.errors import EXIT_REMOTE, AuthError, RemoteRefused, TransientError
from vaultsync.store.retry import RetryStore
from vaultsync.store.s3 import S3Store

Get = Callable[[str], Backend]
BIG = 600_000  # more than the 256 KiB file systems below hold


def refused(call: Callable[[], object], *words: str, secret: str = "") -> RemoteRefused:
    err = raises_clean(RemoteRefused, call, *([secret] if secret else []))
    assert err.exit_code == EXIT_REMOTE
    assert str(err).startswith("remote ")
    for word in words:
        assert word in str(err), str(err)
    return err


def test_webdav_full_remote(backends: Get) -> None:
    b = backends("webdav-apache")
    assert b.server is not None
    name = unique()
    with tmpfs(Path(b.server.info["data"]) / name, "256k") as folder:
        www = pwd.getpwnam("www-data")
        os.chown(folder, www.pw_uid, www.pw_gid)
        store = b.open(b.location(name), prepare=False)
        calls = 0

        def put() -> None:
            nonlocal calls
            calls += 1
            store.put("packs/aa/p", os.urandom(BIG))

        retrying = RetryStore(store, attempts=5, sleep=lambda s: None)
        refused(lambda: retrying.put("packs/aa/p", os.urandom(BIG)), "is full", "HTTP 507",
                store.url, secret=servers.DAV_PASSWORD)
        assert retrying.retries == 0  # a full disk is not a hiccup
        refused(put, "is full")
        assert [p.name for p in folder.rglob("*") if p.is_file()] == []  # no temp left


def test_webdav_read_only_folder(backends: Get) -> None:
    b = backends("webdav-apache")
    assert b.server is not None
    folder = Path(b.server.info["data"]) / unique()
    folder.mkdir(mode=0o755)  # root's: Apache's www-data may read, not write
    # (Apache answers a PUT into an existing unwritable folder with a bare 500, which
    # cannot be told from a server error: that one stays transient)
    store = b.open(b.location(folder.name), prepare=False)
    for call in (lambda: store.put("packs/aa/p", b"x"), lambda: store.put("heads/x", b"x")):
        refused(call, "permission denied", "HTTP 403", store.url, secret=servers.DAV_PASSWORD)
    assert store.stat("heads/x") is None  # reads still work: it is a refusal, not auth


def test_sftp_full_and_read_only_remote(backends: Get) -> None:
    b = backends("sftp-sshd")
    assert b.server is not None
    name = unique()
    url = f"sftp://root@127.0.0.1:{b.server.port}{b.server.info['data']}/{name}"
    with tmpfs(Path(b.server.info["data"]) / name, "256k") as folder:
        store = b.open(url, prepare=False)
        refused(lambda: store.put("packs/aa/p", os.urandom(BIG)), "is full", store.url)
        store.put("heads/x", b"small")  # what fits still goes
        remount(folder, "ro")
        refused(lambda: store.put("heads/y", b"x"), "refused a write", "full or read-only",
                store.url)
        assert sorted(p.name for p in folder.rglob("*") if p.is_file()) == ["x"]


# -- S3: botocore's error documents, through the store's own mapping ----------------------

def client_error(code: str, status: int, op: str = "PutObject") -> bex.ClientError:
    return bex.ClientError({"Error": {"Code": code, "Message": "refused"},
                            "ResponseMetadata": {"HTTPStatusCode": status}}, op)


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> S3Store:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-never-shown")
    return S3Store("bucket", "notes", endpoint="http://127.0.0.1:9")


@pytest.mark.parametrize(("code", "status", "words"), [
    ("AccessDenied", 403, "permission denied"),
    ("QuotaExceeded", 403, "is full"),
    ("XMinioStorageFull", 507, "is full"),
    ("InsufficientStorage", 507, "is full"),
    ("507", 507, "is full"),
])
def test_s3_refused_writes(s3: S3Store, monkeypatch: pytest.MonkeyPatch, code: str,
                           status: int, words: str) -> None:
    def answer(method: str, **kwargs: object) -> None:
        raise client_error(code, status)

    monkeypatch.setattr(s3.fs, "call_s3", answer)
    err = refused(lambda: s3.put("packs/aa/p", b"x"), words, "s3://bucket/notes",
                  secret="secret-never-shown")
    assert not isinstance(err, TransientError)  # never retried as a 5xx


def test_s3_access_denied_on_read_and_bad_keys_on_write_stay_auth_errors(
        s3: S3Store, monkeypatch: pytest.MonkeyPatch) -> None:
    answers = {"put_object": client_error("SignatureDoesNotMatch", 403),
               "head_object": client_error("AccessDenied", 403, "HeadObject")}

    def answer(method: str, **kwargs: object) -> None:
        raise answers[method]

    monkeypatch.setattr(s3.fs, "call_s3", answer)
    raises_clean(AuthError, lambda: s3.put("heads/x", b"x"))
    raises_clean(AuthError, lambda: s3.stat("heads/x"))


def test_no_os_error_escapes_the_webdav_store() -> None:
    """An OSError leaving a store would be reported as a local failure (exit 7): requests
    raises a bare OSError for a missing CA bundle before any connection."""
    from vaultsync.errors import RemoteUnreachable
    from vaultsync.store.url import open_store

    store = open_store("webdavs://127.0.0.1:9/notes", {"verify": "/nonexistent/ca.pem"})
    with pytest.raises(RemoteUnreachable, match="CA certificate bundle"):
        store.exists()
