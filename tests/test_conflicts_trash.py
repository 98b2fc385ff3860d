"""Conflicts and trash at hand (issue 12), through the real entry point:

- `vaultsync conflicts [--json]` lists the conflict copies in the vault with both
  versions' devices, times and snapshots, and writes nothing anywhere;
- `vaultsync restore --trash [PATH|ID] [--json]` lists what runs replaced or deleted on
  this device, newest first, and brings a version back through the atomic vault writer,
  keeping whatever it replaces in the trash; it needs no network.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from pathlib import Path

import jsonschema
import pytest

from tests.conftest import REPO_ROOT, Result, run_cli, tree_state, write

SCHEMA = json.loads((REPO_ROOT / "docs" / "json-schema.json").read_text())
T0 = 1_700_000_000  # 2023-11-14T22:13:20Z
T1 = T0 + 100  # laptop's edit: 22:15:00
T2 = T0 + 200  # desk's edit: 22:16:40 (newer: it wins the conflict)


def iso(t: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def check(doc: object, kind: str) -> None:
    jsonschema.validate(doc, {**SCHEMA, "$ref": f"#/$defs/{kind}"})


def cli(*args: str, code: int = 0, cwd: Path | None = None) -> Result:
    r = run_cli(*args, cwd=cwd)
    assert r.code == code, f"{args}: exit {r.code}, wanted {code}\n{r.out}\n{r.err}"
    assert "Traceback" not in r.err
    return r


def one_line_error(r: Result, code: int, pattern: str) -> None:
    assert r.code == code, (r.code, r.out, r.err)
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and re.search(pattern, lines[0]), r.err


def newest_snapshot(vault: Path) -> str:
    return json.loads(cli("log", "--json", cwd=vault).out)[0]["id"]


def fingerprint(root: Path, skip_state: bool = False) -> dict[str, str]:
    """rel -> sha256 of every file below root (the remote, or a vault without .vaultsync)."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if skip_state and rel.split("/")[0] == ".vaultsync":
            continue
        out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "/"
    return out


@pytest.fixture
def devices(tmp_path: Path) -> tuple[Path, Path, Path]:
    """laptop and desk, in sync on Note.md and other.md; returns (laptop, desk, remote)."""
    laptop, desk, remote = tmp_path / "laptop", tmp_path / "desk", tmp_path / "remote"
    write(laptop / "Note.md", "base\n", mtime=T0)
    write(laptop / "sub" / "other.md", "other\n", mtime=T0)
    cli("init", "--remote", str(remote), "--device", "laptop", cwd=laptop)
    cli("sync", cwd=laptop)
    cli("clone", str(remote), str(desk), "--device", "desk")
    return laptop, desk, remote


def make_conflict(laptop: Path, desk: Path) -> tuple[str, str]:
    """laptop and desk both edit Note.md; desk's later edit wins. Returns (laptop's
    snapshot with its edit, desk's snapshot that kept the copy)."""
    write(laptop / "Note.md", "from laptop\n", mtime=T1)
    cli("sync", cwd=laptop)
    first = newest_snapshot(laptop)
    write(desk / "Note.md", "from desk, longer\n", mtime=T2)
    cli("sync", code=1, cwd=desk)  # conflict kept
    return first, newest_snapshot(desk)


COPY = "Note.conflict-20231114-221500-laptop.md"


# ---- conflicts ----------------------------------------------------------------------------

def test_conflicts_lists_both_versions_with_devices_times_and_snapshots(
        devices: tuple[Path, Path, Path]) -> None:
    laptop, desk, _ = devices
    laptops, desks = make_conflict(laptop, desk)
    cli("sync", cwd=laptop)  # the copy reaches the laptop too
    for vault in (desk, laptop):  # both devices tell the same story
        doc = json.loads(cli("conflicts", "--json", cwd=vault).out)
        check(doc, "conflicts")
        assert doc == [{
            "path": "Note.md", "copy": COPY,
            "kept": {"snapshot": desks, "device": "desk", "time": doc[0]["kept"]["time"]},
            "original": {"device": "desk", "modified": iso(T2), "size": 18,
                         "snapshot": desks, "synced": doc[0]["kept"]["time"]},
            "other": {"device": "laptop", "modified": iso(T1), "size": 12,
                      "snapshot": laptops, "synced": doc[0]["other"]["synced"]},
        }], vault
        log = {line["id"]: line["time"] for line in json.loads(cli("log", "--json",
                                                                    cwd=vault).out)}
        assert doc[0]["kept"]["time"] == log[desks]
        assert doc[0]["other"]["synced"] == log[laptops]

    res = cli("conflicts", cwd=desk)
    kept = json.loads(cli("conflicts", "--json", cwd=desk).out)[0]["kept"]["time"]
    synced = json.loads(cli("conflicts", "--json", cwd=desk).out)[0]["other"]["synced"]
    assert res.out.splitlines() == [
        f"{COPY}  (kept by desk's sync {desks[:12]} at {kept})",
        f"  Note.md: written by desk, modified {iso(T2)}, 18 B; first in snapshot "
        f"{desks[:12]} at {kept}",
        f"  the copy: written by laptop, modified {iso(T1)}, 12 B; first in snapshot "
        f"{laptops[:12]} at {synced}",
        "1 conflict copy",
    ]


def test_when_the_incoming_version_wins_the_copy_comes_from_the_sync_that_kept_it(
        devices: tuple[Path, Path, Path]) -> None:
    """desk's own edit loses (older mtime): it was in no snapshot before the sync that
    kept it as the copy; the version at Note.md came from the laptop's snapshot."""
    laptop, desk, _ = devices
    write(laptop / "Note.md", "from laptop, newer\n", mtime=T2)
    cli("sync", cwd=laptop)
    laptops = newest_snapshot(laptop)
    write(desk / "Note.md", "desk\n", mtime=T1)
    cli("sync", code=1, cwd=desk)
    desks = newest_snapshot(desk)
    doc = json.loads(cli("conflicts", "--json", cwd=desk).out)
    check(doc, "conflicts")
    assert [(d["copy"], d["kept"]["snapshot"], d["kept"]["device"]) for d in doc] == [
        ("Note.conflict-20231114-221500-desk.md", desks, "desk")]
    assert (doc[0]["original"]["device"], doc[0]["original"]["snapshot"]) == ("laptop", laptops)
    assert doc[0]["original"]["modified"] == iso(T2)
    assert (doc[0]["other"]["device"], doc[0]["other"]["snapshot"]) == ("desk", desks)
    assert doc[0]["other"]["modified"] == iso(T1)


def test_conflicts_writes_nothing_to_the_vault_or_the_remote(
        devices: tuple[Path, Path, Path]) -> None:
    laptop, desk, remote = devices
    make_conflict(laptop, desk)
    write(desk / "sub" / "new.md", "not synced yet\n")  # a local change it must not send
    before_remote, before_vault = fingerprint(remote), fingerprint(desk, skip_state=True)
    head_files = sorted(p.name for p in (remote / "heads").iterdir())
    cli("conflicts", cwd=desk)
    cli("conflicts", "--json", cwd=desk)
    assert fingerprint(remote) == before_remote
    assert fingerprint(desk, skip_state=True) == before_vault
    assert sorted(p.name for p in (remote / "heads").iterdir()) == head_files
    assert not list((desk / ".vaultsync").glob("trash/*"))


def test_a_copy_whose_origin_cannot_be_found_lists_with_unknown(
        devices: tuple[Path, Path, Path]) -> None:
    """A copy never synced (made by hand, or on a device whose history is gone): what its
    name says, and "unknown" for the rest."""
    _, desk, _ = devices
    write(desk / "ideas" / "Idea.conflict-20250101-120000-phone.md", "idea\n")
    write(desk / "ignored" / "X.conflict-20250101-120000-phone.md", "x\n")
    write(desk / ".vaultsyncignore", "ignored/\n")
    doc = json.loads(cli("conflicts", "--json", cwd=desk).out)
    check(doc, "conflicts")
    assert doc == [{
        "path": "ideas/Idea.md", "copy": "ideas/Idea.conflict-20250101-120000-phone.md",
        "kept": {"snapshot": None, "device": None, "time": None},
        "original": {"device": "unknown", "modified": None, "size": None, "snapshot": None,
                     "synced": None},
        "other": {"device": "phone", "modified": "2025-01-01T12:00:00Z", "size": None,
                  "snapshot": None, "synced": None},
    }]
    assert cli("conflicts", cwd=desk).out.splitlines() == [
        "ideas/Idea.conflict-20250101-120000-phone.md  (in no synced snapshot: not synced "
        "yet, or pruned)",
        "  ideas/Idea.md: written by unknown; first snapshot unknown",
        "  the copy: written by phone, modified 2025-01-01T12:00:00Z; first snapshot unknown",
        "1 conflict copy",
    ]


def test_no_conflicts_and_bad_input(devices: tuple[Path, Path, Path], tmp_path: Path) -> None:
    laptop, _, _ = devices
    assert cli("conflicts", cwd=laptop).out == "no conflict copies\n"
    assert json.loads(cli("conflicts", "--json", cwd=laptop).out) == []
    (tmp_path / "plain").mkdir()
    one_line_error(run_cli("conflicts", cwd=tmp_path / "plain"), 2, r"is not a vault")
    res = run_cli("conflicts", "extra", cwd=laptop)  # the parser's own usage error
    assert res.code == 2 and "unexpected extra argument" in res.err
    assert "Traceback" not in res.err


# ---- the trash ----------------------------------------------------------------------------

def trash_two(devices: tuple[Path, Path, Path]) -> Path:
    """desk deletes sub/other.md and edits Note.md; the laptop's sync puts its versions of
    both in its trash. Returns the laptop."""
    laptop, desk, _ = devices
    (desk / "sub" / "other.md").unlink()
    write(desk / "Note.md", "desk edit\n", mtime=T2)
    cli("sync", cwd=desk)
    cli("sync", cwd=laptop)
    assert not (laptop / "sub" / "other.md").exists()
    assert (laptop / "Note.md").read_text() == "desk edit\n"
    return laptop


def test_the_trash_lists_what_a_sync_replaced_or_deleted_newest_first(
        devices: tuple[Path, Path, Path]) -> None:
    laptop = trash_two(devices)
    doc = json.loads(cli("restore", "--trash", "--json", cwd=laptop).out)
    check(doc, "trash")
    assert [(d["path"], d["modified"], d["size"]) for d in doc] == [
        ("Note.md", iso(T0), 5), ("sub/other.md", iso(T0), 6)]
    run = doc[0]["id"].split("/")[0]
    assert doc[1]["id"] == f"{run}/sub/other.md"
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{6}", run)
    assert doc[0]["trashed"] == f"{run[:4]}-{run[4:6]}-{run[6:8]}T{run[9:11]}:{run[11:13]}:" \
                                f"{run[13:15]}Z"
    assert cli("restore", "--trash", cwd=laptop).out.splitlines() == [
        f"{doc[0]['trashed']}         5 B  Note.md  (modified {iso(T0)}; id {run}/Note.md)",
        f"{doc[0]['trashed']}         6 B  sub/other.md  (modified {iso(T0)}; id "
        f"{run}/sub/other.md)",
    ]
    # a later run's entries come first
    write(devices[1] / "Note.md", "desk again\n", mtime=T2 + 10)
    cli("sync", cwd=devices[1])
    (laptop / ".vaultsync" / "trash" / run).rename(laptop / ".vaultsync" / "trash" /
                                                   ("20000101-000000-" + run[-6:]))
    cli("sync", cwd=laptop)
    doc = json.loads(cli("restore", "--trash", "--json", cwd=laptop).out)
    assert [(d["path"], d["size"]) for d in doc] == [("Note.md", 10), ("Note.md", 5),
                                                      ("sub/other.md", 6)]
    assert doc[1]["trashed"] == "2000-01-01T00:00:00Z"


def test_restore_from_the_trash_brings_a_deleted_file_back_and_a_sync_sends_it(
        devices: tuple[Path, Path, Path]) -> None:
    laptop, desk, remote = devices
    trash_two(devices)
    res = cli("restore", "--trash", "sub/other.md", cwd=laptop)
    assert res.out.splitlines()[-1] == "run 'vaultsync sync' to send it to the other devices"
    assert res.out.startswith(f"restored sub/other.md from the trash: the version modified "
                              f"{iso(T0)} (6 B)")
    restored = laptop / "sub" / "other.md"
    assert restored.read_text() == "other\n" and restored.stat().st_mtime == T0
    assert not [p for p in (laptop / ".vaultsync").rglob("*") if "tmp" in p.name]
    trash = json.loads(cli("restore", "--trash", "--json", cwd=laptop).out)
    assert len(trash) == 2, "the trash keeps its copy; nothing was replaced"
    assert "1 up" in cli("sync", cwd=laptop).out
    cli("sync", cwd=desk)
    assert (desk / "sub" / "other.md").read_text() == "other\n"


def test_restore_from_the_trash_keeps_the_version_it_replaces(
        devices: tuple[Path, Path, Path]) -> None:
    laptop = trash_two(devices)
    before = json.loads(cli("restore", "--trash", "--json", cwd=laptop).out)
    note_id = next(d["id"] for d in before if d["path"] == "Note.md")
    res = cli("restore", "--trash", note_id, "--json", cwd=laptop)
    doc = json.loads(res.out)
    check(doc, "report")
    assert doc["command"] == "restore" and doc["downloaded"] == 1 and doc["exit_code"] == 0
    assert (laptop / "Note.md").read_text() == "base\n"
    after = json.loads(cli("restore", "--trash", "--json", cwd=laptop).out)
    replaced = [d for d in after if d not in before]
    assert [(d["path"], d["size"], d["modified"]) for d in replaced] == [
        ("Note.md", 10, iso(T2))]
    kept = laptop / ".vaultsync" / "trash" / replaced[0]["id"]
    assert kept.read_text() == "desk edit\n"
    assert doc["notices"] == [f"the version it replaced is in .vaultsync/trash/"
                              f"{replaced[0]['id']}"]
    # the same version again: nothing to do, nothing new in the trash
    res = cli("restore", "--trash", note_id, cwd=laptop)
    assert res.out == "Note.md already holds that version: nothing to do\n"
    assert json.loads(cli("restore", "--trash", "--json", cwd=laptop).out) == after
    # a path (not an id) takes its newest version: the one just replaced
    cli("restore", "--trash", "Note.md", cwd=laptop)
    assert (laptop / "Note.md").read_text() == "desk edit\n"


def test_restore_from_the_trash_needs_no_network(devices: tuple[Path, Path, Path]) -> None:
    laptop, _, remote = devices
    trash_two(devices)
    shutil.move(remote, str(remote) + ".away")
    one_line_error(run_cli("sync", cwd=laptop), 3, r"does not exist")
    cli("restore", "--trash", cwd=laptop)
    cli("restore", "--trash", "sub/other.md", cwd=laptop)
    assert (laptop / "sub" / "other.md").read_text() == "other\n"


def test_restore_from_the_trash_refuses_bad_input_in_one_line(
        devices: tuple[Path, Path, Path], tmp_path: Path) -> None:
    laptop = trash_two(devices)
    state = tree_state(laptop)
    one_line_error(run_cli("restore", "--trash", "nope.md", cwd=laptop), 2,
                   r"nothing in the trash at nope.md")
    one_line_error(run_cli("restore", "--trash", "sub", cwd=laptop), 2,
                   r"sub is a folder in the trash")
    one_line_error(run_cli("restore", "--trash", "Note.md", "--at", "2020-01-01", cwd=laptop),
                   2, r"takes no --at or --to")
    one_line_error(run_cli("restore", "--trash", "--to", str(tmp_path), cwd=laptop), 2,
                   r"takes no --at or --to")
    one_line_error(run_cli("restore", cwd=laptop), 2, r"restore needs a PATH")
    one_line_error(run_cli("restore", "--trash", "../outside.md", cwd=laptop), 2,
                   r"outside the vault")
    (laptop / "sub" / "other.md").mkdir(parents=True)  # a folder where the file was
    one_line_error(run_cli("restore", "--trash", "sub/other.md", cwd=laptop), 2,
                   r"sub/other.md is a folder now")
    (laptop / "sub" / "other.md").rmdir()
    assert tree_state(laptop) == state
    (tmp_path / "plain").mkdir()
    one_line_error(run_cli("restore", "--trash", cwd=tmp_path / "plain"), 2, r"not a vault")
    empty = tmp_path / "empty"
    write(empty / "a.md", "a\n")
    cli("init", "--remote", str(tmp_path / "r2"), cwd=empty)
    assert cli("restore", "--trash", cwd=empty).out == "the trash is empty\n"
    assert json.loads(cli("restore", "--trash", "--json", cwd=empty).out) == []


def test_restore_at_a_snapshot_keeps_its_contract(devices: tuple[Path, Path, Path]) -> None:
    """`restore PATH --at` is unchanged by --trash (and now takes --json too)."""
    laptop, _, _ = devices
    first = newest_snapshot(laptop)
    write(laptop / "Note.md", "changed\n")
    cli("sync", cwd=laptop)
    res = cli("restore", "Note.md", "--at", first, cwd=laptop)
    assert res.out.splitlines()[-1] == f"restore: 1 file(s) written from snapshot {first[:12]}"
    assert (laptop / "Note.md").read_text() == "base\n"
    doc = json.loads(cli("restore", "Note.md", "--json", cwd=laptop).out)
    check(doc, "report")
    assert os.path.exists(laptop / ".vaultsync" / "trash")
