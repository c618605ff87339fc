"""What each pipeline step type is to the emulator: the control-plane call it makes and how it ends.

A job step (Training, Processing, Transform, Tuning) is a real job created
through the emulator's own ``Create*`` handler (so it is validated, logged and
run like one a learner starts), named as SageMaker names pipeline jobs
(``pipelines-<execution id>-<step>-<10 random characters>``), and watched
until it ends. Model and RegisterModel steps create their resource at once;
RegisterModel creates its model package group when missing (the SageMaker
Developer Guide says it does). A step's properties are its resource's
``Describe*`` response.
"""

from __future__ import annotations

import random
import re
import string
from dataclasses import dataclass
from typing import Any

from ..protocol.errors import ServiceError
from ..services.context import Context, call
from .pipeline_expressions import StepError, as_text
from .records import status_field


@dataclass(frozen=True)
class JobStep:
    """A step type that runs a job of ``kind``."""

    kind: str  # the job's record kind, e.g. "TrainingJob"
    metadata: str  # its key in the step's Metadata, e.g. "TrainingJob"
    max_name: int  # the job name's length limit

    @property
    def create(self) -> str:
        return f"Create{self.kind}"

    @property
    def name_field(self) -> str:
        return f"{self.kind}Name"


JOB_STEPS: dict[str, JobStep] = {
    "Training": JobStep("TrainingJob", "TrainingJob", 63),
    "Processing": JobStep("ProcessingJob", "ProcessingJob", 63),
    "Transform": JobStep("TransformJob", "TransformJob", 63),
    "Tuning": JobStep("HyperParameterTuningJob", "TuningJob", 32),
}
#: job statuses that end a step, and the step status each gives
JOB_ENDS = {"Completed": "Succeeded", "Failed": "Failed", "Stopped": "Stopped"}
_ALNUM = string.ascii_letters + string.digits


def job_name(execution_id: str, step_name: str, limit: int) -> str:
    """``pipelines-<execution id>-<step>-<10 random>`` cut to the name limit (tuning jobs: 32 characters)."""
    suffix = "".join(random.choices(_ALNUM, k=10))
    if limit < 63:
        return f"{execution_id}-{suffix}"[:limit]
    step = re.sub(r"[^A-Za-z0-9]+", "-", step_name).strip("-") or "step"
    head = f"pipelines-{execution_id}-"
    return head + step[: limit - len(head) - len(suffix) - 1] + "-" + suffix


def conform(shape: Any, value: Any) -> Any:
    """``value`` in the type the API member expects: a Float parameter in ``ContainerArguments`` (strings) is
    its text, a String parameter in ``InstanceCount`` its number, as SageMaker converts a pipeline's
    parameters when it builds the step's request. Values that do not convert are left for validation."""
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        return {k: conform(shape.members[k], v) if k in shape.members else v for k, v in value.items()}
    if kind == "list" and isinstance(value, list):
        return [conform(shape.member, v) for v in value]
    if kind == "map" and isinstance(value, dict):
        return {k: conform(shape.value, v) for k, v in value.items()}
    if kind == "string" and isinstance(value, (bool, int, float)):
        return as_text(value)
    try:
        if kind in ("integer", "long") and isinstance(value, (str, float)) and not isinstance(value, bool):
            return int(float(value)) if float(value).is_integer() else value
        if kind in ("float", "double") and isinstance(value, str):
            return float(value)
        if kind == "boolean" and isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
    except ValueError:
        pass
    return value


def service_call(emulator: Any, operation: str, arn: str, params: dict[str, Any]) -> dict[str, Any]:
    """A control-plane call on behalf of the execution, its values in the member types; a refusal fails the
    step with SageMaker's words."""
    params = conform(emulator.sagemaker.model.operation_model(operation).input_shape, params)
    try:
        return call(emulator.sagemaker, operation, Context.internal(arn), params)
    except ServiceError as exc:
        if exc.code == "ResourceLimitExceeded":
            raise
        raise StepError(f"{exc.code}: {exc.message}") from None


def start_job(emulator: Any, spec: JobStep, arguments: dict[str, Any], name: str, arn: str) -> dict[str, Any]:
    """Create the step's job; its resource reference and step metadata."""
    answer = service_call(emulator, spec.create, arn, {**arguments, spec.name_field: name})
    job_arn = next(v for k, v in answer.items() if k.endswith("Arn"))
    return {"resource": [spec.kind, name], "metadata": {spec.metadata: {"Arn": job_arn}}}


def job_outcome(emulator: Any, kind: str, name: str) -> tuple[str, str | None] | None:
    """``(step status, failure reason)`` once the job ended, else None."""
    record = emulator.state.get(kind, name) or {}
    status = JOB_ENDS.get(record.get(status_field(kind), ""))
    if status is None:
        return None
    reason = record.get("FailureReason")
    if status == "Stopped":
        reason = f"The {kind} {name} was stopped."
    return status, reason if status != "Succeeded" else None


def create_model(emulator: Any, arguments: dict[str, Any], name: str, arn: str) -> dict[str, Any]:
    answer = service_call(emulator, "CreateModel", arn, {**arguments, "ModelName": name})
    return {"resource": ["Model", name], "metadata": {"Model": {"Arn": answer["ModelArn"]}}}


def register_model(emulator: Any, arguments: dict[str, Any], arn: str) -> dict[str, Any]:
    """A new version in ``ModelPackageGroupName``, the group created first when it does not exist."""
    from ..services.sagemaker.registry import GROUP, PACKAGE, name_of

    group = arguments.get("ModelPackageGroupName")
    if group and emulator.state.get(GROUP, name_of(group, "model-package-group").lower()) is None:
        service_call(emulator, "CreateModelPackageGroup", arn,
                     {"ModelPackageGroupName": name_of(group, "model-package-group")})
    request = {k: v for k, v in arguments.items() if k != "CertifyForMarketplace" or v}
    package_arn = service_call(emulator, "CreateModelPackage", arn, request)["ModelPackageArn"]
    return {"resource": [PACKAGE, package_arn], "metadata": {"RegisterModel": {"Arn": package_arn}}}


def properties(emulator: Any, resource: list[str] | None) -> dict[str, Any]:
    """A step's properties: its resource's Describe response (a tuning job's also lists its training jobs,
    best first, as ``TrainingJobSummaries``)."""
    if not resource:
        return {}
    from ..services.sagemaker.registry import PACKAGE, find_package

    kind, key = resource
    record = find_package(emulator.state, key) if kind == PACKAGE else emulator.state.get(kind, key)
    if record is None:
        raise StepError(f"The {kind} {key} of this step no longer exists.")
    out = {k: v for k, v in record.items() if not k.startswith("_")}
    if kind == "HyperParameterTuningJob":
        listing = service_call(emulator, "ListTrainingJobsForHyperParameterTuningJob",
                               record["HyperParameterTuningJobArn"],
                               {"HyperParameterTuningJobName": key, "SortBy": "FinalObjectiveMetricValue",
                                "MaxResults": 100})
        out["TrainingJobSummaries"] = listing["TrainingJobSummaries"]
    return out


def stop_job(emulator: Any, kind: str, name: str, arn: str) -> None:
    """Ask a step's job to stop (a job that already ended is left as it is)."""
    try:
        call(emulator.sagemaker, f"Stop{kind}", Context.internal(arn), {f"{kind}Name": name})
    except ServiceError:
        pass
