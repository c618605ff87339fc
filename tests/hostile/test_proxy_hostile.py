"""The proxy face under attack: hostile CONNECT targets and absolute URIs, TLS garbage and stalls, AWS hosts.

Everything goes to the real emulator on 127.0.0.1 over raw sockets. "Nothing reaches AWS" is shown by
the emulator's own answers (its account, its error naming the host) for hosts of every AWS partition.
"""

from __future__ import annotations

import logging
import socket
import ssl
import time
from collections.abc import Iterator

import pytest
from rawclient import RawClient, RawResponse, read_response, wait_closed

from sagemaker_emulator import proxy
from sagemaker_emulator.routing import host_target

STS_BODY = b"Action=GetCallerIdentity&Version=2011-06-15"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}

#: one host per partition and endpoint flavour, every one an STS endpoint the emulator must answer itself
AWS_STS_HOSTS = [
    "sts.amazonaws.com",
    "sts.us-east-1.amazonaws.com",
    "sts-fips.us-east-2.amazonaws.com",
    "sts.us-east-1.api.aws",  # dual-stack
    "sts-fips.us-east-1.api.aws",  # dual-stack FIPS
    "sts.us-gov-west-1.amazonaws.com",  # GovCloud
    "sts.cn-north-1.amazonaws.com.cn",  # China
    "sts.cn-north-1.api.amazonwebservices.com.cn",  # China dual-stack
    "sts.eusc-de-east-1.amazonaws.eu",  # European Sovereign Cloud
    "sts.us-iso-east-1.c2s.ic.gov",  # ISO partitions
    "sts.us-isob-east-1.sc2s.sgov.gov",
    "sts.eu-isoe-west-1.cloud.adc-e.uk",
    "sts.us-isof-south-1.csp.hci.ic.gov",
]
#: AWS hosts at which the emulator provides no service: answered locally with an error naming them
UNSERVED_AWS_HOSTS = [
    "something.sagemaker.aws",
    "d-abc123.studio.us-east-1.sagemaker.aws",
    "webapp.us-east-1.app.aws",
    "bedrock-runtime.us-east-1.amazonaws.com",
    "neptune-graph.us-east-1.on.aws",
    "us-east-1.signin.aws.amazon.com",
    "amazonaws.com",
]
#: hosts no client may name (CONNECT target or absolute URI): each gets a one-line 400, never a tunnel, a
#: forward, a reset or a traceback
BAD_HOSTS = [
    b"a" * 64 + b".example.com",  # label over 63
    b"a" * 64 + b".s3.amazonaws.com",
    b"a." * 127 + b"com",  # 255 characters
    b"x" * 60_000,  # 60 kB
    b"xn--zz.example.com",  # punycode that does not decode
    b"xn--abc-.amazonaws.com",  # punycode that does not round-trip
    "bücher.example".encode(),  # non-ASCII (UTF-8)
    b"\xff\xfe.example.com",  # not even UTF-8
    b"a..b.example.com",  # empty label
    b"-a.example.com",
    b"%65xample.com",
    b"",  # empty host
    b"[::1",
    b"[zz::1]",
    b"[::1]x",
    b"[127.0.0.1]",
    b"[]",
    b"127.1",  # a numeric "name" inet_aton would read as an address
]
BAD_PORTS = [b"0", b"65536", b"99999999999999999999", b"abc", b"+443", b"4_43", b"\xd9\xa4\xd9\xa4\xd9\xa3", b""]
BAD_TARGETS = [
    *(host + b":443" for host in BAD_HOSTS),
    *(b"example.com:" + port for port in BAD_PORTS),
    b"example.com",  # CONNECT needs a port
    b"sts.amazonaws.com",
    b"example.com:443/path",
    b"http://example.com:443",
    b"::1:443",  # IPv6 without brackets
]


@pytest.fixture(autouse=True)
def no_tracebacks(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """No ERROR record and no traceback from the emulator while (and right after) the test runs."""
    caplog.set_level(logging.WARNING, logger="sagemaker_emulator")
    yield
    time.sleep(0.2)  # handler threads finish the connections the test just dropped
    bad = [r for r in caplog.records if r.name.startswith("sagemaker_emulator") and
           (r.levelno >= logging.ERROR or r.exc_info)]
    assert not bad, "\n".join(caplog.text.splitlines()[-40:])


def _port(raw: RawClient) -> int:
    return int(raw.host_header.rsplit(":", 1)[1])


def _connect(raw: RawClient, target: bytes) -> tuple[socket.socket, RawResponse]:
    sock = raw.connect()
    sock.sendall(b"CONNECT " + target + b" HTTP/1.1\r\nHost: proxy\r\n\r\n")
    return sock, read_response(sock)


def _assert_one_line_400(response: RawResponse) -> None:
    assert response.status == 400, (response.status, response.body[:200])
    assert response.body.count(b"\n") == 1 and len(response.body) < 1000, response.body[:300]


def _signed_sts(raw: RawClient, host: str, target: str = "/") -> bytes:
    """A signed GetCallerIdentity for ``host`` whose request line carries ``target`` (origin or absolute)."""
    region = host_target(host).region or raw.region  # the scope must name the region the host names
    headers = raw.sign("POST", "/", service="sts", body=STS_BODY, headers={**FORM, "Host": host}, region=region)
    headers["Content-Length"] = str(len(STS_BODY))
    head = f"POST {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    return head.encode() + STS_BODY


def _bundle(emulator) -> str:
    return str(emulator.paths.ca / "bundle.pem")


def _tls_through_connect(raw: RawClient, emulator, host: str) -> ssl.SSLSocket:
    sock, response = _connect(raw, f"{host}:443".encode())
    assert response.status == 200, response.body
    context = ssl.create_default_context(cafile=_bundle(emulator))
    return context.wrap_socket(sock, server_hostname=host)


# -- every AWS host is answered locally ----------------------------------------------------------------


@pytest.mark.parametrize("host", AWS_STS_HOSTS)
def test_aws_hosts_of_every_partition_are_served_locally_through_connect(raw, emulator, still_serving, host):
    assert proxy.is_aws_host(host)
    with _tls_through_connect(raw, emulator, host) as tls:
        tls.sendall(_signed_sts(raw, host))
        response = read_response(tls)
    assert response.status == 200, response.body
    assert b"<Account>123456789012</Account>" in response.body


@pytest.mark.parametrize("host", AWS_STS_HOSTS)
def test_absolute_uris_for_aws_hosts_are_served_locally(raw, still_serving, host):
    for scheme in ("http", "https"):
        response = raw.send_bytes(_signed_sts(raw, host, f"{scheme}://{host}/"))
        assert response.status == 200, response.body
        assert b"<Account>123456789012</Account>" in response.body


@pytest.mark.parametrize("host", UNSERVED_AWS_HOSTS)
def test_aws_hosts_without_an_emulated_service_get_a_local_error_naming_them(raw, emulator, still_serving,
                                                                             host):
    assert proxy.is_aws_host(host), "intercepted, never tunnelled"
    with _tls_through_connect(raw, emulator, host) as tls:
        tls.sendall(f"GET /api/2.0/mlflow/experiments/list HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        response = read_response(tls)
    assert (response.status, response.error_code) == (400, "UnknownServiceException")
    assert f"'{host}'".encode() in response.body
    # The same over a plain absolute URI, with a JSON body: the answer speaks JSON.
    body = b'{"x": 1}'
    response = raw.send_bytes(
        f"POST http://{host}/ HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-amz-json-1.1\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    assert (response.status, response.error_code) == (400, "UnknownServiceException")
    assert host in response.json()["message"]


@pytest.mark.parametrize("host", ["mlflow.sagemaker.us-east-1.app.aws", "us-east-1.experiments.sagemaker.aws"])
def test_managed_mlflow_hosts_are_served_locally_and_refuse_unsigned_calls(raw, emulator, still_serving, host):
    """MLflow Apps and tracking servers are emulated: their hosts are intercepted (never tunnelled) and, like
    AWS, answer an unsigned call with an authentication error rather than forwarding it anywhere."""
    assert proxy.is_aws_host(host), "intercepted, never tunnelled"
    with _tls_through_connect(raw, emulator, host) as tls:
        tls.sendall(f"GET /api/2.0/mlflow/experiments/list HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        response = read_response(tls)
    assert response.status in (400, 403) and response.error_code == "MissingAuthenticationTokenException", \
        response.body


def test_absolute_uri_naming_the_emulator_itself_is_served_directly(raw, still_serving):
    response = raw.send_bytes(
        f"GET http://{raw.host_header}/_emulator/health HTTP/1.1\r\nHost: {raw.host_header}\r\n\r\n".encode())
    assert response.status == 200 and b'"status": "ok"' in response.body


# -- hostile CONNECT targets and absolute URIs ----------------------------------------------------------


@pytest.mark.parametrize("target", BAD_TARGETS, ids=lambda t: t[:40].decode("latin-1"))
def test_hostile_connect_targets_get_400(raw, still_serving, target):
    sock, response = _connect(raw, target)
    with sock:
        _assert_one_line_400(response)
        assert wait_closed(sock, 5) is not None, "the connection is closed after the answer"


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "0.0.0.0", "[::ffff:127.0.0.1]", "127.0.0.2"])
def test_connect_to_the_emulator_itself_is_a_loop_and_refused(raw, still_serving, host):
    sock, response = _connect(raw, f"{host}:{_port(raw)}".encode())
    with sock:
        _assert_one_line_400(response)
        assert b"loop" in response.body


@pytest.mark.parametrize("authority", [*BAD_HOSTS, *(b"example.com:" + port for port in BAD_PORTS if port), b"::1"],
                         ids=lambda t: t[:40].decode("latin-1"))
def test_hostile_absolute_uris_get_400(raw, still_serving, authority):
    for scheme in (b"http", b"https"):
        response = raw.send_bytes(b"GET " + scheme + b"://" + authority + b"/x HTTP/1.1\r\nHost: h\r\n\r\n")
        _assert_one_line_400(response)


def test_hostile_forward_framing_gets_400(raw, still_serving):
    """Malformed bodies of a request the proxy would forward are refused before anything goes upstream."""
    for framing in (b"Content-Length: abc\r\n", b"Content-Length: -1\r\n",
                    b"Content-Length: 5\r\nContent-Length: 6\r\n", b"Transfer-Encoding: gzip\r\n"):
        response = raw.send_bytes(b"POST http://127.0.0.1:9/x HTTP/1.1\r\nHost: 127.0.0.1:9\r\n" + framing +
                                  b"\r\nhello")
        _assert_one_line_400(response)


# -- the TLS side ---------------------------------------------------------------------------------------


@pytest.fixture
def short_handshake(monkeypatch: pytest.MonkeyPatch) -> float:
    """The emulator runs in this process: give it a 1.5 s handshake deadline instead of 10 s."""
    monkeypatch.setattr(proxy, "_HANDSHAKE_TIMEOUT", 1.5)
    return 1.5


@pytest.mark.parametrize("garbage", [b"\x16\x03\x01\x00\x05hello" + b"\x00" * 64, b"\x16" * 4096,
                                     b"\x00\x01\x02\x03\r\n\r\n", b"\x80\x2b\x01\x03\x01"])
def test_garbage_instead_of_a_client_hello_is_closed_quietly(raw, still_serving, garbage):
    sock, response = _connect(raw, b"sts.us-east-1.amazonaws.com:443")
    with sock:
        assert response.status == 200
        sock.sendall(garbage)
        assert wait_closed(sock, 5) is not None


def test_a_client_that_never_starts_the_handshake_is_closed(raw, still_serving, short_handshake):
    sock, response = _connect(raw, b"sts.us-east-1.amazonaws.com:443")
    with sock:
        assert response.status == 200
        waited = wait_closed(sock, short_handshake + 5)
    assert waited is not None and waited < short_handshake + 2


def _client_hello(host: str) -> bytes:
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ssl.create_default_context().wrap_bio(incoming, outgoing, server_hostname=host)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def test_a_client_hello_trickled_byte_by_byte_hits_the_handshake_deadline(raw, still_serving, short_handshake):
    """Each byte arrives well within any per-read timeout; only a deadline for the whole handshake ends it."""
    hello = _client_hello("sts.us-east-1.amazonaws.com")
    sock, response = _connect(raw, b"sts.us-east-1.amazonaws.com:443")
    started = time.monotonic()
    closed_after = None
    with sock:
        assert response.status == 200
        sock.settimeout(0.25)
        for byte in hello[:-1]:
            try:
                sock.sendall(bytes([byte]))
                if sock.recv(4096) == b"":
                    closed_after = time.monotonic() - started
                    break
            except TimeoutError:
                continue
            except OSError:
                closed_after = time.monotonic() - started
                break
            if time.monotonic() - started > short_handshake + 5:
                break
    assert closed_after is not None and closed_after < short_handshake + 2, closed_after


def test_endless_random_aws_hosts_do_not_grow_the_leaf_cache(raw, emulator, still_serving):
    from sagemaker_emulator.ca import MAX_CACHED_CONTEXTS

    files_before = sorted(p.name for p in emulator.paths.ca.rglob("*"))
    for i in range(MAX_CACHED_CONTEXTS + 30):
        sock, response = _connect(raw, f"b{i}.r{i}.attacker.amazonaws.com:443".encode())
        sock.close()
        assert response.status == 200
    assert len(emulator.ca._contexts) <= MAX_CACHED_CONTEXTS
    assert sorted(p.name for p in emulator.paths.ca.rglob("*")) == files_before, "nothing written per host"
