"""Every error vaultsync reports, each with its exit code, and the one policy that turns
any exception into one of them (`classify`).

The CLI maps any `VaultsyncError` to one line on stderr and `exit_code`; whatever else
escapes a command goes through `classify` first. Nothing else in the package decides exit
codes: a command's result types carry their own (`Report.exit_code`,
`VerifyReport.exit_code`). Messages must never contain secrets: stores build them from
display URLs, which carry no credentials.
"""

from __future__ import annotations

import errno
import os

# Exit codes of the command-line contract (design.md, "Exit codes").
EXIT_OK = 0
EXIT_ATTENTION = 1  # done, with conflicts kept or files skipped
EXIT_USAGE = 2
EXIT_REMOTE = 3
EXIT_SAFETY = 4
EXIT_INTEGRITY = 5
EXIT_LOCKED = 6
EXIT_LOCAL = 7  # the vault's own disk failed us (full, unwritable, unreadable as a whole)
EXIT_BUG = 70  # an unexpected error: one line, the traceback in a log
EXIT_INTERRUPTED = 130


class VaultsyncError(Exception):
    """Base class: a message for the user and the exit code that goes with it."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(VaultsyncError):
    """The command line or its arguments are wrong."""

    exit_code = EXIT_USAGE


class NotAVault(UsageError):
    """The folder is not a vault (no .vaultsync/ in it)."""


class ConfigError(UsageError):
    """The vault's config.toml is missing, malformed or incomplete."""


class NoRemote(UsageError):
    """The vault has no remote configured."""


class NotARepository(UsageError):
    """The remote location exists but holds no vaultsync repository."""


class BadName(UsageError):
    """A path or object name that vaultsync refuses to use."""


class MissingDependency(UsageError):
    """A package vaultsync needs is missing or was installed without its compiled part."""


class RemoteError(VaultsyncError):
    """The remote could not be reached, or refused us: try again later."""

    exit_code = EXIT_REMOTE


class RemoteUnreachable(RemoteError):
    """Network failure, timeout, or a remote location that is not there (unmounted)."""


class AuthError(RemoteError):
    """Credentials missing or refused."""


class RemoteRefused(RemoteError):
    """The remote refused us: it is full (or over quota), read-only, or denies permission.
    The message says "remote", which of these, and the remote's display URL; nothing was
    committed past the refused object. Free space or fix the permission, then run again."""


class SafetyStop(VaultsyncError):
    """A run that would be dangerous stopped before writing anything."""

    exit_code = EXIT_SAFETY


class FormatTooNew(SafetyStop):
    """The repository uses a format or mandatory feature this client does not know."""


class Diverged(SafetyStop):
    """A one-way command would overwrite a version the other side has not seen."""


class IntegrityError(VaultsyncError):
    """A remote or cached object is corrupt, missing or hostile."""

    exit_code = EXIT_INTEGRITY


class MarkerDamaged(IntegrityError):
    """The prune marker (heads/prune) cannot be read: `vaultsync prune` rebuilds it."""


class ObjectNotFound(IntegrityError):
    """An object that the repository references is missing."""

    def __init__(self, name: str) -> None:
        super().__init__(f"object {name} is missing from the repository")
        self.name = name


class LockHeld(VaultsyncError):
    """Another vaultsync run holds this vault's lock."""

    exit_code = EXIT_LOCKED


class ConcurrentPrune(LockHeld):
    """Another prune wrote the repository's prune records while this one ran: this one
    stopped before deleting anything more (run it again)."""


class LocalFailure(VaultsyncError):
    """The vault's own disk failed: full, read-only, unwritable, or a folder unreadable as
    a whole. Nothing was committed; the message names the path and says "local"."""

    exit_code = EXIT_LOCAL


class StateDamaged(LocalFailure):
    """The local state database turned out damaged or unreadable during a run: it was
    moved aside. Local state is a cache of the remote plus the base, so commands run
    again at once, re-joining the repository; this is reported only if that fails too."""

    in_memory = False  # a read-only run left it in place: its next try keeps state in memory


class Interrupted(VaultsyncError):
    """The run was interrupted (Ctrl-C or SIGTERM)."""

    exit_code = EXIT_INTERRUPTED


class Unexpected(VaultsyncError):
    """Anything vaultsync did not expect: a bug. One line on stderr that says where the
    traceback was written (the --log-file, else a crash log); never a traceback on the
    terminal, never exit 1."""

    exit_code = EXIT_BUG

    def __init__(self, original: BaseException) -> None:
        text = " ".join(str(original).split())
        if len(text) > 200:
            text = text[:197] + "..."
        detail = f"{type(original).__name__}: {text}" if text else type(original).__name__
        super().__init__(f"unexpected error ({detail}); this is a bug in vaultsync")
        self.original = original

    def logged_at(self, where: str) -> Unexpected:
        self.message += f"; traceback written to {where}"
        return self


def all_error_classes() -> list[type[VaultsyncError]]:
    """Every error class, base first (used to generate docs/exit-codes.md)."""
    seen: list[type[VaultsyncError]] = []
    stack: list[type[VaultsyncError]] = [VaultsyncError]
    while stack:
        cls = stack.pop(0)
        seen.append(cls)
        stack.extend(cls.__subclasses__())
    return seen


class ChangedDuringRun(VaultsyncError):
    """A local file changed while the run was reading it; nothing was committed."""

    exit_code = EXIT_ATTENTION


class TransientError(RemoteUnreachable):
    """A failure that may go away if the same request is tried again: a timeout, a dropped
    connection, an HTTP 5xx or 429, a throttling answer. Stores raise it; `RetryStore`
    retries it; anything else (404, auth, a bad name) fails at once."""


# ---- the policy: any exception -> a VaultsyncError --------------------------------------

# errno -> what a disk that refused us is: the words both sides use ("local disk full",
# "remote is full")
_REFUSALS = {
    errno.ENOSPC: "full", errno.EDQUOT: "full", errno.EFBIG: "full",
    errno.EROFS: "read-only",
    errno.EACCES: "permission denied", errno.EPERM: "permission denied",
}
# errnos of a disk or mount that failed under us (as opposed to a bug)
_DISK_FAILURES = {errno.EIO, errno.ENXIO, errno.ENODEV, errno.ESTALE, errno.ENOTCONN}
_LOCAL_WORDS = {"full": "local disk full", "read-only": "local disk is read-only",
                "permission denied": "local permission denied"}
# sqlite's own words for a disk that failed it (it raises OperationalError without errno)
_SQLITE_REFUSALS = {
    "database or disk is full": "local disk full",
    "disk i/o error": "local disk I/O error",
    "attempt to write a readonly database": "local disk is read-only",
    "unable to open database file": "local state database cannot be opened",
}


def refusal(exc: OSError) -> str | None:
    """"full", "read-only" or "permission denied" when `exc` says a disk refused a write
    (or a read, for permission); None for anything else."""
    return _REFUSALS.get(exc.errno or 0)


def _local(exc: OSError, where: str | None) -> LocalFailure | None:
    what = _LOCAL_WORDS.get(refusal(exc) or "")
    if what is None and exc.errno in _DISK_FAILURES:
        what = "local disk I/O error"
    if what is None:
        return None
    path = exc.filename if exc.filename is not None else None
    if path is not None:
        text = f"{what}: {os.fsdecode(path)}"
        if exc.filename2 is not None:
            text += f" -> {os.fsdecode(exc.filename2)}"
    elif where is not None:
        text = f"{what} (in {where})"
    else:
        text = what
    return LocalFailure(f"{text}: {exc.strerror or os.strerror(exc.errno or 0)}")


def _sqlite(exc: BaseException, where: str | None) -> VaultsyncError | None:
    import sqlite3

    if not isinstance(exc, sqlite3.DatabaseError):
        return None
    from vaultsync.model import STATE_DIR

    db = os.path.join(where, STATE_DIR, "state.db") if where else "the state database"
    text = str(exc)
    if isinstance(exc, sqlite3.OperationalError) and text.lower() == "database is locked":
        return LockHeld(f"local state database {db} is locked by another program (a backup "
                        "tool, an sqlite3 shell?); try again when it lets go")
    what = _SQLITE_REFUSALS.get(text.lower()) if isinstance(exc, sqlite3.OperationalError) \
        else None
    if what is not None:
        return LocalFailure(f"{what}: {db}: {text}")
    if isinstance(exc, sqlite3.OperationalError):
        return None  # a query that is wrong: a bug
    return LocalFailure(f"local state database is damaged: {db}: {text}; move it aside "
                        "and run again (the vault re-joins the repository)")


def _network(exc: BaseException) -> bool:
    """A socket-level error (no disk involved) that a store should have converted."""
    if isinstance(exc, BrokenPipeError):  # more likely our own stdout than a socket
        return False
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    import socket
    import ssl

    return isinstance(exc, (socket.gaierror, socket.herror, ssl.SSLError))


def classify(exc: BaseException, where: str | None = None) -> VaultsyncError:
    """Whatever escapes a command, as the error it is reported as (the exit-code policy).

    - a `VaultsyncError` is itself;
    - KeyboardInterrupt (Ctrl-C, and SIGTERM, which the CLI turns into one) is `Interrupted`;
    - an OSError from a disk that refused us (full, read-only, permission, I/O error) is a
      `LocalFailure` naming the path, or `where` (the vault) when the error has none: every
      store turns its own disk's errors into `RemoteError`s, so what reaches here is local;
    - SQLite's "database or disk is full", "disk I/O error" and the like are a
      `LocalFailure` naming `where`'s state.db;
    - a network error that escaped a store is `RemoteUnreachable`;
    - anything else is `Unexpected` (exit 70): one line on stderr; the CLI appends the
      traceback to the --log-file, or writes it to a crash log in
      `$XDG_STATE_HOME/vaultsync/log/` (by default `~/.local/state/vaultsync/log/`),
      and the line says which.
    """
    if isinstance(exc, VaultsyncError):
        return exc
    if isinstance(exc, KeyboardInterrupt):
        return Interrupted("interrupted")
    if _network(exc):
        return RemoteUnreachable(f"network error: {type(exc).__name__}: {exc}")
    if isinstance(exc, OSError):
        local = _local(exc, where)
        if local is not None:
            return local
    sqlite_failure = _sqlite(exc, where)
    if sqlite_failure is not None:
        return sqlite_failure
    return Unexpected(exc)
