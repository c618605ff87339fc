"""@step pipelines and @remote functions with the genuine SDK V3, run as local training jobs.

Outside Studio on Python 3.11 the SDK refuses to compile a @step without a default image: the
emulator's environment names one (``SAGEMAKER_INTERNAL_IMAGE_URI``), which the emulator runs with its
own launcher instead of the SDK's ``/opt/ml``-bound ``job_driver.sh``.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import WaiterError

pytestmark = pytest.mark.slow


@pytest.fixture
def sdk(emulator_env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A session and role; the current directory (the workspace the SDK zips) is an empty temp dir."""
    from sagemaker.core.helper.session_helper import Session, get_execution_role

    monkeypatch.chdir(tmp_path)
    assert emulator_env["SAGEMAKER_INTERNAL_IMAGE_URI"].endswith("/sagemaker-distribution-prod:4.4-cpu")
    return Session(), get_execution_role()


def test_step_functions_pass_results_through_s3_and_a_condition(sdk):
    from sagemaker.core.workflow.conditions import ConditionGreaterThanOrEqualTo
    from sagemaker.core.workflow.parameters import ParameterInteger
    from sagemaker.mlops.workflow import ConditionStep, FailStep, Pipeline
    from sagemaker.mlops.workflow.function_step import step

    session, role = sdk
    count = ParameterInteger(name="Count", default_value=4)

    @step(name="make", instance_type="ml.m5.large", role=role)
    def make(n):
        return {"values": list(range(n)), "total": sum(range(n))}

    @step(name="score", instance_type="ml.m5.large", role=role)
    def score(data):
        return data["total"] * 2

    scored = score(make(count))
    check = ConditionStep(name="check", conditions=[ConditionGreaterThanOrEqualTo(left=scored, right=10)],
                          if_steps=[], else_steps=[FailStep(name="low", error_message="score below 10")])
    pipeline = Pipeline(name=f"Steps{uuid.uuid4().hex[:6]}", parameters=[count], steps=[check],
                        sagemaker_session=session)
    pipeline.upsert(role_arn=role)
    execution = pipeline.start()
    execution.wait(delay=1, max_attempts=240)
    steps = {s["StepName"]: s for s in execution.list_steps()}
    assert [steps[n]["StepStatus"] for n in ("make", "score", "check")] == ["Succeeded"] * 3
    assert steps["score"]["StartTime"] >= steps["make"]["EndTime"], "score waits for make's result"
    assert steps["check"]["Metadata"]["Condition"]["Outcome"] == "True"
    assert execution.result("score") == 12  # the SDK finds the job from the lower-cased ARN in the metadata
    assert execution.result("make")["values"] == [0, 1, 2, 3]


def test_a_failing_step_fails_with_its_exception_and_uploads_it(sdk, tmp_path: Path):
    from sagemaker.mlops.workflow import Pipeline
    from sagemaker.mlops.workflow.function_step import step

    session, role = sdk
    name = f"Boom{uuid.uuid4().hex[:6]}"

    @step(name="explode", instance_type="ml.m5.large", role=role)
    def explode(x):
        raise ValueError(f"no good: {x}")

    pipeline = Pipeline(name=name, steps=[explode(3)], sagemaker_session=session)
    pipeline.upsert(role_arn=role)
    execution = pipeline.start()
    with pytest.raises(WaiterError):
        execution.wait(delay=1, max_attempts=240)
    failed = execution.list_steps()[0]
    assert failed["StepStatus"] == "Failed"
    assert failed["FailureReason"] == "AlgorithmError: ValueError('no good: 3')"
    execution_id = execution.arn.rsplit("/", 1)[1]
    listed = boto3.client("s3").list_objects_v2(Bucket=session.default_bucket(),
                                                Prefix=f"{name}/{execution_id}/explode/exception/")
    assert listed.get("KeyCount", 0) > 0, "the exception is serialized to S3 for the client"

    (tmp_path / "requirements.txt").write_text("numpy\nsurely-not-a-package-here==1.0\n")

    @step(name="needs", instance_type="ml.m5.large", role=role, dependencies=str(tmp_path / "requirements.txt"))
    def needs():
        return 1

    pipeline = Pipeline(name=f"{name}Deps", steps=[needs()], sagemaker_session=session)
    pipeline.upsert(role_arn=role)
    execution = pipeline.start()
    with pytest.raises(WaiterError):
        execution.wait(delay=1, max_attempts=240)
    reason = execution.list_steps()[0]["FailureReason"]
    assert "surely-not-a-package-here==1.0" in reason and "numpy" not in reason.split(":", 2)[-1].split(".")[0]


def test_remote_decorator_runs_a_function_as_a_training_job(sdk):
    from sagemaker.core.remote_function import remote

    session, role = sdk

    @remote(instance_type="ml.m5.large", role=role, sagemaker_session=session)
    def add(a, b):
        return {"sum": a + b, "pid": os.getpid()}

    result = add(2, 3)
    assert result["sum"] == 5 and result["pid"] != os.getpid()
    jobs = boto3.client("sagemaker").list_training_jobs(NameContains="add-", SortBy="CreationTime")
    newest = jobs["TrainingJobSummaries"][0]
    assert newest["TrainingJobStatus"] == "Completed"
