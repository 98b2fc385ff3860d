"""Model test: three replicas, random edits, deletes, renames, syncs, pushes and pulls in
random order, some syncs concurrent. After everyone syncs twice, all replicas are identical and no
version is lost (tests/versions.py says precisely what that means).

VAULTSYNC_MODEL_EXAMPLES sets the number of examples (default 30)."""

import os
import tempfile
import threading
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import tree_state
from tests.versions import Versions
from vaultsync.engine import oneway
from vaultsync.engine.sync import sync

EXAMPLES = int(os.environ.get("VAULTSYNC_MODEL_EXAMPLES", "30"))
PATHS = ["a.md", "b.md", "d/c.md", "d/e.md", "e/f.md"]
REPLICAS = 3

ops = st.lists(
    st.one_of(
        st.tuples(st.just("edit"), st.integers(0, REPLICAS - 1), st.sampled_from(PATHS)),
        st.tuples(st.just("delete"), st.integers(0, REPLICAS - 1), st.sampled_from(PATHS)),
        st.tuples(st.just("rename"), st.integers(0, REPLICAS - 1), st.sampled_from(PATHS),
                  st.sampled_from(PATHS)),
        st.tuples(st.just("sync"), st.integers(0, REPLICAS - 1)),
        st.tuples(st.just("push"), st.integers(0, REPLICAS - 1)),
        st.tuples(st.just("pull"), st.integers(0, REPLICAS - 1)),
        st.tuples(st.just("concurrent"), st.integers(0, REPLICAS - 1),
                  st.integers(0, REPLICAS - 1)),
    ),
    max_size=30,
)


def run_sync(root: Path, errors: list[BaseException]) -> None:
    try:
        sync(str(root), force=True)
    except BaseException as exc:  # collected and re-raised in the main thread
        errors.append(exc)


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(ops)
def test_replicas_converge_and_keep_every_version(script: list[tuple]) -> None:  # type: ignore[type-arg]
    with tempfile.TemporaryDirectory() as tmp:
        tmpp = Path(tmp)
        v = Versions()
        reps = [tmpp / f"r{i}" for i in range(REPLICAS)]
        reps[0].mkdir()
        v.write(reps[0] / "a.md", b"initial a")
        v.write(reps[0] / "d/c.md", b"initial c")
        oneway.init(str(reps[0]), str(tmpp / "remote"), "r0")
        sync(str(reps[0]))
        for i in range(1, REPLICAS):
            oneway.clone(str(tmpp / "remote"), str(reps[i]), f"r{i}")
        for n, op in enumerate(script):
            kind, r = op[0], reps[op[1]]
            if kind == "edit":
                target = r / op[2]
                if not any(p.is_file() for p in target.parents if p != r) and not target.is_dir():
                    v.write(target, f"{op[1]} wrote {op[2]} at step {n}".encode())
            elif kind == "delete" and (r / op[2]).is_file():
                v.delete(r / op[2])
            elif kind == "rename" and (r / op[2]).is_file() and op[2] != op[3]:
                dst = r / op[3]
                if not dst.is_dir() and not any(p.is_file() for p in dst.parents if p != r):
                    v.rename(r / op[2], dst)
            elif kind == "sync":
                sync(str(r), force=True)
            elif kind == "push":
                oneway.push(str(r))
            elif kind == "pull":  # local versions it replaces are kept as copies
                oneway.pull(str(r))
            elif kind == "concurrent":
                errors: list[BaseException] = []
                threads = [threading.Thread(target=run_sync, args=(x, errors))
                           for x in {r, reps[op[2]]}]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join(60)
                if errors:
                    raise errors[0]
        for _ in range(2):
            for r in reps:
                sync(str(r), force=True)
        states = [tree_state(r) for r in reps]
        assert states[0] == states[1] == states[2]
        assert v.lost(reps[0]) == set()
