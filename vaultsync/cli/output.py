"""Printing results (stdout) and errors (stderr). `--json` prints one document."""

from __future__ import annotations

import json
import sys

from vaultsync.engine.report import Report


def out(line: str = "") -> None:
    sys.stdout.write(line + "\n")


def err(line: str) -> None:
    sys.stderr.write(line + "\n")


def emit_json(doc: object) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def short(sid: str | None) -> str:
    return sid[:12] if sid else "none"


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
            f"{len(report.deleted)} deleted, {report.new_chunks} new chunks in "
            f"{report.packs} pack(s)")
    elif cmd in ("pull", "clone"):
        out(f"{'cloned' if cmd == 'clone' else 'pulled'} snapshot {short(report.snapshot)}: "
            f"{len(report.downloaded)} written, {len(report.deleted)} deleted")
    elif cmd == "sync":
        verb = "would sync" if any(n.startswith("dry run") for n in report.notices) else "synced"
        out(f"{verb} to snapshot {short(report.snapshot)}: {len(report.uploaded)} up, "
            f"{len(report.downloaded)} down, {len(report.deleted)} deleted, "
            f"{len(report.moved)} moved, {len(report.conflicts)} conflict(s)")
    elif cmd in ("restore", "checkout"):
        out(f"{cmd}: {len(report.downloaded)} file(s) written from snapshot "
            f"{short(report.snapshot)}")
    if verbose:
        for p in report.uploaded:
            out(f"  up      {p}")
        for p in report.downloaded:
            out(f"  down    {p}")
        for p in report.deleted:
            out(f"  delete  {p}")
        for src, dst in report.moved:
            out(f"  move    {src} -> {dst}")
    for path, copy in report.conflicts:
        out(f"conflict: {path}: the other version is kept as {copy}")
    for path, reason in report.skipped:
        out(f"skipped: {path} ({reason})")
    return report.exit_code
