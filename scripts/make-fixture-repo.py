#!/usr/bin/env python3
"""Write fixtures/repo-v1: a small format-1 repository made by this version from
fixtures/sample-vault (two snapshots), plus a manifest of what its newest snapshot holds.

Run once per format version; tests/test_fixture_repo.py proves later versions still read
it. Never regenerate it to make a failing test pass: that would hide a format break.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vaultsync.chunking import Hasher  # noqa: E402
from vaultsync.engine import oneway  # noqa: E402

MTIME = 1_763_800_000  # 2025-11-22, fixed so the manifest pins mtimes too


def main() -> None:
    out = ROOT / "fixtures" / "repo-v1"
    if out.exists():
        sys.exit(f"{out} exists; a fixture repository is written once per format version")
    os.environ.update({"VAULTSYNC_PACK_SIZE": "8192", "VAULTSYNC_CHUNK_MIN": "256",
                       "VAULTSYNC_CHUNK_AVG": "1024", "VAULTSYNC_CHUNK_MAX": "4096"})
    with tempfile.TemporaryDirectory() as tmp:
        vault = Path(tmp) / "vault"
        shutil.copytree(ROOT / "fixtures" / "sample-vault", vault)
        for p in vault.rglob("*"):
            os.utime(p, (MTIME, MTIME))
        oneway.init(str(vault), str(out), "fixture-maker")
        oneway.push(str(vault))
        note = vault / "Welcome.md"
        note.write_text(note.read_text() + "\nEdited in the second snapshot.\n")
        os.utime(note, (MTIME + 60, MTIME + 60))
        oneway.push(str(vault))
        manifest = {}
        for p in sorted(vault.rglob("*")):
            rel = p.relative_to(vault).as_posix()
            if rel.startswith(".vaultsync") or not p.is_file():
                continue
            st = p.stat()
            manifest[rel] = {"blake3": Hasher().id(p.read_bytes()), "size": st.st_size,
                             "mtime_ns": st.st_mtime_ns, "executable": bool(st.st_mode & 0o100)}
    (ROOT / "fixtures" / "repo-v1.manifest.json").write_text(
        json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
