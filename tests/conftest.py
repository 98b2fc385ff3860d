"""Shared fixtures: an isolated environment, small repository parameters, a CLI runner
that goes through the real entry point (`python -m vaultsync`)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

# Small packs and chunks so tiny test data still spans several of each
# (borg's trick: shrink thresholds in tests).
SMALL_PARAMS = {
    "VAULTSYNC_PACK_SIZE": str(64 * 1024),
    "VAULTSYNC_CHUNK_MIN": "1024",
    "VAULTSYNC_CHUNK_AVG": "4096",
    "VAULTSYNC_CHUNK_MAX": "16384",
}
REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No test sees the developer's HOME, AWS credentials or VAULTSYNC_* settings."""
    for key in list(os.environ):
        if key.startswith(("VAULTSYNC_", "AWS_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path_factory.mktemp("home")))
    for key, value in SMALL_PARAMS.items():
        monkeypatch.setenv(key, value)


@dataclass
class Result:
    code: int
    out: str
    err: str


def run_cli(*args: str, cwd: str | os.PathLike[str] | None = None,
            env: dict[str, str] | None = None, timeout: float = 120) -> Result:
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = str(REPO_ROOT)
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "vaultsync", *args], cwd=cwd, env=full_env,
        capture_output=True, text=True, timeout=timeout,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def cli():  # type: ignore[no-untyped-def]
    return run_cli


def write(path: Path, data: bytes | str, mtime: float | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def tree_state(root: Path) -> dict[str, tuple[bytes, int, bool]]:
    """path -> (bytes, mtime_ns, executable) for every file below root, minus .vaultsync."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if rel.split("/")[0] == ".vaultsync" or not p.is_file():
            continue
        st = p.stat()
        out[rel] = (p.read_bytes(), st.st_mtime_ns, bool(st.st_mode & 0o100))
    return out
