"""JSON bodies shaped by a botocore model (used by the json and rest-json protocols).

Inputs are decoded into Python values (timestamps → ``datetime``, blobs →
``bytes``) and outputs encoded back (timestamps → epoch seconds, blobs →
base64), walking the shape so nested lists and maps are handled once.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.model import Shape

from .values import b64decode, b64encode, format_timestamp, parse_timestamp, timestamp_format


def decode(shape: Shape | None, value: Any) -> Any:
    """JSON-decoded wire value → Python value for ``shape``."""
    if shape is None or value is None:
        return value
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            return value
        out = {}
        for name, member in shape.members.items():
            key = member.serialization.get("name", name)
            if key in value:
                out[name] = decode(member, value[key])
        return out
    if kind == "list":
        return [decode(shape.member, v) for v in value] if isinstance(value, list) else value
    if kind == "map":
        if not isinstance(value, dict):
            return value
        return {k: decode(shape.value, v) for k, v in value.items()}
    if kind == "timestamp":
        try:
            return parse_timestamp(value)
        except (ValueError, TypeError, OverflowError):
            return value
    if kind == "blob" and isinstance(value, str):
        try:
            return b64decode(value)
        except ValueError:
            return value
    return value


def encode(shape: Shape | None, value: Any) -> Any:
    """Python value → JSON-ready wire value for ``shape``; unknown members are dropped."""
    if value is None:
        return None
    if shape is None:
        return value
    kind = shape.type_name
    if kind == "structure":
        out = {}
        for name, member in shape.members.items():
            if name in value and value[name] is not None:
                key = member.serialization.get("name", name)
                out[key] = encode(member, value[name])
        return out
    if kind == "list":
        return [encode(shape.member, v) for v in value]
    if kind == "map":
        return {k: encode(shape.value, v) for k, v in value.items()}
    if kind == "timestamp":
        return format_timestamp(value, timestamp_format(shape, "unixTimestamp"))
    if kind == "blob":
        return b64encode(value)
    if kind in ("integer", "long") and isinstance(value, float):
        return int(value)
    return value


def dumps(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()
