"""A SIGTERM always ends a run with 130, wherever it lands: also in a finalizer (a
generator closed by the garbage collector, where Python cannot raise the interrupt and
used to lose it: the run went on and exited 0) and in the last moments, while the entry
point hands back the code (the interrupt escaped as an uncaught KeyboardInterrupt)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from types import SimpleNamespace

from tests.adversary import run_cli
from tests.conftest import write
from vaultsync.cli import failure
from vaultsync.engine import oneway
from vaultsync.engine.sync import sync


def test_an_interrupt_python_could_not_raise_is_not_lost() -> None:
    with failure.run_guard():
        assert not failure.signalled()
        sys.unraisablehook(SimpleNamespace(exc_type=KeyboardInterrupt,
                                           exc_value=KeyboardInterrupt(), exc_traceback=None,
                                           err_msg=None, object=None))
        assert failure.signalled()
    with failure.run_guard():  # each run starts afresh
        assert not failure.signalled()


def test_a_sigterm_in_the_last_calls_of_a_run_exits_130(tmp_path: Path) -> None:
    v = tmp_path / "v"
    write(v / "n.md", "x", 1_600_000_000)
    oneway.init(str(v), str(tmp_path / "remote"), "a")
    sync(str(v))

    def pull(at: int | None) -> tuple[int, bool]:
        r = run_cli(["-C", str(v), "pull"], skew_ns=0, read_faults={}, scratch=tmp_path,
                    signal_at=at, sig=signal.SIGTERM if at else None)
        return r.code, r.fired

    assert pull(None) == (0, False)
    lo, hi = 1, 4096  # the last call into vaultsync of a no-change pull, by bisection
    assert pull(hi)[1] is False
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if pull(mid)[1] else (lo, mid)
    for at in range(max(1, lo - 7), lo + 1):
        code, fired = pull(at)
        assert fired and code == 130, f"SIGTERM at call {at} of {lo}: exit {code}"
