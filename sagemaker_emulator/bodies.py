"""Request body readers: exact-length, HTTP chunked, and S3's ``aws-chunked`` framing.

Bodies are streamed, never buffered whole by the gateway, so a 50 MB
``PutObject`` goes from socket to file in constant memory. Whatever a handler
leaves unread is drained so the keep-alive connection stays in sync.
"""

from __future__ import annotations

import io
from typing import BinaryIO


class LimitedReader(io.RawIOBase):
    """Reads at most ``length`` bytes from ``raw``."""

    def __init__(self, raw: BinaryIO, length: int) -> None:
        self._raw = raw
        self.remaining = length

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if self.remaining <= 0:
            return b""
        if size is None or size < 0 or size > self.remaining:
            size = self.remaining
        data = self._raw.read(size)
        self.remaining -= len(data)
        if not data:
            self.remaining = 0
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


class ChunkedReader(io.RawIOBase):
    """Decodes ``Transfer-Encoding: chunked`` and ``aws-chunked`` (``size;chunk-signature=…``) framing.

    Trailers (``x-amz-checksum-crc32:…``) after the last chunk are collected
    in ``trailers`` and otherwise ignored.
    """

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._left = 0
        self._done = False
        self.trailers: dict[str, str] = {}

    def readable(self) -> bool:
        return True

    def _next_chunk(self) -> None:
        line = self._raw.readline(65537)
        while line in (b"\r\n", b"\n"):
            line = self._raw.readline(65537)
        if not line:
            self._done = True
            return
        try:
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
        except ValueError as exc:
            from .protocol.errors import ServiceError

            raise ServiceError("IncompleteBody", "The request body's chunk framing is malformed.") from exc
        if size == 0:
            self._done = True
            while True:
                trailer = self._raw.readline(65537)
                if trailer in (b"\r\n", b"\n", b""):
                    break
                key, _, value = trailer.decode("latin-1").partition(":")
                self.trailers[key.strip().lower()] = value.strip()
            return
        self._left = size

    def read(self, size: int | None = -1) -> bytes:
        out = bytearray()
        want = size if size is not None and size >= 0 else None
        while not self._done and (want is None or len(out) < want):
            if self._left == 0:
                self._next_chunk()
                continue
            take = self._left if want is None else min(self._left, want - len(out))
            data = self._raw.read(take)
            if not data:
                self._done = True
                break
            out += data
            self._left -= len(data)
            if self._left == 0:
                self._raw.readline(3)  # the CRLF after each chunk
        return bytes(out)

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def drain(self) -> None:
        while self.read(1 << 20):
            pass
