"""Progress reporting without printing: the engine calls `current()`, which is a no-op
unless the CLI installed a real reporter (rich on a terminal). Calls may come from
worker threads."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def start(self, phase: str, total: int | None, unit: str) -> None:
        """A phase begins ("scan", "upload", "download"); unit is "files" or "bytes"."""

    def advance(self, amount: int = 1) -> None: ...

    def finish(self) -> None:
        """The current phase is over."""


class NullProgress:
    def start(self, phase: str, total: int | None, unit: str) -> None:
        pass

    def advance(self, amount: int = 1) -> None:
        pass

    def finish(self) -> None:
        pass


_current: Progress = NullProgress()


def current() -> Progress:
    return _current


def install(progress: Progress | None) -> None:
    global _current
    _current = progress if progress is not None else NullProgress()
