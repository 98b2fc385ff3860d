"""`vaultsync watch`: the command (the loop is engine/watch.py). Registered on the app by
`vaultsync.cli.app`; loads the engine and watchdog only when it runs."""

from __future__ import annotations

from typing import Annotated

import typer

from vaultsync.cli.app import command, here
from vaultsync.cli.output import emit_json_line, err, print_report


@command
def watch(
    debounce: Annotated[float, typer.Option(
        "--debounce", min=0, metavar="SECONDS",
        help="Sync once local changes have settled for this long.")] = 2.0,
    max_wait: Annotated[float, typer.Option(
        "--max-wait", min=0, metavar="SECONDS",
        help="Sync at the latest this long after the first unsynced edit, even while "
             "edits go on.")] = 60.0,
    poll: Annotated[float, typer.Option(
        "--poll", min=0.5, metavar="SECONDS",
        help="Ask the remote this often whether another device synced.")] = 60.0,
    backoff: Annotated[float, typer.Option(
        "--backoff", min=0.1, metavar="SECONDS",
        help="After a failed try (remote unreachable, vault locked), wait this long, "
             "doubling each time up to 5 minutes.")] = 5.0,
    max_syncs: Annotated[int | None, typer.Option(
        "--max-syncs", min=1, metavar="N", help="Stop after N syncs (scripts, tests).")] = None,
    exit_after: Annotated[float | None, typer.Option(
        "--exit-after", min=0, metavar="SECONDS",
        help="Stop after this long (scripts, tests).")] = None,
    json_: Annotated[bool, typer.Option(
        "--json", help="One JSON document per sync, one per line (JSON Lines).")] = False,
) -> int:
    """Keep the vault in sync: after local changes settle, and when another device syncs.

    Runs until Ctrl-C or SIGTERM (exit 130). Ends early with the exit code of a sync that
    needs a person (4 safety stop, 5 damaged repository, 7 local disk, 2 usage); keeps
    going on conflicts (1), and retries an unreachable remote or a locked vault."""
    from vaultsync.engine.report import Report
    from vaultsync.engine.sync import sync as do_sync
    from vaultsync.engine.watch import RemoteHeads, WatchOptions
    from vaultsync.engine.watch import watch as do_watch
    from vaultsync.errors import VaultsyncError

    root = here()
    heads = RemoteHeads(root)

    def on_sync(result: Report | VaultsyncError) -> None:
        if isinstance(result, VaultsyncError):
            err(f"vaultsync: {result.message}")
        elif json_:
            emit_json_line(result.to_json())
        else:
            print_report(result, False)

    try:
        return do_watch(root, lambda: do_sync(root), heads, on_sync,
                        WatchOptions(debounce=debounce, max_wait=max_wait, poll=poll,
                                     backoff=backoff, max_syncs=max_syncs,
                                     exit_after=exit_after))
    finally:
        heads.close()
