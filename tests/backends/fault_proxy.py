"""A small fault-injecting TCP proxy on 127.0.0.1, in front of a real server.

Modes:
* "http": at the start of each HTTP request (a client chunk that begins with a method),
  with probability `rate` either drop the connection or answer 500 and close (which one is
  drawn too, see `kinds`). Other requests pass through untouched.
* "tcp": for each new connection, with probability `rate` drop it at once; otherwise drop
  it after a random number of bytes (either way, `tcp_budget`): an SSH session that dies
  mid-transfer, again and again.

Decisions come from one `random.Random(seed)`, so a run is reproducible for a given order
of requests. Everything is bounded: every socket has a timeout, each connection lives at
most `max_life` seconds, and `stop()` closes all of it.
"""

from __future__ import annotations

import random
import select
import socket
import threading
import time

_METHODS = (b"GET ", b"PUT ", b"HEAD ", b"POST ", b"DELETE ", b"PROPFIND ", b"MOVE ",
            b"MKCOL ", b"COPY ", b"OPTIONS ", b"PROPPATCH ")
_ERROR_500 = (b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n"
              b"Content-Length: 14\r\nConnection: close\r\n\r\ninjected fault")


class FaultProxy:
    def __init__(self, upstream_port: int, *, mode: str = "http", rate: float = 0.3,
                 seed: int = 1234, kinds: tuple[str, ...] = ("drop", "500"),
                 max_life: float = 120.0,
                 tcp_budget: tuple[int, int] = (16 << 10, 256 << 10)) -> None:
        assert mode in ("http", "tcp")
        self.upstream_port = upstream_port
        self.mode = mode
        self.rate = rate
        self.kinds = kinds if mode == "http" else ("drop",)
        self.max_life = max_life
        self.tcp_budget = tcp_budget
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self._stop = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(0.2)
        self.port = int(self._listener.getsockname()[1])
        self.faults = 0
        self.passed = 0
        self._threads: list[threading.Thread] = []
        self._accept_thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._accept_thread.start()

    def _roll(self) -> str | None:
        with self._rng_lock:
            if self._rng.random() >= self.rate:
                self.passed += 1
                return None
            self.faults += 1
            return self._rng.choice(self.kinds)

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(client,), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, client: socket.socket) -> None:
        drop_after: int | None = None
        if self.mode == "tcp":
            if self._roll() is not None:
                client.close()
                return
            with self._rng_lock:
                drop_after = self._rng.randrange(self.tcp_budget[0], self.tcp_budget[1])
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
        except OSError:
            client.close()
            return
        sent = 0
        deadline = time.monotonic() + self.max_life
        try:
            while not self._stop.is_set() and time.monotonic() < deadline:
                ready, _, _ = select.select([client, upstream], [], [], 0.2)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if sock is client:
                        if self.mode == "http" and data.startswith(_METHODS):
                            fault = self._roll()
                            if fault == "500":
                                client.sendall(_ERROR_500)
                                return
                            if fault == "drop":
                                return
                        upstream.sendall(data)
                    else:
                        client.sendall(data)
                    sent += len(data)
                    if drop_after is not None and sent > drop_after:
                        with self._rng_lock:
                            self.faults += 1
                        return
        except OSError:
            return
        finally:
            for s in (client, upstream):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def stop(self) -> None:
        self._stop.set()
        self._listener.close()
        self._accept_thread.join(5)
        for t in self._threads:
            t.join(5)
