"""Fixtures for the store tests: real servers on 127.0.0.1 and one `Backend` per store kind.

Servers are session-scoped and started lazily, so a test of the memory store starts none.
Under pytest-xdist every worker starts its own servers on free ports (see servers.py).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.backends import servers
from tests.backends.servers import S3_KEY, S3_SECRET, Server
from vaultsync.store.base import Store
from vaultsync.store.url import open_store

BACKENDS = ["memory", "directory", "s3-seaweedfs", "s3-moto", "webdav-apache",
            "webdav-apache-shallow", "webdav-wsgidav", "sftp-sshd"]


@pytest.fixture(autouse=True)
def backend_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory,
                ) -> None:
    """No store test sees the developer's credentials, ssh agent, ~/.netrc or ~/.ssh."""
    for key in list(os.environ):
        if key.startswith(("VAULTSYNC_", "AWS_")) or key in ("SSH_AUTH_SOCK",):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path_factory.mktemp("home")))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never ask 169.254.169.254
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")


@pytest.fixture(scope="session")
def scratch() -> Iterator[Path]:
    root = servers.make_scratch()
    yield root
    servers.remove_scratch(root)


def _server(start: Callable[[Path], Server], scratch: Path,
            ready: Callable[[Server], object] | None = None) -> Iterator[Server]:
    server = start(scratch)
    try:
        if ready is not None:
            ready(server)
        yield server
    finally:
        server.stop()


TEST_BUCKET = "vaultsync-tests"


def _s3_ready(server: Server) -> None:
    """An open port is not a working S3 yet (SeaweedFS needs its volume server): create
    the test bucket and write one object, retrying for a bounded time."""
    import s3fs

    fs = s3fs.S3FileSystem(key=S3_KEY, secret=S3_SECRET, skip_instance_cache=True,
                           endpoint_url=server.info["endpoint"])
    deadline = time.monotonic() + servers.STARTUP_TIMEOUT
    while True:
        try:
            if not fs.exists(TEST_BUCKET):
                fs.mkdir(TEST_BUCKET)
            fs.pipe_file(f"{TEST_BUCKET}/probe", b"ok")
            fs.rm_file(f"{TEST_BUCKET}/probe")
            return
        except Exception as exc:  # noqa: BLE001 - reported on timeout
            if time.monotonic() > deadline:
                pytest.fail(f"{server.name} never accepted a write ({exc!r}); log tail:\n"
                            f"{server.log_tail()}", pytrace=False)
            time.sleep(0.2)


@pytest.fixture(scope="session")
def seaweedfs(scratch: Path) -> Iterator[Server]:
    yield from _server(servers.start_seaweedfs, scratch, _s3_ready)


@pytest.fixture(scope="session")
def moto(scratch: Path) -> Iterator[Server]:
    yield from _server(servers.start_moto, scratch, _s3_ready)


@pytest.fixture(scope="session")
def apache(scratch: Path) -> Iterator[Server]:
    yield from _server(servers.start_apache, scratch)


@pytest.fixture(scope="session")
def wsgidav(scratch: Path) -> Iterator[Server]:
    yield from _server(servers.start_wsgidav, scratch)


@pytest.fixture(scope="session")
def sshd(scratch: Path) -> Iterator[Server]:
    yield from _server(servers.start_sshd, scratch)


SERVER_OF = {"s3-seaweedfs": "seaweedfs", "s3-moto": "moto", "webdav-apache": "apache",
             "webdav-apache-shallow": "apache", "webdav-wsgidav": "wsgidav",
             "sftp-sshd": "sshd"}


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@dataclass
class Backend:
    """How to reach one store kind: `open()` gives a store at a fresh location."""

    kind: str
    server: Server | None
    monkeypatch: pytest.MonkeyPatch
    tmp_path: Path
    options: dict[str, str] = field(default_factory=dict)
    opened: list[Store] = field(default_factory=list)

    def location(self, name: str | None = None, *, new_bucket: bool = False) -> str:
        """A URL for a location that does not exist yet (a folder, or an S3 prefix; with
        new_bucket, a bucket that does not exist yet)."""
        name = name or unique()
        srv = self.server
        if self.kind == "memory":
            return f"memory://{name}"
        if self.kind == "directory":
            return str(self.tmp_path / name)
        assert srv is not None
        if self.kind.startswith("s3-"):
            return f"s3://{name}" if new_bucket else f"s3://{TEST_BUCKET}/{name}"
        if self.kind == "webdav-apache":
            return (f"webdav://{servers.DAV_USER}:{servers.DAV_PASSWORD}@127.0.0.1:"
                    f"{srv.port}/{name}")
        if self.kind == "webdav-apache-shallow":  # no Depth: infinity, listing walks
            return (f"webdav://{servers.DAV_USER}:{servers.DAV_PASSWORD}@127.0.0.1:"
                    f"{srv.port}/shallow/{name}")
        if self.kind == "webdav-wsgidav":
            return f"webdav://127.0.0.1:{srv.port}/{name}"
        return f"sftp://root@127.0.0.1:{srv.port}{srv.info['data']}/{name}"

    def open(self, url: str | None = None, prepare: bool = True, **options: str) -> Store:
        store = open_store(url or self.location(), {**self.options, **options})
        self.opened.append(store)
        if prepare:
            store.prepare()
        return store

    def disk_root(self, store: Store) -> Path | None:
        """The store's folder on the server's disk, where the server keeps objects as
        plain files (directory, WebDAV, SFTP); None for the others."""
        srv = self.server
        if self.kind == "directory":
            return Path(store.url.removeprefix("file://"))
        if self.kind in ("webdav-apache", "webdav-wsgidav", "sftp-sshd") and srv:
            return Path(srv.info["data"]) / store.url.rstrip("/").rsplit("/", 1)[-1]
        if self.kind == "webdav-apache-shallow" and srv:
            return Path(srv.info["shallow"]) / store.url.rstrip("/").rsplit("/", 1)[-1]
        return None

    def disk_names(self, store: Store) -> list[str] | None:
        """Every file name under the store's folder, read from the server's disk (not
        through the store), where the server keeps objects as plain files."""
        root = self.disk_root(store)
        if root is None:
            return None
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _setup_env(kind: str, server: Server | None, mp: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment and options per backend; each credential path is used somewhere."""
    if kind.startswith("s3-"):
        assert server is not None
        mp.setenv("AWS_ACCESS_KEY_ID", S3_KEY)
        mp.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET)
        if kind == "s3-moto":
            mp.setenv("AWS_ENDPOINT_URL", server.info["endpoint"])
            return {}
        return {"endpoint": server.info["endpoint"]}
    if kind == "webdav-wsgidav":
        mp.setenv("VAULTSYNC_WEBDAV_USER", servers.DAV_USER)
        mp.setenv("VAULTSYNC_WEBDAV_PASSWORD", servers.DAV_PASSWORD)
    if kind == "sftp-sshd":
        assert server is not None
        return {"key_file": server.info["key"], "known_hosts": server.info["known_hosts"],
                "identities_only": "yes"}
    return {}


def make_backend(kind: str, request: pytest.FixtureRequest, mp: pytest.MonkeyPatch,
                 tmp_path: Path) -> Backend:
    server = request.getfixturevalue(SERVER_OF[kind]) if kind in SERVER_OF else None
    return Backend(kind, server, mp, tmp_path, _setup_env(kind, server, mp))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
            tmp_path: Path) -> Iterator[Backend]:
    b = make_backend(request.param, request, monkeypatch, tmp_path)
    yield b
    for store in b.opened:
        store.close()


@pytest.fixture
def backends(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
             tmp_path: Path) -> Iterator[Callable[[str], Backend]]:
    """`backends("sftp-sshd")`: a Backend of a named kind, for the failure tests."""
    made: list[Backend] = []

    def get(kind: str) -> Backend:
        made.append(make_backend(kind, request, monkeypatch, tmp_path))
        return made[-1]

    yield get
    for b in made:
        for store in b.opened:
            store.close()


@pytest.fixture
def store(backend: Backend) -> Store:
    return backend.open()
