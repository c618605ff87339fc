"""The one exception type service handlers raise.

A handler never builds an error response itself: it raises ``ServiceError``
with the AWS error code and a one-line message, and the protocol layer
serializes it in the wire format of the service (JSON ``__type``, query
``ErrorResponse`` or S3's ``Error`` document). That keeps every error a
client sees shaped exactly as botocore expects to parse it.
"""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """An AWS-modelled error: code, message, HTTP status and optional extra fields."""

    def __init__(
        self,
        code: str,
        message: str,
        status: int = 400,
        *,
        sender_fault: bool = True,
        headers: dict[str, str] | None = None,
        **fields: Any,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.sender_fault = sender_fault
        self.headers = headers or {}
        self.fields = fields

    def __repr__(self) -> str:
        return f"ServiceError({self.code!r}, {self.message!r}, status={self.status})"


def invalid(message: str) -> ServiceError:
    """SageMaker/Logs style input validation failure."""
    return ServiceError("ValidationException", message, 400)


def internal_error(message: str = "An internal error occurred.") -> ServiceError:
    return ServiceError("InternalFailure", message, 500, sender_fault=False)
