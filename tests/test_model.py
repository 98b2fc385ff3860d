import json

import pytest

from vaultsync.chunking import Hasher
from vaultsync.errors import IntegrityError
from vaultsync.model import (
    DIR,
    Entry,
    Snapshot,
    Tree,
    check_relpath,
    decode_snapshot,
    decode_tree,
    diff_trees,
    flatten,
    name_problem,
)

H = Hasher()
A = "a" * 64
B = "b" * 64


def test_tree_encoding_is_canonical_and_round_trips() -> None:
    e1 = Entry("zeta.md", mode=0o644, size=3, mtime_ns=5, author="dev", chunks=(A,))
    e2 = Entry("Alpha", kind=DIR, tree=B)
    t1, t2 = Tree.of([e1, e2]), Tree.of([e2, e1])
    assert t1.encode() == t2.encode()
    assert decode_tree(t1.encode()) == t1
    assert [e.name for e in t1.entries] == ["Alpha", "zeta.md"]


def test_tree_id_changes_exactly_with_content_or_metadata() -> None:
    base = Entry("n.md", size=1, mtime_ns=1, author="d", chunks=(A,))
    ids = {H.id(Tree.of([base]).encode())}
    for changed in (
        Entry("n.md", size=1, mtime_ns=2, author="d", chunks=(A,)),
        Entry("n.md", mode=0o755, size=1, mtime_ns=1, author="d", chunks=(A,)),
        Entry("n.md", size=1, mtime_ns=1, author="d", chunks=(B,)),
        Entry("m.md", size=1, mtime_ns=1, author="d", chunks=(A,)),
    ):
        ids.add(H.id(Tree.of([changed]).encode()))
    assert len(ids) == 5
    assert H.id(Tree.of([base]).encode()) in ids


@pytest.mark.parametrize("name", ["..", ".", "", "a/b", "x\x00y", ".vaultsync"])
def test_hostile_names_are_refused_when_decoding(name: str) -> None:
    entry = {"a": "d", "c": [], "k": "f", "m": 420, "n": name, "s": 0, "t": 0}
    raw = json.dumps({"e": [entry], "v": 1}).encode()
    with pytest.raises(IntegrityError):
        decode_tree(raw)


@pytest.mark.parametrize("path", ["../x", "/etc/x", "a/./b", "a//b", ""])
def test_relpath_check_refuses_escapes(path: str) -> None:
    with pytest.raises(IntegrityError):
        check_relpath(path)


def test_absurd_numbers_and_bad_ids_are_refused() -> None:
    good = Tree.of([Entry("a", size=1, chunks=(A,))]).encode()
    assert decode_tree(good).entries[0].size == 1
    for bad in (good.replace(b'"s":1', b'"s":-1'), good.replace(b'"s":1', b'"s":1e99'),
                good.replace(A.encode(), b"zz"), good.replace(b'"s":1', b'"s":true')):
        with pytest.raises(IntegrityError):
            decode_tree(bad)


def test_tree_out_of_canonical_order_is_refused() -> None:
    e1, e2 = Entry("a", kind=DIR, tree=A), Entry("b", kind=DIR, tree=B)
    raw = Tree((e2, e1)).encode()
    with pytest.raises(IntegrityError, match="canonical"):
        decode_tree(raw)


def test_snapshot_round_trip_and_validation() -> None:
    s = Snapshot(tree=A, parents=(B,), device="d" * 32, device_name="laptop", time_ns=10,
                 files=2, size=3)
    assert decode_snapshot(s.encode()) == s
    with pytest.raises(IntegrityError):
        decode_snapshot(s.encode().replace(B.encode(), b"../../etc"))
    with pytest.raises(IntegrityError):
        decode_snapshot(b"not json")


def test_flatten_uses_nfc_keys_and_keeps_disk_spelling() -> None:
    nfd = "Cafe\u0301.md"
    leaf = Tree.of([Entry(nfd, size=0)])
    leaf_id = H.id(leaf.encode())
    root = Tree.of([Entry("dir", kind=DIR, tree=leaf_id)])
    root_id = H.id(root.encode())
    flat = flatten(root_id, {leaf_id: leaf, root_id: root}.__getitem__)
    assert set(flat) == {"dir", "dir/Caf\u00e9.md"}
    assert flat["dir/Caf\u00e9.md"].name == nfd


def test_name_problem_accepts_ordinary_names() -> None:
    for name in ("Note.md", "a b", "日本語.md", ".gitignore", "x" * 200):
        assert name_problem(name) is None


def test_diff_trees_skips_equal_subtrees_without_loading_them() -> None:
    trees: dict[str, Tree] = {}

    def put(tree: Tree) -> str:
        tid = H.id(tree.encode())
        trees[tid] = tree
        return tid

    def folder(i: int, text: str) -> Entry:
        leaf = put(Tree.of([Entry(f"n{i}.md", size=len(text), chunks=(H.id(text.encode()),))]))
        return Entry(f"d{i}", kind=DIR, tree=leaf)

    base = put(Tree.of([folder(i, "same") for i in range(50)]))
    changed = put(Tree.of([folder(i, "same") for i in range(49)] + [folder(49, "new")]))
    loaded: list[str] = []

    def get(tid: str) -> Tree:
        loaded.append(tid)
        return trees[tid]

    changes = list(diff_trees(base, changed, get))
    assert [(k, a is not None, b is not None) for k, a, b in changes] == [
        ("d49/n49.md", True, True)]
    assert len(loaded) == 4  # two roots and the two d49 subtrees, nothing else
    added = put(Tree.of([Entry("new", kind=DIR, tree=put(Tree.of([Entry("x.md")])))]))
    assert [(k, a, b is not None) for k, a, b in diff_trees(None, added, trees.__getitem__)] \
        == [("new", None, True), ("new/x.md", None, True)]
    assert list(diff_trees(base, base, get)) == []
