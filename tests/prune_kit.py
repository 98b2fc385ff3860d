"""Helpers shared by the prune tests: the remote's objects counted by kind, the heads,
a CLI run that parses `--json`, a vault's files by content."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from tests.conftest import Result, run_cli
from vaultsync import codec
from vaultsync.model import is_object_id

KINDS = ("snapshots", "packs", "index", "prune")


def kind_of(name: str) -> str | None:
    """The kind of a remote object name ("packs/ab/<id>" -> "packs"), or None for
    vaultsync.json, heads, temporaries and anything else."""
    parts = name.split("/")
    if parts[0] not in KINDS or not is_object_id(parts[-1]):
        return None
    return parts[0]


def count_names(names: Iterable[str]) -> dict[str, int]:
    counts = Counter(k for k in map(kind_of, names) if k is not None)
    return {k: counts.get(k, 0) for k in KINDS}


def remote_names(remote: Path) -> list[str]:
    """Every object of a directory remote, by its name in the repository."""
    return sorted(p.relative_to(remote).as_posix() for p in remote.rglob("*") if p.is_file())


def remote_counts(remote: Path) -> dict[str, int]:
    return count_names(remote_names(remote))


def decode_head(stored: bytes, what: str) -> str:
    doc = json.loads(codec.decode(stored, 1 << 20, what))
    return str(doc["snapshot"])


def remote_heads(remote: Path) -> dict[str, str]:
    """device id -> head snapshot of a directory remote (heads/prune is no head)."""
    return {p.name: decode_head(p.read_bytes(), p.name)
            for p in (remote / "heads").iterdir() if p.name != "prune"}


def cli_json(*args: str, cwd: Path | None = None,
             codes: tuple[int, ...] = (0,)) -> tuple[Result, dict]:  # type: ignore[type-arg]
    """Run a command with --json; its exit code must be one of `codes`."""
    res = run_cli(*args, "--json", cwd=cwd)
    assert res.code in codes, (args, res.code, res.out, res.err)
    return res, json.loads(res.out)


def files(root: Path) -> dict[str, bytes]:
    """path -> bytes of every file below root, minus .vaultsync."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".vaultsync" not in p.relative_to(root).parts}


def live(root: Path) -> set[bytes]:
    """Every content in the vault's files."""
    return set(files(root).values())
