"""`vaultsync watch`: sync when local changes settle and when another device pushed.

- Local changes come from the filesystem's own notifications (watchdog: inotify on
  Linux, FSEvents on macOS, ReadDirectoryChangesW on Windows); nothing polls the disk.
  A sync starts once no change came for `debounce` seconds, or `max_wait` seconds after
  the first change it has not synced (an editor saving every second never settles).
  Changes inside `.vaultsync/`, vaultsync's own temporary files and paths the ignore
  rules exclude are not changes (an edit of the rules is). A sync's own writes do
  notify: after a sync that saw changes arrive meanwhile, one more sync runs (it finds
  nothing to do when they were its own, and writes nothing, so nothing follows).
- The remote is asked every `poll` seconds for its heads (one LIST plus a tiny GET per
  device); a sync starts when they differ from those after the last sync.
- Syncs never overlap: one loop runs them, each holding the vault lock as any sync does
  (a cron sync holding it makes this one wait and retry).
- A remote that cannot be reached, or a vault another run holds, is retried with
  exponential backoff (`backoff`, 5 s by default, doubling to BACKOFF_MAX seconds). A
  safety stop, a damaged repository, a local disk failure or a usage error ends the
  watch with that exit code: a person must look. Conflicts (exit 1) do not.
- A vault folder moved or deleted under it ends the watch (exit 2) at the next poll.
- Ctrl-C or SIGTERM interrupts the loop or the sync under way the way it interrupts a
  sync (temporary files removed), and the watch exits 130.

The loop never prints: it hands each sync's report (or error) to `on_sync`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from vaultsync.engine.ignore import DEVICE_IGNORE_FILE, IGNORE_FILE, IgnoreRules
from vaultsync.engine.remote import Remote
from vaultsync.engine.report import Report
from vaultsync.errors import (
    EXIT_ATTENTION,
    EXIT_LOCKED,
    EXIT_OK,
    EXIT_REMOTE,
    LocalFailure,
    MissingDependency,
    NotAVault,
    VaultsyncError,
)
from vaultsync.model import STATE_DIR, nfc

BACKOFF_MIN = 5.0
BACKOFF_MAX = 300.0
TICK = 0.2  # how often the loop looks at its clock and its flags
RETRY_CODES = (EXIT_REMOTE, EXIT_LOCKED)  # try again later
GOING_ON = (EXIT_OK, EXIT_ATTENTION)  # keep watching


@dataclass
class WatchOptions:
    debounce: float = 2.0
    max_wait: float = 60.0  # edits that never settle are synced this long after the first
    poll: float = 60.0
    backoff: float = BACKOFF_MIN  # first wait after a failed try (doubles, to BACKOFF_MAX)
    max_syncs: int | None = None  # stop after this many syncs (scripts, tests)
    exit_after: float | None = None  # stop after this many seconds (scripts, tests)


@dataclass
class _Changes:
    """What the notifier saw, shared with its thread."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    first: float | None = None  # when the oldest change not yet synced came (monotonic)
    last: float | None = None  # when the newest change came
    count: int = 0

    def saw(self, now: float) -> None:
        with self.lock:
            if self.first is None:
                self.first = now
            self.last = now
            self.count += 1

    def take(self) -> tuple[float | None, float | None, int]:
        with self.lock:
            return self.first, self.last, self.count

    def syncing(self) -> int:
        """A sync starts: the changes so far are its to find; returns their count."""
        with self.lock:
            self.first = None
            return self.count


def counts(path: str, root: str, rules: IgnoreRules | None = None,
           is_dir: bool = False) -> bool:
    """Whether a change at `path` is a change of the vault: not of vaultsync's own state
    or temporary files, nor (with `rules`) of a path they ignore, or one inside an
    ignored folder. The rule files themselves count."""
    from vaultsync.engine.scan import is_temp_name

    rel = os.path.relpath(path, root).replace(os.sep, "/")
    parts = rel.split("/")
    if rel == ".":
        return False  # the vault folder itself
    if rel == DEVICE_IGNORE_FILE:
        return True  # this device's own rules: what syncs changed
    if parts[0] in (STATE_DIR, "..") or is_temp_name(parts[-1]):
        return False
    if rules is None or rel == IGNORE_FILE:
        return True
    key = nfc(rel)
    folders = key.split("/")[:-1]
    return not any(rules.ignored("/".join(folders[:i + 1]), True)
                   for i in range(len(folders))) and not rules.ignored(key, is_dir)


def _observer(root: str, changes: _Changes, clock: Callable[[], float]):  # type: ignore[no-untyped-def]
    """A started watchdog observer reporting the vault's changes into `changes`."""
    try:
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer
    except ImportError as exc:
        raise MissingDependency(f"vaultsync watch needs the 'watchdog' package ({exc}); "
                                "pip install watchdog") from None

    rules = [IgnoreRules.load(root)]  # read again when a rule file changes

    class Handler(FileSystemEventHandler):
        def on_any_event(self, event: FileSystemEvent) -> None:
            if event.event_type in ("opened", "closed_no_write"):
                return  # reads (ours included) change nothing
            if event.is_directory and event.event_type == "modified":
                return  # a folder's own times: each entry made or removed in it has its event
            paths = [os.fsdecode(p) for p in
                     (event.src_path, getattr(event, "dest_path", "") or "") if p]
            rel = {os.path.relpath(p, root).replace(os.sep, "/") for p in paths}
            if rel & {IGNORE_FILE, DEVICE_IGNORE_FILE}:
                try:
                    rules[0] = IgnoreRules.load(root)
                except VaultsyncError:
                    pass  # the sync reads them too, and says what is wrong
            if any(counts(p, root, rules[0], event.is_directory) for p in paths):
                changes.saw(clock())

    observer = Observer()
    try:
        observer.schedule(Handler(), root, recursive=True)
        observer.daemon = True
        observer.start()
    except OSError as exc:  # inotify: ENOSPC for too many folders, EMFILE for instances
        raise LocalFailure(
            f"local vault folder {root} cannot be watched ({exc.strerror or exc}): on Linux "
            "the limit is fs.inotify.max_user_watches (or max_user_instances); raise it, "
            "or sync from cron or a timer instead") from None
    return observer


def watch(root: str, sync: Callable[[], Report], heads: Callable[[], dict[str, str]],
          on_sync: Callable[[Report | VaultsyncError], None],
          options: WatchOptions | None = None,
          clock: Callable[[], float] = time.monotonic,
          sleep: Callable[[float], None] = time.sleep) -> int:
    """Watch the vault at `root` until stopped; returns the exit code to end with.
    `sync()` runs one sync; `heads()` reads the remote's heads (device -> snapshot)."""
    opts = options or WatchOptions()
    root = os.path.abspath(root)
    changes = _Changes()
    observer = _observer(root, changes, clock)
    started = clock()
    syncs = 0
    known: dict[str, str] | None = None  # the remote's heads after the last sync
    next_poll = started  # a first sync right away: whatever happened while not watching
    wanted = True
    seen = 0  # changes counted when the last sync started
    backoff, retry_at = 0.0, 0.0
    try:
        while True:
            now = clock()
            if opts.exit_after is not None and now - started >= opts.exit_after:
                return EXIT_OK
            if opts.max_syncs is not None and syncs >= opts.max_syncs:
                return EXIT_OK
            first, last, count = changes.take()
            if count != seen and last is not None and (
                    now - last >= opts.debounce  # local changes, settled
                    or (first is not None and now - first >= opts.max_wait)):  # or not
                wanted = True
            if now >= next_poll and not wanted and now >= retry_at:
                next_poll = now + opts.poll
                if not os.path.isdir(os.path.join(root, STATE_DIR)):  # moved, deleted
                    gone = NotAVault(f"{root} is no longer a vault (moved or deleted?); "
                                     "the watch ends")
                    on_sync(gone)
                    return gone.exit_code
                try:
                    wanted = heads() != known
                except VaultsyncError as exc:
                    if exc.exit_code not in RETRY_CODES:
                        on_sync(exc)
                        return exc.exit_code
                    backoff = min(BACKOFF_MAX, max(opts.backoff, backoff * 2))
                    retry_at = now + backoff
                    on_sync(exc)
            if not wanted or now < retry_at:
                sleep(TICK)
                continue
            seen = changes.syncing()
            try:
                report = sync()
            except VaultsyncError as exc:  # anything else (a disk failure, a bug) ends it
                error = exc
            else:
                syncs += 1
                wanted, backoff, retry_at = False, 0.0, 0.0
                on_sync(report)
                if report.exit_code not in GOING_ON:
                    return report.exit_code
                try:
                    known = heads()
                except VaultsyncError:
                    known = None  # asked again at the next poll
                next_poll = clock() + opts.poll
                continue
            syncs += 1
            on_sync(error)
            if error.exit_code not in RETRY_CODES:
                return error.exit_code
            backoff = min(BACKOFF_MAX, max(opts.backoff, backoff * 2))
            retry_at = clock() + backoff
    finally:
        observer.stop()
        observer.join(timeout=5)


class RemoteHeads:
    """The heads of the vault's remote, read on each call through one connection kept
    open between calls (opened again after a failure); `close` when done."""

    def __init__(self, root: str) -> None:
        from vaultsync.engine.vault import Vault

        vault = Vault.find(root)
        try:
            self.url, self.options = vault.config.remote, dict(vault.config.remote_options)
        finally:
            vault.close()
        self._remote: Remote | None = None

    def __call__(self) -> dict[str, str]:
        from vaultsync.engine.remote import open_repository

        if self._remote is None:
            self._remote = open_repository(self.url, self.options)
        try:
            return dict(self._remote.repo.read_heads())
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        remote, self._remote = self._remote, None
        if remote is not None:
            remote.close()
