"""Which snapshots a retention policy keeps: a pure function of ids and times.

The rules are restic's and borg's, so users meet no surprise: `keep_last` keeps the N
newest; `keep_within` every snapshot younger than a duration (counted from the newest
snapshot, so a repository left alone for a month does not lose its recent history to
the calendar); `keep_daily/weekly/monthly` the newest snapshot of each of the N most
recent days, ISO weeks and months that have one (UTC). A snapshot any rule keeps is
kept. The policy only proposes: `prune` also keeps every head and every merge base the
heads still need, whatever the policy says.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from vaultsync.model import ObjectId

NS = 10**9
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
_DURATION = re.compile(r"([0-9]{1,9})([smhdwy])", re.ASCII)
MAX_DURATION_S = 100 * 365 * 86400


def parse_duration(text: str) -> int:
    """'24h', '7d', '1w2d', '0s' -> seconds. Raises ValueError with the rule."""
    text = text.strip().lower()
    pos, total = 0, 0
    while pos < len(text):
        m = _DURATION.match(text, pos)
        if m is None:
            raise ValueError(f"{text!r} is not a duration: use a number and a unit, "
                             "s m h d w y, as in 24h, 7d or 1w2d")
        total += int(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not text:
        raise ValueError("an empty duration: use a number and a unit, as in 24h")
    if total > MAX_DURATION_S:
        raise ValueError(f"{text!r} is longer than a hundred years")
    return total


@dataclass(frozen=True)
class Policy:
    keep_last: int = 0
    keep_within_s: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0

    @property
    def empty(self) -> bool:
        return not (self.keep_last or self.keep_within_s or self.keep_daily
                    or self.keep_weekly or self.keep_monthly)

    def describe(self) -> str:
        parts = [f"{name} {value}" for name, value in (
            ("last", self.keep_last), ("daily", self.keep_daily),
            ("weekly", self.keep_weekly), ("monthly", self.keep_monthly)) if value]
        if self.keep_within_s:
            parts.append(f"within {self.keep_within_s}s")
        return ", ".join(parts) or "heads only"


def _day(t: int) -> object:
    return _utc(t).date()


def _week(t: int) -> object:
    return _utc(t).isocalendar()[:2]


def _month(t: int) -> object:
    d = _utc(t)
    return (d.year, d.month)


def _utc(time_ns: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(time_ns // NS, dt.UTC)


FUTURE_SLACK_NS = 3600 * NS


def keep(snapshots: Iterable[tuple[ObjectId, int]], policy: Policy,
         now_ns: int | None = None) -> dict[ObjectId, str]:
    """The snapshots (id, time_ns) the policy keeps, each with the first rule that keeps
    it. Ties in time are broken by id, so the answer never depends on input order.

    With `now_ns`, a snapshot dated more than an hour after it (a device whose clock is
    ahead) is kept and takes no part in the rules: it neither anchors --keep-within nor
    takes the newest day, week or month from the real recent history."""
    kept: dict[ObjectId, str] = {}
    snapshots = list(snapshots)
    if now_ns is not None:
        for sid, t in snapshots:
            if t > now_ns + FUTURE_SLACK_NS:
                kept[sid] = "dated in the future"
        snapshots = [(sid, t) for sid, t in snapshots if sid not in kept]
    ordered = sorted(snapshots, key=lambda s: (-s[1], s[0]))  # newest first
    for sid, _ in ordered[: policy.keep_last]:
        kept.setdefault(sid, "last")
    if policy.keep_within_s and ordered:
        newest = ordered[0][1]
        for sid, t in ordered:
            if newest - t <= policy.keep_within_s * NS:
                kept.setdefault(sid, "within")
    buckets: list[tuple[int, str, Callable[[int], object]]] = [
        (policy.keep_daily, "daily", _day), (policy.keep_weekly, "weekly", _week),
        (policy.keep_monthly, "monthly", _month)]
    for count, rule, bucket in buckets:
        seen: set[object] = set()
        for sid, t in ordered:
            if len(seen) >= count:
                break
            b = bucket(t)
            if b not in seen:
                seen.add(b)
                kept.setdefault(sid, rule)
    return kept
