"""Prune over every real network backend (S3 on SeaweedFS and moto, WebDAV on Apache and
WsgiDAV, SFTP on OpenSSH), through the command line: both phases at once on a history of
two devices, and two phases with a sync in between that reuses content only a named
pack holds. A server that does not start fails the test (tests/backends/conftest.py)."""

from __future__ import annotations

import base64
import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.backends.conftest import Backend
from tests.backends.test_e2e_cli import NETWORK, cli_env, ok
from tests.conftest import SMALL_PARAMS, run_cli, write
from tests.prune_kit import cli_json, count_names, files


def setup(kind: str, backends: Callable[[str], Backend], tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> tuple[Backend, str]:
    b = backends(kind)
    cli_env(b, monkeypatch)
    for key, value in SMALL_PARAMS.items():  # small packs and chunks (backend_env drops them)
        monkeypatch.setenv(key, value)
    return b, b.location()


def counts(b: Backend, url: str) -> dict[str, int]:
    """Objects on the remote by kind, listed through the store itself."""
    store = b.open(url, prepare=False)
    return count_names(info.name for info in store.list(""))


def note(rng: random.Random, size: int) -> bytes:
    return base64.b64encode(rng.randbytes(size))


@pytest.mark.parametrize("kind", NETWORK)
def test_prune_both_phases_on_a_history_of_two_devices(
        kind: str, backends: Callable[[str], Backend], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    b, url = setup(kind, backends, tmp_path, monkeypatch)
    rng = random.Random(kind)
    a, d = tmp_path / "a", tmp_path / "d"
    for i in range(6):
        write(a / f"n{i}.md", note(rng, 3000))
    ok(run_cli("init", "--remote", url, "--device", "a", cwd=a))
    ok(run_cli("sync", cwd=a))
    ok(run_cli("clone", url, str(d), "--device", "d"))
    for r in range(2):  # each device edits, adds and syncs in turn
        write(a / f"n{r}.md", note(rng, 3000))
        write(a / f"a{r}.md", note(rng, 2000))
        ok(run_cli("sync", cwd=a))
        write(d / f"n{r + 3}.md", note(rng, 3000))
        if r == 1:
            (d / "n0.md").unlink()
        ok(run_cli("sync", cwd=d))
    ok(run_cli("sync", cwd=a))
    before = counts(b, url)
    assert before["snapshots"] >= 5 and before["index"] >= 5, before

    _, doc = cli_json("prune", "--keep-last", "1", "--grace", "0s", cwd=a)
    after = counts(b, url)
    assert doc["deleted_snapshots"] and doc["pending"] == [], doc
    assert after["snapshots"] < before["snapshots"], (before, after)
    assert after["index"] < before["index"], (before, after)
    assert "ok:" in ok(run_cli("verify", "--read-data", "100", cwd=a)).out

    write(d / "after-prune.md", "d writes after the prune")
    for vault in (d, a, d):
        ok(run_cli("sync", cwd=vault))
    assert files(a) == files(d) and (a / "after-prune.md").exists()
    ok(run_cli("clone", url, str(tmp_path / "c"), "--device", "c"))
    assert files(tmp_path / "c") == files(a)


@pytest.mark.parametrize("kind", NETWORK)
def test_prune_in_two_phases_keeps_what_a_sync_in_between_reused(
        kind: str, backends: Callable[[str], Backend], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Phase 1 names the pack of old.md's first content; d then restores old.md to that
    content (read from the named pack) and syncs; phase 2, after the grace, must keep
    every blob d's snapshot needs."""
    b, url = setup(kind, backends, tmp_path, monkeypatch)
    rng = random.Random(kind)
    a, d = tmp_path / "a", tmp_path / "d"
    old = note(rng, 24000)  # most of the first pack: dead once old.md changes
    write(a / "old.md", old)
    write(a / "keep.md", "a note that stays")
    ok(run_cli("init", "--remote", url, "--device", "a", cwd=a))
    _, doc = cli_json("sync", cwd=a)
    first = doc["snapshot"]
    ok(run_cli("clone", url, str(d), "--device", "d"))
    write(a / "old.md", note(rng, 24000))
    ok(run_cli("sync", cwd=a))
    ok(run_cli("sync", cwd=d))  # d has the new content; the old one is only in history

    _, doc = cli_json("prune", "--keep-last", "1", "--grace", "2s", cwd=a)
    named = time.monotonic()
    assert doc["record"] and [p["record"] for p in doc["pending"]] == [doc["record"]], doc
    assert first in doc["forgotten"], doc
    assert not doc["deleted_snapshots"] and doc["deleted_packs"] == 0, doc

    ok(run_cli("restore", "old.md", "--at", first, cwd=d))
    assert (d / "old.md").read_bytes() == old
    _, doc = cli_json("sync", cwd=d)
    assert doc["uploaded"] == 1 and doc["new_chunks"] > 0, doc  # stored again, not reused
    time.sleep(max(0.0, 2.2 - (time.monotonic() - named)))
    before = counts(b, url)
    _, doc = cli_json("prune", "--keep-last", "1", "--grace", "2s", cwd=a)
    assert doc["deleted_snapshots"] and doc["deleted_packs"] > 0, doc
    after = counts(b, url)
    assert after["snapshots"] < before["snapshots"], (before, after)
    assert after["packs"] <= before["packs"], (before, after)  # live blobs copied out
    assert "ok:" in ok(run_cli("verify", "--read-data", "100", cwd=a)).out

    for vault in (a, d):
        ok(run_cli("sync", cwd=vault))
    assert files(a) == files(d) and (a / "old.md").read_bytes() == old
    ok(run_cli("clone", url, str(tmp_path / "c"), "--device", "c"))
    assert files(tmp_path / "c") == files(a)
