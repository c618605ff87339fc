"""The emulator's proxy face: CONNECT interception for AWS hosts, passthrough for others, absolute URIs.

Everything runs against real ``ThreadingHTTPServer`` instances on 127.0.0.1; nothing leaves the machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import ssl
import stat
import threading
import time
import traceback
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import botocore.config
import certifi
import pytest
import requests
from cryptography.x509.oid import NameOID

from sagemaker_emulator.ca import LocalCA
from sagemaker_emulator.proxy import (
    handle_absolute_uri,
    handle_connect,
    is_aws_host,
    service_at_host,
    split_host_port,
    tunnel_info,
)

STS_HOST = "sts.us-east-1.amazonaws.com"
CALLER_IDENTITY_XML = (
    b'<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
    b"<GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:user/emulator</Arn>"
    b"<UserId>AIDAEMULATOR</UserId><Account>123456789012</Account></GetCallerIdentityResult>"
    b"<ResponseMetadata><RequestId>00000000-0000-0000-0000-000000000000</RequestId></ResponseMetadata>"
    b"</GetCallerIdentityResponse>"
)


# -- test gateway -----------------------------------------------------------------------------------------


def _read_chunked(rfile) -> bytes:
    body = b""
    while size := int(rfile.readline().split(b";")[0].strip(), 16):
        body += rfile.read(size)
        rfile.readline()
    while rfile.readline() not in (b"\r\n", b""):
        pass
    return body


class EchoHandler(BaseHTTPRequestHandler):
    """Stands in for the gateway: echoes what it saw (including tunnel_info) as JSON."""

    protocol_version = "HTTP/1.1"
    server: GatewayServer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - signature of the base class
        pass

    def parse_request(self) -> bool:
        return super().parse_request() and not handle_absolute_uri(self)

    def do_CONNECT(self) -> None:
        handle_connect(self, self.server.ca)

    def do_GET(self) -> None:
        if self.path == "/chunked":
            self._send_chunked([b"hello ", b"chunked ", b"world"])
        else:
            self._echo(b"")

    def do_POST(self) -> None:
        if "chunked" in self.headers.get("Transfer-Encoding", ""):
            body = _read_chunked(self.rfile)
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if b"Action=GetCallerIdentity" in body:
            self._record(body)
            self._send(200, "text/xml", CALLER_IDENTITY_XML)
        else:
            self._echo(body)

    def _record(self, body: bytes) -> dict:
        host, scheme = tunnel_info(self)
        seen = {
            "method": self.command,
            "path": self.path,
            "host": self.headers.get("Host"),
            "tunnel": [host, scheme],
            "body": body.decode(),
        }
        self.server.seen.append(seen)
        return seen

    def _echo(self, body: bytes) -> None:
        self._send(200, "application/json", json.dumps(self._record(body)).encode())

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_chunked(self, pieces: list[bytes]) -> None:
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for piece in pieces:
            self.wfile.write(b"%X\r\n%s\r\n" % (len(piece), piece))
        self.wfile.write(b"0\r\n\r\n")


class GatewayServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64  # many clients CONNECT at once; the default backlog of 5 drops SYNs

    def __init__(self, ca: LocalCA) -> None:
        super().__init__(("127.0.0.1", 0), EchoHandler)
        self.ca = ca
        self.seen: list[dict] = []
        self.errors: list[str] = []

    def handle_error(self, request: object, client_address: object) -> None:
        self.errors.append(traceback.format_exc())  # a traceback would have gone to stderr


@dataclass
class Proxy:
    server: GatewayServer
    ca: LocalCA
    bundle: Path

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _serve(server: ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return thread


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    ca_dir = tmp_path_factory.mktemp("state") / "ca"
    ca = LocalCA.load_or_create(ca_dir)
    bundle = ca.write_bundle(ca_dir / "bundle.pem")
    server = GatewayServer(ca)
    _serve(server)
    yield Proxy(server, ca, bundle)
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    """A second, plain HTTP server standing in for a real non-AWS host."""
    server = GatewayServer(LocalCA.load_or_create(tmp_path_factory.mktemp("upstream-ca")))
    _serve(server)
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def _isolated(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[None]:
    """No proxy/AWS settings from the outer environment; no server-side tracebacks after each test."""
    for name in list(os.environ):
        if name.upper() in {"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"} or name.startswith("AWS_"):
            monkeypatch.delenv(name)
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    yield
    for name in ("proxy", "upstream"):
        if name in request.fixturenames:
            server = request.getfixturevalue(name)
            server = server.server if isinstance(server, Proxy) else server
            time.sleep(0.05)  # let handler threads finish the connections the client just dropped
            errors, server.errors[:] = list(server.errors), []
            assert not errors, "server raised:\n" + "\n".join(errors)


# -- raw-socket helpers -----------------------------------------------------------------------------------


def _read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """Read a response head; return (head, whatever body bytes came along with it)."""
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(4096)
        if not piece:
            break
        data += piece
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _connect(proxy: Proxy, target: str) -> tuple[socket.socket, bytes, bytes]:
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    head, rest = _read_head(sock)
    return sock, head, rest


def _recv_all(sock: socket.socket) -> bytes:
    data = b""
    while piece := sock.recv(4096):
        data += piece
    return data


# -- host classification ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("amazonaws.com", True),
        ("sts.us-east-1.amazonaws.com", True),
        ("sts.us-east-1.amazonaws.com:443", True),
        ("MyBucket.S3.amazonaws.com.", True),
        ("s3.cn-north-1.amazonaws.com.cn", True),
        ("bedrock.us-east-1.api.aws", True),
        ("sts.cn-north-1.api.amazonwebservices.com.cn", True),
        ("sts.eusc-de-east-1.amazonaws.eu", True),
        ("s3.us-iso-east-1.c2s.ic.gov", True),
        ("iam.api.aws.ic.gov", True),
        ("s3.us-isob-east-1.sc2s.sgov.gov", True),
        ("iam.api.aws.scloud", True),
        ("s3.eu-isoe-west-1.cloud.adc-e.uk", True),
        ("s3.us-isof-south-1.csp.hci.ic.gov", True),
        ("us-east-1.experiments.sagemaker.aws", True),
        ("mlflow.sagemaker.us-east-1.app.aws", True),
        ("neptune-graph.us-east-1.on.aws", True),
        ("us-east-1.oauth.signin.aws", True),
        ("us-east-1.signin.aws.amazon.com", True),
        ("us-gov-west-1.signin.amazonaws-us-gov.com", True),
        ("cn-north-1.signin.amazonaws.cn", True),
        ("evilamazonaws.com", False),
        ("amazonaws.com.evil.org", False),
        ("aws.evil.org", False),
        ("docs.aws.amazon.com", False),
        ("ic.gov", False),
        ("pypi.org:443", False),
        ("127.0.0.1:8080", False),
        ("[::1]:443", False),
        ("a" * 64 + ".amazonaws.com", False),  # not a valid host at all
    ],
)
def test_is_aws_host(host: str, expected: bool) -> None:
    assert is_aws_host(host) is expected


def test_every_partition_of_the_installed_botocore_is_intercepted() -> None:
    from botocore.loaders import create_loader

    for partition in create_loader().load_data("partitions")["partitions"]:
        for key in ("dnsSuffix", "dualStackDnsSuffix"):
            suffix = partition["outputs"][key]
            assert is_aws_host(f"sts.{partition['outputs'].get('implicitGlobalRegion', 'x')}.{suffix}"), suffix


@pytest.mark.parametrize(
    ("authority", "default", "expected"),
    [
        ("Example.COM.:8443", None, ("example.com", 8443)),
        ("[::1]:443", None, ("::1", 443)),
        ("[0:0::1]", 80, ("::1", 80)),
        ("xn--bcher-kva.example", 443, ("xn--bcher-kva.example", 443)),
        ("10.0.0.1:1", None, ("10.0.0.1", 1)),
        ("under_score.example.com:65535", None, ("under_score.example.com", 65535)),
    ],
)
def test_split_host_port_accepts_real_authorities(authority: str, default: int | None, expected: tuple) -> None:
    assert split_host_port(authority, default) == expected


@pytest.mark.parametrize(
    "authority",
    ["example.com", "example.com:", "example.com:0", "example.com:65536", "example.com:٤٤٣", "example.com:+1",
     ":443", "[::1", "[::1]:", "::1:443", "[1.2.3.4]:443", "a..b:443", "xn--zz.com:443", "bücher.de:443",
     "x" * 254 + ":443", "1.2.3:443", "host/path:443"],
)
def test_split_host_port_refuses_malformed_authorities(authority: str) -> None:
    with pytest.raises(ValueError):
        split_host_port(authority, None)


@pytest.mark.parametrize(
    ("host", "service"),
    [
        ("sts.amazonaws.com", "sts"),
        ("sts-fips.us-east-1.api.aws", "sts"),
        ("api.sagemaker.us-east-1.amazonaws.com", "sagemaker"),
        ("api-fips.sagemaker.us-gov-west-1.amazonaws.com", "sagemaker"),
        ("sagemaker.us-east-1.amazonaws.com", "sagemaker"),
        ("runtime.sagemaker.us-east-1.amazonaws.com", "sagemaker-runtime"),
        ("my.bucket.s3.dualstack.us-east-1.amazonaws.com", "s3"),
        ("s3-us-west-2.amazonaws.com", "s3"),
        ("logs.eu-west-1.amazonaws.com", "logs"),
        ("iam.amazonaws.com", "iam"),
        ("metrics.sagemaker.us-east-1.amazonaws.com", None),
        ("bedrock-runtime.us-east-1.amazonaws.com", None),
        ("something.sagemaker.aws", None),
        ("amazonaws.com", None),
    ],
)
def test_service_at_host(host: str, service: str | None) -> None:
    prefixes = {"s3": "s3", "sts": "sts", "iam": "iam", "logs": "logs", "sagemaker": "api.sagemaker",
                "sagemaker-runtime": "runtime.sagemaker"}
    assert service_at_host(host, prefixes) == service


# -- (a)-(c), (h): intercepted HTTPS ------------------------------------------------------------------------


def test_requests_https_through_proxy_is_served_locally(proxy: Proxy) -> None:
    response = requests.get(
        f"https://{STS_HOST}/x?y=1", proxies={"https": proxy.url}, verify=str(proxy.bundle), timeout=5
    )
    assert response.status_code == 200
    seen = response.json()
    assert seen["host"] == STS_HOST
    assert seen["path"] == "/x?y=1"
    assert seen["tunnel"] == [STS_HOST, "https"]


def test_boto3_sts_with_explicit_endpoint_goes_through_proxy(proxy: Proxy) -> None:
    client = boto3.client(
        "sts",
        region_name="us-east-1",
        endpoint_url=f"https://{STS_HOST}",
        aws_access_key_id="AKIDEMULATOR",
        aws_secret_access_key="emulator-secret",
        verify=str(proxy.bundle),
        config=botocore.config.Config(proxies={"https": proxy.url}, retries={"max_attempts": 1}),
    )
    identity = client.get_caller_identity()
    assert identity["Account"] == "123456789012"
    seen = proxy.server.seen[-1]
    assert seen["method"] == "POST"
    assert seen["host"] == STS_HOST
    assert seen["tunnel"] == [STS_HOST, "https"]


def test_virtual_hosted_s3_bucket_host_validates(proxy: Proxy) -> None:
    host = "mybucket.s3.us-east-1.amazonaws.com"
    response = requests.get(
        f"https://{host}/some/key", proxies={"https": proxy.url}, verify=str(proxy.bundle), timeout=5
    )
    assert response.status_code == 200
    assert response.json()["tunnel"] == [host, "https"]
    # Buckets of the same endpoint share one leaf (its SAN carries *.s3.us-east-1.amazonaws.com) ...
    assert proxy.ca.ssl_context_for(host) is proxy.ca.ssl_context_for("other.s3.us-east-1.amazonaws.com")
    # ... and a strict client validates that shared leaf for another bucket name.
    sock, head, _ = _connect(proxy, "other-bucket.s3.us-east-1.amazonaws.com:443")
    client_context = ssl.create_default_context(cafile=str(proxy.bundle))
    with client_context.wrap_socket(sock, server_hostname="other-bucket.s3.us-east-1.amazonaws.com") as tls:
        assert head.startswith(b"HTTP/1.1 200")
        assert tls.version() in {"TLSv1.2", "TLSv1.3"}
        assert tls.selected_alpn_protocol() in {None, "http/1.1"}


def test_many_concurrent_tunnels(proxy: Proxy) -> None:
    def fetch(i: int) -> list:
        host = f"svc{i % 5}.us-west-2.amazonaws.com" if i % 2 else f"b{i}.s3.us-west-2.amazonaws.com"
        with requests.Session() as session:
            response = session.get(
                f"https://{host}/{i}", proxies={"https": proxy.url}, verify=str(proxy.bundle), timeout=10
            )
        response.raise_for_status()
        return [response.json()["path"], response.json()["tunnel"], host]

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(fetch, range(40)))
    assert [path for path, _, _ in results] == [f"/{i}" for i in range(40)]
    assert all(tunnel == [host, "https"] for _, tunnel, host in results)


def test_keep_alive_inside_tunnel(proxy: Proxy) -> None:
    with requests.Session() as session:
        for i in range(3):
            response = session.get(
                f"https://{STS_HOST}/{i}", proxies={"https": proxy.url}, verify=str(proxy.bundle), timeout=5
            )
            assert response.json()["path"] == f"/{i}"


def test_plain_http_inside_aws_tunnel(proxy: Proxy) -> None:
    sock, head, _ = _connect(proxy, "s3.amazonaws.com:80")
    with sock:
        assert head.startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET /plain HTTP/1.1\r\nHost: s3.amazonaws.com\r\nConnection: close\r\n\r\n")
        head, body = _read_head(sock)
        body += _recv_all(sock)
    assert head.startswith(b"HTTP/1.1 200")
    assert json.loads(body)["tunnel"] == ["s3.amazonaws.com", "http"]


def test_client_that_distrusts_the_ca_fails_quietly(proxy: Proxy) -> None:
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"https://{STS_HOST}/", proxies={"https": proxy.url}, verify=certifi.where(), timeout=5)
    # Garbage instead of a ClientHello, and a client that hangs up right after the 200.
    sock, head, _ = _connect(proxy, f"{STS_HOST}:443")
    with sock:
        assert head.startswith(b"HTTP/1.1 200")
        sock.sendall(b"\x16\x03\x01\x00\x05hello")
        with contextlib.suppress(ConnectionResetError):
            _recv_all(sock)  # returns once the server closes (possibly after sending a TLS alert)
    sock, head, _ = _connect(proxy, f"{STS_HOST}:443")
    sock.close()
    # The autouse fixture asserts the server recorded no tracebacks.


# -- (d), (e): passthrough tunnels ----------------------------------------------------------------------


@pytest.fixture
def echo_port() -> Iterator[int]:
    """A plain TCP echo server on loopback standing in for a non-AWS host."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()

    def echo(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(4096):
                conn.sendall(data)

    def accept_loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(None)
            threading.Thread(target=echo, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept_loop, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    listener.close()


def test_connect_to_non_aws_host_relays_bytes(proxy: Proxy, echo_port: int) -> None:
    sock, head, rest = _connect(proxy, f"127.0.0.1:{echo_port}")
    with sock:
        assert head.startswith(b"HTTP/1.1 200")
        assert rest == b""
        for message in (b"ping", b"x" * 200_000):
            sock.sendall(message)
            received = b""
            while len(received) < len(message):
                received += sock.recv(65536)
            assert received == message
        sock.shutdown(socket.SHUT_WR)  # half-close travels through; the echo server then closes too
        assert _recv_all(sock) == b""


def _closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return probe.getsockname()[1]


def test_connect_to_closed_port_is_502(proxy: Proxy) -> None:
    sock, head, body = _connect(proxy, f"127.0.0.1:{_closed_port()}")
    with sock:
        body += _recv_all(sock)
    assert head.startswith(b"HTTP/1.1 502")
    assert body.count(b"\n") == 1 and body.startswith(b"Bad Gateway")


def test_connect_with_malformed_target_is_400(proxy: Proxy) -> None:
    sock, head, _ = _connect(proxy, "example.org:notaport")
    sock.close()
    assert head.startswith(b"HTTP/1.1 400")


# -- (f): absolute-URI plain HTTP -------------------------------------------------------------------------


def test_absolute_uri_for_aws_host_is_served_locally(proxy: Proxy) -> None:
    response = requests.get("http://s3.amazonaws.com/foo?list-type=2", proxies={"http": proxy.url}, timeout=5)
    seen = response.json()
    assert seen["path"] == "/foo?list-type=2"
    assert seen["host"] == "s3.amazonaws.com"
    assert seen["tunnel"] == ["s3.amazonaws.com", "http"]


def test_proxy_host_is_reset_between_keep_alive_requests(proxy: Proxy) -> None:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        sock.sendall(b"GET http://s3.amazonaws.com/one HTTP/1.1\r\nHost: s3.amazonaws.com\r\n\r\n")
        head, body = _read_head(sock)
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        while len(body) < length:
            body += sock.recv(4096)
        assert json.loads(body)["tunnel"] == ["s3.amazonaws.com", "http"]
        sock.sendall(b"GET /two HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        head, body = _read_head(sock)
        body += _recv_all(sock)
    assert json.loads(body)["tunnel"] == [None, "http"]


def test_absolute_uri_for_other_host_is_forwarded(proxy: Proxy, upstream: GatewayServer) -> None:
    base = f"http://127.0.0.1:{upstream.server_address[1]}"
    proxies = {"http": proxy.url}
    with requests.Session() as session:
        posted = session.post(f"{base}/bar?q=1", data=b"hello", proxies=proxies, timeout=5)
        chunked_up = session.post(f"{base}/up", data=iter([b"chunk-", b"ed"]), proxies=proxies, timeout=5)
        chunked_down = session.get(f"{base}/chunked", proxies=proxies, timeout=5)
    assert posted.status_code == 200
    assert posted.json() == {
        "method": "POST",
        "path": "/bar?q=1",
        "host": f"127.0.0.1:{upstream.server_address[1]}",
        "tunnel": [None, "http"],
        "body": "hello",
    }
    assert chunked_up.json()["body"] == "chunk-ed"
    assert chunked_down.content == b"hello chunked world"


def test_absolute_uri_for_unreachable_host_is_502(proxy: Proxy) -> None:
    response = requests.get(f"http://127.0.0.1:{_closed_port()}/x", proxies={"http": proxy.url}, timeout=5)
    assert response.status_code == 502
    assert response.text.count("\n") == 1


# -- (g): the CA itself -----------------------------------------------------------------------------------


def test_ca_files_are_private_and_reused(tmp_path: Path) -> None:
    ca_dir = tmp_path / "ca"
    first = LocalCA.load_or_create(ca_dir)
    assert stat.S_IMODE(os.stat(ca_dir / "ca-key.pem").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(ca_dir / "leaf-key.pem").st_mode) == 0o600
    second = LocalCA.load_or_create(ca_dir)
    assert second.cert_pem == first.cert_pem
    common_name = second.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert common_name == "SageMaker Emulator Local CA"
    # Leaves live in memory only: minting leaves no file behind (a client cannot fill the disk).
    before = sorted(p.name for p in ca_dir.iterdir())
    first.ssl_context_for(STS_HOST)
    second.ssl_context_for("x.s3.amazonaws.com")
    assert sorted(p.name for p in ca_dir.iterdir()) == before


def test_leaf_cache_is_bounded(tmp_path: Path) -> None:
    from sagemaker_emulator import ca as ca_module

    ca = LocalCA.load_or_create(tmp_path / "ca")
    for i in range(ca_module.MAX_CACHED_CONTEXTS + 40):
        ca.ssl_context_for(f"b.h{i}.example.amazonaws.com")
    assert len(ca._contexts) == ca_module.MAX_CACHED_CONTEXTS
    # The most recently used survive; an evicted host is simply minted again and still validates.
    assert ca.ssl_context_for(f"b.h{ca_module.MAX_CACHED_CONTEXTS + 39}.example.amazonaws.com") in ca._contexts.values()
    _handshake_ok(ca, "b.h0.example.amazonaws.com")


def _handshake_ok(ca: LocalCA, host: str) -> None:
    """A strict client that trusts only ``ca`` completes a handshake for ``host``."""
    sock_a, sock_b = socket.socketpair()
    with sock_a, sock_b:
        server = ca.ssl_context_for(host).wrap_socket(sock_a, server_side=True, do_handshake_on_connect=False)
        client_context = ssl.create_default_context(cadata=ca.cert_pem.decode())
        client = client_context.wrap_socket(sock_b, server_hostname=host, do_handshake_on_connect=False)
        thread = threading.Thread(target=server.do_handshake)
        thread.start()
        client.do_handshake()
        thread.join()


@pytest.mark.parametrize("round_", range(5))
def test_ca_creation_race_yields_one_ca(tmp_path: Path, round_: int) -> None:
    ca_dir = tmp_path / "ca"
    barrier = threading.Barrier(12)

    def create(_: int) -> bytes:
        barrier.wait()
        ca = LocalCA.load_or_create(ca_dir)
        ca.ssl_context_for(STS_HOST)  # concurrent writes of the same leaf file, too
        return ca.cert_pem

    with ThreadPoolExecutor(max_workers=12) as pool:
        certs = set(pool.map(create, range(12)))
    assert certs == {(ca_dir / "ca-cert.pem").read_bytes()}
    assert not [p for p in ca_dir.iterdir() if p.name.endswith((".tmp", ".bad"))]


def test_corrupt_key_is_set_aside_and_replaced(tmp_path: Path) -> None:
    ca_dir = tmp_path / "ca"
    first = LocalCA.load_or_create(ca_dir)
    (ca_dir / "ca-key.pem").write_bytes(b"not a key")
    second = LocalCA.load_or_create(ca_dir)
    assert second.cert_pem != first.cert_pem  # new key, so a new root matching it
    assert (ca_dir / "ca-key.pem.bad").read_bytes() == b"not a key"
    assert (ca_dir / "ca-cert.pem").read_bytes() == second.cert_pem
    # Leaves come from the new root.
    first.ssl_context_for(STS_HOST)
    _handshake_ok(second, STS_HOST)


def _certificates(data: bytes) -> list[bytes]:
    """DER of every certificate in a PEM bundle, in order."""
    blocks = re.findall(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", data, re.DOTALL)
    return [ssl.PEM_cert_to_DER_cert(block.decode()) for block in blocks]


def test_bundle_extends_the_system_store_and_certifi(proxy: Proxy) -> None:
    from sagemaker_emulator.ca import system_trust_sources

    bundle = _certificates(proxy.bundle.read_bytes())
    assert bundle[0] == _certificates(proxy.ca.cert_pem)[0], "our root comes first"
    assert len(bundle) == len(set(bundle)), "each certificate once"
    assert set(_certificates(Path(certifi.where()).read_bytes())) <= set(bundle)
    system = [cert for source in system_trust_sources() if source.is_file()
              for cert in _certificates(source.read_bytes())]
    assert set(system) <= set(bundle)


def test_minting_is_fast(tmp_path: Path) -> None:
    ca = LocalCA.load_or_create(tmp_path / "ca")
    hosts = [f"service{i}.eu-west-{i}.amazonaws.com" for i in range(20)]
    started = time.perf_counter()
    for host in hosts:
        ca.ssl_context_for(host)
    assert (time.perf_counter() - started) / len(hosts) < 0.05


def test_invalid_host_names_are_rejected(tmp_path: Path) -> None:
    ca = LocalCA.load_or_create(tmp_path / "ca")
    for bad in ("../etc/passwd", "a b.amazonaws.com", "", "x/y.amazonaws.com"):
        with pytest.raises(ValueError):
            ca.ssl_context_for(bad)


# -- (g) chaining to the user's own proxy ----------------------------------------------------------------


class CompanyProxy:
    """A recording explicit proxy on loopback, standing in for a company's: it tunnels CONNECT to the target
    and answers plain absolute-URI requests itself; with ``refuse`` it answers 407 to everything."""

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.seen: list[tuple[str, dict[str, str]]] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            head, rest = _read_head(conn)
            line, *fields = head.decode("latin-1").split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, _, v in (f.partition(":") for f in fields)}
            self.seen.append((line, headers))
            if self.refuse:
                conn.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
                return
            method, target, _ = line.split(" ")
            if method != "CONNECT":
                body = f"via company proxy: {target}".encode()
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
                return
            host, _, port = target.rpartition(":")
            with socket.create_connection((host, int(port)), timeout=5) as upstream:
                conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                upstream.sendall(rest)
                conn.settimeout(5)
                while data := conn.recv(65536):
                    upstream.sendall(data)
                    if data.endswith(b"!"):
                        conn.sendall(upstream.recv(65536))

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def company_proxy(proxy: Proxy) -> Iterator[CompanyProxy]:
    from sagemaker_emulator.upstream import from_environ

    company = CompanyProxy()
    environ = {"HTTPS_PROXY": f"http://alice:s%3Acret@127.0.0.1:{company.port}", "NO_PROXY": "internal.corp"}
    proxy.server.upstream_proxy = from_environ(environ)  # type: ignore[attr-defined]
    yield company
    proxy.server.upstream_proxy = None  # type: ignore[attr-defined]
    company.close()


def test_tunnels_for_non_aws_hosts_go_through_the_users_proxy(proxy: Proxy, company_proxy: CompanyProxy,
                                                              echo_port: int) -> None:
    sock, head, _ = _connect(proxy, f"127.0.0.1:{echo_port}")
    with sock:
        assert head.startswith(b"HTTP/1.1 200")
        sock.sendall(b"hello!")
        assert sock.recv(100) == b"hello!"
    line, headers = company_proxy.seen[0]
    assert line == f"CONNECT 127.0.0.1:{echo_port} HTTP/1.1"
    assert headers["proxy-authorization"] == "Basic " + __import__("base64").b64encode(b"alice:s:cret").decode()


def test_plain_http_for_non_aws_hosts_goes_through_the_users_proxy(proxy: Proxy,
                                                                  company_proxy: CompanyProxy) -> None:
    response = requests.get("http://files.example.org/data.csv?x=1", proxies={"http": proxy.url}, timeout=5)
    assert response.text == "via company proxy: http://files.example.org/data.csv?x=1"
    assert company_proxy.seen[0][1]["proxy-authorization"].startswith("Basic ")


def test_aws_hosts_never_reach_the_users_proxy(proxy: Proxy, company_proxy: CompanyProxy) -> None:
    response = requests.get("https://sts.us-east-1.amazonaws.com/", proxies={"https": proxy.url},
                            verify=str(proxy.bundle), timeout=5)
    assert response.json()["host"] == "sts.us-east-1.amazonaws.com"
    assert company_proxy.seen == []


def test_no_proxy_hosts_go_direct(proxy: Proxy, company_proxy: CompanyProxy, echo_port: int) -> None:
    from sagemaker_emulator.upstream import Upstream

    chain = proxy.server.upstream_proxy  # type: ignore[attr-defined]
    proxy.server.upstream_proxy = Upstream(chain.host, chain.port, None, ("internal.corp", "127.0.0.0/8"))
    assert not proxy.server.upstream_proxy.applies("build.internal.corp")
    assert proxy.server.upstream_proxy.applies("pypi.org")
    sock, head, _ = _connect(proxy, f"127.0.0.1:{echo_port}")
    sock.close()
    assert head.startswith(b"HTTP/1.1 200") and company_proxy.seen == []


def test_a_refusing_users_proxy_is_a_502_that_names_it(proxy: Proxy, echo_port: int) -> None:
    from sagemaker_emulator.upstream import from_environ

    company = CompanyProxy(refuse=True)
    proxy.server.upstream_proxy = from_environ({"https_proxy": f"127.0.0.1:{company.port}"})  # type: ignore
    try:
        sock, head, body = _connect(proxy, f"127.0.0.1:{echo_port}")
        with sock:
            body += _recv_all(sock)
    finally:
        proxy.server.upstream_proxy = None  # type: ignore[attr-defined]
        company.close()
    assert head.startswith(b"HTTP/1.1 502")
    assert f"127.0.0.1:{company.port}".encode() in body and b"407" in body


def test_env_records_the_users_proxy_and_sagemaker_mode_puts_it_back(tmp_path: Path) -> None:
    from helpers.workshop import clear_emulator_environment
    from sagemaker_emulator.config import StatePaths
    from sagemaker_emulator.envvars import environment
    from sagemaker_emulator.upstream import from_environ

    StatePaths(tmp_path / "state").ensure()
    user = {"HTTPS_PROXY": "http://proxy.corp:3128", "NO_PROXY": ".corp"}
    applied = {**user, **environment(tmp_path / "state", "http://127.0.0.1:4567", "us-east-1", user)}
    assert applied["HTTPS_PROXY"] == "http://127.0.0.1:4567"
    chain = from_environ(applied)  # a daemon started from a kernel that has the emulator's environment
    assert (chain.host, chain.port, chain.no_proxy) == ("proxy.corp", 3128, (".corp",))
    again = {**applied, **environment(tmp_path / "state", "http://127.0.0.1:4567", "us-east-1", applied)}
    assert from_environ(again) == chain  # applying env twice keeps the user's proxy, not the emulator
    clear_emulator_environment(again)
    assert again["HTTPS_PROXY"] == "http://proxy.corp:3128" and again["NO_PROXY"] == ".corp"
    assert "AWS_ENDPOINT_URL" not in again
