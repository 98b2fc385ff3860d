"""What the benchmark scripts share: shell one-liners, where a run came from, and the
block of docs/benchmarks.md between a script's markers. Stdlib only; the scripts run as
`python benchmarks/NAME.py`, so this folder is on their import path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KIB, MIB = 1024, 1024 * 1024


def fmt_bytes(n: float, mib_digits: int = 1) -> str:
    if n >= MIB:
        return f"{n / MIB:.{mib_digits}f} MiB"
    return f"{n / KIB:.1f} KiB" if n >= KIB else f"{n:.0f} B"


def sh(cmd: str) -> str:
    """The first line a shell command prints (stdout, else stderr), or "?"."""
    p = subprocess.run(cmd, shell=True, capture_output=True, text=True)
    text = (p.stdout or p.stderr).strip()
    return text.splitlines()[0] if text else "?"


def provenance(script: str) -> tuple[str, str, str]:
    """(commit, a note if vaultsync/ has uncommitted changes, the command line)."""
    git = sh(f"git -C {ROOT} rev-parse --short HEAD")
    changed = sh(f"git -C {ROOT} status --porcelain -- vaultsync pyproject.toml") != "?"
    dirty = " (+ uncommitted changes to vaultsync/)" if changed else ""
    return git, dirty, " ".join([f"python benchmarks/{script}", *sys.argv[1:]])


def write_section(path: Path, begin: str, end: str, lines: list[str]) -> None:
    """Put `lines` (which start with `begin` and end with `end`) in place of the block
    between those markers in `path`, or append them."""
    old = path.read_text() if path.exists() else f"# Benchmarks\n\n{begin}\n{end}\n"
    if begin in old and end in old:
        new = old[:old.index(begin)] + "\n".join(lines) + old[old.index(end) + len(end):]
    else:
        new = old.rstrip("\n") + "\n\n" + "\n".join(lines) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new)


def read_section(path: Path, begin: str, end: str) -> str:
    """The text between the markers in `path` (without them), or "" if either is missing."""
    old = path.read_text() if path.exists() else ""
    if begin not in old or end not in old:
        return ""
    return old[old.index(begin) + len(begin):old.index(end)]
