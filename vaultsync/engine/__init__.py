"""The engine: scan, plan, apply and commit. It never prints; callers get reports."""
