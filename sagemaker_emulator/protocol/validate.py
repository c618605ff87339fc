"""Input validation driven by the botocore shapes: types first, then the model's constraints.

botocore validates types and required members on the client, but a raw request can carry
anything, and a handler that trusts ``params`` blindly crashes half-way through its writes.
So the whole input is checked here, before any handler runs, in two layers, as AWS does:

* **types** -- a JSON string where the model says integer, an object where it says list,
  ``true`` for an integer, an integer outside the shape's 32/64-bit range, a timestamp that is
  not one -- fail the way AWS's deserializer fails: ``SerializationException`` (at once, on the
  first bad member, naming it);
* **constraints** the service enforces (patterns, enums, lengths, ranges, required members,
  null list members) are answered with one ``ValidationException`` whose message lists every
  violation in a fixed form, e.g.::

    1 validation error detected: Value 'bad name' at 'trainingJobName' failed to
    satisfy constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}

We reproduce that form from the model so every operation validates alike.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from functools import lru_cache
from typing import Any

from botocore.model import Shape

from .errors import ServiceError

_MAX_REPORTED = 10
#: the integer shapes' ranges (Java ``int`` and ``long`` on the service side)
INT_RANGES = {"integer": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
_TYPE_NAMES = {"integer": "an Integer", "long": "a Long", "float": "a Float", "double": "a Double",
               "boolean": "a Boolean", "string": "a String", "timestamp": "a Timestamp", "blob": "a Blob",
               "list": "a List", "map": "a Map", "structure": "a Structure"}


@lru_cache(maxsize=4096)
def _compiled(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern, re.DOTALL)
    except re.error:  # a few model patterns use Java-only syntax; skip those
        return None


def _path_name(name: str) -> str:
    return name[:1].lower() + name[1:]


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, str | bytes):
        text = value if isinstance(value, str) else "<blob>"
        return f"'{text}'"
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"'{value}'"


# --------------------------------------------------------------------------- types


def serialization_error(message: str) -> ServiceError:
    """What AWS's json deserializer answers for a body it cannot map onto the operation's shapes."""
    return ServiceError("SerializationException", message)


def _token(value: Any) -> str:
    """How the wire value reads to a deserializer (the words AWS's own messages use)."""
    if isinstance(value, bool):
        return "BOOLEAN_VALUE"
    if isinstance(value, int | float):
        return "NUMBER_VALUE"
    if isinstance(value, str):
        return "STRING_VALUE"
    if isinstance(value, list):
        return "Start of list"
    if isinstance(value, dict):
        return "Start of structure or map"
    return type(value).__name__.upper()


def type_error(shape: Shape, value: Any, path: str) -> ServiceError:
    """One line naming the member, the kind of value found and the type the model wants."""
    where = f" at '{path}'" if path else ""
    if isinstance(value, list | dict):
        return serialization_error(f"{_token(value)} found where not expected{where}; expected "
                                   f"{_TYPE_NAMES.get(shape.type_name, shape.type_name)}.")
    return serialization_error(f"{_token(value)} can not be converted to "
                               f"{_TYPE_NAMES.get(shape.type_name, shape.type_name)}{where}.")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_type(shape: Shape, value: Any, path: str) -> None:
    """Raise ``SerializationException`` unless ``value`` is what the scalar ``shape`` holds."""
    kind = shape.type_name
    if kind in INT_RANGES:
        if not isinstance(value, int) or isinstance(value, bool):
            raise type_error(shape, value, path)
        low, high = INT_RANGES[kind]
        if not low <= value <= high:
            raise serialization_error(f"NUMBER_VALUE {value} is out of range for "
                                      f"{_TYPE_NAMES[kind]} at '{path}'.")
    elif kind in ("float", "double"):
        if not _is_number(value):
            raise type_error(shape, value, path)
        if not math.isfinite(value):
            raise serialization_error(f"NUMBER_VALUE {value} at '{path}' is not a finite number.")
    elif kind == "boolean":
        if not isinstance(value, bool):
            raise type_error(shape, value, path)
    elif kind == "string":
        _check_string(shape, value, path)
    elif kind == "timestamp":
        if not isinstance(value, dt.datetime):
            raise type_error(shape, value, path)
    elif kind == "blob":
        if not (isinstance(value, bytes | bytearray) or hasattr(value, "read")):
            raise type_error(shape, value, path)


def _check_string(shape: Shape, value: Any, path: str) -> None:
    if not isinstance(value, str):
        raise type_error(shape, value, path)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800"): no UTF-8 text, nothing can store or echo it
        raise serialization_error(f"Invalid UTF-8 text (an unpaired surrogate) at '{path}'.") from None


# --------------------------------------------------------------------------- constraints


def _check_scalar(shape: Shape, value: Any, path: str, errors: list[str]) -> None:
    meta = shape.metadata
    enum = meta.get("enum")
    if enum and isinstance(value, str) and value not in enum:
        errors.append(
            f"Value {_show(value)} at '{path}' failed to satisfy constraint: "
            f"Member must satisfy enum value set: [{', '.join(enum)}]"
        )
    if shape.type_name == "string" and isinstance(value, str):
        if "max" in meta and len(value) > meta["max"]:
            errors.append(
                f"Value {_show(value)} at '{path}' failed to satisfy constraint: "
                f"Member must have length less than or equal to {meta['max']}"
            )
        if "min" in meta and len(value) < meta["min"]:
            errors.append(
                f"Value {_show(value)} at '{path}' failed to satisfy constraint: "
                f"Member must have length greater than or equal to {meta['min']}"
            )
        pattern = meta.get("pattern")
        compiled = _compiled(pattern) if pattern else None
        if compiled is not None and not compiled.fullmatch(value):
            errors.append(
                f"Value {_show(value)} at '{path}' failed to satisfy constraint: "
                f"Member must satisfy regular expression pattern: {pattern}"
            )
    if shape.type_name in ("integer", "long", "float", "double") and _is_number(value):
        if "min" in meta and value < meta["min"]:
            errors.append(
                f"Value {_show(value)} at '{path}' failed to satisfy constraint: "
                f"Member must have value greater than or equal to {meta['min']}"
            )
        if "max" in meta and value > meta["max"]:
            errors.append(
                f"Value {_show(value)} at '{path}' failed to satisfy constraint: "
                f"Member must have value less than or equal to {meta['max']}"
            )


def _null(path: str) -> str:
    return f"Value null at '{path}' failed to satisfy constraint: Member must not be null"


def _walk(shape: Shape, value: Any, path: str, errors: list[str]) -> None:
    kind = shape.type_name
    if kind == "structure":
        _walk_structure(shape, value, path, errors)
    elif kind == "list":
        if not isinstance(value, list):
            raise type_error(shape, value, path)
        _check_length(shape, len(value), path, errors)
        for i, item in enumerate(value, 1):
            sub = f"{path}.{i}.member"
            if item is None:
                errors.append(_null(sub))
            else:
                _walk(shape.member, item, sub, errors)
    elif kind == "map":
        if not isinstance(value, dict):
            raise type_error(shape, value, path)
        _check_length(shape, len(value), path, errors)
        for key, item in value.items():
            _walk(shape.key, key, f"{path}.{key}.key", errors)
            if item is None:
                errors.append(_null(f"{path}.{key}.value"))
            else:
                _walk(shape.value, item, f"{path}.{key}.value", errors)
    else:
        _check_type(shape, value, path)
        _check_scalar(shape, value, path, errors)


def _walk_structure(shape: Shape, value: Any, path: str, errors: list[str]) -> None:
    if not isinstance(value, dict):
        raise type_error(shape, value, path)
    for req in shape.required_members:
        if value.get(req) is None:
            errors.append(_null(f"{path}.{_path_name(req)}" if path else _path_name(req)))
    for name, member in shape.members.items():
        if name in value and value[name] is not None:
            _walk(member, value[name], f"{path}.{_path_name(name)}" if path else _path_name(name), errors)


def _check_length(shape: Shape, size: int, path: str, errors: list[str]) -> None:
    meta = shape.metadata
    if "max" in meta and size > meta["max"]:
        errors.append(
            f"Value at '{path}' failed to satisfy constraint: "
            f"Member must have length less than or equal to {meta['max']}"
        )
    if "min" in meta and size < meta["min"]:
        errors.append(
            f"Value at '{path}' failed to satisfy constraint: "
            f"Member must have length greater than or equal to {meta['min']}"
        )


def validate_input(shape: Shape | None, params: dict[str, Any], code: str = "ValidationException") -> None:
    """Raise ``SerializationException`` for the first member of the wrong type, else ``code``
    (SageMaker's ``ValidationException``; the query services say ``ValidationError``) listing every
    constraint ``params`` violates. Nothing is written before this passes."""
    if shape is None:
        return
    if not isinstance(params, dict):
        raise serialization_error("The request body must be a JSON object.")
    errors: list[str] = []
    _walk(shape, params, "", errors)
    if not errors:
        return
    count = len(errors)
    noun = "error" if count == 1 else "errors"
    shown = "; ".join(errors[:_MAX_REPORTED])
    raise ServiceError(code, f"{count} validation {noun} detected: {shown}")
