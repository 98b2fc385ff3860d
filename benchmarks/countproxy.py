"""A counting TCP proxy on 127.0.0.1, in front of a real server, for the benchmarks.

It forwards bytes unchanged and counts, per measured command: connections, bytes client ->
server ("up") and server -> client ("down"), and with `http=True` the HTTP requests by
method. Requests are found by following each connection's client stream as HTTP/1.1: a
request head (up to the blank line), then a body of Content-Length bytes or in chunked
encoding; so a body that happens to start with "GET " is never taken for a request. A
stream it cannot follow (no blank line within 64 KiB, a bad chunk size) is counted in
`unparsed` and no longer scanned.

Use: `p = CountProxy(port, http=True)`; point the client at `p.port`; `p.reset()` before a
command and `p.take()` after it (which waits until every connection the command opened is
closed, so its last bytes are in). `p.stop()` closes everything. Stdlib only.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

_HEAD_LIMIT = 64 * 1024
_BUF = 256 * 1024


@dataclass
class Counts:
    connections: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    methods: Counter[str] = field(default_factory=Counter)
    unparsed: int = 0  # client streams the HTTP scanner lost track of

    @property
    def requests(self) -> int:
        return sum(self.methods.values())


class RequestScanner:
    """Follows one client -> server HTTP/1.1 stream and calls `on_request(method)` at the
    head of every request."""

    def __init__(self, on_request) -> None:  # noqa: ANN001 - a callable(str)
        self.on_request = on_request
        self.state = "head"  # head | body | chunk-size | chunk-data | trailer | lost
        self.buf = b""
        self.left = 0  # bytes of body (or chunk data + CRLF) still to skip

    def feed(self, data: bytes) -> bool:
        """Scan `data`; False once the stream can no longer be followed."""
        view = memoryview(data)
        while len(view) and self.state != "lost":
            if self.state in ("body", "chunk-data"):
                n = min(self.left, len(view))
                view, self.left = view[n:], self.left - n
                if self.left == 0:
                    self.state = "head" if self.state == "body" else "chunk-size"
                continue
            self.buf += bytes(view)
            view = memoryview(b"")
            if self.state == "head":
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(self.buf) > _HEAD_LIMIT:
                        self.state = "lost"
                    continue
                head, rest = self.buf[:end], self.buf[end + 4:]
                self.buf = b""
                self._head(head)
                view = memoryview(rest)
            else:  # chunk-size or trailer: one line at a time
                end = self.buf.find(b"\r\n")
                if end < 0:
                    if len(self.buf) > _HEAD_LIMIT:
                        self.state = "lost"
                    continue
                line, rest = self.buf[:end], self.buf[end + 2:]
                self.buf = b""
                self._line(line)
                view = memoryview(rest)
        return self.state != "lost"

    def _head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        method = lines[0].split(b" ", 1)[0]
        if not method.isalpha() or not method.isupper():
            self.state = "lost"
            return
        self.on_request(method.decode())
        length, chunked = 0, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value.strip() or b"0")
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if chunked:
            self.state = "chunk-size"
        elif length:
            self.state, self.left = "body", length
        else:
            self.state = "head"

    def _line(self, line: bytes) -> None:
        if self.state == "trailer":
            if not line:
                self.state = "head"
            return
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            self.state = "lost"
            return
        if size == 0:
            self.state = "trailer"
        else:
            self.state, self.left = "chunk-data", size + 2  # the data and its CRLF


class _Conn:
    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client, self.upstream = client, upstream
        self.pumps = 2  # directions still running

    def close(self) -> None:
        for s in (self.client, self.upstream):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


class CountProxy:
    def __init__(self, upstream_port: int, *, http: bool = False) -> None:
        self.upstream_port = upstream_port
        self.http = http
        self._lock = threading.Lock()
        self._counts = Counts()
        self._open = 0  # connections not yet closed on both sides
        self._conns: set[_Conn] = set()
        self._stop = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self._listener.settimeout(0.2)
        self.port = int(self._listener.getsockname()[1])
        self._accept_thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._accept_thread.start()

    # -- counting -------------------------------------------------------------------

    def reset(self) -> None:
        with self._lock:
            self._counts = Counts()

    def take(self, settle: float = 10.0) -> Counts:
        """The counts since reset(), once every connection is closed (or after `settle`
        seconds, when `open` says how many were still open)."""
        deadline = time.monotonic() + settle
        while time.monotonic() < deadline:
            with self._lock:
                if self._open == 0:
                    break
            time.sleep(0.01)
        with self._lock:
            c, self._counts = self._counts, Counts()
        return c

    @property
    def open_connections(self) -> int:
        with self._lock:
            return self._open

    def _add(self, up: int = 0, down: int = 0) -> None:
        with self._lock:
            self._counts.bytes_up += up
            self._counts.bytes_down += down

    def _request(self, method: str) -> None:
        with self._lock:
            self._counts.methods[method] += 1

    # -- forwarding -----------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port),
                                                    timeout=10)
            except OSError:
                client.close()
                continue
            for s in (client, upstream):
                s.settimeout(None)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._counts.connections += 1
                self._open += 1
            conn = _Conn(client, upstream)
            with self._lock:
                self._conns.add(conn)
            scanner = RequestScanner(self._request) if self.http else None
            threading.Thread(target=self._pump, args=(conn, True, scanner),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(conn, False, None),
                             daemon=True).start()

    def _pump(self, conn: _Conn, up: bool, scanner: RequestScanner | None) -> None:
        src, dst = (conn.client, conn.upstream) if up else (conn.upstream, conn.client)
        failed = False
        try:
            while True:
                data = src.recv(_BUF)
                if not data:
                    break
                if up:
                    self._add(up=len(data))
                    if scanner is not None and not scanner.feed(data):
                        scanner = None
                        with self._lock:
                            self._counts.unparsed += 1
                else:
                    self._add(down=len(data))
                dst.sendall(data)
        except OSError:
            failed = True
        if failed:
            conn.close()  # a reset on one side ends both
        else:
            try:
                dst.shutdown(socket.SHUT_WR)  # pass the half-close on
            except OSError:
                pass
        with self._lock:
            conn.pumps -= 1
            last = conn.pumps == 0
            if last:
                self._open -= 1
                self._conns.discard(conn)
        if last:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._listener.close()
        self._accept_thread.join(5)
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            conn.close()
