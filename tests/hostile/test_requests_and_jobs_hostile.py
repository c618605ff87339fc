"""Hostile requests to the control plane, and jobs that try to leave their rooms.

Every malformed request must be a 4xx in the service's protocol (``SerializationException`` for a
member of the wrong type, ``ValidationException`` for a broken constraint, ``ValidationError`` for the
query services) that names the member, and must leave nothing behind: no job record, no tag, no
process. Paths a request carries must never let the daemon read or write outside the job's directory,
archives from S3 must not unpack outside their destination, the state directory is private, and the
local instance quota holds when many creates arrive at once.
"""

from __future__ import annotations

import copy
import io
import json
import os
import stat
import tarfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import botocore.config
import pytest
from botocore.exceptions import ClientError
from jobs_common import SKLEARN_IMAGE, TERMINAL, XGBOOST_IMAGE
from rawclient import RawClient

from sagemaker_emulator.app import Emulator
from sagemaker_emulator.config import ROLE_ARN

RUN = uuid.uuid4().hex[:6]
BUCKET = f"hostile-jobs-{RUN}"
QUOTA = 8


def unique(prefix: str) -> str:
    return f"{prefix}-{RUN}-{uuid.uuid4().hex[:6]}"


# --------------------------------------------------------------------------- requests that would succeed


def training_request(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "TrainingJobName": name, "RoleArn": ROLE_ARN,
        "AlgorithmSpecification": {"TrainingImage": SKLEARN_IMAGE, "TrainingInputMode": "File",
                                   "ContainerEntrypoint": ["python3", "-c", "print('hello')"]},
        "InputDataConfig": [{"ChannelName": "train", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/data/"}}}],
        "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/out"},
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
        "HyperParameters": {"alpha": "1"},
        "Tags": [{"Key": "team", "Value": "ml"}],
        **extra,
    }


def processing_request(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "ProcessingJobName": name, "RoleArn": ROLE_ARN,
        "AppSpecification": {"ImageUri": SKLEARN_IMAGE, "ContainerEntrypoint": ["python3", "-c", "print(1)"]},
        "ProcessingResources": {"ClusterConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1,
                                                  "VolumeSizeInGB": 1}},
        "ProcessingInputs": [{"InputName": "data", "S3Input": {
            "S3Uri": f"s3://{BUCKET}/data/", "LocalPath": "/opt/ml/processing/input", "S3DataType": "S3Prefix",
            "S3InputMode": "File"}}],
        "ProcessingOutputConfig": {"Outputs": [{"OutputName": "out", "S3Output": {
            "S3Uri": f"s3://{BUCKET}/processed/{name}", "LocalPath": "/opt/ml/processing/output",
            "S3UploadMode": "EndOfJob"}}]},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
        "Tags": [{"Key": "team", "Value": "ml"}],
        **extra,
    }


def transform_request(name: str, model: str) -> dict[str, Any]:
    return {
        "TransformJobName": name, "ModelName": model, "MaxPayloadInMB": 6, "MaxConcurrentTransforms": 1,
        "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix",
                                                           "S3Uri": f"s3://{BUCKET}/data/"}},
                           "ContentType": "text/csv", "SplitType": "Line"},
        "TransformOutput": {"S3OutputPath": f"s3://{BUCKET}/transformed", "AssembleWith": "Line"},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
        "Tags": [{"Key": "team", "Value": "ml"}],
    }


def tuning_request(name: str) -> dict[str, Any]:
    return {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": {
            "Strategy": "Random",
            "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "validation:auc"},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 1, "MaxParallelTrainingJobs": 1},
            "ParameterRanges": {"IntegerParameterRanges": [{"Name": "max_depth", "MinValue": "1",
                                                            "MaxValue": "5"}]},
        },
        "TrainingJobDefinition": {
            "AlgorithmSpecification": {"TrainingImage": XGBOOST_IMAGE, "TrainingInputMode": "File"},
            "RoleArn": ROLE_ARN,
            "InputDataConfig": [{"ChannelName": "train", "DataSource": {"S3DataSource": {
                "S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/data/"}}}],
            "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/tuning"},
            "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 1},
            "StoppingCondition": {"MaxRuntimeInSeconds": 600},
            "StaticHyperParameters": {"num_round": "1"},
        },
        "Tags": [{"Key": "team", "Value": "ml"}],
    }


def model_request(name: str) -> dict[str, Any]:
    return {"ModelName": name, "ExecutionRoleArn": ROLE_ARN, "PrimaryContainer": {"Image": XGBOOST_IMAGE},
            "Tags": [{"Key": "team", "Value": "ml"}]}


def config_request(name: str, model: str) -> dict[str, Any]:
    return {"EndpointConfigName": name, "ProductionVariants": [
        {"VariantName": "AllTraffic", "ModelName": model, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large",
         "InitialVariantWeight": 1.0}], "Tags": [{"Key": "team", "Value": "ml"}]}


def endpoint_request(name: str, config: str) -> dict[str, Any]:
    return {"EndpointName": name, "EndpointConfigName": config, "Tags": [{"Key": "team", "Value": "ml"}]}


@pytest.fixture(scope="module")
def bucket(s3) -> str:
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="data/part-0.csv", Body=b"1,2,3\n4,5,6\n")
    return BUCKET


@pytest.fixture(scope="module")
def hosting(sm, bucket) -> dict[str, str]:
    """A model and an endpoint configuration (nothing deployed) for the creates that refer to them."""
    model, config = unique("hostile-model"), unique("hostile-config")
    sm.create_model(**model_request(model))
    sm.create_endpoint_config(**config_request(config, model))
    return {"model": model, "config": config, "model_arn": sm.describe_model(ModelName=model)["ModelArn"]}


# --------------------------------------------------------------------------- 1. types, validated whole


def mutate(body: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    """A deep copy of ``body`` with the member at ``path`` (keys and list indexes) set to ``value``."""
    out = copy.deepcopy(body)
    target: Any = out
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return out


#: (member path, wrong value, the member named in the error) for any request with these members
WRONG_TYPES: list[tuple[tuple[Any, ...], Any, str]] = [
    (("Tags",), "x", "tags"),                                            # string for a list
    (("Tags",), {"Key": "a", "Value": "b"}, "tags"),                     # object for a list
    (("Tags", 0), ["team", "ml"], "tags.1.member"),                      # list for a structure
    (("Tags", 0, "Value"), 5, "tags.1.member.value"),                    # number for a string
    (("Tags", 0, "Value"), "\ud800", "tags.1.member.value"),             # no UTF-8 text at all
    (("Tags", 0), None, "tags.1.member"),                                # null list member
]

KINDS: dict[str, dict[str, Any]] = {
    "training": {
        "op": "CreateTrainingJob", "name_member": "TrainingJobName", "request": training_request,
        "describe": ("DescribeTrainingJob", "TrainingJobName"), "list": ("ListTrainingJobs", "TrainingJobSummaries"),
        "wrong": [
            (("ResourceConfig", "InstanceCount"), "2", "resourceConfig.instanceCount"),
            (("ResourceConfig", "InstanceCount"), True, "resourceConfig.instanceCount"),
            (("ResourceConfig", "InstanceCount"), 2**31, "resourceConfig.instanceCount"),
            (("ResourceConfig", "InstanceCount"), 1.5, "resourceConfig.instanceCount"),
            (("ResourceConfig",), [], "resourceConfig"),
            (("StoppingCondition", "MaxRuntimeInSeconds"), float("inf"), "stoppingCondition.maxRuntimeInSeconds"),
            (("StoppingCondition", "MaxRuntimeInSeconds"), float("nan"), "stoppingCondition.maxRuntimeInSeconds"),
            (("RoleArn",), 123, "roleArn"),
            (("EnableNetworkIsolation",), "yes", "enableNetworkIsolation"),
            (("HyperParameters",), ["alpha", "1"], "hyperParameters"),
            (("HyperParameters", "alpha"), 1, "hyperParameters.alpha.value"),
            (("HyperParameters", "alpha"), None, "hyperParameters.alpha.value"),
            (("InputDataConfig", 0, "DataSource", "S3DataSource", "S3Uri"), {"u": 1},
             "inputDataConfig.1.member.dataSource.s3DataSource.s3Uri"),
            (("AlgorithmSpecification", "ContainerEntrypoint"), "python3",
             "algorithmSpecification.containerEntrypoint"),
            (("OutputDataConfig",), "s3://x", "outputDataConfig"),
            *WRONG_TYPES,
        ],
    },
    "processing": {
        "op": "CreateProcessingJob", "name_member": "ProcessingJobName", "request": processing_request,
        "describe": ("DescribeProcessingJob", "ProcessingJobName"),
        "list": ("ListProcessingJobs", "ProcessingJobSummaries"),
        "wrong": [
            (("ProcessingResources", "ClusterConfig", "InstanceCount"), "1",
             "processingResources.clusterConfig.instanceCount"),
            (("ProcessingInputs",), {"InputName": "x"}, "processingInputs"),
            (("ProcessingInputs", 0, "S3Input", "LocalPath"), ["/opt/ml/processing/x"],
             "processingInputs.1.member.s3Input.localPath"),
            (("Environment",), "A=1", "environment"),
            (("StoppingCondition", "MaxRuntimeInSeconds"), -(2**63) - 1, "stoppingCondition.maxRuntimeInSeconds"),
            *WRONG_TYPES,
        ],
    },
    "transform": {
        "op": "CreateTransformJob", "name_member": "TransformJobName", "request": transform_request,
        "describe": ("DescribeTransformJob", "TransformJobName"),
        "list": ("ListTransformJobs", "TransformJobSummaries"),
        "wrong": [
            (("MaxPayloadInMB",), "6", "maxPayloadInMB"),
            (("TransformResources", "InstanceCount"), False, "transformResources.instanceCount"),
            (("TransformInput", "DataSource"), "s3://x", "transformInput.dataSource"),
            (("TransformOutput",), [], "transformOutput"),
            *WRONG_TYPES,
        ],
    },
    "tuning": {
        "op": "CreateHyperParameterTuningJob", "name_member": "HyperParameterTuningJobName", "request": tuning_request,
        "describe": ("DescribeHyperParameterTuningJob", "HyperParameterTuningJobName"),
        "list": ("ListHyperParameterTuningJobs", "HyperParameterTuningJobSummaries"),
        "wrong": [
            (("HyperParameterTuningJobConfig", "ResourceLimits", "MaxNumberOfTrainingJobs"), "1",
             "hyperParameterTuningJobConfig.resourceLimits.maxNumberOfTrainingJobs"),
            (("HyperParameterTuningJobConfig", "ParameterRanges", "IntegerParameterRanges", 0, "MinValue"), 1,
             "hyperParameterTuningJobConfig.parameterRanges.integerParameterRanges.1.member.minValue"),
            (("TrainingJobDefinition", "StaticHyperParameters"), [], "trainingJobDefinition.staticHyperParameters"),
            *WRONG_TYPES,
        ],
    },
    "model": {
        "op": "CreateModel", "name_member": "ModelName", "request": model_request,
        "describe": ("DescribeModel", "ModelName"), "list": ("ListModels", "Models"),
        "wrong": [
            (("PrimaryContainer",), [XGBOOST_IMAGE], "primaryContainer"),
            (("PrimaryContainer", "Environment"), {"A": 1}, "primaryContainer.environment.A.value"),
            (("EnableNetworkIsolation",), 1, "enableNetworkIsolation"),
            *WRONG_TYPES,
        ],
    },
    "endpoint-config": {
        "op": "CreateEndpointConfig", "name_member": "EndpointConfigName", "request": config_request,
        "describe": ("DescribeEndpointConfig", "EndpointConfigName"),
        "list": ("ListEndpointConfigs", "EndpointConfigs"),
        "wrong": [
            (("ProductionVariants", 0, "InitialVariantWeight"), "1.0",
             "productionVariants.1.member.initialVariantWeight"),
            (("ProductionVariants", 0, "InitialInstanceCount"), 1.25,
             "productionVariants.1.member.initialInstanceCount"),
            (("ProductionVariants",), {"VariantName": "x"}, "productionVariants"),
            *WRONG_TYPES,
        ],
    },
    "endpoint": {
        "op": "CreateEndpoint", "name_member": "EndpointName", "request": endpoint_request,
        "describe": ("DescribeEndpoint", "EndpointName"), "list": ("ListEndpoints", "Endpoints"),
        "wrong": [(("EndpointConfigName",), ["x"], "endpointConfigName"), *WRONG_TYPES],
    },
}


def _request_for(kind: str, name: str, hosting: dict[str, str]) -> dict[str, Any]:
    make: Callable[..., dict[str, Any]] = KINDS[kind]["request"]
    if kind in ("transform", "endpoint-config"):
        return make(name, hosting["model"])
    if kind == "endpoint":
        return make(name, hosting["config"])
    return make(name)


def _assert_absent(raw: RawClient, kind: str, name: str) -> None:
    """Describe says it is not there and List does not show it: the refused create wrote nothing."""
    describe, member = KINDS[kind]["describe"]
    resp = raw.json_call(describe, {member: name})
    assert resp.status == 400 and resp.error_code in ("ValidationException", "ResourceNotFound"), resp.body
    list_op, key = KINDS[kind]["list"]
    resp = raw.json_call(list_op, {"NameContains": name, "MaxResults": 100})
    assert resp.status == 200 and resp.json()[key] == [], resp.body


CASES = [(kind, path, value, member) for kind, spec in KINDS.items() for path, value, member in spec["wrong"]]


@pytest.mark.parametrize(("kind", "path", "value", "member"), CASES,
                         ids=[f"{c[0]}-{'.'.join(map(str, c[1]))}-{type(c[2]).__name__}" for c in CASES])
def test_create_with_a_member_of_the_wrong_type_is_refused_and_writes_nothing(
        raw, hosting, still_serving, kind, path, value, member):
    name = unique(f"types-{kind}")
    body = mutate(_request_for(kind, name, hosting), path, value)
    resp = raw.json_call(KINDS[kind]["op"], json.dumps(body).encode())
    assert resp.status == 400, resp.body
    error = resp.json()
    assert error["__type"] in ("SerializationException", "ValidationException", "ResourceLimitExceeded"), error
    if member is not None:
        assert f"'{member}'" in error["message"], error["message"]
    assert "\n" not in error["message"]
    _assert_absent(raw, kind, name)


def test_the_valid_requests_of_the_table_are_accepted(raw, sm, hosting, still_serving):
    """The table's requests fail only because of their one wrong member: unchanged, each create succeeds."""
    for kind in ("model", "endpoint-config"):
        name = unique(f"valid-{kind}")
        resp = raw.json_call(KINDS[kind]["op"], _request_for(kind, name, hosting))
        assert resp.status == 200, resp.body
    name = unique("valid-processing")
    resp = raw.json_call("CreateProcessingJob", _request_for("processing", name, hosting))
    assert resp.status == 200, resp.body
    _wait(lambda: sm.describe_processing_job(ProcessingJobName=name)["ProcessingJobStatus"] in TERMINAL)


def test_add_tags_of_the_wrong_type_changes_no_tags(raw, sm, hosting, still_serving):
    arn = hosting["model_arn"]
    before = sm.list_tags(ResourceArn=arn)["Tags"]
    for tags, member in (("x", "tags"), ([{"Key": "k", "Value": 7}], "tags.1.member.value"),
                         ([{"Key": "k", "Value": "v"}, None], "tags.2.member"),
                         ([{"Key": ["k"], "Value": "v"}], "tags.1.member.key")):
        resp = raw.json_call("AddTags", {"ResourceArn": arn, "Tags": tags})
        assert resp.status == 400 and f"'{member}'" in resp.json()["message"], resp.body
    assert sm.list_tags(ResourceArn=arn)["Tags"] == before


def test_a_tags_string_no_longer_leaves_a_zombie_training_job(raw, sm, still_serving):
    """The original bug: ``"Tags": "x"`` answered 500 and left the job InProgress with no process."""
    name = unique("zombie")
    resp = raw.json_call("CreateTrainingJob", {**training_request(name), "Tags": "x"})
    assert (resp.status, resp.error_code) == (400, "SerializationException"), resp.body
    assert resp.json()["message"] == "STRING_VALUE can not be converted to a List at 'tags'."
    names = [s["TrainingJobName"] for s in sm.list_training_jobs(NameContains=name)["TrainingJobSummaries"]]
    assert names == []


@pytest.mark.parametrize("value", ["not a date", True, 1e30, [1], {"t": 1}])
def test_timestamps_that_are_not_timestamps(raw, still_serving, value):
    resp = raw.json_call("ListTrainingJobs", json.dumps({"CreationTimeAfter": value}).encode())
    assert (resp.status, resp.error_code) == (400, "SerializationException"), resp.body
    assert "'creationTimeAfter'" in resp.json()["message"]


def test_timestamps_as_epoch_seconds_or_iso_text_are_read(raw, still_serving):
    for value in (0, 1700000000.5, "2024-01-01T00:00:00Z"):
        resp = raw.json_call("ListTrainingJobs", {"CreationTimeAfter": value})
        assert resp.status == 200, resp.body


@pytest.mark.parametrize("body", [
    b"[" * 50_000 + b"]" * 50_000,
    b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    b'{"TrainingJobName":"x","Tags":' + b"[" * 70 + b"]" * 70 + b"}",
    b"{not json",
    b"[1, 2]",
    b'"a string"',
    b"42",
    b"null",
    b'{"MaxResults": ' + b"9" * 5000 + b"}",
    b'{"TrainingJobName": "\xff\xfe"}',
], ids=["deep-lists", "deep-objects", "70-deep", "not-json", "array", "string", "number", "null", "5000-digits",
        "bad-utf8"])
def test_bodies_that_are_not_a_json_object_are_serialization_errors(raw, still_serving, body):
    for target in ("CreateTrainingJob", "ListTrainingJobs"):
        resp = raw.json_call(target, body)
        assert (resp.status, resp.error_code) == (400, "SerializationException"), resp.body
    resp = raw.json_call("DescribeLogGroups", body, service="logs", prefix="Logs_20140328")
    assert (resp.status, resp.error_code) == (400, "SerializationException"), resp.body


@pytest.mark.parametrize(("service", "target", "body", "member"), [
    ("sagemaker", "ListTrainingJobs", b'{"MaxResults": NaN}', "maxResults"),
    ("sagemaker", "CreateTrainingJob", b'{"StoppingCondition": {"MaxRuntimeInSeconds": Infinity}}',
     "stoppingCondition.maxRuntimeInSeconds"),
    ("sagemaker", "UpdateEndpointWeightsAndCapacities", b'{"EndpointName": "e", "DesiredWeightsAndCapacities": '
     b'[{"VariantName": "v", "DesiredWeight": -Infinity}]}', "desiredWeightsAndCapacities.1.member.desiredWeight"),
    ("sagemaker", "UpdateEndpointWeightsAndCapacities", b'{"EndpointName": "e", "DesiredWeightsAndCapacities": '
     b'[{"VariantName": "v", "DesiredWeight": 1e400}]}', "desiredWeightsAndCapacities.1.member.desiredWeight"),
    ("logs", "DescribeLogGroups", b'{"limit": NaN}', "limit"),
    ("logs", "PutLogEvents", b'{"logGroupName": "g", "logStreamName": "s", "logEvents": '
     b'[{"timestamp": Infinity, "message": "m"}]}', "logEvents.1.member.timestamp"),
], ids=["nan-integer", "infinity-integer", "minus-infinity-double", "1e400-double", "logs-nan", "logs-infinity"])
def test_non_finite_numbers_are_refused_naming_the_member(raw, still_serving, service, target, body, member):
    prefix = "Logs_20140328" if service == "logs" else "SageMaker"
    resp = raw.json_call(target, body, service=service, prefix=prefix)
    assert (resp.status, resp.error_code) == (400, "SerializationException"), resp.body
    assert f"'{member}'" in resp.json()["message"], resp.body


def test_deep_recursive_shapes_are_bounded(raw, still_serving):
    """``Search``'s ``SearchExpression`` nests itself: a deep one is refused, never a RecursionError."""
    leaf = '{"Filters":[{"Name":"TrainingJobName","Operator":"Equals","Value":"x"}]}'
    expression = '{"SubExpressions":[' * 2000 + leaf + "]}" * 2000
    resp = raw.json_call("Search", f'{{"Resource":"TrainingJob","SearchExpression":{expression}}}'.encode())
    assert (resp.status, resp.error_code) == (400, "SerializationException"), resp.body


@pytest.mark.parametrize(("service", "query", "member"), [
    ("iam", "Action=SimulatePrincipalPolicy&Version=2010-05-08&PolicySourceArn=" + ROLE_ARN.replace("/", "%2F")
     + "&ActionNames.member.1=s3%3AGetObject&MaxItems=abc", "MaxItems"),
    ("iam", "Action=SimulatePrincipalPolicy&Version=2010-05-08&PolicySourceArn=" + ROLE_ARN.replace("/", "%2F")
     + "&ActionNames.member.1=s3%3AGetObject&MaxItems=99999999999", "MaxItems"),
    ("sts", "Action=AssumeRole&Version=2011-06-15&RoleArn=" + ROLE_ARN.replace("/", "%2F")
     + "&RoleSessionName=s&DurationSeconds=1e3", "DurationSeconds"),
])
def test_query_values_of_the_wrong_type_are_validation_errors(raw, still_serving, service, query, member):
    resp = raw.request("POST", "/", service=service, body=query.encode(),
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert (resp.status, resp.error_code) == (400, "ValidationError"), resp.body
    assert member[:1].lower() + member[1:] in resp.body.decode() or member in resp.body.decode()


def test_query_constraints_are_validation_errors(raw, still_serving):
    body = b"Action=GetRole&Version=2010-05-08&RoleName=" + b"r" * 100
    resp = raw.request("POST", "/", service="iam", body=body,
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert (resp.status, resp.error_code) == (400, "ValidationError"), resp.body
    assert "'roleName'" in resp.body.decode()


# --------------------------------------------------------------------------- 2. paths stay in their rooms


@pytest.mark.parametrize(("where", "local"), [
    ("input", "/opt/ml/processing/../../etc"),
    ("input", "/etc/cron.d"),
    ("input", "opt/ml/processing/input"),
    ("input", "/opt/ml/processing"),
    ("output", "/opt/ml/processing/../../../tmp/out"),
    ("output", "/opt/ml/processingx/out"),
    ("output", "/tmp"),
])
def test_processing_local_paths_outside_opt_ml_processing_are_refused(raw, bucket, still_serving, where, local):
    name = unique("paths")
    body = processing_request(name)
    if where == "input":
        body["ProcessingInputs"][0]["S3Input"]["LocalPath"] = local
    else:
        body["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["LocalPath"] = local
    resp = raw.json_call("CreateProcessingJob", body)
    assert (resp.status, resp.error_code) == (400, "ValidationException"), resp.body
    assert "/opt/ml/processing/" in resp.json()["message"] and local in resp.json()["message"]
    _assert_absent(raw, "processing", name)


def test_processing_local_paths_that_normalise_inside_are_accepted(raw, sm, bucket, still_serving):
    name = unique("paths-ok")
    body = processing_request(name)
    body["ProcessingInputs"][0]["S3Input"]["LocalPath"] = "/opt/ml/processing/x/../input"
    resp = raw.json_call("CreateProcessingJob", body)
    assert resp.status == 200, resp.body
    job = _wait(lambda: _terminal(sm.describe_processing_job(ProcessingJobName=name), "ProcessingJobStatus"))
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")


@pytest.mark.parametrize(("member", "value"), [
    (("InputDataConfig", 0, "ChannelName"), ".."),
    (("InputDataConfig", 0, "ChannelName"), "."),
    (("CheckpointConfig",), {"S3Uri": f"s3://{BUCKET}/ckpt", "LocalPath": "/etc"}),
    (("CheckpointConfig",), {"S3Uri": f"s3://{BUCKET}/ckpt", "LocalPath": "/opt/ml/../../root"}),
    (("CheckpointConfig",), {"S3Uri": f"s3://{BUCKET}/ckpt", "LocalPath": "checkpoints"}),
])
def test_training_paths_that_leave_the_job_are_refused(raw, bucket, still_serving, member, value):
    name = unique("train-paths")
    resp = raw.json_call("CreateTrainingJob", mutate(training_request(name), member, value))
    assert (resp.status, resp.error_code) == (400, "ValidationException"), resp.body
    _assert_absent(raw, "training", name)
    tuning = tuning_request(unique("tune-paths"))
    tuning["TrainingJobDefinition"] = mutate(tuning["TrainingJobDefinition"], member, value)
    resp = raw.json_call("CreateHyperParameterTuningJob", tuning)
    assert (resp.status, resp.error_code) == (400, "ValidationException"), resp.body
    _assert_absent(raw, "tuning", tuning["HyperParameterTuningJobName"])


def _evil_tarball(vector: str, outside: Path) -> bytes:
    """A ``train.py`` plus one member that would land outside the extraction directory."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        def add(name: str, data: bytes = b"pwned", kind: bytes = tarfile.REGTYPE, link: str = "") -> None:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, link
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)

        add("train.py", b"print('training')\n")
        if vector == "dotdot":
            add("../" * 30 + str(outside / "dotdot.txt").lstrip("/"))
        elif vector == "absolute":
            add(str(outside / "absolute.txt"))
        elif vector == "symlink":
            add("escape", kind=tarfile.SYMTYPE, link=str(outside))
            add("escape/through-link.txt")
        elif vector == "relative-symlink":
            add("escape", kind=tarfile.SYMTYPE, link="../" * 30 + str(outside).lstrip("/"))
            add("escape/through-link.txt")
        elif vector == "hardlink":
            (outside / "victim.txt").write_text("victim")
            add("victim", kind=tarfile.LNKTYPE, link=str(outside / "victim.txt"))
    return buffer.getvalue()


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    return folder


@pytest.mark.parametrize("vector", ["dotdot", "absolute", "symlink", "relative-symlink", "hardlink"])
def test_a_sourcedir_tarball_cannot_write_outside_the_job(raw, sm, s3, bucket, outside, still_serving, vector):
    key = f"code/{unique('evil')}/sourcedir.tar.gz"
    s3.put_object(Bucket=bucket, Key=key, Body=_evil_tarball(vector, outside))
    before = sorted(p.name for p in outside.iterdir())
    name = unique("evil-src")
    body = training_request(name, HyperParameters={"sagemaker_program": '"train.py"',
                                                   "sagemaker_submit_directory": json.dumps(f"s3://{bucket}/{key}")})
    body["AlgorithmSpecification"] = {"TrainingImage": SKLEARN_IMAGE, "TrainingInputMode": "File"}
    resp = raw.json_call("CreateTrainingJob", body)
    assert resp.status == 200, resp.body
    job = _wait(lambda: _terminal(sm.describe_training_job(TrainingJobName=name), "TrainingJobStatus"))
    if vector != "absolute":  # the data filter extracts "/x/y" as "x/y", inside the destination
        assert job["TrainingJobStatus"] == "Failed"
        assert job["FailureReason"].startswith("ClientError: Could not extract the archive"), job["FailureReason"]
    assert sorted(p.name for p in outside.iterdir()) == before
    if vector == "hardlink":
        assert (outside / "victim.txt").read_text() == "victim"


def test_a_model_tarball_cannot_write_outside_the_endpoint(raw, sm, s3, bucket, outside, still_serving):
    key = f"models/{unique('evil')}/model.tar.gz"
    s3.put_object(Bucket=bucket, Key=key, Body=_evil_tarball("dotdot", outside))
    model, config, endpoint = unique("evil-model"), unique("evil-config"), unique("evil-endpoint")
    sm.create_model(ModelName=model, ExecutionRoleArn=ROLE_ARN,
                    PrimaryContainer={"Image": XGBOOST_IMAGE, "ModelDataUrl": f"s3://{bucket}/{key}"})
    sm.create_endpoint_config(**config_request(config, model))
    sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=config)
    desc = _wait(lambda: _terminal(sm.describe_endpoint(EndpointName=endpoint), "EndpointStatus",
                                   ("InService", "Failed")))
    assert desc["EndpointStatus"] == "Failed"
    assert "Could not extract model data" in desc["FailureReason"]
    assert list(outside.iterdir()) == []
    sm.delete_endpoint(EndpointName=endpoint)


@pytest.mark.parametrize("location", ["{outside}", "file://{outside}", "/opt/ml/../..{outside}"])
def test_code_is_never_taken_from_a_host_folder(raw, sm, bucket, outside, still_serving, location):
    """``sagemaker_submit_directory``/``SAGEMAKER_SUBMIT_DIRECTORY`` naming a host folder: the job fails, the
    endpoint fails, and nothing of that folder is copied or imported."""
    (outside / "train.py").write_text("print('host code')\n")
    value = location.format(outside=outside)
    name = unique("host-code")
    body = training_request(name, HyperParameters={"sagemaker_program": '"train.py"',
                                                   "sagemaker_submit_directory": json.dumps(value)})
    body["AlgorithmSpecification"] = {"TrainingImage": SKLEARN_IMAGE, "TrainingInputMode": "File"}
    assert raw.json_call("CreateTrainingJob", body).status == 200
    job = _wait(lambda: _terminal(sm.describe_training_job(TrainingJobName=name), "TrainingJobStatus"))
    assert job["TrainingJobStatus"] == "Failed"
    assert job["FailureReason"].startswith("ClientError: The hyperparameter sagemaker_submit_directory")
    model, config, endpoint = unique("host-model"), unique("host-config"), unique("host-endpoint")
    sm.create_model(ModelName=model, ExecutionRoleArn=ROLE_ARN, PrimaryContainer={
        "Image": SKLEARN_IMAGE, "Environment": {"SAGEMAKER_PROGRAM": "train.py", "SAGEMAKER_SUBMIT_DIRECTORY": value}})
    sm.create_endpoint_config(**config_request(config, model))
    sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=config)
    desc = _wait(lambda: _terminal(sm.describe_endpoint(EndpointName=endpoint), "EndpointStatus",
                                   ("InService", "Failed")))
    assert desc["EndpointStatus"] == "Failed" and "SAGEMAKER_SUBMIT_DIRECTORY" in desc["FailureReason"]
    sm.delete_endpoint(EndpointName=endpoint)


SYMLINK_OUT = """
import os, shutil, sys
target, secret = sys.argv[1], sys.argv[2]
shutil.rmtree(target, ignore_errors=True)
os.symlink(secret, target)
print("replaced", target, flush=True)
"""


def test_a_processing_output_turned_into_a_link_uploads_nothing_from_outside(raw, sm, s3, bucket, outside,
                                                                              still_serving):
    (outside / "secret.txt").write_text("do not upload")
    name = unique("link-out")
    body = processing_request(name)
    body["AppSpecification"]["ContainerEntrypoint"] = ["python3", "-c", SYMLINK_OUT, "/opt/ml/processing/output",
                                                       str(outside)]
    resp = raw.json_call("CreateProcessingJob", body)
    assert resp.status == 200, resp.body
    job = _wait(lambda: _terminal(sm.describe_processing_job(ProcessingJobName=name), "ProcessingJobStatus"))
    assert job["ProcessingJobStatus"] == "Failed"
    assert job["FailureReason"].startswith("ClientError: ") and "link" in job["FailureReason"]
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"processed/{name}").get("Contents", [])
    assert listed == []


def test_a_model_directory_turned_into_a_link_uploads_nothing_from_outside(raw, sm, s3, bucket, outside,
                                                                           still_serving):
    (outside / "secret.txt").write_text("do not upload")
    name = unique("link-model")
    body = training_request(name)
    body["AlgorithmSpecification"]["ContainerEntrypoint"] = ["python3", "-c", SYMLINK_OUT, "/opt/ml/model",
                                                             str(outside)]
    resp = raw.json_call("CreateTrainingJob", body)
    assert resp.status == 200, resp.body
    job = _wait(lambda: _terminal(sm.describe_training_job(TrainingJobName=name), "TrainingJobStatus"))
    assert job["TrainingJobStatus"] == "Failed", job
    assert "ModelArtifacts" not in job or not job["ModelArtifacts"].get("S3ModelArtifacts")
    assert s3.list_objects_v2(Bucket=bucket, Prefix=f"out/{name}").get("Contents", []) == []


# --------------------------------------------------------------------------- 3. the state directory is private


def test_a_new_state_directory_is_private(tmp_path, still_serving):
    old = os.umask(0o022)
    try:
        fresh, shared = tmp_path / "fresh" / "state", tmp_path / "loose"
        shared.mkdir(mode=0o755)
        for folder in (fresh, shared):
            emulator = Emulator(folder)
            try:
                assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
                for sub in ("s3", "jobs", "cache", "ca"):
                    assert stat.S_IMODE((folder / sub).stat().st_mode) & 0o077 == 0, sub
                assert stat.S_IMODE((folder / "credentials.json").stat().st_mode) == 0o600
                keys = [p for p in (folder / "ca").rglob("*key*") if p.is_file()]
                assert keys and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in keys)
            finally:
                emulator.stop()
    finally:
        os.umask(old)


def test_a_shared_folder_is_not_chmodded(tmp_path, still_serving):
    """``--state-dir`` naming a folder that holds other things: the emulator warns, it does not chmod it."""
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    (shared / "someone-elses.txt").write_text("x")
    os.chmod(shared, 0o755)
    emulator = Emulator(shared)
    try:
        assert stat.S_IMODE(shared.stat().st_mode) == 0o755
        assert stat.S_IMODE((shared / "jobs").stat().st_mode) == 0o700
    finally:
        emulator.stop()


# --------------------------------------------------------------------------- 4. the quota under concurrency


def _busy(sm) -> int:
    running = 0
    for op, key in (("list_training_jobs", "TrainingJobSummaries"), ("list_processing_jobs", "ProcessingJobSummaries"),
                    ("list_transform_jobs", "TransformJobSummaries")):
        for state in ("InProgress", "Stopping"):
            running += len(getattr(sm, op)(StatusEquals=state, MaxResults=100)[key])
    return running


def test_sixteen_simultaneous_creates_never_exceed_the_instance_quota(client, bucket, still_serving):
    sm = client("sagemaker", config=botocore.config.Config(max_pool_connections=32, retries={"max_attempts": 1}))
    _wait(lambda: _busy(sm) == 0, timeout=120)
    names = [unique(f"quota-{i:02d}") for i in range(16)]
    barrier = threading.Barrier(len(names))
    outcome: dict[str, str] = {}

    def create(name: str) -> None:
        body = training_request(name)
        body["AlgorithmSpecification"]["ContainerEntrypoint"] = ["python3", "-c", "import time; time.sleep(60)"]
        del body["InputDataConfig"]
        barrier.wait()
        try:
            sm.create_training_job(**body)
            outcome[name] = "admitted"
        except ClientError as exc:
            outcome[name] = exc.response["Error"]["Code"]
        except Exception as exc:  # noqa: BLE001 - recorded, and the assertion below shows it
            outcome[name] = repr(exc)

    threads = [threading.Thread(target=create, args=(n,)) for n in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        admitted = [n for n, result in outcome.items() if result == "admitted"]
        refused = [n for n, result in outcome.items() if result == "ResourceLimitExceeded"]
        assert len(outcome) == 16 and len(admitted) + len(refused) == 16, outcome
        assert len(admitted) == QUOTA, outcome
        for name in refused:
            with pytest.raises(ClientError):
                sm.describe_training_job(TrainingJobName=name)
    finally:
        for name, result in outcome.items():
            if result == "admitted":
                try:
                    sm.stop_training_job(TrainingJobName=name)
                except ClientError:
                    pass
        for name, result in outcome.items():
            if result == "admitted":
                _wait(lambda n=name: _terminal(sm.describe_training_job(TrainingJobName=n), "TrainingJobStatus"),
                      timeout=30)


# --------------------------------------------------------------------------- 5. no zombies


def test_a_job_whose_run_cannot_start_ends_failed(emulator, raw, sm, monkeypatch, still_serving):
    """Fault injection: the process table is full. The create is answered, and the job ends Failed saying why."""
    from sagemaker_emulator.runtime.processing import ProcessingRun

    def no_threads(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(ProcessingRun, "__init__", no_threads)
    name = unique("nostart")
    resp = raw.json_call("CreateProcessingJob", processing_request(name))
    monkeypatch.undo()
    assert resp.status == 200, resp.body
    job = sm.describe_processing_job(ProcessingJobName=name)
    assert job["ProcessingJobStatus"] == "Failed"
    assert job["FailureReason"].startswith("InternalServerError: The job could not be started")
    assert "ProcessingEndTime" in job


# --------------------------------------------------------------------------- helpers


def _terminal(record: dict[str, Any], field: str, done: tuple[str, ...] = TERMINAL) -> dict[str, Any] | None:
    return record if record[field] in done else None


def _wait(check: Callable[[], Any], timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)

