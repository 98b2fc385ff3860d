"""What a run did, for the CLI to print (and for --json)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from vaultsync.errors import EXIT_ATTENTION, EXIT_OK
from vaultsync.model import Entry
from vaultsync.store.counting import Traffic


def attention(*found: object) -> int:
    """The exit code of a run that finished: EXIT_ATTENTION ("done, look") when any of
    `found` is there (conflicts kept, paths skipped, a stop a sync would make), else
    EXIT_OK. Every command that finishes takes its code from here."""
    return EXIT_ATTENTION if any(found) else EXIT_OK


@dataclass
class Report:
    command: str
    snapshot: str | None = None
    up_to_date: bool = False
    uploaded: list[str] = field(default_factory=list)  # paths whose new content went up
    downloaded: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)  # files this run moved to the trash
    # files this device deleted that the run committed (deleted for the other devices)
    deleted_remotely: list[str] = field(default_factory=list)
    moved: list[tuple[str, str]] = field(default_factory=list)  # (from, to)
    conflicts: list[tuple[str, str]] = field(default_factory=list)  # (path, copy kept)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    notices: list[str] = field(default_factory=list)
    unwritable: dict[str, Entry] = field(default_factory=dict)  # names this disk refused
    new_chunks: int = 0
    packs: int = 0
    traffic: Traffic = field(default_factory=Traffic)
    started: float = field(default_factory=time.monotonic)
    duration: float = 0.0

    def finish(self) -> Report:
        self.duration = time.monotonic() - self.started
        return self

    @property
    def exit_code(self) -> int:
        return attention(self.conflicts, self.skipped)

    def to_json(self) -> dict[str, object]:
        return {
            "command": self.command,
            "snapshot": self.snapshot,
            "up_to_date": self.up_to_date,
            "uploaded": len(self.uploaded),
            "downloaded": len(self.downloaded),
            "deleted": len(self.deleted),
            "deleted_remotely": len(self.deleted_remotely),
            "moved": len(self.moved),
            "conflicts": [{"path": p, "copy": c} for p, c in self.conflicts],
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
            "notices": self.notices,
            "new_chunks": self.new_chunks,
            "packs": self.packs,
            "traffic": self.traffic.to_json(),
            "duration_s": round(self.duration, 3),
            "exit_code": self.exit_code,
        }
