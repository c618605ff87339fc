"""The loopback HTTP server: sockets in, ``Request`` objects to the gateway, responses out.

Transport only, and fast where it counts: a header reader that skips the
``email`` parser for plain fields, one ``sendall`` for small responses,
``sendfile`` for objects, metered connections whose every wait is bounded by
the watchdog in ``connections``, and strict body framing (``bodies``). What a
request means (which AWS service, who signed it) is the gateway's business.
"""

from __future__ import annotations

import collections
import contextlib
import email.parser
import http.client
import http.server
import io
import json
import logging
import math
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from . import bodies, connections, proxy
from .gateway import error_response
from .protocol.errors import ServiceError
from .protocol.http import Headers, Request, Response
from .services.context import new_request_id

if TYPE_CHECKING:
    from .app import Emulator

log = logging.getLogger("sagemaker_emulator.gateway")

HEALTH_PATH = "/_emulator/health"
STATS_PATH = "/_emulator/stats"
#: ``InvokeEndpoint`` durations kept for ``/_emulator/stats``: more than a 10,000-call benchmark run
STATS_WINDOW = 16384
#: response bodies up to this size go out in the same ``sendall`` as the headers
SEND_WITH_HEAD_LIMIT = 64 * 1024
_MAX_LINE, _MAX_HEADERS = 65536, 100  # http.client's limits for a header block
_FIELD_NAME = re.compile(r"[\041-\071\073-\176]+")  # a name the email parser reads as a header field
#: the unread rest of a body up to this size is drained to keep the connection; more closes it
DRAIN_LIMIT = 64 * 1024


class RequestTimes:
    """Gateway-side durations of SageMaker Runtime requests, request line in to response written.

    Why here and not in the client: a boto3 client's own figure includes its signing, parsing and
    (in a shared process) the GIL wait behind other clients; the endpoint latency SageMaker
    reports (``ModelLatency`` + ``OverheadLatency``) is measured at its front door. A bounded ring
    keeps the cost to two ``perf_counter`` calls and an append per request, and the memory fixed
    however long the daemon runs; ``count`` lets a reader take exactly the samples of its own run.
    """

    def __init__(self, size: int = STATS_WINDOW) -> None:
        self._durations: collections.deque[float] = collections.deque(maxlen=size)
        self._lock = threading.Lock()
        self.count = 0
        self.errors = 0

    def add(self, seconds: float, status: int) -> None:
        with self._lock:
            self._durations.append(seconds)
            self.count += 1
            if status >= 400:
                self.errors += 1

    def snapshot(self) -> dict[str, Any]:
        """Totals, the window's p50/p99, and the window itself in microseconds (oldest first)."""
        with self._lock:
            durations = list(self._durations)
            count, errors = self.count, self.errors
        ordered = sorted(durations)

        def pct(q: float) -> float | None:  # nearest rank
            return round(ordered[max(0, math.ceil(q * len(ordered)) - 1)] * 1e3, 4) if ordered else None

        return {"count": count, "errors": errors, "window": len(durations), "p50_ms": pct(0.50),
                "p99_ms": pct(0.99), "durations_us": [round(d * 1e6, 1) for d in durations]}

class GatewayHandler(http.server.BaseHTTPRequestHandler):
    """Reads one request, dispatches it to the emulator, writes the response."""

    protocol_version = "HTTP/1.1"
    server_version = "SageMakerEmulator"
    # Headers and body go out in separate writes; with Nagle on, the body waits ~40 ms for the
    # client's delayed ACK on every response that has one (DescribeTrainingJob, ListObjects …).
    disable_nagle_algorithm = True
    emulator: Emulator  # set on the subclass made by ``make_server``
    server: GatewayServer
    _conn: connections.Connection

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        if log.isEnabledFor(logging.DEBUG):  # called for every response: format only when it is shown
            log.debug("%s - %s", self.address_string(), format % args)

    def setup(self) -> None:
        """The stdlib's reader and writer, metered so the watchdog can see what this connection waits on."""
        super().setup()
        self._conn = self.server.tracker.add(self.connection)
        self.rfile = io.BufferedReader(connections.MeteredSocketIO(self.connection, self._conn), 65536)
        self.wfile = connections.MeteredWriter(self.connection, self._conn)

    def finish(self) -> None:
        self.server.tracker.remove(self._conn)
        try:
            super().finish()
        except OSError:
            pass

    def handle_one_request(self) -> None:
        self._conn.enter(connections.WAITING)
        try:
            super().handle_one_request()
        except OSError as exc:
            if not self._conn.timed_out:
                raise
            log.debug("closed %s after a timeout: %s", self.address_string(), exc)
            self.close_connection = True
        if self._conn.timed_out:
            self.close_connection = True

    def parse_request(self) -> bool:
        """Plain-HTTP proxy requests for non-AWS hosts are forwarded by the proxy, not served here.

        Called right after the request line has been read: the start of the gateway-side timing.
        """
        self._started = time.perf_counter()
        if self._conn.timed_out:  # the watchdog ended a request line that never finished
            self.close_connection = True
            return False
        parsed = self._parse_request()
        self._conn.enter(connections.BUSY)
        return parsed and not proxy.handle_absolute_uri(self)

    def _parse_request(self) -> bool:
        """``BaseHTTPRequestHandler.parse_request`` with a fast header reader for ``HTTP/1.1`` requests.

        Why: the stdlib hands every header block to the ``email`` feed parser, about 30 µs per request
        and a tenth of the gateway's CPU time per ``InvokeEndpoint``. The same ``HTTPMessage`` is built
        here with ``set_raw`` when every line is a plain ``Name: value`` field (what every AWS SDK sends);
        anything else (folded lines, odd names) still goes through the email parser, and other request
        lines through the stdlib method, so the result is the same as the stdlib's in every case.
        ``Expect: 100-continue`` is answered later, once the request is authenticated (see ``dispatch``).
        """
        requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        words = requestline.split()
        if len(words) != 3 or words[2] != "HTTP/1.1":
            return self._stdlib_parse_request()
        self.requestline, self.request_version, self.close_connection = requestline, "HTTP/1.1", False
        self.command, self.path = words[0], words[1]
        if self.path.startswith("//"):  # gh-87389, as the stdlib does
            self.path = "/" + self.path.lstrip("/")
        lines: list[bytes] = []
        while True:
            line = self.rfile.readline(_MAX_LINE + 1)
            if len(line) > _MAX_LINE:
                self.send_error(431, "Line too long", str(http.client.LineTooLong("header line")))
                return False
            lines.append(line)
            if len(lines) > _MAX_HEADERS:
                self.send_error(431, "Too many headers", f"got more than {_MAX_HEADERS} headers")
                return False
            if line in (b"\r\n", b"\n"):
                break
            if not line:  # the client hung up (or the watchdog ended it) in the middle of its headers
                self.close_connection = True
                return False
        fields = []
        for raw in lines[:-1]:
            name, colon, value = raw.decode("iso-8859-1").partition(":")
            value = value.lstrip(" \t").rstrip("\r\n")
            if not colon or "\r" in value or not _FIELD_NAME.fullmatch(name):  # the email parser splits at a CR
                text = b"".join(lines).decode("iso-8859-1")
                self.headers = email.parser.Parser(_class=self.MessageClass).parsestr(text)
                break
            fields.append((name, value))
        else:
            self.headers = self.MessageClass()
            for name, value in fields:
                self.headers.set_raw(name, value)
        connection = self.headers.get("Connection", "").lower()
        if connection == "close":
            self.close_connection = True
        return True

    def _stdlib_parse_request(self) -> bool:
        """The stdlib's parser, minus its early ``100 Continue`` (sent only after authentication)."""
        original, self.handle_expect_100 = self.handle_expect_100, lambda: True  # type: ignore[method-assign]
        try:
            return super().parse_request()
        finally:
            self.handle_expect_100 = original  # type: ignore[method-assign]

    def send_continue(self) -> None:
        """``100 Continue``: the client may now send the body the request is waiting for."""
        self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def do_CONNECT(self) -> None:  # noqa: N802 - stdlib naming
        proxy.handle_connect(self, self.emulator.ca)

    def _handle(self) -> None:
        with self.server.in_flight():
            self._serve_one()

    def _serve_one(self) -> None:
        started = self._started
        try:
            request = self._read_request()
        except ServiceError as error:  # framing that cannot be read at all: answered, then the connection ends
            request = Request(self.command, self.path.partition("?")[0] or "/", "", Headers(self.headers.items()))
            response = error_response(self.emulator, "sagemaker", error, new_request_id(), request)
            self.close_connection = True
        else:
            if request.raw_path == STATS_PATH and request.method == "GET":
                response = Response(200, Headers([("Content-Type", "application/json")]),
                                    json.dumps({"sagemaker-runtime": self.server.runtime_times.snapshot()}).encode())
            elif self.server.stopping:  # a kept-alive connection's next request, after stop began: not served
                response = error_response(self.emulator, request.service or "sagemaker", ServiceError(
                    "ServiceUnavailable", "The emulator is stopping; this request was not served.", 503),
                    new_request_id(), request)
            else:
                response = self.emulator.dispatch(request)
        if self.server.stopping:
            self.close_connection = True
            response.headers["Connection"] = "close"
        if self._conn.timed_out and response.status >= 400:
            response = error_response(self.emulator, request.service or "sagemaker", bodies.request_timeout(),
                                       new_request_id(), request)
            request.error_code = "RequestTimeout"
        keep = _settle_body(request.body_stream)
        if not keep:
            self.close_connection = True
            response.headers["Connection"] = "close"
        try:
            self._write(request, response)
        finally:
            elapsed = time.perf_counter() - started - self._conn.read_wait  # the client's body wait is not ours
            if request.service == "sagemaker-runtime":
                self.server.runtime_times.add(elapsed, response.status)
            self.emulator.access_log.add(request.service or "-", request.operation or request.method,
                                         response.status, request.error_code, elapsed)
            if keep:
                body = request.body_stream
                if hasattr(body, "drain"):
                    with contextlib.suppress(ServiceError, OSError):
                        body.drain()
            close = getattr(response.body, "close", None)
            if callable(close):
                close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _handle  # noqa: N815

    def _read_request(self) -> Request:
        """The request as the services see it, with a strict body reader for its framing."""
        tunnel_host, scheme = proxy.tunnel_info(self)
        headers = Headers(self.headers.items())
        raw_path, _, query = self.path.partition("?")
        stream, length = _body_reader(self.rfile, headers)
        request = Request(
            method=self.command, raw_path=raw_path or "/", query_string=query, headers=headers,
            body_stream=stream, content_length=length,
            host=tunnel_host or headers.get("Host", "") or "", scheme=scheme,
        )
        if headers.get("Expect", "").lower() == "100-continue":
            request.send_continue = self.send_continue
        return request

    def _write(self, request: Request, response: Response) -> None:
        body = response.body
        length = response.length()
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if "Content-Length" not in response.headers:
            if length is not None:
                self.send_header("Content-Length", str(length))
            elif request.method != "HEAD" and not isinstance(body, bytes | bytearray):
                self.send_header("Transfer-Encoding", "chunked")
        if isinstance(body, bytes | bytearray) and len(body) <= SEND_WITH_HEAD_LIMIT:
            # One sendall for head and body: every socket call releases the GIL, and under concurrent requests
            # getting it back means waiting for another request thread (``_headers_buffer`` is what
            # ``end_headers`` flushes; it has been part of BaseHTTPRequestHandler since Python 3.3).
            self._headers_buffer.append(b"\r\n")
            if request.method != "HEAD":
                self._headers_buffer.append(bytes(body))
            self.flush_headers()
            return
        self.end_headers()
        if request.method == "HEAD":
            return
        if isinstance(body, bytes | bytearray):
            self.wfile.write(body)
        elif hasattr(body, "read"):
            self._copy_file(body, length)
        else:
            for chunk in body:
                if chunk:
                    self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")

    def _copy_file(self, body: Any, length: int | None) -> None:
        """sendfile(2) for plain sockets and real files (fast path for GetObject), else a copy loop."""
        self.wfile.flush()
        if length and isinstance(self.connection, socket.socket) and type(self.connection) is socket.socket:
            try:
                offset = body.tell()
                fileno = body.fileno()
            except (AttributeError, OSError, io.UnsupportedOperation):
                fileno = None
            if fileno is not None:
                sent = 0
                while sent < length:
                    n = os.sendfile(self.connection.fileno(), fileno, offset + sent, length - sent)
                    if n == 0:
                        break
                    sent += n
                return
        if length is None:
            shutil.copyfileobj(body, self.wfile, 1 << 20)
            return
        remaining = length
        while remaining > 0:
            chunk = body.read(min(1 << 20, remaining))
            if not chunk:
                break
            self.wfile.write(chunk)
            remaining -= len(chunk)

class GatewayServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, *args: Any, limits: connections.Limits | None = None, **kwargs: Any) -> None:
        self.runtime_times = RequestTimes()
        self.tracker = connections.Tracker(limits or connections.Limits())
        self._in_flight = 0
        self._settled = threading.Condition()
        self.stopping = False  # set by ``drain``: requests that arrive after it are answered 503, not served
        super().__init__(*args, **kwargs)

    @contextlib.contextmanager
    def in_flight(self) -> Iterator[None]:
        """Counts a request from its dispatch to its last byte written, so that ``drain`` can wait for it."""
        with self._settled:
            self._in_flight += 1
        try:
            yield
        finally:
            with self._settled:
                self._in_flight -= 1
                if not self._in_flight:
                    self._settled.notify_all()

    def drain(self, timeout: float) -> int:
        """Wait up to ``timeout`` s for the requests being served to finish; how many are still running.

        Why: the emulator closes its database and logs when it stops; a request thread still writing
        to them would fail half-way (a ``ProgrammingError`` on a closed database) instead of finishing.
        """
        self.stopping = True
        with self._settled:
            self._settled.wait_for(lambda: self._in_flight == 0, timeout)
            return self._in_flight

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """Admission: a free slot, or one freed by evicting the longest-idle connection (see ``connections``)."""
        return self.tracker.admit(request)

    def server_close(self) -> None:
        self.tracker.stop()
        super().server_close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up mid-request is routine, not an error worth a traceback."""
        import sys

        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            log.debug("client %s went away: %s", client_address, error)
            return
        log.exception("error while serving %s", client_address)


def make_server(emulator: Emulator, host: str, port: int, limits: connections.Limits | None = None) -> GatewayServer:
    handler = type("BoundGatewayHandler", (GatewayHandler,), {"emulator": emulator})
    return GatewayServer((host, port), handler, limits=limits)

# ------------------------------------------------------------------------------------------ body framing
def _body_reader(rfile: Any, headers: Headers) -> tuple[Any, int | None]:
    """The reader for a request's body and its length, refusing framing that HTTP/1.1 forbids.

    No ``Content-Length`` and no chunked encoding means no body (``content_length`` None, so S3 can
    answer ``MissingContentLength`` instead of storing an empty object).
    """
    length_header = headers.get("Content-Length")
    chunked = headers.get("Transfer-Encoding", "").strip().lower()
    if chunked and chunked != "chunked":
        raise ServiceError("NotImplemented", "A header you provided implies functionality that is not implemented",
                           501, Header="Transfer-Encoding")
    if chunked and length_header is not None:
        raise ServiceError("InvalidRequest", "A request cannot carry both Content-Length and "
                           "Transfer-Encoding: chunked.", 400)
    stream: Any
    length: int | None
    if chunked:
        stream, length = bodies.ChunkedReader(rfile), None
    elif length_header is None:
        stream, length = bodies.LimitedReader(rfile, 0), None
    else:
        text = length_header.strip()
        if not text.isdigit() or len(text) > 15:
            raise ServiceError("InvalidArgument", f"Content-Length {length_header[:32]!r} is not a valid length.",
                               400, ArgumentName="Content-Length")
        length = int(text)
        stream = bodies.LimitedReader(rfile, length)
    if "aws-chunked" in headers.get("Content-Encoding", ""):  # S3 streaming uploads: strip the chunk framing
        decoded = headers.get("x-amz-decoded-content-length")
        length = int(decoded) if decoded and decoded.isdigit() and len(decoded) <= 15 else None
        stream = bodies.ChunkedReader(stream, expected=length)
    return stream, length


def _settle_body(stream: Any) -> bool:
    """Whether the connection can stay open: the unread rest of the body is small enough to drain."""
    return stream.settled(DRAIN_LIMIT) if isinstance(stream, bodies.Reader) else True

