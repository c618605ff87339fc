"""A lean HTTP/1.1 server for the SageMaker inference contract (``/ping``, ``/invocations``, ...).

Why not ``http.server``: the gateway keeps one connection per calling thread alive and sends
small requests back to back, so the server's own cost per request is most of the budget
(p50 ≤ 2 ms at the gateway). ``BaseHTTPRequestHandler`` parses headers with the ``email``
package and allocates a handler object per request; this loop reads the request line and headers
with a buffered reader, and answers with one ``sendall`` (``TCP_NODELAY`` set).

Threads:

* the main thread accepts connections (and wakes up on SIGTERM through a self-pipe);
* one thread per connection parses requests and writes responses, so an idle keep-alive
  connection costs a blocked thread and nothing else;
* ``/invocations`` runs in a :class:`WorkerPool` and the connection thread waits at most
  ``SAGEMAKER_MODEL_SERVER_TIMEOUT`` seconds: a hung ``predict_fn`` yields a 500 for that request,
  its worker is written off and replaced, and the server keeps serving. ``/ping`` and
  ``/execution-parameters`` are answered inline so health checks never queue behind predictions.

Only what the contract needs is implemented: ``Content-Length`` and chunked request bodies,
``Expect: 100-continue``, keep-alive (HTTP/1.1 default, HTTP/1.0 on request), a body-size limit
answered with 413 (the body is drained when that is cheap, so the connection stays usable).
"""

from __future__ import annotations

import logging
import os
import queue
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Protocol

logger = logging.getLogger("sagemaker_emulator.model_server")

MAX_LINE = 65536
MAX_HEADERS = 100
DRAIN_LIMIT = 64 * 1024 * 1024  # beyond this, a too-large body is not read: the connection is closed
SEND_COPY_LIMIT = 64 * 1024  # bodies up to this size are sent with the head in one syscall
_REASONS = {status.value: status.phrase for status in HTTPStatus}
_NO_BODY_STATUSES = frozenset({204, 304})
_TOO_LARGE_BODY = (
    b"<!doctype html>\n<html lang=en>\n<title>413 Request Entity Too Large</title>\n"
    b"<h1>Request Entity Too Large</h1>\n<p>The data value transmitted exceeds the capacity limit.</p>\n"
)


@dataclass(slots=True)
class Request:
    """One parsed request; header names are lower-case."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)


@dataclass(slots=True)
class Response:
    """What a service returns; ``content_type=None`` sends no ``Content-Type`` header."""

    status: int = 200
    body: bytes = b""
    content_type: str | None = None
    headers: list[tuple[str, str]] | None = None


class Service(Protocol):
    """The model-specific part: algorithm mode or script mode."""

    def invoke(self, request: Request) -> Response: ...

    def execution_parameters(self, request: Request) -> Response: ...


@dataclass
class ServerConfig:
    """Everything the HTTP layer needs, read from the container environment by :meth:`from_env`."""

    port: int = 8080
    host: str = "127.0.0.1"
    max_content_length: int | None = None
    timeout: float = 60.0
    workers: int = 2
    access_log: bool = False
    shutdown_grace: float = 1.5

    @classmethod
    def from_env(cls, environ: dict[str, str], max_content_length: int | None) -> ServerConfig:
        """``SAGEMAKER_BIND_TO_PORT``, ``SAGEMAKER_MODEL_SERVER_TIMEOUT`` (60 s), ``..._WORKERS`` (CPUs)."""
        level = environ.get("SAGEMAKER_CONTAINER_LOG_LEVEL", "").strip().upper()
        return cls(
            port=int(environ.get("SAGEMAKER_BIND_TO_PORT", "8080")),
            max_content_length=max_content_length,
            timeout=float(environ.get("SAGEMAKER_MODEL_SERVER_TIMEOUT", "60")),
            workers=max(1, int(environ.get("SAGEMAKER_MODEL_SERVER_WORKERS") or os.cpu_count() or 1)),
            access_log=level in ("10", "DEBUG"),
        )


class _ProtocolError(Exception):
    """A request we cannot parse: answer ``status`` and close the connection."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class WorkTimeout(Exception):
    """The work did not finish within the model server timeout."""


class _Task:
    __slots__ = ("fn", "arg", "done", "result", "error", "cancelled")

    def __init__(self, fn: Callable[[Any], Any], arg: Any) -> None:
        self.fn, self.arg = fn, arg
        self.done = threading.Lock()  # held until the work is done: cheaper to wait on than an Event
        self.done.acquire()
        self.result: Any = None
        self.error: BaseException | None = None
        self.cancelled = False


class WorkerPool:
    """A fixed set of daemon threads that replaces a worker written off after a timeout.

    ``concurrent.futures.ThreadPoolExecutor`` cannot do that: a hung task would hold its thread
    for good, and a few hangs would starve the endpoint. Here a timed-out caller spawns a
    replacement and asks the pool to retire one thread as soon as any finishes its task, so the
    number of *available* workers stays constant.
    """

    def __init__(self, size: int, name: str = "model-worker") -> None:
        self._queue: queue.SimpleQueue[_Task] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._retire = 0
        self._name = name
        self._count = 0
        for _ in range(size):
            self._spawn()

    def _spawn(self) -> None:
        self._count += 1
        threading.Thread(target=self._work, name=f"{self._name}-{self._count}", daemon=True).start()

    def _work(self) -> None:
        while True:
            task = self._queue.get()
            if task.cancelled:
                continue
            try:
                task.result = task.fn(task.arg)
            except BaseException as error:  # user code may raise anything; the caller reports it
                task.error = error
            task.done.release()
            if self._retire:
                with self._lock:
                    if self._retire:
                        self._retire -= 1
                        return

    def run(self, fn: Callable[[Any], Any], arg: Any, timeout: float) -> Any:
        """``fn(arg)`` on a worker; raises :class:`WorkTimeout` after ``timeout`` seconds."""
        task = _Task(fn, arg)
        self._queue.put(task)
        if not task.done.acquire(timeout=timeout):
            with self._lock:
                task.cancelled = True  # still queued: never start it; running: its worker is written off
                self._retire += 1
                self._spawn()
            raise WorkTimeout(f"{timeout:g}")
        if task.error is not None:
            raise task.error
        return task.result


class ModelServer:
    """Serves one :class:`Service` on ``config.host:config.port`` until :meth:`stop`."""

    def __init__(self, service: Service, config: ServerConfig) -> None:
        self.service = service
        self.config = config
        self._pool = WorkerPool(config.workers)
        self._listener: socket.socket | None = None
        self._stopping = threading.Event()
        self._wake_r, self._wake_w = os.pipe()  # lets a signal handler interrupt the accept loop
        os.set_blocking(self._wake_w, False)
        self._active = 0  # requests in /invocations, for the shutdown grace
        self._active_lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle
    def bind(self) -> tuple[str, int]:
        """Bind and listen (raises ``OSError`` if the port is taken); returns the address."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.config.host, self.config.port))
        listener.listen(128)
        listener.setblocking(False)
        self._listener = listener
        return listener.getsockname()[:2]

    def stop(self) -> None:
        """Ask :meth:`serve_forever` to return; safe to call from a signal handler."""
        self._stopping.set()
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def serve_forever(self) -> None:
        """Accept connections until :meth:`stop`, then give in-flight requests a short grace."""
        if self._listener is None:
            self.bind()
        assert self._listener is not None
        selector = selectors.DefaultSelector()
        selector.register(self._listener, selectors.EVENT_READ)
        selector.register(self._wake_r, selectors.EVENT_READ)
        try:
            while not self._stopping.is_set():
                for key, _ in selector.select():
                    if key.fileobj is self._listener:
                        self._accept()
                    else:
                        os.read(self._wake_r, 512)
        finally:
            selector.close()
            self._listener.close()
        deadline = time.monotonic() + self.config.shutdown_grace
        while self._active and time.monotonic() < deadline:
            time.sleep(0.01)

    def _accept(self) -> None:
        assert self._listener is not None
        try:
            conn, _ = self._listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        except OSError as error:  # e.g. out of file descriptors: keep serving the open connections
            logger.error(f"accept() failed: {error}")
            time.sleep(0.05)
            return
        conn.setblocking(True)
        threading.Thread(target=self._serve_connection, args=(conn,), name="http-connection", daemon=True).start()

    # ------------------------------------------------------------------ one connection
    def _serve_connection(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        rfile = sock.makefile("rb", buffering=MAX_LINE)
        try:
            keep_alive = True
            while keep_alive and not self._stopping.is_set():
                keep_alive = self._handle_one(rfile, sock)
        except _ProtocolError as error:
            self._send(sock, Response(error.status, str(error).encode(), "text/plain; charset=utf-8"), False)
        except (ConnectionError, TimeoutError, OSError):
            pass
        finally:
            try:
                rfile.close()
                sock.close()
            except OSError:
                pass

    def _handle_one(self, rfile: Any, sock: socket.socket) -> bool:
        """Read, dispatch and answer one request; False when the connection must close."""
        head = _read_head(rfile)
        if head is None:
            return False
        method, target, version, headers = head
        started = time.perf_counter() if self.config.access_log else 0.0
        connection = headers.get("connection", "").lower()
        keep_alive = "close" not in connection if version == "HTTP/1.1" else "keep-alive" in connection
        length = _content_length(headers)
        limit = self.config.max_content_length
        if limit is not None and length > limit:
            return self._reject_too_large(rfile, sock, headers, length, keep_alive)
        if headers.get("expect", "").lower() == "100-continue":
            sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        if length < 0:  # chunked
            body = _read_chunked(rfile, limit)
            if body is None:
                return self._reject_too_large(rfile, sock, headers, 0, False)
        else:
            body = rfile.read(length) if length else b""
            if len(body) < length:
                return False  # the client went away mid-body
        path = target.split("?", 1)[0]
        request = Request(method, path, headers, body)
        response = self._dispatch(request)
        self._send(sock, response, keep_alive, head_only=method == "HEAD")
        if self.config.access_log:
            elapsed = (time.perf_counter() - started) * 1000
            logger.debug('"%s %s %s" %d %d %.3fms', method, target, version, response.status, len(response.body),
                         elapsed)
        return keep_alive

    def _reject_too_large(self, rfile: Any, sock: socket.socket, headers: dict[str, str], length: int,
                          keep_alive: bool) -> bool:
        """413 like Flask's ``MAX_CONTENT_LENGTH``; drain a moderately large body to keep the connection."""
        expecting = headers.get("expect", "").lower() == "100-continue"
        if keep_alive and not expecting and 0 < length <= DRAIN_LIMIT:
            remaining = length
            while remaining:
                chunk = rfile.read(min(remaining, 1 << 20))
                if not chunk:
                    return False
                remaining -= len(chunk)
        else:
            keep_alive = False
        self._send(sock, Response(413, _TOO_LARGE_BODY, "text/html; charset=utf-8"), keep_alive)
        return keep_alive

    def _dispatch(self, request: Request) -> Response:
        path, method = request.path, request.method
        if path == "/invocations":
            if method != "POST":
                return _not_allowed("POST, OPTIONS")
            return self._invoke(request)
        if path == "/ping":
            if method not in ("GET", "HEAD"):
                return _not_allowed("GET, HEAD, OPTIONS")
            return Response(200, b"", "text/html; charset=utf-8")
        if path == "/execution-parameters":
            if method not in ("GET", "HEAD"):
                return _not_allowed("GET, HEAD, OPTIONS")
            try:
                return self.service.execution_parameters(request)
            except Exception as error:
                logger.exception("execution-parameters failed")
                return Response(500, f"Unable to determine execution parameters: {error}".encode(),
                                "text/html; charset=utf-8")
        return Response(404, b"{}", "text/plain")  # nginx in front of the container: only three paths exist

    def _invoke(self, request: Request) -> Response:
        with self._active_lock:
            self._active += 1
        try:
            return self._pool.run(self.service.invoke, request, self.config.timeout)
        except WorkTimeout:
            message = (f"The model server timed out after {self.config.timeout:g} seconds while processing the "
                       f"request (SAGEMAKER_MODEL_SERVER_TIMEOUT). The worker was replaced.")
            logger.error(message)
            return Response(500, message.encode(), "text/html; charset=utf-8")
        except BaseException as error:  # services turn expected failures into responses; this is the backstop
            logger.exception("Unhandled error while processing /invocations")
            return Response(500, f"{type(error).__name__}: {error}".encode(), "text/html; charset=utf-8")
        finally:
            with self._active_lock:
                self._active -= 1

    @staticmethod
    def _send(sock: socket.socket, response: Response, keep_alive: bool, head_only: bool = False) -> None:
        status = response.status
        body = b"" if status in _NO_BODY_STATUSES or head_only else response.body
        parts = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}\r\n"]
        if status not in _NO_BODY_STATUSES:
            parts.append(f"Content-Length: {len(response.body)}\r\n")
        if response.content_type:
            parts.append(f"Content-Type: {_clean(response.content_type)}\r\n")
        for name, value in response.headers or ():
            parts.append(f"{_clean(name)}: {_clean(value)}\r\n")
        parts.append("Connection: keep-alive\r\n\r\n" if keep_alive else "Connection: close\r\n\r\n")
        head = "".join(parts).encode("latin-1", "replace")
        if len(body) <= SEND_COPY_LIMIT:
            sock.sendall(head + body)
        else:
            sock.sendall(head)
            sock.sendall(body)


def _clean(value: str) -> str:
    """Header values come from user code (``output_fn`` content types): no header injection."""
    return value.replace("\r", " ").replace("\n", " ")


def _not_allowed(allow: str) -> Response:
    body = (b"<!doctype html>\n<html lang=en>\n<title>405 Method Not Allowed</title>\n<h1>Method Not Allowed</h1>\n"
            b"<p>The method is not allowed for the requested URL.</p>\n")
    return Response(405, body, "text/html; charset=utf-8", [("Allow", allow)])


def _read_head(rfile: Any) -> tuple[str, str, str, dict[str, str]] | None:
    """Request line and headers, or None when the client closed the connection between requests."""
    line = rfile.readline(MAX_LINE + 1)
    while line in (b"\r\n", b"\n"):  # stray empty lines between requests are allowed (RFC 9112 §2.2)
        line = rfile.readline(MAX_LINE + 1)
    if not line:
        return None
    if len(line) > MAX_LINE:
        raise _ProtocolError(414, "Request line too long")
    parts = line.split()
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
        raise _ProtocolError(400, "Bad request line")
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADERS):
        raw = rfile.readline(MAX_LINE + 1)
        if raw in (b"\r\n", b"\n"):
            break
        if not raw:
            return None
        name, sep, value = raw.partition(b":")
        if not sep or len(raw) > MAX_LINE:
            raise _ProtocolError(400, "Bad header line")
        headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    else:
        raise _ProtocolError(431, "Too many header fields")
    return parts[0].decode("latin-1"), parts[1].decode("latin-1"), parts[2].decode("latin-1"), headers


def _content_length(headers: dict[str, str]) -> int:
    """The body length, or -1 for a chunked body."""
    encoding = headers.get("transfer-encoding")
    if encoding and encoding.lower() != "identity":
        if encoding.lower().rsplit(",", 1)[-1].strip() != "chunked":
            raise _ProtocolError(501, f"Transfer-Encoding {encoding} is not supported")
        return -1
    value = headers.get("content-length")
    if value is None:
        return 0
    try:
        length = int(value)
    except ValueError:
        raise _ProtocolError(400, "Bad Content-Length") from None
    if length < 0:
        raise _ProtocolError(400, "Bad Content-Length")
    return length


def _read_chunked(rfile: Any, limit: int | None) -> bytes | None:
    """A chunked body (trailers skipped), or None when it exceeds ``limit``."""
    chunks: list[bytes] = []
    total = 0
    while True:
        size_line = rfile.readline(MAX_LINE + 1)
        if not size_line:
            raise ConnectionError("client closed the connection inside a chunked body")
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise _ProtocolError(400, "Bad chunk size") from None
        if size == 0:
            while rfile.readline(MAX_LINE + 1) not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(chunks)
        total += size
        if limit is not None and total > limit:
            return None
        chunks.append(rfile.read(size))
        rfile.readline(MAX_LINE + 1)  # the CRLF after the chunk data
