"""Edges of the scan and the apply step (issue 9, defects 6, 11 and the conflict-copy part
of 9), through `python -m vaultsync`: dates a tree cannot hold, two spellings of one name
on one device, and a conflict copy whose name is taken while a sync applies."""

from __future__ import annotations

import os
import shutil
import textwrap
import unicodedata
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, Result, run_cli, write
from vaultsync.reconcile.conflicts import conflict_name

OLD = 1_600_000_000
NFC = unicodedata.normalize("NFC", "café.md")
NFD = unicodedata.normalize("NFD", "café.md")
TREE_MAX = 1 << 62  # the largest mtime_ns a tree holds (2116-02-20)


def cli(*args: str, code: int = 0, cwd: Path | None = None,
        env: dict[str, str] | None = None) -> Result:
    r = run_cli(*args, cwd=cwd, env=env)
    assert r.code == code, f"{args}: exit {r.code}, wanted {code}\n{r.out}\n{r.err}"
    assert "Traceback" not in r.err
    return r


def vault(root: Path, files: dict[str, str], remote: Path, device: str = "laptop") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for rel, text in files.items():
        write(root / rel, text, mtime=OLD)
    cli("init", "--remote", str(remote), "--device", device, cwd=root)
    return root


def names(root: Path) -> list[str]:
    return sorted(n for n in os.listdir(root) if n != ".vaultsync")


# ---- defect 6: dates outside what a tree can hold ---------------------------------------

@pytest.mark.parametrize("year_ns", [
    7_258_118_400 * 10**9,  # 2200-01-01: past 2116, within int64
    13_569_465_600 * 10**9,  # 2400-01-01: past int64 nanoseconds too (ext4 holds it)
])
def test_a_file_dated_after_2116_syncs_with_a_notice(tmp_path: Path, year_ns: int) -> None:
    a = vault(tmp_path / "a", {"ok.md": "ok", "future.md": "from the future"},
              tmp_path / "remote")
    os.utime(a / "future.md", ns=(year_ns, year_ns))
    assert (a / "future.md").stat().st_mtime_ns == year_ns  # the disk holds that date
    r = cli("sync", cwd=a)
    assert "future.md" in r.out and "outside what the repository can record" in r.out
    r = cli("sync", cwd=a)
    assert "already up to date" in r.out
    cli("clone", str(tmp_path / "remote"), str(tmp_path / "b"), "--device", "desk")
    b = tmp_path / "b"
    assert (b / "future.md").read_text() == "from the future"
    assert (b / "future.md").stat().st_mtime_ns == TREE_MAX
    write(b / "ok.md", "edited on desk", mtime=OLD + 1)
    cli("sync", cwd=b)
    cli("sync", cwd=a)
    assert (a / "ok.md").read_text() == "edited on desk"
    assert (a / "future.md").stat().st_mtime_ns == year_ns  # a touch never goes back


def test_files_dated_before_1823_and_negative_times_sync(tmp_path: Path) -> None:
    shm = Path("/dev/shm")  # tmpfs holds any date; ext4 stops at 1901
    assert shm.is_dir(), "this test needs a tmpfs at /dev/shm"
    root = shm / f"vaultsync-test-{os.getpid()}-{tmp_path.name}"
    try:
        a = vault(root / "a", {"old.md": "1600", "neg.md": "1960", "ok.md": "ok"},
                  tmp_path / "remote")
        very_old = -11_676_096_000 * 10**9  # 1600-01-01
        os.utime(a / "old.md", ns=(very_old, very_old))
        os.utime(a / "neg.md", ns=(-315_619_200 * 10**9,) * 2)  # 1960: negative, in range
        assert (a / "old.md").stat().st_mtime_ns == very_old
        r = cli("sync", cwd=a)
        assert "old.md" in r.out and "neg.md" not in r.out
        cli("clone", str(tmp_path / "remote"), str(root / "b"), "--device", "desk")
        assert (root / "b" / "old.md").stat().st_mtime_ns == -TREE_MAX
        assert (root / "b" / "neg.md").stat().st_mtime_ns == -315_619_200 * 10**9
        assert "already up to date" in cli("sync", cwd=a).out
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ---- defect 11: two spellings of one name on one device ---------------------------------

def test_a_second_spelling_becomes_a_collision_copy_once(tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    a = vault(tmp_path / "a", {NFC: "in base"}, remote)
    cli("sync", cwd=a)
    cli("clone", str(remote), str(tmp_path / "b"), "--device", "desk")
    write(a / NFD, "typed on a mac", mtime=OLD + 60)
    copy = conflict_name(NFD, (OLD + 60) * 10**9, "laptop")

    assert "Traceback" not in run_cli("status", cwd=a).err  # looks, writes nothing
    cli("sync", "--dry-run", cwd=a)
    assert names(a) == sorted([NFC, NFD])
    r = cli("sync", cwd=a, code=1)
    assert "conflict" in r.out and unicodedata.normalize("NFC", copy) in r.out
    assert names(a) == sorted([NFC, copy])
    assert (a / NFC).read_text() == "in base" and (a / copy).read_text() == "typed on a mac"
    assert "already up to date" in cli("sync", cwd=a).out  # once: the next run is clean
    cli("sync", cwd=tmp_path / "b")
    b_names = [unicodedata.normalize("NFC", n) for n in names(tmp_path / "b")]
    assert sorted(b_names) == sorted(unicodedata.normalize("NFC", n) for n in (NFC, copy))


def test_two_new_spellings_the_first_by_bytes_keeps_the_name(tmp_path: Path) -> None:
    a = tmp_path / "a"
    write(a / NFC, "precomposed", mtime=OLD)
    write(a / NFD, "decomposed", mtime=OLD + 1)
    first, second = sorted([NFC, NFD], key=lambda n: n.encode())
    cli("init", "--remote", str(tmp_path / "remote"), "--device", "laptop", cwd=a)
    r = cli("sync", cwd=a, code=1)
    copy = conflict_name(second, (OLD + (second == NFD)) * 10**9, "laptop")
    assert names(a) == sorted([first, copy]), r.out
    assert (a / copy).read_text() == {NFC: "precomposed", NFD: "decomposed"}[second]
    cli("sync", cwd=a)


def test_a_second_spelling_with_the_same_bytes_is_one_file(tmp_path: Path) -> None:
    a = vault(tmp_path / "a", {NFC: "same"}, tmp_path / "remote")
    cli("sync", cwd=a)
    write(a / NFD, "same", mtime=OLD + 5)
    r = cli("sync", cwd=a)
    assert "trash" in r.out
    assert names(a) == [NFC]
    assert [p.name for p in (a / ".vaultsync" / "trash").rglob("*") if p.is_file()] == [NFD]
    assert "already up to date" in cli("sync", cwd=a).out


# ---- defect 9: a conflict copy's name taken while the sync applies ---------------------

EDIT_DURING_APPLY = """
import os
from vaultsync.engine import apply

_real = apply.VaultWriter.install
_done = []


def install(self, tmp, rel, expect):
    if rel == os.environ.get("VAULTSYNC_TEST_EDIT") and not _done:
        _done.append(rel)  # the user saves the file after the scan, before the write
        with open(self.abspath(rel), "w") as f:
            f.write("typed during the sync")
    return _real(self, tmp, rel, expect)


apply.VaultWriter.install = install
"""


def test_a_taken_copy_name_during_apply_gets_the_next_number(tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    a = vault(tmp_path / "a", {"n.md": "base"}, remote)
    cli("sync", cwd=a)
    cli("clone", str(remote), str(tmp_path / "b"), "--device", "desk")
    b = tmp_path / "b"
    write(a / "n.md", "from laptop", mtime=OLD + 100)
    cli("sync", cwd=a)
    taken = conflict_name("n.md", (OLD + 100) * 10**9, "laptop")
    write(b / taken, "an unrelated file under that very name", mtime=OLD + 50)
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(textwrap.dedent(EDIT_DURING_APPLY))
    env = {"PYTHONPATH": os.pathsep.join([str(hooks), str(REPO_ROOT)]),
           "VAULTSYNC_TEST_EDIT": "n.md"}
    r = cli("sync", cwd=b, env=env, code=1)
    second = conflict_name("n.md", (OLD + 100) * 10**9, "laptop", 2)
    assert f"{second}" in r.out, r.out
    assert (b / "n.md").read_text() == "typed during the sync"
    assert (b / taken).read_text() == "an unrelated file under that very name"
    assert (b / second).read_text() == "from laptop"
    for v in (b, a, b):
        cli("sync", cwd=v)
    assert {n: (a / n).read_text() for n in names(a)} == {
        n: (b / n).read_text() for n in names(b)}



# ---- a user's file that merely looks like a temporary file -----------------------------

def test_a_users_file_named_like_a_temporary_file_is_synced_never_removed(
        tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    a = vault(tmp_path / "a", {".vaultsync-tmp-notes.md": "mine", "ok.md": "ok"}, remote)
    cli("sync", cwd=a)
    cli("sync", cwd=a)
    assert (a / ".vaultsync-tmp-notes.md").read_text() == "mine"
    cli("clone", str(remote), str(tmp_path / "b"), "--device", "desk")
    assert (tmp_path / "b" / ".vaultsync-tmp-notes.md").read_text() == "mine"
