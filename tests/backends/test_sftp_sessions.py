"""SFTP reads and writes of one store run side by side, and every byte is asked for once.

- One SSH connection carries up to `sftp.CHANNELS` SFTP sessions, each request taking an
  idle one for itself, so a clone or an upload is not one round trip at a time (it was:
  one session behind a lock).
- A range is read with pipelined READ requests sent by the reader itself
  (`_sftpread.read_range`), never through paramiko's prefetch thread, which under load
  read parts of a range twice (a clone took 36 MiB for 28 MiB of packs).

The server here runs the external sftp-server with its log on: one "session opened" line
per SFTP session and one "request N: read" line per READ; sshd logs each login."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.backends import servers
from vaultsync.store import _sftpread, sftp
from vaultsync.store.base import Store
from vaultsync.store.url import open_store

READ = re.compile(r".*request \d+: read\b")


@pytest.fixture
def logged(backend_env: None) -> Iterator[tuple[servers.Server, Path, Store]]:
    root = servers.make_scratch()
    sftp_log = root / "run" / "sftp.log"
    srv = servers.start_sshd(root, sftp_log=sftp_log)
    try:
        store = open_store(
            f"sftp://root@127.0.0.1:{srv.port}{srv.info['data']}/repo",
            {"key_file": srv.info["key"], "known_hosts": srv.info["known_hosts"],
             "identities_only": "yes"})
        store.prepare()
        yield srv, sftp_log, store
        store.close()
    finally:
        srv.stop()
        servers.remove_scratch(root)


def reads(log: Path) -> int:
    return sum(1 for line in log.read_text(errors="replace").splitlines() if READ.match(line))


def test_one_connection_carries_parallel_sftp_sessions(
        logged: tuple[servers.Server, Path, Store]) -> None:
    srv, sftp_log, store = logged
    blobs = {f"packs/{i:02x}/pack-{i}": os.urandom((1 << 20) + 77 * i) for i in range(12)}
    with ThreadPoolExecutor(sftp.CHANNELS) as pool:
        list(pool.map(lambda kv: store.put(*kv), blobs.items()))
        before = reads(sftp_log)
        got = list(pool.map(store.get, blobs))
        ranges = list(pool.map(lambda name: store.get_range(name, 1000, 300_000), blobs))
    assert got == list(blobs.values())
    assert ranges == [data[1000:301_000] for data in blobs.values()]
    assert sorted(o.name for o in store.list("packs/")) == sorted(blobs)
    store.close()
    sessions = sftp_log.read_text(errors="replace").count("session opened")
    logins = srv.log.read_text(errors="replace").count("Accepted publickey")
    assert logins == 1, srv.log_tail()
    assert 2 <= sessions <= sftp.CHANNELS, sessions
    # every byte asked for once: a READ per 32 KiB of each object and of each range
    asked = sum(math.ceil(len(d) / _sftpread.REQUEST) for d in blobs.values())
    asked += len(blobs) * math.ceil(300_000 / _sftpread.REQUEST)
    assert reads(sftp_log) - before == asked


def test_ranges_at_the_edges_of_an_object(logged: tuple[servers.Server, Path, Store]) -> None:
    _, _, store = logged
    data = os.urandom(3 * _sftpread.REQUEST * _sftpread.WINDOW + 5)  # more than a window
    store.put("packs/aa/big", data)
    store.put("packs/aa/empty", b"")
    assert store.get("packs/aa/big") == data
    assert store.get("packs/aa/empty") == b""
    for offset, length in [(0, 1), (0, len(data)), (len(data) - 5, 5), (12345, 70_000),
                           (_sftpread.REQUEST - 1, _sftpread.REQUEST + 2)]:
        assert store.get_range("packs/aa/big", offset, length) == \
            data[offset:offset + length], (offset, length)
