"""`vaultsync prune`: the retention policy from the command line or `[prune]` in
config.toml, run on the vault's repository (the mechanics are in repository/prune.py)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from vaultsync.engine.config import VaultConfig
from vaultsync.engine.session import Session
from vaultsync.errors import UsageError
from vaultsync.repository.prune import Pruner, PruneReport
from vaultsync.repository.retention import Policy, parse_duration
from vaultsync.store.counting import Traffic

DEFAULT_GRACE = "24h"


@dataclass
class PruneArgs:
    """What the command line said (None: not given, the config's or the default)."""

    keep_last: int | None = None
    keep_within: str | None = None
    keep_daily: int | None = None
    keep_weekly: int | None = None
    keep_monthly: int | None = None
    grace: str | None = None
    dry_run: bool = False


@dataclass
class PruneOutcome:
    report: PruneReport
    policy: Policy
    grace_s: int
    dry_run: bool
    traffic: Traffic
    duration_s: float

    def to_json(self) -> dict[str, object]:
        r = self.report
        return {
            "command": "prune", "dry_run": self.dry_run, "policy": self.policy.describe(),
            "grace_s": self.grace_s, "snapshots": r.snapshots,
            "kept": [{"snapshot": s, "reason": w} for s, w in sorted(r.kept.items())],
            "forgotten": r.forgotten, "deleted_snapshots": r.deleted_snapshots,
            "deleted_packs": r.deleted_packs, "deleted_index_segments": r.deleted_segments,
            "repacked_blobs": r.repacked_blobs, "repacked_bytes": r.repacked_bytes,
            "freed_bytes": r.freed_bytes, "planned_bytes": r.planned_bytes,
            "temps_removed": r.temps_removed, "record": r.record,
            "pending": [{"record": rid, "due_ns": due} for rid, due in r.pending],
            "notices": r.notices, "traffic": self.traffic.to_json(),
            "duration_s": round(self.duration_s, 3),
        }


def resolve(args: PruneArgs, config: VaultConfig) -> tuple[Policy, int]:
    """The policy and grace (seconds): each option from the command line, else from
    [prune] in config.toml, else none (grace: 24h)."""
    table = config.prune

    def count(name: str, given: int | None) -> int:
        value = given if given is not None else table.get(name, 0)
        return int(value)

    def duration(name: str, given: str | None, default: str = "0s") -> int:
        text = given if given is not None else str(table.get(name, default))
        try:
            return parse_duration(text)
        except ValueError as exc:
            raise UsageError(f"--{name.replace('_', '-')}: {exc}") from None

    policy = Policy(keep_last=count("keep_last", args.keep_last),
                    keep_within_s=duration("keep_within", args.keep_within),
                    keep_daily=count("keep_daily", args.keep_daily),
                    keep_weekly=count("keep_weekly", args.keep_weekly),
                    keep_monthly=count("keep_monthly", args.keep_monthly))
    return policy, duration("grace", args.grace, DEFAULT_GRACE)


def prune(root: str, args: PruneArgs) -> PruneOutcome:
    started = time.monotonic()
    with Session(root, "prune", write=not args.dry_run, keeps_state=False) as s:
        policy, grace_s = resolve(args, s.vault.config)
        pruner = Pruner(s.repo, policy, grace_s, device=s.device, own_base=s.vault.state.base,
                        dry_run=args.dry_run)
        report = pruner.run()
        return PruneOutcome(report, policy, grace_s, args.dry_run, s.report.traffic,
                            time.monotonic() - started)
