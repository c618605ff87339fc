"""Shared REST machinery: operation routing by URI template and the HTTP-bound members.

rest-xml (S3) and rest-json (SageMaker Runtime) bind input members to the
URI, query string and headers the same way and differ only in their body
codec, so routing and those bindings live here once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote

from botocore.model import OperationModel, ServiceModel, Shape

from .errors import ServiceError
from .http import Request, Response
from .values import format_timestamp, parse_scalar_text, parse_timestamp, scalar_text, timestamp_format

_LABEL = re.compile(r"\{([^}]+)\}")


@dataclass(frozen=True)
class Route:
    operation: OperationModel
    method: str
    pattern: re.Pattern[str]
    literal_query: dict[str, str | None]
    required_query: tuple[str, ...]
    required_headers: tuple[str, ...]
    depth: int


def _compile_path(template: str) -> re.Pattern[str]:
    parts: list[str] = []
    pos = 0
    for match in _LABEL.finditer(template):
        parts.append(re.escape(template[pos : match.start()]))
        name = match.group(1)
        if name.endswith("+"):
            parts.append(f"(?P<{name[:-1]}>.+)")
        else:
            parts.append(f"(?P<{name}>[^/]+)")
        pos = match.end()
    parts.append(re.escape(template[pos:]))
    return re.compile("^" + "".join(parts) + "/?$")


def _route_for(op: OperationModel) -> Route:
    uri = op.http["requestUri"]
    path, _, query = uri.partition("?")
    literal: dict[str, str | None] = {}
    for item in filter(None, query.split("&")):
        key, eq, value = item.partition("=")
        literal[key] = value if eq else None
    required_query: list[str] = []
    required_headers: list[str] = []
    shape = op.input_shape
    if shape is not None:
        for name in shape.required_members:
            member = shape.members[name]
            loc = member.serialization.get("location")
            if loc == "querystring":
                required_query.append(member.serialization.get("name", name))
            elif loc == "header":
                required_headers.append(member.serialization.get("name", name))
    return Route(
        op, op.http["method"], _compile_path(path), literal,
        tuple(required_query), tuple(required_headers), path.count("/"),
    )


class RestRouter:
    """Picks the operation a REST request means, the most specific match first."""

    def __init__(self, service: ServiceModel) -> None:
        self.routes = [_route_for(service.operation_model(n)) for n in service.operation_names]

    def match(self, request: Request) -> tuple[OperationModel, dict[str, str]]:
        query = parse_qs(request.query_string, keep_blank_values=True)
        best: tuple[tuple[int, int], Route, dict[str, str]] | None = None
        path = request.raw_path or "/"
        for route in self.routes:
            if route.method != request.method:
                continue
            found = route.pattern.match(path)
            if not found:
                continue
            if any(k not in query or (v is not None and query[k][0] != v) for k, v in route.literal_query.items()):
                continue
            if any(k not in query for k in route.required_query):
                continue
            if any(h not in request.headers for h in route.required_headers):
                continue
            score = (
                len(route.literal_query) + len(route.required_query) + len(route.required_headers),
                route.depth,
            )
            if best is None or score > best[0]:
                best = (score, route, {k: unquote(v) for k, v in found.groupdict().items()})
        if best is None:
            raise ServiceError("MethodNotAllowed", "The specified method is not allowed against this resource.", 405)
        return best[1].operation, best[2]


def parse_bound_members(
    shape: Shape | None, request: Request, labels: dict[str, str]
) -> tuple[dict[str, Any], Shape | None, str | None]:
    """Read URI, query and header members; return them plus the body member (payload) if any."""
    params: dict[str, Any] = {}
    if shape is None:
        return params, None, None
    query = parse_qs(request.query_string, keep_blank_values=True)
    for name, member in shape.members.items():
        ser = member.serialization
        loc = ser.get("location")
        key = ser.get("name", name)
        if loc == "uri":
            if key in labels:
                params[name] = parse_scalar_text(member, labels[key])
        elif loc == "querystring":
            if member.type_name == "map":
                params[name] = {k: v[0] for k, v in query.items()}
            elif key in query:
                if member.type_name == "list":
                    params[name] = [parse_scalar_text(member.member, v) for v in query[key]]
                else:
                    params[name] = _scalar_from_text(member, query[key][0], "iso8601")
        elif loc == "header":
            value = request.headers.get(key)
            if value is not None:
                if member.type_name == "list":
                    params[name] = [v.strip() for v in value.split(",")]
                else:
                    params[name] = _scalar_from_text(member, value, "rfc822")
        elif loc == "headers":
            prefix = key.lower()
            found = {k[len(prefix):]: v for k, v in request.headers.lower_items() if k.startswith(prefix)}
            if found:
                params[name] = found
    payload = shape.serialization.get("payload")
    payload_shape = shape.members[payload] if payload else None
    return params, payload_shape, payload


def _scalar_from_text(member: Shape, text: str, ts_default: str) -> Any:
    if member.type_name == "timestamp":
        try:
            return parse_timestamp(text)
        except (ValueError, OverflowError) as exc:
            raise ServiceError("InvalidArgument", f"Invalid date for {member.name}: {text}") from exc
    if member.type_name == "string" and member.serialization.get("jsonvalue"):
        return text
    try:
        return parse_scalar_text(member, text)
    except ValueError as exc:
        raise ServiceError("InvalidArgument", f"Invalid value for {member.name}: {text}") from exc


def write_bound_members(shape: Shape | None, output: dict[str, Any], response: Response) -> None:
    """Put header-bound and status-code members of ``output`` onto ``response``."""
    if shape is None:
        return
    for name, member in shape.members.items():
        value = output.get(name)
        if value is None:
            continue
        ser = member.serialization
        loc = ser.get("location")
        key = ser.get("name", name)
        if loc == "header":
            if member.type_name == "timestamp":
                response.headers[key] = str(format_timestamp(value, timestamp_format(member, "rfc822")))
            elif member.type_name == "list":
                response.headers[key] = ",".join(scalar_text(member.member, v) for v in value)
            else:
                response.headers[key] = scalar_text(member, value)
        elif loc == "headers":
            for sub, sub_value in value.items():
                response.headers[key + sub] = str(sub_value)
        elif loc == "statusCode":
            response.status = int(value)


def body_members(shape: Shape | None) -> list[str]:
    """Members that travel in the body (not bound to URI, query, headers or status)."""
    if shape is None:
        return []
    return [n for n, m in shape.members.items() if "location" not in m.serialization]
