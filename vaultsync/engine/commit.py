"""The commit order, in one function: packs, then index segment, then snapshot, then
this device's head. A crash between any two steps leaves a valid repository: at worst
packs or a snapshot nothing references yet, which the next run or `prune` handles."""

from __future__ import annotations

import time

from vaultsync.engine.scan import ScanResult
from vaultsync.engine.transfer import upload_scan
from vaultsync.model import ObjectId, Snapshot
from vaultsync.repository.repo import Repository


def commit(repo: Repository, scan: ScanResult, parents: tuple[ObjectId, ...], device: str,
           device_name: str) -> tuple[ObjectId, int, int]:
    """Upload what `scan` needs and publish it; returns (snapshot id, new chunks, packs)."""
    writer = repo.writer()
    new_chunks = upload_scan(repo, writer, scan)  # 1. packs (flushed as they fill)
    writer.commit_index()  # 2. the last pack, then one index segment naming them all
    files = [e for e in scan.flat.values() if not e.is_dir]
    snap = Snapshot(tree=scan.root, parents=parents, device=device, device_name=device_name,
                    time_ns=time.time_ns(), files=len(files), size=sum(e.size for e in files))
    sid = repo.put_snapshot(snap)  # 3. the snapshot
    repo.write_head(device, sid)  # 4. this device's head
    return sid, new_chunks, writer.packs_written
