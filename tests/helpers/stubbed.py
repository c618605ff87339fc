"""A boto3 session for the AWS paths of the helpers: every client answers from botocore's Stubber.

Why Stubber: it validates each request against the service model, so a helper that passes a wrong
parameter fails here as it would on AWS, without an account.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

import boto3
from botocore.stub import Stubber


class StubbedSession(boto3.Session):
    """A boto3 session whose every client answers from a Stubber queue (requests validated by the model)."""

    def __init__(self, responses: dict[str, list[tuple[str, dict[str, Any]]]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.queues = {service: list(items) for service, items in responses.items()}
        self.calls: dict[str, list[str]] = defaultdict(list)
        self.stubbers: list[Stubber] = []

    def client(self, service_name, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003 - boto3 signature
        client = super().client(service_name, *args, **kwargs)
        stubber = Stubber(client)
        for operation, response in self.queues.get(service_name, []):
            stubber.add_response(_snake(operation), response)
        client.meta.events.register(
            "before-call.*.*", lambda model, **_: self.calls[service_name].append(model.name))
        stubber.activate()
        self.stubbers.append(stubber)
        return client


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
