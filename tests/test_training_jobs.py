"""Training jobs end to end, driven the way users drive them: boto3, botocore waiters/paginators, the AWS CLI.

Every test talks to a real emulator over HTTP and the jobs run as real local processes on small
synthetic data (a few hundred rows). Jobs that only need to finish are submitted together by a
module fixture so that they run side by side; each test then checks what a user would look at:
``DescribeTrainingJob``, the CloudWatch log streams, the model in S3.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from botocore.exceptions import ClientError, WaiterError
from jobs_common import ROLE, SKLEARN_IMAGE, TRAINING, XGBOOST_IMAGE
from processes import job_processes, pid_gone
from sklearn.metrics import roc_auc_score

pytestmark = pytest.mark.slow  # real training jobs (local processes), ~35 s for the whole file

REGION = "us-east-1"
XGB_IMAGE_EU = "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-xgboost:1.7-1"
LEGACY_IMAGE = "811284229777.dkr.ecr.us-east-1.amazonaws.com/xgboost:latest"
LOG_GROUP = "/aws/sagemaker/TrainingJobs"
RUN = uuid.uuid4().hex[:6]  # in every job name of this module, so list calls can isolate them

TRAIN_SCRIPT = """\
import argparse, glob, os, pickle, time

print(f"pid={os.getpid()}", flush=True)
parser = argparse.ArgumentParser()
parser.add_argument("--max_iter", type=int, default=100)
parser.add_argument("--sleep", type=float, default=0.0)
args = parser.parse_args()
if args.sleep:
    time.sleep(args.sleep)

import numpy as np
from sklearn.linear_model import LogisticRegression

files = sorted(glob.glob(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "*.csv")))
data = np.vstack([np.loadtxt(f, delimiter=",", ndmin=2) for f in files])
model = LogisticRegression(max_iter=args.max_iter).fit(data[:, 1:], data[:, 0])
with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.pkl"), "wb") as fh:
    pickle.dump(model, fh)
print(f"accuracy={model.score(data[:, 1:], data[:, 0]):.4f}")
"""


# --------------------------------------------------------------------------- helpers


def job_name(group: str, key: str = "job") -> str:
    """``<group>-<RUN>-<key>-<random>``: unique, and list calls can select a group of this module's jobs."""
    return f"{group}-{RUN}-{key}-{uuid.uuid4().hex[:8]}"


def code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return exc.value.response["Error"]["Code"]


def message(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return exc.value.response["Error"]["Message"]


def make_rows(seed: int, n: int, *, noise_labels: bool = False) -> np.ndarray:
    """Binary classification: label first, then five features (only the first two matter)."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, 5))
    signal_ = features[:, 0] + 0.5 * features[:, 1] + rng.normal(scale=0.5, size=n)
    labels = rng.integers(0, 2, size=n) if noise_labels else (signal_ > 0).astype(int)
    return np.column_stack([labels, features])


def csv_bytes(rows: np.ndarray) -> bytes:
    buf = io.StringIO()
    np.savetxt(buf, rows, delimiter=",", fmt="%.6g")
    return buf.getvalue().encode()


def libsvm_bytes(rows: np.ndarray) -> bytes:
    lines = [f"{int(r[0])} " + " ".join(f"{j + 1}:{v:.6g}" for j, v in enumerate(r[1:])) for r in rows]
    return ("\n".join(lines) + "\n").encode()


def parquet_bytes(rows: np.ndarray) -> bytes:
    buf = io.BytesIO()
    pd.DataFrame(rows, columns=["label"] + [f"f{i}" for i in range(rows.shape[1] - 1)]).to_parquet(buf)
    return buf.getvalue()


def sourcedir_bytes(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def channel(name: str, uri: str, content_type: str | None = None, distribution: str = "FullyReplicated"
            ) -> dict[str, Any]:
    entry: dict[str, Any] = {"ChannelName": name, "DataSource": {"S3DataSource": {
        "S3DataType": "S3Prefix", "S3Uri": uri, "S3DataDistributionType": distribution}}}
    if content_type:
        entry["ContentType"] = content_type
    return entry


def training_request(name: str, bucket: str, *, image: str = XGBOOST_IMAGE,
                     channels: list[dict[str, Any]] | None = None, hps: dict[str, str] | None = None,
                     instance_count: int = 1, max_runtime: int = 600, **extra: Any) -> dict[str, Any]:
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": image, "TrainingInputMode": "File"},
        "RoleArn": ROLE,
        **({"InputDataConfig": channels} if channels else {}),
        "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/output"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": instance_count, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime},
        "HyperParameters": hps if hps is not None else {},
        **extra,
    }


def read_streams(logs: Any, prefix: str, group: str = LOG_GROUP) -> dict[str, list[str]]:
    """Every log stream of a job (``<job>/algo-N-<epoch>``) and its messages, read with GetLogEvents."""
    streams = logs.describe_log_streams(logGroupName=group, logStreamNamePrefix=prefix)["logStreams"]
    out: dict[str, list[str]] = {}
    for stream in sorted(s["logStreamName"] for s in streams):
        lines: list[str] = []
        token = None
        while True:
            kwargs = {"nextToken": token} if token else {"startFromHead": True}
            page = logs.get_log_events(logGroupName=group, logStreamName=stream, **kwargs)
            lines += [event["message"] for event in page["events"]]
            if page["nextForwardToken"] == token:
                break
            token = page["nextForwardToken"]
        out[stream] = lines
    return out


def split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def model_files(s3: Any, uri: str) -> dict[str, bytes]:
    bucket, key = split_s3(uri)
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def booster_auc(s3: Any, job: dict[str, Any], rows: np.ndarray) -> float:
    """AUC of the job's ``xgboost-model`` on ``rows``, loaded the way a user would load it."""
    raw = model_files(s3, job["ModelArtifacts"]["S3ModelArtifacts"])["xgboost-model"]
    booster = xgb.Booster()
    booster.load_model(bytearray(raw))
    features = rows[:, 1:]
    if booster.num_features() == features.shape[1] + 1:  # libsvm indices start at 1: feature 0 is never present
        features = np.column_stack([np.full(len(rows), np.nan), features])
    return roc_auc_score(rows[:, 0], booster.predict(xgb.DMatrix(features)))


def wait_gone(pids: list[int], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not all(pid_gone(pid) for pid in pids):
        assert time.monotonic() < deadline, f"processes still running: {[p for p in pids if not pid_gone(p)]}"
        time.sleep(0.05)


def wait_for_pid_in_logs(logs: Any, name: str, timeout: float = 30.0) -> int:
    """The user script prints ``pid=<n>`` first thing; read it back from CloudWatch Logs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            streams = read_streams(logs, f"{name}/")
        except logs.exceptions.ResourceNotFoundException:  # a fresh state dir has no log group until a job logs
            streams = {}
        for lines in streams.values():
            for line in lines:
                if line.startswith("pid="):
                    return int(line[4:])
        time.sleep(0.1)
    raise AssertionError(f"{name}: the script never printed its pid")


def assert_serving(sm: Any) -> None:
    assert "TrainingJobSummaries" in sm.list_training_jobs(MaxResults=1)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def data(s3) -> dict[str, Any]:
    """One bucket with every data set the tests train on, in every format."""
    bucket = f"training-jobs-{RUN}"
    s3.create_bucket(Bucket=bucket)
    train, validation = make_rows(1, 300), make_rows(2, 200)
    objects = {
        "data/csv/train/part-0.csv": csv_bytes(train),
        "data/csv/validation/part-0.csv": csv_bytes(validation),
        "data/libsvm/train/part-0.libsvm": libsvm_bytes(train),
        "data/libsvm/validation/part-0.libsvm": libsvm_bytes(validation),
        "data/parquet/train/part-0.parquet": parquet_bytes(train),
        "data/parquet/validation/part-0.parquet": parquet_bytes(validation),
        "data/noise/validation/part-0.csv": csv_bytes(make_rows(3, 200, noise_labels=True)),
        "data/sharded/train/part-0.csv": csv_bytes(train[:150]),
        "data/sharded/train/part-1.csv": csv_bytes(train[150:]),
        "code/sourcedir.tar.gz": sourcedir_bytes({"train.py": TRAIN_SCRIPT}),
    }
    for key, body in objects.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    return {"bucket": bucket, "uri": f"s3://{bucket}", "train": train, "validation": validation}


def _xgb_hps(**extra: str) -> dict[str, str]:
    return {"num_round": "15", "objective": "binary:logistic", "eval_metric": "auc", "max_depth": "3", **extra}


@pytest.fixture(scope="module")
def xgb_jobs(sm, data) -> dict[str, dict[str, Any]]:
    """The built-in XGBoost jobs that should complete, submitted together (7 local instances), then awaited."""
    uri, bucket = data["uri"], data["bucket"]

    def channels(fmt: str, content_type: str, validation: str | None = None) -> list[dict[str, Any]]:
        return [channel("train", f"{uri}/data/{fmt}/train/", content_type),
                channel("validation", validation or f"{uri}/data/{fmt}/validation/", content_type)]

    requests = {
        "csv": dict(image=XGBOOST_IMAGE, channels=channels("csv", "text/csv"), hps=_xgb_hps()),
        "eu-shorthand": dict(image=XGB_IMAGE_EU, channels=channels("csv", "csv"), hps=_xgb_hps()),
        "legacy-libsvm": dict(image=LEGACY_IMAGE, channels=channels("libsvm", "text/libsvm"), hps=_xgb_hps()),
        "parquet": dict(image=XGBOOST_IMAGE, channels=channels("parquet", "application/x-parquet"), hps=_xgb_hps()),
        "early-stop": dict(
            channels=channels("csv", "text/csv", validation=f"{uri}/data/noise/validation/"),
            hps=_xgb_hps(num_round="20", eval_metric="logloss", early_stopping_rounds="2", eta="0.5",
                         max_depth="6")),
        "sharded": dict(instance_count=2, hps=_xgb_hps(num_round="10"), channels=[
            channel("train", f"{uri}/data/sharded/train/", "text/csv", distribution="ShardedByS3Key"),
            channel("validation", f"{uri}/data/csv/validation/", "text/csv")]),
    }
    names = {key: job_name("xgb", key) for key in requests}
    for key, kwargs in requests.items():
        sm.create_training_job(**training_request(names[key], bucket, **kwargs))
    return {key: TRAINING.wait(sm, name, timeout=90) for key, name in names.items()}


@pytest.fixture(scope="module")
def failed_jobs(sm, data) -> dict[str, dict[str, Any]]:
    """Jobs SageMaker accepts but that end ``Failed``, submitted together, then awaited."""
    uri, bucket = data["uri"], data["bucket"]
    csv = [channel("train", f"{uri}/data/csv/train/", "text/csv"),
           channel("validation", f"{uri}/data/csv/validation/", "text/csv")]
    requests = {
        "subsample": dict(channels=csv, hps=_xgb_hps(subsample="0")),
        "no-num-round": dict(channels=csv, hps={"objective": "binary:logistic"}),
        "own-image": dict(image="123456789012.dkr.ecr.us-east-1.amazonaws.com/my-own:latest", channels=csv,
                          hps=_xgb_hps()),
        "docker-hub": dict(image="docker.io/foo", channels=csv, hps=_xgb_hps()),
        "no-train": dict(channels=csv[1:], hps=_xgb_hps()),
        "empty-prefix": dict(channels=[channel("train", f"{uri}/data/nothing-here/", "text/csv")], hps=_xgb_hps()),
    }
    names = {key: job_name("bad", key) for key in requests}
    for key, kwargs in requests.items():
        sm.create_training_job(**training_request(names[key], bucket, **kwargs))
    return {key: TRAINING.wait(sm, name, timeout=90) for key, name in names.items()}


def script_mode_request(name: str, data: dict[str, Any], *, sleep: float = 0, max_runtime: int = 600
                        ) -> dict[str, Any]:
    """What SDK v2's ``SKLearn(entry_point="train.py", ...).fit(...)`` sends: JSON-encoded hyperparameters."""
    hps = {
        "max_iter": "200",
        "sagemaker_program": json.dumps("train.py"),
        "sagemaker_submit_directory": json.dumps(f"{data['uri']}/code/sourcedir.tar.gz"),
        "sagemaker_container_log_level": "20",
        "sagemaker_job_name": json.dumps(name),
        "sagemaker_region": json.dumps(REGION),
    }
    if sleep:
        hps["sleep"] = str(sleep)
    return training_request(
        name, data["bucket"], image=SKLEARN_IMAGE, hps=hps, max_runtime=max_runtime,
        channels=[channel("train", f"{data['uri']}/data/csv/train/", "text/csv")],
        AlgorithmSpecification={"TrainingImage": SKLEARN_IMAGE, "TrainingInputMode": "File",
                                "MetricDefinitions": [{"Name": "train:accuracy", "Regex": "accuracy=([0-9.]+)"}]},
    )


# --------------------------------------------------------------------------- built-in XGBoost


def test_builtin_xgboost_completes_with_what_describe_logs_and_s3_show(xgb_jobs, s3, logs, data):
    job = xgb_jobs["csv"]
    name = job["TrainingJobName"]
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    assert job["SecondaryStatus"] == "Completed"
    assert [t["Status"] for t in job["SecondaryStatusTransitions"]] == [
        "Starting", "Downloading", "Training", "Uploading", "Completed"]
    assert all("StartTime" in t and "EndTime" in t for t in job["SecondaryStatusTransitions"])
    assert job["TrainingTimeInSeconds"] >= 1 and job["BillableTimeInSeconds"] >= 1
    assert job["TrainingStartTime"] <= job["TrainingEndTime"]
    assert "FailureReason" not in job

    streams = read_streams(logs, f"{name}/")
    assert len(streams) == 1 and next(iter(streams)).startswith(f"{name}/algo-1-")
    lines = next(iter(streams.values()))
    rounds = [line for line in lines if re.match(r"^\[\d+\]#011train-auc:", line)]
    assert len(rounds) == 15, "one metric line per round, tabs shown as #011"
    last_auc = float(re.search(r"#011validation-auc:([0-9.]+)", rounds[-1]).group(1))
    metrics = {m["MetricName"]: m["Value"] for m in job["FinalMetricDataList"]}
    assert metrics["validation:auc"] == pytest.approx(last_auc, abs=1e-9)

    artifact = job["ModelArtifacts"]["S3ModelArtifacts"]
    assert artifact == f"{job['OutputDataConfig']['S3OutputPath']}/{name}/output/model.tar.gz"
    assert booster_auc(s3, job, data["validation"]) > 0.8


@pytest.mark.parametrize(("key", "image"), [
    ("eu-shorthand", XGB_IMAGE_EU), ("legacy-libsvm", LEGACY_IMAGE), ("parquet", XGBOOST_IMAGE)])
def test_other_image_uris_and_content_types_train_too(xgb_jobs, s3, data, key, image):
    """eu-west-1 URI + ``csv`` shorthand, legacy ``xgboost:latest`` + ``text/libsvm``, ``application/x-parquet``."""
    job = xgb_jobs[key]
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    assert job["AlgorithmSpecification"]["TrainingImage"] == image
    assert "validation:auc" in {m["MetricName"] for m in job["FinalMetricDataList"]}
    assert booster_auc(s3, job, data["validation"]) > 0.8


def test_early_stopping_ends_before_num_round(xgb_jobs, logs, s3):
    job = xgb_jobs["early-stop"]
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    lines = next(iter(read_streams(logs, f"{job['TrainingJobName']}/").values()))
    rounds = [int(m.group(1)) for line in lines if (m := re.match(r"^\[(\d+)\]#011train-logloss:", line))]
    assert rounds and max(rounds) < 19, f"validation on noise labels must stop early, got rounds {rounds}"
    booster = xgb.Booster()
    booster.load_model(bytearray(model_files(s3, job["ModelArtifacts"]["S3ModelArtifacts"])["xgboost-model"]))
    assert booster.num_boosted_rounds() < 20


def test_two_instances_sharded_by_s3_key_train_one_model(xgb_jobs, logs, s3, data):
    job = xgb_jobs["sharded"]
    name = job["TrainingJobName"]
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    assert job["ResourceConfig"]["InstanceCount"] == 2
    # wall-clock seconds: the API says to multiply by InstanceCount yourself for the compute time billed
    assert job["BillableTimeInSeconds"] == job["TrainingTimeInSeconds"]
    streams = read_streams(logs, f"{name}/")
    first, second = sorted(streams)
    assert first.startswith(f"{name}/algo-1-") and second.startswith(f"{name}/algo-2-")
    for lines in streams.values():  # ShardedByS3Key: each instance got one of the two 150-row files
        assert any("Train matrix has 150 rows" in line for line in lines)
    bucket, prefix = split_s3(job["OutputDataConfig"]["S3OutputPath"])
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/{name}/")["Contents"]]
    assert keys == [f"{prefix}/{name}/output/model.tar.gz"]
    assert list(model_files(s3, job["ModelArtifacts"]["S3ModelArtifacts"])) == ["xgboost-model"]
    assert booster_auc(s3, job, data["validation"]) > 0.8


# --------------------------------------------------------------------------- jobs that fail


def test_bad_hyperparameter_fails_with_the_algorithm_error(failed_jobs):
    job = failed_jobs["subsample"]
    assert job["TrainingJobStatus"] == "Failed" and job["SecondaryStatus"] == "Failed"
    assert job["FailureReason"].startswith("AlgorithmError:")
    assert "Hyperparameter subsample: 0.0 is not in (0, 1]" in job["FailureReason"]
    assert "ModelArtifacts" not in job or not job["ModelArtifacts"].get("S3ModelArtifacts")
    assert job["TrainingTimeInSeconds"] >= 1


def test_missing_num_round_fails(failed_jobs):
    job = failed_jobs["no-num-round"]
    assert job["TrainingJobStatus"] == "Failed"
    assert job["FailureReason"].startswith("AlgorithmError:")
    assert "Missing required hyperparameter: num_round" in job["FailureReason"]


@pytest.mark.parametrize("key", ["own-image", "docker-hub"])
def test_unknown_image_fails_naming_the_images_the_emulator_runs(failed_jobs, key):
    job = failed_jobs[key]
    assert job["TrainingJobStatus"] == "Failed"
    reason = job["FailureReason"]
    assert job["AlgorithmSpecification"]["TrainingImage"] in reason
    for repository in ("sagemaker-xgboost", "sagemaker-scikit-learn"):
        assert repository in reason


def test_missing_train_channel_fails(failed_jobs):
    job = failed_jobs["no-train"]
    assert job["TrainingJobStatus"] == "Failed"
    assert "Missing required channel: train" in job["FailureReason"]


def test_empty_input_prefix_is_a_client_error(failed_jobs, data):
    job = failed_jobs["empty-prefix"]
    assert job["TrainingJobStatus"] == "Failed"
    assert job["FailureReason"].startswith(
        f'ClientError: No S3 objects found under S3 URL "{data["uri"]}/data/nothing-here/"')


def test_duplicate_name_is_resource_in_use(sm, xgb_jobs, data):
    existing = xgb_jobs["csv"]
    with pytest.raises(ClientError) as exc:
        sm.create_training_job(**training_request(existing["TrainingJobName"], data["bucket"]))
    assert code(exc) == "ResourceInUse"
    assert sm.describe_training_job(TrainingJobName=existing["TrainingJobName"])["TrainingJobStatus"] == "Completed"
    assert_serving(sm)


def test_describe_and_stop_of_a_missing_job_are_validation_exceptions(sm):
    """SageMaker answers ``ValidationException: Requested resource not found.`` here, not the ``ResourceNotFound``
    its API model lists: that is the code boto3's training-job waiters treat as the end of the wait, and what
    code written against AWS catches."""
    for call in (sm.describe_training_job, sm.stop_training_job):
        with pytest.raises(ClientError) as exc:
            call(TrainingJobName=job_name("missing"))
        assert code(exc) == "ValidationException"
        assert message(exc) == "Requested resource not found."
    assert_serving(sm)


def test_invalid_requests_are_validation_errors(sm, client, data):
    bucket = data["bucket"]
    with pytest.raises(ClientError) as exc:
        sm.create_training_job(**training_request("bad_name!", bucket))
    assert code(exc) == "ValidationException"
    assert message(exc).startswith("1 validation error detected: Value 'bad_name!' at 'trainingJobName' failed to "
                                   "satisfy constraint: Member must satisfy regular expression pattern")
    request = training_request(job_name("bad-type"), bucket)
    request["ResourceConfig"]["InstanceType"] = "ml.fake.xlarge"
    with pytest.raises(ClientError) as exc:
        sm.create_training_job(**request)
    assert code(exc) == "ValidationException"
    assert message(exc).startswith("1 validation error detected: Value 'ml.fake.xlarge' at "
                                   "'resourceConfig.instanceType' failed to satisfy constraint: Member must satisfy "
                                   "enum value set: [")
    # botocore's current model makes these optional (serverless jobs); a non-serverless job still needs them
    raw = client("sagemaker", config=botocore.config.Config(parameter_validation=False))
    for member in ("StoppingCondition", "ResourceConfig", "AlgorithmSpecification"):
        request = training_request(job_name("bad-missing"), bucket)
        del request[member]
        with pytest.raises(ClientError) as exc:
            raw.create_training_job(**request)
        assert code(exc) == "ValidationException", member
        path = member[0].lower() + member[1:]
        assert message(exc) == (f"1 validation error detected: Value null at '{path}' failed to satisfy "
                                "constraint: Member must not be null")
        with pytest.raises(ClientError):
            sm.describe_training_job(TrainingJobName=request["TrainingJobName"])
    assert_serving(sm)


# --------------------------------------------------------------------------- script mode


def test_script_mode_sdk_v2_style_completes_with_custom_metric(sm, s3, logs, data):
    name = job_name("script")
    sm.create_training_job(**script_mode_request(name, data))
    job = TRAINING.wait(sm, name)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    lines = next(iter(read_streams(logs, f"{name}/").values()))
    printed = [float(line.split("=", 1)[1]) for line in lines if line.startswith("accuracy=")]
    assert len(printed) == 1 and printed[0] > 0.8
    metrics = {m["MetricName"]: m["Value"] for m in job["FinalMetricDataList"]}
    assert metrics == {"train:accuracy": pytest.approx(printed[0])}
    files = model_files(s3, job["ModelArtifacts"]["S3ModelArtifacts"])
    assert list(files) == ["model.pkl"]


def test_stop_training_job_stops_quickly_and_kills_the_processes(sm, logs, data):
    name = job_name("stop")
    sm.create_training_job(**script_mode_request(name, data, sleep=60))
    pid = wait_for_pid_in_logs(logs, name)
    assert not pid_gone(pid)
    assert job_processes(name), "the job's processes are visible while it runs"
    started = time.monotonic()
    sm.stop_training_job(TrainingJobName=name)
    assert sm.describe_training_job(TrainingJobName=name)["TrainingJobStatus"] in ("Stopping", "Stopped")
    job = TRAINING.wait(sm, name, timeout=10)
    assert time.monotonic() - started < 10
    assert job["TrainingJobStatus"] == "Stopped" and job["SecondaryStatus"] == "Stopped"
    assert [t["Status"] for t in job["SecondaryStatusTransitions"]][-2:] == ["Stopping", "Stopped"]
    wait_gone([pid])
    assert job_processes(name) == []
    with pytest.raises(ClientError) as exc:
        sm.stop_training_job(TrainingJobName=name)
    assert code(exc) == "ValidationException"
    assert_serving(sm)


def test_max_runtime_ends_the_job_as_max_runtime_exceeded(sm, logs, data):
    name = job_name("maxrt")
    sm.create_training_job(**script_mode_request(name, data, sleep=60, max_runtime=2))
    pid = wait_for_pid_in_logs(logs, name)
    job = TRAINING.wait(sm, name, timeout=15)
    assert job["TrainingJobStatus"] == "Stopped"
    assert job["SecondaryStatus"] == "MaxRuntimeExceeded"
    assert job["SecondaryStatusTransitions"][-1]["Status"] == "MaxRuntimeExceeded"
    wait_gone([pid])
    assert job_processes(name) == []
    assert_serving(sm)


def test_stopping_a_completed_job_is_a_validation_error(sm, xgb_jobs):
    name = xgb_jobs["csv"]["TrainingJobName"]
    with pytest.raises(ClientError) as exc:
        sm.stop_training_job(TrainingJobName=name)
    assert code(exc) == "ValidationException"
    assert sm.describe_training_job(TrainingJobName=name)["TrainingJobStatus"] == "Completed"


# --------------------------------------------------------------------------- list, tags, waiters


def test_list_training_jobs_filters_sorts_and_paginates(sm, xgb_jobs, failed_jobs):
    ours = sorted(job["TrainingJobName"] for job in xgb_jobs.values())
    listed = sm.list_training_jobs(NameContains=f"xgb-{RUN}", MaxResults=100)["TrainingJobSummaries"]
    assert sorted(s["TrainingJobName"] for s in listed) == ours
    assert {s["TrainingJobStatus"] for s in listed} == {"Completed"}
    assert all({"TrainingJobArn", "CreationTime", "LastModifiedTime", "TrainingEndTime"} <= set(s) for s in listed)
    created = [s["CreationTime"] for s in listed]
    assert created == sorted(created, reverse=True), "default order: newest first"

    failed = sm.list_training_jobs(NameContains=f"bad-{RUN}", StatusEquals="Failed",
                                   MaxResults=100)["TrainingJobSummaries"]
    assert sorted(s["TrainingJobName"] for s in failed) == sorted(j["TrainingJobName"] for j in failed_jobs.values())

    ascending = sm.list_training_jobs(NameContains=f"xgb-{RUN}", SortBy="Name", SortOrder="Ascending")
    assert [s["TrainingJobName"] for s in ascending["TrainingJobSummaries"]] == ours
    descending = sm.list_training_jobs(NameContains=f"xgb-{RUN}", SortBy="Name", SortOrder="Descending")
    assert [s["TrainingJobName"] for s in descending["TrainingJobSummaries"]] == ours[::-1]

    first = sm.list_training_jobs(NameContains=f"xgb-{RUN}", SortBy="Name", SortOrder="Ascending", MaxResults=1)
    assert [s["TrainingJobName"] for s in first["TrainingJobSummaries"]] == ours[:1]
    assert first["NextToken"]
    second = sm.list_training_jobs(NameContains=f"xgb-{RUN}", SortBy="Name", SortOrder="Ascending", MaxResults=1,
                                   NextToken=first["NextToken"])
    assert [s["TrainingJobName"] for s in second["TrainingJobSummaries"]] == ours[1:2]

    pages = list(sm.get_paginator("list_training_jobs").paginate(
        NameContains=f"xgb-{RUN}", SortBy="Name", SortOrder="Ascending", PaginationConfig={"PageSize": 2}))
    assert len(pages) == (len(ours) + 1) // 2
    assert [s["TrainingJobName"] for page in pages for s in page["TrainingJobSummaries"]] == ours


def test_tags_add_list_delete(sm, xgb_jobs, data):
    name = job_name("tagged")
    arn = sm.create_training_job(**training_request(
        name, data["bucket"], image="docker.io/not-runnable", Tags=[{"Key": "team", "Value": "ml"}]))["TrainingJobArn"]
    assert arn == f"arn:aws:sagemaker:{REGION}:123456789012:training-job/{name}"
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "team", "Value": "ml"}]
    sm.add_tags(ResourceArn=arn, Tags=[{"Key": "stage", "Value": "dev"}, {"Key": "team", "Value": "ds"}])
    assert sorted((t["Key"], t["Value"]) for t in sm.list_tags(ResourceArn=arn)["Tags"]) == [
        ("stage", "dev"), ("team", "ds")]
    sm.delete_tags(ResourceArn=arn, TagKeys=["team"])
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "stage", "Value": "dev"}]
    other = xgb_jobs["csv"]["TrainingJobArn"]
    assert sm.list_tags(ResourceArn=other)["Tags"] == []
    TRAINING.wait(sm, name)


def test_waiter_training_job_completed_or_stopped(sm, data, failed_jobs):
    name = job_name("waited")
    sm.create_training_job(**training_request(name, data["bucket"], hps=_xgb_hps(num_round="5"), channels=[
        channel("train", f"{data['uri']}/data/csv/train/", "text/csv")]))
    assert sm.describe_training_job(TrainingJobName=name)["TrainingJobStatus"] == "InProgress"
    waiter = sm.get_waiter("training_job_completed_or_stopped")
    waiter.wait(TrainingJobName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    assert sm.describe_training_job(TrainingJobName=name)["TrainingJobStatus"] == "Completed"
    with pytest.raises(WaiterError, match="terminal failure state"):
        waiter.wait(TrainingJobName=failed_jobs["subsample"]["TrainingJobName"],
                    WaiterConfig={"Delay": 1, "MaxAttempts": 3})
    with pytest.raises(WaiterError, match="terminal failure state"):
        waiter.wait(TrainingJobName=job_name("missing"), WaiterConfig={"Delay": 1, "MaxAttempts": 3})


# --------------------------------------------------------------------------- the AWS CLI


def test_aws_cli_sees_jobs_logs_and_artifacts(xgb_jobs, emulator_env):
    job = xgb_jobs["csv"]
    name = job["TrainingJobName"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | emulator_env
    aws = str(Path(sys.executable).parent / "aws")
    output = job["OutputDataConfig"]["S3OutputPath"]
    commands = {
        "describe": ["sagemaker", "describe-training-job", "--training-job-name", name],
        "list": ["sagemaker", "list-training-jobs", "--name-contains", f"xgb-{RUN}"],
        "streams": ["logs", "describe-log-streams", "--log-group-name", LOG_GROUP, "--log-stream-name-prefix",
                    f"{name}/"],
        "filter": ["logs", "filter-log-events", "--log-group-name", LOG_GROUP, "--log-stream-name-prefix",
                   f"{name}/", "--filter-pattern", '"validation-auc"'],
        "ls": ["s3", "ls", f"{output}/{name}/output/"],
    }
    procs = {key: subprocess.Popen([aws, *args, "--output", "json"], env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True) for key, args in commands.items()}
    results = {key: proc.communicate(timeout=60) for key, proc in procs.items()}
    for key, proc in procs.items():
        assert proc.returncode == 0, f"aws {' '.join(commands[key])}: {results[key][1]}"

    described = json.loads(results["describe"][0])
    assert described["TrainingJobStatus"] == "Completed"
    assert described["ModelArtifacts"]["S3ModelArtifacts"] == job["ModelArtifacts"]["S3ModelArtifacts"]
    listed = json.loads(results["list"][0])["TrainingJobSummaries"]
    assert name in {s["TrainingJobName"] for s in listed}
    stream = json.loads(results["streams"][0])["logStreams"][0]["logStreamName"]
    filtered = json.loads(results["filter"][0])["events"]
    assert len(filtered) == 15 and all("validation-auc" in e["message"] for e in filtered)
    assert {e["logStreamName"] for e in filtered} == {stream}
    assert re.search(r"\s\d+ model\.tar\.gz$", results["ls"][0].strip())

    got = subprocess.run([aws, "logs", "get-log-events", "--log-group-name", LOG_GROUP, "--log-stream-name", stream,
                          "--start-from-head", "--output", "json"], env=env, capture_output=True, text=True,
                         timeout=60)
    assert got.returncode == 0, got.stderr
    messages = [e["message"] for e in json.loads(got.stdout)["events"]]
    assert [m for m in messages if "validation-auc" in m] == [e["message"] for e in filtered]


# --------------------------------------------------------------------------- the daemon going away mid-job


CLI = [sys.executable, "-m", "sagemaker_emulator.cli"]


def _daemon(command: str, state: Path) -> dict[str, Any] | None:
    out = subprocess.run([*CLI, command, "--state-dir", str(state)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout) if command == "start" else None


_SESSIONS: dict[Path, boto3.Session] = {}  # one per state dir: later clients reuse its loaded service models


def _clients(state: Path, info: dict[str, Any]) -> tuple[Any, Any, Any]:
    """boto3 clients for the daemon's endpoint, signed with the credentials in ``<state>/credentials.json``."""
    if state not in _SESSIONS:
        creds = json.loads((state / "credentials.json").read_text())
        _SESSIONS[state] = boto3.Session(aws_access_key_id=creds["aws_access_key_id"],
                                         aws_secret_access_key=creds["aws_secret_access_key"], region_name=REGION)
    session = _SESSIONS[state]
    return tuple(session.client(name, endpoint_url=info["endpoint_url"]) for name in ("sagemaker", "s3", "logs"))


def _sleeping_job(sm: Any, s3: Any, bucket: str) -> str:
    if bucket not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="code/sourcedir.tar.gz", Body=sourcedir_bytes({"train.py": TRAIN_SCRIPT}))
        s3.put_object(Bucket=bucket, Key="data/csv/train/part-0.csv", Body=csv_bytes(make_rows(1, 50)))
    name = job_name("daemon")
    sm.create_training_job(**script_mode_request(name, {"bucket": bucket, "uri": f"s3://{bucket}"}, sleep=60))
    return name


def test_daemon_killed_or_stopped_mid_job_ends_the_job(tmp_path):
    state = tmp_path / "state"
    bucket = f"daemon-{RUN}"
    try:
        info = _daemon("start", state)
        sm, s3, logs = _clients(state, info)
        killed = _sleeping_job(sm, s3, bucket)
        pid = wait_for_pid_in_logs(logs, killed)
        os.kill(info["pid"], signal.SIGKILL)
        wait_gone([info["pid"]])

        info = _daemon("start", state)
        sm, s3, logs = _clients(state, info)
        job = sm.describe_training_job(TrainingJobName=killed)
        assert job["TrainingJobStatus"] == "Failed" and job["SecondaryStatus"] == "Failed"
        assert "emulator stopped while this job was running" in job["FailureReason"]
        assert "TrainingEndTime" in job
        wait_gone([pid])
        assert job_processes(killed) == []
        assert s3.head_object(Bucket=bucket, Key="code/sourcedir.tar.gz")["ContentLength"] > 0
        assert s3.head_object(Bucket=bucket, Key="data/csv/train/part-0.csv")["ContentLength"] > 0

        stopped = _sleeping_job(sm, s3, bucket)  # a clean `stop` ends a running job too
        pid = wait_for_pid_in_logs(logs, stopped)
        _daemon("stop", state)
        wait_gone([pid])
        assert job_processes(stopped) == []

        info = _daemon("start", state)
        sm, s3, logs = _clients(state, info)
        job = sm.describe_training_job(TrainingJobName=stopped)
        assert job["TrainingJobStatus"] == "Failed"
        assert "emulator was stopped" in job["FailureReason"]
        assert sm.describe_training_job(TrainingJobName=killed)["TrainingJobStatus"] == "Failed"
    finally:
        subprocess.run([*CLI, "stop", "--state-dir", str(state)], capture_output=True, timeout=60)
