"""Ignore rules in gitignore syntax, on top of defaults suited to vaults:
`.vaultsyncignore` at the vault's root (it syncs, so its rules travel with the vault) and
`.vaultsync/ignore` (this device only, e.g. big attachments on a small laptop).

An ignored path is not synced by this device: its local file is never uploaded, the
remote's version is never written here, and a path that becomes ignored is never deleted
for the other devices (its last synced version stays as is).

The rules are compiled once, then decided per folder: walking down, each pattern is a
small automaton over path segments, so what a folder's children can still match is known
before any child is looked at. Patterns that can match nothing below a folder drop out;
what is left is, for nearly every folder, a test of the child's name alone (one set
lookup or prefix/suffix test, and a single combined regex on the rare hit). The
semantics are those of `pathspec.GitIgnoreSpec` (the test oracle, see
tests/test_ignore_matcher.py) with one deliberate difference, git's: a bracket
expression never matches the `/` between two names.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass

from vaultsync.errors import ConfigError

IGNORE_FILE = ".vaultsyncignore"
DEVICE_IGNORE_FILE = ".vaultsync/ignore"
DEFAULT_PATTERNS = (
    # Obsidian: per-device window layout and the app's own trash
    ".obsidian/workspace.json",
    ".obsidian/workspace-mobile.json",
    ".obsidian/workspace*.json",
    ".obsidian/cache",
    ".trash/",
    # operating systems
    ".DS_Store",
    "._*",
    "Thumbs.db",
    "desktop.ini",
    ".Spotlight-V100/",
    ".fseventsd/",
    # editors' swap, backup, lock and temporary files
    "*.swp",
    "*.swo",
    "*~",
    ".#*",
    "#*#",
    "*.tmp",
    ".~lock.*#",
    "~$*",
    # other sync tools' and version control state
    ".git/",
    ".stfolder/",
    ".stversions/",
    ".sync/",
    "*.sync-conflict-*",
)

# How a pattern's match counts (as in git/pathspec): a match of the whole path (level 2)
# beats a match of one of its folders (level 1); among equals the last pattern wins.
_ANY, _SLASHED, _SEQ = 0, 1, 2  # kinds: every path; every path with a '/'; a sequence
_OPT, _AFTER = 0, 1  # a sequence's end: the path (2) or a folder of it (1); a folder only
STAR = None  # a `**` token: any number of whole names


class BadPattern(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class _Glob:
    """One name's glob: `rx` matches a whole name; `lits` its literal runs in order
    with `head`/`tail` whether the glob starts/ends with one (for cheap pre-checks)."""

    rx: re.Pattern[str]
    lits: tuple[str, ...]
    head: bool
    tail: bool
    source: str  # the regex, for combining

    @property
    def exact(self) -> str | None:
        return self.lits[0] if self.head and self.tail and len(self.lits) == 1 else None


@dataclass(frozen=True, slots=True)
class _Pattern:
    index: int
    include: bool  # True: ignore what it matches; False: `!pattern`
    kind: int
    level: int = 2  # _SLASHED and _AFTER: the level of a match
    tokens: tuple[_Glob | None, ...] = ()  # _SEQ: globs and STARs
    tail: int = _OPT


def _glob(seg: str) -> _Glob:
    """A glob of one name, as gitignore reads it. Raises BadPattern for a trailing
    backslash, _Discard for a bracket never closed (git drops such a pattern)."""
    if seg == "*":
        return _Glob(re.compile(r"[^/]+"), (), False, False, r"[^/]+")
    out: list[str] = []
    lits: list[str] = []
    run: list[str] = []
    head = True
    i, end = 0, len(seg)

    def wild(regex: str) -> None:
        nonlocal head
        if run:
            lits.append("".join(run))
            run.clear()
        elif not lits:
            head = False
        out.append(regex)

    while i < end:
        ch = seg[i]
        i += 1
        if ch == "\\":
            if i == end:
                raise BadPattern(f"escape character at the end of {seg!r}")
            run.append(seg[i])
            out.append(re.escape(seg[i]))
            i += 1
        elif ch == "*":
            wild("[^/]*")
        elif ch == "?":
            wild("[^/]")
        elif ch == "[":
            j = i
            if j < end and seg[j] in "!^":
                j += 1
            if j < end and seg[j] == "]":
                j += 1
            while j < end and seg[j] != "]":
                j += 1
            if j >= end:
                raise _Discard
            j += 1
            expr = "["
            if seg[i] in "!^":
                expr += "^"
                i += 1
            wild(expr + seg[i:j].replace("\\", "\\\\"))
            i = j
        else:
            run.append(ch)
            out.append(re.escape(ch))
    tail = bool(run)
    if run:
        lits.append("".join(run))
    if not lits:
        head = False
    source = "".join(out)
    return _Glob(re.compile(source), tuple(lits), head, tail, source)


class _Discard(Exception):
    """A pattern git ignores (an unclosed bracket)."""


def parse(line: str, index: int) -> _Pattern | None:
    """One gitignore line, or None for a blank line, a comment or a pattern git drops."""
    if not line.endswith("\\ "):
        line = line.rstrip()
    if not line or line.startswith("#") or line == "/":
        return None
    include = True
    if line.startswith("!"):
        include, line = False, line[1:]
    segs = line.split("/")
    is_dir = not segs[-1]
    if not segs[0]:
        del segs[0]  # anchored at the root
    elif len(segs) == 1 or (len(segs) == 2 and not segs[1]):
        if segs[0] != "**":  # a bare name matches at any depth
            segs.insert(0, "**")
    if not segs:
        raise BadPattern(f"invalid pattern {line!r}")
    if not segs[-1]:
        segs[-1] = "**"
    for i in range(len(segs) - 1, 0, -1):
        if segs[i - 1] == "**" and segs[i] == "**":
            del segs[i]
    if segs == ["**"]:
        return _Pattern(index, include, _SLASHED, 1) if is_dir else _Pattern(index, include, _ANY)
    if segs == ["**", "*"]:
        return _Pattern(index, include, _ANY)
    if segs == ["**", "*", "**"]:
        return _Pattern(index, include, _SLASHED, 1 if is_dir else 2)
    tokens: list[_Glob | None] = []
    tail, level = _OPT, 2
    last = len(segs) - 1
    try:
        for i, seg in enumerate(segs):
            if seg != "**":
                tokens.append(_glob(seg))
            elif i < last:
                tokens.append(STAR)
            else:
                tail, level = _AFTER, 1 if is_dir else 2
    except _Discard:
        return None
    return _Pattern(index, include, _SEQ, level, tuple(tokens), tail)


# ---- a pattern's state at a folder ---------------------------------------------------
# For a _SEQ pattern: the token positions reachable after the folder's names (a set),
# and whether the whole sequence already matched the folder or one above it ("hit").

def _closure(tokens: tuple[_Glob | None, ...], states: frozenset[int]) -> frozenset[int]:
    out = set(states)
    for p in sorted(states):
        while p < len(tokens) and tokens[p] is STAR:
            p += 1
            out.add(p)
    return frozenset(out)


def _step(tokens: tuple[_Glob | None, ...], states: frozenset[int], name: str) -> frozenset[int]:
    nxt = set()
    for p in states:
        if p < len(tokens):
            tok = tokens[p]
            if tok is STAR:
                nxt.add(p)
            elif tok.rx.fullmatch(name):
                nxt.add(p + 1)
    return _closure(tokens, frozenset(nxt))


def _child_level(pat: _Pattern, states: frozenset[int], hit: bool, depth: int, name: str,
                 is_dir: bool) -> int:
    """How `pat`, in `states` at a folder `depth` names deep, matches the child `name`
    (0: not at all). A folder is matched as 'path/': one more, empty, name."""
    if pat.kind == _ANY:
        return 2
    if pat.kind == _SLASHED:
        return pat.level if is_dir or depth else 0
    end = len(pat.tokens)
    after = _step(pat.tokens, states, name)
    if is_dir:
        hit = hit or end in after
        full = end in _step(pat.tokens, after, "")
    else:
        full = end in after
    if pat.tail == _AFTER:
        return pat.level if hit else 0
    return 2 if full else 1 if hit else 0


# ---- deciding a folder's children ----------------------------------------------------

Decide = Callable[[str], bool]
Live = tuple[tuple[_Pattern, frozenset[int], bool], ...]  # (pattern, states, hit)


def _decider(const: tuple[int, int, bool], alts: list[tuple[int, int, bool, _Glob]],
             ) -> Decide | None:
    """A test of a child's name: `const` (level, index, include) holds for every child,
    each alternative (level, index, include, glob) for the names its glob matches; the
    highest (level, index) wins. None: no child can be ignored."""
    base = const[2] if const[0] else False
    alts = sorted((a for a in alts if a[:2] > const[:2]), key=lambda a: a[:2], reverse=True)
    while alts and alts[-1][2] == base:  # the last ones change nothing when they match
        alts.pop()
    if not alts:
        return (lambda name: True) if base else None
    exact = {a[3].exact for a in alts if a[3].exact is not None}
    if all(a[3].exact is not None for a in alts):  # literal names only
        table: dict[str, bool] = {}
        for a in alts:
            table.setdefault(a[3].exact, a[2])  # type: ignore[arg-type]
        return lambda name: table.get(name, base)
    groups: list[tuple[bool, list[str]]] = []
    for a in alts:
        if groups and groups[-1][0] == a[2]:
            groups[-1][1].append(a[3].source)
        else:
            groups.append((a[2], [a[3].source]))
    rx = re.compile("|".join(f"(?P<g{i}>{'|'.join(srcs)})" for i, (_, srcs) in enumerate(groups)))
    outcome = {f"g{i}": inc for i, (inc, _) in enumerate(groups)}
    prefixes, suffixes, inside = [], [], []
    for a in alts:  # what a name must have for the regex to be worth running
        g = a[3]
        if g.exact is not None:
            continue
        if g.head:
            prefixes.append(g.lits[0])
        elif g.tail:
            suffixes.append(g.lits[-1])
        elif g.lits:
            inside.append(max(g.lits, key=len))
        else:  # no literal at all ('*', '?.'...): every name
            prefixes.append("")
    pre, suf = tuple(prefixes), tuple(suffixes)
    full = rx.fullmatch

    def decide(name: str) -> bool:
        m = full(name)
        return base if m is None else outcome[m.lastgroup]  # type: ignore[index]

    if "" in pre or len(inside) > 1:
        return decide
    if inside:
        part = inside[0]
        return lambda name: (decide(name) if name in exact or name.startswith(pre)
                             or name.endswith(suf) or part in name else base)
    return lambda name: (decide(name) if name in exact or name.startswith(pre)
                         or name.endswith(suf) else base)


class Folder:
    """The rules as they apply to one folder's children: `files(name)`, `dirs(name)`
    say whether that child is ignored; None where no child of that kind can be.
    Folders whose patterns stand in the same state share one view."""

    __slots__ = ("rules", "depth", "live", "files", "dirs", "_children")

    def __init__(self, rules: IgnoreRules, depth: int, live: Live) -> None:
        self.rules = rules
        self.depth = depth  # 0 for the root, else 1 (only '*/' tells deeper ones apart)
        self.live = live  # every pattern that can still match here or below
        self._children: dict[str, Folder] = {}
        self.files = self._build(False)
        self.dirs = self._build(True)

    def ignored(self, name: str, is_dir: bool) -> bool:
        decide = self.dirs if is_dir else self.files
        return decide is not None and decide(name)

    def child(self, name: str) -> Folder:
        """The view of the folder `name` inside this one."""
        sub = self._children.get(name)
        if sub is None:
            live = []
            for pat, states, hit in self.live:
                if pat.kind != _SEQ:
                    live.append((pat, states, hit))
                    continue
                nxt = _step(pat.tokens, states, name)
                now = hit or len(pat.tokens) in nxt
                if nxt or now:  # else: nothing below here can match it
                    live.append((pat, nxt, now))
            sub = self.rules._view(1, tuple(live))
            if len(self._children) < 4096:
                self._children[name] = sub
        return sub

    def _build(self, is_dir: bool) -> Decide | None:
        const = (0, -1, False)
        alts: list[tuple[int, int, bool, _Glob]] = []
        for pat, states, hit in self.live:
            i, inc = pat.index, pat.include
            if pat.kind == _ANY:
                const = max(const, (2, i, inc))
                continue
            if pat.kind == _SLASHED:
                if is_dir or self.depth:
                    const = max(const, (pat.level, i, inc))
                continue
            glob = pat.tokens[-1]
            assert glob is not None  # a sequence ends with a name's glob
            ready = len(pat.tokens) - 1 in states  # the child's name meets the last glob
            if pat.tail == _AFTER:
                if hit:
                    const = max(const, (pat.level, i, inc))
                elif is_dir and ready:
                    alts.append((pat.level, i, inc, glob))
            elif not is_dir:
                if hit:
                    const = max(const, (1, i, inc))
                if ready:
                    alts.append((2, i, inc, glob))
            elif glob.rx.fullmatch(""):  # 'name/' itself may match: rare, ask each name
                return self._slow(is_dir)
            elif hit:
                const = max(const, (1, i, inc))
            elif ready:
                alts.append((1, i, inc, glob))
        return _decider(const, alts)

    def _slow(self, is_dir: bool) -> Decide:
        live, depth = self.live, self.depth

        def decide(name: str) -> bool:
            best = (0, -1, False)
            for pat, states, hit in live:
                level = _child_level(pat, states, hit, depth, name, is_dir)
                if level:
                    best = max(best, (level, pat.index, pat.include))
            return best[2]

        return decide


class IgnoreRules:
    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]
        patterns = []
        for index, line in enumerate(lines):
            pat = parse(line, index)
            if pat is not None:
                patterns.append(pat)
        self.patterns = patterns
        self._shared: dict[tuple, Folder] = {}
        start = [(p, _closure(p.tokens, frozenset((0,))), False) for p in patterns]
        self.root = Folder(self, 0, tuple(start))
        self._folders: dict[str, Folder] = {"": self.root}

    @classmethod
    def load(cls, root: str) -> IgnoreRules:
        lines = list(DEFAULT_PATTERNS)
        for name in (IGNORE_FILE, DEVICE_IGNORE_FILE):
            path = os.path.join(root, *name.split("/"))
            try:
                with open(path, encoding="utf-8") as f:
                    lines += f.read().splitlines()
            except FileNotFoundError:
                pass
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"cannot read {path}: {exc}") from None
        try:
            return cls(lines)
        except (ValueError, re.error) as exc:
            raise ConfigError(f"bad ignore pattern in {root}: {exc}") from None

    def _view(self, depth: int, live: Live) -> Folder:
        """The view for patterns in these states (shared: most folders of a vault only
        ever see the same few name tests)."""
        key = tuple((p.index, s, h) for p, s, h in live)
        found = self._shared.get(key)
        if found is None:
            found = Folder(self, depth, live)
            if len(self._shared) < 65536:
                self._shared[key] = found
        return found

    def folder(self, key: str) -> Folder:
        """The view of the folder with the NFC path `key` ('' for the vault's root)."""
        found = self._folders.get(key)
        if found is None:
            parent, _, name = key.rpartition("/")
            missing = [name]
            while (view := self._folders.get(parent)) is None:
                parent, _, name = parent.rpartition("/")
                missing.append(name)
            for name in reversed(missing):
                view = view.child(name)
            found = view
            if len(self._folders) < 1 << 20:
                self._folders[key] = found
        return found

    def ignored(self, key: str, is_dir: bool) -> bool:
        """Whether the NFC path `key` is ignored (a folder matches `name/` patterns)."""
        folder, _, name = key.rpartition("/")
        view = self._folders.get(folder)
        if view is None:
            view = self.folder(folder)
        return view.ignored(name, is_dir)

