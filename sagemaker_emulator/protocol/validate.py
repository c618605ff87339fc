"""Input validation driven by the botocore shape constraints.

botocore validates types and required members on the client, but not the
constraints the service enforces (patterns, enums, lengths, ranges). The
service answers those with one ``ValidationException`` whose message lists
every violation in a fixed form, e.g.::

    1 validation error detected: Value 'bad name' at 'trainingJobName' failed to
    satisfy constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}

We reproduce that form from the model so every operation validates alike.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from botocore.model import Shape

from .errors import ServiceError

_MAX_REPORTED = 10


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
    if shape.type_name in ("integer", "long", "float", "double") and isinstance(value, int | float):
        if not isinstance(value, bool):
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


def _walk(shape: Shape, value: Any, path: str, errors: list[str]) -> None:
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            return
        for req in shape.required_members:
            if value.get(req) is None:
                sub = f"{path}.{_path_name(req)}" if path else _path_name(req)
                errors.append(f"Value null at '{sub}' failed to satisfy constraint: Member must not be null")
        for name, member in shape.members.items():
            if name in value and value[name] is not None:
                sub = f"{path}.{_path_name(name)}" if path else _path_name(name)
                _walk(member, value[name], sub, errors)
    elif kind == "list":
        if not isinstance(value, list):
            return
        _check_length(shape, len(value), path, errors)
        for i, item in enumerate(value, 1):
            _walk(shape.member, item, f"{path}.{i}.member", errors)
    elif kind == "map":
        if not isinstance(value, dict):
            return
        _check_length(shape, len(value), path, errors)
        for key, item in value.items():
            _walk(shape.key, key, f"{path}.{key}.key", errors)
            _walk(shape.value, item, f"{path}.{key}.value", errors)
    else:
        _check_scalar(shape, value, path, errors)


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


def validate_input(shape: Shape | None, params: dict[str, Any]) -> None:
    """Raise ``ValidationException`` listing every constraint ``params`` violates."""
    if shape is None:
        return
    errors: list[str] = []
    _walk(shape, params, "", errors)
    if not errors:
        return
    count = len(errors)
    noun = "error" if count == 1 else "errors"
    shown = "; ".join(errors[:_MAX_REPORTED])
    raise ServiceError("ValidationException", f"{count} validation {noun} detected: {shown}")
