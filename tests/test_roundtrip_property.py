"""Property: any tree of files with odd names, contents, mtimes and modes survives
push -> clone byte for byte, with its mtimes and executable bits."""

import os
import tempfile
import unicodedata
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import tree_state
from vaultsync.engine import oneway
from vaultsync.engine.ignore import DEFAULT_PATTERNS, IgnoreRules
from vaultsync.model import name_problem

EXAMPLES = int(os.environ.get("VAULTSYNC_HYPOTHESIS_EXAMPLES", "40"))

names = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"),
    min_size=1, max_size=24,
).map(lambda s: unicodedata.normalize("NFC", s)).filter(
    lambda s: name_problem(s) is None and not s.startswith(".vaultsync")
    and len(s.encode()) <= 255
)
files = st.dictionaries(
    st.lists(names, min_size=1, max_size=3).map(tuple),
    st.tuples(st.binary(max_size=40_000), st.integers(10**18, 2 * 10**18), st.booleans()),
    min_size=1, max_size=12,
)


DEFAULT_RULES = IgnoreRules(list(DEFAULT_PATTERNS))


def consistent(paths: dict) -> dict:  # type: ignore[type-arg]
    """Drop paths that would need a name to be both a file and a folder, and paths the
    default ignore rules exclude (editor temp files and the like are not synced)."""
    out: dict = {}  # type: ignore[type-arg]
    for parts, value in sorted(paths.items(), key=lambda kv: len(kv[0])):
        key = unicodedata.normalize("NFC", "/".join(parts))
        if DEFAULT_RULES.ignored(key, False) or any(
                DEFAULT_RULES.ignored("/".join(parts[:i]), True) for i in range(1, len(parts))):
            continue
        prefixes = {parts[:i] for i in range(1, len(parts))}
        if prefixes & set(out) or any(p[: len(parts)] == parts for p in out):
            continue
        out[parts] = value
    return out


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(files)
def test_push_clone_round_trip(paths: dict) -> None:  # type: ignore[type-arg]
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for parts, (data, mtime_ns, executable) in consistent(paths).items():
            target = src.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            os.chmod(target, 0o755 if executable else 0o644)
            os.utime(target, ns=(mtime_ns, mtime_ns))
        oneway.init(str(src), str(Path(tmp) / "remote"), "src")
        oneway.push(str(src))
        oneway.clone(str(Path(tmp) / "remote"), str(Path(tmp) / "dst"), "dst")
        assert tree_state(Path(tmp) / "dst") == tree_state(src)
