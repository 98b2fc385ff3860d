"""Move detection on one side of a merge, by content (no I/O).

A file move: a base file that disappeared while a new path with exactly its base bytes
appeared, paired one-to-one (a content that disappeared or appeared more than once is left
to the per-path rules; empty files carry no identity and are never paired). A folder move:
a base folder that disappeared while every file below it reappeared at the same relative
path below one new folder (at least one of them with unchanged bytes).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Literal

from vaultsync.model import Entry, Flat

Side = Literal["local", "remote"]
LOCAL: Side = "local"
REMOTE: Side = "remote"


@dataclass(frozen=True, slots=True)
class Move:
    """`src` (a base path) is now `dst` on `side`; `folder` moves carry everything below."""

    src: str
    dst: str
    side: Side
    folder: bool = False

    def covers(self, path: str) -> bool:
        """Whether this move carries base path `path`."""
        return path == self.src or (self.folder and path.startswith(self.src + "/"))


@dataclass(frozen=True)
class SideMoves:
    """The moves one side made since base: file moves and folder moves."""

    files: dict[str, str] = field(default_factory=dict)
    folders: dict[str, str] = field(default_factory=dict)

    def locate(self, key: str) -> str:
        """Where the base path `key` lives on this side (itself when it did not move)."""
        if key in self.files:
            return self.files[key]
        if key in self.folders:
            return self.folders[key]
        return self.locate_below(key)

    def locate_below(self, key: str) -> str:
        """`key` moved only by a folder move of one of its strict ancestors (innermost)."""
        if not self.folders:
            return key
        cut = key.rfind("/")
        while cut > 0:
            moved = self.folders.get(key[:cut])
            if moved is not None:
                return moved + key[cut:]
            cut = key.rfind("/", 0, cut)
        return key

    def as_moves(self, side: Side) -> tuple[Move, ...]:
        """Folder moves, then the file moves that no folder move already carries."""
        out = [Move(s, d, side, folder=True) for s, d in sorted(self.folders.items())]
        out += [
            Move(s, d, side) for s, d in sorted(self.files.items()) if self.locate_below(s) == s
        ]
        return tuple(out)


def _is_file(entry: Entry | None) -> bool:
    return entry is not None and not entry.is_dir


def _is_dir(entry: Entry | None) -> bool:
    return entry is not None and entry.is_dir


def content_key(entry: Entry) -> tuple[tuple[str, ...], int]:
    return (entry.chunks, entry.size)


def detect_moves(base: Flat, side: Flat) -> SideMoves:
    """The moves `side` made relative to `base` (pure; O(n log n))."""
    gone_dirs = sorted(k for k, e in base.items() if e.is_dir and not _is_dir(side.get(k)))
    new_dirs = {k for k, e in side.items() if e.is_dir and not _is_dir(base.get(k))}
    new_files = [k for k, e in side.items() if not e.is_dir and not _is_file(base.get(k))]
    folders = _folder_moves(base, side, gone_dirs, new_dirs, new_files)
    by_folders = SideMoves(folders=folders)
    carried = {k for k in base if by_folders.locate(k) != k}
    landed = {by_folders.locate(k) for k in carried}
    gone = defaultdict(list)
    for key, entry in base.items():
        if not entry.is_dir and entry.size and key not in carried:
            if not _is_file(side.get(key)):
                gone[content_key(entry)].append(key)
    appeared = defaultdict(list)
    for key in new_files:
        entry = side[key]
        if entry.size and key not in landed:
            appeared[content_key(entry)].append(key)
    files = {}
    for content, sources in gone.items():
        targets = appeared.get(content, ())
        if len(sources) == 1 and len(targets) == 1:
            files[sources[0]] = targets[0]
    return SideMoves(files=files, folders=folders)


def _folder_moves(
    base: Flat, side: Flat, gone_dirs: list[str], new_dirs: set[str], new_files: list[str]
) -> dict[str, str]:
    base_files = sorted(k for k, e in base.items() if not e.is_dir)
    by_name: dict[str, list[str]] = defaultdict(list)
    for key in new_files:
        by_name[key.rsplit("/", 1)[-1]].append(key)
    found: dict[str, str] = {}
    for folder in gone_dirs:
        lo = bisect.bisect_left(base_files, folder + "/")
        hi = bisect.bisect_left(base_files, folder + "0")  # '0' sorts right after '/'
        inside = base_files[lo:hi]
        if not inside:
            continue  # an empty folder has no identity to follow
        first_rel = inside[0][len(folder) :]
        candidates = {
            key[: -len(first_rel)]
            for key in by_name.get(first_rel.rsplit("/", 1)[-1], ())
            if key.endswith(first_rel) and key[: -len(first_rel)] in new_dirs
        }
        fits = [c for c in sorted(candidates) if _all_landed(base, side, folder, c, inside)]
        if len(fits) == 1:
            found[folder] = fits[0]
    # one-to-one: two folders that landed in one new folder are not moves
    counts: dict[str, int] = defaultdict(int)
    for target in found.values():
        counts[target] += 1
    found = {s: d for s, d in found.items() if counts[d] == 1}
    # drop inner moves that an outer move already implies
    return {s: d for s, d in found.items() if not _implied(s, d, found)}


def _all_landed(base: Flat, side: Flat, folder: str, target: str, inside: list[str]) -> bool:
    same = False
    for key in inside:
        there = side.get(target + key[len(folder) :])
        if not _is_file(there):
            return False
        same = same or base[key].same_content(there)
    return same


def _implied(src: str, dst: str, found: dict[str, str]) -> bool:
    cut = src.rfind("/")
    while cut > 0:
        outer = found.get(src[:cut])
        if outer is not None and outer + src[cut:] == dst:
            return True
        cut = src.rfind("/", 0, cut)
    return False
