"""The JSONPath subset batch transform's ``DataProcessing`` filters accept.

SageMaker documents exactly these operators for ``InputFilter`` and ``OutputFilter``: ``$`` (the
record), ``.name`` / ``['name']`` (a member), ``['a','b']`` (several members), ``*`` / ``[*]``
(every child), ``[i,j]`` (indexes, negative from the end) and ``[start:end]`` slices, also mixed
in a union such as ``$[0,5:]``. Anything else (filters ``?()``, recursive descent ``..``, scripts)
is refused when the job is created, so a typo fails fast instead of after the model started.

Semantics, chosen to match what the service produces:

* a path made only of single selections (``$.features``, ``$[-1]``) yields that value;
* a union, slice or wildcard yields a list (``$[1:]`` on a CSV row is the row without its first
  column), and several names yield an object with just those members (``$['id','SageMakerOutput']``
  keeps two attributes of the joined record), as the service's JSONPath library does;
* **slices include their end index**: the SageMaker docs state that "``$[1:4]`` specifies the
  second through fifth columns", unlike Python and most JSONPath libraries; we follow the docs.
  An omitted end means "to the last element";
* an index or member that does not exist is an error ("If you specify indexes that aren't within
  the dimension size of the joined dataset, you get an error").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")
_INT = re.compile(r"-?\d+")


class JsonPathError(ValueError):
    """The expression is outside the supported subset, or does not match the record."""


@dataclass(frozen=True)
class _Slice:
    start: int | None
    end: int | None


@dataclass(frozen=True)
class _Step:
    """One selector: ``names`` (members), ``items`` (indexes and slices) or ``wildcard``."""

    names: tuple[str, ...] = ()
    items: tuple[int | _Slice, ...] = ()
    wildcard: bool = False

    @property
    def single(self) -> bool:
        """Whether it selects one value (kept as is) rather than a collection."""
        if self.wildcard:
            return False
        if self.names:
            return len(self.names) == 1
        return len(self.items) == 1 and isinstance(self.items[0], int)


class JsonPath:
    """A compiled expression; ``apply(record)`` returns the selected value."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.steps = _parse(text)

    @property
    def is_root(self) -> bool:
        return not self.steps

    def apply(self, value: Any) -> Any:
        return _apply(value, self.steps, self.text)

    def __repr__(self) -> str:
        return f"JsonPath({self.text!r})"


def compile_path(text: str | None) -> JsonPath:
    """``text`` (``None`` or empty means ``$``) compiled, or :class:`JsonPathError` saying why not."""
    return JsonPath(text.strip() if text and text.strip() else "$")


# --------------------------------------------------------------------------- parsing


def _parse(text: str) -> list[_Step]:
    if not text.startswith("$"):
        raise JsonPathError(f"'{text}' must start with '$'.")
    steps: list[_Step] = []
    pos = 1
    while pos < len(text):
        char = text[pos]
        if text.startswith("..", pos):
            raise JsonPathError(f"'{text}': recursive descent '..' is not supported.")
        if char == ".":
            pos += 1
            if text.startswith("*", pos):
                steps.append(_Step(wildcard=True))
                pos += 1
                continue
            match = _NAME.match(text, pos)
            if not match:
                raise JsonPathError(f"'{text}': expected a member name after '.' at position {pos}.")
            steps.append(_Step(names=(match.group(0),)))
            pos = match.end()
        elif char == "[":
            end = _closing_bracket(text, pos)
            steps.append(_bracket(text[pos + 1:end].strip(), text))
            pos = end + 1
        else:
            raise JsonPathError(f"'{text}': unexpected '{char}' at position {pos}.")
    return steps


def _closing_bracket(text: str, start: int) -> int:
    quote = ""
    for pos in range(start + 1, len(text)):
        char = text[pos]
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "]":
            return pos
    raise JsonPathError(f"'{text}': '[' at position {start} is never closed.")


def _bracket(inner: str, text: str) -> _Step:
    if inner == "*":
        return _Step(wildcard=True)
    if not inner:
        raise JsonPathError(f"'{text}': empty brackets '[]'.")
    if inner.startswith("?") or inner.startswith("("):
        raise JsonPathError(f"'{text}': filter and script expressions are not supported.")
    parts = _split_commas(inner, text)
    if all(p[:1] in ("'", '"') for p in parts):
        names = []
        for part in parts:
            if len(part) < 2 or part[-1] != part[0]:
                raise JsonPathError(f"'{text}': badly quoted member name {part}.")
            names.append(part[1:-1])
        return _Step(names=tuple(names))
    items: list[int | _Slice] = []
    for part in parts:
        if ":" in part:
            bounds = [b.strip() for b in part.split(":")]
            if len(bounds) != 2 or any(b and not _INT.fullmatch(b) for b in bounds):
                raise JsonPathError(f"'{text}': '{part}' is not a slice of the form start:end (no step).")
            items.append(_Slice(int(bounds[0]) if bounds[0] else None, int(bounds[1]) if bounds[1] else None))
        elif _INT.fullmatch(part):
            items.append(int(part))
        else:
            raise JsonPathError(f"'{text}': '{part}' is neither an index, a slice nor a quoted name.")
    return _Step(items=tuple(items))


def _split_commas(inner: str, text: str) -> list[str]:
    parts, current, quote = [], "", ""
    for char in inner:
        if quote:
            current += char
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
            current += char
        elif char == ",":
            parts.append(current.strip())
            current = ""
        else:
            current += char
    parts.append(current.strip())
    if any(not p for p in parts):
        raise JsonPathError(f"'{text}': empty entry in '[{inner}]'.")
    return parts


# --------------------------------------------------------------------------- evaluation


def _apply(value: Any, steps: list[_Step], text: str) -> Any:
    if not steps:
        return value
    step, rest = steps[0], steps[1:]
    if step.names:
        if not isinstance(value, dict):
            raise JsonPathError(f"'{text}' selects member(s) {list(step.names)} of a {_kind(value)}, not an object.")
        missing = [n for n in step.names if n not in value]
        if missing:
            raise JsonPathError(f"'{text}': the record has no member {missing[0]!r}.")
        if step.single:
            return _apply(value[step.names[0]], rest, text)
        return {name: _apply(value[name], rest, text) for name in step.names}
    if step.wildcard:
        children = list(value.values()) if isinstance(value, dict) else value if isinstance(value, list) else None
        if children is None:
            raise JsonPathError(f"'{text}': '*' applied to a {_kind(value)}.")
        return [_apply(child, rest, text) for child in children]
    if not isinstance(value, list):
        raise JsonPathError(f"'{text}' selects index(es) of a {_kind(value)}, not an array.")
    picked: list[Any] = []
    for item in step.items:
        if isinstance(item, int):
            if not -len(value) <= item < len(value):
                raise JsonPathError(f"'{text}': index {item} is outside a record of {len(value)} element(s).")
            picked.append(value[item])
        else:
            picked.extend(value[_python_slice(item, len(value))])
    if step.single:
        return _apply(picked[0], rest, text)
    return [_apply(child, rest, text) for child in picked]


def _python_slice(item: _Slice, length: int) -> slice:
    """The inclusive-end SageMaker slice as a Python slice."""
    if item.end is None:
        return slice(item.start, None)
    end = item.end + length if item.end < 0 else item.end
    return slice(item.start, end + 1)


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "string" if isinstance(value, str) else "number" if isinstance(value, (int, float)) else "value"
