"""SageMaker batch transform control plane: ``Create/Describe/List/StopTransformJob``.

A mixin of the ``SageMaker`` service. ``CreateTransformJob`` validates what the service
validates at create time (the model exists, ``MaxPayloadInMB`` ≤ 100, ``MaxConcurrentTransforms``
× ``MaxPayloadInMB`` ≤ 100, ``DataProcessing`` only for CSV/JSON with valid JSONPath), records the
job ``InProgress`` in its ``DescribeTransformJob`` shape and hands it to ``runtime.transform``.

Local deviations, each refused with a one-line ``ValidationException`` rather than run wrongly:
``SplitType`` ``RecordIO``/``TFRecord`` (no RecordIO/TFRecord reader), ``S3DataType``
``AugmentedManifestFile``/``Converse``, ``MaxPayloadInMB=0`` (chunked streaming, which the
built-in containers do not support either) and ``DataCaptureConfig.GenerateInferenceId``.
``DataCaptureConfig`` itself is supported (input/output manifests). A duplicate job name is
``ResourceInUse`` (the error botocore's model lists for ``CreateTransformJob``) with the wording
SageMaker uses for training jobs; an unknown job is ``ValidationException`` "Could not find
requested job with name ...". Slices in ``DataProcessing`` filters include their end index, as
the SageMaker documentation states (see ``runtime.jsonpath``).
"""

from __future__ import annotations

import time
from typing import Any

from ..protocol.errors import ServiceError
from ..runtime.jsonpath import JsonPathError, compile_path
from ..runtime.transform_data import PROCESSING_TYPES, media_type
from ..server import Context
from .listing import list_records

KIND = "TransformJob"
MAX_PAYLOAD_MB = 100


def _validation(message: str) -> ServiceError:
    return ServiceError("ValidationException", message)


def tag_dict(tags: list[dict[str, str]] | None) -> dict[str, str]:
    return {t["Key"]: t.get("Value") or "" for t in tags or []}


def _arn(ctx: Context, kind: str, name: str) -> str:
    return f"arn:aws:sagemaker:{ctx.region}:{ctx.account_id}:{kind}/{name.lower()}"


def validate_request(params: dict[str, Any]) -> None:
    """Everything checked before a job is recorded; raises ``ValidationException`` with one line."""
    payload = params.get("MaxPayloadInMB")
    concurrency = params.get("MaxConcurrentTransforms")
    if payload is not None and payload > MAX_PAYLOAD_MB:
        raise _validation(f"1 validation error detected: Value '{payload}' at 'maxPayloadInMB' failed to satisfy "
                          f"constraint: Member must have value less than or equal to {MAX_PAYLOAD_MB}")
    if payload == 0:
        raise _validation("MaxPayloadInMB=0 (chunked streaming of records) is not supported by the local emulator "
                          "or the built-in containers; use a value between 1 and 100.")
    if payload and concurrency and payload * concurrency > MAX_PAYLOAD_MB:
        raise _validation(f"MaxConcurrentTransforms ({concurrency}) x MaxPayloadInMB ({payload}) must not exceed "
                          f"{MAX_PAYLOAD_MB} MB; lower one of them.")
    transform_input = params["TransformInput"]
    split = transform_input.get("SplitType") or "None"
    if split in ("RecordIO", "TFRecord"):
        raise _validation(f"SplitType {split} is not supported by the local emulator (it has no {split} reader); "
                          "use SplitType Line or None.")
    data_type = transform_input["DataSource"]["S3DataSource"]["S3DataType"]
    if data_type not in ("S3Prefix", "ManifestFile"):
        raise _validation(f"S3DataType {data_type} is not supported for transform jobs by the local emulator; "
                          "use S3Prefix or ManifestFile.")
    uri = transform_input["DataSource"]["S3DataSource"]["S3Uri"]
    if not uri.startswith("s3://"):
        raise _validation(f"S3Uri {uri} must be an s3:// URI for the local emulator.")
    if not params["TransformOutput"]["S3OutputPath"].startswith("s3://"):
        raise _validation(f"S3OutputPath {params['TransformOutput']['S3OutputPath']} must be an s3:// URI.")
    capture = params.get("DataCaptureConfig")
    if capture and capture.get("GenerateInferenceId"):
        raise _validation("DataCaptureConfig.GenerateInferenceId is not supported by the local emulator; "
                          "create the job without it.")
    _validate_data_processing(params)


def _validate_data_processing(params: dict[str, Any]) -> None:
    spec = params.get("DataProcessing") or {}
    filters = {}
    for field in ("InputFilter", "OutputFilter"):
        try:
            filters[field] = compile_path(spec.get(field))
        except JsonPathError as exc:
            raise _validation(f"{field} is not a supported JSONPath expression: {exc}") from None
    active = spec.get("JoinSource") == "Input" or any(not f.is_root for f in filters.values())
    if not active:
        return
    content_type = media_type(params["TransformInput"].get("ContentType"))
    accept = media_type(params["TransformOutput"].get("Accept"))
    for label, value in (("ContentType", content_type), ("Accept", accept)):
        if (value or label == "ContentType") and value not in PROCESSING_TYPES:
            raise _validation(f"DataProcessing (InputFilter/OutputFilter/JoinSource) requires {label} to be one of "
                              f"{', '.join(PROCESSING_TYPES)}; got '{value or 'none'}'.")
    if content_type == "text/csv":
        split = params["TransformInput"].get("SplitType") or "None"
        assemble = params["TransformOutput"].get("AssembleWith") or "None"
        if split != "Line" or assemble != "Line":
            raise _validation("DataProcessing with CSV input requires SplitType Line and AssembleWith Line "
                              f"(got SplitType {split}, AssembleWith {assemble}).")


class TransformOperations:
    emulator: Any
    _check_capacity: Any  # SageMaker's shared local-instance quota
    admission: Any  # the lock that makes the quota check and the start one step

    def CreateTransformJob(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        name = params["TransformJobName"]
        if self.emulator.state.get("Model", params["ModelName"]) is None:
            raise _validation(f"Could not find model \"{_arn(ctx, 'model', params['ModelName'])}\".")
        validate_request(params)
        resources = params["TransformResources"]
        arn = _arn(ctx, "transform-job", name)
        now = time.time()
        transform_input = {"CompressionType": "None", "SplitType": "None", **params["TransformInput"]}
        transform_output = {"AssembleWith": "None", **params["TransformOutput"]}
        record = {
            **{k: v for k, v in params.items() if k != "Tags"},
            "TransformInput": transform_input,
            "TransformOutput": transform_output,
            "DataProcessing": {"InputFilter": "$", "OutputFilter": "$", "JoinSource": "None",
                               **(params.get("DataProcessing") or {})},
            "TransformJobArn": arn,
            "TransformJobStatus": "InProgress",
            "CreationTime": now,
            "LastModifiedTime": now,
        }
        with self.admission:  # quota check and start as one step (see SageMaker._check_capacity)
            self._check_capacity(resources["InstanceType"], int(resources["InstanceCount"]), "transform job")
            if not self.emulator.state.insert(KIND, name, arn, now, record, tag_dict(params.get("Tags"))):
                existing = self.emulator.state.get(KIND, name) or {}
                raise ServiceError(
                    "ResourceInUse",
                    "Transform job names must be unique within an AWS account and region, and a transform job "
                    f"with this name already exists ({existing.get('TransformJobArn', arn)})",
                )
            self.emulator.jobs.start(KIND, name)
        return {"TransformJobArn": arn}

    def _transform_job(self, name: str) -> dict[str, Any]:
        record = self.emulator.state.get(KIND, name)
        if record is None:
            raise _validation(f"Could not find requested job with name {name}")
        return record

    def DescribeTransformJob(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        return self._transform_job(params["TransformJobName"])

    def ListTransformJobs(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        fields = ("TransformJobName", "TransformJobArn", "CreationTime", "TransformEndTime", "LastModifiedTime",
                  "TransformJobStatus", "FailureReason")
        items, token = list_records(
            self.emulator.state.all(KIND), params, name_field="TransformJobName", status_field="TransformJobStatus",
            summary=lambda r: {k: r[k] for k in fields if k in r},
        )
        return {"TransformJobSummaries": items, "NextToken": token}

    def StopTransformJob(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        from ..runtime.records import transition

        name = params["TransformJobName"]
        status = self._transform_job(name)["TransformJobStatus"]
        if status in ("Completed", "Failed", "Stopped"):
            raise _validation(f"The transform job {name} has already finished (status {status}).")
        transition(self.emulator.state, KIND, name, "Stopping")
        if not self.emulator.jobs.stop(KIND, name):  # no run behind it (it just ended): nothing left to stop
            transition(self.emulator.state, KIND, name, "Stopped", TransformEndTime=time.time())
        return {}
