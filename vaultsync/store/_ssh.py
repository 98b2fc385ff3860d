"""SSH connection settings and host-key rules for the SFTP store.

`resolve()` turns an sftp:// URL, the options and ~/.ssh/config into an `SSHTarget`;
`SFTPConnection` is fsspec's SFTPFileSystem connecting with our host-key policy (fsspec's
default, AutoAddPolicy, trusts any key: never used here).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import paramiko
from fsspec.implementations.sftp import SFTPFileSystem

from vaultsync.errors import UsageError
from vaultsync.store._remote import flag, number

# paramiko logs a failed handshake at ERROR with a traceback. With no handler configured
# (a CLI that has not set up logging), Python would print that on stderr; a NullHandler
# keeps it quiet and still lets the CLI's own handlers (--verbose) receive the records.
logging.getLogger("paramiko").addHandler(logging.NullHandler())


def _quiet_prefetch(original: Any) -> Any:
    def run(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            original(self, *args, **kwargs)
        except (OSError, EOFError, paramiko.SSHException):
            # The connection died under paramiko's prefetch thread (getfo/readv). The
            # reading call sees the dead transport itself and raises; left alone, the
            # thread's exception would print a traceback on stderr.
            pass

    run._vaultsync_quiet = True  # type: ignore[attr-defined]
    return run


_prefetch = getattr(paramiko.SFTPFile, "_prefetch_thread", None)
if _prefetch is not None and not getattr(_prefetch, "_vaultsync_quiet", False):
    paramiko.SFTPFile._prefetch_thread = _quiet_prefetch(_prefetch)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class SSHTarget:
    host: str
    root: str  # absolute, or relative to the login folder ("." for the folder itself)
    display_url: str  # no password
    known_hosts: str
    accept_new: bool
    timeout: float
    ssh_kwargs: dict[str, Any] = field(repr=False)  # for paramiko's SSHClient.connect
    proxy_command: str = ""

    def __repr__(self) -> str:
        return f"SSHTarget({self.display_url!r})"


class UnknownHostKey(paramiko.SSHException):
    def __init__(self, hostname: str, fingerprint: str) -> None:
        super().__init__(f"unknown host key for {hostname}")
        self.hostname = hostname
        self.fingerprint = fingerprint


class _RefuseUnknown(paramiko.MissingHostKeyPolicy):
    def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
        raise UnknownHostKey(hostname, key.fingerprint)


class _AcceptNew(paramiko.MissingHostKeyPolicy):
    """ssh's StrictHostKeyChecking=accept-new: remember an unknown key (never a changed
    one: paramiko raises BadHostKeyException for that before asking us)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
        client.get_host_keys().add(hostname, key.get_name(), key)
        folder = os.path.dirname(self.path)
        if folder:
            os.makedirs(folder, mode=0o700, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a") as f:
            f.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")


class SFTPConnection(SFTPFileSystem):
    """fsspec's SFTP filesystem, connecting with our host-key rules instead of
    AutoAddPolicy."""

    cachable = False  # fsspec's instance cache: never (a store owns its connection)

    def __init__(self, target: SSHTarget) -> None:
        self._target = target
        super().__init__(target.host, **target.ssh_kwargs)

    def _connect(self) -> None:
        t = self._target
        client = paramiko.SSHClient()
        if os.path.exists(t.known_hosts):
            client.load_host_keys(t.known_hosts)
        client.set_missing_host_key_policy(
            _AcceptNew(t.known_hosts) if t.accept_new else _RefuseUnknown())
        kwargs = dict(self.ssh_kwargs)
        if t.proxy_command:  # a fresh proxy process for every connection
            kwargs["sock"] = paramiko.ProxyCommand(t.proxy_command)
        try:
            client.connect(self.host, **kwargs)
            self.ftp = client.open_sftp()
            self.ftp.get_channel().settimeout(t.timeout)
        except BaseException:
            client.close()
            raise
        self.client = client


def resolve(url: str, options: Mapping[str, str]) -> SSHTarget:
    parts = urlsplit(url)
    if not parts.hostname:
        raise UsageError("bad SFTP URL: expected sftp://USER@HOST[:PORT]/PATH")
    try:
        url_port = parts.port
    except ValueError:
        raise UsageError("bad port in SFTP URL") from None
    alias = parts.hostname
    cfg_path = os.path.expanduser(options.get("ssh_config") or "~/.ssh/config")
    cfg: dict[str, Any] = {}
    if os.path.isfile(cfg_path):
        cfg = dict(paramiko.SSHConfig.from_path(cfg_path).lookup(alias))
    host = cfg.get("hostname") or alias
    port = url_port or int(cfg.get("port") or 22)
    user = (unquote(parts.username) if parts.username else None) or options.get("user") \
        or cfg.get("user") or _local_user()
    password = (unquote(parts.password) if parts.password is not None else None) \
        or os.environ.get("VAULTSYNC_SSH_PASSWORD") or options.get("password") or None
    if options.get("key_file") and not os.path.isfile(os.path.expanduser(options["key_file"])):
        raise UsageError(f"SSH key file {options['key_file']} does not exist")
    key_files = [os.path.expanduser(options["key_file"])] if options.get("key_file") \
        else [os.path.expanduser(p) for p in cfg.get("identityfile", [])
              if os.path.exists(os.path.expanduser(p))]
    only = flag(options, "identities_only") if "identities_only" in options \
        else str(cfg.get("identitiesonly", "no")).lower() == "yes"
    cfg_known = str(cfg.get("userknownhostsfile") or "").split()
    known_hosts = os.path.expanduser(
        options.get("known_hosts") or (cfg_known[0] if cfg_known else "~/.ssh/known_hosts"))
    accept_new = flag(options, "accept_new_host_key", "VAULTSYNC_SSH_ACCEPT_NEW_HOST_KEY") \
        or str(cfg.get("stricthostkeychecking", "")).lower() == "accept-new"
    path = unquote(parts.path)
    if path in ("/~", "/~/"):
        root = "."
    elif path.startswith("/~/"):
        root = path[3:].rstrip("/")
    else:
        root = path.rstrip("/") or "/"
    hostport = f"[{host}]" if ":" in host else host
    display = f"sftp://{user}@{hostport}{':' + str(port) if port != 22 else ''}" \
        f"{parts.path.rstrip('/')}"
    timeout = number(options, "timeout", 30.0)
    ssh_kwargs: dict[str, Any] = {
        "port": port, "username": user, "password": password,
        "key_filename": key_files or None, "allow_agent": not only,
        "look_for_keys": not only and not key_files, "timeout": min(timeout, 15.0),
        "banner_timeout": timeout, "auth_timeout": timeout,
    }
    return SSHTarget(host, root, display, known_hosts, accept_new, timeout, ssh_kwargs,
                     str(cfg.get("proxycommand") or ""))


def _local_user() -> str:
    import getpass

    return getpass.getuser()


