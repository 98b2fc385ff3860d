"""SFTP requests of one store run side by side: one SSH connection carries up to
`sftp.CHANNELS` SFTP sessions, each request taking an idle one for itself, so a clone or
an upload is not one round trip at a time (it was: one session behind a lock).

The server here runs the external sftp-server with its log on (one sftp-server process,
and one "session opened" line, per SFTP session; sshd logs each login)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

from tests.backends import servers
from vaultsync.store import sftp
from vaultsync.store.url import open_store


def test_one_connection_carries_parallel_sftp_sessions(backend_env: None) -> None:
    root = servers.make_scratch()
    sftp_log = root / "run" / "sftp.log"
    srv = servers.start_sshd(root, sftp_log=sftp_log)
    try:
        store = open_store(
            f"sftp://root@127.0.0.1:{srv.port}{srv.info['data']}/repo",
            {"key_file": srv.info["key"], "known_hosts": srv.info["known_hosts"],
             "identities_only": "yes"})
        store.prepare()
        blobs = {f"packs/{i:02x}/pack-{i}": os.urandom(1 << 20) for i in range(12)}
        with ThreadPoolExecutor(sftp.CHANNELS) as pool:
            list(pool.map(lambda kv: store.put(*kv), blobs.items()))
            got = list(pool.map(lambda name: store.get_range(name, 1000, 300_000), blobs))
        assert got == [data[1000:301_000] for data in blobs.values()]
        assert sorted(o.name for o in store.list("packs/")) == sorted(blobs)
        store.close()
        sessions = sftp_log.read_text(errors="replace").count("session opened")
        logins = srv.log.read_text(errors="replace").count("Accepted publickey")
        assert logins == 1, srv.log_tail()
        assert 2 <= sessions <= sftp.CHANNELS, sessions
    finally:
        srv.stop()
        servers.remove_scratch(root)


