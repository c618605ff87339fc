"""The four AWS wire protocols, each written once and driven by botocore's service model.

A protocol object answers three questions for the gateway: which operation
does this request mean, what is its input (as a plain dict of the input
shape), and how does an output dict or a ``ServiceError`` look on the wire.
Per-operation code never sees bytes or XML.
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import parse_qs

from botocore.model import OperationModel, ServiceModel, Shape

from . import jsoncodec, xmlcodec
from .errors import ServiceError
from .http import Headers, Request, Response
from .rest import RestRouter, body_members, parse_bound_members, write_bound_members
from .validate import INT_RANGES, validate_input
from .values import parse_scalar_text

JSON_CT = "application/x-amz-json-1.1"


class Protocol:
    """Interface every protocol implements."""

    def __init__(self, service: ServiceModel) -> None:
        self.service = service

    def operation(self, request: Request) -> OperationModel:
        raise NotImplementedError

    def kind_of(self, request: Request) -> str:
        """The protocol ``request`` speaks (a service speaking several tells them apart by the request)."""
        return self.service.protocol

    def parse(self, request: Request, op: OperationModel) -> dict[str, Any]:
        raise NotImplementedError

    def serialize(self, op: OperationModel, output: dict[str, Any], request_id: str) -> Response:
        raise NotImplementedError

    def serialize_error(self, error: ServiceError, request_id: str, request: Request | None) -> Response:
        raise NotImplementedError

    def _unknown(self, name: str) -> ServiceError:
        return ServiceError(
            "UnknownOperationException", f"Operation {name} is not supported by this emulator.", 400
        )

    def _lookup(self, name: str) -> OperationModel:
        if name not in self.service.operation_names:
            raise self._unknown(name or "<none>")
        return self.service.operation_model(name)


def _json_body(request: Request) -> Any:
    raw = request.body()
    if not raw.strip():
        return {}
    try:
        return jsoncodec.loads(raw)
    except jsoncodec.BodyError as exc:
        raise ServiceError("SerializationException", f"Could not parse the request body as JSON: {exc}") from None


def _utf8(raw: bytes) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise ServiceError("SerializationException", "The request body is not valid UTF-8 text.") from None


def _json_error(error: ServiceError, request_id: str, rest: bool) -> Response:
    body = {"__type": error.code, "message": error.message, "Message": error.message}
    body.update(error.fields)
    headers = Headers([("Content-Type", JSON_CT if not rest else "application/json"),
                       ("x-amzn-RequestId", request_id)])
    if rest:
        headers["x-amzn-ErrorType"] = error.code
    for key, value in error.headers.items():
        headers[key] = value
    return Response(error.status, headers, jsoncodec.dumps(body))


class JsonProtocol(Protocol):
    """``json`` (1.0/1.1): POST /, ``X-Amz-Target: Prefix.Operation``, JSON in and out."""

    def operation(self, request: Request) -> OperationModel:
        target = request.headers.get("X-Amz-Target", "")
        prefix, _, name = target.rpartition(".")
        expected = self.service.metadata.get("targetPrefix")
        if request.method != "POST" or (expected and prefix != expected):
            raise ServiceError("UnknownOperationException", f"Unrecognized target: {target or '<missing>'}")
        return self._lookup(name)

    def parse(self, request: Request, op: OperationModel) -> dict[str, Any]:
        body = _json_body(request)
        if not isinstance(body, dict):
            raise ServiceError("SerializationException", "The request body must be a JSON object.")
        return jsoncodec.decode(op.input_shape, body) or {}

    def serialize(self, op: OperationModel, output: dict[str, Any], request_id: str) -> Response:
        body = jsoncodec.encode(op.output_shape, output) if op.output_shape else {}
        ct = f"application/x-amz-json-{self.service.metadata.get('jsonVersion', '1.1')}"
        return Response(200, Headers([("Content-Type", ct), ("x-amzn-RequestId", request_id)]),
                        jsoncodec.dumps(body or {}))

    def serialize_error(self, error: ServiceError, request_id: str, request: Request | None) -> Response:
        return _json_error(error, request_id, rest=False)


def _query_value(shape: Shape, params: dict[str, list[str]], prefix: str) -> Any:
    kind = shape.type_name
    if kind == "structure":
        out = {}
        for name, member in shape.members.items():
            key = member.serialization.get("name", name)
            sub = f"{prefix}.{key}" if prefix else key
            value = _query_value(member, params, sub)
            if value is not None:
                out[name] = value
        return out or None
    if kind == "list":
        flattened = shape.serialization.get("flattened", False)
        base = prefix if flattened else f"{prefix}.{shape.member.serialization.get('name', 'member')}"
        items = []
        index = 1
        while True:
            value = _query_value(shape.member, params, f"{base}.{index}")
            if value is None:
                break
            items.append(value)
            index += 1
        if not items and prefix in params:  # "Name=" means an empty list
            return []
        return items or None
    if kind == "map":
        base = prefix if shape.serialization.get("flattened", False) else f"{prefix}.entry"
        out_map = {}
        index = 1
        while f"{base}.{index}.key" in params:
            key = params[f"{base}.{index}.key"][0]
            out_map[key] = _query_value(shape.value, params, f"{base}.{index}.value")
            index += 1
        return out_map or None
    if prefix not in params:
        return None
    return _query_scalar(shape, params[prefix][0], prefix)


def _query_scalar(shape: Shape, text: str, key: str) -> Any:
    """A form value as its shape's type; text that is not one is the query services' ``ValidationError``."""
    kind = shape.type_name
    try:
        if kind == "boolean" and text.strip().lower() not in ("true", "false"):
            raise ValueError(text)
        value = parse_scalar_text(shape, text)
        if kind in ("float", "double") and not math.isfinite(value):
            raise ValueError(text)
        if kind in INT_RANGES and not INT_RANGES[kind][0] <= value <= INT_RANGES[kind][1]:
            raise ValueError(text)
    except (ValueError, OverflowError, OSError):
        expected = {"integer": "an integer", "long": "an integer", "float": "a number", "double": "a number",
                    "boolean": "true or false", "timestamp": "a timestamp", "blob": "base64 data"}.get(kind, kind)
        raise ServiceError("ValidationError", f"Value '{text[:100]}' for parameter {key} is invalid: it must be "
                                              f"{expected}.") from None
    return value


class QueryProtocol(Protocol):
    """``query`` (STS, IAM): form-encoded ``Action=…&Version=…`` in, XML out."""

    def _params(self, request: Request) -> dict[str, list[str]]:
        text = request.query_string
        if request.method == "POST":
            text = request.body().decode("utf-8", "replace")
        return parse_qs(text, keep_blank_values=True)

    def operation(self, request: Request) -> OperationModel:
        params = self._params(request)
        return self._lookup(params.get("Action", [""])[0])

    def parse(self, request: Request, op: OperationModel) -> dict[str, Any]:
        """Form values typed by the model, then checked with the query services' own error code
        (IAM and STS say ``ValidationError`` where the json services say ``ValidationException``)."""
        if op.input_shape is None:
            return {}
        params = _query_value(op.input_shape, self._params(request), "") or {}
        validate_input(op.input_shape, params, code="ValidationError")
        return params

    def serialize(self, op: OperationModel, output: dict[str, Any], request_id: str) -> Response:
        ns = self.service.metadata.get("xmlNamespace")
        root = xmlcodec.ET.Element(f"{op.name}Response")
        if ns:
            root.set("xmlns", ns)
        shape = op.output_shape
        if shape is not None:
            wrapper = shape.serialization.get("resultWrapper", f"{op.name}Result")
            result = xmlcodec.ET.SubElement(root, wrapper)
            xmlcodec.fill_structure(result, shape, output)
        meta = xmlcodec.ET.SubElement(root, "ResponseMetadata")
        xmlcodec.ET.SubElement(meta, "RequestId").text = request_id
        return Response(200, Headers([("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)]),
                        xmlcodec.to_bytes(root))

    def serialize_error(self, error: ServiceError, request_id: str, request: Request | None) -> Response:
        ns = self.service.metadata.get("xmlNamespace")
        root = xmlcodec.ET.Element("ErrorResponse")
        if ns:
            root.set("xmlns", ns)
        err = xmlcodec.ET.SubElement(root, "Error")
        xmlcodec.ET.SubElement(err, "Type").text = "Sender" if error.sender_fault else "Receiver"
        xmlcodec.ET.SubElement(err, "Code").text = error.code
        xmlcodec.ET.SubElement(err, "Message").text = error.message
        xmlcodec.ET.SubElement(root, "RequestId").text = request_id
        return Response(error.status, Headers([("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)]),
                        xmlcodec.to_bytes(root))


class _RestProtocol(Protocol):
    def __init__(self, service: ServiceModel) -> None:
        super().__init__(service)
        self.router = RestRouter(service)

    def operation(self, request: Request) -> OperationModel:
        op, labels = self.router.match(request)
        request.labels = labels  # type: ignore[attr-defined]
        return op

    def parse(self, request: Request, op: OperationModel) -> dict[str, Any]:
        labels = getattr(request, "labels", {})
        params, payload_shape, payload_name = parse_bound_members(op.input_shape, request, labels)
        if payload_shape is not None and payload_name is not None:
            if payload_shape.type_name == "blob" and payload_shape.serialization.get("streaming"):
                params[payload_name] = request.body_stream
            elif payload_shape.type_name in ("blob", "string"):
                raw = request.body()
                params[payload_name] = raw if payload_shape.type_name == "blob" else _utf8(raw)
            elif request.content_length != 0:
                raw = request.body()
                if raw.strip():
                    params[payload_name] = self._decode_body(payload_shape, raw)
        elif body_members(op.input_shape) and request.content_length != 0:
            raw = request.body()
            if raw.strip():
                params.update(self._decode_body(op.input_shape, raw))
        return params

    def serialize(self, op: OperationModel, output: dict[str, Any], request_id: str) -> Response:
        response = Response(op.http.get("responseCode", 200), Headers(self._base_headers(request_id)))
        shape = op.output_shape
        write_bound_members(shape, output, response)
        if shape is None:
            return response
        payload = shape.serialization.get("payload")
        if payload:
            member = shape.members[payload]
            value = output.get(payload)
            if value is None:
                return response
            if member.type_name in ("blob", "string"):
                response.body = value.encode() if isinstance(value, str) else value
                length = output.get("ContentLength")
                if length is not None and not isinstance(value, bytes | bytearray):
                    response.content_length = int(length)
                if "Content-Type" not in response.headers:
                    response.headers["Content-Type"] = "application/octet-stream"
            else:
                response.body = self._encode_member(payload, member, value)
                if "Content-Type" not in response.headers:
                    response.headers["Content-Type"] = self.content_type
        elif body_members(shape):
            response.body = self._encode_body(shape, output)
            response.headers["Content-Type"] = self.content_type
        return response

    content_type = "application/xml"

    def _base_headers(self, request_id: str) -> list[tuple[str, str]]:
        return [("x-amzn-RequestId", request_id)]

    def _decode_body(self, shape: Shape, raw: bytes) -> dict[str, Any]:
        raise NotImplementedError

    def _encode_body(self, shape: Shape, output: dict[str, Any]) -> bytes:
        raise NotImplementedError

    def _encode_member(self, name: str, shape: Shape, value: Any) -> bytes:
        raise NotImplementedError


class RestJsonProtocol(_RestProtocol):
    """``rest-json`` (SageMaker Runtime): URI/header bound members plus a JSON or blob body."""

    content_type = "application/json"

    def _decode_body(self, shape: Shape, raw: bytes) -> dict[str, Any]:
        try:
            body = jsoncodec.loads(raw)
        except jsoncodec.BodyError as exc:
            raise ServiceError("SerializationException", f"Could not parse the request body: {exc}") from None
        if shape.type_name == "structure" and not isinstance(body, dict):
            raise ServiceError("SerializationException", "The request body must be a JSON object.")
        return jsoncodec.decode(shape, body) or {}

    def _encode_body(self, shape: Shape, output: dict[str, Any]) -> bytes:
        members = {n: output[n] for n in body_members(shape) if output.get(n) is not None}
        return jsoncodec.dumps(jsoncodec.encode(shape, members))

    def _encode_member(self, name: str, shape: Shape, value: Any) -> bytes:
        return jsoncodec.dumps(jsoncodec.encode(shape, value))

    def serialize_error(self, error: ServiceError, request_id: str, request: Request | None) -> Response:
        return _json_error(error, request_id, rest=True)


class RestXmlProtocol(_RestProtocol):
    """``rest-xml`` (S3): URI/query/header bound members plus an XML or blob body."""

    def _base_headers(self, request_id: str) -> list[tuple[str, str]]:
        return [("x-amz-request-id", request_id), ("x-amz-id-2", request_id)]

    def _decode_body(self, shape: Shape, raw: bytes) -> dict[str, Any]:
        try:
            return xmlcodec.parse_document(shape, raw)
        except (xmlcodec.ET.ParseError, ValueError, OverflowError) as exc:  # ValueError: <Days>abc</Days>
            raise ServiceError(
                "MalformedXML",
                "The XML you provided was not well-formed or did not validate against our published schema",
            ) from exc

    def _namespace(self) -> str | None:
        return self.service.metadata.get("xmlNamespace") or "http://s3.amazonaws.com/doc/2006-03-01/"

    def _encode_body(self, shape: Shape, output: dict[str, Any]) -> bytes:
        root_name = shape.serialization.get("name") or shape.name.removesuffix("Output")
        return xmlcodec.to_bytes(xmlcodec.structure_element(root_name, shape, output, self._namespace()))

    def _encode_member(self, name: str, shape: Shape, value: Any) -> bytes:
        root_name = shape.serialization.get("name", name)
        if shape.type_name != "structure":
            element = xmlcodec.ET.Element(root_name)
            if self._namespace():
                element.set("xmlns", self._namespace())
            element.text = str(value)
            return xmlcodec.to_bytes(element)
        return xmlcodec.to_bytes(xmlcodec.structure_element(root_name, shape, value, self._namespace()))

    def serialize_error(self, error: ServiceError, request_id: str, request: Request | None) -> Response:
        headers = Headers(self._base_headers(request_id))
        for key, value in error.headers.items():
            headers[key] = value
        if (request is not None and request.method == "HEAD") or error.status == 304:
            return Response(error.status, headers, b"")  # no body: the client would not read it
        root = xmlcodec.ET.Element("Error")
        xmlcodec.ET.SubElement(root, "Code").text = error.code
        xmlcodec.ET.SubElement(root, "Message").text = error.message
        for key, value in error.fields.items():
            xmlcodec.ET.SubElement(root, key).text = str(value)
        xmlcodec.ET.SubElement(root, "RequestId").text = request_id
        headers["Content-Type"] = "application/xml"
        return Response(error.status, headers, xmlcodec.to_bytes(root))


PROTOCOLS: dict[str, type[Protocol]] = {
    "json": JsonProtocol,
    "query": QueryProtocol,
    "rest-json": RestJsonProtocol,
    "rest-xml": RestXmlProtocol,
}


def protocol_for(service: ServiceModel) -> Protocol:
    if len(service.metadata.get("protocols") or []) > 1:  # its own module: it builds on the classes above
        from .multi import MultiProtocol

        return MultiProtocol(service)
    return PROTOCOLS[service.protocol](service)
