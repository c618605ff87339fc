"""SageMaker Debugger for the built-in XGBoost algorithm, end to end with boto3.

The SDK V3 ``ModelTrainer`` no longer sends ``DebugHookConfig``/``DebugRuleConfigurations``, so these
tests (like the lab) send them with boto3. The jobs run as real local processes; the tensors are read
back from S3 with the learner's reader (``helpers.debugger``) and compared with what the model and the
job's own log say; the rules are the rule-evaluation processing jobs SageMaker runs beside the job.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
import time
import uuid
from typing import Any

import numpy as np
import pytest
import xgboost as xgb
from botocore.exceptions import ClientError
from jobs_common import PROCESSING, ROLE, TRAINING, XGBOOST_IMAGE

from helpers.debugger import create_trial

pytestmark = pytest.mark.slow

RUN = uuid.uuid4().hex[:6]
RULES_IMAGE = "503895931360.dkr.ecr.us-east-1.amazonaws.com/sagemaker-debugger-rules:latest"
FINAL_RULE = ("NoIssuesFound", "IssuesFound", "Error", "Stopped")


def rows(seed: int, n: int, noise: float) -> np.ndarray:
    """Binary labels first, then four features; ``noise`` flips that share of labels at random."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
    flip = rng.random(n) < noise
    return np.column_stack([np.where(flip, 1 - y, y), x])


def csv(data: np.ndarray) -> bytes:
    buffer = io.StringIO()
    np.savetxt(buffer, data, delimiter=",", fmt="%.6g")
    return buffer.getvalue().encode()


def rule(name: str, **parameters: str) -> dict[str, Any]:
    return {"RuleConfigurationName": name, "RuleEvaluatorImage": RULES_IMAGE,
            "RuleParameters": {"rule_to_invoke": name, **parameters}}


def request(name: str, bucket: str, data: str, hps: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": XGBOOST_IMAGE, "TrainingInputMode": "File"},
        "RoleArn": ROLE,
        "InputDataConfig": [
            {"ChannelName": channel, "ContentType": "text/csv", "DataSource": {"S3DataSource": {
                "S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/{data}/{channel}/"}}}
            for channel in ("train", "validation")],
        "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/output"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
        "HyperParameters": {"objective": "binary:logistic", "eval_metric": "logloss", **hps},
        **extra,
    }


def rules_done(job: dict[str, Any]) -> bool:
    statuses = job.get("DebugRuleEvaluationStatuses") or []
    return job["TrainingJobStatus"] in ("Completed", "Failed", "Stopped") and all(
        s["RuleEvaluationStatus"] in FINAL_RULE for s in statuses)


def statuses(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["RuleConfigurationName"]: s for s in job["DebugRuleEvaluationStatuses"]}


@pytest.fixture(scope="module")
def bucket(s3) -> str:
    name = f"debugger-{RUN}"
    s3.create_bucket(Bucket=name)
    sets = {"overfit": (rows(1, 60, 0.3), rows(2, 300, 0.3)), "clean": (rows(3, 400, 0.0), rows(4, 300, 0.0))}
    for key, (train, validation) in sets.items():
        s3.put_object(Bucket=name, Key=f"{key}/train/part.csv", Body=csv(train))
        s3.put_object(Bucket=name, Key=f"{key}/validation/part.csv", Body=csv(validation))
    return name


#: deep trees, many rounds, little noisy data: a model that learns its training set by heart
OVERFIT = {"num_round": "40", "max_depth": "10", "eta": "1", "min_child_weight": "0"}
COLLECTIONS = ["metrics", "feature_importance", "average_shap", "trees", "predictions", "labels", "hyperparameters"]


@pytest.fixture(scope="module")
def jobs(sm, bucket) -> dict[str, dict[str, Any]]:
    """Jobs submitted together, then awaited until their rules have ended too."""
    hook = {"S3OutputPath": f"s3://{bucket}/debug", "HookParameters": {"save_interval": "1"},
            "CollectionConfigurations": [{"CollectionName": c} for c in COLLECTIONS]}
    names = {key: f"dbg-{RUN}-{key}" for key in ("overfit", "clean", "bad")}
    sm.create_training_job(**request(
        names["overfit"], bucket, "overfit", OVERFIT,
        DebugHookConfig=hook,
        DebugRuleConfigurations=[rule("Overfit"), rule("FeatureImportanceOverweight", threshold="0.9", nfeatures="1"),
                                 rule("CreateXgboostReport")]))
    sm.create_training_job(**request(
        names["clean"], bucket, "clean", {"num_round": "8", "max_depth": "2", "eta": "0.3"},
        DebugHookConfig={"S3OutputPath": f"s3://{bucket}/debug"},
        DebugRuleConfigurations=[rule("Overfit"), rule("AllZero", collection_names="metrics"),
                                 rule("LossNotDecreasing", num_steps="1", diff_percent="0.1")]))
    sm.create_training_job(**request(
        names["bad"], bucket, "clean", {"num_round": "3"},
        DebugRuleConfigurations=[rule("NoSuchRule"), rule("AllZero"), rule("Overfit", ratio_threshold="high"),
                                 {**rule("TreeDepth"), "RuleEvaluatorImage": "DEFAULT_RULE_EVALUATOR_IMAGE"}]))
    return {key: TRAINING.wait(sm, name, rules_done, timeout=120) for key, name in names.items()}


def test_overfit_fires_on_an_overfitting_job_and_names_the_step(jobs, sm):
    job = jobs["overfit"]
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    overfit = statuses(job)["Overfit"]
    assert overfit["RuleEvaluationStatus"] == "IssuesFound"
    assert re.fullmatch(r"RuleEvaluationConditionMet: Evaluation of the rule Overfit at step \d+ resulted in the "
                        r"condition being met\n", overfit["StatusDetails"])
    # the evaluation is a processing job of the rule image, linked to the training job
    rule_job = sm.describe_processing_job(ProcessingJobName=overfit["RuleEvaluationJobArn"].split("/")[-1])
    assert rule_job["TrainingJobArn"] == job["TrainingJobArn"]
    assert rule_job["AppSpecification"]["ImageUri"] == RULES_IMAGE
    assert rule_job["ProcessingJobStatus"] == "Completed"
    assert rule_job["ProcessingJobName"].startswith(f"{job['TrainingJobName']}-overfit-")


def test_rules_that_must_not_fire_find_no_issues(jobs):
    found = statuses(jobs["overfit"])
    assert found["FeatureImportanceOverweight"]["RuleEvaluationStatus"] == "NoIssuesFound"  # no one feature has 90 %
    clean = statuses(jobs["clean"])
    assert clean["Overfit"]["RuleEvaluationStatus"] == "NoIssuesFound"
    assert clean["AllZero"]["RuleEvaluationStatus"] == "NoIssuesFound"
    assert clean["LossNotDecreasing"]["RuleEvaluationStatus"] == "NoIssuesFound"
    assert all("StatusDetails" not in s for s in clean.values())


def test_rule_logs_are_in_the_processing_jobs_log_group(jobs, logs):
    arn = statuses(jobs["overfit"])["Overfit"]["RuleEvaluationJobArn"]
    name = arn.split("/")[-1]
    streams = logs.describe_log_streams(logGroupName="/aws/sagemaker/ProcessingJobs",
                                        logStreamNamePrefix=name)["logStreams"]
    assert streams
    events = logs.get_log_events(logGroupName="/aws/sagemaker/ProcessingJobs",
                                 logStreamName=streams[0]["logStreamName"], startFromHead=True)["events"]
    text = "\n".join(e["message"] for e in events)
    assert "RuleEvaluationConditionMet" in text


def test_bad_rule_configurations_end_in_error_with_the_reason(jobs):
    job = jobs["bad"]
    assert job["TrainingJobStatus"] == "Completed"
    found = statuses(job)
    assert found["NoSuchRule"]["RuleEvaluationStatus"] == "Error"
    assert "rule_to_invoke 'NoSuchRule' is not a built-in rule" in found["NoSuchRule"]["StatusDetails"]
    assert found["AllZero"]["RuleEvaluationStatus"] == "Error"
    assert "collection_names or tensor_regex" in found["AllZero"]["StatusDetails"]
    assert found["Overfit"]["RuleEvaluationStatus"] == "Error"
    assert "Invalid value 'high' for parameter ratio_threshold" in found["Overfit"]["StatusDetails"]
    assert found["TreeDepth"]["RuleEvaluationStatus"] == "Error"
    assert 'cannot run the image "DEFAULT_RULE_EVALUATOR_IMAGE"' in found["TreeDepth"]["StatusDetails"]
    # a job with rules and no hook configuration writes under its output path
    assert job["DebugHookConfig"]["S3OutputPath"] == job["OutputDataConfig"]["S3OutputPath"]


def test_duplicate_rule_names_are_refused(sm, bucket):
    with pytest.raises(ClientError) as exc:
        sm.create_training_job(**request(f"dbg-{RUN}-dup", bucket, "clean", {"num_round": "2"},
                                         DebugRuleConfigurations=[rule("Overfit"), rule("Overfit")]))
    assert exc.value.response["Error"]["Code"] == "ValidationException"
    assert "Overfit is used more than once" in exc.value.response["Error"]["Message"]
    with pytest.raises(ClientError):
        sm.describe_training_job(TrainingJobName=f"dbg-{RUN}-dup")


def _model(s3, job: dict[str, Any]) -> xgb.Booster:
    bucket, _, key = job["ModelArtifacts"]["S3ModelArtifacts"][5:].partition("/")
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        booster = xgb.Booster()
        booster.load_model(bytearray(tar.extractfile("xgboost-model").read()))
    return booster


def _trial(s3, job: dict[str, Any]):
    return create_trial(f"{job['DebugHookConfig']['S3OutputPath']}/{job['TrainingJobName']}/debug-output", s3)


def test_saved_metrics_equal_the_jobs_metric_lines(jobs, s3, logs):
    job = jobs["overfit"]
    trial = _trial(s3, job)
    assert trial.has_ended()
    assert trial.steps() == list(range(40))
    streams = logs.describe_log_streams(logGroupName="/aws/sagemaker/TrainingJobs",
                                        logStreamNamePrefix=job["TrainingJobName"])["logStreams"]
    events = logs.get_log_events(logGroupName="/aws/sagemaker/TrainingJobs",
                                 logStreamName=streams[0]["logStreamName"], startFromHead=True)["events"]
    lines = {int(m.group(1)): float(m.group(2)) for e in events
             if (m := re.match(r"\[(\d+)\]#011train-logloss:([0-9.]+)", e["message"]))}
    saved = trial.tensor("train-logloss").values()
    assert len(lines) == 40
    assert all(round(float(saved[step][0]), 5) == value for step, value in lines.items())
    assert trial.tensor_names(collection="metrics") == ["train-logloss", "validation-logloss"]


def test_feature_importance_trees_and_shap_equal_the_models(jobs, s3, bucket, tmp_path):
    job = jobs["overfit"]
    trial, booster = _trial(s3, job), _model(s3, job)
    last = trial.steps()[-1]
    scores = booster.get_score(importance_type="gain")
    total = sum(scores.values())
    saved = {name.rsplit("/", 1)[1]: float(trial.tensor(name).value(last)[0])
             for name in trial.tensor_names(regex=r"^feature_importance/gain/")}
    assert saved == pytest.approx({f: s / total for f, s in scores.items()})
    trees = booster.trees_to_dataframe()
    assert list(trial.tensor("trees/Node").value(last)) == list(trees[trees.Tree == last].Node)
    body = s3.get_object(Bucket=bucket, Key="overfit/train/part.csv")["Body"].read()
    (tmp_path / "train.csv").write_bytes(body)  # parsed as the algorithm parses it (XGBoost's CSV reader)
    train = xgb.DMatrix(f"{tmp_path / 'train.csv'}?format=csv&label_column=0")
    contributions = booster.predict(train, pred_contribs=True).mean(axis=0)
    for i in range(4):
        assert float(trial.tensor(f"average_shap/f{i}").value(last)[0]) == pytest.approx(contributions[i], rel=1e-5)
    labels = trial.tensor("labels").value(last)
    assert labels.shape == (300,) and set(np.unique(labels)) <= {0.0, 1.0}
    assert trial.tensor("hyperparameters/max_depth").value(0).tolist() == [10]


def test_the_report_rule_writes_the_report(jobs, s3, bucket):
    job = jobs["overfit"]
    assert statuses(job)["CreateXgboostReport"]["RuleEvaluationStatus"] == "NoIssuesFound"
    prefix = f"output/{job['TrainingJobName']}/rule-output/CreateXgboostReport/"
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])}
    assert {prefix + "xgboost_report.html", prefix + "xgboost_report.ipynb"} <= keys
    html = s3.get_object(Bucket=bucket, Key=prefix + "xgboost_report.html")["Body"].read().decode()
    assert "validation-logloss" in html and "Confusion matrix" in html
    notebook = json.loads(s3.get_object(Bucket=bucket, Key=prefix + "xgboost_report.ipynb")["Body"].read())
    assert notebook["nbformat"] == 4


def test_stop_training_action_stops_the_job_when_the_rule_fires(sm, bucket):
    name = f"dbg-{RUN}-stop"
    action = json.dumps([{"name": "stoptraining", "training_job_prefix": name}])
    started = time.monotonic()
    sm.create_training_job(**request(
        name, bucket, "overfit", {**OVERFIT, "num_round": "100000"},
        DebugHookConfig={"S3OutputPath": f"s3://{bucket}/debug", "HookParameters": {"save_interval": "1"}},
        DebugRuleConfigurations=[rule("Overfit", action_json=action)]))
    job = TRAINING.wait(sm, name, rules_done, timeout=120)
    assert job["TrainingJobStatus"] == "Stopped"
    assert statuses(job)["Overfit"]["RuleEvaluationStatus"] == "IssuesFound"
    assert time.monotonic() - started < 60
    rule_job = PROCESSING.describe(sm, statuses(job)["Overfit"]["RuleEvaluationJobArn"].split("/")[-1])
    assert rule_job["ExitMessage"].startswith("RuleEvaluationConditionMet")
