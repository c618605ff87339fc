"""Processing jobs end to end, driven by plain boto3 and botocore's waiter and paginator.

A ``preprocess.py`` uploaded to S3 runs as the job's ``ContainerEntrypoint`` with ``/opt/ml`` paths
in its arguments and in its own source, exactly as a notebook would submit it for the
scikit-learn processing image; the tests check what a user sees: the status, the S3 outputs with
their relative layout, the ``/aws/sagemaker/ProcessingJobs`` log stream, ``ExitMessage`` and
``FailureReason``.
"""

from __future__ import annotations

import io
import time
import uuid
from typing import Any

import numpy as np
import pytest
from botocore.exceptions import ClientError, WaiterError
from jobs_common import PROCESSING, ROLE, SKLEARN_IMAGE, WAITER
from processes import job_processes, pid_gone

pytestmark = pytest.mark.slow  # real processing jobs (local processes)

LOG_GROUP = "/aws/sagemaker/ProcessingJobs"
RUN = uuid.uuid4().hex[:6]

PREPROCESS = """\
import argparse, glob, os, sys, time

print(f"pid={os.getpid()}", flush=True)
parser = argparse.ArgumentParser()
parser.add_argument("--out", required=True)
parser.add_argument("--message")
parser.add_argument("--sleep", type=float, default=0.0)
parser.add_argument("--fail", action="store_true")
args = parser.parse_args()
if args.sleep:
    time.sleep(args.sleep)
if args.fail:
    print("checking labels", flush=True)
    raise ValueError("bad row 42: label must be 0 or 1")

import numpy as np

files = sorted(glob.glob("/opt/ml/processing/input/data/**/*.csv", recursive=True))
rows = np.vstack([np.loadtxt(f, delimiter=",", ndmin=2) for f in files])
print(f"read {len(rows)} rows from {len(files)} files")
split = int(len(rows) * 0.8)
os.makedirs(os.path.join(args.out, "nested"), exist_ok=True)
np.savetxt(os.path.join(args.out, "train.csv"), rows[:split], delimiter=",")
np.savetxt(os.path.join(args.out, "nested", "validation.csv"), rows[split:], delimiter=",")
if args.message:
    with open("/opt/ml/output/message", "w") as fh:
        fh.write(args.message)
print("done")
"""


# --------------------------------------------------------------------------- helpers


def job_name(group: str) -> str:
    return f"{group}-{RUN}-{uuid.uuid4().hex[:8]}"


def code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return exc.value.response["Error"]["Code"]


def log_lines(logs: Any, name: str) -> list[str]:
    """Messages of the job's log stream(s) ``<job>/algo-N-<epoch>``, read with GetLogEvents."""
    streams = logs.describe_log_streams(logGroupName=LOG_GROUP, logStreamNamePrefix=f"{name}/")["logStreams"]
    lines: list[str] = []
    for stream in sorted(s["logStreamName"] for s in streams):
        token = None
        while True:
            kwargs = {"nextToken": token} if token else {"startFromHead": True}
            page = logs.get_log_events(logGroupName=LOG_GROUP, logStreamName=stream, **kwargs)
            lines += [event["message"] for event in page["events"]]
            if page["nextForwardToken"] == token:
                break
            token = page["nextForwardToken"]
    return lines


def processing_request(name: str, data: dict[str, Any], *args: str, max_runtime: int = 600,
                       **extra: Any) -> dict[str, Any]:
    uri = data["uri"]
    return {
        "ProcessingJobName": name,
        "RoleArn": ROLE,
        "AppSpecification": {
            "ImageUri": SKLEARN_IMAGE,
            "ContainerEntrypoint": ["python3", "/opt/ml/processing/input/code/preprocess.py"],
            "ContainerArguments": ["--out", "/opt/ml/processing/output/train", *args],
        },
        "ProcessingInputs": [
            {"InputName": "code", "S3Input": {
                "S3Uri": f"{uri}/code/preprocess.py", "LocalPath": "/opt/ml/processing/input/code",
                "S3DataType": "S3Prefix", "S3InputMode": "File"}},
            {"InputName": "data", "S3Input": {
                "S3Uri": f"{uri}/raw/", "LocalPath": "/opt/ml/processing/input/data",
                "S3DataType": "S3Prefix", "S3InputMode": "File", "S3DataDistributionType": "FullyReplicated"}},
        ],
        "ProcessingOutputConfig": {"Outputs": [
            {"OutputName": "train", "S3Output": {
                "S3Uri": f"{uri}/processed/{name}/train", "LocalPath": "/opt/ml/processing/output/train",
                "S3UploadMode": "EndOfJob"}},
        ]},
        "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large",
                                                  "VolumeSizeInGB": 5}},
        "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime},
        **extra,
    }


def csv_bytes(rows: np.ndarray) -> bytes:
    buf = io.StringIO()
    np.savetxt(buf, rows, delimiter=",", fmt="%.6g")
    return buf.getvalue().encode()


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def data(s3) -> dict[str, Any]:
    bucket = f"processing-jobs-{RUN}"
    s3.create_bucket(Bucket=bucket)
    rng = np.random.default_rng(7)
    s3.put_object(Bucket=bucket, Key="code/preprocess.py", Body=PREPROCESS.encode())
    s3.put_object(Bucket=bucket, Key="raw/part-0.csv", Body=csv_bytes(rng.normal(size=(120, 4))))
    s3.put_object(Bucket=bucket, Key="raw/more/part-1.csv", Body=csv_bytes(rng.normal(size=(80, 4))))
    return {"bucket": bucket, "uri": f"s3://{bucket}", "rows": 200}


@pytest.fixture(scope="module")
def completed(sm, data) -> dict[str, Any]:
    """A processing job that succeeds, awaited with botocore's own waiter."""
    name = job_name("prep")
    arn = sm.create_processing_job(**processing_request(
        name, data, "--message", "wrote 2 files", Environment={"MODE": "fast"},
        Tags=[{"Key": "team", "Value": "ml"}]))["ProcessingJobArn"]
    assert arn == f"arn:aws:sagemaker:us-east-1:123456789012:processing-job/{name}"
    assert sm.describe_processing_job(ProcessingJobName=name)["ProcessingJobStatus"] == "InProgress"
    sm.get_waiter("processing_job_completed_or_stopped").wait(ProcessingJobName=name, WaiterConfig=WAITER)
    return sm.describe_processing_job(ProcessingJobName=name)


@pytest.fixture(scope="module")
def failed(sm, data) -> dict[str, Any]:
    name = job_name("fail")
    sm.create_processing_job(**processing_request(name, data, "--fail"))
    return PROCESSING.wait(sm, name)


# --------------------------------------------------------------------------- tests


def test_processing_job_completes_and_uploads_outputs_with_their_layout(completed, s3, data):
    job = completed
    name = job["ProcessingJobName"]
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    assert job["ProcessingStartTime"] <= job["ProcessingEndTime"]
    assert "FailureReason" not in job
    assert job["AppSpecification"]["ContainerEntrypoint"] == ["python3", "/opt/ml/processing/input/code/preprocess.py"]
    assert job["Environment"] == {"MODE": "fast"}
    prefix = f"processed/{name}/train"
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=data["bucket"], Prefix=f"{prefix}/")["Contents"])
    assert keys == [f"{prefix}/nested/validation.csv", f"{prefix}/train.csv"]
    counts = [len(s3.get_object(Bucket=data["bucket"], Key=key)["Body"].read().decode().splitlines())
              for key in keys]
    assert sorted(counts) == [40, 160], "the script read both input files, including the nested one"


def test_processing_logs_and_exit_message(completed, logs, data):
    lines = log_lines(logs, completed["ProcessingJobName"])
    assert f"read {data['rows']} rows from 2 files" in lines
    assert lines[-1] == "done"
    assert completed["ExitMessage"] == "wrote 2 files"


def test_failing_script_is_failed_with_the_last_error_line(failed, sm, logs):
    job = failed
    assert job["ProcessingJobStatus"] == "Failed"
    assert job["FailureReason"].startswith("AlgorithmError:")
    assert "ValueError: bad row 42: label must be 0 or 1" in job["FailureReason"]
    assert "ExitMessage" not in job
    assert "ValueError: bad row 42: label must be 0 or 1" in log_lines(logs, job["ProcessingJobName"])
    with pytest.raises(WaiterError, match="terminal failure state"):
        sm.get_waiter("processing_job_completed_or_stopped").wait(
            ProcessingJobName=job["ProcessingJobName"], WaiterConfig={"Delay": 1, "MaxAttempts": 3})


def test_stop_processing_job_stops_the_script(sm, logs, data):
    name = job_name("stop")
    sm.create_processing_job(**processing_request(name, data, "--sleep", "60"))
    deadline = time.monotonic() + 30
    pid = None
    while pid is None:
        assert time.monotonic() < deadline, "the script never printed its pid"
        try:
            pid = next((int(line[4:]) for line in log_lines(logs, name) if line.startswith("pid=")), None)
        except logs.exceptions.ResourceNotFoundException:
            pass
        time.sleep(0.1)
    assert job_processes(name, "PROCESSING_JOB_NAME"), "the job's processes are visible while it runs"
    started = time.monotonic()
    sm.stop_processing_job(ProcessingJobName=name)
    assert sm.describe_processing_job(ProcessingJobName=name)["ProcessingJobStatus"] in ("Stopping", "Stopped")
    sm.get_waiter("processing_job_completed_or_stopped").wait(ProcessingJobName=name, WaiterConfig=WAITER)
    job = sm.describe_processing_job(ProcessingJobName=name)
    assert job["ProcessingJobStatus"] == "Stopped"
    assert time.monotonic() - started < 10
    deadline = time.monotonic() + 5
    while not pid_gone(pid) or job_processes(name, "PROCESSING_JOB_NAME"):
        assert time.monotonic() < deadline, "the script outlived StopProcessingJob"
        time.sleep(0.05)
    with pytest.raises(ClientError) as exc:
        sm.stop_processing_job(ProcessingJobName=name)
    assert code(exc) == "ValidationException"
    assert "ProcessingJobSummaries" in sm.list_processing_jobs(MaxResults=1)


def test_list_processing_jobs_filters_sorts_and_paginates(sm, completed, failed):
    ours = sorted([completed["ProcessingJobName"], failed["ProcessingJobName"]])
    listed = sm.list_processing_jobs(NameContains=RUN, SortBy="Name", SortOrder="Ascending")["ProcessingJobSummaries"]
    names = [s["ProcessingJobName"] for s in listed]
    assert [n for n in names if n in ours] == ours
    summary = next(s for s in listed if s["ProcessingJobName"] == failed["ProcessingJobName"])
    assert summary["ProcessingJobStatus"] == "Failed" and "bad row 42" in summary["FailureReason"]
    assert {"ProcessingJobArn", "CreationTime", "ProcessingEndTime", "LastModifiedTime"} <= set(summary)
    only_failed = sm.list_processing_jobs(NameContains=RUN, StatusEquals="Failed")["ProcessingJobSummaries"]
    assert [s["ProcessingJobName"] for s in only_failed] == [failed["ProcessingJobName"]]
    first = sm.list_processing_jobs(NameContains=RUN, SortBy="Name", SortOrder="Descending", MaxResults=1)
    assert len(first["ProcessingJobSummaries"]) == 1 and first["NextToken"]
    pages = sm.get_paginator("list_processing_jobs").paginate(
        NameContains=RUN, SortBy="Name", SortOrder="Ascending", PaginationConfig={"PageSize": 1})
    paged = [s["ProcessingJobName"] for page in pages for s in page["ProcessingJobSummaries"]]
    assert paged == names


def test_tags_on_processing_jobs(sm, completed):
    arn = completed["ProcessingJobArn"]
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "team", "Value": "ml"}]
    sm.add_tags(ResourceArn=arn, Tags=[{"Key": "stage", "Value": "dev"}])
    sm.delete_tags(ResourceArn=arn, TagKeys=["team"])
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "stage", "Value": "dev"}]


def test_processing_request_errors(sm, data, completed):
    with pytest.raises(ClientError) as exc:
        sm.create_processing_job(**processing_request(completed["ProcessingJobName"], data))
    assert code(exc) == "ResourceInUse"
    for call in (sm.describe_processing_job, sm.stop_processing_job):
        with pytest.raises(ClientError) as exc:
            call(ProcessingJobName=job_name("missing"))
        assert code(exc) == "ValidationException"
        assert exc.value.response["Error"]["Message"] == "Requested resource not found."
    request = processing_request(job_name("badpath"), data)
    request["ProcessingInputs"][1]["S3Input"]["LocalPath"] = "/tmp/data"
    with pytest.raises(ClientError) as exc:
        sm.create_processing_job(**request)
    assert code(exc) == "ValidationException" and "/opt/ml/processing/" in exc.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as exc:
        sm.create_processing_job(**processing_request("bad_name!", data))
    assert exc.value.response["Error"]["Message"].startswith(
        "1 validation error detected: Value 'bad_name!' at 'processingJobName' failed to satisfy constraint")
    assert sm.describe_processing_job(ProcessingJobName=completed["ProcessingJobName"])["ProcessingJobStatus"] == \
        "Completed"


def test_unknown_processing_image_fails_naming_the_runnable_images(sm, data):
    name = job_name("image")
    request = processing_request(name, data)
    request["AppSpecification"]["ImageUri"] = "docker.io/foo"
    sm.create_processing_job(**request)
    job = PROCESSING.wait(sm, name)
    assert job["ProcessingJobStatus"] == "Failed"
    assert "docker.io/foo" in job["FailureReason"] and "sagemaker-scikit-learn" in job["FailureReason"]
