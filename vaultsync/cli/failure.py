"""How a run ends when it does not end well: SIGTERM takes the Ctrl-C path, and a bug's
traceback goes to a log file, never to the terminal.

- SIGTERM raises KeyboardInterrupt in the main thread, exactly as Ctrl-C does, so every
  `finally` and `except BaseException` on the way out removes its temporary files (the
  store's `.tmp-*`, the vault's staged `.vaultsync-tmp-*`) before the run exits 130.
- An unexpected exception's traceback is appended to the `--log-file` when one is open,
  else written to a crash log under `platformdirs.user_log_dir("vaultsync")`
  (`$XDG_STATE_HOME/vaultsync/log/`, by default `~/.local/state/vaultsync/log/`), else to
  the system's temporary folder. Its lines are redacted like every other log line.
- An exception in a background thread, or one Python could not raise (`__del__`), goes to
  the `--log-file` (if any) instead of stderr. An interrupt Python could not raise there
  still ends the run with 130, once the command returns (`signalled`).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from vaultsync import __version__
from vaultsync.cli.output import escape, log_cwd, log_lines, log_path
from vaultsync.store.url import redact

_signalled = threading.Event()  # a SIGTERM arrived during this run


def _interrupt(signum: int, frame: FrameType | None) -> None:
    _signalled.set()
    raise KeyboardInterrupt


def signalled() -> bool:
    """Whether a SIGTERM arrived during this run. Its KeyboardInterrupt is lost when it
    lands while Python finalizes something (a generator closed by the garbage collector,
    a `__del__`): then the run goes on, and this tells the caller to exit 130 anyway."""
    return _signalled.is_set()


def _thread_failed(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit or args.exc_value is None:
        return
    where = args.thread.name if args.thread is not None else "a thread"
    log_lines([f"exception in {where} (the run went on):", *_traceback(args.exc_value)])


def _unraisable(args: Any) -> None:
    if isinstance(args.exc_value, KeyboardInterrupt):
        _signalled.set()  # Python could not raise it there: the run ends 130 (`signalled`)
        return
    if args.exc_value is not None:
        log_lines([f"exception ignored in {args.object!r}:", *_traceback(args.exc_value)])


@contextmanager
def run_guard() -> Iterator[None]:
    """For the duration of one run: SIGTERM as Ctrl-C, thread and unraisable exceptions
    to the log. Restores the previous handlers after (tests and gen-docs call `main`
    in-process)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _signalled.clear()
    old_term = signal.signal(signal.SIGTERM, _interrupt)
    old_thread, old_unraisable = threading.excepthook, sys.unraisablehook
    threading.excepthook, sys.unraisablehook = _thread_failed, _unraisable
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old_term)
        threading.excepthook, sys.unraisablehook = old_thread, old_unraisable


def _traceback(exc: BaseException) -> list[str]:
    import traceback  # only when something went wrong: start-up stays fast

    return "".join(traceback.format_exception(exc)).splitlines()


def record_traceback(exc: BaseException) -> str:
    """Write `exc`'s traceback where a bug report can find it; returns where (a path), or
    why it could not be written."""
    lines = [f"vaultsync {__version__} (Python {sys.version.split()[0]}) hit an unexpected "
             "error; traceback:", *_traceback(exc)]
    if log_lines(lines):
        return log_path() or "the log file"
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    argv = " ".join(redact(a) for a in sys.argv[1:])
    text = "".join(escape(redact(line)) + "\n"
                   for line in [f"vaultsync {argv}", f"cwd {log_cwd()}", *lines])
    import tempfile

    problems = []
    for folder in (_crash_folder(), tempfile.gettempdir()):
        path = os.path.join(folder, f"crash-{stamp}-{os.getpid()}.log")
        try:
            os.makedirs(folder, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            return path
        except OSError as write_error:
            problems.append(f"{path}: {write_error.strerror}")
    return "nowhere (" + "; ".join(problems) + ")"


def _crash_folder() -> str:
    import platformdirs

    return str(platformdirs.user_log_dir("vaultsync"))

