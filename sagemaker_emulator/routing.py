"""Which AWS service, operation and region a request is for, including services the emulator does not emulate.

Why a module of its own: a learner's notebook may call any AWS API (SNS,
Feature Store runtime, CloudWatch …). AWS would answer it; we cannot, but we
must say so in that service's own protocol (XML for query and rest-xml
services, JSON otherwise) and name the operation, or botocore fails with a
``ResponseParserError`` that tells the learner nothing. botocore's models say
how each service is addressed, so the same lookup serves every service.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

from botocore.model import OperationModel

from .protocol.errors import ServiceError
from .protocol.http import Request
from .protocol.models import service_model
from .protocol.protocols import Protocol
from .proxy import is_aws_host

#: the signing name each endpoint prefix of an emulated service stands for
_SIGNING_NAME = {"sts": "sts", "iam": "iam", "logs": "logs", "s3": "s3", "sagemaker": "sagemaker"}
#: signing names that are not botocore service names (CloudWatch signs as ``monitoring`` …)
_SERVICE_ALIASES = {"monitoring": ("cloudwatch",), "email": ("ses", "sesv2"), "states": ("stepfunctions",),
                    "execute-api": ("apigateway",), "es": ("opensearch", "es"), "events": ("events",)}
_REGION_LABEL = re.compile(r"^[a-z]{2,4}(-[a-z]+)+-\d+$")


@dataclass(frozen=True)
class HostTarget:
    """What an AWS host name says: the signing name of its service and its region, when it names them."""

    service: str | None = None
    region: str | None = None


def strip_port(host: str) -> str:
    if host.startswith("["):
        return host.split("]")[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def host_target(host: str) -> HostTarget:
    """``runtime.sagemaker.us-west-2.amazonaws.com`` → (sagemaker, us-west-2); the loopback endpoint → ()."""
    name = strip_port(host).lower().rstrip(".")
    if not is_aws_host(name):
        return HostTarget()
    labels = name.split(".")
    bases = [label.removesuffix("-fips") for label in labels]
    if any(base == "s3" or base.startswith("s3-") for base in bases[1:] + bases[:1]):
        service: str | None = "s3"  # a virtual-hosted bucket's own name may be anything, "sts" included
    else:
        service = next((_SIGNING_NAME[base] for base in bases if base in _SIGNING_NAME), None)
    if service is None:
        return HostTarget()
    region = next((label for label in labels if _REGION_LABEL.match(label)), None)
    if region is None and service in ("sts", "iam", "s3"):
        region = "us-east-1"  # the global endpoints (sts.amazonaws.com, s3.amazonaws.com) sign for us-east-1
    return HostTarget(service, region)


class NotEmulated:
    """Stands in for an AWS service the emulator does not provide: it parses nothing and handles
    nothing, but speaks the service's protocol, so its error reaches the client intact."""

    validates = False

    def __init__(self, name: str, protocol: Protocol) -> None:
        self.name = name
        self.protocol = protocol
        self.model = protocol.service

    @property
    def title(self) -> str:
        return self.model.metadata.get("serviceFullName", self.name)

    def error(self, op: OperationModel | None) -> ServiceError:
        what = f"{self.title} ({self.name}) {op.name}" if op is not None else f"{self.title} ({self.name})"
        return ServiceError("UnknownOperationException" if self.model.protocol != "query" else "InvalidAction",
                            f"{what} is not emulated: the local SageMaker emulator provides only S3, STS, IAM, "
                            f"CloudWatch Logs, CloudWatch metrics, SageMaker and SageMaker Runtime.", 400)


def _candidates(signing_name: str) -> list[str]:
    """botocore service names that may sign as ``signing_name``: itself, its ``name-*`` family, known aliases."""
    available = _available_services()
    names = [n for n in (signing_name, *_SERVICE_ALIASES.get(signing_name, ())) if n in available]
    names += sorted(n for n in available if n.startswith(signing_name + "-") and n not in names)
    return names


@functools.cache
def _available_services() -> frozenset[str]:
    from botocore.loaders import create_loader

    return frozenset(create_loader().list_available_services("service-2"))


def not_emulated(name: str, kind: str | None = None) -> NotEmulated:
    """The stand-in for service ``name`` speaking ``kind`` (one of the protocols its model lists)."""
    return NotEmulated(name, _protocol(name, kind or service_model(name).protocol))


@functools.cache
def _protocol(name: str, kind: str) -> Protocol:
    from .protocol.cbor import RpcV2CborProtocol
    from .protocol.protocols import PROTOCOLS

    model = service_model(name)
    return RpcV2CborProtocol(model) if kind == "smithy-rpc-v2-cbor" else PROTOCOLS[kind](model)


def resolve_not_emulated(request: Request, signing_name: str, skip: frozenset[str] = frozenset()) -> NotEmulated | None:
    """The not-emulated service a request is addressed to, by its target, action or path; None if none fits.

    A model may list several protocols (CloudWatch: CBOR, JSON, query) and botocore speaks the first it
    supports, so the request itself says which one to answer in. Only the headers, query string and path
    are looked at: the body is never read for this.
    """
    for name in _candidates(signing_name):
        if name in skip:
            continue
        try:
            model = service_model(name)
        except Exception:  # noqa: BLE001 - a model botocore cannot load is simply not a candidate
            continue
        kind = _kind_addressed(name, model.metadata, request)
        if kind is not None:
            return not_emulated(name, kind)
    return None


def _kind_addressed(name: str, metadata: dict[str, Any], request: Request) -> str | None:
    kinds = metadata.get("protocols") or [metadata.get("protocol")]
    target = request.headers.get("X-Amz-Target", "")
    prefix = metadata.get("targetPrefix", "")
    if target:
        return "json" if "json" in kinds and target.rpartition(".")[0] == prefix else None
    if "smithy-rpc-v2-cbor" in kinds and request.raw_path.startswith(f"/service/{prefix}/operation/"):
        return "smithy-rpc-v2-cbor"
    if "query" in kinds and request.raw_path in ("", "/"):
        return "query"
    for kind in kinds:
        if kind in ("rest-json", "rest-xml"):
            try:
                _protocol(name, kind).operation(request)
            except ServiceError:
                continue
            return kind
    return None
