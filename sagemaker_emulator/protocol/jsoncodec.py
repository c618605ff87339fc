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
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            return value  # left as sent: validation names it as the wrong type
        try:
            return parse_timestamp(value)
        except (ValueError, TypeError, OverflowError, OSError):
            return value
    if kind in ("integer", "long") and isinstance(value, float) and value.is_integer():
        return int(value)  # ``2.0`` is the integer 2 on the wire; ``2.5`` stays and fails validation
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


#: deeper than any input shape of the emulated services (SageMaker's deepest is 10 levels); the limit keeps
#: a hostile ``[[[[…]]]]`` body (or a recursive shape such as ``SearchExpression``) from exhausting the stack
MAX_DEPTH = 64


class BodyError(ValueError):
    """The body is not a JSON document the service can read (AWS answers ``SerializationException``)."""


def loads(raw: bytes) -> Any:
    """``json.loads`` with nesting at most ``MAX_DEPTH``, never a ``RecursionError``.

    ``NaN``/``Infinity`` (and ``1e400``) are read as the floats they stand for, on purpose: validation
    then refuses them naming the member they were sent for (no shape of ours holds a non-finite number).
    """
    try:
        value = json.loads(raw)
    except RecursionError:
        raise BodyError(f"the JSON document nests deeper than {MAX_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError, bad UTF-8, over-long integers
        raise BodyError(str(exc)) from None
    if _depth_exceeds(value, MAX_DEPTH):
        raise BodyError(f"the JSON document nests deeper than {MAX_DEPTH} levels")
    return value


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Iterative (a recursive walk is what the limit protects against)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False
