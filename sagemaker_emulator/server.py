"""The HTTP gateway: one loopback server that every AWS client of the workshop talks to.

A request is routed to a service by its SigV4 credential scope (and, for
SageMaker Runtime, by its ``/endpoints/…`` path), its signature is checked
against the emulator's own credentials, and the service's protocol turns it
into an operation call. The same port is also an HTTP(S) proxy (see
``proxy``), so clients that insist on ``https://…amazonaws.com`` land here too.
"""

from __future__ import annotations

import collections
import email.parser
import http.client
import http.server
import io
import json
import logging
import math
import os
import random
import re
import shutil
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import proxy, sigv4
from .bodies import ChunkedReader, LimitedReader
from .protocol.errors import ServiceError, internal_error
from .protocol.http import Headers, Request, Response

if TYPE_CHECKING:
    from .app import Emulator

log = logging.getLogger("sagemaker_emulator.gateway")

_VIRTUAL_S3 = re.compile(r"^(?P<bucket>.+?)\.s3(?:[.-](?:[a-z0-9-]+\.)*?)?\.?amazonaws\.com(?:\.cn)?$")
_S3_HOST = re.compile(r"^s3(?:[.-][a-z0-9-]+)*\.amazonaws\.com(?:\.cn)?$")
HEALTH_PATH = "/_emulator/health"
STATS_PATH = "/_emulator/stats"
#: ``InvokeEndpoint`` durations kept for ``/_emulator/stats``: more than a 10,000-call benchmark run
STATS_WINDOW = 16384
#: response bodies up to this size go out in the same ``sendall`` as the headers
SEND_WITH_HEAD_LIMIT = 64 * 1024
_MAX_LINE, _MAX_HEADERS = 65536, 100  # http.client's limits for a header block
_FIELD_NAME = re.compile(r"[\041-\071\073-\176]+")  # a name the email parser reads as a header field


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


@dataclass
class Context:
    """What a service handler may know about the call besides its input."""

    region: str
    account_id: str
    request_id: str
    request: Request
    service: str


def _strip_port(host: str) -> str:
    if host.startswith("["):
        return host.split("]")[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def service_for(request: Request, scope_service: str | None) -> str:
    """Map a SigV4 scope (or, unsigned, the host) to a botocore service name."""
    host = _strip_port(request.host).lower()
    name = scope_service
    if name is None:
        first = host.split(".")[0]
        if _S3_HOST.match(host) or _VIRTUAL_S3.match(host):
            name = "s3"
        elif first.startswith("runtime") or request.raw_path.startswith("/endpoints/"):
            name = "sagemaker"
        else:
            name = first.replace("api.", "")
    if name == "sagemaker" and request.raw_path.startswith("/endpoints/"):
        return "sagemaker-runtime"
    return name


def apply_virtual_host(request: Request) -> None:
    """``bucket.s3.region.amazonaws.com/key`` → path-style ``/bucket/key``."""
    host = _strip_port(request.host).lower()
    if _S3_HOST.match(host):
        return
    match = _VIRTUAL_S3.match(host)
    if match:
        request.raw_path = "/" + match.group("bucket") + (request.raw_path or "/")


def _service_from_target(request: Request) -> str | None:
    """For unsigned json-protocol calls: ``X-Amz-Target: SageMaker.X`` / ``Logs_20140328.X``."""
    target = request.headers.get("X-Amz-Target", "")
    prefix = target.split(".", 1)[0].lower()
    if prefix.startswith("logs"):
        return "logs"
    return "sagemaker" if prefix == "sagemaker" else None


def unsigned_error(service: str) -> ServiceError:
    if service == "s3":
        return ServiceError("AccessDenied", "Access Denied", 403)
    if service in ("sts", "iam"):
        return ServiceError("MissingAuthenticationToken", "Request is missing Authentication Token", 403)
    return ServiceError("MissingAuthenticationTokenException", "Missing Authentication Token", 400)


class GatewayHandler(http.server.BaseHTTPRequestHandler):
    """Reads one request, dispatches it to the emulator, writes the response."""

    protocol_version = "HTTP/1.1"
    server_version = "SageMakerEmulator"
    # Headers and body go out in separate writes; with Nagle on, the body waits ~40 ms for the
    # client's delayed ACK on every response that has one (DescribeTrainingJob, ListObjects …).
    disable_nagle_algorithm = True

    def version_string(self) -> str:
        return self.server_version
    emulator: Emulator  # set on the subclass made by ``make_server``

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        if log.isEnabledFor(logging.DEBUG):  # called for every response: format only when it is shown
            log.debug("%s - %s", self.address_string(), format % args)

    def parse_request(self) -> bool:
        """Plain-HTTP proxy requests for non-AWS hosts are forwarded by the proxy, not served here.

        Called right after the request line has been read: the start of the gateway-side timing.
        """
        self._started = time.perf_counter()
        return self._parse_request() and not proxy.handle_absolute_uri(self)

    def _parse_request(self) -> bool:
        """``BaseHTTPRequestHandler.parse_request`` with a fast header reader for ``HTTP/1.1`` requests.

        Why: the stdlib hands every header block to the ``email`` feed parser, about 30 µs per request
        and a tenth of the gateway's CPU time per ``InvokeEndpoint``. The same ``HTTPMessage`` is built
        here with ``set_raw`` when every line is a plain ``Name: value`` field (what every AWS SDK sends);
        anything else (folded lines, odd names) still goes through the email parser, and other request
        lines through the stdlib method, so the result is the same as the stdlib's in every case.
        """
        requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        words = requestline.split()
        if len(words) != 3 or words[2] != "HTTP/1.1":
            return super().parse_request()
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
            if line in (b"\r\n", b"\n", b""):
                break
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
        if self.headers.get("Expect", "").lower() == "100-continue":
            return self.handle_expect_100()
        return True

    def do_CONNECT(self) -> None:  # noqa: N802 - stdlib naming
        proxy.handle_connect(self, self.emulator.ca)

    def _handle(self) -> None:
        request = self._read_request()
        response: Response | None = None
        runtime = request.raw_path.startswith("/endpoints/")  # SageMaker Runtime (see ``service_for``)
        if runtime:
            # An InvokeEndpoint body (at most 6 MB) is read whole by the handler anyway; reading it here takes the
            # wait for it off the gateway's clock. boto3 (urllib3 2) sends the headers and the body in two writes,
            # and a client thread that loses its GIL in between would otherwise be counted as gateway time.
            before = time.perf_counter()
            try:
                request.body()
            except ServiceError as error:  # malformed chunk framing: answered as dispatch would answer it
                response = _error_response(self.emulator, "sagemaker-runtime", error, new_request_id(), request)
            self._started += time.perf_counter() - before
        if response is None and request.raw_path == STATS_PATH and request.method == "GET":
            response = Response(200, Headers([("Content-Type", "application/json")]),
                                json.dumps({"sagemaker-runtime": self.server.runtime_times.snapshot()}).encode())
        if response is None:
            response = self.emulator.dispatch(request)
        try:
            self._write(request, response)
            if runtime:
                self.server.runtime_times.add(time.perf_counter() - self._started, response.status)
        finally:
            body = request.body_stream
            if hasattr(body, "drain"):
                body.drain()
            close = getattr(response.body, "close", None)
            if callable(close):
                close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _handle  # noqa: N815

    def _read_request(self) -> Request:
        tunnel_host, scheme = proxy.tunnel_info(self)
        headers = Headers(self.headers.items())
        raw_path, _, query = self.path.partition("?")
        length_header = headers.get("Content-Length")
        stream: Any
        length: int | None
        if headers.get("Transfer-Encoding", "").lower() == "chunked":
            stream, length = ChunkedReader(self.rfile), None
        else:
            length = int(length_header) if length_header and length_header.isdigit() else 0
            stream = LimitedReader(self.rfile, length)
        if "aws-chunked" in headers.get("Content-Encoding", ""):
            stream = ChunkedReader(stream)  # S3 streaming uploads: strip the chunk framing
            decoded = headers.get("x-amz-decoded-content-length")
            length = int(decoded) if decoded and decoded.isdigit() else None
        return Request(
            method=self.command, raw_path=raw_path or "/", query_string=query, headers=headers,
            body_stream=stream, content_length=length,
            host=tunnel_host or headers.get("Host", "") or "", scheme=scheme,
        )

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

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.runtime_times = RequestTimes()
        super().__init__(*args, **kwargs)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up mid-request is routine, not an error worth a traceback."""
        import sys

        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            log.debug("client %s went away: %s", client_address, error)
            return
        log.exception("error while serving %s", client_address)


def make_server(emulator: Emulator, host: str, port: int) -> GatewayServer:
    handler = type("BoundGatewayHandler", (GatewayHandler,), {"emulator": emulator})
    return GatewayServer((host, port), handler)


def new_request_id() -> str:
    """A version-4 UUID from the in-process generator: ``uuid4()`` reads ``os.urandom``, a system call
    that releases the GIL on every request; a request ID needs to be unique, not unpredictable."""
    return str(uuid.UUID(int=random.getrandbits(128), version=4))


def dispatch(emulator: Emulator, request: Request) -> Response:
    """Route, authenticate, parse, call, serialize; every failure becomes an AWS error."""
    request_id = new_request_id()
    service_name = "sagemaker"
    try:
        if request.raw_path == HEALTH_PATH and request.method == "GET":
            return Response(200, Headers([("Content-Type", "application/json")]),
                            json.dumps(emulator.health()).encode())
        cred = sigv4.parse_credential(request)
        service_name = service_for(request, cred.service if cred else None)
        if cred is None and service_name not in emulator.services:
            service_name = _service_from_target(request) or "sagemaker"
        service = emulator.services.get(service_name)
        if service is None:
            raise ServiceError(
                "UnknownServiceException",
                f"The emulator does not provide the AWS service '{service_name}'. "
                f"It provides: {', '.join(sorted(emulator.services))}.", 400,
            )
        if cred is None:
            raise unsigned_error(service_name)
        sigv4.verify(request, cred, emulator.credentials.access_key, emulator.credentials.secret_key)
        if service_name == "s3":
            apply_virtual_host(request)
        protocol = service.protocol
        op = protocol.operation(request)
        params = protocol.parse(request, op)
        if service.validates:
            from .protocol.validate import validate_input

            validate_input(op.input_shape, params)
        handler = getattr(service, op.name, None)
        if handler is None:
            raise ServiceError(
                "UnknownOperationException", f"The emulator does not implement {service_name} {op.name} yet.", 400
            )
        ctx = Context(cred.region, emulator.account_id, request_id, request, service_name)
        output = handler(ctx, params) or {}
        return protocol.serialize(op, output, request_id)
    except ServiceError as error:
        return _error_response(emulator, service_name, error, request_id, request)
    except Exception:  # a bug in a handler must not take the gateway down
        log.exception("unhandled error in %s %s", request.method, request.raw_path)
        return _error_response(emulator, service_name, internal_error(), request_id, request)


def _error_response(
    emulator: Emulator, service_name: str, error: ServiceError, request_id: str, request: Request
) -> Response:
    service = emulator.services.get(service_name) or emulator.services["sagemaker"]
    return service.protocol.serialize_error(error, request_id, request)
