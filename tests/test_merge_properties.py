"""Property tests of the merge: random base, random edits on two sides.

Properties, for every generated (base, local, remote) and both case modes:

(a) symmetry: merge(base, L, R) and merge(base, R, L) give the same merged tree and
    the same conflicts.
(b) no version lost: for each side S and each file path p of S whose bytes differ from
    what base held for that file (at p, or at the source of a move S made to p), the bytes
    S[p] are the content of some file in `merged` (at p, at a move target, or in a conflict
    copy). A version equal to base may go only because a side deleted it having seen
    exactly those bytes (or because the other side's edit or move superseded it).
    And a chmod is never lost: a file whose executable bit one side changed while both
    sides kept its base bytes has that bit in `merged` (exec merges apart from content;
    with a content conflict each version is kept whole, tested by example).
(b') nothing vanishes unasked: a base file present with its base bytes on both sides is
    the content of some merged file; and nothing is invented: every merged file's bytes
    come from base, local or remote.
(c) fixpoint: merge(m, m, m) == m; and (c') merge(base, m, m) == m with no conflicts
    (a sync re-run after a crash that left the base unrecorded creates nothing new).
(d) convergence: once a side adopts m (base = local = what it had, remote = m), a second
    merge gives m again: merge(L, L, m) == m and merge(R, R, m) == m, up to the Unicode
    spelling of names (a device keeps the spelling it has on disk; a respelling alone is
    no change, so it never flips the tree back and forth).
(e) shape: every parent of a merged path is a merged folder; keys are NFC; with
    case_insensitive no two keys are equal under case folding.

Examples: VAULTSYNC_HYPOTHESIS_EXAMPLES (default 200).
"""

from __future__ import annotations

import os
import unicodedata
from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.flatkit import T0, F
from vaultsync.model import DIR, Entry, Flat, nfc
from vaultsync.reconcile.merge import merge
from vaultsync.reconcile.renames import content_key, detect_moves

EXAMPLES = int(os.environ.get("VAULTSYNC_HYPOTHESIS_EXAMPLES", "200"))
SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

CAFE_NFD = unicodedata.normalize("NFD", "Café.md")
NAMES = ["a.md", "Note.md", "note.md", "x", "Café.md", CAFE_NFD]
FOLDERS = ["d", "D", "d/s"]
PATHS = NAMES + ["d/a.md", "d/b.md", "D/a.md", "d/s/a.md", "e/a.md"]  # small: sides collide
TEXTS = ["", "1", "2", "3"]


def _put(flat: Flat, path: str, entry: Entry) -> bool:
    """Add `entry` at `path` (spelled as on disk; keyed NFC) and any missing folders."""
    parts, key = path.split("/"), nfc(path)
    for i in range(1, len(parts)):
        anc = nfc("/".join(parts[:i]))
        there = flat.get(anc)
        if there is not None and not there.is_dir:
            return False
    if key in flat or any(k.startswith(key + "/") for k in flat):
        return False
    for i in range(1, len(parts)):
        anc = nfc("/".join(parts[:i]))
        flat.setdefault(anc, Entry(name=parts[i - 1], kind=DIR, mode=0o755))
    flat[key] = replace(entry, name=parts[-1])
    return True


def _drop(flat: Flat, key: str) -> None:
    for k in [k for k in flat if k == key or k.startswith(key + "/")]:
        del flat[k]


def _file(text: str, t: int, dev: str, x: bool = False) -> Entry:
    return F(text, t, dev, x)


base_files = st.dictionaries(
    st.sampled_from(PATHS), st.tuples(st.sampled_from(TEXTS), st.booleans()), min_size=2, max_size=6
)

edits = st.tuples(st.just("edit"), st.sampled_from(PATHS), st.sampled_from(TEXTS))
ops = st.one_of(
    edits,
    edits,  # edits weigh triple so that both sides often edit one file
    edits,
    st.tuples(st.just("add"), st.sampled_from(PATHS), st.sampled_from(TEXTS)),
    st.tuples(st.just("addx"), st.sampled_from(PATHS), st.sampled_from(TEXTS)),
    st.tuples(st.just("delete"), st.sampled_from(PATHS + FOLDERS), st.just("")),
    st.tuples(st.just("touch"), st.sampled_from(PATHS), st.just("")),
    st.tuples(st.just("chmod"), st.sampled_from(PATHS), st.just("")),
    st.tuples(st.just("move"), st.sampled_from(PATHS), st.sampled_from(PATHS)),
    st.tuples(st.just("movedir"), st.sampled_from(FOLDERS), st.sampled_from(["e", "f", "D"])),
    st.tuples(st.just("tofolder"), st.sampled_from(PATHS), st.sampled_from(TEXTS)),
    st.tuples(st.just("mkdir"), st.sampled_from(FOLDERS + ["f", "g"]), st.just("")),
)


def build_base(spec: dict) -> Flat:
    flat: Flat = {}
    for path, (text, x) in sorted(spec.items()):
        _put(flat, path, _file(text, 0, "base", x))
    return flat


def apply(base: Flat, script: list, dev: str, times: list[int]) -> Flat:
    flat = dict(base)
    for (op, path, arg), t in zip(script, times, strict=False):
        p = nfc(path)
        there = flat.get(p)
        if op == "edit" and there is not None and not there.is_dir:
            flat[p] = replace(_file(arg, t, dev, there.executable), name=there.name)
        elif op in ("add", "addx"):
            _put(flat, path, _file(arg, t, dev, op == "addx"))
        elif op == "delete" and there is not None:
            _drop(flat, p)
        elif op == "touch" and there is not None and not there.is_dir:
            flat[p] = replace(there, mtime_ns=T0 + t * 10**9, author=dev)
        elif op == "chmod" and there is not None and not there.is_dir:
            flat[p] = replace(there, mode=there.mode ^ 0o111, author=dev)
        elif op == "move" and there is not None and not there.is_dir and nfc(arg) not in flat:
            _drop(flat, p)
            if not _put(flat, arg, there):
                flat[p] = there  # target unusable: undo
        elif op == "movedir" and there is not None and there.is_dir and arg not in flat:
            if arg.startswith(p + "/"):
                continue
            moved = {arg + k[len(p) :]: e for k, e in flat.items() if k.startswith(p + "/")}
            _drop(flat, p)
            _put(flat, arg, there)
            for k, e in sorted(moved.items()):
                _put(flat, k, e)
        elif op == "tofolder" and there is not None and not there.is_dir:
            _drop(flat, p)
            _put(flat, p + "/a.md", _file(arg, t, dev))
        elif op == "mkdir":
            _put(flat, p, Entry(name=p, kind=DIR, mode=0o755))
    return flat


scripts = st.lists(ops, max_size=6)
times = st.lists(st.integers(1, 4), min_size=8, max_size=8)
# edits both sides make to one path first (else concurrent edits of one file are rare)
both = st.lists(
    st.tuples(st.sampled_from(PATHS), st.sampled_from(TEXTS), st.sampled_from(TEXTS)), max_size=2
)


def sides(base: Flat, shared: list, lscript: list, rscript: list, lt: list, rt: list):
    lfirst = [("edit", p, a) for p, a, _ in shared]
    rfirst = [("edit", p, b) for p, _, b in shared]
    return apply(base, lfirst + lscript, "laptop", lt), apply(base, rfirst + rscript, "desk", rt)


def contents(flat: Flat) -> set:
    return {content_key(e) for e in flat.values() if not e.is_dir}


def changed_versions(base: Flat, side: Flat) -> list[Entry]:
    moves = detect_moves(base, side)
    source = {moves.locate(k): k for k in base if moves.locate(k) != k}
    out = []
    for key, entry in side.items():
        if entry.is_dir:
            continue
        before = base.get(source.get(key, key))
        if not entry.same_content(before):
            out.append(entry)
    return out


def _unmoved(base: Flat, local: Flat, remote: Flat, ci: bool) -> set[str]:
    """Base paths that are one file on every side: no move touched them, no case twin."""
    lm, rm = detect_moves(base, local), detect_moves(base, remote)
    keys = {k for k in base if lm.locate(k) == k and rm.locate(k) == k}
    if ci:
        for flat in (base, local, remote):
            count: dict[str, int] = {}
            for k in flat:
                count[k.lower()] = count.get(k.lower(), 0) + 1
            keys = {k for k in keys if count.get(k.lower(), 0) <= 1}
    return keys


def _folded(merged: Flat, key: str, ci: bool) -> Entry:
    """The merged entry at `key`, where a case-insensitive merge may have re-cased it."""
    assert ci, f"{key} missing"
    (entry,) = [e for k, e in merged.items() if k.lower() == key.lower() and not e.is_dir]
    return entry


def check_shape(merged: Flat, ci: bool) -> None:
    for key, entry in merged.items():
        assert key == nfc(key)
        assert nfc(entry.name) == key.rsplit("/", 1)[-1]
        if "/" in key:
            assert merged[key.rsplit("/", 1)[0]].is_dir, key
    if ci:
        folded = [k.lower() for k in merged]
        assert len(folded) == len(set(folded))


@SETTINGS
@given(base_files, both, scripts, scripts, times, times, st.booleans())
def test_merge_properties(spec, shared, lscript, rscript, ltimes, rtimes, ci):
    base = build_base(spec)
    local, remote = sides(base, shared, lscript, rscript, ltimes, rtimes)
    result = merge(base, local, remote, local_device="laptop", case_insensitive=ci)
    merged = result.merged

    mirror = merge(base, remote, local, local_device="desk", case_insensitive=ci)
    assert mirror.merged == merged  # (a)
    assert mirror.conflicts == result.conflicts

    have = contents(merged)
    for side in (local, remote):  # (b)
        for entry in changed_versions(base, side):
            assert content_key(entry) in have, f"lost {entry}"
    still = _unmoved(base, local, remote, ci)
    for side, other in ((local, remote), (remote, local)):  # (b) for executable bits
        for key, entry in side.items():
            before, theirs = base.get(key), other.get(key)
            if key not in still or before is None or theirs is None:
                continue
            if entry.same_content(before):
                if entry.executable != before.executable and theirs.same_content(before):
                    there = merged.get(key) or _folded(merged, key, ci)
                    assert there.executable == entry.executable, f"lost chmod {key}"
    for key, entry in base.items():  # (b')
        if entry.is_dir:
            continue
        if entry.same_content(local.get(key)) and entry.same_content(remote.get(key)):
            assert content_key(entry) in have, f"dropped {key}"
    assert have <= contents(base) | contents(local) | contents(remote)

    again = merge(merged, merged, merged, local_device="x", case_insensitive=ci)
    assert again.merged == merged and again.conflicts == ()  # (c)
    rerun = merge(base, merged, merged, local_device="x", case_insensitive=ci)
    assert rerun.merged == merged and rerun.conflicts == ()  # (c') a re-run after a crash
    for side in (local, remote):  # (d)
        if ci and len({k.lower() for k in side}) < len(side):
            continue  # a case-insensitive device never holds two such names
        adopted = merge(side, side, merged, local_device="x", case_insensitive=ci)
        assert composed(adopted.merged) == composed(merged), "adopting m does not converge"
    check_shape(merged, ci)  # (e)


@SETTINGS
@given(base_files, scripts, times, st.booleans())
def test_one_sided_changes_are_taken_whole(spec, script, ts, ci):
    """With the other side untouched, the merge is exactly the changed side, up to the
    Unicode spelling of unchanged names (in case-insensitive mode: when neither tree holds
    two names equal under case folding)."""
    base = build_base(spec)
    local = apply(base, script, "laptop", ts)
    if ci and any(len({k.lower() for k in f}) < len(f) for f in (base, local)):
        ci = False
    for mine, theirs in ((local, base), (base, local)):
        result = merge(base, mine, theirs, local_device="laptop", case_insensitive=ci)
        assert composed(result.merged) == composed(local)
        for key, entry in result.merged.items():  # a respelling alone is no change
            assert entry.name in (local[key].name, base[key].name if key in base else None)
        assert result.conflicts == ()


def composed(flat: Flat) -> Flat:
    return {k: replace(e, name=nfc(e.name)) for k, e in flat.items()}
