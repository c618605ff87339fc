"""An independent attacker's client: its own SigV4 signer and raw sockets, no botocore.

Why not boto3: botocore always sends well-formed, correctly signed requests, so it cannot
send the malformed framing, swapped bodies, stale scopes and half-finished requests that a
hostile local process can. This client writes bytes to a socket exactly as told, and signs
(from the SigV4 specification, not botocore's code) only what it is told to sign.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import socket
import time
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def amz_now(offset: dt.timedelta = dt.timedelta(0)) -> str:
    return (dt.datetime.now(dt.UTC) + offset).strftime("%Y%m%dT%H%M%SZ")


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = _hmac(key, part)
    return key


def _canonical_query(query: str) -> str:
    pairs = []
    for item in filter(None, query.split("&")):
        key, _, value = item.partition("=")
        pairs.append((key, value))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


@dataclass
class RawResponse:
    status: int
    reason: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)

    @property
    def error_code(self) -> str | None:
        """The AWS error code in whichever protocol the body speaks (JSON ``__type`` or XML ``<Code>``)."""
        text = self.body.decode("utf-8", "replace").strip()
        if text.startswith("{"):
            value = json.loads(text).get("__type") or json.loads(text).get("code")
            return value.rsplit("#", 1)[-1] if value else None
        if "<Code>" in text:
            return text.split("<Code>", 1)[1].split("</Code>", 1)[0]
        return self.headers.get("x-amzn-errortype", "").split(":")[0] or None


@dataclass
class RawClient:
    """Signs and sends requests to one emulator over plain sockets."""

    endpoint_url: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"
    timeout: float = 10.0
    _host: str = field(init=False)
    _port: int = field(init=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.endpoint_url)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80

    @property
    def host_header(self) -> str:
        return f"{self._host}:{self._port}"

    # ------------------------------------------------------------------ signing
    def sign(
        self, method: str, path: str, *, service: str, query: str = "", headers: dict[str, str] | None = None,
        payload_hash: str | None = None, body: bytes = b"", region: str | None = None,
        scope_date: str | None = None, amz_date: str | None = None, secret: str | None = None,
        signed: tuple[str, ...] | None = None,
    ) -> dict[str, str]:
        """Headers with ``Authorization`` added. Every part of the claim can be overridden to lie."""
        headers = dict(headers or {})
        amz_date = amz_date or amz_now()
        headers.setdefault("Host", self.host_header)
        headers["X-Amz-Date"] = amz_date
        if payload_hash is None:
            payload_hash = hashlib.sha256(body).hexdigest()
        if service == "s3":
            headers.setdefault("X-Amz-Content-SHA256", payload_hash)
        names = signed or tuple(sorted(h.lower() for h in headers))
        lower = {k.lower(): v for k, v in headers.items()}
        canonical_headers = "".join(f"{n}:{' '.join(lower.get(n, '').split())}\n" for n in names)
        canonical = "\n".join([method, path, _canonical_query(query), canonical_headers, ";".join(names),
                               payload_hash])
        date = scope_date or amz_date[:8]
        region = region or self.region
        scope = f"{date}/{region}/{service}/aws4_request"
        to_sign = "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
        signature = hmac.new(signing_key(secret or self.secret_key, date, region, service), to_sign.encode(),
                             hashlib.sha256).hexdigest()
        headers["Authorization"] = (f"{ALGORITHM} Credential={self.access_key}/{scope}, "
                                    f"SignedHeaders={';'.join(names)}, Signature={signature}")
        return headers

    def presign(
        self, method: str, path: str, *, service: str = "s3", expires: int = 300, amz_date: str | None = None,
        region: str | None = None,
    ) -> str:
        """A presigned query string (``X-Amz-*``) for ``path``, as S3 presigned URLs carry it."""
        amz_date = amz_date or amz_now()
        region = region or self.region
        scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
        params = {
            "X-Amz-Algorithm": ALGORITHM, "X-Amz-Credential": f"{self.access_key}/{scope}",
            "X-Amz-Date": amz_date, "X-Amz-Expires": str(expires), "X-Amz-SignedHeaders": "host",
        }
        query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(params.items()))
        canonical = "\n".join([method, path, query, f"host:{self.host_header}\n", "host", "UNSIGNED-PAYLOAD"])
        to_sign = "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
        signature = hmac.new(signing_key(self.secret_key, amz_date[:8], region, service), to_sign.encode(),
                             hashlib.sha256).hexdigest()
        return f"{query}&X-Amz-Signature={signature}"

    # ------------------------------------------------------------------ sending
    def connect(self, timeout: float | None = None) -> socket.socket:
        sock = socket.create_connection((self._host, self._port), timeout=timeout or self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def send_bytes(self, data: bytes, timeout: float | None = None) -> RawResponse:
        """Write ``data`` as is, then read one response (the server may close early: that is read too)."""
        with self.connect(timeout) as sock:
            try:
                sock.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server answered and closed before the whole body went out; its answer is still there
            return read_response(sock, data.split(b" ", 1)[0].decode("latin-1"))

    def request(
        self, method: str, path: str, *, service: str, body: bytes = b"", query: str = "",
        headers: dict[str, str] | None = None, sign: bool = True, content_length: int | None = None,
        timeout: float | None = None, **sign_args: object,
    ) -> RawResponse:
        """One signed (or unsigned) request. ``content_length`` may lie about ``body``."""
        headers = dict(headers or {})
        headers.setdefault("Host", self.host_header)
        if sign:
            headers = self.sign(method, path, service=service, query=query, headers=headers, body=body,
                                **sign_args)  # type: ignore[arg-type]
        if "Transfer-Encoding" not in headers and "Content-Length" not in headers:
            headers["Content-Length"] = str(len(body) if content_length is None else content_length)
        target = path + (f"?{query}" if query else "")
        head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        return self.send_bytes(head.encode("latin-1") + body, timeout)

    def json_call(self, target: str, payload: dict | str | bytes, *, service: str = "sagemaker",
                  prefix: str = "SageMaker", **kwargs: object) -> RawResponse:
        """A json-1.1 protocol call (``X-Amz-Target: SageMaker.<target>``) with any payload, valid or not."""
        body = payload if isinstance(payload, bytes) else (
            payload.encode() if isinstance(payload, str) else json.dumps(payload).encode())
        headers = {"X-Amz-Target": f"{prefix}.{target}", "Content-Type": "application/x-amz-json-1.1"}
        return self.request("POST", "/", service=service, body=body, headers=headers, **kwargs)  # type: ignore[arg-type]


def read_response(sock: socket.socket, method: str = "GET") -> RawResponse:
    """Read one HTTP/1.1 response: status line, headers, then a Content-Length or chunked body
    (none for ``HEAD`` and for 1xx/204/304 answers, whatever their headers say)."""
    file = sock.makefile("rb")
    try:
        line = file.readline(65537)
        if not line:
            raise ConnectionError("the server closed the connection without answering")
        _, status, *reason = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        headers: dict[str, str] = {}
        while True:
            raw = file.readline(65537)
            if raw in (b"\r\n", b"\n", b""):
                break
            name, _, value = raw.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        body = b""
        if method == "HEAD" or int(status) in (204, 304) or 100 <= int(status) < 200:
            pass
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int(file.readline(65537).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    file.readline(65537)
                    break
                body += file.read(size)
                file.readline(3)
        elif "content-length" in headers:
            body = file.read(int(headers["content-length"]))
        return RawResponse(int(status), reason[0] if reason else "", headers, body)
    finally:
        file.close()


def wait_closed(sock: socket.socket, limit: float) -> float | None:
    """Seconds until the server closes ``sock`` (reads EOF or a reset), or None if still open after ``limit``."""
    start = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - start < limit:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            continue
        except (ConnectionResetError, OSError):
            return time.monotonic() - start
        if not data:
            return time.monotonic() - start
    return None


def signed_chunks(client: RawClient, headers: dict[str, str], chunks: list[bytes],
                  tamper: int | None = None, trailers: dict[str, str] | None = None,
                  trailer_signature: str | None = None) -> bytes:
    """An ``aws-chunked`` body whose chunks carry SigV4 chunk signatures chained from the request's
    (``STREAMING-AWS4-HMAC-SHA256-PAYLOAD``); ``tamper`` flips a byte of that chunk after signing it.
    With ``trailers`` (``…-PAYLOAD-TRAILER``) they follow the final chunk with their own signature, or with
    ``trailer_signature`` instead of it."""
    auth = headers["Authorization"]
    seed = auth.rsplit("Signature=", 1)[1]
    scope = auth.split("Credential=", 1)[1].split(",", 1)[0].split("/", 1)[1]
    date, region, service = scope.split("/")[:3]
    key = signing_key(client.secret_key, date, region, service)
    previous, out = seed, b""
    for index, data in enumerate([*chunks, b""]):
        to_sign = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", headers["X-Amz-Date"], scope, previous, EMPTY_SHA256,
                             hashlib.sha256(data).hexdigest()])
        previous = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        if tamper == index and data:
            data = bytes([data[0] ^ 1]) + data[1:]
        out += f"{len(data):x};chunk-signature={previous}\r\n".encode() + data + b"\r\n"
    if trailers is None:
        return out
    canonical = "".join(f"{name}:{value}\n" for name, value in trailers.items())
    to_sign = "\n".join(["AWS4-HMAC-SHA256-TRAILER", headers["X-Amz-Date"], scope, previous,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    signature = trailer_signature or hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return out[:-2] + canonical.replace("\n", "\r\n").encode() + f"x-amz-trailer-signature:{signature}\r\n\r\n".encode()


def request_head(method: str, target: str, headers: dict[str, str]) -> bytes:
    """The request line and headers of a request, ready for a socket (the body is the caller's)."""
    return (f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            + "\r\n").encode("latin-1")
