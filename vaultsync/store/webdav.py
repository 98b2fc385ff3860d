"""WebDAV stores (Nextcloud, ownCloud, Apache mod_dav, WsgiDAV, rclone serve webdav, ...).

URL: `webdav://[USER[:PASSWORD]@]HOST[:PORT]/PATH` (plain HTTP) or `webdavs://...` (HTTPS).
User and password come from, first found: the URL's user-info, the environment
(`VAULTSYNC_WEBDAV_USER`, `VAULTSYNC_WEBDAV_PASSWORD`), the `user`/`password` options,
`~/.netrc` (the `machine` entry for HOST). Options: `timeout` (seconds, default 30),
`verify` (`no`, or a CA bundle path, for HTTPS).

webdavclient3's `Client` holds the configuration and the `requests` session; requests
go through that session directly so that every status code is ours to map (its helper
methods add a HEAD before each call, and its `mkdir()` prints to stdout, which is our
API). A PUT goes to a temporary name beside the target and is MOVEd over it with
`Overwrite: T`, so a reader never sees a partial object. Listing asks for
`Depth: infinity` and falls back to a walk with `Depth: 1` where the server refuses it.
A temporary object a killed run left behind is found by the same listing (asking for
`getlastmodified` too) and is stale when its date is older than the server's own `Date`
answer by more than the grace.

Errors: 401, and 403 on a read -> AuthError; 507 Insufficient Storage (full, over quota),
413 on a PUT, and 403 or 405 on a write (PUT, MKCOL, MOVE, DELETE: a read-only share) ->
RemoteRefused; 429, 423 and other 5xx -> TransientError.
"""

from __future__ import annotations

import netrc
import os
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import NamedTuple, NoReturn
from urllib.parse import quote, unquote, urlsplit

import requests
from webdav3.client import Client

from vaultsync.errors import (
    AuthError,
    NotARepository,
    ObjectNotFound,
    RemoteRefused,
    RemoteUnreachable,
    TransientError,
    UsageError,
)
from vaultsync.store._remote import join, number, temp_name
from vaultsync.store.base import Capabilities, ObjectInfo, Store, temporary_name

_PROPFIND_BODY = (
    b'<?xml version="1.0" encoding="utf-8"?>'
    b'<d:propfind xmlns:d="DAV:"><d:prop><d:resourcetype/><d:getcontentlength/></d:prop>'
    b"</d:propfind>"
)
_PROPFIND_DATED = _PROPFIND_BODY.replace(b"<d:getcontentlength/>",
                                         b"<d:getcontentlength/><d:getlastmodified/>")
_DAV = "{DAV:}"
_MAX_WALK = 100_000  # folders visited by a Depth: 1 walk, a bound on a hostile server
_WRITES = {"PUT", "MKCOL", "MOVE", "DELETE"}
PROBE_FIRST = 64 * 1024  # a larger object goes into a folder only once it is known to exist


class _Entry(NamedTuple):
    rel: str  # path relative to the folder asked about
    is_dir: bool
    size: int
    modified: str | None  # getlastmodified, when asked for (an HTTP date)
    date: str | None  # the answer's Date header: the server's clock


def from_url(url: str, options: Mapping[str, str]) -> WebDAVStore:
    parts = urlsplit(url)
    if parts.scheme not in ("webdav", "webdavs") or not parts.hostname:
        raise UsageError(f"bad WebDAV URL {parts.scheme}://{parts.hostname or ''}{parts.path}")
    try:
        port = parts.port
    except ValueError:
        raise UsageError("bad port in WebDAV URL") from None
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{port}" if port else "")
    user: str | None = unquote(parts.username) if parts.username else None
    password: str | None = unquote(parts.password) if parts.password is not None else None
    if user is None:
        user = os.environ.get("VAULTSYNC_WEBDAV_USER") or options.get("user") or None
    if password is None and user is not None:
        password = os.environ.get("VAULTSYNC_WEBDAV_PASSWORD") or options.get("password")
    if user is None or password is None:
        found = _netrc_lookup(parts.hostname, user)
        if found is not None:
            user, password = found
    verify: bool | str = True
    raw_verify = options.get("verify")
    if raw_verify:
        verify = False if raw_verify.lower() in ("no", "false", "0", "off") else raw_verify
    scheme = "https" if parts.scheme == "webdavs" else "http"
    display = f"{parts.scheme}://{user + '@' if user else ''}{netloc}{parts.path.rstrip('/')}"
    return WebDAVStore(
        f"{scheme}://{netloc}",
        unquote(parts.path).rstrip("/"),
        user=user,
        password=password,
        timeout=number(options, "timeout", 30.0),
        verify=verify,
        display_url=display,
    )


def _netrc_lookup(host: str, user: str | None) -> tuple[str, str] | None:
    try:
        auth = netrc.netrc().authenticators(host)
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return None
    if auth is None or (user is not None and auth[0] != user):
        return None
    return auth[0], auth[2] or ""


class WebDAVStore(Store):
    capabilities = Capabilities(atomic_put=True, ranged_get=True, conditional_put=False,
                                connections=4)

    def __init__(self, origin: str, base: str, *, user: str | None = None,
                 password: str | None = None, timeout: float = 30.0,
                 verify: bool | str = True, display_url: str | None = None) -> None:
        self.origin = origin
        self.base = base  # unquoted absolute path of the repository folder, no trailing /
        self.url = display_url or origin + base
        self.timeout = timeout
        self.client = Client({"webdav_hostname": origin, "webdav_timeout": timeout})
        self.session: requests.Session = self.client.session
        self.session.trust_env = False  # no implicit ~/.netrc or proxy: we looked ourselves
        self.session.verify = verify
        if user is not None:
            self.session.auth = (user, password or "")
        self._depth_infinity = True
        self._folders: set[str] = set()  # folders known to exist (a PUT went in)

    def __repr__(self) -> str:
        return f"WebDAVStore({self.url!r})"

    def close(self) -> None:
        self.session.close()

    def _href(self, name: str = "", folder: bool = False) -> str:
        path = join(self.base, name) if name else self.base
        return self.origin + quote(path + ("/" if folder else ""), safe="/")

    # -- requests and their errors -------------------------------------------------------

    def _request(self, method: str, url: str, *, data: bytes | None = None,
                 headers: dict[str, str] | None = None) -> requests.Response:
        try:
            return self.session.request(method, url, data=data, headers=headers,
                                        timeout=self.timeout, allow_redirects=False)
        except requests.exceptions.SSLError:
            raise RemoteUnreachable(f"TLS check failed for {self.url}") from None
        except (requests.ConnectionError, requests.Timeout,
                requests.exceptions.ChunkedEncodingError) as exc:
            raise TransientError(f"cannot reach {self.url}: {type(exc).__name__}") from None
        except requests.RequestException as exc:
            raise RemoteUnreachable(f"WebDAV request to {self.url} failed: "
                                    f"{type(exc).__name__}") from None
        except OSError as exc:  # e.g. requests' "invalid path" for a `verify` CA bundle
            raise RemoteUnreachable(f"WebDAV request to {self.url} failed: {exc}") from None

    def _fail(self, resp: requests.Response, method: str, name: str) -> NoReturn:
        code = resp.status_code
        what = f"{method} {name or '/'} -> HTTP {code}"
        if code == 507 or (code == 413 and method == "PUT"):
            raise RemoteRefused(f"remote is full: the WebDAV server refused a write ({what}) "
                                f"on {self.url}: insufficient storage or quota exceeded")
        if method in _WRITES and code in (403, 405):
            raise RemoteRefused(f"remote permission denied: the WebDAV server refused a "
                                f"write ({what}) on {self.url}: a read-only share?")
        if code in (401, 403):
            raise AuthError(f"WebDAV server refused our credentials or access ({what}) "
                            f"on {self.url}")
        if code == 429 or code == 423 or (code >= 500 and code != 507):
            raise TransientError(f"WebDAV server error ({what}) on {self.url}")
        if code == 404 and not self.exists():
            self._no_repository()
        raise RemoteUnreachable(f"WebDAV request failed ({what}) on {self.url}")

    def _no_repository(self) -> NoReturn:
        raise NotARepository(f"remote folder {self.url} does not exist; "
                             "`vaultsync init --remote URL` creates it")

    def _propfind(self, url: str, depth: str, body: bytes = _PROPFIND_BODY,
                  ) -> requests.Response:
        return self._request("PROPFIND", url, data=body,
                             headers={"Depth": depth, "Content-Type": "application/xml"})

    def _entries(self, resp: requests.Response, prefix: str | None = None,
                 ) -> Iterator[_Entry]:
        """Each response in a 207, its path relative to `prefix` (default: the base
        folder)."""
        try:
            root = ET.fromstring(resp.content)
        except ET.ParseError:
            raise RemoteUnreachable(f"unreadable PROPFIND answer from {self.url}") from None
        prefix = prefix if prefix is not None else self.base + "/"
        date = resp.headers.get("Date")
        for r in root.iter(f"{_DAV}response"):
            href = r.findtext(f"{_DAV}href") or ""
            path = unquote(urlsplit(href).path)
            if not (path.startswith(prefix) or path + "/" == prefix):
                continue
            rel = path[len(prefix):]
            is_dir = r.find(f".//{_DAV}resourcetype/{_DAV}collection") is not None
            size_text = r.findtext(f".//{_DAV}getcontentlength") or "0"
            try:
                size = int(size_text.strip())
            except ValueError:
                size = 0
            modified = r.findtext(f".//{_DAV}getlastmodified")
            yield _Entry(rel.rstrip("/"), is_dir or path.endswith("/"), size, modified, date)

    # -- the store -----------------------------------------------------------------------

    def exists(self) -> bool:
        resp = self._propfind(self._href(folder=True), "0")
        if resp.status_code == 404:
            return False
        if resp.status_code != 207:
            self._fail(resp, "PROPFIND", "")
        return True

    def prepare(self) -> None:
        self._mkcol_chain(self.base)

    def _mkcol_chain(self, path: str, floor: str = "") -> None:
        """MKCOL `path`, creating missing parents down from `floor` (bounded by depth)."""
        missing: list[str] = []
        current = path
        for _ in range(64):
            status = self._mkcol(current)
            if status == 0:
                break
            if status == 409 and current.rpartition("/")[0] not in ("", floor):
                missing.append(current)
                current = current.rpartition("/")[0]
                continue
            if status == 409:
                self._no_repository()
        for folder in reversed(missing):
            if self._mkcol(folder) == 409:
                self._no_repository()

    def _mkcol(self, path: str) -> int:
        """0 when the folder exists now, 409 when its parent is missing; fails otherwise."""
        url = self.origin + quote(path + "/", safe="/")
        resp = self._request("MKCOL", url)
        if resp.status_code in (201, 405):  # created, or already there
            return 0
        if resp.status_code == 409:
            return 409
        # another writer may have made it first (Apache answers such a race with 403)
        check = self._propfind(url, "0")
        if check.status_code == 207 and any(
            e.is_dir for e in self._entries(check, prefix=path + "/")
        ):
            return 0
        self._fail(resp, "MKCOL", path)

    def _get(self, name: str) -> bytes:
        resp = self._request("GET", self._href(name))
        if resp.status_code == 200:
            return resp.content
        if resp.status_code == 404 and self.exists():
            raise ObjectNotFound(name)
        self._fail(resp, "GET", name)

    def _get_range(self, name: str, offset: int, length: int) -> bytes:
        if length == 0:
            if self._stat(name) is None:
                raise ObjectNotFound(name)
            return b""
        headers = {"Range": f"bytes={offset}-{offset + length - 1}"}
        resp = self._request("GET", self._href(name), headers=headers)
        if resp.status_code == 206:
            return resp.content
        if resp.status_code == 200:  # the server ignored the range
            return resp.content[offset:offset + length]
        if resp.status_code == 416:
            return b""  # past the end: Store reports the short read
        if resp.status_code == 404 and self.exists():
            raise ObjectNotFound(name)
        self._fail(resp, "GET", name)

    def _put(self, name: str, data: bytes) -> None:
        tmp = temp_name(name)
        folder = name.rpartition("/")[0]
        if folder and folder not in self._folders and len(data) > PROBE_FIRST:
            # a large object is not sent into a folder that may not exist (a refused PUT
            # has been sent whole): make sure of the folder first, one small request
            self._mkcol_chain(join(self.base, folder), floor=self.base)
            self._folders.add(folder)
        resp = self._request("PUT", self._href(tmp), data=bytes(data))
        if resp.status_code in (404, 409) and folder:
            self._mkcol_chain(join(self.base, folder), floor=self.base)
            resp = self._request("PUT", self._href(tmp), data=bytes(data))
        if resp.status_code in (200, 201, 204) and folder:
            self._folders.add(folder)
        if resp.status_code == 409 or (resp.status_code == 404 and "/" not in name):
            if not self.exists():
                self._no_repository()
        if resp.status_code not in (200, 201, 204):
            self._fail(resp, "PUT", name)
        try:
            moved = self._request("MOVE", self._href(tmp),
                                  headers={"Destination": self._href(name), "Overwrite": "T"})
        except BaseException:  # Ctrl-C, SIGTERM, a dropped connection: leave no temp
            self._discard(tmp)
            raise
        if moved.status_code not in (201, 204):
            self._discard(tmp)
            self._fail(moved, "MOVE", name)

    def _discard(self, tmp: str) -> None:
        try:
            self.session.request("DELETE", self._href(tmp), timeout=min(self.timeout, 5.0),
                                 allow_redirects=False)
        except requests.RequestException:
            pass  # prune removes temporary objects a run could not

    def _delete(self, name: str) -> None:
        resp = self._request("DELETE", self._href(name))
        if resp.status_code in (200, 204, 404):
            return
        self._fail(resp, "DELETE", name)

    def _stat(self, name: str) -> ObjectInfo | None:
        resp = self._propfind(self._href(name), "0")
        if resp.status_code == 404:
            if not self.exists():
                self._no_repository()
            return None
        if resp.status_code in (301, 302, 307, 308):
            return None  # Apache redirects a folder to its name with a trailing slash
        if resp.status_code != 207:
            self._fail(resp, "PROPFIND", name)
        for e in self._entries(resp):
            if e.rel == name:
                return None if e.is_dir else ObjectInfo(name, e.size)
        return None

    def _list(self, prefix: str) -> Iterator[ObjectInfo]:
        for e in self._files(prefix, _PROPFIND_BODY):
            yield ObjectInfo(e.rel, e.size)

    def _stale_temporaries(self, prefix: str, older_than_s: float) -> list[str]:
        found: list[str] = []
        for e in self._files(prefix, _PROPFIND_DATED):
            if temporary_name(e.rel):
                age = _age(e)
                if age is not None and age > older_than_s:
                    found.append(e.rel)
        return found

    def _remove_temporary(self, name: str) -> None:
        # a DELETE of a collection deletes all it holds: only a file goes (stat answers
        # None for a folder, and for a name already gone)
        if self._stat(name) is not None:
            self._delete(name)

    def _files(self, prefix: str, body: bytes) -> Iterator[_Entry]:
        """Every file (temporary ones too) whose path starts with `prefix`."""
        folder = prefix.rpartition("/")[0]
        resp = self._propfind(self._href(folder, folder=True), "infinity", body) \
            if self._depth_infinity else None
        if resp is not None and resp.status_code in (400, 403, 501):
            self._depth_infinity = False  # e.g. nginx, or Apache without DavDepthInfinity
            resp = None
        if resp is None:
            yield from self._walk(folder, prefix, body)
            return
        if resp.status_code == 404:
            if not self.exists():
                self._no_repository()
            return
        if resp.status_code != 207:
            self._fail(resp, "PROPFIND", folder)
        for e in sorted(self._entries(resp), key=lambda e: e.rel):
            if not e.is_dir and e.rel.startswith(prefix):
                yield e

    def _walk(self, folder: str, prefix: str, body: bytes) -> Iterator[_Entry]:
        todo = [folder]
        for _ in range(_MAX_WALK):
            if not todo:
                return
            current = todo.pop()
            resp = self._propfind(self._href(current, folder=True), "1", body)
            if resp.status_code == 404:
                if current == folder and not self.exists():
                    self._no_repository()
                continue
            if resp.status_code != 207:
                self._fail(resp, "PROPFIND", current)
            for e in sorted(self._entries(resp), key=lambda e: e.rel):
                if e.rel == current or not e.rel:
                    continue
                if e.is_dir:
                    if e.rel.startswith(prefix) or prefix.startswith(e.rel + "/"):
                        todo.append(e.rel)
                elif e.rel.startswith(prefix):
                    yield e
        raise RemoteUnreachable(f"listing {self.url} did not end after {_MAX_WALK} folders")


def _age(e: _Entry) -> float | None:
    """Seconds since `e` was last modified, by the server's clock (its Date header; ours
    if it sent none); None when its date cannot be read (then it is never stale)."""
    modified = _timestamp(e.modified)
    if modified is None:
        return None
    now = _timestamp(e.date)
    return (time.time() if now is None else now) - modified


def _timestamp(text: str | None) -> float | None:
    if not text:
        return None
    try:
        when = parsedate_to_datetime(text.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": UTC, place unknown
        when = when.replace(tzinfo=UTC)
    return when.timestamp()
