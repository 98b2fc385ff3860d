"""A vault on a real exFAT filesystem (issue 9, defect 12; design.md, Edges: foreign
filesystems), syncing with a Linux device through a directory remote, all through
`python -m vaultsync`.

exFAT over FUSE, as a USB drive or a camera card is: every file reads as mode 0777,
names are compared without case, and `:?*<>|"` are refused (with ENOENT). What must hold:
the other devices never see a mode, a name or a folder change because of it; names the
drive cannot hold stay phantoms (reported, exit 1, never deleted, moved or merged); one
such name never stops the rest of a clone or a pull.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import fs_mounts
from tests.conftest import REPO_ROOT, Result, run_cli, write
from vaultsync.cli.output import name as shown
from vaultsync.model import flatten
from vaultsync.repository.repo import Repository
from vaultsync.store.local import LocalStore

OLD = 1_600_000_000
_serial = itertools.count()


@pytest.fixture(scope="module")
def exfat_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One exFAT filesystem per module and xdist worker, always unmounted afterwards."""
    with contextlib.ExitStack() as stack:
        try:
            mnt = stack.enter_context(fs_mounts.exfat(tmp_path_factory.mktemp("exfat")))
        except fs_mounts.MountFailed as exc:
            required = " (VAULTSYNC_REQUIRE_SERVERS is set)" \
                if os.environ.get("VAULTSYNC_REQUIRE_SERVERS") else ""
            pytest.fail(f"cannot mount a real exFAT filesystem{required}: {exc}", pytrace=False)
        yield mnt


@pytest.fixture
def drive(exfat_root: Path) -> Iterator[Path]:
    """A fresh folder on the exFAT filesystem for one test."""
    folder = exfat_root / f"t{next(_serial)}"
    folder.mkdir()
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def cli(*args: str, code: int = 0, cwd: Path | None = None) -> Result:
    r = run_cli(*args, cwd=cwd)
    assert r.code == code, f"{args}: exit {r.code}, wanted {code}\n{r.out}\n{r.err}"
    assert "Traceback" not in r.err
    return r


def listing(root: Path) -> dict[str, tuple[bytes, int]]:
    """rel -> (bytes, permission bits) of every file; folders as (b'/', 0)."""
    out: dict[str, tuple[bytes, int]] = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if rel.split("/")[0] == ".vaultsync":
            continue
        out[rel] = (b"/", 0) if p.is_dir() else (p.read_bytes(), stat.S_IMODE(p.stat().st_mode))
    return out


def linux_device(tmp_path: Path, files: dict[str, str], modes: dict[str, int] | None = None,
                 ) -> tuple[Path, Path]:
    """A vault on ext4 (tmp_path) with `files`, synced to a directory remote."""
    a, remote = tmp_path / "linux", tmp_path / "remote"
    a.mkdir()
    for rel, text in files.items():
        write(a / rel, text, mtime=OLD)
        os.chmod(a / rel, (modes or {}).get(rel, 0o644))
    cli("init", "--remote", str(remote), "--device", "linux", cwd=a)
    cli("sync", cwd=a)
    return a, remote


def head_modes(remote: Path) -> dict[str, int]:
    """path -> recorded mode of every file in the newest snapshot of every head."""
    repo = Repository.open(LocalStore(str(remote)))
    out: dict[str, int] = {}
    for sid in repo.read_heads().values():
        for key, entry in flatten(repo.get_snapshot(sid).tree, repo.get_tree).items():
            if not entry.is_dir:
                out[f"{sid[:8]}:{key}"] = entry.mode
    return out


def test_the_mount_is_a_real_foreign_filesystem(drive: Path, tmp_path: Path) -> None:
    """What the other tests rely on, and what `fsprobe` finds out without being told."""
    from vaultsync.engine import fsprobe

    (drive / ".vaultsync").mkdir()
    (drive / "x.md").write_text("x")
    os.chmod(drive / "x.md", 0o644)
    assert stat.S_IMODE((drive / "x.md").stat().st_mode) == 0o777
    with pytest.raises(OSError):
        (drive / "b:c.md").write_text("no")
    (drive / "Dir").mkdir()
    with pytest.raises(FileExistsError):
        (drive / "dir").mkdir()
    found = fsprobe.traits(str(drive))
    assert (found.modes, found.case_insensitive) == (False, True)
    assert not found.holds("Meeting 10:30?.md") and found.holds("Meeting 10.30.md")
    (tmp_path / ".vaultsync").mkdir()
    native = fsprobe.traits(str(tmp_path))
    assert (native.modes, native.case_insensitive) == (True, False)
    assert native.holds("Meeting 10:30?.md")
    assert sorted(os.listdir(drive / ".vaultsync")) == []  # the probes left nothing


def test_names_the_drive_cannot_hold_are_phantoms_and_never_stop_a_clone(
        tmp_path: Path, drive: Path) -> None:
    bad = ["Meeting 10:30?.md", 'say "hi".md', "a|b.md", "what*.md", "sub/<tag>.md"]
    good = {"ok.md": "ok", "sub/inner.md": "inner", "zz.md": "last"}
    a, remote = linux_device(tmp_path, {**good, **{b: f"bad {b}" for b in bad}})
    usb = drive / "usb"
    r = cli("clone", str(remote), str(usb), "--device", "usb", code=1)
    for name in bad:  # a name with a quote is printed quoted (cli/output.py: name())
        assert f"skipped: {shown(name)} (this filesystem cannot hold this name" in r.out
    assert {k: v[0] for k, v in listing(usb).items()} == {
        "ok.md": b"ok", "sub": b"/", "sub/inner.md": b"inner", "zz.md": b"last"}
    assert not list((usb / ".vaultsync" / "staging").glob("*"))  # nothing left staged
    before = listing(a)

    r = cli("sync", code=1, cwd=usb)  # reported on each sync, nothing changes
    assert all(f"skipped: {shown(name)} " in r.out for name in bad)
    write(usb / "ok.md", "edited on the drive", mtime=OLD + 10)
    cli("sync", code=1, cwd=usb)
    cli("sync", cwd=a)
    assert listing(a) == {**before, "ok.md": (b"edited on the drive", 0o644)}

    # the phantoms follow the other device's edits and are never rolled back
    write(a / "Meeting 10:30?.md", "newer, from linux", mtime=OLD + 20)
    write(a / "new.md", "new", mtime=OLD + 20)
    cli("sync", cwd=a)
    r = cli("pull", code=1, cwd=usb)  # one-way too: the rest still lands
    assert (usb / "new.md").read_text() == "new"
    write(usb / "zz.md", "edited again on the drive", mtime=OLD + 30)
    cli("sync", code=1, cwd=usb)
    cli("sync", cwd=a)
    assert (a / "Meeting 10:30?.md").read_text() == "newer, from linux"
    assert sorted(p for p in listing(a) if p not in before) == ["new.md"]
    assert all((a / name).exists() for name in bad)


def test_only_the_executable_bit_syncs_and_the_drive_never_changes_it(
        tmp_path: Path, drive: Path) -> None:
    a, remote = linux_device(
        tmp_path, {"run.sh": "#!/bin/sh\n", "note.md": "n", "private.md": "p", "x.md": "x"},
        modes={"run.sh": 0o755, "private.md": 0o600})
    usb = drive / "usb"
    cli("clone", str(remote), str(usb), "--device", "usb")
    cli("sync", cwd=usb)
    write(usb / "note.md", "edited on the drive", mtime=OLD + 5)
    write(usb / "new.md", "made on the drive", mtime=OLD + 5)
    cli("sync", cwd=usb)
    cli("sync", cwd=a)
    umask = os.umask(0o022)
    os.umask(umask)
    modes = {k: v[1] for k, v in listing(a).items()}
    assert modes == {"run.sh": 0o755, "note.md": 0o666 & ~umask, "private.md": 0o600,
                     "x.md": 0o644, "new.md": 0o666 & ~umask}
    assert set(head_modes(remote).values()) <= {0o644, 0o755}

    # a chmod on linux reaches the drive's memory (it cannot hold the bit) and survives
    # the drive's next commits: the drive neither reads nor changes it
    os.chmod(a / "x.md", 0o755)
    cli("sync", cwd=a)
    cli("sync", cwd=usb)
    write(usb / "note.md", "edited twice on the drive", mtime=OLD + 9)
    cli("sync", cwd=usb)
    cli("sync", cwd=a)
    assert stat.S_IMODE((a / "x.md").stat().st_mode) == 0o755
    assert stat.S_IMODE((a / "run.sh").stat().st_mode) == 0o755
    assert all(mode in (0o644, 0o755) for key, mode in head_modes(remote).items())
    assert [k for k, m in head_modes(remote).items() if m == 0o755 and "x.md" in k]


def test_names_that_fold_to_one_on_the_drive_are_written_once(
        tmp_path: Path, drive: Path) -> None:
    a, remote = linux_device(tmp_path, {"Dir/x.md": "x", "dir/y.md": "y", "Note.md": "N",
                                        "note.md": "n", "plain.md": "p"})
    usb = drive / "usb"
    r = cli("clone", str(remote), str(usb), "--device", "usb", code=1)
    assert "skipped: dir " in r.out and "skipped: note.md " in r.out
    assert {k: v[0] for k, v in listing(usb).items()} == {
        "Dir": b"/", "Dir/x.md": b"x", "Note.md": b"N", "plain.md": b"p"}
    before = listing(a)
    r = cli("sync", code=1, cwd=usb)
    assert "skipped: dir " in r.out and "skipped: note.md " in r.out
    write(usb / "Dir" / "x.md", "x edited on the drive", mtime=OLD + 5)
    write(usb / "plain.md", "p edited on the drive", mtime=OLD + 5)
    cli("sync", code=1, cwd=usb)
    cli("sync", cwd=a)
    assert listing(a) == {**before, "Dir/x.md": (b"x edited on the drive", 0o644),
                          "plain.md": (b"p edited on the drive", 0o644)}

    # the phantom side changes on linux: still not merged into the drive's folder
    write(a / "dir" / "y.md", "y edited on linux", mtime=OLD + 6)
    cli("sync", cwd=a)
    cli("sync", code=1, cwd=usb)
    assert sorted(os.listdir(usb / "Dir")) == ["x.md"]
    write(usb / "plain.md", "p again", mtime=OLD + 7)
    cli("sync", code=1, cwd=usb)
    cli("sync", cwd=a)
    assert (a / "dir" / "y.md").read_text() == "y edited on linux"
    assert sorted(os.listdir(a / "dir")) == ["y.md"] and sorted(os.listdir(a / "Dir")) == ["x.md"]


def test_renames_by_case_from_another_device_land_on_the_drive(
        tmp_path: Path, drive: Path) -> None:
    a, remote = linux_device(tmp_path, {"note.md": "n", "Sub/inner.md": "i", "keep.md": "k"})
    usb = drive / "usb"
    cli("clone", str(remote), str(usb), "--device", "usb")
    (a / "note.md").rename(a / "Note.md")
    (a / "Sub").rename(a / "SUB")
    write(a / "SUB" / "added.md", "a", mtime=OLD + 3)
    cli("sync", cwd=a)
    cli("sync", cwd=usb)
    assert sorted(os.listdir(usb)) == [".vaultsync", "Note.md", "SUB", "keep.md"]
    assert sorted(os.listdir(usb / "SUB")) == ["added.md", "inner.md"]
    for _ in range(2):  # nothing flips back, on either side
        cli("sync", cwd=usb)
        cli("sync", cwd=a)
    assert sorted(os.listdir(a)) == [".vaultsync", "Note.md", "SUB", "keep.md"]
    assert sorted(os.listdir(usb)) == [".vaultsync", "Note.md", "SUB", "keep.md"]
    r = cli("sync", cwd=usb)
    assert "already up to date" in r.out


NO_PRECHECK = """
from vaultsync.engine import fsprobe

fsprobe.suspicious = lambda name: False  # every name goes straight to the disk
"""


def test_a_name_refused_only_when_written_is_a_phantom_too(tmp_path: Path, drive: Path) -> None:
    """Names the cheap pre-check does not catch fail at the write itself (ENOENT from
    exFAT): a probe confirms the name is the cause, and the run goes on."""
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(NO_PRECHECK)
    hooked = {"PYTHONPATH": os.pathsep.join([str(hooks), str(REPO_ROOT)])}
    a, remote = linux_device(tmp_path, {"ok.md": "ok", "Q?/in.md": "in", "Q?/deep/x.md": "x",
                                        "a:b.md": "ab", "renamed.md": "r"})
    usb = drive / "usb"
    r = run_cli("clone", str(remote), str(usb), "--device", "usb", env=hooked)
    assert r.code == 1 and "Traceback" not in r.err, r.err
    assert {k for k in listing(usb)} == {"ok.md", "renamed.md"}
    for key in ("Q?", "Q?/in.md", "Q?/deep/x.md", "a:b.md"):
        assert f"skipped: {key} " in r.out
    (a / "renamed.md").rename(a / "re:named.md")
    cli("sync", cwd=a)
    r = run_cli("sync", cwd=usb, env=hooked)
    assert r.code == 1 and "skipped: re:named.md " in r.out, r.out + r.err
    assert {k for k in listing(usb)} == {"ok.md"}  # the old name is in the trash
    cli("sync", code=1, cwd=usb)
    cli("sync", cwd=a)
    assert sorted(listing(a)) == ["Q?", "Q?/deep", "Q?/deep/x.md", "Q?/in.md", "a:b.md",
                                  "ok.md", "re:named.md"]


def test_a_case_rename_the_disk_ignores_goes_by_way_of_the_trash(
        drive: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Some filesystems keep the old spelling on a rename by case only: then the file
    goes to the trash and back under the new name (this drive takes the rename at once,
    so the listing after it is made to show the old spelling)."""
    from vaultsync.engine import apply
    from vaultsync.engine.apply import VaultWriter, disk_key

    (drive / ".vaultsync").mkdir()
    write(drive / "note.md", "n", mtime=OLD)
    vw = VaultWriter(str(drive), str(drive / ".vaultsync" / "trash"))
    assert vw.fs.case_insensitive  # probed before the listing is tampered with
    real = os.listdir
    calls: list[str] = []

    def listdir(path: str) -> list[str]:  # the check after the rename sees the old name
        calls.append(path)
        return ["note.md", ".vaultsync"] if len(calls) == 2 else real(path)

    monkeypatch.setattr(apply.os, "listdir", listdir)
    vw.move("note.md", "Note.md", disk_key(str(drive / "note.md")))  # type: ignore[arg-type]
    monkeypatch.undo()
    assert len(calls) == 2
    assert sorted(os.listdir(drive)) == [".vaultsync", "Note.md"]
    assert (drive / "Note.md").read_text() == "n"
    assert [p.name for p in (drive / ".vaultsync" / "trash").glob("*/case-*")]  # the way
    assert not [p for p in (drive / ".vaultsync").rglob("*") if p.is_file()]


def test_checkout_and_restore_onto_the_drive_skip_what_it_cannot_hold(
        tmp_path: Path, drive: Path) -> None:
    bad = ["Meeting 10:30?.md", "sub|dir/inside.md"]
    good = {"ok.md": "ok", "sub/inner.md": "inner"}
    a, remote = linux_device(tmp_path, {**good, **{b: f"bad {b}" for b in bad}})
    out = drive / "export"
    r = cli("checkout", str(remote), str(out), code=1)
    for name in bad:
        assert f"skipped: {shown(name.split('/')[0] if '|' in name else name)}" in r.out
    assert {k: v[0] for k, v in listing(out).items()} == {
        "ok.md": b"ok", "sub": b"/", "sub/inner.md": b"inner"}
    usb = drive / "usb"
    cli("clone", str(remote), str(usb), "--device", "usb", code=1)
    (usb / "ok.md").unlink()
    r = cli("restore", ".", "--to", str(drive / "restored"), cwd=usb, code=1)
    assert "skipped: " in r.out
    assert {k: v[0] for k, v in listing(drive / "restored").items()} == {
        "ok.md": b"ok", "sub": b"/", "sub/inner.md": b"inner"}
    leftovers = [p for p in drive.rglob("*") if p.name.startswith(".vaultsync-tmp-")]
    assert leftovers == []


def test_a_dry_run_shows_what_the_drive_cannot_hold_as_skipped_not_down(
        tmp_path: Path, drive: Path) -> None:
    a, remote = linux_device(tmp_path, {"ok.md": "ok"})
    usb = drive / "usb"
    cli("clone", str(remote), str(usb), "--device", "usb")
    write(a / "Meeting 10:30?.md", "agenda")
    write(a / "fine.md", "fine")
    cli("sync", cwd=a)
    r = cli("sync", "--dry-run", "-v", cwd=usb, code=1)
    assert "would sync to snapshot" in r.out and ": 0 up, 1 down," in r.out, r.out
    assert "  down    fine.md" in r.out and "down    Meeting" not in r.out
    assert "skipped: Meeting 10:30?.md (this filesystem cannot hold this name" in r.out
    r = cli("status", cwd=usb, code=1)
    assert "sync would: 0 up, 1 down," in r.out, r.out
    r = cli("sync", cwd=usb, code=1)
    assert ": 0 up, 1 down," in r.out and (usb / "fine.md").read_text() == "fine"
