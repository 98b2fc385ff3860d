"""Printing results (stdout) and errors (stderr). `--json` prints one document.

Every human line goes through `out` or `err`, which make it safe: passwords in URLs are
masked (`redact`) and control characters are escaped (`escape`), so a file named
"a\\nsynced to snapshot ..." cannot fake an output line and an escape sequence in a device
name cannot reach the terminal. Names are printed with `name()`, which quotes one that
needed escaping, as git does. `--json` stays exact (JSON escapes control characters
itself); only secrets are masked there too.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from typing import TYPE_CHECKING, TextIO

from vaultsync.errors import UsageError
from vaultsync.store.url import redact

if TYPE_CHECKING:  # `--help` and usage errors need no engine (nor the model) imported
    from vaultsync.engine.report import Report

_log: TextIO | None = None
_log_path: str | None = None

# C0 and C1 controls, DEL, and the invisible characters that reorder or break a line
# on a terminal (bidi overrides and isolates, line and paragraph separators)
_UNSAFE = {*range(0x20), 0x7F, *range(0x80, 0xA0), 0x200E, 0x200F, *range(0x202A, 0x202F),
           *range(0x2066, 0x206A), 0x2028, 0x2029}
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(code: int) -> str:
    ch = chr(code)
    if ch in _NAMED:
        return _NAMED[ch]
    # \xNN for C0 as C and Python write them; \uNNNN from DEL up, which JSON reads too
    # (a --json document in the log stays valid JSON: json.dumps escapes C0 itself)
    return f"\\x{code:02x}" if code < 0x20 else f"\\u{code:04x}"


_ESCAPES = {code: _escaped(code) for code in _UNSAFE}


def escape(text: str) -> str:
    """Control and bidi characters as visible escapes (\\n, \\x1b, \\u202e)."""
    return text.translate(_ESCAPES)


def name(text: str) -> str:
    """A file or device name for a human line: as is, or quoted with C escapes when it
    holds a character that needs one (or a quote or backslash, so the quoted form is
    never ambiguous)."""
    if not any(ord(c) in _UNSAFE or c in '"\\' for c in text):
        return text
    inner = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escape(inner)}"'


def open_log(path: str) -> None:
    """--log-file: every line this run prints is also appended there, timestamped."""
    global _log, _log_path
    try:
        _log = open(path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the run
    except OSError as exc:
        raise UsageError(f"cannot open log file {path}: {exc.strerror}") from None
    _log_path = os.path.abspath(path)
    argv = " ".join(shlex.quote(redact(a)) for a in sys.argv[1:])
    _logged(f"vaultsync {argv} (cwd {log_cwd()})")


def log_path() -> str | None:
    """The --log-file of this run, while it can still be written."""
    return _log_path if _log is not None else None


def _logged(line: str) -> None:
    global _log
    if _log is None:
        return
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    try:
        _log.write(f"{stamp} [{os.getpid()}] {escape(redact(line))}\n")
        _log.flush()
    except OSError as exc:  # the log's disk is full or gone: keep running, say so once
        _log = None
        sys.stderr.write(f"vaultsync: cannot write log file {_log_path}: {exc.strerror}; "
                         "no more logging this run\n")


def log_lines(lines: list[str]) -> bool:
    """Append lines (a traceback) to the --log-file; False when there is none open."""
    if _log is None:
        return False
    for line in lines:
        _logged(line)
    return _log is not None


def log_exit(code: int) -> None:
    _logged(f"exit {code}")


def out(line: str = "") -> None:
    line = escape(redact(line))
    sys.stdout.write(line + "\n")
    _logged(line)


def err(line: str) -> None:
    line = escape(redact(line))
    sys.stderr.write(line + "\n")
    _logged(line)


def _masked(doc: object) -> object:
    if isinstance(doc, str):
        return redact(doc)
    if isinstance(doc, dict):
        return {k: _masked(v) for k, v in doc.items()}
    if isinstance(doc, list | tuple):
        return [_masked(v) for v in doc]
    return doc


def emit_json(doc: object) -> None:
    doc = _masked(doc)
    text = json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False)
    sys.stdout.write(text + "\n")
    _logged(json.dumps(doc, sort_keys=True, ensure_ascii=False))


def emit_json_line(doc: object) -> None:
    """One JSON document on one line (JSON Lines: `watch --json`), flushed at once."""
    text = json.dumps(_masked(doc), sort_keys=True, ensure_ascii=False)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
    _logged(text)


def size(n: int) -> str:
    """Bytes for people: 512 B, 12.3 KiB, 4.0 MiB."""
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            break
    return f"{value:.1f} {unit}"


def short(sid: str | None) -> str:
    return sid[:12] if sid else "none"


def print_actions(report: Report) -> None:
    """One line per file a run writes, deletes or moves in the vault."""
    for p in report.downloaded:
        out(f"  down    {name(p)}")
    for p in report.deleted:
        out(f"  delete  {name(p)}")
    for src, dst in report.moved:
        out(f"  move    {name(src)} -> {name(dst)}")


def summary(report: Report) -> str:
    """What a sync did (or would do), each way: `3 up, 1 down, 0 deleted here, 2 deleted
    remotely, 0 moved, 0 conflict(s)`."""
    return (f"{len(report.uploaded)} up, {len(report.downloaded)} down, "
            f"{len(report.deleted)} deleted here, {len(report.deleted_remotely)} deleted "
            f"remotely, {len(report.moved)} moved, {len(report.conflicts)} conflict(s)")


def print_report(report: Report, as_json: bool, verbose: bool = False) -> int:
    if as_json:
        emit_json(report.to_json())
        return report.exit_code
    for notice in report.notices:
        out(notice)
    cmd = report.command
    if cmd in ("push", "pull", "clone", "sync") and report.up_to_date:
        out(f"already up to date (snapshot {short(report.snapshot)})")
    elif cmd == "push":
        out(f"pushed snapshot {short(report.snapshot)}: {len(report.uploaded)} added or changed, "
            f"{len(report.deleted_remotely)} deleted, {report.new_chunks} new chunks in "
            f"{report.packs} pack(s)")
    elif cmd in ("pull", "clone"):
        out(f"{'cloned' if cmd == 'clone' else 'pulled'} snapshot {short(report.snapshot)}: "
            f"{len(report.downloaded)} written, {len(report.deleted)} deleted")
    elif cmd == "sync":
        verb = "would sync" if any(n.startswith("dry run") for n in report.notices) else "synced"
        out(f"{verb} to snapshot {short(report.snapshot)}: {summary(report)}")
        t = report.traffic
        out(f"  sent {size(t.bytes_up)} in {t.requests_up} request(s), received "
            f"{size(t.bytes_down)} in {t.requests_down}, {report.duration:.2f} s")
    elif cmd in ("restore", "checkout"):
        out(f"{cmd}: {len(report.downloaded)} file(s) written from snapshot "
            f"{short(report.snapshot)}")
    if verbose:
        for p in report.uploaded:
            out(f"  up      {name(p)}")
        for p in report.deleted_remotely:
            out(f"  up      {name(p)} (deleted)")
        print_actions(report)
    for path, copy in report.conflicts:
        out(f"conflict: {name(path)}: the other version is kept as {name(copy)}")
    for path, reason in report.skipped:
        out(f"skipped: {name(path)} ({reason})")
    return report.exit_code


def log_cwd() -> str:
    """The working folder for a log line, or a note that it is gone."""
    try:
        return os.getcwd()
    except OSError:
        return "(a folder that no longer exists)"
