"""The repository behind a URL: one function opens it for every command."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from vaultsync.chunking import ChunkerParams
from vaultsync.errors import UsageError
from vaultsync.repository.format import DEFAULT_PACK_SIZE, RepoFormat
from vaultsync.repository.repo import ObjectCache, Repository
from vaultsync.store.base import Store
from vaultsync.store.counting import CountingStore, Traffic
from vaultsync.store.retry import RetryStore
from vaultsync.store.url import open_store


@dataclass
class Remote:
    """An open repository, its store (counted and retried) and the traffic so far;
    `created`: `open_repository(create=True)` made a new one."""

    store: Store
    repo: Repository
    traffic: Traffic
    created: bool = False

    def close(self) -> None:
        try:
            self.repo.close()
        finally:
            self.store.close()


def open_repository(url: str, options: dict[str, str] | None = None, *,
                    cache: ObjectCache | None = None, create: bool = False,
                    before: Callable[[str], object] | None = None) -> Remote:
    """Open the repository at `url` (with `create`, make one where there is none, its
    parameters from the environment). `before(url)` runs once the store is reachable
    and before anything is read or written (e.g. a check that the remote is not inside
    the vault). The caller closes the result."""
    store, traffic = open_remote(url, options)
    try:
        if before is not None:
            before(url)
        if create and not (store.exists() and store.stat("vaultsync.json") is not None):
            repo = Repository.create(store, new_format_from_env(), cache)
            return Remote(store, repo, traffic, created=True)
        return Remote(store, Repository.open(store, cache=cache,
                                             transfers=transfers_setting()), traffic)
    except BaseException:
        store.close()
        raise


def transfers_setting() -> int | None:
    """VAULTSYNC_TRANSFERS: parallel pack uploads and downloads (default: what the store
    says suits it: 8 for S3, 4 for WebDAV, SFTP and directories)."""
    value = os.environ.get("VAULTSYNC_TRANSFERS", "")
    if not value:
        return None
    if not value.isdigit() or not 1 <= int(value) <= 32:
        raise UsageError("VAULTSYNC_TRANSFERS must be a whole number from 1 to 32")
    return int(value)


def _env_number(name: str, default: float, lo: float, hi: float,
                whole: bool = False) -> float:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = float(int(value)) if whole else float(value)
    except ValueError:
        number = lo - 1
    if not lo <= number <= hi:  # NaN fails this too
        kind = "whole number" if whole else "number"
        raise UsageError(f"{name} must be a {kind} from {lo:g} to {hi:g}, not {value!r}")
    return number


def open_remote(url: str, options: dict[str, str] | None = None) -> tuple[Store, Traffic]:
    """The store behind `url`, counted (every attempt) and retried on transient errors
    (VAULTSYNC_RETRY_ATTEMPTS, default 6; VAULTSYNC_RETRY_SECONDS, default 60)."""
    attempts = int(_env_number("VAULTSYNC_RETRY_ATTEMPTS", 6, 1, 100, whole=True))
    seconds = _env_number("VAULTSYNC_RETRY_SECONDS", 60, 0, 3600)
    counting = CountingStore(open_store(url, options))
    retry = RetryStore(counting, attempts=attempts, max_elapsed=seconds,
                       base_delay=min(0.25, seconds / 10))
    return retry, counting.traffic


def new_format_from_env() -> RepoFormat:
    """Repository parameters for `init`; VAULTSYNC_PACK_SIZE and VAULTSYNC_CHUNK_{MIN,AVG,MAX}
    tune them (tests shrink them so small data spans several packs and chunks).

    Each is checked against exactly what every later command accepts (`checked_format`:
    the chunker's rules, and `decode_format` reading the result back), so a bad value is
    one usage error before anything is created, never a traceback nor a repository that
    no command can open."""
    from vaultsync.repository.format import checked_format

    def env_bytes(name: str, default: int) -> int:
        value = os.environ.get(name, "").strip()
        if not value:
            return default
        if not value.isascii() or not value.isdigit():
            raise UsageError(f"{name} must be a whole number of bytes, not {value!r}")
        return int(value)

    defaults = ChunkerParams()
    try:
        return checked_format(env_bytes("VAULTSYNC_CHUNK_MIN", defaults.min_size),
                              env_bytes("VAULTSYNC_CHUNK_AVG", defaults.avg_size),
                              env_bytes("VAULTSYNC_CHUNK_MAX", defaults.max_size),
                              env_bytes("VAULTSYNC_PACK_SIZE", DEFAULT_PACK_SIZE))
    except ValueError as exc:
        which, rule = exc.args
        names = {"pack_size": "VAULTSYNC_PACK_SIZE", "chunker": "VAULTSYNC_CHUNK_MIN/AVG/MAX"}
        raise UsageError(f"{names[which]} {rule}") from None
