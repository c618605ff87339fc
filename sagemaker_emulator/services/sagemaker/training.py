"""Training jobs: create, describe, list, stop.

The job is recorded in its ``DescribeTrainingJob`` shape and handed to the
runtime (``runtime.training``), which runs it as local processes and moves it
through SageMaker's statuses.
"""

from __future__ import annotations

import time
from typing import Any

from ...protocol.errors import invalid
from ..context import Context
from .common import SageMakerBase, check_channels, check_checkpoint, resource_arn
from .debugger import debugger_fields

FINISHED = "The job {name} has already finished (status {status})."


class TrainingOperations(SageMakerBase):
    def CreateTrainingJob(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        name = params["TrainingJobName"]
        # The model leaves these optional for serverless jobs (ServerlessJobConfig); any other job needs them.
        missing = [m for m in ("AlgorithmSpecification", "ResourceConfig", "StoppingCondition") if not params.get(m)]
        if missing:
            shown = "; ".join(f"Value null at '{m[0].lower()}{m[1:]}' failed to satisfy constraint: Member must not "
                              "be null" for m in missing)
            noun = "error" if len(missing) == 1 else "errors"
            raise invalid(f"{len(missing)} validation {noun} detected: {shown}")
        spec = dict(params["AlgorithmSpecification"])
        if not spec.get("TrainingImage") and not spec.get("AlgorithmName"):
            raise invalid("Either TrainingImage or AlgorithmName must be specified.")
        check_channels(params.get("InputDataConfig"))
        check_checkpoint(params.get("CheckpointConfig"))
        debugger = debugger_fields(params)
        resources = params["ResourceConfig"]
        count = int(resources.get("InstanceCount") or 1)
        if resources.get("InstanceGroups"):
            raise invalid("Heterogeneous clusters (InstanceGroups) are not supported by the local emulator; "
                          "use InstanceType/InstanceCount.")
        hps = params.get("HyperParameters") or {}
        if "MetricDefinitions" not in spec and "sagemaker_program" not in hps and not spec.get("ContainerEntrypoint"):
            spec["MetricDefinitions"] = self._builtin_metrics(spec.get("TrainingImage", ""))
        now = time.time()
        job_arn = resource_arn(ctx, "training-job", name)
        record = {
            **{k: v for k, v in params.items() if k not in ("Tags", "AlgorithmSpecification")},
            "AlgorithmSpecification": spec,
            "TrainingJobArn": job_arn,
            "TrainingJobStatus": "InProgress",
            "SecondaryStatus": "Starting",
            "CreationTime": now,
            "LastModifiedTime": now,
            "SecondaryStatusTransitions": [{"Status": "Starting", "StartTime": now,
                                            "StatusMessage": "Launching requested ML instances (local processes)"}],
            "EnableNetworkIsolation": params.get("EnableNetworkIsolation", False),
            "EnableInterContainerTrafficEncryption": params.get("EnableInterContainerTrafficEncryption", False),
            "EnableManagedSpotTraining": params.get("EnableManagedSpotTraining", False),
            "ProfilingStatus": "Disabled",
            **debugger,
        }
        record["ResourceConfig"] = {"VolumeSizeInGB": 30, **resources, "InstanceCount": count}
        self._admit_job("TrainingJob", "Training", record, params.get("Tags"),
                        resources.get("InstanceType", "ml.m5.xlarge"), count)
        return {"TrainingJobArn": job_arn}

    @staticmethod
    def _builtin_metrics(image_uri: str) -> list[dict[str, str]]:
        from ...images.registry import resolve

        image = resolve(image_uri)
        if image is None or image.framework != "xgboost":
            return []
        from ...images.xgboost_algorithm.metrics import METRIC_DEFINITIONS

        return list(METRIC_DEFINITIONS)

    def DescribeTrainingJob(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        return self._get("TrainingJob", params["TrainingJobName"])

    def ListTrainingJobs(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        fields = ("TrainingJobName", "TrainingJobArn", "CreationTime", "TrainingEndTime", "LastModifiedTime",
                  "TrainingJobStatus", "SecondaryStatus")
        return self._list("TrainingJob", params, "TrainingJobSummaries", fields, "TrainingJobStatus")

    def StopTrainingJob(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        name = params["TrainingJobName"]
        return self._stop_job("TrainingJob", name, self._get("TrainingJob", name), FINISHED)
