"""The HTTP(S)-proxy face of the emulator's single HTTP server.

Why: some clients ignore ``AWS_ENDPOINT_URL`` (the SageMaker SDK's STS client uses an explicit
``https://sts.<region>.amazonaws.com`` endpoint; its telemetry GET goes to an S3 host with ``requests``).
``env`` therefore also exports ``HTTPS_PROXY``/``HTTP_PROXY`` pointing at the emulator plus
``AWS_CA_BUNDLE``/``REQUESTS_CA_BUNDLE`` (see :mod:`sagemaker_emulator.ca`). Requests for AWS hosts are
answered locally by the gateway itself -- in local mode nothing addressed to AWS ever leaves the machine --
while traffic for other hosts (PyPI, ...) is passed through untouched.

What the gateway's ``BaseHTTPRequestHandler`` subclass must do::

    from sagemaker_emulator.proxy import handle_absolute_uri, handle_connect, tunnel_info

    class Gateway(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def parse_request(self) -> bool:
            # Every request, including CONNECT (it resets per-request proxy state on keep-alive connections).
            return super().parse_request() and not handle_absolute_uri(self)

        def do_CONNECT(self) -> None:
            handle_connect(self, CA)          # CA = LocalCA.load_or_create(state_dir / "ca")

        def do_GET(self) -> None:
            host, scheme = tunnel_info(self)  # ("sts.us-east-1.amazonaws.com", "https") or (None, "http")
            ...

Tunnel-info mechanism
---------------------
For an AWS host, :func:`handle_connect` answers ``200 Connection established``, terminates TLS with a leaf
certificate from :meth:`LocalCA.ssl_context_for`, and serves the requests inside the tunnel with a *new*
instance of the gateway's own class: ``type(handler)(sock, handler.client_address, handler.server)``. That
constructor runs the whole keep-alive request loop, so nothing can be set on the instance beforehand.
Instead ``sock`` (what the new handler sees as ``self.request`` and ``self.connection``) is a
:class:`TunnelSocket`: a thin wrapper that delegates every socket method to the real (TLS or plain) socket
and carries ``tunnel_host`` (CONNECT host, lower-case, no port), ``tunnel_port`` (int) and
``tunnel_scheme`` (``"https"``; ``"http"`` if the client spoke plain HTTP inside the tunnel, e.g.
``CONNECT host:80``). For a plain proxy request with an absolute URI for an AWS host,
:func:`handle_absolute_uri` rewrites ``handler.path`` to origin form and sets ``handler.proxy_host`` /
``handler.proxy_scheme`` on the handler (reset to None on every other request). Read neither directly:
:func:`tunnel_info` returns ``(host, scheme)`` for any handler, ``(None, "http")`` for a direct request.
The ``Host`` header inside a tunnel is whatever the client sent (normally the AWS host).

Failures the client causes (it gave up, did not trust our CA, reset the connection) are logged at DEBUG
level on ``sagemaker_emulator.proxy`` and never produce tracebacks. This module binds nothing itself; it
only serves on the connection the (loopback-bound) server accepted.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import logging
import selectors
import socket
import ssl
from collections.abc import Iterator
from email.message import Message
from typing import Any
from urllib.parse import urlsplit

import certifi

from sagemaker_emulator.ca import LocalCA

__all__ = [
    "TunnelSocket",
    "handle_absolute_uri",
    "handle_connect",
    "is_aws_host",
    "split_host_port",
    "tunnel_info",
]

log = logging.getLogger(__name__)

_AWS_SUFFIXES = (".amazonaws.com", ".amazonaws.com.cn", ".api.aws")
_AWS_APEXES = ("amazonaws.com", "amazonaws.com.cn", "api.aws")
_CONNECT_TIMEOUT = 10.0  # upstream TCP connect / plain-forward socket timeout
_HANDSHAKE_TIMEOUT = 10.0  # how long a client may take to start and finish its TLS handshake
_RELAY_IDLE_TIMEOUT = 600.0  # a passthrough tunnel with no traffic either way for this long is closed
_BUFFER = 64 * 1024
_TLS_HANDSHAKE_RECORD = 0x16  # first byte of a TLS ClientHello record

# RFC 9110 7.6.1 hop-by-hop headers, plus the de-facto Proxy-Connection; never forwarded.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)

# Errors meaning "the peer went away or misbehaved at the transport level": expected, not bugs.
# (All are OSError subclasses; kept narrow where a gateway bug must still surface as a traceback.)
_PEER_ERRORS = (ConnectionError, TimeoutError, ssl.SSLError)


class TunnelSocket:
    """A socket wrapper carrying where an intercepted CONNECT tunnel was going (see module docstring).

    Everything not defined here is delegated to the wrapped socket, so ``StreamRequestHandler`` can use it
    exactly like the socket the server accepted.
    """

    def __init__(self, sock: socket.socket, host: str, port: int, scheme: str) -> None:
        self._sock = sock
        self.tunnel_host = host
        self.tunnel_port = port
        self.tunnel_scheme = scheme

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    def __repr__(self) -> str:
        return f"<TunnelSocket {self.tunnel_scheme}://{self.tunnel_host}:{self.tunnel_port} {self._sock!r}>"


# -- host helpers ---------------------------------------------------------------------------------------


def split_host_port(authority: str, default_port: int) -> tuple[str, int]:
    """Split ``host[:port]`` / ``[v6]:port`` into ``(host, port)``; host lower-case without brackets/dot.

    Raises ValueError on a malformed authority or an out-of-range port.
    """
    value = authority.strip()
    port_text = ""
    if value.startswith("["):
        end = value.find("]")
        if end < 0 or (value[end + 1 :] and not value[end + 1 :].startswith(":")):
            raise ValueError(f"malformed authority: {authority!r}")
        host, port_text = value[1:end], value[end + 2 :]
    elif value.count(":") == 1:
        host, port_text = value.split(":")
    else:
        host = value  # no port, or a bare IPv6 literal
    port = int(port_text) if port_text else default_port
    if not host or not 0 < port < 65536:
        raise ValueError(f"malformed authority: {authority!r}")
    return host.lower().rstrip("."), port


def is_aws_host(host: str) -> bool:
    """True for ``amazonaws.com``, ``*.amazonaws.com``, ``*.amazonaws.com.cn`` and ``*.api.aws`` (any port).

    These are the hosts the emulator answers itself instead of letting traffic reach AWS.
    """
    try:
        name, _ = split_host_port(host, 443)
    except ValueError:
        name = host.strip().lower().rstrip(".")
    return name in _AWS_APEXES or name.endswith(_AWS_SUFFIXES)


def tunnel_info(handler: http.server.BaseHTTPRequestHandler) -> tuple[str | None, str]:
    """``(host, scheme)`` the client believed it was talking to; ``(None, "http")`` for direct requests.

    Why: the gateway needs the original AWS host (e.g. the bucket of a virtual-hosted S3 request, or the
    service of an ``https://sts...`` call) and the scheme to build URLs it hands back.
    """
    sock = getattr(handler, "request", None)
    if isinstance(sock, TunnelSocket):
        return sock.tunnel_host, sock.tunnel_scheme
    host = getattr(handler, "proxy_host", None)
    if host:
        return host, getattr(handler, "proxy_scheme", None) or "http"
    return None, "http"


# -- small response helpers -----------------------------------------------------------------------------


def _send_text(handler: http.server.BaseHTTPRequestHandler, status: int, text: str) -> None:
    """A one-line text/plain answer that also closes the connection (its framing may be unknown)."""
    body = (text.replace("\r", " ").replace("\n", " ") + "\n").encode("utf-8", "replace")
    handler.close_connection = True
    with contextlib.suppress(OSError):
        handler.send_response(status)
        handler.send_header("Content-Type", "text/plain; charset=utf-8")
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("Connection", "close")
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(body)


def _answer_established(handler: http.server.BaseHTTPRequestHandler) -> None:
    handler.send_response(200, "Connection established")
    handler.end_headers()


# -- CONNECT ----------------------------------------------------------------------------------------------


def handle_connect(handler: http.server.BaseHTTPRequestHandler, ca: LocalCA) -> None:
    """Serve a ``CONNECT host:port`` request; call it from the gateway's ``do_CONNECT``.

    AWS hosts are intercepted and served by the gateway class itself (TLS terminated with ``ca``); any
    other host gets a byte-for-byte tunnel. Either way the outer connection is finished afterwards.
    """
    try:
        host, port = split_host_port(handler.path, 443)
    except ValueError:
        _send_text(handler, 400, f"Bad Request: CONNECT target {handler.path!r} is not host:port")
        return
    try:
        if is_aws_host(host):
            _intercept(handler, ca, host, port)
        else:
            _passthrough(handler, host, port)
    finally:
        # The raw socket now belongs to the tunnel (or is closed): the outer request loop must stop.
        handler.close_connection = True


def _intercept(handler: http.server.BaseHTTPRequestHandler, ca: LocalCA, host: str, port: int) -> None:
    try:
        context = ca.ssl_context_for(host)
    except ValueError:
        _send_text(handler, 400, f"Bad Request: invalid host {host!r}")
        return
    try:
        _answer_established(handler)
        tunnel = _open_tunnel(handler.connection, context, host, port)
    except OSError as exc:
        log.debug("CONNECT %s:%s: client gave up before/during the handshake: %s", host, port, exc)
        return
    if tunnel is None:
        return
    try:
        type(handler)(tunnel, handler.client_address, handler.server)
    except _PEER_ERRORS as exc:
        log.debug("CONNECT %s:%s: tunnel closed by the client: %s", host, port, exc)
    finally:
        with contextlib.suppress(OSError):
            tunnel.close()


def _open_tunnel(raw: socket.socket, context: ssl.SSLContext, host: str, port: int) -> TunnelSocket | None:
    """Wait for the client's first bytes; terminate TLS if it starts a handshake, else keep it plain.

    Returns None when the client closed without sending anything. Raises on handshake failure (after
    closing the TLS socket, which owns the file descriptor once created).
    """
    timeout = raw.gettimeout()
    raw.settimeout(_HANDSHAKE_TIMEOUT)
    first = raw.recv(1, socket.MSG_PEEK)
    if not first:
        return None
    if first[0] != _TLS_HANDSHAKE_RECORD:
        raw.settimeout(timeout)
        return TunnelSocket(raw, host, port, "http")
    tls = context.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
    try:
        tls.do_handshake()
    except BaseException:
        tls.close()
        raise
    tls.settimeout(timeout)
    return TunnelSocket(tls, host, port, "https")


def _passthrough(handler: http.server.BaseHTTPRequestHandler, host: str, port: int) -> None:
    try:
        upstream = socket.create_connection((host, port), timeout=_CONNECT_TIMEOUT)
    except OSError as exc:
        _send_text(handler, 502, f"Bad Gateway: cannot connect to {host}:{port}: {exc}")
        return
    try:
        _answer_established(handler)
        _relay(handler.connection, upstream)
    except OSError as exc:
        log.debug("CONNECT %s:%s: tunnel ended: %s", host, port, exc)
    finally:
        upstream.close()


def _relay(client: socket.socket, upstream: socket.socket) -> None:
    """Copy bytes both ways until both directions reached EOF (half-closes are passed on), or an error.

    ``selectors`` rather than ``select.select`` so descriptors above 1024 work on a busy server.
    """
    peer = {client: upstream, upstream: client}
    with selectors.DefaultSelector() as selector:
        for sock in peer:
            selector.register(sock, selectors.EVENT_READ)
        open_for_reading = 2
        while open_for_reading:
            events = selector.select(_RELAY_IDLE_TIMEOUT)
            if not events:
                return  # idle for too long
            for key, _ in events:
                source: socket.socket = key.fileobj  # type: ignore[assignment]
                data = source.recv(_BUFFER)
                if data:
                    peer[source].sendall(data)
                    continue
                selector.unregister(source)
                open_for_reading -= 1
                with contextlib.suppress(OSError):
                    peer[source].shutdown(socket.SHUT_WR)


# -- absolute-URI (plain HTTP proxy) requests -------------------------------------------------------------


def handle_absolute_uri(handler: http.server.BaseHTTPRequestHandler) -> bool:
    """Deal with ``GET http://host/path HTTP/1.1``-style proxy requests; call it for every request.

    Returns False when the gateway should serve the request itself: origin-form requests (direct ones, or
    those inside a tunnel) and absolute URIs for AWS hosts, whose ``handler.path`` is rewritten to origin
    form (query kept) with the host recorded for :func:`tunnel_info`. Returns True when the request was
    forwarded to a non-AWS host and fully answered here.
    """
    handler.proxy_host = None  # type: ignore[attr-defined]
    handler.proxy_scheme = None  # type: ignore[attr-defined]
    if not handler.path.lower().startswith(("http://", "https://")):
        return False
    try:
        parts = urlsplit(handler.path)
        host, port = split_host_port(parts.netloc.rpartition("@")[2], 443 if parts.scheme == "https" else 80)
    except ValueError:
        _send_text(handler, 400, f"Bad Request: malformed absolute URI {handler.path!r}")
        return True
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if is_aws_host(host):
        handler.path = target
        handler.proxy_host = host  # type: ignore[attr-defined]
        handler.proxy_scheme = parts.scheme.lower()  # type: ignore[attr-defined]
        return False
    _forward(handler, parts.scheme.lower(), host, port, target)
    return True


def _end_to_end_headers(headers: Message) -> list[tuple[str, str]]:
    """Headers minus hop-by-hop ones (including any the Connection header names)."""
    named = {
        token.strip().lower() for value in headers.get_all("Connection", []) for token in value.split(",")
    }
    drop = _HOP_BY_HOP | named
    return [(name, value) for name, value in headers.items() if name.lower() not in drop]


def _open_upstream(scheme: str, host: str, port: int) -> http.client.HTTPConnection:
    if scheme == "https":
        context = ssl.create_default_context(cafile=certifi.where())
        return http.client.HTTPSConnection(host, port, timeout=_CONNECT_TIMEOUT, context=context)
    return http.client.HTTPConnection(host, port, timeout=_CONNECT_TIMEOUT)


def _forward(
    handler: http.server.BaseHTTPRequestHandler, scheme: str, host: str, port: int, target: str
) -> None:
    """Send the request to the real host, streaming the body both ways; 502 if it cannot be reached."""
    upstream = _open_upstream(scheme, host, port)
    try:
        try:
            response = _send_upstream(handler, upstream, host, port, target)
        except (OSError, http.client.HTTPException) as exc:
            _send_text(handler, 502, f"Bad Gateway: {host}:{port}: {exc}")
            return
        try:
            _relay_response(handler, response)
        except (OSError, http.client.HTTPException) as exc:
            # Mid-body failure: the status line is already out, so all we can do is drop the connection.
            log.debug(
                "forwarding %s %s:%s%s failed mid-response: %s", handler.command, host, port, target, exc
            )
            handler.close_connection = True
    finally:
        upstream.close()


def _send_upstream(
    handler: http.server.BaseHTTPRequestHandler,
    upstream: http.client.HTTPConnection,
    host: str,
    port: int,
    target: str,
) -> http.client.HTTPResponse:
    chunked = "chunked" in handler.headers.get("Transfer-Encoding", "").lower()
    headers = [(k, v) for k, v in _end_to_end_headers(handler.headers) if k.lower() != "expect"]
    if chunked:  # Transfer-Encoding wins over Content-Length (RFC 9112 6.3)
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
    upstream.putrequest(handler.command, target, skip_host=True, skip_accept_encoding=True)
    if not any(k.lower() == "host" for k, _ in headers):
        default = 443 if isinstance(upstream, http.client.HTTPSConnection) else 80
        upstream.putheader("Host", host if port == default else f"{host}:{port}")
    for name, value in headers:
        upstream.putheader(name, value)
    if chunked:
        upstream.putheader("Transfer-Encoding", "chunked")
    upstream.endheaders()
    for piece in _request_body(handler, chunked):
        upstream.send(f"{len(piece):X}\r\n".encode() + piece + b"\r\n" if chunked else piece)
    if chunked:
        upstream.send(b"0\r\n\r\n")
    return upstream.getresponse()


def _request_body(handler: http.server.BaseHTTPRequestHandler, chunked: bool) -> Iterator[bytes]:
    if chunked:
        yield from _read_chunked(handler.rfile)
        return
    length = int(handler.headers.get("Content-Length") or 0)
    yield from _read_exact(handler.rfile, length)


def _read_exact(rfile: Any, length: int) -> Iterator[bytes]:
    while length > 0:
        piece = rfile.read(min(length, _BUFFER))
        if not piece:
            raise ConnectionError("client closed the connection mid-body")
        length -= len(piece)
        yield piece


def _read_chunked(rfile: Any) -> Iterator[bytes]:
    """Decode a chunked request body (trailers are read and dropped)."""
    while True:
        line = rfile.readline(_BUFFER)
        if not line:
            raise ConnectionError("client closed the connection mid-body")
        size = int(line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while rfile.readline(_BUFFER) not in (b"\r\n", b"\n", b""):
                pass
            return
        yield from _read_exact(rfile, size)
        rfile.readline(_BUFFER)  # the CRLF after each chunk


def _relay_response(handler: http.server.BaseHTTPRequestHandler, response: http.client.HTTPResponse) -> None:
    """Stream the upstream response to the client, re-framing it when its length is unknown."""
    handler.log_request(response.status)
    handler.send_response_only(response.status, response.reason)
    for name, value in _end_to_end_headers(response.headers):
        handler.send_header(name, value)
    no_body = handler.command == "HEAD" or response.status in (204, 304) or response.status < 200
    known_length = response.length is not None and not response.chunked
    if no_body or known_length:
        handler.end_headers()
        if not no_body:
            _copy_body(response, handler.wfile.write)
        return
    if handler.request_version == "HTTP/1.1" and handler.protocol_version >= "HTTP/1.1":
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        _copy_body(response, lambda piece: handler.wfile.write(b"%X\r\n%s\r\n" % (len(piece), piece)))
        handler.wfile.write(b"0\r\n\r\n")
        return
    handler.send_header("Connection", "close")  # also sets handler.close_connection
    handler.end_headers()
    _copy_body(response, handler.wfile.write)
    handler.close_connection = True


def _copy_body(response: http.client.HTTPResponse, write: Any) -> None:
    while piece := response.read1(_BUFFER):
        write(piece)
