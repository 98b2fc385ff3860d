"""URL and option parsing of the network stores (no server needed: nothing connects
before the first request)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vaultsync.errors import UsageError
from vaultsync.store.retry import RetryStore
from vaultsync.store.url import open_store


@pytest.mark.parametrize("url", [
    "s3://AKIAXXX:topsecret@bucket/p",  # credentials never in an S3 URL
    "s3://",
    "s3://bucket:abc/p",
    "webdav:///no-host",
    "sftp:///no-host",
    "sftp://host:99999999/x",
])
def test_bad_urls_are_usage_errors(url: str) -> None:
    with pytest.raises(UsageError) as info:
        open_store(url)
    assert "topsecret" not in str(info.value)
    assert info.value.exit_code == 2


def test_s3_url_and_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store("s3://bucket/some/prefix/", {"endpoint": "http://127.0.0.1:9"})
    assert store.url == "s3://bucket/some/prefix"
    assert store.bucket == "bucket" and store.prefix == "some/prefix"  # type: ignore[attr-defined]
    assert store.endpoint == "http://127.0.0.1:9"  # type: ignore[attr-defined]
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:8")
    assert open_store("s3://b").endpoint == "http://127.0.0.1:8"  # type: ignore[attr-defined]
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:7")
    assert open_store("s3://b").endpoint == "http://127.0.0.1:7"  # type: ignore[attr-defined]


def test_webdav_urls_hide_passwords() -> None:
    store = open_store("webdavs://alice:pa%20ss@cloud.example.org/remote.php/dav/files/alice/V")
    assert store.url == "webdavs://alice@cloud.example.org/remote.php/dav/files/alice/V"
    assert "pa ss" not in repr(store) and "pa%20ss" not in repr(store)
    assert store.session.auth == ("alice", "pa ss")  # type: ignore[attr-defined]
    assert store.origin == "https://cloud.example.org"  # type: ignore[attr-defined]
    plain = open_store("webdav://127.0.0.1:8080/a/b/")
    assert plain.origin == "http://127.0.0.1:8080" and plain.base == "/a/b"  # type: ignore[attr-defined]


def test_webdav_credential_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".netrc").write_text("machine dav.test login netrcuser password netrcpass\n")
    (tmp_path / ".netrc").chmod(0o600)
    monkeypatch.setenv("HOME", str(tmp_path))
    url = "webdav://dav.test/v"
    assert open_store(url).session.auth == ("netrcuser", "netrcpass")  # type: ignore[attr-defined]
    opts = {"user": "optuser", "password": "optpass"}
    assert open_store(url, opts).session.auth == ("optuser", "optpass")  # type: ignore[attr-defined]
    monkeypatch.setenv("VAULTSYNC_WEBDAV_USER", "envuser")
    monkeypatch.setenv("VAULTSYNC_WEBDAV_PASSWORD", "envpass")
    assert open_store(url, opts).session.auth == ("envuser", "envpass")  # type: ignore[attr-defined]
    assert open_store("webdav://u:p@dav.test/v").session.auth == ("u", "p")  # type: ignore[attr-defined]


def test_sftp_url_forms(tmp_path: Path) -> None:
    key = tmp_path / "k"
    key.write_text("not used before connecting")
    store = open_store("sftp://bob:s3cret@h.test:2222/srv/vault/", {"key_file": str(key)})
    assert store.url == "sftp://bob@h.test:2222/srv/vault"
    assert "s3cret" not in repr(store) and "s3cret" not in repr(store.target)  # type: ignore[attr-defined]
    assert store.root == "/srv/vault"  # type: ignore[attr-defined]
    assert open_store("sftp://bob@h.test/~/vault").root == "vault"  # type: ignore[attr-defined]
    assert open_store("sftp://bob@h.test/~").root == "."  # type: ignore[attr-defined]
    with pytest.raises(UsageError, match="yes or no"):
        open_store("sftp://bob@h.test/x", {"accept_new_host_key": "maybe"})


def test_retry_store_keeps_url_and_capabilities() -> None:
    inner = open_store("webdav://127.0.0.1:9/x")
    wrapped = RetryStore(inner)
    assert wrapped.url == inner.url and wrapped.capabilities == inner.capabilities
    with pytest.raises(ValueError):
        RetryStore(inner, attempts=0)
