"""`vaultsync restore --trash`: what a run replaced or deleted on this device, and bringing
one of those versions back. Works without the network: the trash is local.

A run that replaces or deletes a file keeps the old version first, in
`.vaultsync/trash/<YYYYMMDD-HHMMSS>-<hex>/<path>` (`apply.VaultWriter`; the stamp is the
run's start, UTC). Each file there is one trash item; its id is that path below
`.vaultsync/trash/` (`20261122-143005-a1b2c3/notes/Note.md`).

Bringing one back goes through the vault writer like any write of a sync: copied to a
temporary file, fsynced, renamed into place (the trash keeps its copy). A different file
at that path now is never lost: it goes to the trash first, as a sync would put it. The
next sync sends the restored version to the other devices.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from vaultsync.engine.apply import TargetChanged, VaultWriter, disk_key
from vaultsync.engine.history import vault_key
from vaultsync.engine.report import Report
from vaultsync.engine.vault import Vault
from vaultsync.errors import ChangedDuringRun, UsageError
from vaultsync.model import STATE_DIR, Entry, nfc

_RUN = re.compile(r"(\d{8}-\d{6})-[0-9a-f]+\Z")
_CASE = re.compile(r"case-[0-9a-f]{8}\Z")  # apply._check_case's stop on the way (a killed run)
_BLOCK = 1 << 20


@dataclass(frozen=True)
class TrashItem:
    id: str  # its path below .vaultsync/trash/ ('/'-separated)
    path: str  # the vault path it was at (NFC key)
    spelled: str  # that path as it was spelled on disk
    trashed_ns: int  # when the run that put it there started
    modified_ns: int  # the version's own modification time
    size: int
    executable: bool
    # its run folder's mtime: orders two runs that started within the same second
    run_mtime_ns: int = 0

    def to_json(self) -> dict[str, object]:
        return {"id": self.id, "path": self.path, "trashed": _iso(self.trashed_ns),
                "modified": _iso(self.modified_ns), "size": self.size,
                "executable": self.executable}


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def listing(root: str) -> list[TrashItem]:
    """Every version in this vault's trash, newest first (then by path). Takes no lock:
    it only reads, and a sync running meanwhile may only add to it."""
    vault = Vault.find(root)
    return _newest_first(_items(vault.trash))


def _newest_first(items: Iterator[TrashItem]) -> list[TrashItem]:
    return sorted(items, key=lambda i: (-i.trashed_ns, -i.run_mtime_ns, i.id))


def _items(trash: str) -> Iterator[TrashItem]:
    try:
        runs = sorted(os.listdir(trash))
    except FileNotFoundError:
        return
    for run in runs:
        folder = os.path.join(trash, run)
        if not os.path.isdir(folder) or os.path.islink(folder):
            continue
        match = _RUN.match(run)
        when = _stamp_ns(match.group(1)) if match else None
        try:
            run_mtime = os.stat(folder).st_mtime_ns
        except OSError:
            continue
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames.sort()
            for fn in sorted(filenames):
                full = os.path.join(dirpath, fn)
                try:
                    st = os.lstat(full)
                except OSError:
                    continue
                if not stat.S_ISREG(st.st_mode):
                    continue
                rel = os.path.relpath(full, folder).replace(os.sep, "/")
                parts = rel.split("/")
                spelled = "/".join(parts[1:]) if len(parts) > 1 and _CASE.match(parts[0]) \
                    else rel
                yield TrashItem(
                    id=f"{run}/{rel}", path=nfc(spelled), spelled=spelled,
                    trashed_ns=when if when is not None else run_mtime,
                    modified_ns=st.st_mtime_ns, size=st.st_size,
                    executable=bool(st.st_mode & stat.S_IXUSR), run_mtime_ns=run_mtime)


def _stamp_ns(stamp: str) -> int | None:
    try:
        when = datetime.strptime(stamp, "%Y%m%d-%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None
    return int(when.timestamp()) * 10**9


def find(vault: Vault, which: str) -> TrashItem:
    """The trash item `which` names: its id, or a vault path (its newest version)."""
    items = _newest_first(_items(vault.trash))
    wanted = which.replace(os.sep, "/").strip("/")
    for prefix in (os.path.join(vault.trash, "").replace(os.sep, "/"), f"{STATE_DIR}/trash/"):
        wanted = wanted.removeprefix(prefix.lstrip("/"))  # an id given as its path
    for item in items:
        if nfc(item.id) == nfc(wanted):
            return item
    key = vault_key(vault.root, which)
    for item in items:
        if item.path == key:
            return item
    if key and any(item.path.startswith(key + "/") for item in items):
        raise UsageError(f"{which} is a folder in the trash: restore its files one at a "
                         "time ('vaultsync restore --trash' lists them, with their ids)")
    raise UsageError(f"nothing in the trash at {which} ('vaultsync restore --trash' lists "
                     "what is there)")


def restore(root: str, which: str) -> tuple[Report, TrashItem]:
    """Bring the trash item `which` back into the vault (see the module's docstring).
    The report's `downloaded` names the path written (empty: the vault holds those bytes
    already); a notice says where a replaced version went."""
    report = Report("restore")
    with Vault.find(root) as vault:
        vault.lock()
        item = find(vault, which)
        source = os.path.join(vault.trash, *item.id.split("/"))
        vw = VaultWriter(vault.root, vault.trash, vault.staging)
        target = vw.abspath(item.spelled)
        vw.check_no_links(item.spelled)
        if os.path.isdir(target) and not os.path.islink(target):
            raise UsageError(f"{item.spelled} is a folder now: move it away first, or copy "
                             f"the version from {os.path.relpath(source, vault.root)}")
        now = disk_key(target)
        if now is not None and _same_bytes(source, target):
            report.notices.append(f"{item.spelled} already holds that version: nothing to do")
            return report.finish(), item
        entry = Entry(name=os.path.basename(item.spelled), mode=0o755 if item.executable
                      else 0o644, size=item.size, mtime_ns=item.modified_ns)
        with open(source, "rb") as f:
            tmp = vw.stage(item.spelled, entry, iter(lambda: f.read(_BLOCK), b""))
        try:
            vw.install(tmp, item.spelled, now)
        except TargetChanged:
            raise ChangedDuringRun(f"{item.spelled} changed while it was being restored; "
                                   "nothing was replaced: run it again") from None
        finally:
            vw.discard(tmp)  # gone once installed; removed if the install failed
        vw.sync_dirs()
        report.downloaded.append(item.path)
        if now is not None:
            kept = os.path.relpath(os.path.join(vw.trash_dir, *item.spelled.split("/")),
                                   vault.root)
            report.notices.append(f"the version it replaced is in {kept}")
    return report.finish(), item


def _same_bytes(a: str, b: str) -> bool:
    try:
        if os.path.getsize(a) != os.path.getsize(b):
            return False
        with open(a, "rb") as fa, open(b, "rb") as fb:
            while True:
                x, y = fa.read(_BLOCK), fb.read(_BLOCK)
                if x != y:
                    return False
                if not x:
                    return True
    except OSError:
        return False
