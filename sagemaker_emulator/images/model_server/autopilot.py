"""What Autopilot's candidate containers share: the request cycle and the encoding of selectable output."""

from __future__ import annotations

import json
from typing import Any

from .http import Request, Response
from .invocation import InvocationService


class AutopilotService(InvocationService):
    """``/invocations`` (:class:`InvocationService`) and ``/execution-parameters``; a subclass writes ``_invoke``."""

    def execution_parameters(self, request: Request) -> Response:
        body = {"MaxConcurrentTransforms": 1, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 6}
        return Response(200, json.dumps(body).encode(), "application/json")


def encode(rows: list[dict[str, Any]], keys: list[str], accept: str) -> bytes:
    """The selected ``keys`` of each row: JSON ``{"predictions": [...]}``, JSON Lines, or CSV in key order
    (a list quoted: ``"['no', 'yes']"``, as the algorithm containers do)."""
    if accept == "application/json":
        return json.dumps({"predictions": [{k: r[k] for k in keys} for r in rows]}).encode()
    if accept != "text/csv":
        return "".join(json.dumps({k: r[k] for k in keys}) + "\n" for r in rows).encode()
    lines = []
    for row in rows:
        lines.append(",".join(f'"{row[k]}"' if isinstance(row[k], list) else str(row[k]) for k in keys))
    return ("\n".join(lines) + "\n").encode()
