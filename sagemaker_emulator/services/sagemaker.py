"""The SageMaker control plane: each operation a function of that name, holding only behaviour.

Jobs are recorded in the shape ``Describe*`` returns and handed to the
runtime, which runs them as local processes and moves them through
SageMaker's statuses. Validation of patterns, enums and lengths happens
generically from the botocore model before these handlers run.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from ..protocol.errors import ServiceError
from ..runtime.container import container_path
from ..server import Context
from .base import Service
from .hosting import HostingOperations
from .listing import list_records
from .transform import TransformOperations
from .tuning import TuningOperations

#: how many local "instances" may run at once, across all jobs (the local account's service quota)
MAX_INSTANCES = 8


def _arn(ctx: Context, kind: str, name: str) -> str:
    return f"arn:aws:sagemaker:{ctx.region}:{ctx.account_id}:{kind}/{name.lower()}"


def _not_found() -> ServiceError:
    return ServiceError("ValidationException", "Requested resource not found.")


def tag_dict(tags: list[dict[str, str]] | None) -> dict[str, str]:
    """``[{"Key": k, "Value": v}]`` → ``{k: v}`` (validation has made sure both are strings)."""
    return {t["Key"]: t.get("Value") or "" for t in tags or []}


def check_channels(channels: list[dict[str, Any]] | None, where: str = "InputDataConfig") -> None:
    """Channel names are unique, and each is a directory name: ``/opt/ml/input/data/<ChannelName>``.

    The model's pattern (``[A-Za-z0-9\\.\\-_]+``) lets ``.`` and ``..`` through; as directory names they
    would put a channel's files into ``/opt/ml/input`` itself (over the job's configuration).
    """
    names = [c["ChannelName"] for c in channels or []]
    if len(set(names)) != len(names):
        raise ServiceError("ValidationException", f"Channel names must be unique within {where}.")
    for name in names:
        if name in (".", ".."):
            raise ServiceError("ValidationException", f"The channel name '{name}' in {where} is not a valid "
                                                      "directory name; use letters, digits, '.', '-' or '_'.")


def check_checkpoint(config: dict[str, Any] | None) -> None:
    """``CheckpointConfig.LocalPath``: an absolute path the job's "container" has, i.e. under ``/opt/ml/``."""
    local = (config or {}).get("LocalPath")
    if local is not None and container_path(local) is None:
        raise ServiceError("ValidationException", f"CheckpointConfig.LocalPath '{local[:256]}' must be an absolute "
                                                  "path under /opt/ml/ (the local emulator maps only /opt/ml).")


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
                raise ServiceError("ValidationException", f"LocalPath of output {item['OutputName']} is required.")
            places.append(("output", item["OutputName"], local))
    for label, name, local in places:
        normal = container_path(local, PROCESSING_ROOT)
        if normal is None or normal == PROCESSING_ROOT:
            raise ServiceError("ValidationException", f"LocalPath {local[:256]} of {label} {name} must be a path "
                                                      f"under {PROCESSING_ROOT}/.")


class SageMaker(TuningOperations, HostingOperations, TransformOperations, Service):
    name = "sagemaker"

    def __init__(self, emulator: Any) -> None:
        super().__init__(emulator)
        # Admission to the local instance quota: checking the free instances and starting the job that takes
        # them is one step, so concurrent creates can never admit more than MAX_INSTANCES between them.
        self.admission = threading.RLock()

    # ------------------------------------------------------------ shared
    def _create_job(self, ctx: Context, kind: str, name: str, arn: str, record: dict[str, Any],
                    tags: list[dict[str, str]] | None) -> None:
        """Record the job with its tags (one transaction) and start it; the caller holds ``admission``."""
        if not self.emulator.state.insert(kind, name, arn, record["CreationTime"], record, tag_dict(tags)):
            label = {"TrainingJob": "Training", "ProcessingJob": "Processing"}[kind]
            existing = self.emulator.state.get(kind, name) or {}
            raise ServiceError(
                "ResourceInUse",
                f"{label} job names must be unique within an AWS account and region, and a {label.lower()} "
                f"job with this name already exists ({existing.get(f'{kind}Arn', arn)})",
            )
        self.emulator.jobs.start(kind, name)

    def _check_capacity(self, instance_type: str, count: int, usage: str = "local job") -> None:
        """One quota for every job kind that occupies local instances (training, processing, transform).

        Call it holding ``self.admission`` up to the job's ``jobs.start``: that is what makes it atomic.
        """
        in_use = sum(run.instance_count for kind in ("TrainingJob", "ProcessingJob", "TransformJob")
                     for run in self.emulator.jobs.running(kind))
        if in_use + count > MAX_INSTANCES:
            raise ServiceError(
                "ResourceLimitExceeded",
                f"The account-level service limit '{instance_type} for {usage} usage' is {MAX_INSTANCES} "
                f"Instances, with current utilization of {in_use} Instances and a request delta of {count} "
                "Instances. Wait for running jobs to finish or stop some.",
            )

    def _get(self, kind: str, name: str) -> dict[str, Any]:
        record = self.emulator.state.get(kind, name)
        if record is None:
            raise _not_found()
        return record

    # ------------------------------------------------------------ training jobs
    def CreateTrainingJob(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        name = params["TrainingJobName"]
        # The model leaves these optional for serverless jobs (ServerlessJobConfig); any other job needs them.
        missing = [m for m in ("AlgorithmSpecification", "ResourceConfig", "StoppingCondition") if not params.get(m)]
        if missing:
            shown = "; ".join(f"Value null at '{m[0].lower()}{m[1:]}' failed to satisfy constraint: Member must not "
                              "be null" for m in missing)
            noun = "error" if len(missing) == 1 else "errors"
            raise ServiceError("ValidationException", f"{len(missing)} validation {noun} detected: {shown}")
        spec = dict(params["AlgorithmSpecification"])
        if not spec.get("TrainingImage") and not spec.get("AlgorithmName"):
            raise ServiceError("ValidationException", "Either TrainingImage or AlgorithmName must be specified.")
        check_channels(params.get("InputDataConfig"))
        check_checkpoint(params.get("CheckpointConfig"))
        resources = params["ResourceConfig"]
        count = int(resources.get("InstanceCount") or 1)
        if resources.get("InstanceGroups"):
            raise ServiceError("ValidationException", "Heterogeneous clusters (InstanceGroups) are not supported "
                                                      "by the local emulator; use InstanceType/InstanceCount.")
        hps = params.get("HyperParameters") or {}
        if "MetricDefinitions" not in spec and "sagemaker_program" not in hps and not spec.get("ContainerEntrypoint"):
            spec["MetricDefinitions"] = self._builtin_metrics(spec.get("TrainingImage", ""))
        now = time.time()
        arn = _arn(ctx, "training-job", name)
        record = {
            **{k: v for k, v in params.items() if k not in ("Tags", "AlgorithmSpecification")},
            "AlgorithmSpecification": spec,
            "TrainingJobArn": arn,
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
        }
        record["ResourceConfig"] = {"VolumeSizeInGB": 30, **resources, "InstanceCount": count}
        with self.admission:
            self._check_capacity(resources.get("InstanceType", "ml.m5.xlarge"), count)
            self._create_job(ctx, "TrainingJob", name, arn, record, params.get("Tags"))
        return {"TrainingJobArn": arn}

    @staticmethod
    def _builtin_metrics(image_uri: str) -> list[dict[str, str]]:
        from ..images.registry import resolve

        image = resolve(image_uri)
        if image is None or image.framework != "xgboost":
            return []
        from ..images.xgboost_algorithm.metrics import METRIC_DEFINITIONS

        return list(METRIC_DEFINITIONS)

    def DescribeTrainingJob(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        return self._get("TrainingJob", params["TrainingJobName"])

    def ListTrainingJobs(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        fields = ("TrainingJobName", "TrainingJobArn", "CreationTime", "TrainingEndTime", "LastModifiedTime",
                  "TrainingJobStatus", "SecondaryStatus")
        items, token = list_records(
            self.emulator.state.all("TrainingJob"), params, name_field="TrainingJobName",
            status_field="TrainingJobStatus", summary=lambda r: {k: r[k] for k in fields if k in r},
        )
        return {"TrainingJobSummaries": items, "NextToken": token}

    def StopTrainingJob(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        return self._stop("TrainingJob", params["TrainingJobName"])

    def _stop(self, kind: str, name: str) -> dict[str, Any]:
        from ..runtime.records import transition

        record = self._get(kind, name)
        status = record[f"{kind}Status"]
        if status in ("Completed", "Failed", "Stopped"):
            raise ServiceError("ValidationException", f"The job {name} has already finished (status {status}).")
        secondary = "Stopping" if kind == "TrainingJob" else None
        transition(self.emulator.state, kind, name, "Stopping", secondary)
        if not self.emulator.jobs.stop(kind, name):  # no run behind it (it just ended): nothing left to stop
            end = {"TrainingJob": "TrainingEndTime", "ProcessingJob": "ProcessingEndTime"}[kind]
            transition(self.emulator.state, kind, name, "Stopped", "Stopped" if secondary else None,
                       **{end: time.time()})
        return {}

    # ------------------------------------------------------------ processing jobs
    def CreateProcessingJob(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        name = params["ProcessingJobName"]
        cluster = params["ProcessingResources"]["ClusterConfig"]
        check_processing_paths(params)
        names = [i["InputName"] for i in params.get("ProcessingInputs") or []]
        outputs = (params.get("ProcessingOutputConfig") or {}).get("Outputs") or []
        names += [o["OutputName"] for o in outputs]
        if len(set(names)) != len(names):
            raise ServiceError("ValidationException", "Input and output names must be unique within a processing job.")
        now = time.time()
        arn = _arn(ctx, "processing-job", name)
        record = {
            **{k: v for k, v in params.items() if k != "Tags"},
            "ProcessingJobArn": arn,
            "ProcessingJobStatus": "InProgress",
            "CreationTime": now,
            "LastModifiedTime": now,
        }
        record.setdefault("StoppingCondition", {"MaxRuntimeInSeconds": 86400})
        with self.admission:
            self._check_capacity(cluster.get("InstanceType", "ml.m5.xlarge"), int(cluster.get("InstanceCount") or 1))
            self._create_job(ctx, "ProcessingJob", name, arn, record, params.get("Tags"))
        return {"ProcessingJobArn": arn}

    def DescribeProcessingJob(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        return self._get("ProcessingJob", params["ProcessingJobName"])

    def ListProcessingJobs(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        fields = ("ProcessingJobName", "ProcessingJobArn", "CreationTime", "ProcessingEndTime", "LastModifiedTime",
                  "ProcessingJobStatus", "FailureReason", "ExitMessage")
        items, token = list_records(
            self.emulator.state.all("ProcessingJob"), params, name_field="ProcessingJobName",
            status_field="ProcessingJobStatus", summary=lambda r: {k: r[k] for k in fields if k in r},
        )
        return {"ProcessingJobSummaries": items, "NextToken": token}

    def StopProcessingJob(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        return self._stop("ProcessingJob", params["ProcessingJobName"])

    # ------------------------------------------------------------ tags
    def _require_arn(self, arn: str) -> None:
        if self.emulator.state.kind_of_arn(arn) is None:
            raise ServiceError("ValidationException", f"Resource {arn} does not exist.")

    def AddTags(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        self._require_arn(params["ResourceArn"])
        self.emulator.state.add_tags(params["ResourceArn"], tag_dict(params["Tags"]))
        return {"Tags": params["Tags"]}

    def ListTags(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        self._require_arn(params["ResourceArn"])
        tags = [{"Key": k, "Value": v} for k, v in self.emulator.state.tags(params["ResourceArn"]).items()]
        return {"Tags": tags}

    def DeleteTags(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        self._require_arn(params["ResourceArn"])
        self.emulator.state.remove_tags(params["ResourceArn"], params["TagKeys"])
        return {}
