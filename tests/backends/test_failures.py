"""Failures against the real servers: refused credentials, missing locations, host keys,
unreachable endpoints. Each error must be the right class and exit code, say what to
do, and never carry a secret."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.backends import servers
from tests.backends.conftest import Backend, unique
from vaultsync.errors import (
    EXIT_REMOTE,
    EXIT_USAGE,
    AuthError,
    NotARepository,
    TransientError,
    UsageError,
    VaultsyncError,
)
from vaultsync.store.base import Store

Get = Callable[[str], Backend]


def raises_clean(cls: type[VaultsyncError], call: Callable[[], object],
                 *secrets: str) -> VaultsyncError:
    """`call()` raises `cls`; neither its message, repr nor traceback holds a secret."""
    with pytest.raises(cls) as info:
        call()
    err = info.value
    text = str(err) + repr(err) + "".join(traceback.format_exception(err))
    for secret in secrets:
        assert secret not in text
    return err


def every_call(store: Store) -> list[Callable[[], object]]:
    return [lambda: store.get("heads/x"), lambda: store.put("heads/x", b"1"),
            lambda: list(store.list("")), lambda: store.stat("heads/x"),
            lambda: store.get_range("packs/aa/p", 0, 4)]


def closed_port() -> int:
    return servers.free_port()  # nothing listens there once the probe socket is closed


# -- S3 ----------------------------------------------------------------------------------

def test_s3_wrong_secret(backends: Get, monkeypatch: pytest.MonkeyPatch,
                         caplog: pytest.LogCaptureFixture) -> None:
    b = backends("s3-seaweedfs")
    bad = "wrong-secret-Zz91"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", bad)
    store = b.open(prepare=False)
    with caplog.at_level(logging.DEBUG):
        for call in every_call(store):
            err = raises_clean(AuthError, call, bad, servers.S3_SECRET)
            assert err.exit_code == EXIT_REMOTE
            assert "AWS_SECRET_ACCESS_KEY" in str(err)  # says what to check
    assert bad not in caplog.text


def test_s3_unknown_access_key(backends: Get, monkeypatch: pytest.MonkeyPatch) -> None:
    b = backends("s3-seaweedfs")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "nosuchkey")
    store = b.open(prepare=False)
    raises_clean(AuthError, lambda: store.get("heads/x"), servers.S3_SECRET)


def test_s3_no_credentials(backends: Get, monkeypatch: pytest.MonkeyPatch) -> None:
    b = backends("s3-seaweedfs")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    store = b.open(prepare=False)
    err = raises_clean(AuthError, lambda: store.get("heads/x"))
    assert "no S3 credentials" in str(err)


@pytest.mark.parametrize("kind", ["s3-seaweedfs", "s3-moto"])
def test_s3_missing_bucket(backends: Get, kind: str) -> None:
    b = backends(kind)
    bucket = unique("nobucket")
    store = b.open(f"s3://{bucket}/vault", prepare=False)
    assert store.exists() is False
    for call in every_call(store) + [lambda: store.delete("heads/x")]:
        err = raises_clean(NotARepository, call)
        assert err.exit_code == EXIT_USAGE
        assert bucket in str(err) and "does not exist" in str(err)


def test_s3_unreachable_is_transient(backends: Get) -> None:
    b = backends("s3-moto")
    store = b.open(endpoint=f"http://127.0.0.1:{closed_port()}", prepare=False)
    start = time.monotonic()
    err = raises_clean(TransientError, lambda: store.get("heads/x"))
    assert err.exit_code == EXIT_REMOTE
    assert time.monotonic() - start < 10  # no hidden retry loop inside the store


# -- WebDAV ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["webdav-apache", "webdav-wsgidav"])
def test_webdav_wrong_password(backends: Get, kind: str,
                               caplog: pytest.LogCaptureFixture) -> None:
    b = backends(kind)
    bad = "wrong-pass-Qq77"
    url = f"webdav://{servers.DAV_USER}:{bad}@127.0.0.1:{b.server.port}/{unique()}"  # type: ignore[union-attr]
    store = b.open(url, prepare=False)
    assert bad not in store.url and bad not in repr(store)
    with caplog.at_level(logging.DEBUG):
        for call in every_call(store) + [store.prepare, store.exists]:
            err = raises_clean(AuthError, call, bad, servers.DAV_PASSWORD)
            assert err.exit_code == EXIT_REMOTE
    assert bad not in caplog.text


def test_webdav_no_credentials(backends: Get, monkeypatch: pytest.MonkeyPatch) -> None:
    b = backends("webdav-wsgidav")
    monkeypatch.delenv("VAULTSYNC_WEBDAV_USER")
    monkeypatch.delenv("VAULTSYNC_WEBDAV_PASSWORD")
    store = b.open(prepare=False)
    raises_clean(AuthError, lambda: store.get("heads/x"))


def test_webdav_credentials_from_netrc_and_options(backends: Get, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    b = backends("webdav-apache")
    port = b.server.port  # type: ignore[union-attr]
    home = tmp_path / "home"
    home.mkdir()
    (home / ".netrc").write_text(
        f"machine 127.0.0.1 login {servers.DAV_USER} password {servers.DAV_PASSWORD}\n")
    (home / ".netrc").chmod(0o600)
    monkeypatch.setenv("HOME", str(home))
    store = b.open(f"webdav://127.0.0.1:{port}/{unique()}")
    store.put("heads/n", b"netrc")
    assert store.get("heads/n") == b"netrc"
    (home / ".netrc").unlink()
    store2 = b.open(f"webdav://127.0.0.1:{port}/{unique()}", user=servers.DAV_USER,
                    password=servers.DAV_PASSWORD)
    store2.put("heads/o", b"options")
    assert store2.get("heads/o") == b"options"


@pytest.mark.parametrize("kind", ["webdav-apache", "webdav-wsgidav"])
def test_webdav_missing_folder(backends: Get, kind: str) -> None:
    b = backends(kind)
    missing = unique("missing")
    store = b.open(b.location(f"{missing}/vault"), prepare=False)
    assert store.exists() is False
    for call in every_call(store) + [lambda: store.put("packs/aa/p", b"x")]:
        err = raises_clean(NotARepository, call)
        assert missing in str(err) and "does not exist" in str(err)


def test_webdav_listing_falls_back_to_depth_1(backends: Get) -> None:
    """Apache without DavDepthInfinity answers 403 to Depth: infinity (nginx too): the
    store must walk folder by folder instead, once it has seen the refusal."""
    b = backends("webdav-apache-shallow")
    store = b.open()
    for name in ("packs/aa/1", "packs/ab/2", "heads/d", "vaultsync.json"):
        store.put(name, name.encode())
    assert sorted(i.name for i in store.list("packs/")) == ["packs/aa/1", "packs/ab/2"]
    assert store._depth_infinity is False  # type: ignore[attr-defined]
    assert sorted(i.name for i in store.list("")) == \
        ["heads/d", "packs/aa/1", "packs/ab/2", "vaultsync.json"]


def test_webdav_unreachable_is_transient(backends: Get) -> None:
    b = backends("webdav-wsgidav")
    store = b.open(f"webdav://127.0.0.1:{closed_port()}/vault", prepare=False)
    err = raises_clean(TransientError, lambda: store.get("heads/x"))
    assert err.exit_code == EXIT_REMOTE


# -- SFTP --------------------------------------------------------------------------------

def sftp_url(b: Backend, name: str | None = None, user: str = "root") -> str:
    srv = b.server
    assert srv is not None
    return f"sftp://{user}@127.0.0.1:{srv.port}{srv.info['data']}/{name or unique()}"


def test_sftp_wrong_key(backends: Get, tmp_path: Path) -> None:
    b = backends("sftp-sshd")
    servers.keygen(tmp_path / "other_key", "not-authorized")
    store = b.open(prepare=False, key_file=str(tmp_path / "other_key"))
    for call in every_call(store):
        err = raises_clean(AuthError, call)
        assert "authentication failed" in str(err)


def test_sftp_password_never_shown(backends: Get, tmp_path: Path) -> None:
    b = backends("sftp-sshd")
    secret = "hunter2-Xv8"
    url = sftp_url(b, user=f"root:{secret}")
    servers.keygen(tmp_path / "other_key", "not-authorized")
    store = b.open(url, prepare=False, key_file=str(tmp_path / "other_key"))
    assert secret not in store.url and secret not in repr(store)
    raises_clean(AuthError, lambda: store.get("heads/x"), secret)


def test_sftp_missing_key_file_is_a_usage_error(backends: Get) -> None:
    b = backends("sftp-sshd")
    with pytest.raises(UsageError, match="does not exist"):
        b.open(prepare=False, key_file="/nonexistent/key")


def test_sftp_unknown_host_key_refused(backends: Get, tmp_path: Path) -> None:
    b = backends("sftp-sshd")
    known = tmp_path / "known_hosts"
    known.write_text("")
    store = b.open(prepare=False, known_hosts=str(known))
    for call in every_call(store):
        err = raises_clean(AuthError, call)
        assert "not in" in str(err) and str(known) in str(err)
        assert "accept_new_host_key" in str(err)
    assert known.read_text() == ""  # nothing was learned


@pytest.mark.parametrize("via", ["option", "env"])
def test_sftp_accept_new_host_key(backends: Get, tmp_path: Path, via: str,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    b = backends("sftp-sshd")
    known = tmp_path / "ssh" / "known_hosts"  # neither the file nor its folder exist
    extra = {"accept_new_host_key": "yes"} if via == "option" else {}
    if via == "env":
        monkeypatch.setenv("VAULTSYNC_SSH_ACCEPT_NEW_HOST_KEY", "1")
    store = b.open(known_hosts=str(known), **extra)
    store.put("heads/a", b"accepted")
    line = known.read_text().strip()
    assert line == f"[127.0.0.1]:{b.server.port} {b.server.info['host_key_line']}"  # type: ignore[union-attr]
    monkeypatch.delenv("VAULTSYNC_SSH_ACCEPT_NEW_HOST_KEY", raising=False)
    again = b.open(store.url, prepare=False, known_hosts=str(known))  # strict from now on
    assert again.get("heads/a") == b"accepted"


def test_sftp_changed_host_key_refused(backends: Get, tmp_path: Path) -> None:
    b = backends("sftp-sshd")
    impostor = servers.keygen(tmp_path / "impostor", "impostor").split()
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{b.server.port} {impostor[0]} {impostor[1]}\n")  # type: ignore[union-attr]
    before = known.read_text()
    store = b.open(prepare=False, known_hosts=str(known), accept_new_host_key="yes")
    err = raises_clean(AuthError, lambda: store.get("heads/x"))
    assert "does NOT match" in str(err)
    assert known.read_text() == before


def test_sftp_missing_folder(backends: Get) -> None:
    b = backends("sftp-sshd")
    missing = unique("missing")
    store = b.open(sftp_url(b, f"{missing}/vault"), prepare=False)
    assert store.exists() is False
    for call in every_call(store) + [lambda: store.put("packs/aa/p", b"x")]:
        err = raises_clean(NotARepository, call)
        assert missing in str(err) and "does not exist" in str(err)


def test_sftp_ssh_config(backends: Get, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                         ) -> None:
    """Host alias, port, user, key and known_hosts all from ~/.ssh/config."""
    b = backends("sftp-sshd")
    srv = b.server
    assert srv is not None
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text(
        f"Host vaultbox\n  HostName 127.0.0.1\n  Port {srv.port}\n  User root\n"
        f"  IdentityFile {srv.info['key']}\n  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {srv.info['known_hosts']}\n")
    monkeypatch.setenv("HOME", str(home))
    b.options = {}
    name = unique()
    store = b.open(f"sftp://vaultbox{srv.info['data']}/{name}")
    store.put("heads/c", b"from ssh config")
    assert (Path(srv.info["data"]) / name / "heads" / "c").read_bytes() == b"from ssh config"
    assert store.url == f"sftp://root@127.0.0.1:{srv.port}{srv.info['data']}/{name}"


def test_sftp_unreachable_is_transient(backends: Get) -> None:
    b = backends("sftp-sshd")
    url = f"sftp://root@127.0.0.1:{closed_port()}/tmp/vault"
    store = b.open(url, prepare=False)
    err = raises_clean(TransientError, lambda: store.get("heads/x"))
    assert err.exit_code == EXIT_REMOTE


def test_sftp_dropped_handshake_prints_nothing() -> None:
    """A CLI process without logging set up must not get paramiko's tracebacks on stderr."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.settimeout(30)
    port = listener.getsockname()[1]

    def drop() -> None:
        with contextlib.suppress(OSError):
            conn, _ = listener.accept()
            conn.close()

    thread = threading.Thread(target=drop, daemon=True)
    thread.start()
    code = ("from vaultsync.store.url import open_store\n"
            "from vaultsync.errors import TransientError\n"
            f"s = open_store('sftp://root@127.0.0.1:{port}/x', {{'identities_only': 'yes'}})\n"
            "try:\n    s.get('a')\nexcept TransientError:\n    print('transient')\n")
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=60)
    finally:
        thread.join(30)
        listener.close()
    assert done.stdout.strip() == "transient"
    assert done.stderr == ""


def test_install_script_is_idempotent_and_fast() -> None:
    """Everything is installed already (the servers above started), so a re-run only
    checks: it must not reinstall anything."""
    script = Path(__file__).resolve().parents[2] / "scripts" / "install-servers.sh"
    start = time.monotonic()
    env = {**os.environ, "VAULTSYNC_SERVER_VENV": str(servers.SERVER_VENV)}
    check = subprocess.run(["bash", str(script), "--check"], capture_output=True, text=True,
                           timeout=60, env=env)
    assert check.returncode == 0, f"not installed, run {script}: {check.stdout}"
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=120,
                          env=env)
    assert done.returncode == 0, done.stderr
    assert "servers ready" in done.stdout
    assert "Hit:" not in done.stdout and "Setting up" not in done.stdout  # no apt run
    assert time.monotonic() - start < 20
