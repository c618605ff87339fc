"""Scalar conversions shared by every protocol: timestamps, blobs, booleans, numbers.

Handlers work with Python values (``datetime`` in UTC, ``bytes``, ``int`` …);
these functions translate them to and from each wire format the way botocore's
own serializers and parsers expect.
"""

from __future__ import annotations

import base64
import calendar
import datetime as dt
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any

from botocore.model import Shape

UTC = dt.UTC


def now() -> dt.datetime:
    return dt.datetime.now(UTC)


def parse_timestamp(value: Any) -> dt.datetime:
    """Accept epoch seconds, ISO 8601 or RFC 822 and return an aware UTC datetime."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return dt.datetime.fromtimestamp(float(value), UTC)
    text = str(value).strip()
    try:
        return dt.datetime.fromtimestamp(float(text), UTC)
    except ValueError:
        pass
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except ValueError:
        return parsedate_to_datetime(text).astimezone(UTC)


def format_timestamp(value: Any, fmt: str) -> str | float:
    """``fmt`` is one of botocore's timestamp formats: unixTimestamp, iso8601, rfc822."""
    stamp = parse_timestamp(value)
    if fmt == "unixTimestamp":
        return calendar.timegm(stamp.utctimetuple()) + stamp.microsecond / 1e6
    if fmt == "rfc822":
        return format_datetime(stamp, usegmt=True)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def timestamp_format(shape: Shape, default: str) -> str:
    return shape.serialization.get("timestampFormat") or default


def b64encode(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str) -> bytes:
    return base64.b64decode(text)


def parse_scalar_text(shape: Shape, text: str, ts_default: str = "iso8601") -> Any:
    """Turn the text form of a scalar (XML, query string, header) into its Python value."""
    kind = shape.type_name
    if kind in ("integer", "long"):
        return int(text)
    if kind in ("float", "double"):
        return float(text)
    if kind == "boolean":
        return text.strip().lower() == "true"
    if kind == "timestamp":
        return parse_timestamp(text)
    if kind == "blob":
        return b64decode(text)
    return text


def scalar_text(shape: Shape, value: Any, ts_default: str = "iso8601") -> str:
    """The text form of a scalar for XML bodies, query strings and headers."""
    kind = shape.type_name
    if kind == "boolean":
        return "true" if value else "false"
    if kind == "timestamp":
        return str(format_timestamp(value, timestamp_format(shape, ts_default)))
    if kind == "blob":
        return b64encode(value)
    if kind in ("float", "double") and isinstance(value, float) and value.is_integer():
        return repr(value)
    return str(value)
