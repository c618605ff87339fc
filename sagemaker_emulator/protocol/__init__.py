"""AWS wire protocols driven by botocore's own service models (see ``protocols``)."""

from .errors import ServiceError
from .http import Headers, Request, Response

__all__ = ["Headers", "Request", "Response", "ServiceError"]
