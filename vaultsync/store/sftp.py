"""SFTP stores: any SSH server, through fsspec's SFTPFileSystem (paramiko).

URL: `sftp://[USER@]HOST[:PORT]/ABSOLUTE/PATH`; `sftp://HOST/~/PATH` is relative to the
login folder. Authentication as ssh does it: the SSH agent, the `key_file` option or
`IdentityFile` from ~/.ssh/config, then the default keys ~/.ssh/id_*. `HostName`, `Port`,
`User`, `IdentityFile`, `IdentitiesOnly`, `UserKnownHostsFile` and
`StrictHostKeyChecking accept-new` are read from ~/.ssh/config (option `ssh_config`).
A password may come from the URL, `VAULTSYNC_SSH_PASSWORD` or the `password` option.

Host keys are checked against `known_hosts` (option, default ~/.ssh/known_hosts). An
unknown host is REFUSED unless `accept_new_host_key=yes` (or
`VAULTSYNC_SSH_ACCEPT_NEW_HOST_KEY=1`), which records the new key like ssh's
`StrictHostKeyChecking=accept-new`; a changed key is always refused.

Reads (whole objects and ranges) are pipelined READ requests sent by the reader itself
(`_sftpread.read_range`: paramiko's prefetch thread read parts of a range twice under
load). Writes send the bytes with paramiko's pipelined `putfo` (the engine under `fs.put`; a
write through `fs.open` is not pipelined and ~20x slower) to a temporary name, then
`posix-rename` it over the target; the temporary file is removed on any failure. One a
killed run left is found by the listing walk (stale by its mtime against this machine's
clock: SFTP tells no server time) and removed only through real folders, never through
a symbolic link.

Errors: permission denied -> RemoteRefused; a write the server answers with a bare
"Failure" (OpenSSH's answer for a full or read-only disk: SFTP version 3 has no code for
either) -> RemoteRefused saying so; connection trouble -> TransientError.

One SSH connection per store, opened on first use and reopened after a transient
failure, carrying up to CHANNELS SFTP sessions (one channel each, opened as needed): each
request takes an idle session for itself, so up to CHANNELS pack transfers are in flight
at once and a clone or upload is not one round trip at a time. Sessions of a connection
that was dropped are never used again.
"""

from __future__ import annotations

import errno
import io
import stat as statmod
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import NoReturn, TypeVar

import paramiko

from vaultsync.errors import (
    AuthError,
    NotARepository,
    ObjectNotFound,
    RemoteRefused,
    RemoteUnreachable,
    TransientError,
    refusal,
)
from vaultsync.store._remote import join, temp_name
from vaultsync.store._sftpread import read_range
from vaultsync.store._ssh import SFTPConnection, SSHTarget, UnknownHostKey, resolve
from vaultsync.store.base import Capabilities, ObjectInfo, Store, temporary_name

T = TypeVar("T")
_MAX_WALK = 100_000
CHANNELS = 4  # SFTP sessions per connection (OpenSSH allows 10: MaxSessions)


def from_url(url: str, options: Mapping[str, str]) -> SFTPStore:
    return SFTPStore(resolve(url, options))


class SFTPStore(Store):
    capabilities = Capabilities(atomic_put=True, ranged_get=True, conditional_put=False,
                                connections=CHANNELS)

    def __init__(self, target: SSHTarget) -> None:
        self.target = target
        self.root = target.root
        self.url = target.display_url
        self._known_hosts = target.known_hosts
        self._fs: SFTPConnection | None = None
        self._lock = threading.RLock()  # the connection: made, dropped, sessions opened
        self._slots = threading.BoundedSemaphore(CHANNELS)  # sessions in use at most
        self._idle: list[paramiko.SFTPClient] = []  # sessions of the current connection
        self._generation = 0  # which connection: a session of an older one is closed

    def __repr__(self) -> str:
        return f"SFTPStore({self.url!r})"

    def _path(self, name: str = "") -> str:
        return join(self.root, name) if name else self.root

    # -- connection and errors -----------------------------------------------------------

    def _sftp(self) -> paramiko.SFTPClient:
        fs = self._fs
        if fs is not None:
            transport = fs.client.get_transport()
            if transport is not None and transport.is_active():
                return fs.ftp
            self._drop()
        self._fs = SFTPConnection(self.target)
        self._idle.append(self._fs.ftp)
        return self._fs.ftp

    def _drop(self, generation: int | None = None) -> None:
        """Close the connection (`generation`: only if it is still that one: a request
        that failed on a connection dropped meanwhile leaves the new one alone)."""
        with self._lock:
            if generation is not None and generation != self._generation:
                return
            fs, self._fs = self._fs, None
            self._generation += 1
            self._idle.clear()
        if fs is not None:
            try:
                fs.client.close()
            except Exception:  # noqa: BLE001 - closing a dead connection
                pass

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _connect(self) -> paramiko.SFTPClient:
        try:
            return self._sftp()
        except UnknownHostKey as exc:
            self._drop()
            raise AuthError(
                f"the SSH host key of {exc.hostname} ({exc.fingerprint}) is not in "
                f"{self._known_hosts}: check it and add it (connect once with ssh), or "
                "set accept_new_host_key=yes to trust it on first use"
            ) from None
        except paramiko.BadHostKeyException:
            self._drop()
            raise AuthError(
                f"the SSH host key of {self.url} does NOT match {self._known_hosts}: "
                "someone may be intercepting the connection; refusing"
            ) from None
        except paramiko.AuthenticationException:
            self._drop()
            raise AuthError(
                f"SSH authentication failed for {self.url}: check the key "
                "(key_file, ssh-agent, ~/.ssh/config) or password"
            ) from None
        except (paramiko.SSHException, EOFError, OSError) as exc:  # refused, reset, timeout
            self._drop()
            raise TransientError(f"cannot connect to {self.url}: {type(exc).__name__}") \
                from None

    def _session(self) -> tuple[paramiko.SFTPClient, int]:
        """An SFTP session for one request alone (a slot taken: `_release` it), and the
        connection it belongs to."""
        with self._lock:
            self._connect()
            generation = self._generation
            if self._idle:
                return self._idle.pop(), generation
            try:
                assert self._fs is not None
                extra = self._fs.client.open_sftp()
                extra.get_channel().settimeout(self.target.timeout)
            except (paramiko.SSHException, EOFError, OSError) as exc:
                self._drop()
                raise TransientError(f"cannot open an SFTP session on {self.url}: "
                                     f"{type(exc).__name__}") from None
            return extra, generation

    def _release(self, ftp: paramiko.SFTPClient, generation: int) -> None:
        with self._lock:
            if generation == self._generation:
                self._idle.append(ftp)
            else:
                try:
                    ftp.close()
                except Exception:  # noqa: BLE001 - a session of a dead connection
                    pass
        self._slots.release()

    def _run(self, fn: Callable[[paramiko.SFTPClient], T], name: str | None = None,
             write: bool = False) -> T:
        self._slots.acquire()
        try:
            ftp, generation = self._session()
        except BaseException:
            self._slots.release()
            raise
        try:
            return self._request(ftp, generation, fn, name, write)
        finally:
            self._release(ftp, generation)

    def _request(self, ftp: paramiko.SFTPClient, generation: int,
                 fn: Callable[[paramiko.SFTPClient], T], name: str | None,
                 write: bool) -> T:
        try:
            return fn(ftp)
        except FileNotFoundError:
            missing = not self._root_exists(ftp)
        except PermissionError:
            raise RemoteRefused(f"remote permission denied: {self.url}"
                                + (f" ({'writing' if write else 'reading'} {name})"
                                   if name else "")) from None
        except (paramiko.SSHException, EOFError, TimeoutError, ConnectionError) as exc:
            self._drop(generation)
            raise TransientError(f"SSH connection to {self.url} failed: "
                                 f"{type(exc).__name__}") from None
        except OSError as exc:
            if exc.errno in _NET_ERRNOS or not self._alive():  # "Socket is closed"
                self._drop(generation)
                raise TransientError(f"SSH connection to {self.url} failed: "
                                     f"{type(exc).__name__}") from None
            if write:
                raise self._refused(exc, name) from None
            raise RemoteUnreachable(f"SFTP operation on {self.url} failed"
                                    + (f" ({name})" if name else "")
                                    + f": errno {exc.errno}") from None
        if missing or name is None:
            self._no_repository()
        raise ObjectNotFound(name)

    def _refused(self, exc: OSError, name: str | None) -> RemoteRefused:
        """A write the server refused: say why where the answer tells (an errno, or the
        words of a server newer than SFTP version 3), else that a bare "Failure" is
        usually a full or read-only disk."""
        text = str(exc.strerror or (exc.args[0] if exc.args else "") or exc)
        lower = text.lower()
        what = refusal(exc)
        if lower.startswith("size mismatch in put"):  # pipelined writes the server dropped
            sizes = text.split("!", 1)[-1].split("!=")
            text = "it kept {} of {} bytes".format(*(n.strip() for n in sizes)) \
                if len(sizes) == 2 else text
            what = "full"
        elif what is None and ("space" in lower or "quota" in lower or "full" in lower):
            what = "full"
        elif what is None and ("read-only" in lower or "write protect" in lower):
            what = "read-only"
        where = f"{self.url} (writing {name})" if name else self.url
        if what is None:
            return RemoteRefused(f"remote refused a write: {where}: the SFTP server answered "
                                 f"{text!r} (its disk is full or read-only?)")
        words = "permission denied" if what == "permission denied" else f"is {what}"
        return RemoteRefused(f"remote {words}: {where}: {text}")

    def _alive(self) -> bool:
        fs = self._fs
        transport = fs.client.get_transport() if fs is not None else None
        return transport is not None and transport.is_active()

    def _root_exists(self, ftp: paramiko.SFTPClient) -> bool:
        try:
            return statmod.S_ISDIR(ftp.stat(self._path()).st_mode or 0)
        except FileNotFoundError:
            return False
        except OSError as exc:  # the connection: dropped by the next request on it
            raise TransientError(f"SSH connection to {self.url} failed: "
                                 f"{type(exc).__name__}") from None

    def _no_repository(self) -> NoReturn:
        raise NotARepository(f"remote folder {self.url} does not exist; "
                             "`vaultsync init --remote URL` creates it")

    # -- the store -----------------------------------------------------------------------

    def exists(self) -> bool:
        return self._run(self._root_exists)

    def prepare(self) -> None:
        def mkdirs(ftp: paramiko.SFTPClient) -> None:
            parts = self.root.split("/")
            for i in range(1, len(parts) + 1):
                folder = "/".join(parts[:i])
                if folder in ("", "."):
                    continue
                try:
                    ftp.mkdir(folder)
                except OSError:
                    if not statmod.S_ISDIR(ftp.stat(folder).st_mode or 0):
                        raise
        self._run(mkdirs, write=True)

    def _get(self, name: str) -> bytes:
        return self._run(lambda ftp: read_range(ftp, self._path(name), 0, None), name)

    def _get_range(self, name: str, offset: int, length: int) -> bytes:
        return self._run(lambda ftp: read_range(ftp, self._path(name), offset, length), name)

    def _put(self, name: str, data: bytes) -> None:
        final, tmp = self._path(name), self._path(temp_name(name))

        def put(ftp: paramiko.SFTPClient) -> None:
            try:
                try:
                    ftp.putfo(io.BytesIO(data), tmp, file_size=len(data), confirm=True)
                except FileNotFoundError:
                    self._make_parents(ftp, name)
                    ftp.putfo(io.BytesIO(data), tmp, file_size=len(data), confirm=True)
                ftp.posix_rename(tmp, final)
            except BaseException:
                try:
                    ftp.remove(tmp)
                except (OSError, EOFError, paramiko.SSHException):
                    pass
                raise
        self._run(put, name, write=True)

    def _make_parents(self, ftp: paramiko.SFTPClient, name: str) -> None:
        if not self._root_exists(ftp):
            self._no_repository()
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            folder = self._path("/".join(parts[:i]))
            try:
                ftp.mkdir(folder)
            except OSError:
                if not statmod.S_ISDIR(ftp.stat(folder).st_mode or 0):
                    raise

    def _delete(self, name: str) -> None:
        def delete(ftp: paramiko.SFTPClient) -> None:
            try:
                ftp.remove(self._path(name))
            except FileNotFoundError:
                pass
        self._run(delete, name, write=True)

    def _stat(self, name: str) -> ObjectInfo | None:
        def stat(ftp: paramiko.SFTPClient) -> ObjectInfo | None:
            try:
                st = ftp.stat(self._path(name))
            except FileNotFoundError:
                if not self._root_exists(ftp):
                    self._no_repository()
                return None
            if not statmod.S_ISREG(st.st_mode or 0):
                return None
            return ObjectInfo(name, st.st_size or 0)
        return self._run(stat, name)

    def _list(self, prefix: str) -> Iterator[ObjectInfo]:
        def walk(ftp: paramiko.SFTPClient) -> list[ObjectInfo]:
            return [ObjectInfo(n, a.st_size or 0) for n, a in self._walk(ftp, prefix)]
        return iter(self._run(walk))

    def _stale_temporaries(self, prefix: str, older_than_s: float) -> list[str]:
        def stale(ftp: paramiko.SFTPClient) -> list[str]:
            now = time.time()
            return [n for n, a in self._walk(ftp, prefix, start="") if temporary_name(n)
                    and a.st_mtime is not None and now - a.st_mtime > older_than_s]
        return self._run(stale)

    def _remove_temporary(self, name: str) -> None:
        def remove(ftp: paramiko.SFTPClient) -> None:
            parts = name.split("/")
            for i in range(1, len(parts) + 1):  # lstat: a symbolic link is not a folder
                try:
                    mode = ftp.lstat(self._path("/".join(parts[:i]))).st_mode or 0
                except FileNotFoundError:
                    return  # gone
                if statmod.S_ISDIR(mode) != (i < len(parts)):
                    return  # not through a link or a file; and a folder is not an object
            try:
                ftp.remove(self._path(name))
            except FileNotFoundError:
                pass
        self._run(remove, name, write=True)

    def _walk(self, ftp: paramiko.SFTPClient, prefix: str, start: str | None = None,
              ) -> list[tuple[str, paramiko.SFTPAttributes]]:
        """Every regular file whose path starts with `prefix`, sorted, with its
        attributes. READDIR answers as lstat does, so a symbolic link met on the way is
        never entered; with `start=""` the walk begins at the root, so neither is one on
        the way to `prefix`'s folder (the default begins at that folder)."""
        start = prefix.rpartition("/")[0] if start is None else start
        found: list[tuple[str, paramiko.SFTPAttributes]] = []
        todo = [start]
        for _ in range(_MAX_WALK):
            if not todo:
                return sorted(found, key=lambda item: item[0])
            rel = todo.pop()
            try:
                entries = ftp.listdir_attr(self._path(rel))
            except FileNotFoundError:
                if rel == start and not self._root_exists(ftp):
                    self._no_repository()
                continue
            for entry in entries:
                child = join(rel, entry.filename)
                mode = entry.st_mode or 0
                if statmod.S_ISDIR(mode):
                    if child.startswith(prefix) or prefix.startswith(child + "/"):
                        todo.append(child)
                elif statmod.S_ISREG(mode) and child.startswith(prefix):
                    found.append((child, entry))
        raise RemoteUnreachable(f"listing {self.url} did not end after {_MAX_WALK} folders")


_NET_ERRNOS = {errno.ECONNRESET, errno.ECONNREFUSED, errno.ECONNABORTED, errno.EPIPE,
               errno.ETIMEDOUT, errno.EHOSTUNREACH, errno.ENETUNREACH}
