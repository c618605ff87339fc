"""The CloudWatch metrics SageMaker publishes for every endpoint invocation (namespace ``AWS/SageMaker``).

Per ``EndpointName`` and ``VariantName``: ``Invocations`` and
``InvocationsPerInstance`` (Count, one per call that reached the model),
``Invocation4XXErrors``/``Invocation5XXErrors`` (Count, 1 when the model
answered with that class of status, else 0), ``ModelLatency`` (Microseconds:
the model server's time) and ``OverheadLatency`` (Microseconds: the rest of
the call, from the request's arrival to the model's answer). The values are
buffered by ``CloudWatch.record`` and stored every second.
"""

from __future__ import annotations

import time
from typing import Any

NAMESPACE = "AWS/SageMaker"


def publish_invocation(cloudwatch: Any, endpoint: str, variant: str, status: int, model_seconds: float,
                       started: float) -> None:
    dims = [{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": variant}]
    overhead = max(0.0, time.perf_counter() - started - model_seconds)
    for name, value, unit in (("Invocations", 1.0, "None"), ("InvocationsPerInstance", 1.0, "None"),
                              ("Invocation4XXErrors", float(400 <= status < 500), "None"),
                              ("Invocation5XXErrors", float(status >= 500), "None"),
                              ("ModelLatency", model_seconds * 1e6, "Microseconds"),
                              ("OverheadLatency", overhead * 1e6, "Microseconds")):
        cloudwatch.record(NAMESPACE, name, dims, value, unit)
