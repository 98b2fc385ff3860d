"""`vaultsync`: the typer app and the one place where errors become exit codes."""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable
from typing import Annotated

import typer

from vaultsync.cli.failure import record_traceback, run_guard, signalled
from vaultsync.cli.output import (
    emit_json,
    err,
    log_exit,
    name,
    open_log,
    out,
    print_actions,
    print_report,
    short,
    size,
    summary,
)
from vaultsync.errors import (
    EXIT_OK,
    Interrupted,
    NotAVault,
    Unexpected,
    UsageError,
    classify,
)

# The local folder this run works on (the vault, or clone's and checkout's DIR): what a
# local failure without a file name is reported against.
_local_root: list[str] = []


def _working_on(folder: str) -> None:
    _local_root[:] = [os.path.abspath(folder)]


# --wait and --quiet as `_main` read them, for the engine once a command starts
_engine_options: dict[str, float] = {"wait": 0.0, "quiet": False}


def _start_engine() -> None:
    """Give the engine what the global options ask: the lock wait, and progress bars (rich,
    on a terminal). Done as a command starts, not while options are parsed, so that
    `vaultsync sync --help` or a usage error loads neither the engine nor rich."""
    from vaultsync.cli.progress import for_terminal
    from vaultsync.engine import progress
    from vaultsync.engine.vault import set_lock_wait

    set_lock_wait(_engine_options["wait"])
    progress.install(for_terminal(bool(_engine_options["quiet"])))


app = typer.Typer(
    name="vaultsync",
    help="Sync a folder of notes through a content-addressed remote, never losing a version.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    # plain help and usage errors (as click prints them): rendering them with rich would
    # import rich, markdown-it and pygments (~60 ms) before `--help` prints a line
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="List every file action.")]
MaxDeleteOpt = Annotated[float | None, typer.Option(
    "--max-delete", min=0, max=100, metavar="PCT", envvar="VAULTSYNC_MAX_DELETE",
    help="Stop if this device's changes delete more than PCT% of the files "
         "(default 50, or the vault's max_delete option).")]
ForceOpt = Annotated[bool, typer.Option(
    "--force", help="Override the delete and empty-vault safety stops.")]


def command(fn: Callable[..., int]) -> Callable[..., None]:
    """Register a command whose return value is its exit code (taken from its result's
    type: `Report.exit_code`, `VerifyReport.exit_code`, ...). Whatever it raises is
    turned into a code by `errors.classify` in `main`."""

    @functools.wraps(fn)
    def run(*args: object, **kwargs: object) -> None:
        try:
            _start_engine()
            code = fn(*args, **kwargs)
        except KeyboardInterrupt:
            raise Interrupted("interrupted") from None
        if signalled():  # a SIGTERM Python could not raise where it landed
            raise Interrupted("interrupted")
        if code:
            raise typer.Exit(code)

    return app.command()(run)


def _print_version(value: bool) -> None:
    """`--version`: the version and the repository formats, then exit 0 (before any
    other option is acted on, and without loading the engine)."""
    if value:
        from vaultsync import __version__, formats

        out(f"vaultsync {__version__} ({formats.describe()})")
        raise typer.Exit()


@app.callback()
def _main(
    directory: Annotated[str | None, typer.Option(
        "-C", "--directory", envvar="VAULTSYNC_DIR", metavar="DIR",
        help="Run as if started in DIR (like git -C).")] = None,
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", envvar="VAULTSYNC_QUIET",
        help="No progress bars (there are none when stderr is not a terminal).")] = False,
    wait: Annotated[float, typer.Option(
        "--wait", envvar="VAULTSYNC_WAIT", metavar="SECONDS", min=0,
        help="If another run holds the vault, wait up to SECONDS for it (default: exit 6 "
             "at once).")] = 0.0,
    log_file: Annotated[str | None, typer.Option(
        "--log-file", envvar="VAULTSYNC_LOG_FILE", metavar="PATH",
        help="Also append what this run prints, with timestamps, to PATH.")] = None,
    version: Annotated[bool, typer.Option(
        "--version", is_eager=True, callback=_print_version,
        help="Print the version and the repository formats it reads and writes, and "
             "exit.")] = False,
) -> None:
    """Sync a folder of notes through a content-addressed remote, never losing a version.

    Options can also come from the environment: VAULTSYNC_DIR, VAULTSYNC_QUIET,
    VAULTSYNC_WAIT, VAULTSYNC_LOG_FILE (and VAULTSYNC_MAX_DELETE for sync)."""
    if log_file:
        open_log(log_file)
    _engine_options.update(wait=wait, quiet=quiet)
    if directory is not None:
        if not os.path.isdir(directory):
            what = "is not a folder" if os.path.exists(directory) else "does not exist"
            raise NotAVault(f"{os.path.abspath(directory)} {what}")
        os.chdir(directory)
    _working_on(here())


def here() -> str:
    """The folder a command works on (after -C)."""
    try:
        return os.getcwd()
    except FileNotFoundError:
        raise NotAVault("the current folder no longer exists (was it deleted?); cd into a "
                        "vault or pass -C DIR") from None


@command
def init(
    remote: Annotated[str | None, typer.Option(help="Remote URL or path.")] = None,
    device: Annotated[str | None, typer.Option(help="A name for this device.")] = None,
) -> int:
    """Make the current folder a vault (creating or joining the repository at --remote)."""
    from vaultsync.engine.oneway import init as do_init

    return print_report(do_init(here(), remote, device), False)


@command
def clone(
    url: Annotated[str, typer.Argument(help="Remote URL or path.")],
    directory: Annotated[str, typer.Argument(metavar="DIR", help="New folder for the vault.")],
    device: Annotated[str | None, typer.Option(help="A name for this device.")] = None,
    json_: JsonOpt = False,
) -> int:
    """New device: fetch the vault at URL into DIR."""
    from vaultsync.engine.oneway import clone as do_clone

    _working_on(directory)
    return print_report(do_clone(url, directory, device), json_)


@command
def sync(
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Show what would happen; write nothing anywhere.")] = False,
    max_delete: MaxDeleteOpt = None,
    force: ForceOpt = False,
    json_: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> int:
    """Two-way sync: merge local and remote changes, keeping conflicts side by side."""
    from vaultsync.engine.sync import sync as do_sync

    return print_report(do_sync(here(), dry_run=dry_run, max_delete=max_delete,
                                force=force), json_, verbose)


@command
def push(
    max_delete: MaxDeleteOpt = None,
    force: ForceOpt = False,
    json_: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> int:
    """One way: the remote takes local state; local files are never touched."""
    from vaultsync.engine.oneway import push as do_push

    return print_report(do_push(here(), max_delete=max_delete, force=force), json_,
                        verbose)


@command
def pull(json_: JsonOpt = False, verbose: VerboseOpt = False) -> int:
    """One way: local takes remote state; the remote is never written."""
    from vaultsync.engine.oneway import pull as do_pull

    return print_report(do_pull(here()), json_, verbose)


@command
def status(
    json_: JsonOpt = False,
    ignored: Annotated[bool, typer.Option(
        "--ignored", help="Also list the paths the ignore rules exclude.")] = False,
) -> int:
    """What changed locally and remotely since the last sync, and what sync would do.

    Exits 1 when something needs a look: paths the scan could not read, or a sync that
    would stop."""
    from vaultsync.engine.oneway import status as do_status
    from vaultsync.engine.report import attention

    st = do_status(here())
    code = attention(st.skipped, st.stop)
    if json_:
        emit_json(st.to_json())
        return code
    for notice in st.notices:
        out(notice)
    out(f"base snapshot {short(st.base)}")
    for label, paths in (("added", st.local_added), ("changed", st.local_changed),
                         ("deleted", st.local_deleted)):
        for p in paths:
            out(f"  {label:8}{name(p)}")
    if not (st.local_added or st.local_changed or st.local_deleted):
        out("no local changes")
    for device in st.remote_ahead:
        out(f"remote: new changes from {name(device)}")
    if st.stop:
        out(f"sync would stop: {st.stop}")
    elif st.plan is not None and not st.plan.up_to_date:
        plan = st.plan
        out(f"sync would: {summary(plan)}")
        print_actions(plan)
        for path, copy in plan.conflicts:
            out(f"  conflict {name(path)} (other version kept as {name(copy)})")
    for path, reason in st.skipped:
        out(f"skipped: {name(path)} ({reason})")
    if ignored:
        for path in st.ignored:
            out(f"ignored: {name(path)}")
    return code


@command
def log(
    path: Annotated[str | None, typer.Argument(help="Show this file's versions.")] = None,
    json_: JsonOpt = False,
) -> int:
    """Snapshots, newest first, or one file's versions."""
    from vaultsync.engine.history import log as do_log

    lines, note = do_log(here(), path)
    if json_:
        emit_json([line.to_json() for line in lines])
        return EXIT_OK
    if not lines:
        out("no snapshots yet")
    for line in lines:
        doc = line.to_json()
        extra = (f"{line.entry.size} bytes" if line.entry is not None
                 else f"{doc['files']} files, {doc['size']} bytes")
        out(f"{short(line.id)}  {doc['time']}  {name(str(doc['device'])):<16} {extra}")
    if note:
        out(note)
    return EXIT_OK


@command
def restore(
    path: Annotated[str | None, typer.Argument(
        help="File or folder to restore ('.' for all); with --trash, a file or a trash "
             "id.")] = None,
    at: Annotated[str | None, typer.Option(
        help="Snapshot id or time (default: last sync).")] = None,
    to: Annotated[str | None, typer.Option(help="Write here instead of into the vault.")] = None,
    trash: Annotated[bool, typer.Option(
        "--trash", help="From this device's trash (what a sync replaced or deleted here): "
                        "without PATH, list it, newest first.")] = False,
    json_: JsonOpt = False,
) -> int:
    """Bring back a file or folder as it was at a snapshot or time, or a version a sync
    replaced or deleted on this device (--trash; no network needed). Whatever the restored
    version replaces goes to the trash first."""
    if trash:
        if at is not None or to is not None:
            raise UsageError("--trash restores into the vault from this device's trash: "
                             "it takes no --at or --to")
        return _restore_from_trash(path, json_)
    if path is None:
        raise UsageError("restore needs a PATH (or --trash to list what syncs replaced or "
                         "deleted here)")
    from vaultsync.engine.history import restore as do_restore

    return print_report(do_restore(here(), path, at, to), json_)


def _restore_from_trash(path: str | None, json_: bool) -> int:
    from vaultsync.engine import trash

    if path is None:
        items = trash.listing(here())
        if json_:
            emit_json([item.to_json() for item in items])
            return EXIT_OK
        if not items:
            out("the trash is empty")
        for item in items:
            doc = item.to_json()
            out(f"{doc['trashed']}  {size(item.size):>10}  {name(item.path)}  (modified "
                f"{doc['modified']}; id {name(item.id)})")
        return EXIT_OK
    report, item = trash.restore(here(), path)
    if json_:
        emit_json(report.to_json())
        return report.exit_code
    if report.downloaded:
        doc = item.to_json()
        out(f"restored {name(item.spelled)} from the trash: the version modified "
            f"{doc['modified']} ({size(item.size)}) that a run put there at {doc['trashed']}")
    for notice in report.notices:
        out(notice)
    if report.downloaded:
        out("run 'vaultsync sync' to send it to the other devices")
    return report.exit_code


@command
def conflicts(json_: JsonOpt = False) -> int:
    """The conflict copies in the vault, with both versions: the device that wrote each,
    when, and the snapshot it first synced in. Reads only; writes nothing anywhere."""
    from vaultsync.engine.copies import conflicts as do_conflicts
    from vaultsync.engine.copies import iso

    found, note = do_conflicts(here())
    if json_:
        emit_json([c.to_json() for c in found])
        return EXIT_OK
    for c in found:
        by = (f"kept by {name(c.kept_by or '')}'s sync {short(c.kept_in)} at {iso(c.kept_ns)}"
              if c.kept_in else "in no synced snapshot: not synced yet, or pruned")
        out(f"{name(c.copy)}  ({by})")
        for label, v in ((c.path, c.original), ("the copy", c.other)):
            d = v.to_json()
            when = f", modified {d['modified']}" if d["modified"] else ""
            bytes_ = f", {size(v.size)}" if v.size is not None else ""
            first = (f"first in snapshot {short(v.snapshot)} at {d['synced']}" if v.snapshot
                     else "first snapshot unknown")
            out(f"  {name(label)}: written by {name(v.device)}{when}{bytes_}; {first}")
    out(f"{len(found)} conflict cop{'y' if len(found) == 1 else 'ies'}" if found
        else "no conflict copies")
    if note:
        out(note)
    return EXIT_OK


@command
def checkout(
    url: Annotated[str, typer.Argument(help="Remote URL or path.")],
    directory: Annotated[str, typer.Argument(metavar="DIR", help="New or empty folder.")],
    at: Annotated[str | None, typer.Option(help="Snapshot id or time (default: newest).")] = None,
    json_: JsonOpt = False,
) -> int:
    """Read-only export of a snapshot (CI fixtures): no device, no writes to the remote."""
    from vaultsync.engine.history import checkout as do_checkout

    _working_on(directory)
    return print_report(do_checkout(url, directory, at), json_)


@command
def verify(
    read_data: Annotated[float, typer.Option(
        "--read-data", min=0, max=100, metavar="PCT",
        help="Also read this percentage of the packs and check every blob.")] = 0.0,
    json_: JsonOpt = False,
) -> int:
    """Check the repository's integrity (structure always, data with --read-data)."""
    from vaultsync.engine.history import verify_remote

    rep = verify_remote(here(), read_data)
    if json_:
        emit_json(rep.to_json())
    else:
        for problem in rep.problems:
            out(f"problem: {problem}")
        out(f"{'ok' if not rep.problems else f'{len(rep.problems)} problem(s)'}: "
            f"{rep.snapshots} snapshots, {rep.trees} trees, {rep.files} file versions, "
            f"{rep.chunks} chunks, {rep.packs} packs ({rep.packs_read} read in full)")
    return rep.exit_code


@command
def prune(
    keep_last: Annotated[int | None, typer.Option(
        min=0, max=10**6, metavar="N", help="Keep the N newest snapshots.")] = None,
    keep_within: Annotated[str | None, typer.Option(
        metavar="DURATION", help="Keep every snapshot this close to the newest (30d, 12h).")
    ] = None,
    keep_daily: Annotated[int | None, typer.Option(
        min=0, max=10**6, metavar="N", help="Keep the newest snapshot of each of N days.")
    ] = None,
    keep_weekly: Annotated[int | None, typer.Option(
        min=0, max=10**6, metavar="N", help="Keep the newest snapshot of each of N weeks.")
    ] = None,
    keep_monthly: Annotated[int | None, typer.Option(
        min=0, max=10**6, metavar="N", help="Keep the newest snapshot of each of N months.")
    ] = None,
    grace: Annotated[str | None, typer.Option(
        metavar="DURATION",
        help="Delete only what an earlier prune named at least this long ago (default "
             "24h; 0s: both phases now, for a repository one device uses).")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Say what would go and what it frees; write nothing.")] = False,
    json_: JsonOpt = False,
) -> int:
    """Forget snapshots by a retention policy and delete what nothing kept needs (two
    phases, safe beside syncs on other devices). Options not given come from the prune table in
    config.toml; every head and every merge base the heads need are always kept."""
    from vaultsync.engine.prune import PruneArgs
    from vaultsync.engine.prune import prune as do_prune

    outcome = do_prune(here(), PruneArgs(keep_last, keep_within, keep_daily, keep_weekly,
                                         keep_monthly, grace, dry_run))
    if json_:
        emit_json(outcome.to_json())
        return EXIT_OK
    r, dry = outcome.report, outcome.dry_run
    for notice in r.notices:
        out(notice)
    out(f"{len(r.kept)} of {r.snapshots} snapshots kept ({outcome.policy.describe()}); "
        f"{len(r.forgotten)} {'would be ' if dry else ''}forgotten")
    if r.deleted_snapshots or r.deleted_packs or r.deleted_segments:
        out(f"{'would delete' if dry else 'deleted'} {len(r.deleted_snapshots)} snapshot(s), "
            f"{r.deleted_packs} pack(s), {r.deleted_segments} index segment(s), copying "
            f"{r.repacked_blobs} live blob(s) ({size(r.repacked_bytes)}) out first: "
            f"{size(r.freed_bytes)} {'would be ' if dry else ''}freed")
    if r.temps_removed:
        out(f"{r.temps_removed} leftover temporary upload(s) "
            f"{'would be ' if dry else ''}removed")
    for rid, due in r.pending:
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(due / 1e9))
        frees = f" (about {size(r.planned_bytes)})" if rid == r.record else ""
        out(f"pending: record {short(rid)} names what goes{frees}; a prune after {when} "
            "deletes it")
    if outcome.dry_run:
        out("dry run: nothing was written")
    return EXIT_OK


# commands kept in modules of their own (registered on `app` as they are imported)
from vaultsync.cli import watchcmd  # noqa: E402, F401


def main(argv: list[str] | None = None) -> None:
    """Entry point: typer reports its own usage errors (exit 2); anything else a run
    raises becomes one line on stderr and the code `errors.classify` gives it. SIGTERM
    takes the Ctrl-C path (130, temporary files removed first); a bug's traceback goes to
    a log (exit 70), never to the terminal."""
    with run_guard():
        try:
            app(args=argv, prog_name="vaultsync")
        except SystemExit as exc:
            code = exc.code
            try:
                log_exit(code if isinstance(code, int) else (0 if code is None else 1))
            except KeyboardInterrupt as late:  # a SIGTERM before the process is done
                _fail(late)
                return
            raise
        except BaseException as exc:  # noqa: BLE001 - the one place that maps them all
            _fail(exc)


def entry() -> None:
    """The console script and `python -m vaultsync`: `main`, then SIGTERM ignored for
    the last moments of the process, so a run that finished (and printed its result)
    exits with its own code, never 143."""
    import signal

    try:
        main()
    except KeyboardInterrupt:  # a SIGTERM while `main` was handing back its code
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _fail(Interrupted("interrupted"))
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _fail(exc: BaseException) -> None:
    error = classify(exc, _local_root[0] if _local_root else None)
    if isinstance(error, Unexpected):
        error.logged_at(record_traceback(exc))
    err(f"vaultsync: {error.message}")
    log_exit(error.exit_code)
    sys.exit(error.exit_code)
