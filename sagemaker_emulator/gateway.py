"""The AWS front door: which service a request is for, who signed it, and the call of its handler.

A request is routed to a service by its SigV4 credential scope (and, for
SageMaker Runtime, by its ``/endpoints/…`` path); everything that can be
decided from its request line and headers (the signer, the scope's day,
region and service, presigned expiry, the body's size limit) is decided
before its body is read; then the signature is checked over the body actually
received, the protocol turns the request into an operation call, and every
failure becomes an AWS error in the client's own protocol.
"""

from __future__ import annotations

import json
import logging
import re
from typing import TYPE_CHECKING, Any

from . import bodies, mlflow_proxy, routing, sigv4
from .protocol.errors import ServiceError, internal_error
from .protocol.http import Headers, Request, Response
from .services.context import Context, new_request_id

if TYPE_CHECKING:
    from .app import Emulator

log = logging.getLogger("sagemaker_emulator.gateway")

_VIRTUAL_S3 = re.compile(r"^(?P<bucket>.+?)\.s3(?:[.-](?:[a-z0-9-]+\.)*?)?\.?amazonaws\.com(?:\.cn)?$")
_S3_HOST = re.compile(r"^s3(?:[.-][a-z0-9-]+)*\.amazonaws\.com(?:\.cn)?$")
HEALTH_PATH = "/_emulator/health"
#: request bodies are refused beyond these sizes, from their declared length, before they are read
DEFAULT_BODY_LIMIT = 16 * 1024 * 1024
BODY_LIMITS = {
    ("s3", "PutObject"): 5 * 1024**3, ("s3", "UploadPart"): 5 * 1024**3,
    ("sagemaker-runtime", "InvokeEndpoint"): 6 * 1024 * 1024,
    ("logs", "PutLogEvents"): 5 * 1024 * 1024,
}



def service_for(request: Request, scope_service: str | None) -> str:
    """Map a SigV4 scope (or, unsigned, the host) to a botocore service name."""
    host = routing.strip_port(request.host).lower()
    name = scope_service
    if name is None:
        first = host.split(".")[0]
        if _S3_HOST.match(host) or _VIRTUAL_S3.match(host):
            name = "s3"
        elif first.startswith("runtime") or request.raw_path.startswith("/endpoints/"):
            name = "sagemaker"
        else:
            name = first.replace("api.", "")
    if name == "sagemaker" and request.raw_path.startswith("/endpoints/"):
        return "sagemaker-runtime"
    return name


def apply_virtual_host(request: Request) -> None:
    """``bucket.s3.region.amazonaws.com/key`` → path-style ``/bucket/key``."""
    host = routing.strip_port(request.host).lower()
    if _S3_HOST.match(host):
        return
    match = _VIRTUAL_S3.match(host)
    if match:
        request.raw_path = "/" + match.group("bucket") + (request.raw_path or "/")


def _service_from_target(request: Request) -> str | None:
    """For unsigned json-protocol calls: ``X-Amz-Target: SageMaker.X`` / ``Logs_20140328.X``."""
    target = request.headers.get("X-Amz-Target", "")
    prefix = target.split(".", 1)[0].lower()
    if prefix.startswith("logs"):
        return "logs"
    return "sagemaker" if prefix == "sagemaker" else None


def unsigned_error(service: str) -> ServiceError:
    if service == "s3":
        return ServiceError("AccessDenied", "Access Denied", 403)
    if service in ("sts", "iam"):
        return ServiceError("MissingAuthenticationToken", "Request is missing Authentication Token", 403)
    return ServiceError("MissingAuthenticationTokenException", "Missing Authentication Token", 400)

def dispatch(emulator: Emulator, request: Request) -> Response:
    """Route, authenticate, parse, call, serialize; every failure becomes an AWS error in the client's protocol.

    Everything that can be decided from the request line and headers (who signed, for which service,
    region and day, how large a body may be) is decided before the body is read, so a stranger cannot
    make the daemon read, buffer or store anything.
    """
    request_id = new_request_id()
    request.service = "sagemaker"
    service: Any = None
    try:
        if request.raw_path == HEALTH_PATH and request.method == "GET":
            request.operation = "Health"
            return Response(200, Headers([("Content-Type", "application/json")]),
                            json.dumps(emulator.health()).encode())
        if mlflow_proxy.handles(request):  # an MLflow App's REST API or UI: forwarded to its mlflow server
            return mlflow_proxy.dispatch(emulator, request)
        cred = sigv4.parse_credential(request)
        service = _service(emulator, request, cred)
        target = routing.host_target(request.host)
        if cred is None:
            if not _anonymous_read(emulator, request):
                raise unsigned_error(request.service)
        else:
            sigv4.check_access_key(cred, emulator.credentials.access_key)
            sigv4.check_time(cred)
            sigv4.check_scope(cred, target.service or cred.service, target.region, service.model.protocol)
        if request.service == "s3":
            apply_virtual_host(request)
        protocol = service.protocol
        op = None if protocol.kind_of(request) == "query" else protocol.operation(request)  # query: in the body
        if op is not None:
            request.operation = op.name
        _check_length(request, op.name if op is not None else None)
        if request.send_continue is not None:
            request.send_continue()
        if cred is not None:
            _authenticate_payload(emulator, request, cred)
        if op is None:
            op = protocol.operation(request)
            request.operation = op.name
        if isinstance(service, routing.NotEmulated):
            raise service.error(op)
        params = protocol.parse(request, op)
        if service.validates:
            from .protocol.validate import validate_input

            validate_input(op.input_shape, params)
        handler = getattr(service, op.name, None)
        if handler is None:
            title = service.model.metadata.get("serviceFullName", request.service)
            raise ServiceError("UnknownOperationException", f"{title} ({request.service}) {op.name} is not emulated "
                               f"yet by the local SageMaker emulator.", 400)
        region = cred.region if cred is not None else target.region or emulator.region
        ctx = Context(region, emulator.account_id, request_id, request.service, request)
        output = handler(ctx, params) or {}
        return protocol.serialize(op, output, request_id)
    except ServiceError as error:
        request.error_code = error.code
        return error_response(emulator, request.service, error, request_id, request, service)
    except Exception:  # a bug in a handler must not take the gateway down
        log.exception("unhandled error in %s %s", request.method, request.raw_path)
        request.error_code = "InternalFailure"
        return error_response(emulator, request.service, internal_error(), request_id, request, service)


def _anonymous_read(emulator: Emulator, request: Request) -> bool:
    """An unsigned GET/HEAD of AWS's public sample data (``wget https://sagemaker-sample-files.s3…``, ``aws s3
    --no-sign-request``): public-read buckets answer anyone; every other unsigned request is refused."""
    if request.service != "s3" or request.method not in ("GET", "HEAD"):
        return False
    probe = Request(request.method, request.raw_path, request.query_string, request.headers, host=request.host)
    apply_virtual_host(probe)
    return emulator.s3.public.serves(_first_segment(probe.path))


def _first_segment(path: str) -> str:
    return path.lstrip("/").split("/", 1)[0]


def _service(emulator: Emulator, request: Request, cred: sigv4.Credential | None) -> Any:
    """The service a request is for: emulated, known to botocore but not emulated, or refused as unknown."""
    name = service_for(request, cred.service if cred else None)
    if cred is None and name not in emulator.services:
        public = emulator.s3.public.serves(_first_segment(request.path))
        name = _service_from_target(request) or ("s3" if public else "sagemaker")
    request.service = name
    service = emulator.services.get(name)
    if service is not None and not (cred and name == "sagemaker" and _not_sagemaker_api(request)):
        return service
    if cred is not None:
        other = routing.resolve_not_emulated(request, cred.service, skip=frozenset(emulator.services))
        if other is not None:
            request.service = other.name
            return other
    if service is not None:
        return service
    request.service = "sagemaker"
    raise ServiceError(
        "UnknownServiceException",
        f"The emulator does not provide the AWS service '{name}'. It provides: {', '.join(sorted(emulator.services))}.",
        400,
    )


def _not_sagemaker_api(request: Request) -> bool:
    """Signed as ``sagemaker`` but not the SageMaker API's ``POST /`` (Feature Store runtime, metrics …)."""
    return not request.headers.get("X-Amz-Target") and request.raw_path not in ("", "/")


def _check_length(request: Request, operation: str | None) -> None:
    """Refuse a body larger than the operation allows from its declared length, without reading it."""
    limit = BODY_LIMITS.get((request.service, operation or ""), DEFAULT_BODY_LIMIT)
    what = f"{request.service} {operation or request.method}"
    if request.service == "sagemaker-runtime" and operation == "InvokeEndpoint":
        from .services.sagemaker_runtime import payload_too_large

        too_large: Any = lambda size, _limit, _what: payload_too_large(size)  # noqa: E731
    else:
        too_large = bodies.too_large
    declared = request.content_length
    if declared is not None and declared > limit:
        raise too_large(declared, limit, what)
    stream = request.body_stream
    if isinstance(stream, bodies.ChunkedReader):  # the size is known only while reading: bound it there
        stream.bound(limit, what)
        # aws-chunked without x-amz-decoded-content-length: chunk framing (~90 bytes a chunk) cannot make the
        # wire length twice the decoded one, so a wire length that large is refused before reading it
        framed = stream.framed_remaining
        if declared is None and framed is not None and framed > limit * 2 + (1 << 20):
            raise too_large(framed, limit, what)


def _authenticate_payload(emulator: Emulator, request: Request, cred: sigv4.Credential) -> None:
    """Check the signature, with the payload hash of the body actually received.

    S3 signs a declared hash (checked against the body as it streams to disk) or an unsigned/streaming
    literal (chunk signatures checked as chunks arrive); every other service signs the body itself,
    which is read once here, already bounded by ``_check_length``, into the bytes the handler gets.
    """
    secret = emulator.credentials.secret_key
    declared = sigv4.declared_payload_hash(request, cred)
    if declared is None:
        body, digest = bodies.read_whole(request.body_stream, request.content_length)
        sigv4.check_signature(request, cred, secret, digest)
        request.set_body(body)
        return
    sigv4.check_signature(request, cred, secret, declared)
    stream = request.body_stream
    if declared.startswith("STREAMING-AWS4-HMAC-SHA256-PAYLOAD"):
        if not isinstance(stream, bodies.ChunkedReader):
            raise ServiceError("InvalidRequest", "A signed streaming upload must use Content-Encoding: aws-chunked.")
        verifier = sigv4.ChunkVerifier(cred, secret)
        signed_trailers = declared == "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
        stream.verify_with(verifier.chunk, verifier.trailers if signed_trailers else None)
    elif declared not in sigv4.UNSIGNED_PAYLOADS:
        request.body_stream = bodies.HashingReader(stream, declared, request.content_length)


def error_response(
    emulator: Emulator, service_name: str, error: ServiceError, request_id: str, request: Request,
    service: Any = None,
) -> Response:
    """The error in the protocol of the service the request was for (SageMaker's JSON when unknown)."""
    service = service or emulator.services.get(service_name) or emulator.services["sagemaker"]
    return service.protocol.serialize_error(error, request_id, request)
