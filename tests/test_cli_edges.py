"""The command line at the edges (issue 9), through `python -m vaultsync`: which side
failed (exit 3 "remote" vs exit 7 "local"), SIGTERM, secrets, output that cannot be
faked, and settings that are checked before they do harm."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
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
        write(v / "mine.md", "written here")  # a local change: this sync would commit
        before = tree_state(v)
        snapshots = sorted(os.listdir(remote / "snapshots"))
        line = one_line(run_cli("sync", cwd=v), 7, "local disk full", str(v),
                        "No space left on device")
        assert "remote" not in line
        assert tree_state(v) == before and leftovers(v) == []  # no half-written file
        assert sorted(os.listdir(remote / "snapshots")) == snapshots  # nothing committed
        remount(disk, "size=8m")
        assert run_cli("sync", cwd=v).code == 0
        assert run_cli("sync", cwd=other).code == 0
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


# -- SIGTERM: the Ctrl-C path, exit 130, temporary files removed -----------------------------

def start(args: list[str], cwd: Path, env: dict[str, str] | None = None,
          ) -> subprocess.Popen[str]:
    full = dict(os.environ, PYTHONPATH=str(REPO_ROOT), **(env or {}))
    return subprocess.Popen([sys.executable, "-m", "vaultsync", *args], cwd=cwd, env=full,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def terminate_when(proc: subprocess.Popen[str], seen: list[Path]) -> tuple[int, str]:
    """SIGTERM `proc` as soon as one of the globbed folders holds a temporary file (it
    is mid-write); returns (exit code, stderr)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if any(leftovers(folder) for folder in seen if folder.exists()):
            proc.send_signal(signal.SIGTERM)
            break
        time.sleep(0.0005)
    else:
        proc.kill()
        pytest.fail("the run ended before it wrote a temporary file: give it more data")
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err


BIG = {"VAULTSYNC_PACK_SIZE": str(4 << 20)}  # packs that take a moment to write


def test_sigterm_mid_push_exits_130_and_cleans_up(tmp_path: Path) -> None:
    v = tmp_path / "vault"
    write(v / "note.md", "note")
    init(v, tmp_path / "remote")
    for i in range(24):
        write(v / f"data/f{i}.bin", os.urandom(1 << 20))
    code, err = terminate_when(start(["push"], v, BIG), [tmp_path / "remote"])
    assert code == 130 and err.strip() == "vaultsync: interrupted", (code, err)
    assert leftovers(tmp_path / "remote") == [] and leftovers(v) == []
    assert run_cli("verify", cwd=v).code == 0
    res = run_cli("push", cwd=v)
    assert res.code == 0 and "25 added or changed" in res.out, res.out
    assert run_cli("verify", "--read-data", "100", cwd=v).code == 0


def test_sigterm_mid_pull_exits_130_and_the_vault_is_untouched(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    write(a / "note.md", "note")
    init(a, tmp_path / "remote")
    assert run_cli("sync", cwd=a).code == 0
    assert run_cli("clone", str(tmp_path / "remote"), str(b)).code == 0
    for i in range(24):
        write(a / f"data/f{i}.bin", os.urandom(1 << 20))
    assert run_cli("sync", cwd=a, env=BIG).code == 0
    before = tree_state(b)
    code, err = terminate_when(start(["pull"], b), [b / ".vaultsync/staging"])
    assert code == 130 and err.strip() == "vaultsync: interrupted", (code, err)
    assert leftovers(b) == [] and tree_state(b) == before
    assert run_cli("pull", cwd=b).code == 0
    assert tree_state(b) == tree_state(a)


# -- secrets never reach the log, stdout, stderr or --json ----------------------------------

SECRET = "s3cret-Pw-77q"


def test_passwords_in_urls_never_reach_log_or_output(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "run.log"
    env = {"VAULTSYNC_RETRY_ATTEMPTS": "1"}
    v = tmp_path / "vault"
    v.mkdir()
    outputs = []
    for url in (f"webdav://ann:{SECRET}@127.0.0.1:{port}/notes",
                f"sftp://ann:{SECRET}@127.0.0.1:{port}/srv/notes"):
        res = run_cli("--log-file", str(log), "init", "--remote", url, cwd=v, env=env)
        assert res.code == 3, (res.code, res.err)
        outputs.append(res.out + res.err)
        res = run_cli("--log-file", str(log), "clone", url, str(tmp_path / "c"), "--json",
                      env=env)
        assert res.code == 3
        outputs.append(res.out + res.err)
    # a vault whose config names a remote with a password in it
    assert run_cli("init", cwd=v).code == 0
    cfg = v / ".vaultsync/config.toml"
    cfg.write_text(cfg.read_text().replace(
        'remote = ""', f'remote = "webdav://ann:{SECRET}@127.0.0.1:{port}/notes"'))
    for args in (["sync", "--json"], ["status"], ["log"]):
        res = run_cli("--log-file", str(log), *args, cwd=v, env=env)
        assert res.code == 3, (args, res.err)
        outputs.append(res.out + res.err)
    text = log.read_text()
    assert SECRET not in text and not any(SECRET in o for o in outputs)
    assert f"init --remote 'webdav://ann:***@127.0.0.1:{port}/notes'" in text


# -- names and device names cannot fake output lines ----------------------------------------

EVIL = "evil\nsynced to snapshot 000000000000: 99 up.md"
ESC = "red\x1b[31m.md"
BIDI = "invoice\u202egpj\x85.md"


def test_control_characters_in_names_are_escaped(vault: Path, tmp_path: Path) -> None:
    for name in (EVIL, ESC, BIDI):
        write(vault / name, "x")
    cfg = vault / ".vaultsync/config.toml"
    cfg.write_text(cfg.read_text().replace('device_name = "laptop"',
                                           'device_name = "lap\\u001b]0;pwned\\u0007top"'))
    outputs = []
    res = run_cli("status", cwd=vault)
    assert res.code == 0
    added = sorted(line for line in res.out.splitlines() if line.startswith("  added"))
    assert added == ['  added   "evil\\nsynced to snapshot 000000000000: 99 up.md"',
                     '  added   "invoice\\u202egpj\\u0085.md"', '  added   "red\\x1b[31m.md"']
    outputs.append(res.out)
    log = tmp_path / "run.log"
    doc = json.loads(run_cli("--log-file", str(log), "status", "--json", cwd=vault).out)
    assert sorted(doc["local"]["added"]) == sorted([EVIL, ESC, BIDI])  # --json stays exact
    logged = log.read_text().splitlines()[1].split("] ", 1)[1]
    assert json.loads(logged) == doc  # escaped in the log, and still JSON
    res = run_cli("sync", "-v", cwd=vault)
    assert res.code == 0
    assert len([line for line in res.out.splitlines() if line.startswith("synced")]) == 1
    outputs.append(res.out)
    res = run_cli("log", cwd=vault)
    assert res.code == 0 and len(res.out.splitlines()) == 2
    assert '"lap\\x1b]0;pwned\\x07top"' in res.out
    outputs.append(res.out)
    for text in outputs:
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202e]", text), text


# -- log PATH with no version; options and tuning variables checked -------------------------

def test_log_of_a_path_with_no_version_is_a_usage_error(vault: Path) -> None:
    one_line(run_cli("log", "missing.md", cwd=vault), 2, "missing.md has no version in any "
             "snapshot")
    one_line(run_cli("log", "Daily", cwd=vault), 2, "Daily is a folder")
    res = run_cli("log", "./Daily/../Welcome.md", cwd=vault)
    assert res.code == 0 and len(res.out.splitlines()) == 1, res.out


@pytest.mark.parametrize(("option", "value"), [("max_delete", 500), ("max_delete", -1),
                                               ("trash_days", 100_000)])
def test_options_out_of_range_are_config_errors(vault: Path, option: str, value: int) -> None:
    cfg = vault / ".vaultsync/config.toml"
    cfg.write_text(re.sub(rf"{option} = \d+", f"{option} = {value}", cfg.read_text()))
    one_line(run_cli("sync", cwd=vault), 2, f"option '{option}' must be a whole number from")


@pytest.mark.parametrize(("name", "value"), [
    ("VAULTSYNC_PACK_SIZE", "abc"), ("VAULTSYNC_PACK_SIZE", "10"),
    ("VAULTSYNC_PACK_SIZE", str((1 << 30) + 1)), ("VAULTSYNC_PACK_SIZE", "1e6"),
    ("VAULTSYNC_CHUNK_MIN", "10"), ("VAULTSYNC_CHUNK_AVG", "-5"),
    ("VAULTSYNC_CHUNK_MAX", "1000"), ("VAULTSYNC_CHUNK_MIN", "8192"),
])
def test_bad_tuning_variables_stop_init_before_anything_exists(tmp_path: Path, name: str,
                                                               value: str) -> None:
    v = tmp_path / "vault"
    v.mkdir()
    one_line(run_cli("init", "--remote", str(tmp_path / "remote"), cwd=v,
                     env={name: value}), 2, name.rsplit("_", 1)[0])
    assert not (tmp_path / "remote").exists() and list(v.iterdir()) == []


def test_tuning_variables_at_their_limits_make_a_working_repository(tmp_path: Path) -> None:
    v = tmp_path / "vault"
    write(v / "note.md", os.urandom(5000))
    env = {"VAULTSYNC_PACK_SIZE": "1024", "VAULTSYNC_CHUNK_MIN": "64",
           "VAULTSYNC_CHUNK_AVG": "256", "VAULTSYNC_CHUNK_MAX": "1024"}
    assert run_cli("init", "--remote", str(tmp_path / "remote"), cwd=v, env=env).code == 0
    assert run_cli("sync", cwd=v).code == 0
    assert run_cli("verify", "--read-data", "100", cwd=v).code == 0


@pytest.mark.parametrize("url", ["sftp://[::1/notes", "webdav://ann:pw@[::1/notes",
                                 "s3://[bucket/notes", "file://[x/y", "webdav://h:99999/x"])
def test_malformed_remote_urls_are_usage_errors(tmp_path: Path, url: str) -> None:
    line = one_line(run_cli("init", "--remote", url, cwd=tmp_path), 2, "URL")
    assert ":pw@" not in line


def test_directory_option_on_a_file_says_so(vault: Path) -> None:
    one_line(run_cli("-C", str(vault / "Welcome.md"), "status"), 2, "Welcome.md is not a folder")
