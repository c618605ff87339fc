"""Transport-neutral request and response values passed between the gateway and protocols.

The gateway turns a socket into a ``Request``; a protocol turns a ``Request``
into an operation input dict and an output dict into a ``Response``. Keeping
these plain lets the protocol code be tested without a socket.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO
from urllib.parse import parse_qs, unquote


class Headers:
    """Case-insensitive, order-keeping header mapping (HTTP headers are case-insensitive)."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: dict[str, tuple[str, str]] = {}
        for name, value in items:
            self[name] = value

    def __setitem__(self, name: str, value: str) -> None:
        self._items[name.lower()] = (name, value)

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __delitem__(self, name: str) -> None:
        self._items.pop(name.lower(), None)

    def get(self, name: str, default: str | None = None) -> str | None:
        item = self._items.get(name.lower())
        return item[1] if item else default

    def items(self) -> Iterator[tuple[str, str]]:
        return iter(self._items.values())

    def lower_items(self) -> Iterator[tuple[str, str]]:
        return ((k, v[1]) for k, v in self._items.items())

    def __repr__(self) -> str:
        return f"Headers({list(self.items())!r})"


@dataclass
class Request:
    """One HTTP request as received: raw path (percent-encoded), query, headers, body stream."""

    method: str
    raw_path: str
    query_string: str
    headers: Headers
    body_stream: BinaryIO = field(default_factory=io.BytesIO)
    content_length: int | None = None
    host: str = ""
    scheme: str = "http"
    _body: bytes | None = None
    #: what the gateway learnt while serving it (for the access log): service, operation, error code
    service: str = ""
    operation: str = ""
    error_code: str | None = None
    #: sends ``100 Continue`` when the client asked to wait for it; the gateway calls it once authenticated
    send_continue: Callable[[], None] | None = None

    @property
    def path(self) -> str:
        return unquote(self.raw_path)

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(self.query_string, keep_blank_values=True)

    def set_body(self, body: bytes) -> None:
        """The body, already read whole (by the gateway, to check its signature): ``body()`` returns these bytes
        and ``body_stream`` reads them, without another copy."""
        self._body, self.content_length = body, len(body)
        self.body_stream = io.BytesIO(body)

    def body(self) -> bytes:
        """The whole body, read once (non-streaming operations)."""
        if self._body is None:
            self._body = self.body_stream.read() if self.content_length != 0 else b""
        return self._body


@dataclass
class Response:
    """A response ready to write: body is bytes, a binary file, or an iterator of chunks."""

    status: int = 200
    headers: Headers = field(default_factory=Headers)
    body: bytes | BinaryIO | Iterable[bytes] = b""
    content_length: int | None = None

    def length(self) -> int | None:
        if isinstance(self.body, bytes | bytearray):
            return len(self.body)
        return self.content_length
