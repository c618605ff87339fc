"""SageMaker Pipelines with plain boto3: definitions checked, DAGs run as real jobs, conditions, failures,
retry, cache, parallelism, stop and a daemon restart.

The pipeline is the Immersion Day's shape, small: prepare (processing) → train (built-in XGBoost) →
evaluate (processing, writes ``evaluation.json`` as a property file) → condition on the AUC → register
the model (and create a Model) or fail. The evaluation script reports the AUC it is told to (a
parameter), so each test picks the branch it needs.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from artifacts import ensure_bucket
from botocore.exceptions import ClientError
from jobs_common import ROLE, SKLEARN_IMAGE, XGBOOST_IMAGE

pytestmark = pytest.mark.slow

BUCKET = "pipeline-tests"
RUN = uuid.uuid4().hex[:6]
CODE = f"s3://{BUCKET}/code/{RUN}"

PREPARE = """\
import argparse, os, time
import numpy as np
parser = argparse.ArgumentParser()
parser.add_argument("--sleep", type=float, default=0)
args = parser.parse_args()
time.sleep(args.sleep)
rng = np.random.default_rng(0)
x = rng.normal(size=(300, 3))
y = (x[:, 0] + 0.3 * rng.normal(size=300) > 0).astype(int)
os.makedirs("/opt/ml/processing/train", exist_ok=True)
np.savetxt("/opt/ml/processing/train/train.csv", np.column_stack([y, x]), delimiter=",", fmt="%.5f")
print("prepared", flush=True)
"""

EVALUATE = """\
import argparse, glob, json, os
parser = argparse.ArgumentParser()
parser.add_argument("--auc", type=float, required=True)
args = parser.parse_args()
if glob.glob("/opt/ml/processing/flags/fail*"):
    raise RuntimeError("evaluation refused: a fail flag is set")
assert glob.glob("/opt/ml/processing/model/*"), "the model artifact was not staged"
os.makedirs("/opt/ml/processing/evaluation", exist_ok=True)
with open("/opt/ml/processing/evaluation/evaluation.json", "w") as fh:
    json.dump({"metrics": {"auc": {"value": args.auc}}}, fh)
"""


def _s3_input(name: str, uri: Any, local: str) -> dict[str, Any]:
    return {"InputName": name, "S3Input": {"S3Uri": uri, "LocalPath": local, "S3DataType": "S3Prefix",
                                           "S3InputMode": "File"}}


def _processing(script: str, inputs: list[dict[str, Any]], outputs: dict[str, Any], arguments: list[Any]
                ) -> dict[str, Any]:
    return {
        "ProcessingResources": {"ClusterConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1,
                                                  "VolumeSizeInGB": 30}},
        "AppSpecification": {"ImageUri": SKLEARN_IMAGE, "ContainerArguments": arguments,
                             "ContainerEntrypoint": ["python3", f"/opt/ml/processing/input/code/{script}"]},
        "RoleArn": ROLE,
        "ProcessingInputs": [_s3_input("code", f"{CODE}/{script}", "/opt/ml/processing/input/code"), *inputs],
        "ProcessingOutputConfig": {"Outputs": [
            {"OutputName": name, "S3Output": {"S3Uri": uri, "LocalPath": f"/opt/ml/processing/{name}",
                                              "S3UploadMode": "EndOfJob"}} for name, uri in outputs.items()]},
    }


def definition(tag: str, cache: bool = False, extra_steps: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The Immersion Day pipeline in small; ``tag`` keeps the S3 locations of one test apart."""
    base = f"s3://{BUCKET}/{tag}"
    cache_config = {"CacheConfig": {"Enabled": True, "ExpireAfter": "P30D"}} if cache else {}
    prepare = {"Name": "Prepare", "Type": "Processing", **cache_config,
               "Arguments": _processing("prepare.py", [], {"train": f"{base}/prepared"},
                                        ["--sleep", {"Get": "Parameters.PrepareSeconds"}])}
    train = {"Name": "Train", "Type": "Training", **cache_config, "Arguments": {
        "AlgorithmSpecification": {"TrainingImage": XGBOOST_IMAGE, "TrainingInputMode": "File"},
        "HyperParameters": {"objective": "binary:logistic", "num_round": {"Get": "Parameters.NumRound"},
                            "max_depth": "3"},
        "InputDataConfig": [{"ChannelName": "train", "ContentType": "text/csv", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3DataDistributionType": "FullyReplicated",
            "S3Uri": {"Get": "Steps.Prepare.ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri"}}}}],
        "OutputDataConfig": {"S3OutputPath": f"{base}/model"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30},
        "RoleArn": ROLE, "StoppingCondition": {"MaxRuntimeInSeconds": 600}}}
    evaluate = {"Name": "Evaluate", "Type": "Processing",
                "PropertyFiles": [{"PropertyFileName": "EvaluationReport", "OutputName": "evaluation",
                                   "FilePath": "evaluation.json"}],
                "Arguments": _processing(
                    "evaluate.py",
                    [_s3_input("model", {"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"},
                               "/opt/ml/processing/model"),
                     _s3_input("flags", f"{base}/flags", "/opt/ml/processing/flags")],
                    {"evaluation": {"Std:Join": {"On": "/", "Values": [f"{base}/eval",
                                                                      {"Get": "Execution.PipelineExecutionId"}]}}},
                    ["--auc", {"Get": "Parameters.ReportedAuc"}])}
    register = {"Name": "Register", "Type": "RegisterModel", "Arguments": {
        "ModelPackageGroupName": f"{tag}-models",
        "InferenceSpecification": {"Containers": [{"Image": XGBOOST_IMAGE, "ModelDataUrl": {
            "Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}}], "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"]},
        "ModelApprovalStatus": "PendingManualApproval",
        "CustomerMetadataProperties": {"auc": {"Std:JsonGet": {
            "PropertyFile": {"Get": "Steps.Evaluate.PropertyFiles.EvaluationReport"}, "Path": "metrics.auc.value"}}
            }}}
    model = {"Name": "CreateModel", "Type": "Model", "Arguments": {
        "ExecutionRoleArn": ROLE, "PrimaryContainer": {"Image": XGBOOST_IMAGE, "ModelDataUrl": {
            "Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}}}}
    fail = {"Name": "TooWeak", "Type": "Fail", "Arguments": {"ErrorMessage": {"Std:Join": {
        "On": " ", "Values": ["AUC below", {"Get": "Parameters.AucThreshold"}]}}}}
    check = {"Name": "CheckAuc", "Type": "Condition", "Arguments": {
        "Conditions": [{"Type": "GreaterThanOrEqualTo", "LeftValue": {"Std:JsonGet": {
            "PropertyFile": {"Get": "Steps.Evaluate.PropertyFiles.EvaluationReport"}, "Path": "metrics.auc.value"}},
            "RightValue": {"Get": "Parameters.AucThreshold"}}],
        "IfSteps": [register, model], "ElseSteps": [fail]}}
    return {"Version": "2020-12-01", "Metadata": {},
            "Parameters": [{"Name": "NumRound", "Type": "Integer", "DefaultValue": 5},
                           {"Name": "ReportedAuc", "Type": "Float", "DefaultValue": 0.9},
                           {"Name": "AucThreshold", "Type": "Float", "DefaultValue": 0.7},
                           {"Name": "PrepareSeconds", "Type": "Float", "DefaultValue": 0.0}],
            "Steps": [prepare, train, evaluate, check, *(extra_steps or [])]}


@pytest.fixture(scope="module")
def ready(client) -> None:
    s3 = client("s3")
    ensure_bucket(s3, BUCKET)
    for script, body in (("prepare.py", PREPARE), ("evaluate.py", EVALUATE)):
        s3.put_object(Bucket=BUCKET, Key=f"code/{RUN}/{script}", Body=body.encode())


def _create(sm: Any, doc: dict[str, Any], **kwargs: Any) -> str:
    name = f"p-{uuid.uuid4().hex[:8]}"
    sm.create_pipeline(PipelineName=name, RoleArn=ROLE, PipelineDefinition=json.dumps(doc), **kwargs)
    return name


def _flag_ok(s3: Any, tag: str) -> None:
    s3.put_object(Bucket=BUCKET, Key=f"{tag}/flags/ok", Body=b"ok")


def wait_execution(sm: Any, arn: str, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        execution = sm.describe_pipeline_execution(PipelineExecutionArn=arn)
        if execution["PipelineExecutionStatus"] not in ("Executing", "Stopping"):
            return execution
        if time.monotonic() > deadline:
            steps = sm.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"]
            raise AssertionError(f"{arn} still {execution['PipelineExecutionStatus']} after {timeout}s: "
                                 f"{[(s['StepName'], s['StepStatus']) for s in steps]}")
        time.sleep(0.2)


def steps_of(sm: Any, arn: str) -> dict[str, dict[str, Any]]:
    listed = sm.list_pipeline_execution_steps(PipelineExecutionArn=arn, SortOrder="Ascending")
    return {s["StepName"]: s for s in listed["PipelineExecutionSteps"]}


def _error(call: Any, **kwargs: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    return info.value.response["Error"]["Code"], info.value.response["Error"]["Message"]


# --------------------------------------------------------------------------- definitions


def _with(doc: dict[str, Any], step: int, **changes: Any) -> dict[str, Any]:
    doc = json.loads(json.dumps(doc))
    doc["Steps"][step].update(changes)
    return doc


@pytest.mark.parametrize("mutate, phrase", [
    (lambda d: "{not json", "not valid JSON"),
    (lambda d: json.dumps(_with(d, 1, DependsOn=["Nowhere"])), "depends on Nowhere"),
    (lambda d: json.dumps(_with(d, 0, DependsOn=["Evaluate"])), "cycle"),
    (lambda d: json.dumps(d).replace("metrics.auc.value", "metrics..auc[x"), "Invalid JSON path"),
    (lambda d: json.dumps(d).replace("Steps.Train.ModelArtifacts", "Steps.Trian.ModelArtifacts"),
     "refers to step Trian"),
    (lambda d: json.dumps(d).replace("Parameters.NumRound", "Parameters.Rounds"), "parameter Rounds"),
    (lambda d: json.dumps(_with(d, 1, Name="Prepare")), "used more than once"),
    (lambda d: json.dumps(_with(d, 1, Type="Lambda")), "does not run"),
    (lambda d: json.dumps({**d, "Version": "2019-01-01"}), "Version"),
])
def test_malformed_definitions_are_validation_errors_and_create_nothing(sm, mutate, phrase):
    name = f"bad-{uuid.uuid4().hex[:8]}"
    code, message = _error(sm.create_pipeline, PipelineName=name, RoleArn=ROLE,
                           PipelineDefinition=mutate(definition("bad")))
    assert code == "ValidationException" and phrase in message, message
    assert _error(sm.describe_pipeline, PipelineName=name)[0] == "ResourceNotFound"


def test_pipeline_crud_versions_and_duplicate_name(sm):
    doc = definition("crud")
    name = _create(sm, doc, PipelineDescription="first")
    described = sm.describe_pipeline(PipelineName=name)
    assert described["PipelineStatus"] == "Active" and json.loads(described["PipelineDefinition"]) == doc
    code, message = _error(sm.create_pipeline, PipelineName=name, RoleArn=ROLE, PipelineDefinition=json.dumps(doc))
    assert code == "ValidationException" and "must be unique within an AWS account" in message  # upsert's cue
    doc2 = json.loads(json.dumps(doc))
    doc2["Parameters"][0]["DefaultValue"] = 7
    assert sm.update_pipeline(PipelineName=name, PipelineDefinition=json.dumps(doc2))["PipelineVersionId"] == 2
    assert json.loads(sm.describe_pipeline(PipelineName=name, PipelineVersionId=1)["PipelineDefinition"]) == doc
    versions = sm.list_pipeline_versions(PipelineName=name)["PipelineVersionSummaries"]
    assert [v["PipelineVersionId"] for v in versions] == [2, 1]
    assert name in [p["PipelineName"] for p in sm.list_pipelines(PipelineNamePrefix=name)["PipelineSummaries"]]
    code, message = _error(sm.start_pipeline_execution, PipelineName=name,
                           PipelineParameters=[{"Name": "Nope", "Value": "1"}])
    assert code == "ValidationException" and "Nope" in message
    code, message = _error(sm.start_pipeline_execution, PipelineName=name,
                           PipelineParameters=[{"Name": "NumRound", "Value": "many"}])
    assert code == "ValidationException" and "Integer" in message
    assert sm.list_pipeline_executions(PipelineName=name)["PipelineExecutionSummaries"] == []
    sm.delete_pipeline(PipelineName=name)
    assert _error(sm.describe_pipeline, PipelineName=name)[0] == "ResourceNotFound"


# --------------------------------------------------------------------------- runs


def test_dag_runs_in_order_and_the_true_branch_registers_the_model(sm, s3, ready):
    tag = f"ok-{RUN}"
    _flag_ok(s3, tag)
    name = _create(sm, definition(tag))
    arn = sm.start_pipeline_execution(PipelineName=name, PipelineParameters=[
        {"Name": "ReportedAuc", "Value": "0.91"}])["PipelineExecutionArn"]
    assert arn.startswith(f"arn:aws:sagemaker:us-east-1:123456789012:pipeline/{name}/execution/")
    execution = wait_execution(sm, arn)
    steps = steps_of(sm, arn)
    assert execution["PipelineExecutionStatus"] == "Succeeded", {n: s.get("FailureReason") for n, s in steps.items()}
    assert list(steps)[:4] == ["Prepare", "Train", "Evaluate", "CheckAuc"]
    assert set(steps) == {"Prepare", "Train", "Evaluate", "CheckAuc", "Register", "CreateModel"}
    for before, after in (("Prepare", "Train"), ("Train", "Evaluate"), ("Evaluate", "CheckAuc"),
                          ("CheckAuc", "Register")):
        assert steps[before]["EndTime"] <= steps[after]["StartTime"], (before, after)
    assert all(s["StepStatus"] == "Succeeded" for s in steps.values())
    assert steps["CheckAuc"]["Metadata"] == {"Condition": {"Outcome": "True"}}
    job = steps["Train"]["Metadata"]["TrainingJob"]["Arn"].rsplit("/", 1)[1]
    assert job.startswith("pipelines-") and "-train-" in job
    # the SDK cuts job names out of lower-case ARNs: Describe finds the mixed-case job from them
    training = sm.describe_training_job(TrainingJobName=job)
    assert training["TrainingJobStatus"] == "Completed" and "-Train-" in training["TrainingJobName"]
    assert training["HyperParameters"]["num_round"] == "5"
    package = sm.describe_model_package(ModelPackageName=steps["Register"]["Metadata"]["RegisterModel"]["Arn"])
    assert package["ModelPackageGroupName"] == f"{tag}-models", "the register step creates its group"
    assert package["CustomerMetadataProperties"] == {"auc": "0.91"}
    assert package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"] == \
        training["ModelArtifacts"]["S3ModelArtifacts"]
    model = steps["CreateModel"]["Metadata"]["Model"]["Arn"].rsplit("/", 1)[1]
    model = sm.list_models(NameContains=model)["Models"][0]["ModelName"]
    assert sm.describe_model(ModelName=model)["PrimaryContainer"]["ModelDataUrl"] == package[
        "InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
    parameters = sm.list_pipeline_parameters_for_execution(PipelineExecutionArn=arn)["PipelineParameters"]
    assert {p["Name"]: p["Value"] for p in parameters} == {"NumRound": "5", "ReportedAuc": "0.91",
                                                          "AucThreshold": "0.7", "PrepareSeconds": "0.0"}
    snapshot = sm.describe_pipeline_definition_for_execution(PipelineExecutionArn=arn)["PipelineDefinition"]
    assert json.loads(snapshot) == definition(tag)
    newest = sm.list_pipeline_executions(PipelineName=name, SortBy="CreationTime", SortOrder="Descending",
                                         MaxResults=1)["PipelineExecutionSummaries"][0]
    assert newest["PipelineExecutionArn"] == arn and newest["PipelineExecutionStatus"] == "Succeeded"


def test_false_branch_fail_step_fails_the_execution_with_its_message_on_the_step(sm, s3, ready):
    tag = f"weak-{RUN}"
    _flag_ok(s3, tag)
    name = _create(sm, definition(tag))
    arn = sm.start_pipeline_execution(PipelineName=name, PipelineParameters=[
        {"Name": "ReportedAuc", "Value": "0.5"}, {"Name": "AucThreshold", "Value": "0.75"}])["PipelineExecutionArn"]
    execution = wait_execution(sm, arn)
    steps = steps_of(sm, arn)
    assert execution["PipelineExecutionStatus"] == "Failed"
    assert execution["FailureReason"] == "Step failure: One or multiple steps failed."
    assert steps["CheckAuc"]["Metadata"] == {"Condition": {"Outcome": "False"}}
    assert steps["TooWeak"]["StepStatus"] == "Failed"
    assert steps["TooWeak"]["Metadata"] == {"Fail": {"ErrorMessage": "AUC below 0.75"}}
    assert "Register" not in steps and "CreateModel" not in steps
    summary = sm.list_pipeline_executions(PipelineName=name)["PipelineExecutionSummaries"][0]
    assert summary["PipelineExecutionFailureReason"] == execution["FailureReason"]


def test_failed_step_skips_dependents_and_retry_resumes_from_it(sm, s3, ready):
    tag = f"retry-{RUN}"
    _flag_ok(s3, tag)
    s3.put_object(Bucket=BUCKET, Key=f"{tag}/flags/fail", Body=b"1")
    name = _create(sm, definition(tag))
    arn = sm.start_pipeline_execution(PipelineName=name)["PipelineExecutionArn"]
    execution = wait_execution(sm, arn)
    steps = steps_of(sm, arn)
    assert execution["PipelineExecutionStatus"] == "Failed"
    assert steps["Evaluate"]["StepStatus"] == "Failed"
    assert "evaluation refused" in steps["Evaluate"]["FailureReason"]
    assert set(steps) == {"Prepare", "Train", "Evaluate"}, "dependents of a failed step never start"
    code, _ = _error(sm.stop_pipeline_execution, PipelineExecutionArn=arn)
    assert code == "ValidationException"
    s3.delete_object(Bucket=BUCKET, Key=f"{tag}/flags/fail")
    sm.retry_pipeline_execution(PipelineExecutionArn=arn)
    assert sm.describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"] == "Executing"
    execution = wait_execution(sm, arn)
    again = steps_of(sm, arn)
    assert execution["PipelineExecutionStatus"] == "Succeeded" and "FailureReason" not in execution
    for kept in ("Prepare", "Train"):
        assert again[kept] == steps[kept], f"{kept} succeeded before: the retry keeps it"
    assert again["Evaluate"]["AttemptCount"] == 2 and again["Evaluate"]["StepStatus"] == "Succeeded"
    assert again["Evaluate"]["Metadata"] != steps["Evaluate"]["Metadata"], "a new job for the retried step"
    assert "Register" in again


def test_cache_hits_only_on_identical_arguments(sm, s3, ready):
    tag = f"cache-{RUN}"
    _flag_ok(s3, tag)
    name = _create(sm, definition(tag, cache=True))
    first = sm.start_pipeline_execution(PipelineName=name)["PipelineExecutionArn"]
    assert wait_execution(sm, first)["PipelineExecutionStatus"] == "Succeeded"
    second = sm.start_pipeline_execution(PipelineName=name)["PipelineExecutionArn"]
    assert wait_execution(sm, second)["PipelineExecutionStatus"] == "Succeeded"
    one, two = steps_of(sm, first), steps_of(sm, second)
    for cached in ("Prepare", "Train"):
        assert "CacheHitResult" not in one[cached]
        assert two[cached]["CacheHitResult"] == {"SourcePipelineExecutionArn": first}
        assert two[cached]["Metadata"] == one[cached]["Metadata"], "a hit points at the earlier job"
    assert "CacheHitResult" not in two["Evaluate"], "no CacheConfig: always runs"
    third = sm.start_pipeline_execution(PipelineName=name, PipelineParameters=[
        {"Name": "NumRound", "Value": "6"}])["PipelineExecutionArn"]
    assert wait_execution(sm, third)["PipelineExecutionStatus"] == "Succeeded"
    three = steps_of(sm, third)
    assert three["Prepare"]["CacheHitResult"] == {"SourcePipelineExecutionArn": first}
    assert "CacheHitResult" not in three["Train"], "a changed hyperparameter is a new training job"
    job = three["Train"]["Metadata"]["TrainingJob"]["Arn"].rsplit("/", 1)[1]
    assert sm.describe_training_job(TrainingJobName=job)["HyperParameters"]["num_round"] == "6"


def _sleepers(tag: str, count: int, seconds: float) -> dict[str, Any]:
    steps = [{"Name": f"Sleep{i}", "Type": "Processing", "Arguments": _processing(
        "prepare.py", [], {"train": f"s3://{BUCKET}/{tag}/s{i}"}, ["--sleep", str(seconds)])} for i in range(count)]
    return {"Version": "2020-12-01", "Parameters": [], "Steps": steps}


def test_parallelism_configuration_bounds_concurrent_steps(sm, ready):
    name = _create(sm, _sleepers(f"par-{RUN}", 2, 1.0), ParallelismConfiguration={"MaxParallelExecutionSteps": 1})
    arn = sm.start_pipeline_execution(PipelineName=name)["PipelineExecutionArn"]
    assert wait_execution(sm, arn)["PipelineExecutionStatus"] == "Succeeded"
    a, b = sorted(steps_of(sm, arn).values(), key=lambda s: s["StartTime"])
    assert a["EndTime"] <= b["StartTime"], "one step at a time"
    arn = sm.start_pipeline_execution(PipelineName=name, ParallelismConfiguration={
        "MaxParallelExecutionSteps": 2})["PipelineExecutionArn"]
    assert wait_execution(sm, arn)["PipelineExecutionStatus"] == "Succeeded"
    a, b = sorted(steps_of(sm, arn).values(), key=lambda s: s["StartTime"])
    assert b["StartTime"] < a["EndTime"], "independent steps run together"


def test_stop_ends_the_running_job_and_the_execution_stopped(sm, ready):
    name = _create(sm, _sleepers(f"stop-{RUN}", 1, 60.0))
    arn = sm.start_pipeline_execution(PipelineName=name)["PipelineExecutionArn"]
    deadline = time.monotonic() + 30
    while steps_of(sm, arn).get("Sleep0", {}).get("StepStatus") != "Executing":
        assert time.monotonic() < deadline, "the step never started"
        time.sleep(0.1)
    sm.stop_pipeline_execution(PipelineExecutionArn=arn)
    execution = wait_execution(sm, arn, timeout=40)
    step = steps_of(sm, arn)["Sleep0"]
    assert execution["PipelineExecutionStatus"] == "Stopped" and step["StepStatus"] == "Stopped"
    job = step["Metadata"]["ProcessingJob"]["Arn"].rsplit("/", 1)[1]
    assert sm.describe_processing_job(ProcessingJobName=job)["ProcessingJobStatus"] == "Stopped"


def test_daemon_restart_ends_a_running_execution_failed_with_a_reason(tmp_path: Path):
    import boto3

    from sagemaker_emulator.app import Emulator

    emu = Emulator(tmp_path)
    emu.start("127.0.0.1", 0)
    session = boto3.Session(aws_access_key_id=emu.credentials.access_key,
                            aws_secret_access_key=emu.credentials.secret_key, region_name="us-east-1")
    sm, s3 = (session.client(n, endpoint_url=emu.endpoint_url) for n in ("sagemaker", "s3"))
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key=f"code/{RUN}/prepare.py", Body=PREPARE.encode())
    name = _create(sm, _sleepers("restart", 1, 60.0))
    arn = sm.start_pipeline_execution(PipelineName=name)["PipelineExecutionArn"]
    deadline = time.monotonic() + 30
    while steps_of(sm, arn).get("Sleep0", {}).get("StepStatus") != "Executing":
        assert time.monotonic() < deadline, "the step never started"
        time.sleep(0.1)
    emu.stop()
    emu = Emulator(tmp_path)
    emu.start("127.0.0.1", 0)
    try:
        sm = session.client("sagemaker", endpoint_url=emu.endpoint_url)
        execution = sm.describe_pipeline_execution(PipelineExecutionArn=arn)
        step = steps_of(sm, arn)["Sleep0"]
        assert execution["PipelineExecutionStatus"] == "Failed"
        assert "local emulator was stopped" in execution["FailureReason"]
        assert step["StepStatus"] == "Failed" and "local emulator" in step["FailureReason"]
    finally:
        emu.stop()


def test_unknown_executions_are_resource_not_found(sm):
    missing = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/none/execution/abcdefabcdef"
    for call in (sm.describe_pipeline_execution, sm.list_pipeline_parameters_for_execution,
                 sm.describe_pipeline_definition_for_execution, sm.stop_pipeline_execution):
        assert _error(call, PipelineExecutionArn=missing)[0] == "ResourceNotFound"
    assert _error(sm.start_pipeline_execution, PipelineName="no-such-pipeline")[0] == "ResourceNotFound"



def test_tuning_model_and_transform_steps_chain_real_jobs(sm, s3, ready):
    """Tune → the best trial's model (``TrainingJobSummaries[0]``, as ``TuningStep.get_top_model_s3_uri``
    builds it) → a batch transform with it."""
    tag = f"tune-{RUN}"
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 3))
    rows = np.column_stack([(x[:, 0] > 0).astype(int), x])
    s3.put_object(Bucket=BUCKET, Key=f"{tag}/train/train.csv", Body="\n".join(
        ",".join(f"{v:.4f}" for v in row) for row in rows).encode())
    s3.put_object(Bucket=BUCKET, Key=f"{tag}/batch/features.csv", Body=b"1.0,0.0,0.0\n-1.0,0.0,0.0\n")
    output = f"s3://{BUCKET}/{tag}/tuned"
    tune = {"Name": "Tune", "Type": "Tuning", "Arguments": {
        "HyperParameterTuningJobConfig": {
            "Strategy": "Random", "ResourceLimits": {"MaxNumberOfTrainingJobs": 2, "MaxParallelTrainingJobs": 2},
            "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "validation:auc"},
            "ParameterRanges": {"IntegerParameterRanges": [{"Name": "max_depth", "MinValue": "2", "MaxValue": "4"}]}},
        "TrainingJobDefinition": {
            "AlgorithmSpecification": {"TrainingImage": XGBOOST_IMAGE, "TrainingInputMode": "File"},
            "StaticHyperParameters": {"objective": "binary:logistic", "num_round": {"Get": "Parameters.NumRound"},
                                      "eval_metric": "auc"},
            "InputDataConfig": [{"ChannelName": channel, "ContentType": "text/csv", "DataSource": {"S3DataSource": {
                "S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/{tag}/train"}}}
                for channel in ("train", "validation")],
            "OutputDataConfig": {"S3OutputPath": output},
            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30},
            "RoleArn": ROLE, "StoppingCondition": {"MaxRuntimeInSeconds": 600}}}}
    best = {"Std:Join": {"On": "/", "Values": [output, {"Get": "Steps.Tune.TrainingJobSummaries[0].TrainingJobName"},
                                               "output/model.tar.gz"]}}
    model = {"Name": "BestModel", "Type": "Model", "Arguments": {
        "ExecutionRoleArn": ROLE, "PrimaryContainer": {"Image": XGBOOST_IMAGE, "ModelDataUrl": best}}}
    batch = {"Name": "Batch", "Type": "Transform", "Arguments": {
        "ModelName": {"Get": "Steps.BestModel.ModelName"},
        "TransformInput": {"ContentType": "text/csv", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/{tag}/batch"}}},
        "TransformOutput": {"S3OutputPath": f"s3://{BUCKET}/{tag}/scores"},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1}}}
    doc = {"Version": "2020-12-01", "Parameters": [{"Name": "NumRound", "Type": "Integer", "DefaultValue": 4}],
           "Steps": [tune, model, batch]}
    arn = sm.start_pipeline_execution(PipelineName=_create(sm, doc))["PipelineExecutionArn"]
    execution = wait_execution(sm, arn, timeout=180)
    steps = steps_of(sm, arn)
    assert execution["PipelineExecutionStatus"] == "Succeeded", {n: s.get("FailureReason") for n, s in steps.items()}
    tuning = steps["Tune"]["Metadata"]["TuningJob"]["Arn"].rsplit("/", 1)[1]
    described = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=tuning)
    assert described["HyperParameterTuningJobStatus"] == "Completed" and len(tuning) <= 32
    winner = described["BestTrainingJob"]["TrainingJobName"]
    model_name = sm.list_models(NameContains=steps["BestModel"]["Metadata"]["Model"]["Arn"].rsplit("/", 1)[1])[
        "Models"][0]["ModelName"]
    assert sm.describe_model(ModelName=model_name)["PrimaryContainer"]["ModelDataUrl"] == \
        f"{output}/{winner}/output/model.tar.gz"
    scores = s3.get_object(Bucket=BUCKET, Key=f"{tag}/scores/features.csv.out")["Body"].read().decode().split()
    assert len(scores) == 2 and float(scores[0]) > 0.5 > float(scores[1])
