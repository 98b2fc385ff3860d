"""Every error vaultsync reports, each with its exit code.

The CLI maps any `VaultsyncError` to one line on stderr and `exit_code`. Nothing else in
the package decides exit codes. Messages must never contain secrets: stores build them
from display URLs, which carry no credentials.
"""

from __future__ import annotations

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


class ObjectNotFound(IntegrityError):
    """An object that the repository references is missing."""

    def __init__(self, name: str) -> None:
        super().__init__(f"object {name} is missing from the repository")
        self.name = name


class LockHeld(VaultsyncError):
    """Another vaultsync run holds this vault's lock."""

    exit_code = EXIT_LOCKED


class LocalFailure(VaultsyncError):
    """The vault's own disk failed: full, read-only, unwritable, or a folder unreadable as
    a whole. Nothing was committed; the message names the path and says "local"."""

    exit_code = EXIT_LOCAL


class Interrupted(VaultsyncError):
    """The run was interrupted (Ctrl-C or SIGTERM)."""

    exit_code = EXIT_INTERRUPTED


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
