"""The command line, unchanged, over every real network backend: init, sync, clone,
edit, push, pull, verify and checkout, with secrets never printed."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.backends import servers
from tests.backends.conftest import Backend
from tests.conftest import REPO_ROOT, Result, run_cli, tree_state

SAMPLE = REPO_ROOT / "fixtures" / "sample-vault"
NETWORK = ["s3-seaweedfs", "s3-moto", "webdav-apache", "webdav-wsgidav", "sftp-sshd"]
SECRETS = [servers.S3_SECRET, servers.DAV_PASSWORD]


def cli_env(b: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a user would set up: AWS variables, WebDAV variables, or ~/.ssh/config."""
    srv = b.server
    assert srv is not None
    if b.kind.startswith("s3-"):
        monkeypatch.setenv("AWS_ENDPOINT_URL", srv.info["endpoint"])
    if b.kind == "sftp-sshd":
        ssh = Path.home() / ".ssh"
        ssh.mkdir(exist_ok=True)
        (ssh / "config").write_text(
            f"Host 127.0.0.1\n  Port {srv.port}\n  User root\n"
            f"  IdentityFile {srv.info['key']}\n  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {srv.info['known_hosts']}\n")


def ok(res: Result, codes: tuple[int, ...] = (0,)) -> Result:
    assert res.code in codes, (res.code, res.out, res.err)
    for secret in SECRETS:
        assert secret not in res.out + res.err
    return res


@pytest.mark.parametrize("kind", NETWORK)
def test_cli_end_to_end(kind: str, backends: Callable[[str], Backend], tmp_path: Path,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    b = backends(kind)
    cli_env(b, monkeypatch)
    url = b.location()
    a, c = tmp_path / "a", tmp_path / "c"
    shutil.copytree(SAMPLE, a)
    ok(run_cli("init", "--remote", url, "--device", "laptop", cwd=a))
    assert "synced to snapshot" in ok(run_cli("sync", cwd=a)).out
    ok(run_cli("clone", url, str(c), "--device", "desk"))
    assert tree_state(c) == tree_state(a)
    # edits on both sides, a move and a delete, then two-way sync
    (c / "Welcome.md").write_text("edited on the desk")
    (c / "Daily").rename(c / "Journal")
    (a / "Café.md").unlink()
    (a / "new.md").write_text("new on the laptop")
    doc = json.loads(ok(run_cli("sync", "--json", cwd=c)).out)
    assert doc["traffic"]["requests_up"] > 0
    assert (doc["uploaded"], doc["moved"], doc["deleted_remotely"]) == (1, 1, 0)  # a move
    doc = json.loads(ok(run_cli("sync", "--json", cwd=a)).out)
    assert (doc["moved"], doc["deleted"], doc["downloaded"]) == (1, 0, 1)  # a rename here
    ok(run_cli("sync", cwd=c))
    assert tree_state(c) == tree_state(a)
    assert (a / "Journal").is_dir() and not (c / "Café.md").exists()
    # one-way paths
    (a / "Welcome.md").write_text("pushed from the laptop")
    ok(run_cli("push", cwd=a))
    ok(run_cli("pull", cwd=c))
    assert (c / "Welcome.md").read_text() == "pushed from the laptop"
    assert "ok:" in ok(run_cli("verify", "--read-data", "100", cwd=a)).out
    ok(run_cli("checkout", url, str(tmp_path / "co")))
    assert tree_state(tmp_path / "co").keys() == tree_state(a).keys()
    assert ok(run_cli("sync", cwd=a)).out.startswith("already up to date")


@pytest.mark.parametrize("kind", ["s3-seaweedfs", "webdav-wsgidav"])
def test_wrong_credentials_exit_3_without_the_secret(
        kind: str, backends: Callable[[str], Backend], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    b = backends(kind)
    cli_env(b, monkeypatch)
    url = b.location()
    a = tmp_path / "a"
    shutil.copytree(SAMPLE, a)
    ok(run_cli("init", "--remote", url, cwd=a))
    wrong = "wrong-Secret-9d8f7"
    if kind.startswith("s3-"):
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong)
    else:
        monkeypatch.setenv("VAULTSYNC_WEBDAV_PASSWORD", wrong)
    res = run_cli("sync", cwd=a)
    assert res.code == 3, (res.out, res.err)
    assert len(res.err.strip().splitlines()) == 1 and "Traceback" not in res.err
    for secret in (*SECRETS, wrong):
        assert secret not in res.out + res.err


def test_store_options_come_from_the_vault_config(
        backends: Callable[[str], Backend], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An S3 endpoint set in [remote_options] of config.toml, not in the environment."""
    b = backends("s3-seaweedfs")
    assert b.server is not None
    url = b.location()
    a = tmp_path / "a"
    shutil.copytree(SAMPLE, a)
    monkeypatch.setenv("AWS_ENDPOINT_URL", b.server.info["endpoint"])
    ok(run_cli("init", "--remote", url, cwd=a))
    monkeypatch.delenv("AWS_ENDPOINT_URL")  # (never run without it: that would try AWS)
    cfg = a / ".vaultsync/config.toml"
    endpoint = b.server.info["endpoint"]
    cfg.write_text(cfg.read_text() + f'\n[remote_options]\nendpoint = "{endpoint}"\n')
    assert "synced to snapshot" in ok(run_cli("sync", cwd=a)).out
