"""helpers.prerequisites: found where the earlier lab left it, else produced the quick way, and said so.

The AWS path runs against botocore's Stubber (every request checked against the service model); the
local path trains real jobs on the session's emulator, with a sample of the data and few rounds.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import json
import os
import uuid
from pathlib import Path

import pytest
from botocore.response import StreamingBody
from stubbed import StubbedSession

from helpers import data, prerequisites
from helpers.workshop import Workshop
from sagemaker_emulator.config import ROLE_ARN

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
ACCOUNT = "111122223333"
BUCKET = f"sagemaker-{REGION}-{ACCOUNT}"
MIRROR = Path(os.environ.get(data.MIRROR_ENV) or "/work/shared/datasets")
RUN = uuid.uuid4().hex[:6]
NOW = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def solution_source(name: str) -> str:
    cells = json.loads((ROOT / "solutions" / name).read_text(encoding="utf-8"))["cells"]
    return "\n".join("".join(cell["source"]) for cell in cells if cell["cell_type"] == "code")


def test_the_labs_leave_things_where_the_helper_looks() -> None:
    """The contract between the labs and the helper, read from the solution notebooks themselves."""
    assert f'prefix = "{prerequisites.PREFIX}"' in solution_source("01_feature_engineering.ipynb")
    names = ", ".join(f'"{name}"' for name in prerequisites.CHANNELS)
    assert f"for name in ({names})" in solution_source("01_feature_engineering.ipynb")
    training = solution_source("02_training.ipynb")
    assert f'base_job_name="{prerequisites.BASELINE_JOB}"' in training
    for name, value in prerequisites.HYPERPARAMETERS.items():
        assert f'"{name}": {json.dumps(value)}' in training or f'"{name}": {name}' in training, name
    assert f'Key=f"{{prefix}}/{prerequisites.BEST_MODEL_KEY}"' in solution_source("03_tuning.ipynb")
    for later in ("02_training.ipynb", "03_tuning.ipynb", "04_deployment.ipynb", "05_debug_and_explain.ipynb",
                  "06_monitoring.ipynb", "08_mlops.ipynb"):
        assert "prerequisites.ensure_channels(ws, prefix)" in solution_source(later), later


# --------------------------------------------------------------------------- sagemaker mode: only AWS API calls


def summary(name: str) -> dict:
    return {"TrainingJobName": name, "TrainingJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/{name}",
            "CreationTime": NOW, "TrainingJobStatus": "Completed"}


def description(name: str) -> dict:
    return {**summary(name), "SecondaryStatus": "Completed", "StoppingCondition": {"MaxRuntimeInSeconds": 86400},
            "ModelArtifacts": {"S3ModelArtifacts": f"s3://{BUCKET}/output/{name}/output/model.tar.gz"}}


def aws_workshop(responses: dict) -> Workshop:
    session = StubbedSession(responses, region_name=REGION, aws_access_key_id="AKIAEXAMPLEEXAMPLE01",
                             aws_secret_access_key="s" * 40)
    return Workshop("sagemaker", REGION, BUCKET, ROLE_ARN, None, session)


def test_on_aws_what_the_earlier_labs_left_is_used(capsys: pytest.CaptureFixture[str]) -> None:
    newest = "sm-immday-xgboost-20250101100000"
    body = b"s3://bucket/tuned/model.tar.gz"
    found_channels = aws_workshop({"s3": [("ListObjectsV2", {"KeyCount": 1})] * 3})
    found_model = aws_workshop({"sagemaker": [
        ("ListTrainingJobs", {"TrainingJobSummaries": [summary("sm-immday-xgboost-script-20250101110000"),
                                                       summary(newest)]}),
        ("DescribeTrainingJob", description(newest))]})
    found_tuned = aws_workshop({"s3": [("GetObject", {"Body": StreamingBody(io.BytesIO(body), len(body))})]})

    channels = prerequisites.ensure_channels(found_channels)
    baseline = prerequisites.ensure_trained_model(found_model)
    tuned = prerequisites.ensure_tuned_model(found_tuned)

    assert channels == {name: f"s3://{BUCKET}/{prerequisites.PREFIX}/{name}" for name in prerequisites.CHANNELS}
    assert baseline == description(newest)["ModelArtifacts"]["S3ModelArtifacts"], "the script-mode job is skipped"
    assert tuned == body.decode()
    assert capsys.readouterr().out == "", "nothing was missing, so nothing to say"
    assert found_channels.boto_session.calls == {"s3": ["ListObjectsV2"] * 3}
    assert found_model.boto_session.calls == {"sagemaker": ["ListTrainingJobs", "DescribeTrainingJob"]}
    assert found_tuned.boto_session.calls == {"s3": ["GetObject"]}


# --------------------------------------------------------------------------- local mode: the quick way, for real


@pytest.fixture
def local_workshop(emulator, emulator_env, boto_session, s3, monkeypatch: pytest.MonkeyPatch) -> Workshop:
    """A workshop on the session's emulator; the data is a 5 % sample and the jobs train 5 rounds."""
    from sagemaker.core.helper.session_helper import Session

    if not (MIRROR / data.ZIP_NAME).is_file():
        pytest.skip(f"no dataset mirror at {MIRROR}")
    cache = emulator.paths.root.parent / "prerequisites-data"
    monkeypatch.setattr(data, "load_bank_marketing", functools.partial(
        data.load_bank_marketing, sample_fraction=0.05, cache_dir=cache, mirror=MIRROR, progress=False))
    monkeypatch.setitem(prerequisites.HYPERPARAMETERS, "num_round", 5)
    monkeypatch.setattr(prerequisites, "BASELINE_JOB", f"prq-{RUN}-base")
    monkeypatch.setattr(prerequisites, "TUNED_JOB", f"prq-{RUN}-tuned")
    bucket = f"prerequisites-{RUN}"
    s3.create_bucket(Bucket=bucket)
    return Workshop("local", REGION, bucket, ROLE_ARN, Session(boto_session=boto_session), boto_session,
                    emulator.endpoint_url, emulator.paths.root)


@pytest.mark.slow
def test_locally_what_is_missing_is_produced_once_and_said(local_workshop: Workshop, s3,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    ws, prefix = local_workshop, f"prq/{RUN}"

    channels = prerequisites.ensure_channels(ws, prefix)
    assert "writing all three" in capsys.readouterr().out
    keys = {obj["Key"] for obj in s3.list_objects_v2(Bucket=ws.bucket, Prefix=prefix)["Contents"]}
    assert keys == {f"{prefix}/{key}" for key in ("train/train.csv", "validation/validation.csv",
                                                   "test/test_x.csv", "test/test_y.csv")}
    assert prerequisites.ensure_channels(ws, prefix) == channels
    assert capsys.readouterr().out == ""

    baseline = prerequisites.ensure_trained_model(ws, prefix)
    assert "training one now" in capsys.readouterr().out
    assert baseline.startswith(ws.s3_uri(prefix, "output", prerequisites.BASELINE_JOB))
    assert prerequisites.ensure_trained_model(ws, prefix) == baseline
    assert capsys.readouterr().out == ""

    tuned = prerequisites.ensure_tuned_model(ws, prefix)
    assert "training a stand-in" in capsys.readouterr().out
    assert tuned != baseline
    assert prerequisites.ensure_tuned_model(ws, prefix) == tuned
    assert "using the stand-in trained earlier" in capsys.readouterr().out
    s3.put_object(Bucket=ws.bucket, Key=f"{prefix}/{prerequisites.BEST_MODEL_KEY}", Body=b"s3://b/best.tar.gz")
    assert prerequisites.ensure_tuned_model(ws, prefix) == "s3://b/best.tar.gz"
