"""SageMaker Runtime: ``InvokeEndpoint`` forwarded to the endpoint's local model servers.

Errors come back as SageMaker Runtime returns them: ``ValidationError`` for an
unknown endpoint or variant or an oversized payload, ``ModelError`` (424) with
the model server's status and message when the container answered 4xx/5xx,
``ThrottlingException`` when a serverless variant is at its ``MaxConcurrency``.
Successful calls are offered to the endpoint's data capture, if it has one.
"""

from __future__ import annotations

import time
from typing import Any

from ..protocol.errors import ServiceError
from ..runtime.capture import Invocation
from ..runtime.endpoint_metrics import publish_invocation
from ..runtime.endpoints import Throttled
from ..runtime.serial_pipeline import TARGET_HOST_HEADER, execution_mode, hostnames
from .base import Service
from .context import Context

MAX_PAYLOAD = 6 * 1024 * 1024
TIMEOUT_SECONDS = 65.0


def _validation(message: str) -> ServiceError:
    return ServiceError("ValidationError", message, 400)


def payload_too_large(size: int) -> ServiceError:
    """Also raised by the gateway from ``Content-Length``, before such a body is read."""
    return _validation(f"Received payload of {size} bytes; the maximum for InvokeEndpoint is "
                       f"{MAX_PAYLOAD} bytes (6 MB). Use batch transform for larger inputs.")


def check_target_container(live: Any, endpoint: str, host: str | None, variant: str | None) -> str | None:
    """``TargetContainerHostname``: required by, and only allowed for, a model in ``Direct`` mode; it must
    name one of its containers."""
    models = [v.model for name, v in live.variants.items() if variant in (None, name)]
    direct = [m for m in models if len(m.get("Containers") or []) > 1 and execution_mode(m) == "Direct"]
    if host is None:
        if direct:
            raise _validation(f"Endpoint {endpoint} runs its containers in Direct mode: specify "
                              "TargetContainerHostname to choose the container to invoke.")
        return None
    if not direct or len(direct) != len(models):
        raise _validation(f"TargetContainerHostname is only supported for endpoints whose model runs its "
                          f"containers in Direct mode (InferenceExecutionConfig); endpoint {endpoint} does not.")
    if any(host not in hostnames(m) for m in direct):
        known = ", ".join(hostnames(direct[0]))
        raise _validation(f"The container {host} does not exist for endpoint {endpoint}; its containers are: {known}.")
    return host


class SageMakerRuntime(Service):
    name = "sagemaker-runtime"
    validates = False  # the body may be binary; the handler checks what matters

    def InvokeEndpoint(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        started = time.perf_counter()
        name = params["EndpointName"]
        live = self.emulator.endpoints.get(name)  # in memory: no database read on the hot path
        if live is None or not live.variants:  # unknown, still Creating, failed to create, or being deleted
            raise _validation(f"Endpoint {name} of account {ctx.account_id} not found.")
        body = params.get("Body") or b""
        if len(body) > MAX_PAYLOAD:
            raise payload_too_large(len(body))
        target = params.get("TargetVariant")
        if target and target not in live.variants:
            raise _validation(f"The variant {target} does not exist for endpoint {name}.")
        headers = {"Content-Type": params.get("ContentType") or "application/octet-stream"}
        host = check_target_container(live, name, params.get("TargetContainerHostname"), target)
        if host:
            headers[TARGET_HOST_HEADER] = host
        if params.get("Accept"):
            headers["Accept"] = params["Accept"]
        if params.get("CustomAttributes"):
            headers["X-Amzn-SageMaker-Custom-Attributes"] = params["CustomAttributes"]
        variant = live.choose(target)
        try:
            model_started = time.perf_counter()
            response = live.invoke(variant, body, headers, TIMEOUT_SECONDS)
            publish_invocation(self.emulator.cloudwatch, name, variant.name, response.status,
                               time.perf_counter() - model_started, started)
        except Throttled as exc:
            raise ServiceError("ThrottlingException", f"Rate exceeded: the serverless variant {exc} of endpoint "
                               f"{name} is already serving its MaxConcurrency requests.", 400) from exc
        except OSError as exc:
            publish_invocation(self.emulator.cloudwatch, name, variant.name, 500, time.perf_counter() - model_started,
                               started)
            raise ServiceError(
                "ModelError", f"Received server error (0) from primary: the model server did not answer ({exc}).",
                424, OriginalStatusCode=500, OriginalMessage=str(exc), LogStreamArn=self._log_arn(ctx, name),
            ) from exc
        if response.status >= 400:
            kind = "client" if response.status < 500 else "server"
            message = response.body.decode("utf-8", "replace")
            raise ServiceError(
                "ModelError",
                f"Received {kind} error ({response.status}) from {response.source} with message \"{message}\". "
                f"See the log group /aws/sagemaker/Endpoints/{name} for more information.",
                424, OriginalStatusCode=response.status, OriginalMessage=message,
                LogStreamArn=self._log_arn(ctx, name),
            )
        capture = live.capture
        if capture is not None and capture.sampled():
            capture.record(Invocation(variant.name, body, headers["Content-Type"], response.body,
                                      response.content_type or "application/octet-stream",
                                      params.get("InferenceId"), params.get("CustomAttributes")))
        return {"Body": response.body, "ContentType": response.content_type or "application/octet-stream",
                "InvokedProductionVariant": response.variant,
                **({"CustomAttributes": params["CustomAttributes"]} if params.get("CustomAttributes") else {})}

    @staticmethod
    def _log_arn(ctx: Context, name: str) -> str:
        return f"arn:aws:logs:{ctx.region}:{ctx.account_id}:log-group:/aws/sagemaker/Endpoints/{name}"
