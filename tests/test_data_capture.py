"""Endpoint data capture and serverless variants, through boto3 against the emulator.

Capture files must parse as SageMaker writes them (Model Monitor reads them),
count every sampled call, and lose nothing on update, delete or emulator stop.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid

import boto3
import numpy as np
import pytest
import xgboost
from artifacts import tarball, xgboost_tarball
from botocore.config import Config
from botocore.exceptions import ClientError
from jobs_common import ROLE, SKLEARN_IMAGE, WAITER, XGBOOST_IMAGE

from sagemaker_emulator.app import Emulator

pytestmark = pytest.mark.slow

BUCKET = "capture-tests"
KEY = re.compile(r"^(?P<prefix>.+)/(?P<endpoint>[^/]+)/(?P<variant>[^/]+)/\d{4}/\d{2}/\d{2}/\d{2}/"
                 r"\d{2}-\d{2}-\d{3}-[0-9a-f-]{36}\.jsonl$")


def _xgboost_model(s3, sm, name: str) -> np.ndarray:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(200, 3))
    booster = xgboost.train({"objective": "binary:logistic", "max_depth": 2}, xgboost.DMatrix(x, label=x[:, 0] > 0),
                            num_boost_round=5)
    s3.put_object(Bucket=BUCKET, Key=f"models/{name}.tar.gz",
                  Body=xgboost_tarball(booster))
    sm.create_model(ModelName=name, ExecutionRoleArn=ROLE,
                    PrimaryContainer={"Image": XGBOOST_IMAGE, "ModelDataUrl": f"s3://{BUCKET}/models/{name}.tar.gz"})
    return x


def _deploy(sm, name: str, model: str, capture: dict | None, **variant) -> None:
    extra = {"DataCaptureConfig": capture} if capture else {}
    spec = {"VariantName": "AllTraffic", "ModelName": model, **(variant or {"InitialInstanceCount": 1,
                                                                          "InstanceType": "ml.m5.large"})}
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[spec], **extra)
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=WAITER)


def _capture(percent: int, prefix: str, **extra) -> dict:
    return {"EnableCapture": True, "InitialSamplingPercentage": percent,
            "DestinationS3Uri": f"s3://{BUCKET}/{prefix}", "CaptureOptions": [{"CaptureMode": "InputAndOutput"}],
            **extra}


def _records(s3, prefix: str) -> list[tuple[str, dict]]:
    out = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read().decode()
            out.extend((obj["Key"], json.loads(line)) for line in body.splitlines() if line)
    return out


def _row(x: np.ndarray) -> str:
    return ",".join(f"{v:.6f}" for v in x)


@pytest.fixture(scope="module", autouse=True)
def bucket(client) -> str:
    try:
        client("s3").create_bucket(Bucket=BUCKET)
    except ClientError:
        pass
    return BUCKET


@pytest.fixture(scope="module")
def model(client):
    s3, sm = client("s3"), client("sagemaker")
    name = f"capture-model-{uuid.uuid4().hex[:6]}"
    return name, _xgboost_model(s3, sm, name)


def test_every_call_is_captured_as_sagemaker_writes_it(client, model):
    s3, sm, runtime = client("s3"), client("sagemaker"), client("sagemaker-runtime")
    name = f"cap-all-{uuid.uuid4().hex[:6]}"
    _deploy(sm, name, model[0], _capture(100, "all"))
    desc = sm.describe_endpoint(EndpointName=name)["DataCaptureConfig"]
    assert desc == {"EnableCapture": True, "CaptureStatus": "Started", "CurrentSamplingPercentage": 100,
                    "DestinationS3Uri": f"s3://{BUCKET}/all"}
    rows = model[1][:25]
    answers = []
    for i, row in enumerate(rows):
        resp = runtime.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=_row(row),
                                       InferenceId=f"req-{i}")
        answers.append(resp["Body"].read().decode())
    runtime.invoke_endpoint(EndpointName=name, ContentType="text/libsvm", Body="0:1.0 1:2.0 2:3.0")
    sm.delete_endpoint(EndpointName=name)  # flushes what is buffered

    records = _records(s3, "all/")
    assert len(records) == 26
    keys = {key for key, _ in records}
    for key in keys:
        match = KEY.match(key)
        assert match, key
        assert (match["prefix"], match["endpoint"], match["variant"]) == ("all", name, "AllTraffic")
    csv = [r for _, r in records if r["captureData"]["endpointInput"]["encoding"] == "CSV"]
    by_id = {r["eventMetadata"]["inferenceId"]: r for r in csv}
    assert sorted(by_id) == sorted(f"req-{i}" for i in range(25))
    first = by_id["req-0"]
    assert first["eventVersion"] == "0"
    assert first["captureData"]["endpointInput"] == {"observedContentType": "text/csv", "mode": "INPUT",
                                                     "data": _row(rows[0]), "encoding": "CSV"}
    output = first["captureData"]["endpointOutput"]
    assert output["mode"] == "OUTPUT" and output["encoding"] == "CSV"
    assert output["observedContentType"].startswith("text/csv")
    assert output["data"] == answers[0]
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", first["eventMetadata"]["inferenceTime"])
    uuid.UUID(first["eventMetadata"]["eventId"])
    libsvm = [r for _, r in records if r["captureData"]["endpointInput"]["encoding"] == "BASE64"]
    assert base64.b64decode(libsvm[0]["captureData"]["endpointInput"]["data"]) == b"0:1.0 1:2.0 2:3.0"


def test_sampling_and_output_only_mode(client, model):
    s3, sm, runtime = client("s3"), client("sagemaker"), client("sagemaker-runtime")
    name = f"cap-half-{uuid.uuid4().hex[:6]}"
    _deploy(sm, name, model[0], _capture(30, "half", CaptureOptions=[{"CaptureMode": "Output"}]))
    calls = 400
    for row in np.resize(model[1], (calls, 3)):
        runtime.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=_row(row))
    deadline = time.time() + 10  # the writer flushes on its own every second: no update or delete needed
    while len(records := _records(s3, "half/")) < 60 and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(1.5)
    records = _records(s3, "half/")
    assert 0.3 * calls - 45 < len(records) < 0.3 * calls + 45, len(records)  # ~5 standard deviations
    assert all(set(r["captureData"]) == {"endpointOutput"} for _, r in records)
    sm.delete_endpoint(EndpointName=name)
    assert len(_records(s3, "half/")) == len(records), "nothing left unwritten, nothing written twice"


def test_update_endpoint_flushes_and_switches_capture(client, model):
    s3, sm, runtime = client("s3"), client("sagemaker"), client("sagemaker-runtime")
    name = f"cap-upd-{uuid.uuid4().hex[:6]}"
    _deploy(sm, name, model[0], _capture(100, "upd"))
    for row in model[1][:10]:
        runtime.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=_row(row))
    sm.create_endpoint_config(EndpointConfigName=f"{name}-v2", ProductionVariants=[
        {"VariantName": "AllTraffic", "ModelName": model[0], "InitialInstanceCount": 1,
         "InstanceType": "ml.m5.large"}], DataCaptureConfig=_capture(100, "upd", EnableCapture=False))
    sm.update_endpoint(EndpointName=name, EndpointConfigName=f"{name}-v2")
    sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=WAITER)
    assert len(_records(s3, "upd/")) == 10
    assert sm.describe_endpoint(EndpointName=name)["DataCaptureConfig"]["CaptureStatus"] == "Stopped"
    for row in model[1][:5]:
        runtime.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=_row(row))
    sm.delete_endpoint(EndpointName=name)
    assert len(_records(s3, "upd/")) == 10


def test_emulator_stop_writes_what_was_captured(tmp_path):
    emu = Emulator(tmp_path / "state")
    emu.start("127.0.0.1", 0)
    try:
        session = boto3.Session(aws_access_key_id=emu.credentials.access_key,
                                aws_secret_access_key=emu.credentials.secret_key, region_name="us-east-1")
        s3, sm, runtime = (session.client(n, endpoint_url=emu.endpoint_url)
                           for n in ("s3", "sagemaker", "sagemaker-runtime"))
        s3.create_bucket(Bucket=BUCKET)
        x = _xgboost_model(s3, sm, "m")
        _deploy(sm, "ep", "m", _capture(100, "stop"))
        for row in x[:7]:
            runtime.invoke_endpoint(EndpointName="ep", ContentType="text/csv", Body=_row(row))
    finally:
        emu.stop()
    files = list((tmp_path / "state" / "s3" / BUCKET / "stop").rglob("*.jsonl"))
    lines = [line for f in files for line in f.read_text().splitlines()]
    assert len(lines) == 7


def test_capture_config_errors(client, model):
    sm = client("sagemaker")
    with pytest.raises(ClientError) as exc:
        sm.create_endpoint_config(EndpointConfigName=f"bad-{uuid.uuid4().hex[:6]}", ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": model[0],
             "ServerlessConfig": {"MemorySizeInMB": 1024, "MaxConcurrency": 1}}],
            DataCaptureConfig=_capture(100, "x"))
    assert exc.value.response["Error"]["Code"] == "ValidationException"
    assert "serverless" in exc.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as exc:
        sm.create_endpoint_config(EndpointConfigName=f"bad-{uuid.uuid4().hex[:6]}", ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": model[0], "InitialInstanceCount": 1,
             "InstanceType": "ml.m5.large"}], DataCaptureConfig=_capture(101, "x"))
    assert exc.value.response["Error"]["Code"] == "ValidationException"


SLOW_SCRIPT = b'''
import time

def model_fn(model_dir):
    return "slow"

def transform_fn(model, body, content_type, accept):
    time.sleep(float(body))
    return "done", "text/plain"
'''


def test_serverless_variant_honours_max_concurrency(client):
    s3, sm = client("s3"), client("sagemaker")
    runtime = client("sagemaker-runtime", config=Config(retries={"max_attempts": 1, "mode": "standard"}))
    name = f"sls-{uuid.uuid4().hex[:6]}"
    s3.put_object(Bucket=BUCKET, Key=f"models/{name}.tar.gz", Body=tarball({"code/inference.py": SLOW_SCRIPT}))
    sm.create_model(ModelName=name, ExecutionRoleArn=ROLE, PrimaryContainer={
        "Image": SKLEARN_IMAGE, "ModelDataUrl": f"s3://{BUCKET}/models/{name}.tar.gz",
        "Environment": {"SAGEMAKER_PROGRAM": "inference.py"}})
    _deploy(sm, name, name, None, ServerlessConfig={"MemorySizeInMB": 2048, "MaxConcurrency": 2})
    variant = sm.describe_endpoint(EndpointName=name)["ProductionVariants"][0]
    assert variant["CurrentServerlessConfig"] == {"MemorySizeInMB": 2048, "MaxConcurrency": 2}
    assert "CurrentInstanceCount" not in variant

    results: list[str] = []

    def slow_call() -> None:
        body = runtime.invoke_endpoint(EndpointName=name, ContentType="text/plain", Body="1.5")["Body"].read()
        results.append(body.decode())

    threads = [threading.Thread(target=slow_call) for _ in range(2)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)  # both slots taken
    with pytest.raises(ClientError) as exc:
        runtime.invoke_endpoint(EndpointName=name, ContentType="text/plain", Body="0")
    assert exc.value.response["Error"]["Code"] == "ThrottlingException"
    for thread in threads:
        thread.join()
    assert results == ["done", "done"]
    assert runtime.invoke_endpoint(EndpointName=name, ContentType="text/plain", Body="0")["Body"].read() == b"done"
    sm.delete_endpoint(EndpointName=name)


FAULTY_SCRIPT = b'''
import os
import time

def model_fn(model_dir):
    return "faulty"

def transform_fn(model, body, content_type, accept):
    text = body.decode() if isinstance(body, bytes) else str(body)
    if text == "hang":
        time.sleep(60)
    if text == "crash":
        os._exit(3)
    return "ok:" + text, "text/plain"
'''


def test_hang_or_crash_in_model_code_fails_that_request_only(client, emulator):
    s3, sm, runtime = client("s3"), client("sagemaker"), client("sagemaker-runtime")
    name = f"faulty-{uuid.uuid4().hex[:6]}"
    s3.put_object(Bucket=BUCKET, Key=f"models/{name}.tar.gz", Body=tarball({"code/inference.py": FAULTY_SCRIPT}))
    sm.create_model(ModelName=name, ExecutionRoleArn=ROLE, PrimaryContainer={
        "Image": SKLEARN_IMAGE, "ModelDataUrl": f"s3://{BUCKET}/models/{name}.tar.gz",
        "Environment": {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_MODEL_SERVER_TIMEOUT": "1"}})
    _deploy(sm, name, name, None)

    def call(body: str) -> str:
        return runtime.invoke_endpoint(EndpointName=name, ContentType="text/plain", Body=body)["Body"].read().decode()

    started = time.monotonic()
    with pytest.raises(ClientError) as exc:
        call("hang")
    assert exc.value.response["Error"]["Code"] == "ModelError" and time.monotonic() - started < 10
    assert "SAGEMAKER_MODEL_SERVER_TIMEOUT" in exc.value.response["Error"]["Message"]
    assert call("after-hang") == "ok:after-hang"

    with pytest.raises(ClientError) as exc:
        call("crash")
    assert exc.value.response["Error"]["Code"] == "ModelError"
    instance = emulator.endpoints.get(name).variants["AllTraffic"].instances[0]
    deadline = time.monotonic() + 30
    while True:  # the supervisor restarts the model server; until then calls fail as ModelError
        try:
            if call("after-crash") == "ok:after-crash":
                break
        except ClientError as error:
            assert error.response["Error"]["Code"] == "ModelError"
        assert time.monotonic() < deadline, "the model server was not restarted"
        time.sleep(0.2)
    assert instance.restarts >= 1
    assert sm.describe_endpoint(EndpointName=name)["EndpointStatus"] == "InService"
    sm.delete_endpoint(EndpointName=name)


def test_a_record_arriving_after_close_is_still_written(emulator, client):
    """A call in flight while its endpoint is updated or stopped is captured, not dropped."""
    from sagemaker_emulator.runtime.capture import DataCapture, Invocation

    capture = DataCapture(emulator.s3.store, "late-endpoint", _capture(100, "late"))
    capture.close()
    capture.record(Invocation("AllTraffic", b"1,2,3", "text/csv", b"0.5", "text/csv"))
    records = _records(client("s3"), "late/")
    assert len(records) == 1 and records[0][1]["captureData"]["endpointOutput"]["data"] == "0.5"
