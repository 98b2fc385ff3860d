"""The memo of folder trees: for each folder, a digest of its entries as the scan reads
them, with the id of the tree they encode to, so a folder whose entries did not change
is not encoded and hashed again (state table `folder_trees`).

A digest names the entries, every field the encoding holds, in the scan's order: equal
digests mean equal entries, hence the very tree. So a memo line is right whatever made
it; one whose entries are not what the disk holds is simply never matched."""

from __future__ import annotations

import functools
import marshal

from vaultsync.chunking import Hasher
from vaultsync.model import DIR, FILE, Entry, Flat, ObjectId, Tree

Memo = dict[str, tuple[str, ObjectId]]  # folder key prefix ("" or "a/b/") -> (digest, tree)


@functools.cache
def memo_key() -> bytes:
    """What the digests are keyed by besides the entries: the encoding of a sample tree,
    so a new tree encoding starts a new memo (and a new hasher does too: the digests are
    its ids)."""
    sample = (Entry("a", FILE, 0o755, 1, 2, "x", ("0" * 64,)), Entry("b", DIR, tree="1" * 64))
    return Tree.of(sample).encode()


def sig_of(e: Entry) -> tuple:
    """What an entry adds to its folder's digest."""
    return (e.name, e.tree) if e.kind == DIR else \
        (e.name, e.mode, e.size, e.mtime_ns, e.author, e.chunks)


def digest(hasher: Hasher, sig: list[tuple]) -> str:
    return hasher.id(memo_key() + marshal.dumps(sig, 2))


def memo_of(flat: Flat, root: ObjectId, hasher: Hasher) -> Memo:
    """The memo of a snapshot's folders, from its flat (as `flatten` gives it: every
    folder's entries in tree order, each folder entry naming its own tree) and its root
    tree: what a scan of a disk holding exactly that snapshot finds (a clone), without
    encoding a tree. Entries in tree order are in the scan's order where names are
    ASCII; elsewhere the digests differ from the scan's and are never matched."""
    sigs: dict[str, list[tuple]] = {"": []}
    trees: dict[str, ObjectId] = {"": root}
    for key, entry in flat.items():
        parent = key.rpartition("/")[0]
        folder = parent + "/" if parent else ""
        sigs.setdefault(folder, []).append(sig_of(entry))
        if entry.kind == DIR and entry.tree is not None:
            trees[key + "/"] = entry.tree
            sigs.setdefault(key + "/", [])
    return {folder: (digest(hasher, sig), trees[folder])
            for folder, sig in sigs.items() if folder in trees}
