"""Start-up imports only what the command needs (issue 11): `vaultsync --help` loads no
engine, hashing, codec, ignore rules, network client or rich; a sync with nothing to do
loads no chunker extension, network client or rich.

Each case runs the real entry point in a fresh interpreter and reads `sys.modules` as it
exits. No timings: they depend on the machine; which modules load does not.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

# `python -m vaultsync ARGS`, then the names of every module loaded, as JSON, to OUT
PROBE = """
import atexit, json, runpy, sys
out = sys.argv[1]
def dump():
    with open(out, "w") as f:
        json.dump(sorted(sys.modules), f)
atexit.register(dump)
sys.argv = ["vaultsync", *sys.argv[2:]]
runpy.run_module("vaultsync", run_name="__main__", alter_sys=True)
"""

NETWORK = {"fsspec", "s3fs", "aiobotocore", "botocore", "aiohttp", "paramiko", "webdav3",
           "requests", "vaultsync.store.s3", "vaultsync.store.sftp", "vaultsync.store.webdav"}
TERMINAL = {"rich", "markdown_it", "pygments", "typer.rich_utils"}
CHUNKER = {"fastcdc"}  # its package imports click as well


def loaded(tmp_path: Path, *args: str, cwd: Path | None = None,
           code: int = 0) -> tuple[set[str], str]:
    """The modules a run of `vaultsync ARGS` loaded, and what it printed."""
    out = tmp_path / f"modules-{len(list(tmp_path.glob('modules-*')))}.json"
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.run([sys.executable, "-c", PROBE, str(out), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == code, proc.stdout + proc.stderr
    return set(json.loads(out.read_text())), proc.stdout + proc.stderr


def hits(modules: set[str], names: set[str]) -> list[str]:
    """The modules that are one of `names` or inside one of them."""
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


@pytest.mark.parametrize("args, code", [
    (["--help"], 0),
    (["sync", "--help"], 0),
    (["sync", "--no-such-option"], 2),  # a usage error is printed without rich too
    (["--version"], 0),
], ids=["help", "sync-help", "usage-error", "version"])
def test_help_loads_no_engine_hashing_codec_ignore_network_or_rich(
        tmp_path: Path, args: list[str], code: int) -> None:
    modules, printed = loaded(tmp_path, *args, code=code)
    assert ("vaultsync 0" if args == ["--version"] else "Usage: vaultsync") in printed
    assert "typer" in modules  # the probe sees the run's imports
    assert not hits(modules, TERMINAL), "help is printed as plain text"
    assert not hits(modules, NETWORK)
    assert not hits(modules, {"vaultsync.engine", "vaultsync.repository", "vaultsync.model",
                              "vaultsync.reconcile", "vaultsync.store.base", "sqlite3"})
    assert not hits(modules, {"vaultsync.chunking", "blake3", *CHUNKER})
    assert not hits(modules, {"vaultsync.codec", "zstandard"})
    assert not hits(modules, {"pathspec"})
    if args in (["--help"], ["--version"]):  # no option value parsed: typer (0.29)
        assert not hits(modules, {"pydantic"})  # coerces values with pydantic


def test_a_sync_with_nothing_to_do_loads_no_chunker_network_client_or_rich(
        tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    vault.mkdir()
    old = 1_700_000_000  # long ago: the stat cache trusts these files (none is "racy")
    for i in range(5):
        note = vault / f"note{i}.md"
        note.write_text(f"# note {i}\n")
        os.utime(note, (old, old))
    # a file large enough to be cut on a worker thread ahead of the walk if the stat
    # cache did not vouch for it (it was cut on every run: the lookup used a wrong key)
    (vault / "files").mkdir()  # in a folder: at the top, the wrong key was the right one
    attachment = vault / "files" / "scan.pdf"
    attachment.write_bytes(os.urandom(300 * 1024))
    os.utime(attachment, (old, old))
    for args in (["init", "--remote", str(tmp_path / "remote"), "--device", "a"], ["sync"]):
        loaded(tmp_path, "-C", str(vault), *args)

    modules, printed = loaded(tmp_path, "-C", str(vault), "sync")
    assert printed.startswith("already up to date"), printed
    # what it needs: the scan (BLAKE3 tree ids, ignore rules, the stat cache). zstandard
    # too: the base snapshot it diffs the scan against is stored compressed. The ignore
    # rules are compiled by vaultsync itself (pathspec is only the tests' oracle)
    assert {"vaultsync.engine.scan", "vaultsync.engine.ignore", "blake3", "sqlite3"} <= modules
    assert not hits(modules, {"pathspec"})
    assert not hits(modules, {"pydantic"}), "typer < 0.29 (pyproject): no pydantic"
    assert not hits(modules, CHUNKER), "no file changed: none is read, none is cut"
    assert not hits(modules, NETWORK), "a directory remote needs no network client"
    assert not hits(modules, TERMINAL), "stderr is not a terminal: no progress bars"

    (vault / "note0.md").write_text("# note 0, edited\n")  # the same check sees a chunker
    modules, printed = loaded(tmp_path, "-C", str(vault), "sync")
    assert "1 up" in printed, printed
    assert "fastcdc.fastcdc_cy" in modules
