"""Hostile-user findings against the "Edges" contract (design.md) after issue 9.

Each test is a reproduction through the real CLI, two or three devices syncing through
a directory remote. They fail on the branch they were written against (main 297d70b).
Tests that mount file systems or drop CAP_DAC_OVERRIDE need root, as CI has.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT, run_cli, tree_state, write
from tests.edge_env import remount, tmpfs


def two_devices(tmp_path: Path, remote: Path | None = None,
                b_root: Path | None = None) -> tuple[Path, Path, Path]:
    a = tmp_path / "A"
    remote = remote or tmp_path / "R"
    b = b_root or tmp_path / "B"
    for i in range(1, 5):
        write(a / f"n{i}.md", f"n{i}\n")
    write(a / "d/x.md", "x\n")
    write(a / "d/y.md", "y\n")
    assert run_cli("init", "--remote", str(remote), "--device", "laptop", cwd=a).code == 0
    assert run_cli("sync", cwd=a).code == 0
    res = run_cli("clone", str(remote), str(b), "--device", "desktop")
    assert res.code == 0, res.err
    return a, remote, b


def sync(vault: Path, *args: str):  # type: ignore[no-untyped-def]
    return run_cli("sync", *args, cwd=vault)


def files(vault: Path) -> dict[str, bytes]:
    return {k: v[0] for k, v in tree_state(vault).items()}


def summary(vault: Path, *args: str) -> dict:  # type: ignore[type-arg]
    res = run_cli(*args, "--json", cwd=vault)
    assert res.code in (0, 1), (res.code, res.out, res.err)
    return json.loads(res.out)


# ---- a remote restored from an older copy (a backup, a rolled-back bucket) -----------------

def test_a_rolled_back_remote_never_leaves_a_broken_repository(tmp_path: Path) -> None:
    """The remote directory is restored from an older copy. A's last snapshot is gone from
    it. A says "already up to date" (its edit is on no remote), then commits a snapshot
    whose parent is missing; from then on B fails every sync with exit 5 ("object
    snapshots/... is missing") and no new device can clone. A's own `verify` says ok."""
    a, remote, b = two_devices(tmp_path)
    shutil.copytree(remote, tmp_path / "R.bak")
    write(a / "n1.md", "A v2\n")
    assert sync(a).code == 0
    shutil.rmtree(remote)
    shutil.copytree(tmp_path / "R.bak", remote)  # rolled back: A's snapshot is gone

    assert sync(a).code in (0, 1)  # once said "already up to date" (see the test below)
    write(b / "n1.md", "B v3\n")
    assert sync(b).code in (0, 1)  # A's v2 is back on the remote: a conflict with v3
    assert sync(a).code in (0, 1)
    res = sync(b)
    assert res.code in (0, 1), ("B is stuck after A's next sync", res.code, res.err)
    assert run_cli("verify", "--read-data", "100", cwd=b).code == 0
    res = run_cli("clone", str(remote), str(tmp_path / "C"), "--device", "third")
    assert res.code in (0, 1), (res.code, res.err)
    assert {b"A v2\n", b"B v3\n"} <= set(files(tmp_path / "C").values())


def test_a_rolled_back_remote_is_not_up_to_date(tmp_path: Path) -> None:
    """After the rollback A's latest snapshot (and its edit) is on no remote; A's next
    sync says 'already up to date', exit 0, and B never sees A's edit until A changes
    something else."""
    a, remote, b = two_devices(tmp_path)
    shutil.copytree(remote, tmp_path / "R.bak")
    write(a / "n1.md", "A v2\n")
    assert sync(a).code == 0
    shutil.rmtree(remote)
    shutil.copytree(tmp_path / "R.bak", remote)
    res = sync(a)
    assert "up to date" not in res.out, res.out
    assert sync(b).code in (0, 1)
    assert (b / "n1.md").read_text() == "A v2\n"


def test_verify_checks_the_remote_not_the_local_cache(tmp_path: Path) -> None:
    """Every snapshot object is deleted from the remote: `verify --read-data 100` on a
    device that has them in its local cache still says 'ok: 2 snapshots', exit 0."""
    a, remote, b = two_devices(tmp_path)
    write(a / "n1.md", "v2\n")
    assert sync(a).code == 0
    for snap in (remote / "snapshots").iterdir():
        snap.unlink()
    res = run_cli("verify", "--read-data", "100", cwd=a)
    assert res.code == 5, (res.code, res.out, res.err)


# ---- the summary says what was committed, not what changed on disk -------------------------

def test_a_move_is_reported_as_a_move_not_as_uploads_and_remote_deletes(
        tmp_path: Path) -> None:
    """Moving 4 notes into a folder: the moving device prints '4 up, 4 deleted remotely,
    0 moved' (the other device correctly prints '4 moved'). A user reading '4 deleted
    remotely' has reason to panic; nothing was uploaded or deleted."""
    a, _, b = two_devices(tmp_path)
    for i in range(1, 5):
        (b / "arch").mkdir(exist_ok=True)
        (b / f"n{i}.md").rename(b / "arch" / f"n{i}.md")
    doc = summary(b, "sync")
    assert (doc["moved"], doc["deleted_remotely"], doc["uploaded"]) == (4, 0, 0), doc


def test_a_delete_that_loses_to_an_unseen_edit_is_not_reported_as_deleted(
        tmp_path: Path) -> None:
    """A deletes n1, B edited it meanwhile: the edit wins (right), A gets B's version back,
    but A's summary says deleted_remotely 1. Same for push."""
    a, _, b = two_devices(tmp_path)
    write(b / "n1.md", "B v2\n")
    assert sync(b).code == 0
    (a / "n1.md").unlink()
    doc = summary(a, "sync")
    assert (a / "n1.md").read_text() == "B v2\n"
    assert doc["deleted_remotely"] == 0, doc

    write(b / "n2.md", "B n2 v2\n")
    assert sync(b).code == 0
    (a / "n2.md").unlink()
    doc = summary(a, "push")
    assert sync(b).code == 0 and (b / "n2.md").read_text() == "B n2 v2\n"
    assert doc["deleted_remotely"] == 0, doc


# ---- local faults that end as exit 70 ("a bug") -----------------------------------------

def test_a_state_database_held_by_another_reader_is_not_a_bug(tmp_path: Path) -> None:
    """Any program holding a read transaction on state.db (a backup tool, `sqlite3`
    browsing it) makes sync exit 70 'unexpected error (OperationalError: database is
    locked); this is a bug'. Expected: a clear local failure (7) or 'busy' (6)."""
    a, _, _ = two_devices(tmp_path)
    write(a / "n1.md", "A edit\n")
    db = sqlite3.connect(a / ".vaultsync" / "state.db", isolation_level=None)
    try:
        db.execute("BEGIN")
        db.execute("SELECT count(*) FROM files").fetchone()
        res = sync(a)
    finally:
        db.close()
    assert res.code in (6, 7), (res.code, res.out, res.err)
    assert "bug" not in res.err


def _disk_full_round(tmp_path: Path, size: int) -> tuple[int, str]:
    top = tmp_path / f"s{size}"
    a, remote = top / "A", top / "R"
    for i in range(1, 4):
        write(a / f"n{i}.md", f"n{i}\n")
    assert run_cli("init", "--remote", str(remote), "--device", "laptop", cwd=a).code == 0
    assert sync(a).code == 0
    with tmpfs(top / "Bm", "2m") as mnt:
        b = mnt / "B"
        assert run_cli("clone", str(remote), str(b), "--device", "desktop").code == 0
        write(a / "big.bin", os.urandom(size))
        write(a / "n1.md", "A edit n1\n")
        write(a / "n3.md", "A edit n3\n")
        assert sync(a).code == 0
        write(b / "n2.md", "B edit n2\n")
        write(b / "n1.md", "B edit n1\n")
        (b / "n3.md").unlink()
        write(b / "bbig.bin", os.urandom(300_000))
        res = sync(b)
        remount(mnt, "size=16m")
        assert sync(b).code in (0, 1)
    return res.code, res.err


def test_a_full_disk_while_saving_the_index_is_exit_7_not_a_bug(tmp_path: Path) -> None:
    """The vault's disk fills while state.db records the new index segment: SQLite rolls
    the transaction back itself, the explicit ROLLBACK then raises 'cannot rollback - no
    transaction is active', and the run exits 70 ('a bug') instead of 7 (local disk full).
    The window is some tens of kilobytes wide; a few sizes hit it."""
    seen = {}
    for size in range(1_500_000, 1_580_001, 20_000):
        code, err = _disk_full_round(tmp_path, size)
        seen[size] = (code, err.strip()[:160])
    assert all(code != 70 for code, _ in seen.values()), seen


# ---- exit 7 promises "nothing committed" -------------------------------------------------

NO_OVERRIDE = ["setpriv", "--inh-caps=-dac_override,-dac_read_search",
               "--bounding-set=-dac_override,-dac_read_search", "--"]


def run_as(prefix: list[str], *args: str, cwd: Path):  # type: ignore[no-untyped-def]
    from tests.conftest import Result
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.run([*prefix, sys.executable, "-m", "vaultsync", *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=120)
    return Result(proc.returncode, proc.stdout, proc.stderr)


def heads(remote: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (remote / "heads").iterdir()}


def test_a_folder_it_cannot_write_into_is_not_a_commit_then_exit_7(tmp_path: Path) -> None:
    """A's folder d/ is not writable (0555, e.g. owned by another user); B adds d/new.md
    and edits n2.md. Every `sync` on A commits a new snapshot and head, then fails to
    install d/new.md and exits 7 ('local permission denied'), which design.md defines as
    'nothing committed'; B's edit of n2.md (another folder) never lands on A either, and
    each run adds one more snapshot to the repository. Expected: either exit 7 with the
    remote untouched, or the rest lands and d/new.md is reported as skipped (exit 1)."""
    a, remote, b = two_devices(tmp_path)
    (a / "d").chmod(0o555)
    try:
        write(b / "d/new.md", "B new in d\n")
        write(b / "n2.md", "B n2\n")
        assert sync(b).code == 0
        write(a / "n1.md", "A n1\n")
        before = heads(remote)
        res = run_as(NO_OVERRIDE, "sync", cwd=a)
        if res.code == 7:
            assert heads(remote) == before, ("exit 7 after a commit", res.err)
        else:
            assert res.code == 1, (res.code, res.out, res.err)
            assert (a / "n2.md").read_text() == "B n2\n"
            assert "d/new.md" in res.out
    finally:
        (a / "d").chmod(0o755)


# ---- ignore rules that are taken back ----------------------------------------------------

def test_an_edit_made_while_ignored_elsewhere_is_not_reverted_when_unignored(
        tmp_path: Path) -> None:
    """B ignores d/ (.vaultsync/ignore, 'big attachments on a small laptop'); A edits
    d/y.md; B's syncs rightly leave its old d/y.md alone. B removes the rule: its next
    sync takes the old bytes on its disk for an edit of B's and pushes them, no conflict,
    exit 0; A's sync then overwrites A's edit with the old version (A's edit survives only
    in A's trash). B never saw A's edit: it must land on B, not be reverted."""
    a, _, b = two_devices(tmp_path)
    write(b / ".vaultsync/ignore", "d/\n")
    assert sync(b).code == 0
    write(a / "d/y.md", "A edit y\n")
    assert sync(a).code == 0
    assert sync(b).code == 0
    (b / ".vaultsync/ignore").unlink()
    assert sync(b).code in (0, 1)
    assert sync(a).code in (0, 1)
    assert sync(b).code in (0, 1)
    assert (a / "d/y.md").read_text() == "A edit y\n"
    assert files(a) == files(b)


def test_an_edit_on_both_sides_of_an_ignore_rule_is_a_conflict_when_unignored(
        tmp_path: Path) -> None:
    """Same, with an edit on each side (also seen with the shared .vaultsyncignore): when the
    rule goes, B's edit silently replaces A's (no conflict copy, exit 0)."""
    a, _, b = two_devices(tmp_path)
    write(b / ".vaultsync/ignore", "d/\n")
    assert sync(b).code == 0
    write(b / "d/x.md", "B edit x while ignored\n")
    write(a / "d/x.md", "A edit x\n")
    assert sync(a).code == 0
    assert sync(b).code == 0
    (b / ".vaultsync/ignore").unlink()
    for v in (b, a, b):
        assert sync(v).code in (0, 1)
    assert {b"A edit x\n", b"B edit x while ignored\n"} <= set(files(a).values())
    assert files(a) == files(b)


# ---- restore --to a folder that already holds files ---------------------------------------

def test_restore_to_a_folder_never_silently_moves_its_files_into_another_vaults_trash(
        tmp_path: Path) -> None:
    """`restore . --to ../B` (another device's vault, or any folder) overwrites the files
    there, exit 0, '6 file(s) written', no notice: B's unsynced edit of n1.md is moved into
    A's .vaultsync/trash (emptied after 30 days) and B's next sync sees nothing to send.
    Expected: refuse, keep both, or at least say what was replaced and where it went; a
    version of another vault must not vanish into this vault's trash."""
    a, _, b = two_devices(tmp_path)
    write(b / "n1.md", "B precious unsynced\n")
    res = run_cli("restore", ".", "--to", str(b), cwd=a)
    kept_in_b = b"B precious unsynced\n" in set(files(b).values())
    assert kept_in_b or res.code != 0, (res.code, res.out, res.err)


# ---- a process clock before 1970 ----------------------------------------------------------

def _faketime(when: str) -> list[str]:
    libs = sorted(Path("/usr/lib").glob("*/faketime/libfaketimeMT.so.1"))
    assert libs, "libfaketime is not installed (scripts/install-servers.sh installs it)"
    return ["env", f"LD_PRELOAD={libs[0]}", f"FAKETIME=@{when}"]


def test_a_device_whose_clock_is_before_1970_never_breaks_the_repository(
        tmp_path: Path) -> None:
    """A's clock reads 1969-12-31 (a device with a dead RTC, a bad NTP step): its sync
    commits a snapshot with a negative time, exit 0. From then on every device, A
    included, fails every command with exit 5 'snapshot has an absurd or missing number'.
    design.md: times outside the range are clamped and reported, never a stop; a wrong
    clock can lose a tie-break, never an edit."""
    a, _, b = two_devices(tmp_path)
    write(a / "n1.md", "A edit\n")
    res = run_as(_faketime("1969-12-31 23:59:00"), "sync", cwd=a)
    assert res.code in (0, 1), (res.code, res.err)
    res = sync(b)
    assert res.code in (0, 1), (res.code, res.err)
    assert (b / "n1.md").read_text() == "A edit\n"
    assert sync(a).code in (0, 1)


# ---- a working folder that no longer exists ----------------------------------------------

def test_a_deleted_working_folder_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    """Run from a folder that was deleted (a cron job's cwd, a shell left in a removed
    folder): every command without -C prints two chained Python tracebacks (the crash
    handler itself calls os.getcwd()) and exits 1, the code for 'done, look'."""
    gone = tmp_path / "gone"
    gone.mkdir()
    script = (f"import os, subprocess, sys; os.chdir({str(gone)!r}); os.rmdir({str(gone)!r}); "
              "p = subprocess.run([sys.executable, '-m', 'vaultsync', 'sync'], "
              "capture_output=True, text=True); print(p.returncode); print(p.stderr)")
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=env, timeout=60).stdout
    code, _, err = out.partition("\n")
    assert "Traceback" not in err, err[-400:]
    assert int(code) in (2, 7, 70), (code, err[-400:])


# ---- dry run and status write local state ---------------------------------------------------

def _state_files(vault: Path) -> dict[str, bytes]:
    """config.toml's bytes and the names in .vaultsync/ (state.db's stat cache may be
    refreshed; a new device id or a database moved aside is a write)."""
    meta = vault / ".vaultsync"
    out = {p.name: b"" for p in meta.iterdir()}
    out["config.toml"] = (meta / "config.toml").read_bytes()
    return out


def test_a_dry_run_and_status_leave_the_state_as_it_was(tmp_path: Path) -> None:
    """In a copied vault `sync --dry-run` and `status` register a new device (config.toml
    rewritten with a new device_id) and, with a damaged state.db, move it aside; the dry
    run still says 'dry run: nothing was written'. design.md: --dry-run leaves the vault
    byte-identical; status shows what a sync would do without doing it."""
    a, _, b = two_devices(tmp_path)
    copy = tmp_path / "A2"
    shutil.copytree(a, copy)
    before = _state_files(copy)
    assert run_cli("status", cwd=copy).code in (0, 1)
    assert sync(copy, "--dry-run").code in (0, 1)
    assert _state_files(copy) == before
    (a / ".vaultsync/state.db").write_bytes(b"garbage")
    before = _state_files(a)
    assert sync(a, "--dry-run").code in (0, 1)
    assert _state_files(a) == before
