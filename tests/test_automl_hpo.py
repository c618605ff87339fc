"""HYPERPARAMETER_TUNING mode's speed-ups keep its behaviour: the vectorised feature encoding equals the inference
containers' per-record encoding, the trials fork from the XGBoost image's warm worker, and every candidate is
still a completed trial. The job-level contract is in ``test_automl.py``."""

from __future__ import annotations

import math
import time
import uuid

import boto3
import numpy as np
import pandas as pd
import pytest
from jobs_common import ROLE, TRAINING, sdk_session

from sagemaker_emulator.images.autopilot.transform import build_spec, encode_row, format_number
from sagemaker_emulator.runtime import automl_hpo


def _frame() -> pd.DataFrame:
    return pd.DataFrame({
        "age": [30, 41, np.nan, 57, 23],
        "job": ["admin.", "blue-collar", None, "admin.", "student"],
        "rate": [1.1, -0.1, 4.857, np.nan, 1e-7],
        "flag": [True, False, True, True, False],
        "y": ["no", "yes", "no", "no", "yes"],
    })


def _reference(frame: pd.DataFrame, spec: dict) -> list[list[float]]:
    """What the inference container encodes for each record (``model_server.automl_transform``)."""
    features = [c["name"] for c in spec["columns"]]
    rows = frame[features].astype(str).where(frame[features].notna(), "").to_numpy().tolist()
    return [encode_row(cells, spec) for cells in rows]


@pytest.mark.parametrize("problem_type", ["BinaryClassification", "Regression"])
def test_vectorised_encoding_equals_the_containers(tmp_path, problem_type):
    frame = _frame()
    if problem_type == "Regression":
        frame["y"] = [1.5, 2.0, 0.25, 3.0, 7.0]
    spec = build_spec(frame, "y", problem_type)
    other = frame.copy()
    other["job"] = ["retired", "admin.", "student", None, "admin."]  # a category unseen in training: all zeros
    other["age"] = ["33", "", "x", "40", "61"]  # text in a numeric column: parsed as a record is
    for data in (frame, other):
        path = tmp_path / "encoded.csv"
        matrix = automl_hpo.write_encoded(data, spec, path)
        expected = _reference(data, spec)
        np.testing.assert_array_equal(matrix, np.asarray(expected, dtype=float))
        lines = path.read_text().splitlines()
        assert len(lines) == len(data)
        for line, row, y in zip(lines, expected, data["y"], strict=True):
            label, *cells = line.split(",")
            assert float(label) == (spec["labels"].index(str(y)) if spec["labels"] else float(y))
            parsed = [math.nan if c == "" else float(c) for c in cells]
            assert [format_number(v) for v in parsed] == [format_number(v) for v in row]


def test_hpo_trials_are_visible_jobs_that_fork_warm(emulator, boto_session):
    """Three candidates, two trials at a time (scored as each trial ends): every trial is a visible training job
    of the built-in algorithm with the pipeline's static hyperparameters, forked from the image's warm worker."""
    from helpers.data import load_bank_marketing

    with sdk_session(emulator) as (_session, bucket):
        s3, sm = boto3.client("s3"), boto3.client("sagemaker")
        s3.put_object(Bucket=bucket, Key="automl-hpo/train/bank.csv",
                      Body=load_bank_marketing(sample_fraction=0.06, seed=200).to_csv(index=False).encode())
        name = f"automl-hpo3-{uuid.uuid4().hex[:6]}"
        sm.create_auto_ml_job_v2(
            AutoMLJobName=name, RoleArn=ROLE,
            AutoMLJobInputDataConfig=[{"DataSource": {"S3DataSource": {
                "S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/automl-hpo/train"}}}],
            OutputDataConfig={"S3OutputPath": f"s3://{bucket}/automl-hpo/output"},
            AutoMLProblemTypeConfig={"TabularJobConfig": {
                "TargetAttributeName": "y", "Mode": "HYPERPARAMETER_TUNING", "ProblemType": "BinaryClassification",
                "CompletionCriteria": {"MaxCandidates": 3}}},
            AutoMLJobObjective={"MetricName": "Accuracy"})
        deadline = time.monotonic() + 600
        while (job := sm.describe_auto_ml_job_v2(AutoMLJobName=name))["AutoMLJobStatus"] == "InProgress":
            assert time.monotonic() < deadline, job
            time.sleep(0.5)
        assert job["AutoMLJobStatus"] == "Completed", job.get("FailureReason")
        candidates = sm.list_candidates_for_auto_ml_job(AutoMLJobName=name)["Candidates"]
        assert len(candidates) == 3
        trials = {c["CandidateName"]: TRAINING.describe(sm, c["CandidateSteps"][0]["CandidateStepName"])
                  for c in candidates}
        for trial in trials.values():
            assert trial["TrainingJobStatus"] == "Completed"
            assert trial["HyperParameters"]["tree_method"] == "hist"
            assert trial["HyperParameters"]["num_round"] == "100" and int(trial["HyperParameters"]["nthread"]) >= 1
        best = max(c["FinalAutoMLJobObjectiveMetric"]["Value"] for c in candidates)
        assert job["BestCandidate"]["FinalAutoMLJobObjectiveMetric"]["Value"] == best
    # the XGBoost image's worker was started during FeatureEngineering: trials fork from it once it is ready
    assert sum(w.forks for w in emulator.warm.workers()) >= 1
