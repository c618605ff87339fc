"""What a service handler may know about a call besides its input, and how the emulator calls itself.

Why in the service layer: handlers, and the runtime when it acts as a client of
the control plane (a tuning job creating its trials, as SageMaker's tuner
does), need the caller's region, account and request id, but never the HTTP
transport. ``call`` gives internal callers the same input validation the
gateway gives a client, so nothing the emulator creates for itself skips the
checks a learner's request gets.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from typing import Any

from ..protocol.http import Request


def new_request_id() -> str:
    """A version-4 UUID from the in-process generator: ``uuid4()`` reads ``os.urandom``, a system call
    that releases the GIL on every request; a request ID needs to be unique, not unpredictable."""
    return str(uuid.UUID(int=random.getrandbits(128), version=4))


@dataclass
class Context:
    region: str
    account_id: str
    request_id: str
    service: str
    #: the HTTP request, for handlers that read headers or stream a body (S3); None for internal calls
    request: Request | None = None

    @classmethod
    def internal(cls, arn: str) -> Context:
        """The context of a call the emulator makes on behalf of the resource ``arn`` (same region, account)."""
        _, _, service, region, account, _ = arn.split(":", 5)
        return cls(region, account, new_request_id(), service)


def call(service: Any, operation: str, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Call ``service``'s handler for ``operation`` after validating ``params`` as the gateway does."""
    from ..protocol.validate import validate_input

    op = service.model.operation_model(operation)
    if service.validates:
        validate_input(op.input_shape, params)
    return getattr(service, operation)(ctx, params) or {}
