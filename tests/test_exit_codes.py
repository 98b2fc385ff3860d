"""Exit-code policy in one place: `errors.classify` maps whatever a run raises; the CLI
decides nothing itself. An unexpected exception is exit 70, one line on stderr naming
where its traceback went, never a traceback on the terminal, never exit 1."""

from __future__ import annotations

import errno
import re
import shutil
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, run_cli
from tests.edge_env import UNPRIVILEGED, run_cli_as
from vaultsync import errors
from vaultsync.errors import (
    EXIT_ATTENTION,
    EXIT_BUG,
    EXIT_INTERRUPTED,
    EXIT_LOCAL,
    EXIT_OK,
    IntegrityError,
    Interrupted,
    LocalFailure,
    RemoteUnreachable,
    Unexpected,
    classify,
)

SAMPLE = REPO_ROOT / "fixtures" / "sample-vault"
SECRET = "pw-Tq83xZ"


@pytest.mark.parametrize(("exc", "expected"), [
    (OSError(errno.ENOSPC, "No space left on device", "/v/.vaultsync/staging/t"),
     "local disk full: /v/.vaultsync/staging/t: No space left on device"),
    (OSError(errno.EDQUOT, "Disk quota exceeded"),
     "local disk full (in /v): Disk quota exceeded"),
    (OSError(errno.EROFS, "Read-only file system", "/v/a.md"),
     "local disk is read-only: /v/a.md: Read-only file system"),
    (PermissionError(errno.EACCES, "Permission denied", "/v/a", None, "/v/b"),
     "local permission denied: /v/a -> /v/b: Permission denied"),
    (OSError(errno.EIO, "Input/output error", "/v/x"),
     "local disk I/O error: /v/x: Input/output error"),
    (sqlite3.OperationalError("database or disk is full"),
     "local disk full: /v/.vaultsync/state.db: database or disk is full"),
    (sqlite3.OperationalError("disk I/O error"),
     "local disk I/O error: /v/.vaultsync/state.db: disk I/O error"),
])
def test_local_disk_failures_are_exit_7_and_say_local(exc: BaseException, expected: str) -> None:
    err = classify(exc, "/v")
    assert isinstance(err, LocalFailure) and err.exit_code == EXIT_LOCAL == 7
    assert err.message == expected


def test_the_rest_of_the_policy() -> None:
    own = IntegrityError("x")
    assert classify(own) is own
    assert isinstance(classify(KeyboardInterrupt()), Interrupted)
    assert classify(KeyboardInterrupt()).exit_code == EXIT_INTERRUPTED == 130
    assert isinstance(classify(ConnectionResetError(errno.ECONNRESET, "reset")),
                      RemoteUnreachable)
    # an errno that is no disk failing us, a broken query, anything else: a bug
    for exc in (FileNotFoundError(errno.ENOENT, "No such file", "/v/x"),
                sqlite3.OperationalError("no such table: files"), ValueError("bad"),
                AssertionError(), RecursionError("deep")):
        err = classify(exc, "/v")
        assert isinstance(err, Unexpected) and err.exit_code == EXIT_BUG == 70, exc
    assert classify(ValueError("bad")).message == \
        "unexpected error (ValueError: bad); this is a bug in vaultsync"


def test_every_class_has_a_documented_code() -> None:
    codes = {v for k, v in vars(errors).items() if k.startswith("EXIT_")}
    for cls in errors.all_error_classes():
        assert cls.exit_code in codes, cls


# -- through the real entry point ---------------------------------------------------------

HOOK = f'''
import os
if os.environ.get("VAULTSYNC_TEST_BUG"):
    import vaultsync.engine.history as history

    def log(root, path):
        raise RuntimeError("a bug near webdav://ann:{SECRET}@dav.example/notes")

    history.log = log
'''


@pytest.fixture
def buggy(tmp_path: Path) -> dict[str, str]:
    """An environment in which `vaultsync log` hits a bug (a sitecustomize module replaces
    the engine's log function with one that raises), run as `python -m vaultsync`."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(HOOK)
    return {"PYTHONPATH": f"{hook}:{REPO_ROOT}", "VAULTSYNC_TEST_BUG": "1",
            "XDG_STATE_HOME": str(tmp_path / "state")}


@pytest.fixture
def vault(tmp_path: Path) -> Path:
    v = tmp_path / "vault"
    shutil.copytree(SAMPLE, v)
    assert run_cli("init", "--remote", str(tmp_path / "remote"), cwd=v).code == 0
    assert run_cli("sync", cwd=v).code == 0
    return v


LINE = (r"vaultsync: unexpected error \(RuntimeError: a bug near webdav://ann:\*\*\*@dav\."
        r"example/notes\); this is a bug in vaultsync; traceback written to (\S+)")


def test_a_bug_is_exit_70_with_its_traceback_in_a_crash_log(vault: Path, tmp_path: Path,
                                                           buggy: dict[str, str]) -> None:
    res = run_cli("log", cwd=vault, env=buggy)
    assert res.code == 70, (res.code, res.err)
    assert "Traceback" not in res.err and SECRET not in res.err + res.out
    lines = res.err.splitlines()
    assert len(lines) == 1
    m = re.fullmatch(LINE, lines[0])
    assert m, lines[0]
    crash = Path(m.group(1))
    assert crash.parent == tmp_path / "state/vaultsync/log" and crash.name.startswith("crash-")
    text = crash.read_text()
    assert "Traceback (most recent call last)" in text and "RuntimeError: a bug" in text
    assert "vaultsync log" in text and SECRET not in text


def test_a_bug_with_a_log_file_puts_the_traceback_there(vault: Path, tmp_path: Path,
                                                       buggy: dict[str, str]) -> None:
    log = tmp_path / "run.log"
    res = run_cli("--log-file", str(log), "log", cwd=vault, env=buggy)
    assert res.code == 70
    m = re.fullmatch(LINE, res.err.strip())
    assert m and m.group(1) == str(log), res.err
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and SECRET not in text
    assert text.splitlines()[-1].endswith("exit 70")
    assert not (tmp_path / "state").exists()  # no crash log beside it


def test_status_and_verify_codes_come_from_their_results(vault: Path, tmp_path: Path) -> None:
    """status exits 1 ("look") when the scan skipped a path, like the sync it previews;
    verify's 5 comes from its report."""
    (vault / "Welcome.md").chmod(0)
    res = run_cli_as(UNPRIVILEGED, "status", cwd=vault)
    assert res.code == EXIT_ATTENTION, (res.code, res.out, res.err)
    assert "skipped: Welcome.md" in res.out
    doc = run_cli_as(UNPRIVILEGED, "status", "--json", cwd=vault)
    assert doc.code == EXIT_ATTENTION
    (vault / "Welcome.md").chmod(0o644)
    assert run_cli("status", cwd=vault).code == EXIT_OK
