"""Helpers for the edge tests: real small file systems (tmpfs, mounted and unmounted by the
test), and running the CLI as a process without root's power to ignore permissions.

CI runs as root, as these need: a mount that fails is a test failure, never a skip.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, Result

# root without CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH: file permissions apply to it
UNPRIVILEGED = ["setpriv", "--inh-caps=-dac_override,-dac_read_search",
                "--bounding-set=-dac_override,-dac_read_search", "--"]


def _run(argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()} "
                    "(these tests need root, as CI has)", pytrace=False)
    return proc


@contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` (e.g. "2m") mounted at `path` for the block; unmounted after."""
    path.mkdir(parents=True, exist_ok=True)
    _run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)])
    try:
        yield path
    finally:
        if _run(["umount", str(path)], check=False).returncode != 0:
            _run(["umount", "-l", str(path)])


def remount(path: Path, options: str) -> None:
    _run(["mount", "-o", f"remount,{options}", str(path)])


def fill(path: Path) -> None:
    """Fill the file system holding `path` until it has no block left."""
    fd = os.open(path / "filler", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)


def run_cli_as(prefix: list[str], *args: str, cwd: Path | None = None,
               env: dict[str, str] | None = None, timeout: float = 120) -> Result:
    """`python -m vaultsync ARGS` behind `prefix` (e.g. UNPRIVILEGED)."""
    full_env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), **(env or {}))
    proc = subprocess.run([*prefix, sys.executable, "-m", "vaultsync", *args], cwd=cwd,
                          env=full_env, capture_output=True, text=True, timeout=timeout)
    return Result(proc.returncode, proc.stdout, proc.stderr)


def leftovers(root: Path) -> list[str]:
    """Temporary files a run may leave: the stores' .tmp-*, the vault's .vaultsync-tmp-*."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.name.startswith((".tmp-", ".vaultsync-tmp-")))
