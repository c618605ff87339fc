"""Errors of the model server, split by what they turn into.

Two families matter, because the server reacts to them in opposite ways:

* :class:`HttpError` and its subclasses end **one request** with a status code and a body (the
  server keeps serving); their ``str()`` is the body the containers send, since notebooks show it
  in ``ModelError`` messages;
* :class:`ModelLoadError` ends **the process** during start-up: the reason is printed as the final
  ``FAILURE: <one line>`` so that the runtime can put it in the endpoint's ``FailureReason``.
"""

from __future__ import annotations

FAILURE_PREFIX = "FAILURE: "
MAX_REASON_CHARS = 1024


class HttpError(Exception):
    """A request that ends with ``status`` and ``str(self)`` as a (text) body."""

    status = 500
    content_type = "text/html; charset=utf-8"  # what Flask sends for a plain string body

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class UnsupportedMediaType(HttpError):
    """415: the payload cannot be decoded (unknown content type or malformed data)."""

    status = 415


class NotAcceptable(HttpError):
    """406: the response cannot be encoded in the requested ``Accept`` type."""

    status = 406


class BadRequest(HttpError):
    """400: the payload was decoded but the model cannot evaluate it (e.g. feature count)."""

    status = 400


class UnsupportedFormatError(Exception):
    """A default encoder/decoder of the frameworks' toolkit has no codec for the content type.

    The text is the toolkit's (``sagemaker_containers._errors.UnsupportedFormatError``); the
    caller decides the status (415 when decoding the request, 406 when encoding the response).
    """

    def __init__(self, content_type: str, hint: str = "") -> None:
        message = (
            f"Content type {content_type} is not supported by this framework.\n\n"
            "Please implement input_fn to to deserialize the request data or an output_fn to\n"
            "serialize the response. For more information, see the SageMaker Python SDK README."
        )
        if hint:
            message += "\n" + hint
        super().__init__(message)
        self.content_type = content_type
        self.message = message


class ModelLoadError(Exception):
    """The model (or the user's inference module) cannot be loaded: the server must not start."""


def library_message(error: BaseException) -> str:
    """``str(error)`` without the native ``Stack trace:`` block XGBoost appends to its errors."""
    return str(error).split("\nStack trace:", 1)[0].rstrip()


def one_line(text: str, limit: int = MAX_REASON_CHARS) -> str:
    """Collapse a (multi-line) reason into one line the runtime can copy into ``FailureReason``."""
    flat = " ".join(part.strip() for part in text.splitlines() if part.strip())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def failure_line(reason: str) -> str:
    """The last line the server prints before exiting because it could not start."""
    return FAILURE_PREFIX + one_line(reason)
