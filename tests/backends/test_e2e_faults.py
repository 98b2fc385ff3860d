"""Whole commands against real servers that fail: a flaky server (the run completes
through retries) and a server that goes away mid-push (exit 3, repository still valid,
the re-run completes)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.backends.conftest import Backend
from tests.backends.fault_proxy import FaultProxy
from tests.backends.test_e2e_cli import ok
from tests.conftest import REPO_ROOT, run_cli, tree_state, write

KINDS = ["s3-seaweedfs", "webdav-apache"]


def through(b: Backend, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch) -> str:
    """The URL (and environment) that reach `b`'s server through the proxy."""
    srv = b.server
    assert srv is not None
    monkeypatch.setenv("VAULTSYNC_RETRY_SECONDS", "8")
    if b.kind.startswith("s3-"):
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{proxy.port}")
        return b.location()
    return b.location().replace(f":{srv.port}/", f":{proxy.port}/")


def vault_with(tmp_path: Path, n: int) -> Path:
    v = tmp_path / "v"
    for i in range(n):
        write(v / f"d{i % 5}/n{i}.md", os.urandom(3000).hex(), mtime=1_600_000_000 + i)
    return v


@pytest.mark.parametrize("kind", KINDS)
def test_sync_completes_through_a_flaky_server(kind: str, backends: Callable[[str], Backend],
                                               tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    b = backends(kind)
    assert b.server is not None
    proxy = FaultProxy(b.server.port, rate=0.0, seed=7)
    try:
        url = through(b, proxy, monkeypatch)
        v = vault_with(tmp_path, 40)
        ok(run_cli("init", "--remote", url, cwd=v))
        proxy.rate = 0.15
        ok(run_cli("sync", cwd=v))
        ok(run_cli("clone", url, str(tmp_path / "c")))
        proxy.rate = 0.0
        assert tree_state(tmp_path / "c") == tree_state(v)
        assert "ok:" in ok(run_cli("verify", "--read-data", "100", cwd=v)).out
    finally:
        proxy.stop()
    assert proxy.faults >= 3, "the proxy injected (almost) no faults: the test proves nothing"


@pytest.mark.parametrize("kind", KINDS)
def test_server_gone_mid_push_then_rerun(kind: str, backends: Callable[[str], Backend],
                                         tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    b = backends(kind)
    assert b.server is not None
    proxy = FaultProxy(b.server.port, rate=0.0, seed=8, kinds=("drop",))
    try:
        url = through(b, proxy, monkeypatch)
        monkeypatch.setenv("VAULTSYNC_PACK_SIZE", "16384")  # many packs: a long push
        v = vault_with(tmp_path, 120)
        ok(run_cli("init", "--remote", url, cwd=v))
        env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
        before = proxy.passed
        proc = subprocess.Popen([sys.executable, "-m", "vaultsync", "push"], cwd=v, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while proxy.passed < before + 8 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        proxy.rate = 1.0  # the server "goes away" with the push half done
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 3, (out, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        proxy.rate = 0.0  # back again
        assert "ok:" in ok(run_cli("verify", cwd=v)).out  # what is there is consistent
        assert ok(run_cli("push", cwd=v)).out.startswith("pushed snapshot")
        assert "ok:" in ok(run_cli("verify", "--read-data", "100", cwd=v)).out
        ok(run_cli("clone", url, str(tmp_path / "c")))
        assert tree_state(tmp_path / "c") == tree_state(v)
    finally:
        proxy.stop()
