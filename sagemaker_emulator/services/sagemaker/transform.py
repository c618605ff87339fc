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

from ...protocol.errors import invalid
from ...runtime.jsonpath import JsonPathError, compile_path
from ...runtime.transform_data import PROCESSING_TYPES, media_type
from ..context import Context
from .common import SageMakerBase, resource_arn

KIND = "TransformJob"
MAX_PAYLOAD_MB = 100


def validate_request(params: dict[str, Any]) -> None:
    """Everything checked before a job is recorded; raises ``ValidationException`` with one line."""
    payload = params.get("MaxPayloadInMB")
    concurrency = params.get("MaxConcurrentTransforms")
    if payload is not None and payload > MAX_PAYLOAD_MB:
        raise invalid(f"1 validation error detected: Value '{payload}' at 'maxPayloadInMB' failed to satisfy "
                      f"constraint: Member must have value less than or equal to {MAX_PAYLOAD_MB}")
    if payload == 0:
        raise invalid("MaxPayloadInMB=0 (chunked streaming of records) is not supported by the local emulator "
                      "or the built-in containers; use a value between 1 and 100.")
    if payload and concurrency and payload * concurrency > MAX_PAYLOAD_MB:
        raise invalid(f"MaxConcurrentTransforms ({concurrency}) x MaxPayloadInMB ({payload}) must not exceed "
                      f"{MAX_PAYLOAD_MB} MB; lower one of them.")
    transform_input = params["TransformInput"]
    split = transform_input.get("SplitType") or "None"
    if split in ("RecordIO", "TFRecord"):
        raise invalid(f"SplitType {split} is not supported by the local emulator (it has no {split} reader); "
                      "use SplitType Line or None.")
    data_type = transform_input["DataSource"]["S3DataSource"]["S3DataType"]
    if data_type not in ("S3Prefix", "ManifestFile"):
        raise invalid(f"S3DataType {data_type} is not supported for transform jobs by the local emulator; "
                      "use S3Prefix or ManifestFile.")
    uri = transform_input["DataSource"]["S3DataSource"]["S3Uri"]
    if not uri.startswith("s3://"):
        raise invalid(f"S3Uri {uri} must be an s3:// URI for the local emulator.")
    if not params["TransformOutput"]["S3OutputPath"].startswith("s3://"):
        raise invalid(f"S3OutputPath {params['TransformOutput']['S3OutputPath']} must be an s3:// URI.")
    capture = params.get("DataCaptureConfig")
    if capture and capture.get("GenerateInferenceId"):
        raise invalid("DataCaptureConfig.GenerateInferenceId is not supported by the local emulator; "
                      "create the job without it.")
    _validate_data_processing(params)


def _validate_data_processing(params: dict[str, Any]) -> None:
    spec = params.get("DataProcessing") or {}
    filters = {}
    for field in ("InputFilter", "OutputFilter"):
        try:
            filters[field] = compile_path(spec.get(field))
        except JsonPathError as exc:
            raise invalid(f"{field} is not a supported JSONPath expression: {exc}") from None
    active = spec.get("JoinSource") == "Input" or any(not f.is_root for f in filters.values())
    if not active:
        return
    content_type = media_type(params["TransformInput"].get("ContentType"))
    accept = media_type(params["TransformOutput"].get("Accept"))
    for label, value in (("ContentType", content_type), ("Accept", accept)):
        if (value or label == "ContentType") and value not in PROCESSING_TYPES:
            raise invalid(f"DataProcessing (InputFilter/OutputFilter/JoinSource) requires {label} to be one of "
                          f"{', '.join(PROCESSING_TYPES)}; got '{value or 'none'}'.")
    if content_type == "text/csv":
        split = params["TransformInput"].get("SplitType") or "None"
        assemble = params["TransformOutput"].get("AssembleWith") or "None"
        if split != "Line" or assemble != "Line":
            raise invalid("DataProcessing with CSV input requires SplitType Line and AssembleWith Line "
                          f"(got SplitType {split}, AssembleWith {assemble}).")


class TransformOperations(SageMakerBase):
    """Batch transform jobs (the runtime is ``runtime.transform``)."""

    def CreateTransformJob(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        name = params["TransformJobName"]
        if self.emulator.state.get("Model", params["ModelName"]) is None:
            raise invalid(f"Could not find model \"{resource_arn(ctx, 'model', params['ModelName'])}\".")
        validate_request(params)
        resources = params["TransformResources"]
        job_arn = resource_arn(ctx, "transform-job", name)
        now = time.time()
        transform_input = {"CompressionType": "None", "SplitType": "None", **params["TransformInput"]}
        transform_output = {"AssembleWith": "None", **params["TransformOutput"]}
        record = {
            **{k: v for k, v in params.items() if k != "Tags"},
            "TransformInput": transform_input,
            "TransformOutput": transform_output,
            "DataProcessing": {"InputFilter": "$", "OutputFilter": "$", "JoinSource": "None",
                               **(params.get("DataProcessing") or {})},
            "TransformJobArn": job_arn,
            "TransformJobStatus": "InProgress",
            "CreationTime": now,
            "LastModifiedTime": now,
        }
        self._admit_job(KIND, "Transform", record, params.get("Tags"), resources["InstanceType"],
                        int(resources["InstanceCount"]), "transform job")
        return {"TransformJobArn": job_arn}

    def _transform_job(self, name: str) -> dict[str, Any]:
        record = self.emulator.state.get(KIND, name)
        if record is None:
            raise invalid(f"Could not find requested job with name {name}")
        return record

    def DescribeTransformJob(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        return self._transform_job(params["TransformJobName"])

    def ListTransformJobs(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        fields = ("TransformJobName", "TransformJobArn", "CreationTime", "TransformEndTime", "LastModifiedTime",
                  "TransformJobStatus", "FailureReason")
        return self._list(KIND, params, "TransformJobSummaries", fields, "TransformJobStatus")

    def StopTransformJob(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        name = params["TransformJobName"]
        return self._stop_job(KIND, name, self._transform_job(name),
                              "The transform job {name} has already finished (status {status}).")
