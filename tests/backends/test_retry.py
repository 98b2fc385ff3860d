"""RetryStore: the backoff rules on a scripted store, then against real servers behind a
fault-injecting proxy (dropped connections, injected 500s)."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.backends.conftest import Backend, unique
from tests.backends.fault_proxy import FaultProxy
from vaultsync.errors import (
    EXIT_REMOTE,
    AuthError,
    ObjectNotFound,
    RemoteUnreachable,
    TransientError,
)
from vaultsync.store.base import Store, WrappingStore
from vaultsync.store.memory import MemoryStore
from vaultsync.store.retry import RetryStore

Get = Callable[[str], Backend]
# Fixed for reproducible runs; set VAULTSYNC_FAULT_SEED to explore other fault sequences.
FAULT_SEED = int(os.environ.get("VAULTSYNC_FAULT_SEED", "20261123"))


class Scripted(WrappingStore):
    """Raises the queued exceptions, one per call, before behaving like its inner store."""

    def __init__(self, failures: list[BaseException]) -> None:
        super().__init__(MemoryStore())
        self.failures = failures
        self.calls = 0

    def _get(self, name: str) -> bytes:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return self.inner.get(name)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


def retrying(inner: Store, clock: FakeClock, **kw: float) -> RetryStore:
    params: dict[str, float] = {"attempts": 5, "base_delay": 1.0, "max_delay": 4.0,
                                "max_elapsed": 100.0, **kw}
    return RetryStore(inner, seed=7, sleep=clock.sleep, clock=clock, **params)  # type: ignore[arg-type]


def test_transient_errors_are_retried_with_growing_jittered_backoff() -> None:
    inner = Scripted([TransientError("t1"), ConnectionResetError(), TimeoutError(),
                      TransientError("t4")])
    inner.inner.put("a", b"data")
    clock = FakeClock()
    store = retrying(inner, clock, attempts=6)
    assert store.get("a") == b"data"
    assert inner.calls == 5 and store.retries == 4
    caps = [1.0, 2.0, 4.0, 4.0]  # base * 2**n, capped at max_delay
    assert all(0 <= s <= cap for s, cap in zip(clock.sleeps, caps, strict=True))
    assert len(set(clock.sleeps)) == 4  # jittered, not a fixed ladder


@pytest.mark.parametrize("error", [ObjectNotFound("a"), AuthError("no"),
                                   RemoteUnreachable("not mounted")])
def test_permanent_errors_fail_at_once(error: Exception) -> None:
    inner = Scripted([error])
    clock = FakeClock()
    with pytest.raises(type(error)):
        retrying(inner, clock).get("a")
    assert inner.calls == 1 and clock.sleeps == []


def test_gives_up_after_attempts() -> None:
    inner = Scripted([TransientError("down")] * 10)
    clock = FakeClock()
    with pytest.raises(TransientError, match=r"gave up after 3 attempts") as info:
        retrying(inner, clock, attempts=3).get("a")
    assert inner.calls == 3 and len(clock.sleeps) == 2
    assert info.value.exit_code == EXIT_REMOTE


def test_gives_up_when_time_runs_out() -> None:
    inner = Scripted([TransientError("down")] * 100)
    clock = FakeClock()
    with pytest.raises(TransientError, match="gave up"):
        retrying(inner, clock, attempts=100, base_delay=5.0, max_delay=5.0,
                 max_elapsed=12.0).get("a")
    assert clock.now <= 12.0 and inner.calls < 100


def test_list_is_read_whole_per_attempt() -> None:
    class FlakyList(WrappingStore):
        def __init__(self) -> None:
            super().__init__(MemoryStore())
            self.tries = 0

        def _list(self, prefix: str):  # type: ignore[no-untyped-def]
            self.tries += 1
            for i, info in enumerate(self.inner.list(prefix)):
                if self.tries == 1 and i == 2:
                    raise TransientError("dropped mid-listing")
                yield info

    inner = FlakyList()
    for i in range(5):
        inner.inner.put(f"packs/aa/{i}", b"x")
    clock = FakeClock()
    names = [info.name for info in retrying(inner, clock).list("packs/")]
    assert names == [f"packs/aa/{i}" for i in range(5)]  # no duplicates from the retry
    assert inner.tries == 2


# -- real servers behind a fault-injecting proxy -----------------------------------------

PROXIED = {"s3-seaweedfs": "http", "s3-moto": "http", "webdav-apache": "http",
           "webdav-wsgidav": "http", "sftp-sshd": "tcp"}


def proxied_store(b: Backend, proxy: FaultProxy, tmp_path: Path) -> Store:
    srv = b.server
    assert srv is not None
    port = proxy.port
    if b.kind.startswith("s3-"):
        return b.open(b.location(), prepare=False, endpoint=f"http://127.0.0.1:{port}")
    url = b.location()
    b.open(url)  # create the folder without faults
    url = url.replace(f":{srv.port}/", f":{port}/")
    if b.kind.startswith("webdav-"):
        return b.open(url, prepare=False)
    known = tmp_path / "known_hosts_proxy"
    known.write_text(f"[127.0.0.1]:{port} {srv.info['host_key_line']}\n")
    return b.open(url, prepare=False, known_hosts=str(known))


@pytest.mark.parametrize("kind", list(PROXIED))
def test_retry_completes_through_faults(backends: Get, kind: str, tmp_path: Path) -> None:
    b = backends(kind)
    assert b.server is not None
    proxy = FaultProxy(b.server.port, mode=PROXIED[kind], rate=0.25, seed=FAULT_SEED)
    try:
        store = RetryStore(proxied_store(b, proxy, tmp_path), attempts=12, base_delay=0.01,
                           max_delay=0.2, max_elapsed=60, seed=1)
        rng = random.Random(5)
        written: dict[str, bytes] = {}
        for i in range(20):
            name = f"packs/{i % 4:02x}/{unique('p')}"
            written[name] = rng.randbytes(rng.randrange(0, 48_000))
            store.put(name, written[name])
            assert store.get(name) == written[name]
            if written[name]:
                assert store.get_range(name, 0, 1) == written[name][:1]
        assert {i.name: i.size for i in store.list("packs/")} == \
            {n: len(d) for n, d in written.items()}
        for name in list(written)[:5]:
            store.delete(name)
            assert store.stat(name) is None
    finally:
        proxy.stop()
    assert proxy.faults >= 3, "the proxy injected (almost) no faults: the test proves nothing"
    assert store.retries >= 1


@pytest.mark.parametrize("kind,kinds", [("s3-seaweedfs", ("drop",)), ("s3-moto", ("500",)),
                                        ("webdav-apache", ("500",)),
                                        ("webdav-wsgidav", ("drop",)), ("sftp-sshd", ("drop",))])
def test_retry_gives_up_in_bounded_time(backends: Get, kind: str, kinds: tuple[str, ...],
                                        tmp_path: Path) -> None:
    b = backends(kind)
    assert b.server is not None
    proxy = FaultProxy(b.server.port, mode=PROXIED[kind], rate=1.0, seed=1, kinds=kinds)
    try:
        if kind == "sftp-sshd":
            known = tmp_path / "kh"
            known.write_text(f"[127.0.0.1]:{proxy.port} {b.server.info['host_key_line']}\n")
            url = b.location().replace(f":{b.server.port}/", f":{proxy.port}/")
            inner = b.open(url, prepare=False, known_hosts=str(known))
        else:
            inner = proxied_store(b, proxy, tmp_path)
        store = RetryStore(inner, attempts=4, base_delay=0.05, max_delay=0.5,
                           max_elapsed=20, seed=3)
        start = time.monotonic()
        for call in (lambda: store.put("heads/x", os.urandom(10)),
                     lambda: store.get("heads/x"), lambda: list(store.list(""))):
            with pytest.raises(RemoteUnreachable) as info:
                call()
            assert isinstance(info.value, TransientError)
            assert info.value.exit_code == EXIT_REMOTE
            assert "gave up after 4 attempts" in str(info.value)
        elapsed = time.monotonic() - start
    finally:
        proxy.stop()
    assert elapsed < 30
    assert proxy.passed == 0 and proxy.faults >= 12
