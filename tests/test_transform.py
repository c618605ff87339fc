"""Batch transform with plain boto3 and the genuine SDK: splitting, batching, joins, failures, stop, logs."""

from __future__ import annotations

import gzip
import json
import os
import re
import time
import uuid

import numpy as np
import pytest
import xgboost
from artifacts import tarball
from botocore.exceptions import ClientError, WaiterError
from jobs_common import ROLE, TRANSFORM, WAITER, XGBOOST_IMAGE

from sagemaker_emulator.runtime.jsonpath import JsonPathError, compile_path

pytestmark = pytest.mark.slow

BUCKET = "transform-tests"
GROUP = "/aws/sagemaker/TransformJobs"

# One inference script for every behaviour the built-in algorithm cannot show (it answers one line per record).
SCRIPT = b'''
import json
import os
import time

import numpy as np
import xgboost as xgb


def model_fn(model_dir):
    booster = xgb.Booster()
    booster.load_model(os.path.join(model_dir, "xgboost-model"))
    return booster


def transform_fn(model, body, content_type, accept):
    text = body.decode() if isinstance(body, bytes) else body
    if content_type == "application/jsonlines":
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        scores = model.predict(xgb.DMatrix(np.array(rows, dtype=float)))
        return "".join(json.dumps({"score": float(s)}) + "\\n" for s in scores), "application/jsonlines"
    if content_type == "text/x-echo":
        return text.upper(), "text/plain"
    if content_type == "text/x-span":  # which record, and when it was served
        start = time.time()
        time.sleep(0.5)
        return f"{text},{start:.4f},{time.time():.4f}", "text/csv"
    if content_type == "text/x-sleep":
        time.sleep(float(text))
        return "slept", "text/plain"
    if content_type == "text/x-env":
        names = ["SAGEMAKER_BATCH", "SAGEMAKER_MAX_PAYLOAD_IN_MB", "SAGEMAKER_BATCH_STRATEGY",
                 "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS", "FROM_MODEL", "FROM_JOB"]
        return json.dumps({n: os.environ.get(n) for n in names}), "application/json"
    raise ValueError("unexpected content type " + content_type)
'''


@pytest.fixture(scope="module")
def models(client):
    """A built-in XGBoost model and a script-mode one (same booster), created once for the module."""
    s3, sm = client("s3"), client("sagemaker")
    try:
        s3.create_bucket(Bucket=BUCKET)
    except ClientError:
        pass
    rng = np.random.default_rng(7)
    x = rng.normal(size=(400, 4))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
    booster = xgboost.train({"objective": "binary:logistic", "max_depth": 3, "seed": 7},
                            xgboost.DMatrix(x, label=y), num_boost_round=10)
    raw = bytes(booster.save_raw("ubj"))
    suffix = uuid.uuid4().hex[:8]
    builtin, script = f"xgb-{suffix}", f"script-{suffix}"
    s3.put_object(Bucket=BUCKET, Key=f"models/{builtin}.tar.gz", Body=tarball({"xgboost-model": raw}))
    s3.put_object(Bucket=BUCKET, Key=f"models/{script}.tar.gz",
                  Body=tarball({"xgboost-model": raw, "code/inference.py": SCRIPT}))
    sm.create_model(ModelName=builtin, ExecutionRoleArn=ROLE, PrimaryContainer={
        "Image": XGBOOST_IMAGE, "ModelDataUrl": f"s3://{BUCKET}/models/{builtin}.tar.gz"})
    sm.create_model(ModelName=script, ExecutionRoleArn=ROLE, PrimaryContainer={
        "Image": XGBOOST_IMAGE, "ModelDataUrl": f"s3://{BUCKET}/models/{script}.tar.gz",
        "Environment": {"SAGEMAKER_PROGRAM": "inference.py", "FROM_MODEL": "model"}})
    return {"builtin": builtin, "script": script, "booster": booster, "suffix": suffix}


def _csv(rows: np.ndarray) -> str:
    return "".join(",".join(repr(float(v)) for v in row) + "\n" for row in rows)


def _rows(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 4))


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _create(sm, model: str, source: str, output: str, *, content_type: str | None = "text/csv",
            split: str = "Line", accept: str | None = None, assemble: str | None = "Line", name: str | None = None,
            **extra) -> str:
    name = name or _name("bt")
    transform_input: dict = {"DataSource": {"S3DataSource": {"S3DataType": extra.pop("data_type", "S3Prefix"),
                                                            "S3Uri": source}}, "SplitType": split}
    if content_type:
        transform_input["ContentType"] = content_type
    if extra.get("CompressionType"):
        transform_input["CompressionType"] = extra.pop("CompressionType")
    transform_output: dict = {"S3OutputPath": output}
    if accept:
        transform_output["Accept"] = accept
    if assemble:
        transform_output["AssembleWith"] = assemble
    resources = {"InstanceType": "ml.m5.large", "InstanceCount": extra.pop("InstanceCount", 1)}
    sm.create_transform_job(TransformJobName=name, ModelName=model, TransformInput=transform_input,
                            TransformOutput=transform_output, TransformResources=resources, **extra)
    return name


def _put(s3, key: str, body: str | bytes) -> str:
    s3.put_object(Bucket=BUCKET, Key=key, Body=body.encode() if isinstance(body, str) else body)
    return f"s3://{BUCKET}/{key}"


def _get(s3, key: str) -> str:
    return s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()


def _keys(s3, prefix: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", []))


def _events(logs, stream: str) -> list[str]:
    return [e["message"] for e in logs.get_log_events(logGroupName=GROUP, logStreamName=stream,
                                                      startFromHead=True)["events"]]


# --------------------------------------------------------------------------- JSONPath subset (no emulator)


@pytest.mark.parametrize("path, value, expected", [
    ("$", [1, 2], [1, 2]),
    ("$[1:]", ["id", "a", "b"], ["a", "b"]),
    ("$[1:2]", ["a", "b", "c", "d"], ["b", "c"]),  # the end index is included, as the SageMaker docs state
    ("$[0,-1]", ["id", "a", "b", "0.9"], ["id", "0.9"]),
    ("$[0,2:]", ["a", "b", "c", "d"], ["a", "c", "d"]),
    ("$[-1]", ["a", "b"], "b"),
    ("$.features", {"id": 1, "features": [1, 2]}, [1, 2]),
    ("$['id','SageMakerOutput']", {"id": 1, "x": 2, "SageMakerOutput": 3}, {"id": 1, "SageMakerOutput": 3}),
    ("$.a.*", {"a": {"x": 1, "y": 2}}, [1, 2]),
    ("$[*]", [3, 4], [3, 4]),
])
def test_jsonpath_subset(path, value, expected):
    assert compile_path(path).apply(value) == expected


@pytest.mark.parametrize("path", ["features", "$..a", "$[?(@.a)]", "$[1:2:3]", "$[", "$.", "$[abc]"])
def test_jsonpath_outside_the_subset_is_refused(path):
    with pytest.raises(JsonPathError):
        compile_path(path)


def test_jsonpath_index_outside_the_record_is_an_error():
    with pytest.raises(JsonPathError, match="outside"):
        compile_path("$[5]").apply([1, 2])


# --------------------------------------------------------------------------- transforms


def test_csv_multi_record_matches_in_process_predictions(client, models):
    s3, sm, logs = client("s3"), client("sagemaker"), client("logs")
    rows = _rows(20000, 1)  # ~1.6 MB: two mini-batches under MaxPayloadInMB=1
    prefix = f"multi-{models['suffix']}"
    source = _put(s3, f"{prefix}/in/data.csv", _csv(rows))
    name = _create(sm, models["builtin"], source, f"s3://{BUCKET}/{prefix}/out", BatchStrategy="MultiRecord",
                   MaxPayloadInMB=1, MaxConcurrentTransforms=2, Environment={"SAGEMAKER_CONTAINER_LOG_LEVEL": "10"})
    assert sm.describe_transform_job(TransformJobName=name)["TransformJobStatus"] == "InProgress"
    sm.get_waiter("transform_job_completed_or_stopped").wait(TransformJobName=name, WaiterConfig=WAITER)
    lines = _get(s3, f"{prefix}/out/data.csv.out").splitlines()
    assert len(lines) == len(rows)
    expected = models["booster"].predict(xgboost.DMatrix(rows))
    np.testing.assert_allclose(np.array(lines, dtype=float), expected, rtol=1e-6, atol=1e-6)

    desc = sm.describe_transform_job(TransformJobName=name)
    assert desc["TransformJobStatus"] == "Completed"
    assert desc["TransformStartTime"] <= desc["TransformEndTime"]
    streams = [s["logStreamName"] for s in logs.describe_log_streams(
        logGroupName=GROUP, logStreamNamePrefix=f"{name}/")["logStreams"]]
    instance = [s for s in streams if not s.endswith("/data-log")]
    assert len(instance) == 1 and instance[0].startswith(f"{name}/i-")
    assert f"{instance[0]}/data-log" in streams
    served = _events(logs, instance[0])
    assert any("Local emulator: serving" in m for m in served)
    assert sum('"POST /invocations HTTP/1.1" 200' in m for m in served) == 2, "two mini-batches of at most 1 MB"
    data_log = _events(logs, f"{instance[0]}/data-log")
    assert "[sagemaker logs]: MaxConcurrentTransforms=2, MaxPayloadInMB=1, BatchStrategy=MULTI_RECORD" in data_log


def test_single_record_same_result_and_execution_parameters(client, models):
    s3, sm = client("s3"), client("sagemaker")
    rows = _rows(40, 2)
    prefix = f"single-{models['suffix']}"
    source = _put(s3, f"{prefix}/in/data.csv", _csv(rows))
    name = _create(sm, models["builtin"], source, f"s3://{BUCKET}/{prefix}/out", BatchStrategy="SingleRecord",
                   assemble=None)
    desc = TRANSFORM.wait(sm, name)
    assert desc["TransformJobStatus"] == "Completed", desc.get("FailureReason")
    served = np.array(_get(s3, f"{prefix}/out/data.csv.out").split(), dtype=float)
    np.testing.assert_allclose(served, models["booster"].predict(xgboost.DMatrix(rows)), rtol=1e-6, atol=1e-6)
    # unset parameters come from the built-in container's /execution-parameters
    assert desc["MaxPayloadInMB"] == 6 and desc["MaxConcurrentTransforms"] == (os.cpu_count() or 1)
    assert desc["BatchStrategy"] == "SingleRecord"
    assert desc["TransformOutput"]["AssembleWith"] == "None"
    assert desc["DataProcessing"] == {"InputFilter": "$", "OutputFilter": "$", "JoinSource": "None"}


def test_nested_objects_keep_their_relative_paths(client, models):
    s3, sm = client("s3"), client("sagemaker")
    prefix = f"nested-{models['suffix']}"
    for key in ("a.csv", "d1/b.csv", "d1/d2/c.csv"):
        _put(s3, f"{prefix}/in/{key}", _csv(_rows(3, 3)))
    name = _create(sm, models["builtin"], f"s3://{BUCKET}/{prefix}/in", f"s3://{BUCKET}/{prefix}/out/",
                   DataCaptureConfig={"DestinationS3Uri": f"s3://{BUCKET}/{prefix}/capture"})
    assert TRANSFORM.wait(sm, name)["TransformJobStatus"] == "Completed"
    assert _keys(s3, f"{prefix}/out/") == [f"{prefix}/out/{k}.out" for k in ("a.csv", "d1/b.csv", "d1/d2/c.csv")]
    assert all(len(_get(s3, k).splitlines()) == 3 for k in _keys(s3, f"{prefix}/out/"))
    captured = _keys(s3, f"{prefix}/capture/")  # <dest>/input|output/yyyy/mm/dd/hh/<id>.json manifests
    assert [k.split("/")[2] for k in captured] == ["input", "output"]
    assert all(re.fullmatch(r"\d{4}/\d{2}/\d{2}/\d{2}/[0-9a-f-]{36}\.json", k.split("/", 3)[3]) for k in captured)
    assert json.loads(_get(s3, captured[0])) == [{"prefix": f"s3://{BUCKET}/{prefix}/in/"}, "a.csv", "d1/b.csv",
                                                 "d1/d2/c.csv"]
    assert json.loads(_get(s3, captured[1])) == [{"prefix": f"s3://{BUCKET}/{prefix}/out/"}, "a.csv.out",
                                                 "d1/b.csv.out", "d1/d2/c.csv.out"]
    # a single object as S3Uri: its base name
    name = _create(sm, models["builtin"], f"s3://{BUCKET}/{prefix}/in/d1/d2/c.csv", f"s3://{BUCKET}/{prefix}/one")
    assert TRANSFORM.wait(sm, name)["TransformJobStatus"] == "Completed"
    assert _keys(s3, f"{prefix}/one/") == [f"{prefix}/one/c.csv.out"]


def test_assemble_with_none_concatenates_and_line_separates(client, models):
    s3, sm = client("s3"), client("sagemaker")
    prefix = f"assemble-{models['suffix']}"
    source = _put(s3, f"{prefix}/in/words.txt", "ab\ncd\nef\n")
    outputs = {}
    for assemble in ("None", "Line"):
        name = _create(sm, models["script"], source, f"s3://{BUCKET}/{prefix}/{assemble}", content_type="text/x-echo",
                       BatchStrategy="SingleRecord", assemble=assemble)
        assert TRANSFORM.wait(sm, name)["TransformJobStatus"] == "Completed"
        outputs[assemble] = _get(s3, f"{prefix}/{assemble}/words.txt.out")
    assert outputs == {"None": "ABCDEF", "Line": "AB\nCD\nEF\n"}


def test_concurrent_requests_keep_the_record_order(client, models):
    s3, sm = client("s3"), client("sagemaker")
    prefix = f"span-{models['suffix']}"
    source = _put(s3, f"{prefix}/in/ids.txt", "".join(f"r{i}\n" for i in range(9)))
    name = _create(sm, models["script"], source, f"s3://{BUCKET}/{prefix}/out", content_type="text/x-span",
                   BatchStrategy="SingleRecord", MaxConcurrentTransforms=3,
                   Environment={"SAGEMAKER_MODEL_SERVER_WORKERS": "4"})
    assert TRANSFORM.wait(sm, name)["TransformJobStatus"] == "Completed"
    out = [line.split(",") for line in _get(s3, f"{prefix}/out/ids.txt.out").splitlines()]
    assert [r[0] for r in out] == [f"r{i}" for i in range(9)]
    spans = [(float(r[1]), float(r[2])) for r in out]
    overlap = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert overlap == 3, f"MaxConcurrentTransforms=3 requests in flight at once, saw {overlap}"


def test_container_environment(client, models):
    s3, sm = client("s3"), client("sagemaker")
    prefix = f"env-{models['suffix']}"
    source = _put(s3, f"{prefix}/in/x.txt", "x")
    name = _create(sm, models["script"], source, f"s3://{BUCKET}/{prefix}/out", content_type="text/x-env",
                   split="None", BatchStrategy="SingleRecord", MaxPayloadInMB=5, MaxConcurrentTransforms=3,
                   Environment={"FROM_JOB": "job"})
    assert TRANSFORM.wait(sm, name)["TransformJobStatus"] == "Completed"
    env = json.loads(_get(s3, f"{prefix}/out/x.txt.out"))
    assert env == {"SAGEMAKER_BATCH": "true", "SAGEMAKER_MAX_PAYLOAD_IN_MB": "5",
                   "SAGEMAKER_BATCH_STRATEGY": "SINGLE_RECORD", "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS": "3",
                   "FROM_MODEL": "model", "FROM_JOB": "job"}
    name = _create(sm, models["script"], source, f"s3://{BUCKET}/{prefix}/bare", content_type="text/x-env",
                   split="None")
    assert TRANSFORM.wait(sm, name)["TransformJobStatus"] == "Completed"
    env = json.loads(_get(s3, f"{prefix}/bare/x.txt.out"))
    assert env["SAGEMAKER_BATCH"] == "true" and env["SAGEMAKER_BATCH_STRATEGY"] is None  # only when requested


def test_csv_join_with_id_column_worked_example(client, models):
    s3, sm = client("s3"), client("sagemaker")
    rows = _rows(30, 4)
    prefix = f"join-{models['suffix']}"
    body = "".join(f"id{i}," + ",".join(repr(float(v)) for v in row) + "\n" for i, row in enumerate(rows))
    source = _put(s3, f"{prefix}/in/part1.csv", body)
    name = _create(sm, models["builtin"], source, f"s3://{BUCKET}/{prefix}/out", accept="text/csv",
                   BatchStrategy="MultiRecord",
                   DataProcessing={"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": "$[0,-1]"})
    desc = TRANSFORM.wait(sm, name)
    assert desc["TransformJobStatus"] == "Completed", desc.get("FailureReason")
    out = [line.split(",") for line in _get(s3, f"{prefix}/out/part1.csv.out").splitlines()]
    assert [r[0] for r in out] == [f"id{i}" for i in range(30)]
    np.testing.assert_allclose([float(r[1]) for r in out], models["booster"].predict(xgboost.DMatrix(rows)),
                               rtol=1e-6, atol=1e-6)
    assert all(len(r) == 2 for r in out)


def test_json_lines_join_adds_sagemaker_output(client, models):
    s3, sm = client("s3"), client("sagemaker")
    rows = _rows(5, 5)
    prefix = f"jsonl-{models['suffix']}"
    objects = "".join(json.dumps({"id": i, "features": row.tolist()}) + "\n" for i, row in enumerate(rows))
    arrays = "".join(json.dumps(row.tolist()) + "\n" for row in rows)
    expected = models["booster"].predict(xgboost.DMatrix(rows))
    name = _create(sm, models["script"], _put(s3, f"{prefix}/objects/in.jsonl", objects),
                   f"s3://{BUCKET}/{prefix}/objects-out", content_type="application/jsonlines",
                   accept="application/jsonlines", BatchStrategy="MultiRecord",
                   DataProcessing={"InputFilter": "$.features", "JoinSource": "Input",
                                   "OutputFilter": "$['id','SageMakerOutput']"})
    assert TRANSFORM.wait(sm, name)["TransformJobStatus"] == "Completed"
    out = [json.loads(line) for line in _get(s3, f"{prefix}/objects-out/in.jsonl.out").splitlines()]
    assert [o["id"] for o in out] == list(range(5)) and all(set(o) == {"id", "SageMakerOutput"} for o in out)
    np.testing.assert_allclose([o["SageMakerOutput"]["score"] for o in out], expected, rtol=1e-6)

    name = _create(sm, models["script"], _put(s3, f"{prefix}/arrays/in.jsonl", arrays),
                   f"s3://{BUCKET}/{prefix}/arrays-out", content_type="application/jsonlines",
                   BatchStrategy="SingleRecord", DataProcessing={"JoinSource": "Input"})
    assert TRANSFORM.wait(sm, name)["TransformJobStatus"] == "Completed"
    out = [json.loads(line) for line in _get(s3, f"{prefix}/arrays-out/in.jsonl.out").splitlines()]
    assert out[0]["SageMakerInput"] == rows[0].tolist()
    np.testing.assert_allclose([o["SageMakerOutput"]["score"] for o in out], expected, rtol=1e-6)


def test_gzip_input_and_manifest_file(client, models):
    s3, sm = client("s3"), client("sagemaker")
    rows = _rows(25, 6)
    prefix = f"gzip-{models['suffix']}"
    source = _put(s3, f"{prefix}/in/data.csv.gz", gzip.compress(_csv(rows).encode()))
    name = _create(sm, models["builtin"], source, f"s3://{BUCKET}/{prefix}/out", CompressionType="Gzip")
    assert TRANSFORM.wait(sm, name)["TransformJobStatus"] == "Completed"
    served = np.array(_get(s3, f"{prefix}/out/data.csv.gz.out").split(), dtype=float)
    expected = models["booster"].predict(xgboost.DMatrix(rows))
    np.testing.assert_allclose(served, expected, rtol=1e-6, atol=1e-6)

    _put(s3, f"{prefix}/plain/a.csv", _csv(rows[:10]))
    _put(s3, f"{prefix}/plain/sub/b.csv", _csv(rows[10:]))
    manifest = _put(s3, f"{prefix}/manifest.json",
                    json.dumps([{"prefix": f"s3://{BUCKET}/{prefix}/plain/"}, "sub/b.csv", "a.csv"]))
    name = _create(sm, models["builtin"], manifest, f"s3://{BUCKET}/{prefix}/manifest-out", data_type="ManifestFile")
    assert TRANSFORM.wait(sm, name)["TransformJobStatus"] == "Completed"
    assert _keys(s3, f"{prefix}/manifest-out/") == [f"{prefix}/manifest-out/a.csv.out",
                                                    f"{prefix}/manifest-out/sub/b.csv.out"]


def test_record_larger_than_max_payload_fails_the_job(client, models):
    s3, sm = client("s3"), client("sagemaker")
    prefix = f"big-{models['suffix']}"
    source = _put(s3, f"{prefix}/in/wide.csv", "1.0,2.0,3.0,4.0\n" + "1.000000," * 150_000 + "1.0\n")
    name = _create(sm, models["builtin"], source, f"s3://{BUCKET}/{prefix}/out", MaxPayloadInMB=1)
    desc = TRANSFORM.wait(sm, name)
    assert desc["TransformJobStatus"] == "Failed"
    assert "Too much data for max payload size" in desc["FailureReason"]
    assert f"s3://{BUCKET}/{prefix}/in/wide.csv" in desc["FailureReason"]
    assert _keys(s3, f"{prefix}/out/") == []


def test_model_error_fails_the_object_but_other_outputs_remain(client, models):
    s3, sm, logs = client("s3"), client("sagemaker"), client("logs")
    prefix = f"bad-{models['suffix']}"
    _put(s3, f"{prefix}/in/a-bad.csv", "1,2,3,4\n1,2,abc,4\n")
    _put(s3, f"{prefix}/in/b-good.csv", _csv(_rows(4, 8)))
    name = _create(sm, models["builtin"], f"s3://{BUCKET}/{prefix}/in/", f"s3://{BUCKET}/{prefix}/out",
                   BatchStrategy="SingleRecord")
    with pytest.raises(WaiterError):
        sm.get_waiter("transform_job_completed_or_stopped").wait(TransformJobName=name, WaiterConfig=WAITER)
    desc = sm.describe_transform_job(TransformJobName=name)
    assert desc["TransformJobStatus"] == "Failed"
    reason = desc["FailureReason"]
    assert f"s3://{BUCKET}/{prefix}/in/a-bad.csv" in reason and "415" in reason
    assert "Loading csv data failed" in reason and "\n" not in reason
    assert _keys(s3, f"{prefix}/out/") == [f"{prefix}/out/b-good.csv.out"]
    stream = next(s["logStreamName"] for s in logs.describe_log_streams(
        logGroupName=GROUP, logStreamNamePrefix=f"{name}/")["logStreams"] if s["logStreamName"].endswith("data-log"))
    assert any("a-bad.csv: ClientError: 415" in m for m in _events(logs, stream))


def test_two_instances_share_the_objects(client, models):
    s3, sm, logs = client("s3"), client("sagemaker"), client("logs")
    prefix = f"two-{models['suffix']}"
    for i in range(4):
        _put(s3, f"{prefix}/in/part{i}.csv", _csv(_rows(5, 10 + i)))
    name = _create(sm, models["builtin"], f"s3://{BUCKET}/{prefix}/in", f"s3://{BUCKET}/{prefix}/out",
                   InstanceCount=2, Environment={"SAGEMAKER_CONTAINER_LOG_LEVEL": "10"})
    desc = TRANSFORM.wait(sm, name)
    assert desc["TransformJobStatus"] == "Completed" and desc["TransformResources"]["InstanceCount"] == 2
    assert len(_keys(s3, f"{prefix}/out/")) == 4
    streams = [s["logStreamName"] for s in logs.describe_log_streams(
        logGroupName=GROUP, logStreamNamePrefix=f"{name}/")["logStreams"]]
    instances = [s for s in streams if not s.endswith("/data-log")]
    assert len(instances) == 2
    for stream in instances:  # objects are assigned by key: two each, one mini-batch per object
        assert sum('"POST /invocations HTTP/1.1" 200' in m for m in _events(logs, stream)) == 2


def test_stop_ends_stopped_and_kills_the_model_servers(client, models, emulator):
    s3, sm = client("s3"), client("sagemaker")
    prefix = f"stop-{models['suffix']}"
    source = _put(s3, f"{prefix}/in/slow.txt", "0.5\n" * 40)
    name = _create(sm, models["script"], source, f"s3://{BUCKET}/{prefix}/out", content_type="text/x-sleep",
                   BatchStrategy="SingleRecord", MaxConcurrentTransforms=1)
    deadline = time.time() + 60
    while not (emulator.state.get("TransformJob", name) or {}).get("MaxPayloadInMB"):  # serving has begun
        assert time.time() < deadline
        time.sleep(0.1)
    pids = emulator.state.get("TransformJob", name)["_pids"]
    sm.stop_transform_job(TransformJobName=name)
    assert sm.describe_transform_job(TransformJobName=name)["TransformJobStatus"] in ("Stopping", "Stopped")
    sm.get_waiter("transform_job_completed_or_stopped").wait(TransformJobName=name, WaiterConfig=WAITER)
    assert sm.describe_transform_job(TransformJobName=name)["TransformJobStatus"] == "Stopped"
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert _keys(s3, f"{prefix}/out/") == []
    with pytest.raises(ClientError) as exc:
        sm.stop_transform_job(TransformJobName=name)
    assert exc.value.response["Error"]["Code"] == "ValidationException"


def test_invocation_timeout_fails_the_job(client, models):
    s3, sm = client("s3"), client("sagemaker")
    prefix = f"timeout-{models['suffix']}"
    source = _put(s3, f"{prefix}/in/slow.txt", "3\n")
    name = _create(sm, models["script"], source, f"s3://{BUCKET}/{prefix}/out", content_type="text/x-sleep",
                   ModelClientConfig={"InvocationsTimeoutInSeconds": 1, "InvocationsMaxRetries": 0})
    desc = TRANSFORM.wait(sm, name)
    assert desc["TransformJobStatus"] == "Failed"
    assert "InvocationsTimeoutInSeconds=1" in desc["FailureReason"]
    assert desc["ModelClientConfig"] == {"InvocationsTimeoutInSeconds": 1, "InvocationsMaxRetries": 0}


def test_describe_and_list(client, models):
    s3, sm = client("s3"), client("sagemaker")
    tag = uuid.uuid4().hex[:6]
    source = _put(s3, f"list-{tag}/in/x.csv", _csv(_rows(2, 11)))
    names = [_create(sm, models["builtin"], source, f"s3://{BUCKET}/list-{tag}/out{i}", name=f"lst-{tag}-{i}",
                     Tags=[{"Key": "k", "Value": "v"}]) for i in range(3)]
    for name in names:
        TRANSFORM.wait(sm, name)
    desc = sm.describe_transform_job(TransformJobName=names[0])
    assert desc["TransformJobArn"].endswith(f":transform-job/{names[0]}")
    assert desc["ModelName"] == models["builtin"]
    assert desc["TransformInput"]["CompressionType"] == "None" and desc["TransformInput"]["SplitType"] == "Line"
    assert desc["TransformResources"] == {"InstanceType": "ml.m5.large", "InstanceCount": 1}
    assert desc["CreationTime"] <= desc["TransformStartTime"] <= desc["TransformEndTime"]
    assert sm.list_tags(ResourceArn=desc["TransformJobArn"])["Tags"] == [{"Key": "k", "Value": "v"}]

    listed = sm.list_transform_jobs(NameContains=f"lst-{tag}", StatusEquals="Completed")["TransformJobSummaries"]
    assert [s["TransformJobName"] for s in listed] == names[::-1]
    assert {"TransformJobArn", "CreationTime", "TransformEndTime", "LastModifiedTime"} <= set(listed[0])
    assert sm.list_transform_jobs(NameContains=f"lst-{tag}", StatusEquals="Failed")["TransformJobSummaries"] == []
    page = sm.list_transform_jobs(NameContains=f"lst-{tag}", MaxResults=2, SortBy="Name", SortOrder="Ascending")
    assert [s["TransformJobName"] for s in page["TransformJobSummaries"]] == names[:2]
    rest = sm.list_transform_jobs(NameContains=f"lst-{tag}", MaxResults=2, SortBy="Name", SortOrder="Ascending",
                                  NextToken=page["NextToken"])
    assert [s["TransformJobName"] for s in rest["TransformJobSummaries"]] == names[2:] and "NextToken" not in rest
    paginated = [s["TransformJobName"] for p in sm.get_paginator("list_transform_jobs").paginate(
        NameContains=f"lst-{tag}", PaginationConfig={"PageSize": 1}) for s in p["TransformJobSummaries"]]
    assert sorted(paginated) == names


def _error(call, **kwargs) -> dict:
    with pytest.raises(ClientError) as exc:
        call(**kwargs)
    error = exc.value.response["Error"]
    assert "\n" not in error["Message"]
    return error


def test_validation_errors(client, models):
    sm = client("sagemaker")
    source, out = f"s3://{BUCKET}/nowhere/in", f"s3://{BUCKET}/nowhere/out"
    error = _error(_create, sm=sm, model="no-such-model", source=source, output=out)
    assert error["Code"] == "ValidationException" and "Could not find model" in error["Message"]
    error = _error(_create, sm=sm, model=models["builtin"], source=source, output=out, MaxPayloadInMB=101)
    assert error["Code"] == "ValidationException" and "100" in error["Message"]
    error = _error(_create, sm=sm, model=models["builtin"], source=source, output=out, MaxPayloadInMB=20,
                   MaxConcurrentTransforms=10)
    assert error["Code"] == "ValidationException" and "MaxConcurrentTransforms" in error["Message"]
    error = _error(_create, sm=sm, model=models["builtin"], source=source, output=out, split="RecordIO")
    assert error["Code"] == "ValidationException" and "RecordIO" in error["Message"]
    error = _error(_create, sm=sm, model=models["builtin"], source=source, output=out,
                   DataProcessing={"InputFilter": "$..x"})
    assert error["Code"] == "ValidationException" and "InputFilter" in error["Message"]
    error = _error(_create, sm=sm, model=models["builtin"], source=source, output=out, assemble="None",
                   DataProcessing={"JoinSource": "Input"})
    assert error["Code"] == "ValidationException" and "AssembleWith" in error["Message"]
    error = _error(_create, sm=sm, model=models["builtin"], source=source, output=out,
                   DataCaptureConfig={"DestinationS3Uri": out, "GenerateInferenceId": True})
    assert error["Code"] == "ValidationException" and "GenerateInferenceId" in error["Message"]
    error = _error(sm.describe_transform_job, TransformJobName="no-such-transform-job")
    assert error["Code"] == "ValidationException"
    error = _error(_create, sm=sm, model=models["builtin"], source=source, output=out, InstanceCount=9)
    assert error["Code"] == "ResourceLimitExceeded" and "for transform job usage' is 8 Instances" in error["Message"]

    name = _create(sm, models["builtin"], source, out)
    error = _error(_create, sm=sm, model=models["builtin"], source=source, output=out, name=name)
    assert error["Code"] == "ResourceInUse" and name in error["Message"]
    desc = TRANSFORM.wait(sm, name)  # no objects under the prefix: a ClientError failure, not a hang
    assert desc["TransformJobStatus"] == "Failed" and "No S3 objects found" in desc["FailureReason"]


def test_daemon_restart_fails_in_progress_jobs(tmp_path):
    from sagemaker_emulator.app import Emulator

    emu = Emulator(tmp_path / "state")
    arn = "arn:aws:sagemaker:us-east-1:123456789012:transform-job/orphan"
    emu.state.insert("TransformJob", "orphan", arn, time.time(), {
        "TransformJobName": "orphan", "TransformJobArn": arn, "TransformJobStatus": "InProgress"})
    emu.jobs.recover()
    record = emu.state.get("TransformJob", "orphan")
    assert record["TransformJobStatus"] == "Failed" and "emulator stopped" in record["FailureReason"]
    assert record["TransformEndTime"] > 0
    emu.state.close()


def test_sdk_transformer(emulator_env, models, caplog):
    import logging

    import boto3
    from sagemaker.core.helper.session_helper import Session
    from sagemaker.core.transformer import Transformer

    session = Session()
    bucket = session.default_bucket()
    rows = _rows(50, 12)
    boto3.client("s3").put_object(Bucket=bucket, Key="sdk-transform/input/data.csv", Body=_csv(rows).encode())
    transformer = Transformer(model_name=models["builtin"], instance_count=1, instance_type="ml.m5.large",
                              strategy="MultiRecord", assemble_with="Line", accept="text/csv",
                              output_path=f"s3://{bucket}/sdk-transform/output", sagemaker_session=session)
    transformer.transform(f"s3://{bucket}/sdk-transform/input", content_type="text/csv", split_type="Line",
                          wait=False)
    with caplog.at_level(logging.INFO):
        transformer.wait()  # logs=True: the SDK tails /aws/sagemaker/TransformJobs
    assert "Local emulator: serving" in caplog.text and "[sagemaker logs]: MaxConcurrentTransforms=" in caplog.text
    name = transformer.latest_transform_job.get_name()
    assert boto3.client("sagemaker").describe_transform_job(TransformJobName=name)["TransformJobStatus"] == "Completed"
    body = boto3.client("s3").get_object(Bucket=bucket, Key="sdk-transform/output/data.csv.out")["Body"].read()
    np.testing.assert_allclose(np.array(body.decode().split(), dtype=float),
                               models["booster"].predict(xgboost.DMatrix(rows)), rtol=1e-6, atol=1e-6)


def test_sdk_core_resources_transform_job(emulator_env, models):
    """``sagemaker.core.resources.TransformJob.create(...)`` then ``.wait()``: the V3 Autopilot notebook's path."""
    import boto3
    from sagemaker.core.resources import TransformJob
    from sagemaker.core.shapes import (
        TransformDataSource,
        TransformInput,
        TransformOutput,
        TransformResources,
        TransformS3DataSource,
    )

    rows = _rows(30, 13)
    source = _put(boto3.client("s3"), f"core-transform-{models['suffix']}/in/rows.csv", _csv(rows))
    job = TransformJob.create(
        transform_job_name=_name("core"), model_name=models["builtin"],
        transform_input=TransformInput(
            data_source=TransformDataSource(s3_data_source=TransformS3DataSource(s3_data_type="S3Prefix",
                                                                                 s3_uri=source.rsplit("/", 1)[0])),
            content_type="text/csv", split_type="Line"),
        transform_output=TransformOutput(s3_output_path=f"s3://{BUCKET}/core-transform-{models['suffix']}/out",
                                         assemble_with="Line"),
        transform_resources=TransformResources(instance_type="ml.m5.large", instance_count=1),
    )
    job.wait(poll=1)
    assert job.transform_job_status == "Completed"
    out = _get(boto3.client("s3"), f"core-transform-{models['suffix']}/out/rows.csv.out")
    np.testing.assert_allclose(np.array(out.split(), dtype=float), models["booster"].predict(xgboost.DMatrix(rows)),
                               rtol=1e-6, atol=1e-6)
