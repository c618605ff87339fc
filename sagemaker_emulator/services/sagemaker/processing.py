"""Processing jobs: create, describe, list, stop (the runtime is ``runtime.processing``)."""

from __future__ import annotations

import time
from typing import Any

from ...protocol.errors import invalid
from ...runtime.container import container_path
from ..context import Context
from .common import SageMakerBase, resource_arn
from .training import FINISHED

PROCESSING_ROOT = "/opt/ml/processing"


def check_processing_paths(params: dict[str, Any]) -> None:
    """SageMaker's rule: every ``LocalPath`` of a processing job lies under ``/opt/ml/processing/``,
    after normalisation (``/opt/ml/processing/../../etc`` is ``/etc``)."""
    places = [("input", i.get("InputName"), (i.get("S3Input") or {}).get("LocalPath", PROCESSING_ROOT + "/"))
              for i in params.get("ProcessingInputs") or [] if i.get("S3Input")]
    for item in (params.get("ProcessingOutputConfig") or {}).get("Outputs") or []:
        if item.get("S3Output"):
            local = item["S3Output"].get("LocalPath")
            if local is None:
                raise invalid(f"LocalPath of output {item['OutputName']} is required.")
            places.append(("output", item["OutputName"], local))
    for label, name, local in places:
        normal = container_path(local, PROCESSING_ROOT)
        if normal is None or normal == PROCESSING_ROOT:
            raise invalid(f"LocalPath {local[:256]} of {label} {name} must be a path under {PROCESSING_ROOT}/.")


class ProcessingOperations(SageMakerBase):
    def CreateProcessingJob(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        name = params["ProcessingJobName"]
        cluster = params["ProcessingResources"]["ClusterConfig"]
        check_processing_paths(params)
        names = [i["InputName"] for i in params.get("ProcessingInputs") or []]
        outputs = (params.get("ProcessingOutputConfig") or {}).get("Outputs") or []
        names += [o["OutputName"] for o in outputs]
        if len(set(names)) != len(names):
            raise invalid("Input and output names must be unique within a processing job.")
        now = time.time()
        job_arn = resource_arn(ctx, "processing-job", name)
        record = {
            **{k: v for k, v in params.items() if k != "Tags"},
            "ProcessingJobArn": job_arn,
            "ProcessingJobStatus": "InProgress",
            "CreationTime": now,
            "LastModifiedTime": now,
        }
        record.setdefault("StoppingCondition", {"MaxRuntimeInSeconds": 86400})
        self._admit_job("ProcessingJob", "Processing", record, params.get("Tags"),
                        cluster.get("InstanceType", "ml.m5.xlarge"), int(cluster.get("InstanceCount") or 1))
        return {"ProcessingJobArn": job_arn}

    def DescribeProcessingJob(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        return self._get("ProcessingJob", params["ProcessingJobName"])

    def ListProcessingJobs(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        fields = ("ProcessingJobName", "ProcessingJobArn", "CreationTime", "ProcessingEndTime", "LastModifiedTime",
                  "ProcessingJobStatus", "FailureReason", "ExitMessage")
        return self._list("ProcessingJob", params, "ProcessingJobSummaries", fields, "ProcessingJobStatus")

    def StopProcessingJob(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        name = params["ProcessingJobName"]
        return self._stop_job("ProcessingJob", name, self._get("ProcessingJob", name), FINISHED)
