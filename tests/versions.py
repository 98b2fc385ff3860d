"""Bookkeeping and checks for "never lose a version" (design.md; issue 9).

A *version* is a content some device's user wrote. Every write in the model writes bytes
never written before, or (a revert: undo, a copy from a backup) the bytes of a dead
version that no device's base holds; so at any moment a version is its bytes. A version
is *superseded* when a device replaced or deleted it having seen exactly that content:
its user overwrote it, deleted it, or renamed another file over it; or its user
confirmed with `--force` that the files its vault lost are deleted (design.md, "Safety
stops": a forced run over an emptied vault is a real delete the device saw). Nothing else
supersedes a version: not a skipped path, a wrong clock, a lost mount, a recreated or
re-pointed repository, a re-join, a kill, a full disk.

The invariant, checked after every step of the model and at the end:

1. kept: at the end, every version is live in the converged vault (at its path, moved,
   or in a conflict copy) unless it was superseded;
2. deletes only where seen: a version leaves a device (its disk, or the stash of files
   its vault lost) only if it was superseded; a sync never removes a version the other
   side has not seen. One exception, from design.md: a pull may replace a version that
   another device's newest head holds ("local versions the remote does not have are
   kept beside it"); not one that only this device's own head holds, which the other
   side has not seen ("never overwrites a version that the other side has not seen");
3. no resurrection: a superseded version that no device holds and no newest head of any
   repository holds (it is dead) never comes back.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path


class Versions:
    def __init__(self) -> None:
        self.written: dict[bytes, str] = {}  # version -> where and when it was written
        self.superseded: dict[bytes, str] = {}  # version -> who replaced or deleted it
        self.dead: set[bytes] = set()
        self.history: dict[str, list[bytes]] = {}  # path in its vault -> versions written there

    def at(self, rel: str) -> list[bytes]:
        """The versions users wrote at this path of their vaults, oldest first."""
        return list(self.history.get(rel, []))

    # ---- what users do (the only way a version is written or superseded) ---------------
    def write(self, root: Path, rel: str, data: bytes, mtime_ns: int, who: str) -> None:
        """A user writes `data` at `rel` in the vault `root`: new bytes, or (a revert)
        the bytes of a dead version, which is then a live version again."""
        path = root / rel
        assert data not in self.written or data in self.dead, "bytes of a version still around"
        self.dead.discard(data)
        self.superseded.pop(data, None)
        if path.is_file():
            self._supersede(path.read_bytes(), f"{who} overwrote it")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, ns=(mtime_ns, mtime_ns))
        self.written.setdefault(data, f"{who}: {path.name}")
        self.history.setdefault(rel, []).append(data)

    def delete(self, path: Path, who: str) -> None:
        self._supersede(path.read_bytes(), f"{who} deleted it")
        path.unlink()

    def rename(self, src: Path, dst: Path, who: str) -> None:
        if dst.is_file():
            self._supersede(dst.read_bytes(), f"{who} renamed {src.name} over it")
        dst.parent.mkdir(parents=True, exist_ok=True)
        src.rename(dst)

    def confirm_deleted(self, data: bytes, who: str) -> None:
        """The user ran with --force over a vault that lost this version."""
        self._supersede(data, f"{who} confirmed its deletion with --force")

    def _supersede(self, data: bytes, how: str) -> None:
        self.superseded.setdefault(data, how)

    # ---- the checks ------------------------------------------------------------------
    def lost(self, live: Iterable[bytes]) -> set[bytes]:
        """1. Versions neither live nor superseded."""
        return set(self.written) - set(live) - set(self.superseded)

    def vanished(self, before: Iterable[bytes], after: Iterable[bytes]) -> set[bytes]:
        """2. Versions a device held before a step and no longer holds, unsuperseded."""
        return set(before) - set(after) - set(self.superseded)

    def resurrected(self, held: Iterable[bytes]) -> set[bytes]:
        """3. Dead versions held again; then records which versions are dead now."""
        held = set(held)
        back = self.dead & held
        self.dead |= set(self.superseded) - held
        return back

    def describe(self, versions: Iterable[bytes]) -> str:
        return "; ".join(
            f"{v.decode(errors='replace')!r} ({self.superseded.get(v, 'never superseded')})"
            for v in sorted(versions))
