"""Bounded connections: every wait of the gateway on a client has a limit, and no client can starve the others.

Why a watchdog thread rather than socket timeouts: a socket timeout bounds one
``recv``, so a client that sends a header byte every 19 seconds (slowloris)
holds a thread forever, and a timeout also turns the ``sendfile`` fast path
into ``EAGAIN`` errors. Instead each connection records what it is waiting
for and since when (a few attribute writes per ``recv``), and one thread
checks every connection four times a second:

- waiting for a request (idle keep-alive, or a request line and headers still
  arriving): at most ``head_seconds``; an idle connection is closed quietly,
  a half-sent request gets a ``408`` first;
- reading a body: closed when the client has kept the gateway waiting in
  ``recv`` for ``body_seconds`` with less than ``min_rate`` bytes per second
  over that wait (the handler then answers ``RequestTimeout``);
- writing a response: closed when one write makes no progress for
  ``write_seconds``.

At most ``max_connections`` are served at once; a new one first evicts the
longest-waiting idle or half-sent connection, and only when every slot is busy
with real work is it refused (``503``).
"""

from __future__ import annotations

import logging
import socket
import socketserver
import threading
import time
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("sagemaker_emulator.gateway")

WAITING, BUSY = "waiting", "busy"
_TIMEOUT_408 = b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
_BUSY_503 = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 60\r\n"
             b"Connection: close\r\n\r\nSlowDown: the emulator is serving too many connections now.\n")


@dataclass(frozen=True)
class Limits:
    head_seconds: float = 20.0
    body_seconds: float = 20.0
    min_rate: float = 1024.0  # bytes per second while the gateway waits for a body
    write_seconds: float = 120.0
    max_connections: int = 256
    check_every: float = 0.25


@dataclass(eq=False)
class Connection:
    """What one client connection is doing; written by its handler thread, read by the watchdog."""

    sock: socket.socket
    phase: str = WAITING
    phase_started: float = field(default_factory=time.monotonic)
    received: int = 0  # bytes received in this phase
    read_wait: float = 0.0  # seconds spent blocked in recv in this phase
    reading_since: float = 0.0
    writing_since: float = 0.0
    timed_out: bool = False  # closed by the watchdog (the handler maps the resulting EOF to a timeout)

    def enter(self, phase: str) -> None:
        self.phase, self.phase_started = phase, time.monotonic()
        self.received, self.read_wait = 0, 0.0


class MeteredSocketIO(socket.SocketIO):
    """``socket.makefile("rb")``'s raw layer, noting how long each ``recv`` waits and what it brings."""

    def __init__(self, sock: socket.socket, conn: Connection) -> None:
        super().__init__(sock, "rb")
        sock._io_refs += 1  # type: ignore[attr-defined]  # as socket.makefile does
        self._conn = conn

    def readinto(self, b: Any) -> int | None:
        conn = self._conn
        started = conn.reading_since = time.monotonic()
        try:
            n = super().readinto(b)
        finally:
            conn.reading_since = 0.0
            conn.read_wait += time.monotonic() - started
        if n:
            conn.received += n
        return n


class MeteredWriter(socketserver._SocketWriter):  # type: ignore[name-defined]  # the stdlib's unbuffered wfile
    def __init__(self, sock: socket.socket, conn: Connection) -> None:
        super().__init__(sock)
        self._conn = conn

    def write(self, b: Any) -> int:
        self._conn.writing_since = time.monotonic()
        try:
            return super().write(b)
        finally:
            self._conn.writing_since = 0.0


class Tracker:
    """The live connections of one server, and the watchdog that enforces ``Limits`` on them."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._conns: dict[int, Connection] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.closed_idle = self.timed_out = self.evicted = self.refused = 0
        self._thread = threading.Thread(target=self._watch, name="gateway-watchdog", daemon=True)
        self._thread.start()

    def __len__(self) -> int:
        return len(self._conns)

    def admit(self, sock: socket.socket) -> bool:
        """Make room for a new connection: evict the longest-waiting idle one if full; False if all are busy."""
        with self._lock:
            if len(self._conns) < self.limits.max_connections:
                return True
            waiting = [c for c in self._conns.values() if c.phase == WAITING and not c.timed_out]
            if not waiting:
                self.refused += 1
                victim = None
            else:
                victim = min(waiting, key=lambda c: c.phase_started)
                victim.timed_out = True
                self.evicted += 1
        if victim is None:
            try:
                sock.send(_BUSY_503, socket.MSG_DONTWAIT)
            except OSError:
                pass
            return False
        _close(victim, victim.received > 0)
        return True

    def add(self, sock: socket.socket) -> Connection:
        conn = Connection(sock)
        with self._lock:
            self._conns[id(conn)] = conn
        return conn

    def remove(self, conn: Connection) -> None:
        with self._lock:
            self._conns.pop(id(conn), None)

    def stop(self) -> None:
        self._stop.set()

    def _watch(self) -> None:
        while not self._stop.wait(self.limits.check_every):
            now = time.monotonic()
            with self._lock:
                conns = list(self._conns.values())
            for conn in conns:
                if not conn.timed_out:
                    self._check(conn, now)

    def _check(self, conn: Connection, now: float) -> None:
        limits = self.limits
        if conn.phase == WAITING:
            if now - conn.phase_started > limits.head_seconds:
                conn.timed_out = True
                if conn.received:
                    self.timed_out += 1
                else:
                    self.closed_idle += 1
                _close(conn, conn.received > 0)
            return
        writing = conn.writing_since
        if writing and now - writing > limits.write_seconds:
            conn.timed_out = True
            self.timed_out += 1
            _close(conn, False)
            return
        reading = conn.reading_since
        waited = conn.read_wait + (now - reading if reading else 0.0)
        if reading and waited > limits.body_seconds and conn.received < waited * limits.min_rate:
            conn.timed_out = True
            self.timed_out += 1
            shutdown(conn.sock, socket.SHUT_RD)  # the handler is blocked in recv: end its reading, not its answer


def _close(conn: Connection, answer_408: bool) -> None:
    """End a connection from the watchdog: the handler thread blocked in ``recv`` sees EOF and exits."""
    sock = conn.sock
    if answer_408 and type(sock) is socket.socket:  # a TLS socket cannot take a raw write
        try:
            sock.send(_TIMEOUT_408, socket.MSG_DONTWAIT)
        except OSError:
            pass
    shutdown(sock, socket.SHUT_RDWR)


def shutdown(sock: Any, how: int) -> None:
    """``shutdown(2)`` on the descriptor itself: ``SSLSocket.shutdown`` would drop its TLS state under
    the feet of the handler thread still reading from it."""
    raw = getattr(sock, "_sock", sock)  # a proxy tunnel's wrapper
    try:
        socket.socket.shutdown(raw, how)
    except OSError:
        pass
