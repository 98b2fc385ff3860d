"""Small helpers shared by the network stores (no heavy imports here)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping

from vaultsync.errors import UsageError

TRUE = {"1", "yes", "true", "on"}
FALSE = {"0", "no", "false", "off", ""}


def flag(options: Mapping[str, str], key: str, env: str | None = None) -> bool:
    """A yes/no option, from `options[key]` or else the environment variable `env`."""
    raw = options.get(key)
    if raw is None and env is not None:
        raw = os.environ.get(env)
    value = (raw or "").strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise UsageError(f"option {key} must be yes or no, not {raw!r}")


def number(options: Mapping[str, str], key: str, default: float) -> float:
    raw = options.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(f"option {key} must be a number, not {raw!r}") from None
    if value <= 0:
        raise UsageError(f"option {key} must be positive")
    return value


def temp_name(final: str) -> str:
    """A temporary object name in the same folder as `final`. It starts with '.', so it
    never passes object-name validation and `list()` never shows it."""
    folder, _, _ = final.rpartition("/")
    tmp = f".tmp-{secrets.token_hex(8)}"
    return f"{folder}/{tmp}" if folder else tmp


def join(base: str, name: str) -> str:
    """`base/name` for a store root `base` (no trailing slash) and an object name."""
    return f"{base}/{name}" if base else name
