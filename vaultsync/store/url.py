"""Turn a remote URL into a store. Network backends are imported only when a URL
names them, so a directory sync never pays for s3fs, paramiko or webdavclient3."""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from vaultsync.errors import UsageError

if TYPE_CHECKING:  # only annotations: the CLI's `redact` needs no store imported
    from vaultsync.store.base import Store

# scheme -> module under vaultsync.store exposing `from_url(url, options) -> Store`
NETWORK_SCHEMES = {"s3": "s3", "webdav": "webdav", "webdavs": "webdav", "sftp": "sftp"}


def open_store(url: str, options: Mapping[str, str] | None = None) -> Store:
    options = options or {}
    if not url or not url.strip():
        raise UsageError("empty remote URL")
    if "://" not in url:
        return _local(url)
    try:
        urlsplit(url).port  # noqa: B018 - parsing is the check: brackets, port
    except ValueError as exc:
        raise UsageError(f"bad remote URL {redact(url)}: {exc}") from None
    scheme = url.split("://", 1)[0].lower()
    if scheme == "file":
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise UsageError(f"bad remote URL {display_url(url)}: file:// URLs take no host")
        if not parts.path:
            raise UsageError(f"bad remote URL {display_url(url)}: no path")
        return _local(unquote(parts.path))
    if scheme == "memory":
        from vaultsync.store.memory import MemoryStore

        return MemoryStore.named(url.split("://", 1)[1])
    module_name = NETWORK_SCHEMES.get(scheme)
    if module_name is None:
        raise UsageError(
            f"unsupported remote URL scheme {scheme!r} (use a path, file://, s3://, "
            "webdav://, webdavs:// or sftp://)"
        )
    try:
        module = importlib.import_module(f"vaultsync.store.{module_name}")
    except ImportError as exc:
        raise UsageError(
            f"{scheme}:// remotes need extra packages ({exc.name} is missing): "
            "pip install 'vaultsync[remotes]'"
        ) from None
    return module.from_url(url, options)  # type: ignore[no-any-return]


def _local(path: str) -> Store:
    from vaultsync.store.local import LocalStore

    return LocalStore(os.path.expanduser(path))


def display_url(url: str) -> str:
    """The URL without any password or user-info secret, safe to print (whatever the URL:
    a malformed one is redacted, never an exception)."""
    if "://" not in url:
        return url
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # a bad port or bracket: keep the text, drop the secret
        return redact(url)
    if parts.password is None and "@" not in parts.netloc:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if port:
        host += f":{port}"
    user = f"{parts.username}@" if parts.username else ""
    return f"{parts.scheme}://{user}{host}{parts.path}"


# scheme://USERINFO@ up to the last '@' of the authority (as urlsplit reads it)
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)([^\s/?#]*)@")


def redact(text: str) -> str:
    """`text` with the password of every URL in it replaced by `***`
    (`webdav://ann:***@host/notes`): for log lines, command lines, messages."""
    if "://" not in text:
        return text

    def mask(m: re.Match[str]) -> str:
        user, colon, _secret = m.group(2).partition(":")
        return f"{m.group(1)}{user}{':***' if colon else ''}@"

    return _USERINFO.sub(mask, text)


def normalize_url(url: str) -> str:
    """What to store in config: an absolute file:// path for bare paths, else as given."""
    if "://" not in url:
        return "file://" + os.path.abspath(os.path.expanduser(url))
    return url
