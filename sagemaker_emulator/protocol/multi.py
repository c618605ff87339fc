"""A service that speaks several protocols (CloudWatch: CBOR, JSON 1.0 and query) answers each request in its own.

botocore picks one of the protocols a model lists by its own priority (today
JSON for CloudWatch; older versions query, other SDKs CBOR), so the request
says which one it is: ``/service/<Service>/operation/<Op>`` is Smithy RPC v2
CBOR, an ``X-Amz-Target`` header is JSON, anything else is query. The kind
chosen for a request is kept per thread from ``operation`` to ``serialize``
(the gateway handles a request on one thread, in that order). Services that
kept their query error codes (``awsQueryCompatible``) also get the
``x-amzn-query-error`` header in JSON, which botocore reads for the code.
"""

from __future__ import annotations

import threading
from typing import Any

from botocore.model import OperationModel, ServiceModel

from .cbor import RpcV2CborProtocol, query_error_code
from .errors import ServiceError
from .http import Request, Response
from .protocols import JsonProtocol, Protocol, QueryProtocol

KINDS: dict[str, type[Protocol]] = {"smithy-rpc-v2-cbor": RpcV2CborProtocol, "json": JsonProtocol,
                                    "query": QueryProtocol}


class MultiProtocol(Protocol):
    def __init__(self, service: ServiceModel) -> None:
        super().__init__(service)
        listed = service.metadata.get("protocols") or [service.protocol]
        self.kinds = {kind: KINDS[kind](service) for kind in listed if kind in KINDS}
        self._current = threading.local()

    def kind_of(self, request: Request) -> str:
        if request.raw_path.startswith("/service/") and "smithy-rpc-v2-cbor" in self.kinds:
            return "smithy-rpc-v2-cbor"
        if request.headers.get("X-Amz-Target") and "json" in self.kinds:
            return "json"
        return "query" if "query" in self.kinds else next(iter(self.kinds))

    def _for(self, request: Request | None) -> Protocol:
        kind = self.kind_of(request) if request is not None else getattr(self._current, "kind", None)
        return self.kinds[kind or next(iter(self.kinds))]

    def operation(self, request: Request) -> OperationModel:
        self._current.kind = self.kind_of(request)
        return self._for(request).operation(request)

    def parse(self, request: Request, op: OperationModel) -> dict[str, Any]:
        return self._for(request).parse(request, op)

    def serialize(self, op: OperationModel, output: dict[str, Any], request_id: str) -> Response:
        return self._for(None).serialize(op, output, request_id)

    def serialize_error(self, error: ServiceError, request_id: str, request: Request | None) -> Response:
        protocol = self._for(request)
        code = query_error_code(self.service, error.code)
        if isinstance(protocol, QueryProtocol) and code != error.code:  # a query client knows the query code
            error = ServiceError(code, error.message, error.status, sender_fault=error.sender_fault,
                                 headers=error.headers, **error.fields)
        response = protocol.serialize_error(error, request_id, request)
        if isinstance(protocol, JsonProtocol) and "awsQueryCompatible" in self.service.metadata:
            response.headers["x-amzn-query-error"] = f"{code};{'Sender' if error.sender_fault else 'Receiver'}"
        return response
