"""The sync engine: scan, merge, plan, apply, commit. `merge` and `plan` are pure."""
