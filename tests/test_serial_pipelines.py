"""Serial inference pipelines and direct multi-container invocation, with boto3.

The pipeline is the one of Clarify's public example and of Autopilot's candidates: a scikit-learn
script-mode preprocessor (here: standardise the features) in front of the built-in XGBoost algorithm.
Its answer must equal the two applied in order in-process; a ``Direct`` model runs only the container
named by ``TargetContainerHostname``; batch transform runs the pipeline too.
"""

from __future__ import annotations

import json
import time
import uuid

import numpy as np
import pytest
import xgboost
from artifacts import tarball, xgboost_tarball
from botocore.exceptions import ClientError
from jobs_common import ROLE, SKLEARN_IMAGE, TRANSFORM, WAITER, XGBOOST_IMAGE

pytestmark = pytest.mark.slow

BUCKET = f"pipelines-{uuid.uuid4().hex[:6]}"

PREPROCESSOR = b'''
import io
import json
import os

import numpy as np


def model_fn(model_dir):
    with open(os.path.join(model_dir, "scaler.json")) as handle:
        return json.load(handle)


def transform_fn(scaler, body, content_type, accept):
    if content_type != "text/csv":
        raise ValueError(f"the preprocessor reads text/csv, not {content_type}")
    rows = np.loadtxt(io.StringIO(body.decode() if isinstance(body, bytes) else body), delimiter=",", ndmin=2)
    scaled = (rows - np.array(scaler["mean"])) / np.array(scaler["std"])
    print(f"preprocessor: Accept={accept}", flush=True)
    return "\\n".join(",".join(repr(float(v)) for v in row) for row in scaled), "text/csv"
'''


def csv(rows: np.ndarray) -> str:
    return "\n".join(",".join(repr(float(v)) for v in row) for row in rows)


@pytest.fixture(scope="module")
def models(client) -> dict[str, object]:
    """A scaler + booster pair, uploaded, and three models over them: Serial, Direct, and a bad one."""
    s3, sm = client("s3"), client("sagemaker")
    s3.create_bucket(Bucket=BUCKET)
    rng = np.random.default_rng(7)
    x = rng.normal(loc=[10, -3, 100, 0], scale=[2, 0.5, 30, 1], size=(300, 4))
    mean, std = x.mean(axis=0), x.std(axis=0)
    scaled = (x - mean) / std
    y = (scaled[:, 0] + 0.5 * scaled[:, 1] > 0).astype(int)
    booster = xgboost.train({"objective": "binary:logistic", "max_depth": 3}, xgboost.DMatrix(scaled, label=y), 10)
    s3.put_object(Bucket=BUCKET, Key="pre/model.tar.gz", Body=tarball({
        "scaler.json": json.dumps({"mean": mean.tolist(), "std": std.tolist()}).encode(),
        "code/inference.py": PREPROCESSOR}))
    s3.put_object(Bucket=BUCKET, Key="xgb/model.tar.gz", Body=xgboost_tarball(booster))
    pre = {"Image": SKLEARN_IMAGE, "ModelDataUrl": f"s3://{BUCKET}/pre/model.tar.gz",
           "Environment": {"SAGEMAKER_PROGRAM": "inference.py"}}
    xgb = {"Image": XGBOOST_IMAGE, "ModelDataUrl": f"s3://{BUCKET}/xgb/model.tar.gz"}
    suffix = uuid.uuid4().hex[:6]
    names = {"serial": f"serial-{suffix}", "direct": f"direct-{suffix}"}
    sm.create_model(ModelName=names["serial"], ExecutionRoleArn=ROLE, Containers=[pre, xgb],
                    InferenceExecutionConfig={"Mode": "Serial"})
    sm.create_model(ModelName=names["direct"], ExecutionRoleArn=ROLE,
                    Containers=[{**pre, "ContainerHostname": "pre"}, {**xgb, "ContainerHostname": "xgb"}],
                    InferenceExecutionConfig={"Mode": "Direct"})
    for model in names.values():
        sm.create_endpoint_config(EndpointConfigName=model, ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": model, "InitialInstanceCount": 1,
             "InstanceType": "ml.m5.large"}])
        sm.create_endpoint(EndpointName=model, EndpointConfigName=model)
    for model in names.values():
        sm.get_waiter("endpoint_in_service").wait(EndpointName=model, WaiterConfig=WAITER)
    yield {**names, "x": x, "scaled": scaled, "booster": booster, "pre": pre, "xgb": xgb}
    for model in names.values():
        sm.delete_endpoint(EndpointName=model)


def invoke(runtime, endpoint: str, body: str, **extra) -> tuple[str, str]:
    answer = runtime.invoke_endpoint(EndpointName=endpoint, ContentType="text/csv", Body=body, **extra)
    return answer["Body"].read().decode(), answer["ContentType"]


def test_a_serial_pipeline_answers_as_its_containers_applied_in_order(client, models):
    runtime = client("sagemaker-runtime")
    rows = models["x"][:25]
    body, content_type = invoke(runtime, models["serial"], csv(rows), Accept="text/csv")
    expected = models["booster"].predict(xgboost.DMatrix((rows - models["x"].mean(axis=0)) / models["x"].std(axis=0)))
    assert np.allclose([float(v) for v in body.strip().split("\n")], expected, atol=1e-6)
    assert content_type.startswith("text/csv")  # the last container's answer (XGBoost adds a charset)


def test_describe_endpoint_lists_every_container_image(client, models):
    variant = client("sagemaker").describe_endpoint(EndpointName=models["serial"])["ProductionVariants"][0]
    assert [image["SpecifiedImage"] for image in variant["DeployedImages"]] == [SKLEARN_IMAGE, XGBOOST_IMAGE]


def test_each_container_logs_under_its_own_stream_and_sees_the_accept_header(client, models):
    logs = client("logs")
    invoke(client("sagemaker-runtime"), models["serial"], csv(models["x"][:1]), Accept="text/csv")
    group = f"/aws/sagemaker/Endpoints/{models['serial']}"
    streams = [s["logStreamName"] for s in logs.describe_log_streams(logGroupName=group)["logStreams"]]
    assert any(s.endswith("/container-1") for s in streams) and any(s.endswith("/container-2") for s in streams)
    first = next(s for s in streams if s.endswith("/container-1"))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = [e["message"] for e in logs.get_log_events(logGroupName=group, logStreamName=first,
                                                             startFromHead=True)["events"]]
        if any("preprocessor: Accept=text/csv" in line for line in lines):
            break
        time.sleep(0.2)
    assert any("preprocessor: Accept=text/csv" in line for line in lines)


def test_direct_mode_invokes_only_the_container_named(client, models):
    runtime = client("sagemaker-runtime")
    rows = models["x"][:5]
    scaled, content_type = invoke(runtime, models["direct"], csv(rows), TargetContainerHostname="pre")
    assert content_type.startswith("text/csv")
    assert np.allclose(np.loadtxt(scaled.splitlines(), delimiter=","), models["scaled"][:5])
    predictions, _ = invoke(runtime, models["direct"], csv(models["scaled"][:5]), TargetContainerHostname="xgb",
                            Accept="text/csv")
    expected = models["booster"].predict(xgboost.DMatrix(models["scaled"][:5]))
    assert np.allclose([float(v) for v in predictions.strip().split("\n")], expected, atol=1e-6)


def test_target_container_errors(client, models):
    runtime = client("sagemaker-runtime")
    cases = [(models["direct"], {}, "specify TargetContainerHostname"),
             (models["direct"], {"TargetContainerHostname": "nope"}, "The container nope does not exist"),
             (models["serial"], {"TargetContainerHostname": "container-1"}, "only supported for endpoints")]
    for endpoint, extra, text in cases:
        with pytest.raises(ClientError) as exc:
            invoke(runtime, endpoint, "1,2,3,4", **extra)
        assert exc.value.response["Error"]["Code"] == "ValidationError"
        assert text in exc.value.response["Error"]["Message"]


def test_a_failing_container_is_named_in_the_model_error(client, models):
    runtime = client("sagemaker-runtime")
    with pytest.raises(ClientError) as exc:
        runtime.invoke_endpoint(EndpointName=models["serial"], ContentType="application/json", Body=b"[1, 2]")
    error = exc.value.response["Error"]
    assert error["Code"] == "ModelError"
    assert "from container-1 with message" in error["Message"]
    assert "the preprocessor reads text/csv, not application/json" in error["Message"]
    # the endpoint keeps serving
    assert invoke(runtime, models["serial"], csv(models["x"][:1]))[0]


def test_create_model_refuses_bad_container_lists(client, models):
    sm = client("sagemaker")
    cases = [
        ({"Containers": [models["pre"], models["xgb"]], "InferenceExecutionConfig": {"Mode": "Direct"}},
         "ContainerHostname must be specified for every container"),
        ({"Containers": [{**models["pre"], "ContainerHostname": "a"}, {**models["xgb"], "ContainerHostname": "a"}]},
         "ContainerHostname must be unique"),
        ({"PrimaryContainer": models["xgb"], "Containers": [models["pre"]]}, "not both"),
    ]
    for params, text in cases:
        name = f"bad-{uuid.uuid4().hex[:6]}"
        with pytest.raises(ClientError) as exc:
            sm.create_model(ModelName=name, ExecutionRoleArn=ROLE, **params)
        assert exc.value.response["Error"]["Code"] == "ValidationException"
        assert text in exc.value.response["Error"]["Message"]
        with pytest.raises(ClientError):
            sm.describe_model(ModelName=name)


def test_batch_transform_runs_the_pipeline(client, models):
    s3, sm = client("s3"), client("sagemaker")
    rows = models["x"][:40]
    s3.put_object(Bucket=BUCKET, Key="batch/in/data.csv", Body=csv(rows).encode())
    name = f"pipe-transform-{uuid.uuid4().hex[:6]}"
    sm.create_transform_job(
        TransformJobName=name, ModelName=models["serial"],
        TransformInput={"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix",
                                                        "S3Uri": f"s3://{BUCKET}/batch/in/"}},
                        "ContentType": "text/csv", "SplitType": "Line"},
        TransformOutput={"S3OutputPath": f"s3://{BUCKET}/batch/out/", "Accept": "text/csv",
                         "AssembleWith": "Line"},
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1})
    job = TRANSFORM.wait(sm, name)
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    out = s3.get_object(Bucket=BUCKET, Key="batch/out/data.csv.out")["Body"].read().decode()
    expected = models["booster"].predict(xgboost.DMatrix((rows - models["x"].mean(axis=0)) / models["x"].std(axis=0)))
    assert np.allclose([float(v) for v in out.split()], expected, atol=1e-6)
