"""The filter/sort/paginate logic every SageMaker ``List*`` operation shares.

SageMaker list calls accept the same family of arguments (time windows,
``NameContains``, ``StatusEquals``, ``SortBy``/``SortOrder``, ``MaxResults``,
``NextToken``); implementing them once keeps every list consistent.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from ..protocol.errors import ServiceError
from ..protocol.values import parse_timestamp


def _ts(value: Any) -> float:
    return parse_timestamp(value).timestamp()


def encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def decode_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
        if text.startswith("offset:"):
            return int(text[7:])
    except (ValueError, UnicodeDecodeError):
        pass
    raise ServiceError("ValidationException", "Invalid pagination token given.")


def list_records(
    records: list[dict[str, Any]], params: dict[str, Any], *, name_field: str, status_field: str,
    summary: Callable[[dict[str, Any]], dict[str, Any]], sort_fields: dict[str, str] | None = None,
    default_sort: str = "CreationTime", default_max: int = 10,
) -> tuple[list[dict[str, Any]], str | None]:
    """Apply SageMaker's list arguments to ``records`` and return one page of summaries."""
    out = records
    if params.get("NameContains"):
        needle = params["NameContains"].lower()
        out = [r for r in out if needle in r[name_field].lower()]
    if params.get("StatusEquals"):
        out = [r for r in out if r.get(status_field) == params["StatusEquals"]]
    for key, field, after in (
        ("CreationTimeAfter", "CreationTime", True), ("CreationTimeBefore", "CreationTime", False),
        ("LastModifiedTimeAfter", "LastModifiedTime", True), ("LastModifiedTimeBefore", "LastModifiedTime", False),
    ):
        if params.get(key) is not None:
            bound = _ts(params[key])
            out = [r for r in out if (r.get(field, 0) > bound) == after]
    fields = {"Name": name_field, "CreationTime": "CreationTime", "Status": status_field}
    fields.update(sort_fields or {})
    sort_by = params.get("SortBy") or default_sort
    field = fields.get(sort_by, "CreationTime")
    descending = (params.get("SortOrder") or "Descending") == "Descending"
    out = sorted(out, key=lambda r: (r.get(field) is None, r.get(field) or 0), reverse=descending)
    start = decode_token(params.get("NextToken"))
    size = int(params.get("MaxResults") or default_max)
    page = out[start : start + size]
    token = encode_token(start + size) if start + size < len(out) else None
    return [summary(r) for r in page], token
