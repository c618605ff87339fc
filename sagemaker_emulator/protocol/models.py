"""botocore's service models, loaded once: the single source of every shape we speak."""

from __future__ import annotations

from functools import cache

import botocore.session
from botocore.model import ServiceModel


@cache
def _session() -> botocore.session.Session:
    return botocore.session.get_session()


@cache
def service_model(name: str) -> ServiceModel:
    return _session().get_service_model(name)
