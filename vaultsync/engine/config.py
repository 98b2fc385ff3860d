"""`VAULT/.vaultsync/config.toml`: remote URL, device id and name, options."""

from __future__ import annotations

import json
import os
import secrets
import socket
import tomllib
from dataclasses import dataclass, field, replace

from vaultsync.errors import ConfigError

DEFAULT_OPTIONS: dict[str, int] = {"max_delete": 50, "trash_days": 30}
# what each option may be: max_delete is a percentage (as --max-delete); trash_days up to
# a century
OPTION_RANGES: dict[str, tuple[int, int]] = {"max_delete": (0, 100), "trash_days": (0, 36500)}


def new_device_id() -> str:
    return secrets.token_hex(16)


def default_device_name() -> str:
    name = socket.gethostname().split(".")[0] or "device"
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name)[:40]


def machine_id() -> str:
    """This machine, lastingly: systemd's machine id (a host name can change with the
    network or the container), else the host name."""
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            with open(path, encoding="ascii") as f:
                text = f.read().strip()
        except (OSError, ValueError):
            continue
        if text:
            return text
    return socket.gethostname()


def binding(root: str) -> str:
    """What ties a device id to one folder on one machine: copying `.vaultsync/`
    elsewhere changes it, and the copy registers as a new device."""
    return f"{machine_id()}:{os.path.realpath(root)}"


def legacy_binding(root: str) -> str:
    """The binding vaults recorded before machine ids (host name and path)."""
    return f"{socket.gethostname()}:{os.path.realpath(root)}"


@dataclass(frozen=True)
class VaultConfig:
    device_id: str
    device_name: str
    bound_to: str
    remote: str = ""
    options: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_OPTIONS))
    # passed to the store, e.g. endpoint = "http://nas:9000" for S3, key_file for SFTP
    remote_options: dict[str, str] = field(default_factory=dict)
    # [prune]: what a bare `vaultsync prune` keeps (PRUNE_KEYS), as given
    prune: dict[str, int | str] = field(default_factory=dict)

    def with_remote(self, remote: str) -> VaultConfig:
        return replace(self, remote=remote)

    def encode(self) -> str:
        lines = [
            "# vaultsync vault configuration",
            f"remote = {json.dumps(self.remote)}",
            f"device_id = {json.dumps(self.device_id)}",
            f"device_name = {json.dumps(self.device_name, ensure_ascii=False)}",
            f"bound_to = {json.dumps(self.bound_to, ensure_ascii=False)}",
            "",
            "[options]",
        ]
        lines += [f"{k} = {int(v)}" for k, v in sorted(self.options.items())]
        if self.remote_options:
            lines += ["", "[remote_options]"]
            lines += [f"{k} = {json.dumps(v)}" for k, v in sorted(self.remote_options.items())]
        if self.prune:
            lines += ["", "[prune]"]
            lines += [f"{k} = {json.dumps(v)}" for k, v in sorted(self.prune.items())]
        return "\n".join(lines) + "\n"


def parse_config(text: str, path: str) -> VaultConfig:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is malformed: {exc}") from None
    for key in ("device_id", "device_name", "bound_to"):
        if not isinstance(doc.get(key), str) or not doc[key]:
            raise ConfigError(f"{path} has no valid {key!r}; re-create it with 'vaultsync init'")
    device_id = doc["device_id"]
    if len(device_id) != 32 or any(c not in "0123456789abcdef" for c in device_id):
        raise ConfigError(f"{path} has a malformed device_id")
    remote = doc.get("remote", "")
    if not isinstance(remote, str):
        raise ConfigError(f"{path}: 'remote' must be a string")
    options = dict(DEFAULT_OPTIONS)
    raw_opts = doc.get("options", {})
    if not isinstance(raw_opts, dict):
        raise ConfigError(f"{path}: [options] must be a table")
    for key, value in raw_opts.items():
        if key not in DEFAULT_OPTIONS:
            raise ConfigError(f"{path}: unknown option {key!r}")
        lo, hi = OPTION_RANGES[key]
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            raise ConfigError(f"{path}: option {key!r} must be a whole number from {lo} "
                              f"to {hi}, not {value!r}")
        options[key] = value
    remote_options = doc.get("remote_options", {})
    if not isinstance(remote_options, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in remote_options.items()):
        raise ConfigError(f"{path}: [remote_options] must map names to strings")
    return VaultConfig(device_id, doc["device_name"], doc["bound_to"], remote, options,
                       dict(remote_options), _prune_table(doc.get("prune", {}), path))


# [prune] keys: counts are whole numbers, durations strings such as "30d" or "24h"
PRUNE_COUNTS = ("keep_last", "keep_daily", "keep_weekly", "keep_monthly")
PRUNE_DURATIONS = ("keep_within", "grace")


def _prune_table(raw: object, path: str) -> dict[str, int | str]:
    from vaultsync.repository.retention import parse_duration

    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: [prune] must be a table")
    out: dict[str, int | str] = {}
    for key, value in raw.items():
        if key in PRUNE_COUNTS:
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 10**6:
                raise ConfigError(f"{path}: [prune] {key} must be a whole number from 0 to "
                                  f"1000000, not {value!r}")
        elif key in PRUNE_DURATIONS:
            if not isinstance(value, str):
                raise ConfigError(f"{path}: [prune] {key} must be a duration in quotes, "
                                  f"as in \"24h\", not {value!r}")
            try:
                parse_duration(value)
            except ValueError as exc:
                raise ConfigError(f"{path}: [prune] {key}: {exc}") from None
        else:
            raise ConfigError(f"{path}: unknown [prune] key {key!r} (known: "
                              f"{', '.join(PRUNE_COUNTS + PRUNE_DURATIONS)})")
        out[key] = value
    return out
