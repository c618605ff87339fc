"""What the job and endpoint tests share: the images, the role, the terminal statuses and the waits.

Imported like ``artifacts.py`` (``from jobs_common import TRAINING, XGBOOST_IMAGE``), so a new job kind's
tests start from one place instead of a fifth copy.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sagemaker_emulator.config import ROLE_ARN

XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
SKLEARN_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
ROLE = ROLE_ARN
"""The execution role every local account has (``sagemaker_emulator.config``)."""
TERMINAL = ("Completed", "Failed", "Stopped")
WAITER = {"Delay": 1, "MaxAttempts": 120}
"""``WaiterConfig`` for boto3's waiters: they poll every 30–60 s by default, far too slow for local jobs."""


@dataclass(frozen=True)
class JobKind:
    """A SageMaker job resource (``TrainingJob`` …): how to describe one and wait for it."""

    resource: str
    timeout: float = 60.0
    interval: float = 0.1

    def describe(self, sm: Any, name: str) -> dict[str, Any]:
        operation = "describe_" + re.sub(r"(?<!^)(?=[A-Z])", "_", self.resource).lower()
        return getattr(sm, operation)(**{f"{self.resource}Name": name})

    def wait(self, sm: Any, name: str, done: Callable[[dict[str, Any]], bool] | None = None,
             timeout: float | None = None) -> dict[str, Any]:
        """Describe every ``interval`` s until ``done(job)`` (default: a terminal status); fail after ``timeout``."""
        status = f"{self.resource}Status"
        done = done or (lambda job: job[status] in TERMINAL)
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while True:
            job = self.describe(sm, name)
            if done(job):
                return job
            if time.monotonic() > deadline:
                secondary = f"/{job['SecondaryStatus']}" if job.get("SecondaryStatus") else ""
                reason = f": {job['FailureReason']}" if job.get("FailureReason") else ""
                raise AssertionError(f"{name} still {job[status]}{secondary} after {limit}s{reason}")
            time.sleep(self.interval)


TRAINING = JobKind("TrainingJob")
PROCESSING = JobKind("ProcessingJob")
TRANSFORM = JobKind("TransformJob", timeout=120.0, interval=0.2)
TUNING = JobKind("HyperParameterTuningJob", timeout=120.0)


@contextmanager
def sdk_session(emulator: Any) -> Iterator[tuple[Any, str]]:
    """The process environment pointed at ``emulator`` (as ``sagemaker-emulator env`` does) while the block runs,
    with the SDK V3 session built in it and its default bucket; the environment is restored afterwards."""
    import os

    from sagemaker_emulator.envvars import environment

    saved = dict(os.environ)
    os.environ.update(environment(emulator.paths.root, emulator.endpoint_url, "us-east-1"))
    try:
        from sagemaker.core.helper.session_helper import Session

        session = Session()
        yield session, session.default_bucket()
    finally:
        os.environ.clear()
        os.environ.update(saved)
