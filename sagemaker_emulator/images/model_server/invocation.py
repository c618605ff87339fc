"""The request cycle the first-party containers share: an empty body is 204, an ``HttpError`` is its answer.

Why one place: the built-in XGBoost algorithm's ``ScoringService`` and Autopilot's candidate containers
answer ``/invocations`` the same way around their own prediction code. A subclass writes ``_invoke``;
``_server_error`` is where a container logs a 5xx (the algorithm does, as its Flask app logs the error).
"""

from __future__ import annotations

from .errors import HttpError
from .http import Request, Response


class InvocationService:
    """``invoke`` for ``/invocations``: 204 for an empty body, ``_invoke`` otherwise, ``HttpError`` → its status."""

    def invoke(self, request: Request) -> Response:
        if not request.body:
            return Response(204)
        try:
            return self._invoke(request)
        except HttpError as error:
            if error.status >= 500:
                self._server_error(error)
            return Response(error.status, error.message.encode(), error.content_type)

    def _invoke(self, request: Request) -> Response:
        raise NotImplementedError

    def _server_error(self, error: HttpError) -> None:
        """A 5xx about to be answered; the default says nothing more than the response."""
