"""One-way modes as a pure function: the winner's tree, plus every version the loser
changed since base that the winner does not have, kept as a conflict copy (or at its
own path when that path is free). `push` is overlay(local, remote); `pull` is
overlay(remote, local). Nothing the loser wrote is dropped."""

from __future__ import annotations

from dataclasses import dataclass

from vaultsync.model import DIR, Entry, Flat
from vaultsync.reconcile.conflicts import copy_path


@dataclass(frozen=True)
class Overlay:
    flat: Flat
    copies: tuple[tuple[str, str], ...] = ()  # (path, where the loser's version went)


def overlay(winner: Flat, loser: Flat, base: Flat) -> Overlay:
    out = dict(winner)
    copies: list[tuple[str, str]] = []
    for key in sorted(loser, key=lambda k: (k.count("/"), k)):
        entry = loser[key]
        if entry.is_dir:  # a folder the loser made (not one it merely still has)
            made = base.get(key) is None or not base[key].is_dir
            if made and key not in out and _free_parents(out, key) == key:
                _add(out, key, entry)
            continue
        if entry.same_version(base.get(key)):
            continue  # the loser did not change it: nothing unseen to keep
        here = out.get(key)
        if here is not None and entry.same_content(here):
            continue
        path = _free_parents(out, key)
        if path not in out:  # a free place: the loser's version keeps its path
            _add(out, path, entry)
            if path != key:
                copies.append((key, path))
            continue
        where = copy_path(path, entry, out.get)
        if not where.exists:
            _add(out, where.key, entry)
        copies.append((key, where.key))
    return Overlay(out, tuple(copies))


def _free_parents(out: Flat, key: str) -> str:
    """`key`, with any parent that is a file in `out` renamed to a conflict name, so
    the loser's entry gets a folder to live in."""
    parts = key.split("/")
    for i in range(len(parts) - 1):
        prefix = "/".join(parts[: i + 1])
        there = out.get(prefix)
        if there is not None and not there.is_dir:
            folder = Entry(name=parts[i], kind=DIR, mtime_ns=there.mtime_ns, author="folder")
            parts[i] = last_of(copy_path(prefix, folder, out.get).key)
    return "/".join(parts)


def last_of(key: str) -> str:
    return key.rpartition("/")[2]


def _add(out: Flat, key: str, entry: Entry) -> None:
    parts = key.split("/")
    for i in range(len(parts) - 1):
        prefix = "/".join(parts[: i + 1])
        if prefix not in out:
            out[prefix] = Entry(name=parts[i], kind=DIR)
    out[key] = Entry(name=parts[-1], kind=entry.kind, mode=entry.mode, size=entry.size,
                     mtime_ns=entry.mtime_ns, author=entry.author, chunks=entry.chunks,
                     tree=None)
