"""The command line through the real entry point: exact output and exit codes."""

import fcntl
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, run_cli, tree_state

SAMPLE = REPO_ROOT / "fixtures" / "sample-vault"
SID = r"[0-9a-f]{12}"


def one_line_error(res, code: int, pattern: str) -> None:  # type: ignore[no-untyped-def]
    assert res.code == code, (res.code, res.out, res.err)
    assert "Traceback" not in res.err
    lines = res.err.strip().splitlines()
    assert len(lines) == 1, res.err
    assert re.search(pattern, lines[0]), lines[0]


@pytest.fixture
def vault(tmp_path: Path) -> Path:
    v = tmp_path / "vault"
    shutil.copytree(SAMPLE, v)
    res = run_cli("init", "--remote", str(tmp_path / "remote"), "--device", "laptop", cwd=v)
    assert res.code == 0, res.err
    assert res.out.splitlines() == [
        f"created a new repository at file://{tmp_path / 'remote'}",
        f"device laptop ({res.out.split('(')[1][:8]})",
    ]
    return v


def test_push_status_clone_output(vault: Path, tmp_path: Path) -> None:
    res = run_cli("push", cwd=vault)
    assert res.code == 0 and res.err == ""
    assert re.fullmatch(
        rf"pushed snapshot {SID}: 7 added or changed, 0 deleted, \d+ new chunks in \d+ pack\(s\)\n",
        res.out), res.out
    sid = res.out.split()[2].rstrip(":")
    res = run_cli("push", cwd=vault)
    assert res.out == f"already up to date (snapshot {sid})\n"
    res = run_cli("status", cwd=vault)
    assert res.out == f"base snapshot {sid}\nno local changes\n"
    (vault / "Welcome.md").write_text("edited")
    res = run_cli("status", "--json", cwd=vault)
    assert json.loads(res.out)["local"] == {"added": [], "changed": ["Welcome.md"], "deleted": []}
    res = run_cli("clone", str(tmp_path / "remote"), str(tmp_path / "second"), "--device", "desk")
    assert res.code == 0
    assert res.out == f"cloned snapshot {sid}: 7 written, 0 deleted\n"
    assert (tmp_path / "second/Café.md").read_bytes() == (SAMPLE / "Café.md").read_bytes()
    assert os.access(tmp_path / "second/scripts/backup.sh", os.X_OK)


def test_json_output_is_one_document(vault: Path) -> None:
    res = run_cli("push", "--json", cwd=vault)
    doc = json.loads(res.out)
    assert doc["command"] == "push" and doc["uploaded"] == 7 and doc["exit_code"] == 0
    assert doc["traffic"]["puts"] >= 4 and doc["traffic"]["bytes_up"] > 0
    assert set(doc) >= {"snapshot", "conflicts", "skipped", "duration_s", "traffic"}


def test_directory_option_works_from_anywhere(vault: Path, tmp_path: Path) -> None:
    res = run_cli("-C", str(vault), "push", cwd=tmp_path)
    assert res.code == 0 and res.out.startswith("pushed snapshot")
    res = run_cli("-C", str(vault), "log", cwd="/")
    assert re.fullmatch(rf"{SID}  \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\dZ  laptop +7 files, \d+ bytes\n",
                        res.out), res.out


def test_not_a_vault_and_no_remote(tmp_path: Path) -> None:
    one_line_error(run_cli("push", cwd=tmp_path), 2, r"is not a vault .*vaultsync init")
    one_line_error(run_cli("-C", str(tmp_path / "nope"), "status"), 2, r"does not exist")
    assert run_cli("init", cwd=tmp_path).code == 0
    one_line_error(run_cli("push", cwd=tmp_path), 2, r"has no remote.*init --remote")
    # ...and doing what it says works
    res = run_cli("init", "--remote", str(tmp_path.parent / "r"), cwd=tmp_path)
    assert res.code == 0 and res.out.splitlines()[-1] == f"remote set for {tmp_path}"
    assert run_cli("sync", cwd=tmp_path).code == 0
    one_line_error(run_cli("init", "--remote", "/elsewhere", cwd=tmp_path), 2,
                   r"already a vault \(remote file://")


def test_init_completes_a_state_folder_without_config(tmp_path: Path) -> None:
    (tmp_path / ".vaultsync").mkdir()
    (tmp_path / ".vaultsync/ignore").write_text("*.log\n")
    one_line_error(run_cli("status", cwd=tmp_path), 2, r"config.toml is missing.*init")
    assert run_cli("init", "--remote", str(tmp_path.parent / "r2"), cwd=tmp_path).code == 0
    assert run_cli("sync", cwd=tmp_path).code == 0


def test_malformed_config(vault: Path) -> None:
    (vault / ".vaultsync/config.toml").write_text("remote = [unclosed")
    one_line_error(run_cli("push", cwd=vault), 2, r"config.toml is malformed")
    (vault / ".vaultsync/config.toml").unlink()
    one_line_error(run_cli("push", cwd=vault), 2, r"config.toml is missing")


def test_remote_gone_or_not_a_repository(vault: Path, tmp_path: Path) -> None:
    shutil.rmtree(tmp_path / "remote")
    one_line_error(run_cli("push", cwd=vault), 3, r"does not exist")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk/file").write_text("x")
    one_line_error(run_cli("clone", str(tmp_path / "junk"), str(tmp_path / "c")), 2,
                   r"no vaultsync repository")
    assert not (tmp_path / "c").exists()
    one_line_error(run_cli("clone", "ftp://host/x", str(tmp_path / "c")), 2, r"unsupported")
    one_line_error(run_cli("clone", "file://host/x", str(tmp_path / "c")), 2, r"bad remote URL")


def test_lock_held_exits_6(vault: Path) -> None:
    fd = os.open(vault / ".vaultsync/lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        one_line_error(run_cli("push", cwd=vault), 6, r"another vaultsync run")
    finally:
        os.close(fd)
    assert run_cli("push", cwd=vault).code == 0


def test_newer_format_stops_writes_with_exit_4_but_reads(vault: Path, tmp_path: Path) -> None:
    assert run_cli("push", cwd=vault).code == 0
    cfg = tmp_path / "remote/vaultsync.json"
    doc = json.loads(cfg.read_text())
    doc["format"] = 2
    cfg.write_text(json.dumps(doc))
    (vault / "Welcome.md").write_text("edit")
    one_line_error(run_cli("push", cwd=vault), 4, r"format 2 is newer.*upgrade")
    one_line_error(run_cli("sync", "--dry-run", cwd=vault), 4, r"format 2 is newer")
    res = run_cli("status", "--json", cwd=vault)  # status says the sync would stop
    assert res.code == 1 and "format 2 is newer" in json.loads(res.out)["sync_stop"]
    res = run_cli("checkout", str(tmp_path / "remote"), str(tmp_path / "co"))
    assert res.code == 0 and (tmp_path / "co/Welcome.md").exists()


def test_corrupt_remote_exits_5_and_touches_nothing(vault: Path, tmp_path: Path) -> None:
    assert run_cli("push", cwd=vault).code == 0
    for pack in (tmp_path / "remote/packs").rglob("*"):
        if pack.is_file():
            pack.write_bytes(pack.read_bytes()[: pack.stat().st_size // 2])  # truncated
    one_line_error(run_cli("clone", str(tmp_path / "remote"), str(tmp_path / "c")), 5,
                   r"pack|blob|short read")
    assert [p.name for p in (tmp_path / "c").iterdir()] == [".vaultsync"]


def test_sync_output_conflicts_and_safety_stop(vault: Path, tmp_path: Path) -> None:
    res = run_cli("sync", cwd=vault)
    assert re.fullmatch(rf"synced to snapshot {SID}: 7 up, 0 down, 0 deleted here, "
                        r"0 deleted remotely, 0 moved, 0 conflict\(s\)\n"
                        r"  sent \d+\.\d KiB in \d+ request\(s\), received \d+ B in \d+, "
                        r"\d+\.\d\d s\n", res.out), res.out
    assert run_cli("clone", str(tmp_path / "remote"), str(tmp_path / "b"), "--device",
                   "desk").code == 0
    os.utime(tmp_path / "b/Welcome.md", (0, 0))
    (tmp_path / "b/Welcome.md").write_text("desk's edit")
    os.utime(tmp_path / "b/Welcome.md", (1_700_000_000, 1_700_000_000))
    assert run_cli("sync", cwd=tmp_path / "b").code == 0
    (vault / "Welcome.md").write_text("laptop's edit")
    res = run_cli("sync", cwd=vault)
    assert res.code == 1
    assert res.out.splitlines()[-1] == ("conflict: Welcome.md: the other version is kept as "
                                        "Welcome.conflict-20231114-221320-desk.md")
    doc = json.loads(run_cli("sync", "--json", cwd=tmp_path / "b").out)
    assert doc["exit_code"] == 0 and doc["downloaded"] == 1  # downloading a copy: exit 0
    for p in list(vault.rglob("*.md"))[:5]:
        p.unlink()
    before = tree_state(vault)
    one_line_error(run_cli("sync", cwd=vault), 4, r"would delete 5 of 8 files .*--force")
    assert tree_state(vault) == before
    res = run_cli("sync", "--dry-run", "--max-delete", "90", cwd=vault)
    assert res.code == 0 and res.out.startswith("dry run: nothing was written")
    assert tree_state(vault) == before


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    res = run_cli("frobnicate", cwd=tmp_path)
    assert res.code == 2 and "No such command" in res.err
    res = run_cli("clone", cwd=tmp_path)
    assert res.code == 2 and "Missing argument" in res.err
    res = run_cli("--help")
    assert res.code == 0 and "push" in res.out and "checkout" in res.out


def test_restore_at_time(vault: Path) -> None:
    assert run_cli("push", cwd=vault).code == 0
    (vault / "Welcome.md").write_text("oops")
    res = run_cli("restore", "Welcome.md", cwd=vault)
    assert res.code == 0 and re.fullmatch(
        r"Welcome.md held changes not synced yet: that version is in "
        r"\.vaultsync/trash/\d{8}-\d{6}-[0-9a-f]{6}/Welcome\.md\n"
        rf"restore: 1 file\(s\) written from snapshot {SID}\n", res.out), res.out
    trashed = list((vault / ".vaultsync/trash").rglob("Welcome.md"))
    assert [p.read_text() for p in trashed] == ["oops"]
    assert (vault / "Welcome.md").read_bytes() == (SAMPLE / "Welcome.md").read_bytes()
    one_line_error(run_cli("restore", "Welcome.md", "--at", "1999-01-01", cwd=vault), 2,
                   r"no snapshot at or before")


def test_verify_finds_damage(vault: Path, tmp_path: Path) -> None:
    assert run_cli("push", cwd=vault).code == 0
    res = run_cli("verify", "--read-data", "100", cwd=vault)
    assert res.code == 0, res.out
    assert re.fullmatch(r"ok: 1 snapshots, \d+ trees, 7 file versions, \d+ chunks, "
                        r"(\d+) packs \(\1 read in full\)\n", res.out), res.out
    pack = next(p for p in (tmp_path / "remote/packs").rglob("*") if p.is_file())
    data = bytearray(pack.read_bytes())
    data[1] ^= 0xFF
    pack.write_bytes(bytes(data))
    assert run_cli("verify", cwd=vault).code == 0  # structure alone cannot see it
    res = run_cli("verify", "--read-data", "100", "--json", cwd=vault)
    doc = json.loads(res.out)
    assert res.code == 5 and not doc["ok"] and "hash mismatch" in doc["problems"][0]
    pack.unlink()
    res = run_cli("verify", cwd=vault)
    assert res.code == 5 and "is missing" in res.out


def test_status_shows_the_plan_sync_carries_out(vault: Path, tmp_path: Path) -> None:
    assert run_cli("sync", cwd=vault).code == 0
    assert run_cli("clone", str(tmp_path / "remote"), str(tmp_path / "b"), "--device",
                   "desk").code == 0
    (tmp_path / "b/Welcome.md").write_text("b's edit")
    (tmp_path / "b/Daily").rename(tmp_path / "b/Journal")
    assert run_cli("sync", cwd=tmp_path / "b").code == 0
    (vault / "new.md").write_text("new")
    res = run_cli("status", cwd=vault)
    assert res.code == 0
    lines = res.out.splitlines()
    assert lines[1:] == [
        "  added   new.md",
        "remote: new changes from desk",
        "sync would: 1 up, 1 down, 0 deleted here, 0 deleted remotely, 1 moved, 0 conflict(s)",
        "  down    Welcome.md",
        "  move    Daily/2026-11-22.md -> Journal/2026-11-22.md",
    ]
    plan = json.loads(run_cli("status", "--json", cwd=vault).out)["sync_plan"]
    res = run_cli("sync", "--json", cwd=vault)
    done = json.loads(res.out)
    for key in ("uploaded", "downloaded", "deleted", "moved", "conflicts"):
        assert plan[key] == done[key], key
