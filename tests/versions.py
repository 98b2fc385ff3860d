"""Bookkeeping for "no version is lost": every content ever written must be live at the
end (at its path or as a conflict copy), unless a replica replaced or deleted it having
seen exactly that content."""

from __future__ import annotations

from pathlib import Path


class Versions:
    def __init__(self) -> None:
        self.written: set[bytes] = set()
        self.superseded: set[bytes] = set()

    def write(self, path: Path, data: bytes) -> None:
        if path.exists():
            self.superseded.add(path.read_bytes())
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self.written.add(data)

    def delete(self, path: Path) -> None:
        self.superseded.add(path.read_bytes())
        path.unlink()

    def rename(self, src: Path, dst: Path) -> None:
        if dst.exists():
            self.superseded.add(dst.read_bytes())
        dst.parent.mkdir(parents=True, exist_ok=True)
        src.rename(dst)

    def lost(self, root: Path) -> set[bytes]:
        live = {p.read_bytes() for p in root.rglob("*")
                if p.is_file() and ".vaultsync" not in p.relative_to(root).parts}
        return self.written - live - self.superseded
