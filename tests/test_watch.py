"""`vaultsync watch` (issue 12), through the real CLI in a subprocess: local changes
reach the remote once they settle, another device's changes arrive by polling the
remote's heads, a burst of edits is one sync, an unreachable remote is retried with
backoff, and SIGTERM stops it with 130 and no temporary files. Every wait is bounded:
the watcher also runs with --exit-after, and each test waits for a line with a deadline.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, run_cli, tree_state, write
from vaultsync.engine.watch import counts

DEADLINE = 60.0  # seconds any one expected event may take on a loaded machine


class Watcher:
    """`vaultsync -C VAULT watch --json ...` in the background, its reports read as they
    come (one JSON document per line)."""

    def __init__(self, vault: Path, *args: str) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vaultsync", "-C", str(vault), "watch", "--json",
             "--exit-after", "240", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
        self.reports: list[dict] = []  # type: ignore[type-arg]
        self.errors: list[str] = []
        self._sel = selectors.DefaultSelector()
        assert self.proc.stdout is not None and self.proc.stderr is not None
        os.set_blocking(self.proc.stdout.fileno(), False)
        os.set_blocking(self.proc.stderr.fileno(), False)
        self._sel.register(self.proc.stdout, selectors.EVENT_READ, "out")
        self._sel.register(self.proc.stderr, selectors.EVENT_READ, "err")
        self._buf = {"out": "", "err": ""}

    def _read(self, timeout: float) -> None:
        for key, _ in self._sel.select(timeout):
            chunk = key.fileobj.read()  # type: ignore[union-attr]
            if not chunk:
                continue
            self._buf[key.data] += chunk
            *lines, self._buf[key.data] = self._buf[key.data].split("\n")
            for line in lines:
                if key.data == "out" and line.strip():
                    self.reports.append(json.loads(line))
                elif key.data == "err" and line.strip():
                    self.errors.append(line)

    def wait_for(self, what: str, test, deadline: float = DEADLINE) -> dict:  # type: ignore[no-untyped-def,type-arg]
        """The first report from now on for which `test(report)` holds."""
        start = len(self.reports)
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            for report in self.reports[start:]:
                if test(report):
                    return report
            if self.proc.poll() is not None:
                self._read(0.1)
                pytest.fail(f"watch ended ({self.proc.returncode}) before {what}: "
                            f"{self.errors}")
            self._read(0.2)
        pytest.fail(f"no {what} within {deadline} s; reports {self.reports}, "
                    f"errors {self.errors}")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=DEADLINE)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=DEADLINE)
            self._read(0)
            self._sel.close()
            for pipe in (self.proc.stdout, self.proc.stderr):
                if pipe is not None:
                    pipe.close()
        return code


def uploaded(n: int = 1):  # type: ignore[no-untyped-def]
    """A report of a sync that sent at least `n` files (reports count them)."""
    return lambda r: r.get("uploaded", 0) >= n


def pair(tmp_path: Path) -> tuple[Path, Path, Path]:
    a, b, remote = tmp_path / "a", tmp_path / "b", tmp_path / "remote"
    write(a / "note.md", "first")
    assert run_cli("-C", str(a), "init", "--remote", str(remote), "--device", "a").code == 0
    assert run_cli("-C", str(a), "sync").code == 0
    assert run_cli("clone", str(remote), str(b), "--device", "b").code == 0
    return a, b, remote


def temp_files(*roots: Path) -> list[Path]:
    return [p for root in roots for p in root.rglob("*") if ".vaultsync-tmp-" in p.name
            or p.name.startswith(".tmp-")]


def test_local_changes_reach_the_remote_and_sigterm_stops_it(tmp_path: Path) -> None:
    a, b, remote = pair(tmp_path)
    w = Watcher(a, "--debounce", "0.5", "--poll", "3600")
    try:
        w.wait_for("the first sync", lambda r: r.get("command") == "sync")
        write(a / "Daily" / "2026-11-24.md", "written while watched")
        w.wait_for("the upload", uploaded())
    finally:
        code = w.stop()
    assert code == 130, w.errors
    assert not temp_files(a, remote)
    assert run_cli("-C", str(b), "sync").code == 0
    assert (b / "Daily" / "2026-11-24.md").read_text() == "written while watched"


def test_another_devices_change_arrives_by_polling_the_heads(tmp_path: Path) -> None:
    a, b, _ = pair(tmp_path)
    w = Watcher(b, "--debounce", "0.5", "--poll", "1")
    try:
        w.wait_for("the first sync", lambda r: r.get("command") == "sync")
        write(a / "from-a.md", "pushed by a")
        assert run_cli("-C", str(a), "sync").code == 0
        got = w.wait_for("the download", lambda r: r.get("downloaded", 0) >= 1)
        assert got["exit_code"] == 0 and (b / "from-a.md").read_text() == "pushed by a"
        n = len(w.reports)
        time.sleep(3)  # polls meanwhile find the heads unchanged: no sync
        w._read(0.5)
        assert len(w.reports) <= n + 1, w.reports[n:]  # at most the one after its own writes
    finally:
        assert w.stop() == 130
    assert tree_state(b) == tree_state(a)


def test_a_burst_of_edits_is_one_sync(tmp_path: Path) -> None:
    a, _, _ = pair(tmp_path)
    w = Watcher(a, "--debounce", "1.5", "--poll", "3600")
    try:
        w.wait_for("the first sync", lambda r: r.get("command") == "sync")
        start = len(w.reports)
        for i in range(20):
            write(a / "burst" / f"n{i}.md", f"edit {i}")
            time.sleep(0.02)
        w.wait_for("the burst", uploaded())
        time.sleep(3)
        w._read(0.5)
        ups = [r["uploaded"] for r in w.reports[start:] if r.get("uploaded")]
        assert ups == [20], w.reports[start:]
    finally:
        assert w.stop() == 130


def test_edits_that_never_settle_are_synced_after_max_wait(tmp_path: Path) -> None:
    """An editor that saves every half second never lets the debounce run out: the edits
    go up --max-wait seconds after the first one, while the saving goes on."""
    a, _, _ = pair(tmp_path)
    w = Watcher(a, "--debounce", "2", "--max-wait", "3", "--poll", "3600")
    try:
        w.wait_for("the first sync", lambda r: r.get("command") == "sync")
        start = len(w.reports)
        end = time.monotonic() + 9
        i = 0
        while time.monotonic() < end:  # a save every 0.4 s for 9 s: never 2 s of quiet
            write(a / "typing.md", f"draft {i}")
            i += 1
            time.sleep(0.4)
            w._read(0)
        during = [r for r in w.reports[start:] if r.get("uploaded")]
        assert during, "nothing synced while the edits went on"
    finally:
        assert w.stop() == 130


def test_an_unreachable_remote_is_retried_with_backoff(tmp_path: Path) -> None:
    a, _, remote = pair(tmp_path)
    away = tmp_path / "remote-unmounted"
    w = Watcher(a, "--debounce", "0.3", "--poll", "3600", "--backoff", "1")
    try:
        w.wait_for("the first sync", lambda r: r.get("command") == "sync")
        remote.rename(away)  # the remote's disk is unmounted
        write(a / "offline.md", "written while the remote was away")
        end = time.monotonic() + DEADLINE
        while len(w.errors) < 2 and time.monotonic() < end:
            w._read(0.2)
        assert len(w.errors) >= 2, w.errors  # tried, then tried again after the backoff
        assert all(e.startswith("vaultsync: ") for e in w.errors), w.errors
        assert w.proc.poll() is None, "an unreachable remote does not end the watch"
        away.rename(remote)
        w.wait_for("the upload once back", uploaded())
    finally:
        assert w.stop() == 130


def test_max_syncs_ends_it_with_the_syncs_code(tmp_path: Path) -> None:
    a, _, _ = pair(tmp_path)
    res = run_cli("-C", str(a), "watch", "--max-syncs", "1", "--exit-after", "60")
    assert res.code == 0, res.err
    assert "already up to date" in res.out


@pytest.mark.parametrize("rel, counted", [
    ("note.md", True), ("Daily/x.md", True), (".vaultsync/state.db", False),
    (".vaultsync/staging/ab/.vaultsync-tmp-0123456789ab", False),
    ("Daily/.vaultsync-tmp-0123456789ab", False), ("Daily/.vaultsync-tmp-notes.md", True),
    ("logs/x.log", False), ("logs/deep/y.md", False), ("Daily/z.log", False),
    (".vaultsyncignore", True), (".vaultsync/ignore", True), ("Daily/.DS_Store", False),
])
def test_what_counts_as_a_change(tmp_path: Path, rel: str, counted: bool) -> None:
    from vaultsync.engine.ignore import IgnoreRules

    write(tmp_path / ".vaultsyncignore", "logs/\n*.log\n")
    rules = IgnoreRules.load(str(tmp_path))
    assert counts(str(tmp_path / rel), str(tmp_path), rules) is counted


def test_edits_of_ignored_files_start_no_sync(tmp_path: Path) -> None:
    a, _, _ = pair(tmp_path)
    write(a / ".vaultsyncignore", "cache/\n")
    assert run_cli("-C", str(a), "sync").code == 0
    w = Watcher(a, "--debounce", "0.3", "--poll", "3600")
    try:
        w.wait_for("the first sync", lambda r: r.get("command") == "sync")
        start = len(w.reports)
        for i in range(5):
            write(a / "cache" / "sub" / f"c{i}.bin", f"scratch {i}")
        time.sleep(2)
        w._read(0.5)
        assert w.reports[start:] == []  # nothing the vault syncs changed
        write(a / "real.md", "a note")
        w.wait_for("the upload", uploaded())
    finally:
        assert w.stop() == 130


def test_a_folder_the_system_cannot_watch_is_one_clear_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """inotify refuses more watches than fs.inotify.max_user_watches (ENOSPC): the watch
    ends with exit 7 and says what to raise, never a traceback."""
    import errno

    from watchdog.observers import Observer

    from vaultsync.engine import watch as watch_mod
    from vaultsync.errors import LocalFailure

    def refuse(self, *a, **k):  # type: ignore[no-untyped-def]
        raise OSError(errno.ENOSPC, "inotify watch limit reached")

    monkeypatch.setattr(Observer, "start", refuse)
    with pytest.raises(LocalFailure, match="max_user_watches") as info:
        watch_mod.watch(str(tmp_path), lambda: pytest.fail("no sync"),  # type: ignore[arg-type,return-value]
                        dict, lambda r: None)
    assert info.value.exit_code == 7


def test_a_vault_moved_away_ends_the_watch_at_the_next_poll(tmp_path: Path) -> None:
    a, _, _ = pair(tmp_path)
    w = Watcher(a, "--debounce", "0.3", "--poll", "1")
    try:
        w.wait_for("the first sync", lambda r: r.get("command") == "sync")
        a.rename(tmp_path / "a-moved")
        code = w.proc.wait(timeout=DEADLINE)
    finally:
        w.stop()
    assert code == 2
    assert any("no longer a vault" in e for e in w.errors), w.errors
