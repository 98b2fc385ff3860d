"""`vaultsync verify`: check that a repository is whole and every object is what its
name says. Structure always; `read_data` percent of the packs byte for byte."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from vaultsync.errors import EXIT_INTEGRITY, EXIT_OK, VaultsyncError
from vaultsync.model import ObjectId, walk
from vaultsync.repository.packs import decode_blob, pack_name, read_trailer
from vaultsync.repository.repo import Repository


@dataclass
class VerifyReport:
    snapshots: int = 0
    trees: int = 0
    files: int = 0
    chunks: int = 0
    packs: int = 0
    packs_read: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """A problem found is an integrity error (exit 5), like one met during a sync."""
        return EXIT_INTEGRITY if self.problems else EXIT_OK

    def to_json(self) -> dict[str, object]:
        return {"snapshots": self.snapshots, "trees": self.trees, "files": self.files,
                "chunks": self.chunks, "packs": self.packs, "packs_read": self.packs_read,
                "problems": self.problems, "ok": not self.problems}


def verify(repo: Repository, read_data: float = 0.0, seed: int | None = None) -> VerifyReport:
    rep = VerifyReport()

    def problem(text: str) -> None:
        if len(rep.problems) < 1000:
            rep.problems.append(text)

    try:
        index = repo.index
    except VaultsyncError as exc:
        problem(f"index: {exc}")
        return rep
    snaps: set[ObjectId] = set()
    for device, head in sorted(repo.read_heads().items()):
        try:
            snaps |= repo.ancestors(head)
        except VaultsyncError as exc:
            problem(f"history of device {device[:8]}: {exc}")
    rep.snapshots = len(snaps)
    seen_trees: set[ObjectId] = set()
    needed_chunks: set[ObjectId] = set()
    for sid in sorted(snaps):
        try:
            root = repo.get_snapshot(sid).tree
            if root in seen_trees:
                continue
            seen_trees.add(root)
            for path, entry in walk(root, repo.get_tree):
                if entry.is_dir:
                    seen_trees.add(entry.tree or "")
                    continue
                rep.files += 1
                missing = [c for c in entry.chunks if c not in index]
                if missing:
                    problem(f"snapshot {sid[:12]}: {path}: {len(missing)} chunk(s) missing")
                needed_chunks.update(entry.chunks)
        except VaultsyncError as exc:
            problem(f"snapshot {sid[:12]}: {exc}")
    rep.trees, rep.chunks = len(seen_trees), len(needed_chunks)
    ends: dict[ObjectId, int] = {}
    for ref in index.values():
        ends[ref.pack] = max(ends.get(ref.pack, 0), ref.offset + ref.length)
    rep.packs = len(ends)
    sizes = {i.name: i.size for i in repo.store.list("packs/")}
    for pack, end in sorted(ends.items()):
        size = sizes.get(pack_name(pack))
        if size is None:
            problem(f"pack {pack[:12]} is missing")
        elif size < end:
            problem(f"pack {pack[:12]} is truncated ({size} < {end} bytes)")
    rng = random.Random(seed)
    for pack in sorted(ends):
        if rng.random() * 100 >= read_data or pack_name(pack) not in sizes:
            continue
        rep.packs_read += 1
        try:
            data = repo.store.get(pack_name(pack))
            repo.hasher.verify(data, pack, f"pack {pack[:12]}")
            for ref in read_trailer(data, pack):
                decode_blob(ref, data[ref.offset : ref.offset + ref.length], repo.hasher)
                known = index.get(ref.id)
                if known is not None and known.pack == pack and known != ref:
                    problem(f"pack {pack[:12]}: index disagrees with the pack about "
                            f"blob {ref.id[:12]}")
        except VaultsyncError as exc:
            problem(str(exc))
    return rep
