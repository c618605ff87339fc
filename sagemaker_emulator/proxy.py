"""The HTTP(S)-proxy face of the emulator's single HTTP server.

Why: some clients ignore ``AWS_ENDPOINT_URL`` (the SageMaker SDK's STS client uses an explicit
``https://sts.<region>.amazonaws.com`` endpoint; its telemetry GET goes to an S3 host with ``requests``).
``env`` therefore also exports ``HTTPS_PROXY``/``HTTP_PROXY`` pointing at the emulator plus
``AWS_CA_BUNDLE``/``REQUESTS_CA_BUNDLE`` (see :mod:`sagemaker_emulator.ca`). Requests for AWS hosts are
answered locally by the gateway itself -- in local mode nothing addressed to AWS ever leaves the machine --
while traffic for other hosts (PyPI, ...) is passed through untouched.

Which hosts are AWS's (:data:`AWS_DOMAINS`): the ``dnsSuffix`` and ``dualStackDnsSuffix`` of every partition
in botocore's ``partitions.json`` (``amazonaws.com``, ``api.aws``, ``amazonaws.com.cn``,
``api.amazonwebservices.com.cn``, ``amazonaws.eu``, the ISO partitions' ``c2s.ic.gov``, ``sc2s.sgov.gov``,
``cloud.adc-e.uk``, ``csp.hci.ic.gov`` and their dual-stack names ...), the sign-in hosts the endpoint rule
sets name, and the whole ``.aws`` top-level domain, which only Amazon registers: ``*.sagemaker.aws`` (Studio,
MLflow tracking servers), ``*.app.aws`` (MLflow apps), ``*.on.aws`` (Neptune Analytics, function URLs),
``*.signin.aws`` and whatever AWS adds there next. An intercepted host that no emulated service answers
(``bedrock-runtime.us-east-1.amazonaws.com``, ``x.studio.us-east-1.sagemaker.aws``) still gets a local
answer: an AWS-style ``UnknownServiceException`` naming the host, never a tunnel.

Every authority a client names (CONNECT target, absolute URI) is validated first: ASCII only (IDNA A-labels),
labels of 1-63 characters, at most 253 in all, valid punycode after ``xn--``, a numeric port in 1-65535 (always
present for CONNECT), IPv6 only in brackets. Anything else is a one-line ``400``, as is a CONNECT back to the
emulator itself (a proxy loop, checked on the resolved addresses).

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

Failures the client causes (it gave up, did not trust our CA, reset the connection, sent garbage or
stalled instead of a TLS handshake: the whole handshake must finish within ``_HANDSHAKE_TIMEOUT``) are logged
at DEBUG level on ``sagemaker_emulator.proxy`` and never produce tracebacks. This module binds nothing itself; it
only serves on the connection the (loopback-bound) server accepted.
"""

from __future__ import annotations

import contextlib
import encodings.idna
import http.client
import http.server
import ipaddress
import json
import logging
import re
import selectors
import socket
import ssl
import time
import uuid
from collections.abc import Iterator, Mapping
from email.message import Message
from typing import Any
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

import certifi

from sagemaker_emulator.ca import LocalCA
from sagemaker_emulator.upstream import Upstream

__all__ = [
    "AWS_DOMAINS",
    "TunnelSocket",
    "canonical_host",
    "handle_absolute_uri",
    "handle_connect",
    "is_aws_host",
    "service_at_host",
    "split_host_port",
    "tunnel_info",
]

log = logging.getLogger(__name__)


def _partition_suffixes() -> set[str]:
    """Every partition's ``dnsSuffix`` and ``dualStackDnsSuffix`` from the installed botocore.

    Why read them: a partition AWS adds (as ``aws-eusc`` was) is then intercepted without a code change.
    """
    try:
        from botocore.loaders import create_loader

        partitions = create_loader().load_data("partitions")["partitions"]
    except Exception:  # noqa: BLE001 - botocore missing or its data changed shape: the fixed list still holds
        return set()
    suffixes = set()
    for partition in partitions:
        outputs = partition.get("outputs", {})
        for key in ("dnsSuffix", "dualStackDnsSuffix"):
            if isinstance(outputs.get(key), str):
                suffixes.add(outputs[key].lower().strip("."))
    return suffixes


#: DNS names under which AWS answers API calls (every name *under* them, too); see the module docstring.
AWS_DOMAINS: frozenset[str] = frozenset(
    {
        "aws",  # the .aws brand TLD: api.aws, sagemaker.aws, app.aws, on.aws, signin.aws, ...
        "sagemaker.aws",  # named for service_at_host: "<x>.sagemaker.aws" is not the SageMaker API
        "app.aws",
        "on.aws",
        "amazonaws.com",
        "amazonaws.com.cn",
        "api.amazonwebservices.com.cn",
        "amazonaws.cn",  # sign-in (China)
        "amazonaws.eu",
        "api.amazonwebservices.eu",
        "amazonaws-eusc.eu",  # sign-in (European Sovereign Cloud)
        "amazonaws-us-gov.com",  # sign-in (GovCloud)
        "signin.aws.amazon.com",  # sign-in; the rest of aws.amazon.com (docs, console) is a web site
        "c2s.ic.gov",  # aws-iso
        "api.aws.ic.gov",
        "c2shome.ic.gov",
        "sc2s.sgov.gov",  # aws-iso-b
        "api.aws.scloud",
        "sc2shome.sgov.gov",
        "cloud.adc-e.uk",  # aws-iso-e
        "api.cloud-aws.adc-e.uk",
        "csphome.adc-e.uk",
        "csp.hci.ic.gov",  # aws-iso-f
        "api.aws.hci.ic.gov",
        "csphome.hci.ic.gov",
    }
    | _partition_suffixes()
)

_CONNECT_TIMEOUT = 10.0  # upstream TCP connect / plain-forward socket timeout
_HANDSHAKE_TIMEOUT = 10.0  # how long a client may take to start *and finish* its TLS handshake
_RELAY_IDLE_TIMEOUT = 600.0  # a passthrough tunnel with no traffic either way for this long is closed
_BUFFER = 64 * 1024
_TLS_HANDSHAKE_RECORD = 0x16  # first byte of a TLS ClientHello record
_MAX_HOST = 253  # RFC 1035 2.3.4, without the trailing dot
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_PORT = re.compile(r"[0-9]{1,5}")
_DRAIN_LIMIT = 1024 * 1024  # request bodies up to this size are read before an error answer, not reset

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


def _shown(text: str, limit: int = 120) -> str:
    """``repr`` of client-chosen text, cut short: a 60 kB host must not come back in a one-line error."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def canonical_host(text: str) -> str:
    """``text`` as a lower-case ASCII host name or IP address; ValueError if it is neither.

    Why so strict: the name is classified (AWS or not), resolved and put into a certificate; a name that
    IDNA, DNS or X.509 would each read differently must be refused up front, not half-way through.
    """
    name = text[:-1] if text.endswith(".") else text
    if not name or len(name) > _MAX_HOST or not name.isascii():
        raise ValueError(f"not a valid host name: {_shown(text)}")
    name = name.lower()
    with contextlib.suppress(ValueError):
        return str(ipaddress.IPv4Address(name))
    labels = name.split(".")
    if not all(_LABEL.fullmatch(label) for label in labels) or labels[-1].isdigit():
        raise ValueError(f"not a valid host name: {_shown(text)}")
    for label in labels:
        if label.startswith("xn--"):
            try:
                encodings.idna.ToUnicode(label)  # punycode that decodes and round-trips, or UnicodeError
            except UnicodeError as exc:
                raise ValueError(f"not a valid IDNA host name: {_shown(text)}") from exc
    return name


def split_host_port(authority: str, default_port: int | None) -> tuple[str, int]:
    """Split ``host[:port]`` / ``[v6][:port]`` into ``(canonical host, port)``.

    ``default_port`` None means the port is required (CONNECT). Raises ValueError on anything malformed:
    bad host (see :func:`canonical_host`), port not 1-65535 in ASCII digits, a bare IPv6 literal.
    """
    if authority.startswith("["):
        end = authority.find("]")
        rest = authority[end + 1 :] if end > 0 else "?"
        if rest and not rest.startswith(":"):
            raise ValueError(f"malformed authority: {_shown(authority)}")
        try:
            host = str(ipaddress.IPv6Address(authority[1:end]))
        except ValueError as exc:
            raise ValueError(f"malformed IPv6 literal in {_shown(authority)}") from exc
        port_text = rest[1:] if rest else None
    else:
        name, colon, port_text_or_none = authority.rpartition(":")
        host_text, port_text = (name, port_text_or_none) if colon else (authority, None)
        if ":" in host_text:
            raise ValueError(f"an IPv6 literal must be in brackets: {_shown(authority)}")
        host = canonical_host(host_text)
    if port_text is None:
        if default_port is None:
            raise ValueError(f"no port in {_shown(authority)}")
        return host, default_port
    if not _PORT.fullmatch(port_text) or not 0 < int(port_text) < 65536:
        raise ValueError(f"invalid port in {_shown(authority)}")
    return host, int(port_text)


def _aws_domain_of(name: str) -> str | None:
    """The longest :data:`AWS_DOMAINS` entry ``name`` is or lies under, or None."""
    labels = name.split(".")
    for start in range(len(labels)):
        suffix = ".".join(labels[start:])
        if suffix in AWS_DOMAINS:
            return suffix
    return None


def is_aws_host(host: str) -> bool:
    """True for any host in or under :data:`AWS_DOMAINS` (a ``:port`` is allowed); False for invalid hosts.

    These are the hosts the emulator answers itself instead of letting traffic reach AWS.
    """
    try:
        name, _ = split_host_port(host, 443)
    except ValueError:
        return False
    return _aws_domain_of(name) is not None


def service_at_host(host: str, endpoint_prefixes: Mapping[str, str]) -> str | None:
    """The service (a key of ``endpoint_prefixes``, botocore name -> ``endpointPrefix``) served at ``host``.

    ``sts.us-east-1.amazonaws.com``, ``sts-fips.us-east-1.api.aws`` -> ``sts``; ``api.sagemaker.<region>...``
    and ``sagemaker.<region>...`` -> ``sagemaker``; ``runtime.sagemaker...`` -> ``sagemaker-runtime``; any
    host with an ``s3`` / ``s3-*`` label (virtual-hosted buckets, dual-stack, legacy regional) -> ``s3``.
    """
    name = host.lower().rstrip(".")
    domain = _aws_domain_of(name)
    labels = name.split(".")[: -len(domain.split("."))] if domain else name.split(".")
    if not labels:
        return None
    labels = [labels[0].removesuffix("-fips"), *labels[1:]]
    for service, prefix in endpoint_prefixes.items():
        want = prefix.split(".")
        if labels[: len(want)] == want or (want[0] == "api" and labels[: len(want) - 1] == want[1:]):
            return service
        if prefix == "s3" and any(label == "s3" or label.startswith("s3-") for label in labels):
            return service
    return None


def _endpoint_prefixes(handler: http.server.BaseHTTPRequestHandler) -> dict[str, str] | None:
    """botocore name -> endpointPrefix of every service the handler's emulator provides; None if unknown."""
    services = getattr(getattr(handler, "emulator", None), "services", None)
    if not isinstance(services, dict):
        return None
    prefixes = {}
    for name, service in services.items():
        metadata = getattr(getattr(service, "model", None), "metadata", None) or {}
        prefixes[name] = str(metadata.get("endpointPrefix") or name)
    return prefixes


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


def _server_port(handler: http.server.BaseHTTPRequestHandler) -> int | None:
    address = getattr(getattr(handler, "server", None), "server_address", None)
    return address[1] if isinstance(address, tuple) and len(address) >= 2 else None


def _is_local_address(address: str) -> bool:
    """Loopback or "this host" (0.0.0.0, ::), IPv4-mapped forms included: where a loop would land."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback or ip.is_unspecified


def _names_this_server(handler: http.server.BaseHTTPRequestHandler, host: str, port: int) -> bool:
    """``host:port`` literally names this emulator (``localhost``/loopback/``0.0.0.0`` and its port)."""
    if port != _server_port(handler):
        return False
    if host == "localhost":
        return True
    with contextlib.suppress(ValueError):
        return _is_local_address(host)
    return False


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


def _drain_small_body(handler: http.server.BaseHTTPRequestHandler) -> None:
    """Read a small, Content-Length-framed body so closing does not reset the connection under our answer."""
    length = handler.headers.get("Content-Length", "")
    if not length.isdigit() or int(length) > _DRAIN_LIMIT:
        return
    with contextlib.suppress(OSError, ValueError):
        remaining = int(length)
        while remaining > 0:
            piece = handler.rfile.read(min(remaining, _BUFFER))
            if not piece:
                return
            remaining -= len(piece)


def _send_aws_error(handler: http.server.BaseHTTPRequestHandler, status: int, code: str, message: str) -> None:
    """An AWS error in the shape the client's protocol parses: JSON for json/rest-json, else query XML.

    botocore also reads the code from ``x-amzn-ErrorType`` whatever the body, so every client sees ``code``.
    """
    request_id = str(uuid.uuid4())
    content_type = handler.headers.get("Content-Type", "").lower()
    if "json" in content_type or handler.headers.get("X-Amz-Target"):
        body = json.dumps({"__type": code, "message": message}).encode()
        media_type = "application/x-amz-json-1.1"
    else:
        body = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{escape(message)}</Message>"
            f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
        media_type = "text/xml"
    _drain_small_body(handler)
    handler.close_connection = True
    with contextlib.suppress(OSError):
        handler.send_response(status)
        for name, value in (
            ("x-amzn-RequestId", request_id),
            ("x-amz-request-id", request_id),
            ("x-amzn-ErrorType", code),
            ("Content-Type", media_type),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
        ):
            handler.send_header(name, value)
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(body)


def _answered_unserved(handler: http.server.BaseHTTPRequestHandler, host: str) -> bool:
    """Answer (and return True) when ``host`` is an AWS host at which the emulator provides no service.

    Only for a handler that knows its emulator's services (the gateway); any other handler serves all.
    """
    from .mlflow_proxy import is_mlflow_host

    prefixes = _endpoint_prefixes(handler)
    if prefixes is None or service_at_host(host, prefixes) or is_mlflow_host(host):
        return False
    message = (
        f"The emulator does not provide an AWS service at host '{host}'. "
        f"It provides: {', '.join(sorted(prefixes))}."
    )
    _send_aws_error(handler, 400, "UnknownServiceException", message)
    return True


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
        try:
            host, port = split_host_port(handler.path, None)
        except ValueError as exc:
            _send_text(handler, 400, f"Bad Request: CONNECT target must be host:port ({exc})")
            return
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
        _send_text(handler, 400, f"Bad Request: invalid host {_shown(host)}")
        return
    try:
        _answer_established(handler)
        tunnel = _open_tunnel(handler.connection, context, host, port)
    except OSError as exc:  # ssl.SSLError and TimeoutError included
        log.debug("CONNECT %s:%s: client gave up, stalled or sent garbage instead of a handshake: %s",
                  host, port, exc)
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

    Returns None when the client closed without sending anything. Raises OSError on handshake failure, on a
    first byte that starts neither TLS nor an HTTP method, or when the first byte and the whole handshake
    have not arrived within ``_HANDSHAKE_TIMEOUT`` (after closing the TLS socket, which owns the file
    descriptor once created).
    """
    deadline = time.monotonic() + _HANDSHAKE_TIMEOUT
    timeout = raw.gettimeout()
    raw.settimeout(_HANDSHAKE_TIMEOUT)
    first = raw.recv(1, socket.MSG_PEEK)
    if not first:
        return None
    if first[0] != _TLS_HANDSHAKE_RECORD:
        if not first.isupper():  # neither TLS nor an HTTP method (SSLv2 hellos, binary garbage): hang up
            raise ssl.SSLError(f"neither a TLS handshake nor an HTTP request (first byte {first!r})")
        raw.settimeout(timeout)
        return TunnelSocket(raw, host, port, "http")
    tls = context.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
    try:
        # With a timeout set, CPython's do_handshake applies it to the whole handshake (one deadline, not
        # one per read), so a ClientHello trickled in byte by byte cannot stretch it.
        tls.settimeout(max(deadline - time.monotonic(), 0.001))
        tls.do_handshake()
    except BaseException:
        tls.close()
        raise
    tls.settimeout(timeout)
    return TunnelSocket(tls, host, port, "https")


def _resolve(host: str, port: int) -> list[tuple[Any, ...]]:
    """``getaddrinfo`` for a stream socket; the tunnel connects to exactly these addresses."""
    return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)


def _connect_any(addresses: list[tuple[Any, ...]]) -> socket.socket:
    error: OSError = OSError("no address")
    for family, kind, proto, _, sockaddr in addresses:
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(_CONNECT_TIMEOUT)
            sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        return sock  # the timeout stays: a peer that stops reading cannot block a sendall for ever
    raise error


def _chain(handler: http.server.BaseHTTPRequestHandler, host: str) -> Upstream | None:
    """The user's own proxy when traffic for ``host`` must go through it (see :mod:`.upstream`), else None."""
    chain = getattr(getattr(handler, "server", None), "upstream_proxy", None)
    return chain if isinstance(chain, Upstream) and chain.applies(host) else None


def _passthrough(handler: http.server.BaseHTTPRequestHandler, host: str, port: int) -> None:
    chain = _chain(handler, host)
    if chain is not None:
        try:
            upstream = chain.open_tunnel(host, port, _CONNECT_TIMEOUT)
        except OSError as exc:
            _send_text(handler, 502, f"Bad Gateway: cannot reach {host}:{port} through {chain}: {exc}")
            return
    else:
        try:
            addresses = _resolve(host, port)
        except (OSError, UnicodeError) as exc:
            _send_text(handler, 502, f"Bad Gateway: cannot resolve {host}: {exc}")
            return
        if port == _server_port(handler) and any(_is_local_address(str(a[4][0])) for a in addresses):
            _send_text(handler, 400, f"Bad Request: CONNECT {host}:{port} is this emulator itself (a proxy loop)")
            return
        try:
            upstream = _connect_any(addresses)
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
    """Deal with proxy requests (``GET http://host/path HTTP/1.1``) and requests inside intercepted tunnels.

    Call it for every request. Returns False when the gateway should serve the request itself: origin-form
    requests (direct ones, or those inside a tunnel) and absolute URIs for AWS hosts or for the emulator
    itself, whose ``handler.path`` is rewritten to origin form (query kept), an AWS host being recorded for
    :func:`tunnel_info`. Returns True when the request was fully answered here: forwarded to a non-AWS host,
    refused (malformed URI: 400), or addressed to an AWS host where no emulated service lives.
    """
    handler.proxy_host = None  # type: ignore[attr-defined]
    handler.proxy_scheme = None  # type: ignore[attr-defined]
    if handler.command == "CONNECT":
        return False  # authority-form: handle_connect judges it (an absolute URI there is a 400, not a forward)
    if not handler.path.lower().startswith(("http://", "https://")):
        host, _ = tunnel_info(handler)
        return host is not None and _answered_unserved(handler, host)
    try:
        parts = urlsplit(handler.path)
        scheme = parts.scheme.lower()
        host, port = split_host_port(parts.netloc.rpartition("@")[2], 443 if scheme == "https" else 80)
    except ValueError as exc:
        _send_text(handler, 400, f"Bad Request: malformed absolute URI ({exc})")
        return True
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if is_aws_host(host):
        handler.path = target
        handler.proxy_host = host  # type: ignore[attr-defined]
        handler.proxy_scheme = scheme  # type: ignore[attr-defined]
        return _answered_unserved(handler, host)
    if _names_this_server(handler, host, port):
        handler.path = target  # a client that sends even its direct requests through the proxy
        return False
    _forward(handler, scheme, host, port, target)
    return True


def _end_to_end_headers(headers: Message) -> list[tuple[str, str]]:
    """Headers minus hop-by-hop ones (including any the Connection header names)."""
    named = {
        token.strip().lower() for value in headers.get_all("Connection", []) for token in value.split(",")
    }
    drop = _HOP_BY_HOP | named
    return [(name, value) for name, value in headers.items() if name.lower() not in drop]


def _open_upstream(scheme: str, host: str, port: int, chain: Upstream | None = None) -> http.client.HTTPConnection:
    """A connection to the real host, or to the user's proxy when one applies (``CONNECT`` for https)."""
    if scheme == "https":
        context = ssl.create_default_context()  # the machine's store (a company CA too) ...
        context.load_verify_locations(cafile=certifi.where())  # ... extended by certifi, never replaced
        if chain is None:
            return http.client.HTTPSConnection(host, port, timeout=_CONNECT_TIMEOUT, context=context)
        connection = http.client.HTTPSConnection(chain.host, chain.port, timeout=_CONNECT_TIMEOUT, context=context)
        connection.set_tunnel(host, port, headers=chain.headers())
        return connection
    if chain is not None:
        return http.client.HTTPConnection(chain.host, chain.port, timeout=_CONNECT_TIMEOUT)
    return http.client.HTTPConnection(host, port, timeout=_CONNECT_TIMEOUT)


def _body_length(headers: Message) -> int | None:
    """Bytes of request body that follow the head, None for a chunked body; ValueError when malformed.

    Why strict: the body is re-framed for the upstream host, and a request whose framing two parsers could
    read differently (two lengths, an unknown coding) is how requests get smuggled past a proxy.
    """
    codings = [c.strip().lower() for v in headers.get_all("Transfer-Encoding", []) for c in v.split(",")]
    if codings:
        if codings != ["chunked"]:
            raise ValueError(f"unsupported Transfer-Encoding {_shown(', '.join(codings))}")
        return None
    lengths = {value.strip() for value in headers.get_all("Content-Length", [])}
    if not lengths:
        return 0
    value = lengths.pop()
    if lengths or not re.fullmatch(r"[0-9]{1,19}", value):
        raise ValueError("invalid Content-Length")
    return int(value)


def _forward(
    handler: http.server.BaseHTTPRequestHandler, scheme: str, host: str, port: int, target: str
) -> None:
    """Send the request to the real host, streaming the body both ways; 502 if it cannot be reached."""
    try:
        length = _body_length(handler.headers)
    except ValueError as exc:
        _send_text(handler, 400, f"Bad Request: {exc}")
        return
    chain = _chain(handler, host)
    upstream = _open_upstream(scheme, host, port, chain)
    if chain is not None and scheme == "http":  # a plain-HTTP proxy takes the absolute URI
        target = f"http://{host if port == 80 else f'{host}:{port}'}{target}"
    try:
        try:
            response = _send_upstream(handler, upstream, host, port, target, length,
                                      chain.headers() if chain is not None and scheme == "http" else {})
        except ValueError as exc:  # malformed chunked body
            _send_text(handler, 400, f"Bad Request: {exc}")
            return
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
    length: int | None,
    extra: dict[str, str],
) -> http.client.HTTPResponse:
    """The request head (Host from the URI, framing of our own, ``extra`` for the user's proxy) then the body,
    re-framed as it streams."""
    drop = {"expect", "host", "content-length"}
    headers = [(k, v) for k, v in _end_to_end_headers(handler.headers) if k.lower() not in drop]
    upstream.putrequest(handler.command, target, skip_host=True, skip_accept_encoding=True)
    default = 443 if isinstance(upstream, http.client.HTTPSConnection) else 80
    upstream.putheader("Host", host if port == default else f"{host}:{port}")
    for name, value in [*headers, *extra.items()]:
        upstream.putheader(name, value)
    if length is None:
        upstream.putheader("Transfer-Encoding", "chunked")
    elif "Content-Length" in handler.headers:
        upstream.putheader("Content-Length", str(length))
    upstream.endheaders()
    body = _read_chunked(handler.rfile) if length is None else _read_exact(handler.rfile, length)
    for piece in body:
        upstream.send(f"{len(piece):X}\r\n".encode() + piece + b"\r\n" if length is None else piece)
    if length is None:
        upstream.send(b"0\r\n\r\n")
    return upstream.getresponse()


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
        size_text = line.split(b";", 1)[0].strip()
        if not re.fullmatch(rb"[0-9A-Fa-f]{1,15}", size_text):
            raise ValueError("malformed chunk size in the request body")
        size = int(size_text, 16)
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
