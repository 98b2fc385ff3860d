"""Conflict-copy names: a pure function of the losing version, so every device agrees.

`Note.md` conflicted by device `laptop` whose version was written at 2026-11-22 14:30:05
UTC becomes `Note.conflict-20261122-143005-laptop.md`: the marker goes before the last
suffix; a name without a suffix, or a dotfile like `.gitignore`, gets it at the end. A copy
is never named from a copy: the marker of an existing copy is stripped first.

`copy_path` is the one place that decides where a losing version goes: the merge
(placement), the one-way modes (overlay), the apply step (a file edited during the run)
and the scan (two spellings of one name) all call it, each with its own answer to "what
is at this path?".
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from vaultsync.model import Entry, nfc

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
# The marker as we write it (tokens never contain a dot), with an optional `-N` tail.
_MARKER = re.compile(r"\.conflict-\d{8}-\d{6}-[A-Za-z0-9_-]+")
# A "suffix": a dot then 1..16 characters without dots or whitespace (".md", ".gz").
_SUFFIX = re.compile(r"\.[^.\s]{1,16}\Z")
MAX_TOKEN = 32
MAX_NAME_BYTES = 255  # what most filesystems allow for one name


def device_token(author: str) -> str:
    """`author` made filesystem-safe: ASCII letters, digits, `_` and `-` only."""
    token = _UNSAFE.sub("_", author).strip("_")[:MAX_TOKEN]
    return token or "unknown"


def utc_stamp(mtime_ns: int) -> str:
    """`YYYYMMDD-HHMMSS` of an mtime in UTC (pure arithmetic: no time zone database)."""
    when = _EPOCH + timedelta(microseconds=mtime_ns // 1000)
    return when.strftime("%Y%m%d-%H%M%S")


def split_suffix(name: str) -> tuple[str, str]:
    """(stem, last suffix); the suffix is '' for `Makefile`, `.gitignore`, `Dr. Who`."""
    match = _SUFFIX.search(name)
    if match is None or match.start() == 0:
        return name, ""
    return name[: match.start()], match.group()


def original_name(name: str) -> str:
    """`name` without a conflict marker (`Note.conflict-...-laptop.md` -> `Note.md`)."""
    matches = list(_MARKER.finditer(name))
    if not matches:
        return name
    last = matches[-1]
    return name[: last.start()] + name[last.end() :]


def is_conflict_name(name: str) -> bool:
    return _MARKER.search(name) is not None


def conflict_name(name: str, mtime_ns: int, author: str, attempt: int = 1) -> str:
    """The copy's name for the losing version of `name` (attempt 2, 3... when taken)."""
    stem, suffix = split_suffix(original_name(name))
    marker = f".conflict-{utc_stamp(mtime_ns)}-{device_token(author)}"
    if attempt > 1:
        marker += f"-{attempt}"
    room = MAX_NAME_BYTES - len((marker + suffix).encode())
    while len(stem.encode()) > room and stem:
        stem = stem[:-1]  # a long name is shortened, never left unwritable
    return stem + marker + suffix


# What a lookup answers for a path that holds something whose content is unknown (a file
# on disk that the scan did not see): taken, and never "the same bytes".
TAKEN = Entry(name="", kind="?")


@dataclass(frozen=True, slots=True)
class CopyPlace:
    key: str  # the copy's path (NFC key)
    name: str  # its last component as written (the loser's own spelling)
    exists: bool  # a copy with the same content is there already: nothing to write


def copy_path(path: str, entry: Entry, at: Callable[[str], Entry | None],
              spelled: str | None = None) -> CopyPlace:
    """Where the losing version `entry` of `path` is kept, beside `path`: the first
    conflict name (`-2`, `-3`... after it) that `at` says is free, or one that already
    holds the same content (the same conflict, resolved before). `spelled` is the
    spelling of `path`'s last component to name the copy from (default: the key's)."""
    folder, _, last = path.rpartition("/")
    name = spelled if spelled is not None else last
    for attempt in itertools.count(1):
        copy_name = conflict_name(name, entry.mtime_ns, entry.author, attempt)
        key = f"{folder}/{nfc(copy_name)}" if folder else nfc(copy_name)
        there = at(key)
        if there is None:
            return CopyPlace(key, copy_name, False)
        if there.kind == entry.kind and entry.same_content(there):
            return CopyPlace(key, copy_name, True)
    raise AssertionError("unreachable")  # pragma: no cover
