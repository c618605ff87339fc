"""Smithy RPC v2 CBOR (CloudWatch's protocol in current botocore): a CBOR codec and the protocol on it.

``POST /service/<ServiceShape>/operation/<Operation>`` with a CBOR (RFC 8949)
body in and out, ``smithy-protocol: rpc-v2-cbor`` on both, errors as a map
with ``__type`` and ``message`` — and, for services that keep their query
protocol's error codes (``awsQueryCompatible``, as CloudWatch), the header
``x-amzn-query-error: <Code>;Sender``. Timestamps travel as tag 1 (epoch
seconds), blobs as byte strings; the shapes of botocore's model say which is
which, as for the other protocols. The decoder reads definite and indefinite
lengths and refuses anything malformed, nested too deep or longer than the
body with ``SerializationException``.
"""

from __future__ import annotations

import datetime as dt
import math
import struct
from typing import Any

from botocore.model import OperationModel, ServiceModel, Shape

from .errors import ServiceError
from .http import Headers, Request, Response
from .protocols import Protocol
from .values import parse_timestamp

CONTENT_TYPE = "application/cbor"
MAX_DEPTH = 64
_BREAK = object()


class CborError(ValueError):
    """The body is not well-formed CBOR."""


# ------------------------------------------------------------------ encoding
def _head(major: int, size: int) -> bytes:
    if size < 24:
        return bytes([major << 5 | size])
    for extra, code in ((1, 24), (2, 25), (4, 26), (8, 27)):
        if size < 1 << (8 * extra):
            return bytes([major << 5 | code]) + size.to_bytes(extra, "big")
    raise ValueError(f"{size} does not fit CBOR's 64-bit lengths")


def encode(value: Any) -> bytes:
    out = bytearray()
    _encode(value, out)
    return bytes(out)


def _encode(value: Any, out: bytearray) -> None:
    if value is None:
        out.append(0xF6)
    elif value is True or value is False:
        out.append(0xF5 if value else 0xF4)
    elif isinstance(value, int):
        out += _head(0, value) if value >= 0 else _head(1, -1 - value)
    elif isinstance(value, float):
        out += b"\xfb" + struct.pack(">d", value)
    elif isinstance(value, str):
        data = value.encode()
        out += _head(3, len(data)) + data
    elif isinstance(value, bytes | bytearray):
        out += _head(2, len(value)) + bytes(value)
    elif isinstance(value, dt.datetime):
        out += _head(6, 1)
        _encode(value.timestamp(), out)
    elif isinstance(value, dict):
        out += _head(5, len(value))
        for key, item in value.items():
            _encode(str(key), out)
            _encode(item, out)
    elif isinstance(value, list | tuple):
        out += _head(4, len(value))
        for item in value:
            _encode(item, out)
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as CBOR")


# ------------------------------------------------------------------ decoding
class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, size: int) -> bytes:
        if size < 0 or self.pos + size > len(self.data):
            raise CborError("the CBOR body ends in the middle of an item")
        chunk = self.data[self.pos:self.pos + size]
        self.pos += size
        return chunk

    def argument(self, info: int) -> int | None:
        """The head's argument; None for an indefinite length (info 31)."""
        if info < 24:
            return info
        if info in (24, 25, 26, 27):
            return int.from_bytes(self.take(1 << (info - 24)), "big")
        if info == 31:
            return None
        raise CborError(f"reserved additional information {info}")

    def item(self, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise CborError(f"the CBOR body nests deeper than {MAX_DEPTH} levels")
        initial = self.take(1)[0]
        major, info = initial >> 5, initial & 0x1F
        if major == 7:
            return self._simple(info)
        size = self.argument(info)
        if major == 0:
            return _definite(size)
        if major == 1:
            return -1 - _definite(size)
        if major in (2, 3):
            raw = self._chunks(major) if size is None else self.take(size)
            if major == 2:
                return raw
            try:
                return raw.decode()
            except UnicodeDecodeError:
                raise CborError("a CBOR text string is not valid UTF-8") from None
        if major == 4:
            return self._sequence(size, depth)
        if major == 5:
            pairs = self._sequence(None if size is None else 2 * size, depth)
            if len(pairs) % 2:
                raise CborError("a CBOR map has a key without a value")
            return {self._key(pairs[i]): pairs[i + 1] for i in range(0, len(pairs), 2)}
        tag = _definite(size)
        value = self.item(depth + 1)
        if tag == 1:
            if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
                raise CborError("a CBOR epoch timestamp (tag 1) must be a finite number")
            return parse_timestamp(value)
        return value

    @staticmethod
    def _key(key: Any) -> str:
        if not isinstance(key, str):
            raise CborError("CBOR map keys must be text strings")
        return key

    def _simple(self, info: int) -> Any:
        if info == 20:
            return False
        if info == 21:
            return True
        if info in (22, 23):
            return None
        if info == 25:
            return struct.unpack(">e", self.take(2))[0]
        if info == 26:
            return struct.unpack(">f", self.take(4))[0]
        if info == 27:
            return struct.unpack(">d", self.take(8))[0]
        if info == 31:
            return _BREAK
        raise CborError(f"unsupported CBOR simple value {info}")

    def _chunks(self, major: int) -> bytes:
        parts = []
        while True:
            initial = self.take(1)[0]
            if initial == 0xFF:
                return b"".join(parts)
            if initial >> 5 != major or (initial & 0x1F) == 31:
                raise CborError("an indefinite CBOR string holds a chunk of another type")
            parts.append(self.take(_definite(self.argument(initial & 0x1F))))

    def _sequence(self, size: int | None, depth: int) -> list[Any]:
        items = []
        if size is None:
            while (item := self.item(depth + 1)) is not _BREAK:
                items.append(item)
            return items
        if size > len(self.data) - self.pos:  # every item takes at least one byte
            raise CborError("a CBOR array or map is longer than the body")
        for _ in range(size):
            item = self.item(depth + 1)
            if item is _BREAK:
                raise CborError("unexpected break in a definite-length CBOR item")
            items.append(item)
        return items


def _definite(size: int | None) -> int:
    if size is None:
        raise CborError("an indefinite length is not allowed here")
    return size


def decode(data: bytes) -> Any:
    reader = _Reader(data)
    value = reader.item()
    if value is _BREAK or reader.pos != len(data):
        raise CborError("the CBOR body holds more than one item")
    return value


# ------------------------------------------------------------------ shapes
def from_wire(shape: Shape | None, value: Any) -> Any:
    """A decoded value as the handler gets it (timestamps as ``datetime``, ints for integer members)."""
    if shape is None or value is None:
        return value
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        return {name: from_wire(member, value[name]) for name, member in shape.members.items()
                if value.get(name) is not None}
    if kind == "list" and isinstance(value, list):
        return [from_wire(shape.member, v) for v in value]
    if kind == "map" and isinstance(value, dict):
        return {k: from_wire(shape.value, v) for k, v in value.items()}
    if kind == "timestamp" and isinstance(value, int | float) and not isinstance(value, bool):
        return parse_timestamp(value)
    if kind in ("double", "float") and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def to_wire(shape: Shape | None, value: Any) -> Any:
    """An output value as CBOR carries it: only modelled members, timestamps as ``datetime`` (tag 1)."""
    if shape is None or value is None:
        return value
    kind = shape.type_name
    if kind == "structure":
        return {name: to_wire(member, value[name]) for name, member in shape.members.items()
                if value.get(name) is not None}
    if kind == "list":
        return [to_wire(shape.member, v) for v in value]
    if kind == "map":
        return {k: to_wire(shape.value, v) for k, v in value.items()}
    if kind == "timestamp":
        return parse_timestamp(value)
    if kind in ("double", "float"):
        return float(value)
    if kind in ("integer", "long"):
        return int(value)
    return value


def query_error_code(service: ServiceModel, code: str) -> str:
    """The code a query client knows for an error shape: its ``error.code`` (``InvalidParameterValue``)."""
    try:
        shape = service.shape_for(code)
    except Exception:  # noqa: BLE001 - not a modelled error: its code is the code
        return code
    return (shape.metadata.get("error") or {}).get("code", code)


class RpcV2CborProtocol(Protocol):
    """``smithy-rpc-v2-cbor``; errors name the query code too for ``awsQueryCompatible`` services."""

    def operation(self, request: Request) -> OperationModel:
        parts = request.raw_path.strip("/").split("/")
        if request.method != "POST" or len(parts) != 4 or parts[0] != "service" or parts[2] != "operation":
            raise self._unknown(request.raw_path[:200])
        return self._lookup(parts[3])

    def parse(self, request: Request, op: OperationModel) -> dict[str, Any]:
        raw = request.body()
        if not raw:
            return {}
        try:
            body = decode(raw)
        except CborError as exc:
            raise ServiceError("SerializationException", f"Could not parse the request body as CBOR: {exc}") \
                from None
        if not isinstance(body, dict):
            raise ServiceError("SerializationException", "The request body must be a CBOR map.")
        return from_wire(op.input_shape, body) or {}

    def _headers(self, request_id: str) -> Headers:
        return Headers([("Content-Type", CONTENT_TYPE), ("smithy-protocol", "rpc-v2-cbor"),
                        ("x-amzn-RequestId", request_id)])

    def serialize(self, op: OperationModel, output: dict[str, Any], request_id: str) -> Response:
        body = to_wire(op.output_shape, output) if op.output_shape is not None else {}
        return Response(200, self._headers(request_id), encode(body or {}))

    def serialize_error(self, error: ServiceError, request_id: str, request: Request | None) -> Response:
        headers = self._headers(request_id)
        code = error.code
        if "awsQueryCompatible" in self.service.metadata:
            query_code = query_error_code(self.service, code)
            headers["x-amzn-query-error"] = f"{query_code};{'Sender' if error.sender_fault else 'Receiver'}"
        body = {"__type": code, "message": error.message, **{k: str(v) for k, v in error.fields.items()}}
        return Response(error.status, headers, encode(body))
