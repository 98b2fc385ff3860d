"""The command line at the edges (issue 9), through `python -m vaultsync`: which side
failed (exit 3 "remote" vs exit 7 "local"), SIGTERM, secrets, output that cannot be
faked, and settings that are checked before they do harm."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, run_cli, tree_state, write
from tests.edge_env import UNPRIVILEGED, fill, leftovers, remount, run_cli_as, tmpfs

SAMPLE = REPO_ROOT / "fixtures" / "sample-vault"


def one_line(res, code: int, *words: str) -> str:  # type: ignore[no-untyped-def]
    assert res.code == code, (res.code, res.out, res.err)
    lines = res.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.err, res.err
    for word in words:
        assert word in lines[0], lines[0]
    return str(lines[0])


def init(vault: Path, remote: Path, device: str = "laptop") -> None:
    res = run_cli("init", "--remote", str(remote), "--device", device, cwd=vault)
    assert res.code == 0, res.err


@pytest.fixture
def vault(tmp_path: Path) -> Path:
    v = tmp_path / "vault"
    shutil.copytree(SAMPLE, v)
    init(v, tmp_path / "remote")
    assert run_cli("sync", cwd=v).code == 0
    return v


# -- the remote refused: exit 3, says "remote" and which way --------------------------------

def test_full_remote_is_exit_3_and_leaves_nothing_behind(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "remote", "256k") as remote:
        v = tmp_path / "vault"
        write(v / "note.md", "a note")
        init(v, remote)
        assert run_cli("sync", cwd=v).code == 0
        write(v / "big.bin", os.urandom(600_000))
        before = tree_state(v)
        line = one_line(run_cli("sync", cwd=v), 3, "remote is full", f"file://{remote}",
                        "No space left on device")
        assert "local" not in line
        assert leftovers(remote) == [] and leftovers(v) == []
        assert tree_state(v) == before
        remount(remote, "size=4m")  # space freed: the same command completes
        assert run_cli("sync", cwd=v).code == 0
        assert run_cli("verify", "--read-data", "100", cwd=v).code == 0


def test_read_only_remote_is_exit_3(vault: Path, tmp_path: Path) -> None:
    remote = tmp_path / "ro"
    with tmpfs(remote, "4m"):
        v = tmp_path / "v2"
        write(v / "a.md", "a")
        init(v, remote)
        assert run_cli("sync", cwd=v).code == 0
        remount(remote, "ro")
        write(v / "b.md", "b")
        one_line(run_cli("sync", cwd=v), 3, "remote is read-only", f"file://{remote}")
        assert run_cli("status", cwd=v).code == 0  # reading still works


def test_remote_without_write_permission_is_exit_3(vault: Path, tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    for folder in [remote, *[p for p in remote.rglob("*") if p.is_dir()]]:
        folder.chmod(0o555)
    write(vault / "new.md", "new")
    res = run_cli_as(UNPRIVILEGED, "sync", cwd=vault)
    one_line(res, 3, "remote permission denied", f"file://{remote}", "Permission denied")
    (remote / "heads").chmod(0)  # unreadable: listing must fail, not see "no heads"
    res = run_cli_as(UNPRIVILEGED, "status", cwd=vault)
    one_line(res, 3, "remote permission denied", "listing heads/")


# -- the local disk failed: exit 7, says "local", the vault untouched ----------------------

def test_local_disk_full_is_exit_7_and_the_vault_is_untouched(tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    other = tmp_path / "other"
    write(other / "note.md", "note")
    init(other, remote, "desk")
    assert run_cli("sync", cwd=other).code == 0
    with tmpfs(tmp_path / "disk", "2m") as disk:
        v = disk / "vault"
        assert run_cli("clone", str(remote), str(v), "--device", "laptop").code == 0
        write(other / "big.bin", os.urandom(3_000_000))  # more than the disk holds
        write(other / "note.md", "note, edited")
        assert run_cli("sync", cwd=other).code == 0
        before = tree_state(v)
        line = one_line(run_cli("sync", cwd=v), 7, "local disk full", str(v),
                        "No space left on device")
        assert "remote" not in line
        assert tree_state(v) == before and leftovers(v) == []  # no half-written file
        remount(disk, "size=8m")
        assert run_cli("sync", cwd=v).code == 0
        assert tree_state(v) == tree_state(other)


def test_local_state_database_full_is_exit_7_naming_it(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk", "4m") as disk:
        v = disk / "vault"
        for i in range(20):
            write(v / f"n{i}.md", f"note {i}")
        init(v, tmp_path / "remote")
        assert run_cli("sync", cwd=v).code == 0
        for i in range(20, 150):
            write(v / f"n{i}.md", f"note {i}")
        fill(disk)
        one_line(run_cli("sync", cwd=v), 7, "local disk full",
                 f"{v}/.vaultsync/state.db", "database or disk is full")
        (disk / "filler").unlink()
        assert run_cli("sync", cwd=v).code == 0
        assert run_cli("verify", cwd=v).code == 0
