"""Progress bars on stderr with rich, only when stderr is a terminal (never in cron or
CI logs) and not --quiet. rich is imported only then."""

from __future__ import annotations

import sys
from typing import Any


class RichProgress:
    LABELS = {"scan": "Scanning", "upload": "Uploading", "download": "Downloading"}

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        console = Console(stderr=True)
        self._bytes = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                               TransferSpeedColumn(), TimeRemainingColumn(), console=console,
                               transient=True)
        self._files = Progress(TextColumn("{task.description}"), BarColumn(),
                               MofNCompleteColumn(), console=console, transient=True)
        self._active: Any = None
        self._task: Any = None

    def start(self, phase: str, total: int | None, unit: str) -> None:
        self.finish()
        self._active = self._bytes if unit == "bytes" else self._files
        self._active.start()
        self._task = self._active.add_task(self.LABELS.get(phase, phase), total=total)

    def advance(self, amount: int = 1) -> None:
        if self._active is not None:
            self._active.advance(self._task, amount)

    def finish(self) -> None:
        if self._active is not None:
            self._active.stop()
            self._active = None


def for_terminal(quiet: bool) -> RichProgress | None:
    if quiet or not sys.stderr.isatty():
        return None
    return RichProgress()
