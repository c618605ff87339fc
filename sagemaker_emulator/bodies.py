"""Request body readers: exact-length, HTTP chunked, S3's ``aws-chunked`` framing, and payload hashing.

Bodies are streamed, never buffered whole by the gateway, so a 50 MB
``PutObject`` goes from socket to file in constant memory. Every reader is
strict, because a lenient one turns a hostile or broken client into wrong
state: a body shorter than its ``Content-Length``, a chunk size that is
negative, absurd or cut short, or a payload whose SHA-256 is not the one the
client signed raises the AWS error (``IncompleteBody``, ``InvalidRequest``,
``XAmzContentSHA256Mismatch``) from inside ``read``, so a handler that writes
to a temporary file and renames only at the end can never commit it. A stalled
client surfaces as ``RequestTimeout`` (the socket's timeout), as S3 reports it.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import time
from collections.abc import Callable
from typing import Any, BinaryIO

from .protocol.errors import ServiceError

#: a chunk-size line (hex size plus ``;chunk-signature=<64 hex>``) is far shorter than this
MAX_CHUNK_LINE = 4096
MAX_TRAILERS = 32


def incomplete_body() -> ServiceError:
    return ServiceError("IncompleteBody",
                        "You did not provide the number of bytes specified by the Content-Length HTTP header.", 400)


def request_timeout() -> ServiceError:
    return ServiceError("RequestTimeout", "Your socket connection to the server was not read from or written to "
                        "within the timeout period. Idle connections will be closed.", 400)


def too_large(size: int, limit: int, what: str) -> ServiceError:
    if what.startswith("s3 "):
        return ServiceError("EntityTooLarge", "Your proposed upload exceeds the maximum allowed size", 400,
                            ProposedSize=str(size), MaxSizeAllowed=str(limit))
    return ServiceError("RequestEntityTooLarge",
                        f"The request body of {size} bytes exceeds the {limit}-byte limit of {what}.", 413)


def _read_or_timeout(read: Callable[[int], bytes], size: int) -> bytes:
    try:
        return read(size)
    except TimeoutError as exc:
        raise request_timeout() from exc


class Reader(io.RawIOBase):
    """A body reader; readers wrap one another (``source``), the innermost reading the socket."""

    source: Any = None

    def readable(self) -> bool:
        return True

    def settled(self, drain_limit: int) -> bool:
        """Whether the connection can stay open after the handler is done with this body: the unread rest
        on the wire is at most ``drain_limit`` bytes. A refused upload's body is not read (that is the point
        of refusing it), so its connection closes. Wrappers ask the reader they wrap."""
        return self.source.settled(drain_limit) if isinstance(self.source, Reader) else True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


class LimitedReader(Reader):
    """Exactly ``length`` bytes from ``raw``; fewer (the client hung up) is ``IncompleteBody``."""

    def __init__(self, raw: BinaryIO, length: int) -> None:
        self._raw = raw
        self.remaining = length

    def settled(self, drain_limit: int) -> bool:
        return self.remaining <= drain_limit

    def read(self, size: int | None = -1) -> bytes:
        if self.remaining <= 0:
            return b""
        if size is None or size < 0 or size > self.remaining:
            size = self.remaining
        data = _read_or_timeout(self._raw.read, size)
        if not data:
            self.remaining = 0
            raise incomplete_body()
        self.remaining -= len(data)
        return data


class ChunkedReader(Reader):
    """Decodes ``Transfer-Encoding: chunked`` and ``aws-chunked`` (``size;chunk-signature=…``) framing.

    Trailers (``x-amz-checksum-crc32:…``) after the last chunk are collected in
    ``trailers``. ``limit`` bounds the decoded size (``EntityTooLarge`` beyond
    it); ``verify_chunk``, when given, is called with each chunk's extension
    and data (and ``b""`` for the final chunk) to check chunk signatures.
    """

    def __init__(self, raw: BinaryIO, limit: int | None = None, what: str = "this operation",
                 verify_chunk: Callable[[str, bytes], None] | None = None, expected: int | None = None) -> None:
        self._raw = self.source = raw
        self._expected = expected  # aws-chunked: x-amz-decoded-content-length, which the chunks must add up to
        self._left = 0
        self._done = False
        self._limit, self._what = limit, what
        self._verify = verify_chunk
        self._verify_trailers: Callable[[list[tuple[str, str]]], None] | None = None
        self._chunk = bytearray()
        self._extension = ""
        self.size = 0
        self.trailers: dict[str, str] = {}

    def bound(self, limit: int, what: str) -> None:
        """Refuse the body once its decoded size passes ``limit`` (known only while reading chunks)."""
        self._limit, self._what = limit, what

    def verify_with(self, chunk: Callable[[str, bytes], None],
                    trailers: Callable[[list[tuple[str, str]]], None] | None = None) -> None:
        """Check every chunk's signature (and the trailers', for ``…-PAYLOAD-TRAILER`` uploads) as it arrives."""
        self._verify, self._verify_trailers = chunk, trailers

    @property
    def framed_remaining(self) -> int | None:
        """Bytes of framed body still on the wire when its ``Content-Length`` is known (aws-chunked), else None."""
        return self.source.remaining if isinstance(self.source, LimitedReader) else None

    def settled(self, drain_limit: int) -> bool:
        return self._done or (isinstance(self.source, LimitedReader) and self.source.settled(drain_limit))

    def _line(self) -> bytes:
        line = _read_or_timeout(self._raw.readline, MAX_CHUNK_LINE + 1)
        if len(line) > MAX_CHUNK_LINE:
            raise ServiceError("InvalidRequest", "A chunk-size line of the request body is too long.", 400)
        return line

    def _next_chunk(self) -> None:
        line = self._line()
        if not line:
            raise incomplete_body()
        size_text, _, extension = line.decode("latin-1").strip().partition(";")
        size_text = size_text.strip()
        if not size_text or len(size_text) > 16 or any(c not in "0123456789abcdefABCDEF" for c in size_text):
            raise ServiceError("InvalidRequest", f"Invalid chunk size {size_text[:32]!r} in the request body.", 400)
        size = int(size_text, 16)
        self.size += size
        if self._limit is not None and self.size > self._limit:
            raise too_large(self.size, self._limit, self._what)
        self._extension = extension
        if self._expected is not None and self.size > self._expected:
            raise ServiceError("InvalidRequest", "The chunks of the request body add up to more than its "
                               "x-amz-decoded-content-length.", 400)
        if size == 0:
            if self._expected is not None and self.size != self._expected:
                raise incomplete_body()
            if self._verify is not None:
                self._verify(extension, b"")
            self._read_trailers()
            self._done = True
            return
        self._left = size

    def _read_trailers(self) -> None:
        lines: list[tuple[str, str]] = []
        for _ in range(MAX_TRAILERS + 1):
            trailer = self._line()
            if trailer in (b"\r\n", b"\n", b""):  # a body may end right after the last chunk: no trailers
                break
            key, colon, value = trailer.decode("latin-1").partition(":")
            if not colon:
                raise ServiceError("InvalidRequest", "A trailer of the chunked request body is malformed.", 400)
            lines.append((key.strip().lower(), value.strip()))
        else:
            raise ServiceError("InvalidRequest", "The chunked request body has too many trailers.", 400)
        if self._verify_trailers is not None:
            self._verify_trailers(lines)
        self.trailers.update(lines)

    def _end_chunk(self) -> None:
        if _read_or_timeout(self._raw.readline, 3) not in (b"\r\n", b"\n"):
            raise ServiceError("InvalidRequest", "A chunk of the request body is longer than its declared size.", 400)
        if self._verify is not None:
            self._verify(self._extension, bytes(self._chunk))
            self._chunk.clear()

    def read(self, size: int | None = -1) -> bytes:
        out = bytearray()
        want = size if size is not None and size >= 0 else None
        while not self._done and (want is None or len(out) < want):
            if self._left == 0:
                self._next_chunk()
                continue
            take = self._left if want is None else min(self._left, want - len(out))
            data = _read_or_timeout(self._raw.read, min(take, 1 << 20))
            if not data:
                raise incomplete_body()
            out += data
            if self._verify is not None:
                self._chunk += data
            self._left -= len(data)
            if self._left == 0:
                self._end_chunk()
        return bytes(out)


class HashingReader(Reader):
    """Passes a stream through and, at its end, checks that its SHA-256 is the one the client signed.

    Why at the end: S3 bodies stream to disk, so the hash is known only when the
    last byte is in; raising from ``read`` reaches the handler before it renames
    its temporary file into place, so a swapped body is never stored.
    """

    def __init__(self, raw: BinaryIO, expected_hex: str, length: int | None = None) -> None:
        self._raw = self.source = raw
        self._expected = expected_hex.lower()
        self._hash = hashlib.sha256()
        self._checked = False
        self._left = length  # a known length is checked on its last byte: readers may stop without an EOF read

    @property
    def trailers(self) -> dict[str, str]:
        return getattr(self._raw, "trailers", {})

    def read(self, size: int | None = -1) -> bytes:
        data = self._raw.read(size)
        if data:
            self._hash.update(data)
            if self._left is not None:
                self._left -= len(data)
        if not self._checked and ((not data and size != 0) or self._left == 0):
            self._check()
        return data

    def _check(self) -> None:
        self._checked = True
        computed = self._hash.hexdigest()
        if not hmac.compare_digest(computed, self._expected):
            raise ServiceError(
                "XAmzContentSHA256Mismatch",
                "The provided 'x-amz-content-sha256' header does not match what was computed.", 400,
                ClientComputedContentSHA256=self._expected, S3ComputedContentSHA256=computed,
            )

    def drain(self) -> None:
        while self._raw.read(1 << 20):
            pass


class TimedReader(Reader):
    """Adds the seconds spent waiting in ``read`` to ``waited``: the gateway takes the wait for a
    client's body off its own request timing (boto3 sends headers and body in two writes)."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = self.source = raw
        self.waited = 0.0

    def read(self, size: int | None = -1) -> bytes:
        started = time.perf_counter()
        try:
            return self._raw.read(size)
        finally:
            self.waited += time.perf_counter() - started


def read_whole(stream: BinaryIO, length: int | None) -> tuple[bytes, str]:
    """Read a whole (bounded) body once: (its bytes, their SHA-256 hex).

    Non-S3 bodies are bounded before they are read (``BODY_LIMITS``: 6 MB for
    InvokeEndpoint, 16 MiB at most) and their handlers need them whole, so they
    are read straight into the one ``bytes`` object the handler gets: a known
    length in a single read, a chunked body joined once.
    """
    if length is not None:
        data = stream.read(length) if length else b""
        if stream.read(1):  # a LimitedReader cannot give more; a chunked body that does is over its length
            raise ServiceError("InvalidRequest", "The request body is longer than its declared length.", 400)
    else:
        data = b"".join(iter(lambda: stream.read(1 << 20), b""))
    return data, hashlib.sha256(data).hexdigest()
