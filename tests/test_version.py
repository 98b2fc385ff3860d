"""`vaultsync --version` (issue 12): the version and the repository formats it reads and
writes, from a module that loads no engine (tests/test_startup.py checks what it imports),
kept equal to what the repository layer really does."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

from tests.conftest import REPO_ROOT, run_cli, write
from vaultsync import __version__, formats
from vaultsync.repository import format as repo_format


def test_version_prints_one_line_and_exits_0(tmp_path: Path) -> None:
    res = run_cli("--version", cwd=tmp_path)  # not a vault: no matter
    assert res.code == 0 and res.err == ""
    assert res.out == (f"vaultsync {__version__} (repository format: reads 1 and newer, "
                       "writes 1; features: prune)\n")
    again = run_cli("-C", str(tmp_path), "--version", "sync")  # eager: nothing else runs
    assert again.code == 0 and again.out == res.out
    assert not (tmp_path / ".vaultsync").exists()


def test_the_version_is_the_packages() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__)
    assert __version__ == project["version"]


def test_the_formats_it_names_are_the_repository_layers() -> None:
    assert formats.WRITES == repo_format.FORMAT_VERSION
    assert set(formats.FEATURES) == repo_format.KNOWN_FEATURES
    assert repo_format.RepoFormat.new().format == formats.WRITES


def test_it_reads_a_newer_format_but_not_one_that_needs_an_unknown_feature(
        tmp_path: Path) -> None:
    """What "reads 1 and newer, writes 1; features: ..." promises, through the CLI."""
    vault, remote = tmp_path / "v", tmp_path / "remote"
    write(vault / "a.md", "a\n")
    assert run_cli("init", "--remote", str(remote), "--device", "a", cwd=vault).code == 0
    assert run_cli("sync", cwd=vault).code == 0
    cfg = remote / "vaultsync.json"
    doc = json.loads(cfg.read_text())
    doc["format"] = formats.WRITES + 1
    cfg.write_text(json.dumps(doc))
    assert run_cli("log", cwd=vault).code == 0  # reads it
    write(vault / "b.md", "b\n")
    assert run_cli("sync", cwd=vault).code == 4  # never writes it
    doc["features"]["read_mandatory"] = ["from-the-future"]
    cfg.write_text(json.dumps(doc))
    res = run_cli("log", cwd=vault)
    assert res.code == 4 and "from-the-future" in res.err
