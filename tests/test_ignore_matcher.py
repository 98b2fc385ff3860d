"""The compiled ignore matcher against pathspec's GitIgnoreSpec (the oracle): random
patterns drawn from a vocabulary of gitignore's features, random paths, files and
folders, asked path by path and folder view by folder view, as the scan asks."""

from __future__ import annotations

import re

import pathspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vaultsync.engine.ignore import DEFAULT_PATTERNS, IgnoreRules

NAMES = ["a", "b", "ab", "ba", "a.md", "b.md", "x.tmp", ".git", "c", "a b", "aa", "a~",
         "#x#", ".DS_Store", "*", "!a", "ü"]
GLOBS = ["a", "b", "ab", "*", "**", "a*", "*a", "*.md", "?", "a?", "[ab]", "[!a]",
         "[a-c]*", "*.*", ".git", "\\*", "\\!a", "a b", "a\\ ", "***", "*~", "#*#", "x.tmp",
         "[]a]", "a*b*", "ü", "*a*"]


@st.composite
def lines(draw: st.DrawFn) -> str:
    segs = draw(st.lists(st.sampled_from(GLOBS), min_size=1, max_size=4))
    text = "/".join(segs)
    if draw(st.booleans()):
        text = "/" + text
    if draw(st.booleans()):
        text += "/"
    if draw(st.integers(0, 3)) == 0:
        text = "!" + text
    return draw(st.sampled_from([text, text, text, text + "  ", "# " + text, ""]))


@st.composite
def paths(draw: st.DrawFn) -> tuple[str, bool]:
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=5))
    return "/".join(names), draw(st.booleans())


def oracle(patterns: list[str]) -> pathspec.GitIgnoreSpec:
    """pathspec, told git's one difference kept on purpose: a bracket never matches '/'
    (pathspec's `[!a]` does)."""
    spec = pathspec.GitIgnoreSpec.from_lines(patterns)
    for pat in spec.patterns:
        if pat.regex is not None:
            pat.regex = re.compile(pat.regex.pattern.replace("[^", "[^/"))
    return spec


def check(patterns: list[str], queries: list[tuple[str, bool]]) -> None:
    try:
        spec = oracle(patterns)
    except ValueError:
        with pytest.raises(ValueError):
            IgnoreRules(patterns)
        return
    rules = IgnoreRules(patterns)
    for key, is_dir in queries:
        want = spec.match_file(key + "/" if is_dir else key)
        assert rules.ignored(key, is_dir) == want, (patterns, key, is_dir)
        folder, _, name = key.rpartition("/")  # the scan's way: folder by folder
        view = rules.root
        for part in folder.split("/") if folder else []:
            view = view.child(part)
        assert view.ignored(name, is_dir) == want, (patterns, key, is_dir, "view")


@settings(max_examples=600, deadline=None)
@given(st.lists(lines(), min_size=1, max_size=6), st.lists(paths(), min_size=1, max_size=25))
def test_matcher_agrees_with_pathspec(patterns: list[str],
                                      queries: list[tuple[str, bool]]) -> None:
    check(patterns, queries)


@settings(max_examples=150, deadline=None)
@given(st.lists(lines(), max_size=3), st.lists(paths(), min_size=1, max_size=25))
def test_defaults_plus_user_rules_agree(patterns: list[str],
                                        queries: list[tuple[str, bool]]) -> None:
    check([*DEFAULT_PATTERNS, *patterns], queries)


@pytest.mark.parametrize("patterns, key, is_dir", [
    (["a", "!a/"], "a/x", False),  # a folder pattern's negation frees what is inside
    (["a/", "!a"], "a/x", False),
    (["a/**"], "a", True),  # 'a/**' matches the folder itself
    (["*/"], "x", False),  # '*/': a folder, or anything below one
    (["*/"], "d/x", False),
    (["/*"], "d/x", False),
    (["**/a/**/b"], "a/b/a/b", False),
    (["a/**/b", "!b"], "a/x/b", True),
    (["***"], "d", True),  # a name glob that matches '': 'd/' matches as a whole
    (["a\\ "], "a ", False),  # an escaped trailing space stays
    (["\\!a"], "!a", False),
    (["[!a]"], "b", False),
    (["a[!x]b"], "a/b", False),  # git: a bracket never matches '/'
    (["[ab"], "[ab", False),  # an unclosed bracket: git drops the pattern
    ([".obsidian/workspace*.json"], ".obsidian/workspace-2.json", False),
    ([".obsidian/workspace*.json"], "x/.obsidian/workspace-2.json", False),
])
def test_edge_cases(patterns: list[str], key: str, is_dir: bool) -> None:
    check(patterns, [(key, is_dir)])


def test_bad_patterns_are_refused_as_pathspec_refuses_them() -> None:
    for bad in (["!"], ["a\\"], ["x/a\\"]):
        with pytest.raises(ValueError):
            IgnoreRules(bad)


def test_a_plain_folder_decides_by_name_alone() -> None:
    rules = IgnoreRules(list(DEFAULT_PATTERNS))
    notes = rules.folder("area-01/topic-2")
    assert notes is rules.folder("area-02/topic-7")  # one shared view
    assert notes.files is not None and notes.files("a.md.swp") and not notes.files("a.md")
    assert notes.dirs is not None and notes.dirs(".git") and not notes.dirs("sub")
    # inside an ignored folder everything is: one constant, no name is looked at
    inside = rules.folder("x/.git/objects")
    assert inside.files is not None and inside.files("anything")
    # below `.obsidian` the anchored patterns are live; elsewhere they are gone
    assert rules.ignored(".obsidian/workspace-mobile.json", False)
    assert not rules.ignored("x/.obsidian/workspace.json", False)
    assert len(rules.folder("a").live) < len(rules.root.live)
