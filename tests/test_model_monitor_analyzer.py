"""The Model Monitor analyzer image as a processing job: baselines with the genuine SDK V3, checks with boto3.

The baseline's statistics must equal pandas' on the same data; a monitoring run over captured records
(the layout ``runtime/capture.py`` writes) reports no violation on un-drifted traffic and the analyzer's
check types on drifted traffic; bad inputs fail the job saying why.
"""

from __future__ import annotations

import io
import json
import uuid
from typing import Any

import numpy as np
import pandas as pd
import pytest
from jobs_common import PROCESSING, ROLE
from monitor_common import ANALYZER, sdk_env  # noqa: F401 - sdk_env is a fixture

CAPTURED = json.dumps({"sagemakerCaptureJson": {"captureIndexNames": ["endpointInput", "endpointOutput"]}})
JOBS = ("blue-collar", "admin.", "technician", "retired")


def bank_like(rows: int, seed: int, drifted: bool = False) -> pd.DataFrame:
    """A small table shaped like the bank data: a label first, integral, fractional and string features."""
    rng = np.random.default_rng(seed)
    age = rng.integers(60, 95, rows) if drifted else rng.integers(18, 80, rows)
    jobs = ["student"] * rows if drifted else list(rng.choice(JOBS, rows, p=[0.4, 0.3, 0.2, 0.1]))
    frame = pd.DataFrame({
        "y": rng.integers(0, 2, rows), "age": age,
        "balance": rng.normal(1500, 400, rows).round(2), "job": jobs,
    })
    frame.loc[frame.index[::97], "balance"] = np.nan
    return frame


def capture_lines(frame: pd.DataFrame, hour: str = "2026-12-02T07") -> str:
    """Captured JSON Lines as an endpoint writes them: features in, the model's score out."""
    lines = []
    for i, row in enumerate(frame.drop(columns="y").itertuples(index=False)):
        features = ",".join("" if pd.isna(v) else str(v) for v in row)
        lines.append(json.dumps({
            "captureData": {
                "endpointInput": {"observedContentType": "text/csv", "mode": "INPUT", "data": features,
                                  "encoding": "CSV"},
                "endpointOutput": {"observedContentType": "text/csv; charset=utf-8", "mode": "OUTPUT",
                                   "data": str(i % 2), "encoding": "CSV"}},
            "eventMetadata": {"eventId": str(uuid.uuid4()), "inferenceTime": f"{hour}:{i % 60:02d}:{i % 59:02d}Z"},
            "eventVersion": "0"}))
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def bucket(s3) -> str:
    name = "model-monitor-analyzer-tests"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="module")
def baseline(sm, s3, bucket, sdk_env) -> dict[str, Any]:  # noqa: F811 - the fixture
    """A baselining job run through the genuine SDK V3 ``DefaultModelMonitor.suggest_baseline``."""
    from sagemaker.core.helper.session_helper import Session
    from sagemaker.core.model_monitor import DatasetFormat, DefaultModelMonitor

    frame = bank_like(3000, seed=0)
    s3.put_object(Bucket=bucket, Key="baseline/train.csv", Body=frame.to_csv(index=False).encode())
    session = Session()
    monitor = DefaultModelMonitor(role=ROLE, instance_count=1, instance_type="ml.m5.xlarge",
                                  sagemaker_session=session, max_runtime_in_seconds=600)
    job = monitor.suggest_baseline(baseline_dataset=f"s3://{bucket}/baseline/train.csv",
                                   dataset_format=DatasetFormat.csv(header=True),
                                   output_s3_uri=f"s3://{bucket}/baseline/results", wait=True, logs=False)
    return {"frame": frame, "monitor": monitor, "job": job,
            "statistics": monitor.latest_baselining_job.baseline_statistics().body_dict,
            "constraints": monitor.latest_baselining_job.suggested_constraints().body_dict}


def test_suggest_baseline_statistics_equal_pandas(baseline, sm):
    frame, stats = baseline["frame"], baseline["statistics"]
    job = sm.describe_processing_job(ProcessingJobName=baseline["job"].processing_job_name)
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    assert stats["dataset"]["item_count"] == len(frame)
    features = {f["name"]: f for f in stats["features"]}
    assert [f["name"] for f in stats["features"]] == list(frame.columns)
    assert {n: f["inferred_type"] for n, f in features.items()} == {
        "y": "Integral", "age": "Integral", "balance": "Fractional", "job": "String"}
    for name in ("y", "age", "balance"):
        column, numbers = frame[name].dropna(), features[name]["numerical_statistics"]
        assert numbers["common"] == {"num_present": int(column.size), "num_missing": int(frame[name].isna().sum())}
        assert numbers["mean"] == pytest.approx(column.mean(), rel=1e-12)
        assert numbers["sum"] == pytest.approx(column.sum(), rel=1e-12)
        assert numbers["std_dev"] == pytest.approx(column.std(ddof=0), rel=1e-12)
        assert (numbers["min"], numbers["max"]) == (column.min(), column.max())
        kll = numbers["distribution"]["kll"]
        assert len(kll["buckets"]) == 10 and sum(b["count"] for b in kll["buckets"]) == column.size
        assert kll["sketch"]["parameters"] == {"c": 0.64, "k": 2048.0}
        sketch = kll["sketch"]["data"][0]
        for q in (0.1, 0.5, 0.9):  # exact values up to 2048 of them, else quantiles within 1/2048 of rank
            assert column.quantile(q - 1 / 1024) <= np.quantile(sketch, q) <= column.quantile(q + 1 / 1024)
    counts = frame["job"].value_counts()
    strings = features["job"]["string_statistics"]
    assert strings["distinct_count"] == float(counts.size)
    assert {b["value"]: b["count"] for b in strings["distribution"]["categorical"]["buckets"]} == counts.to_dict()


def test_suggested_constraints_have_the_documented_shape(baseline):
    constraints, frame = baseline["constraints"], baseline["frame"]
    features = {f["name"]: f for f in constraints["features"]}
    assert features["balance"]["completeness"] == pytest.approx(frame["balance"].notna().mean())
    assert features["age"]["num_constraints"] == {"is_non_negative": True}
    assert sorted(features["job"]["string_constraints"]["domains"]) == sorted(JOBS)
    assert constraints["monitoring_config"] == {
        "evaluate_constraints": "Enabled", "emit_metrics": "Enabled", "datatype_check_threshold": 1.0,
        "domain_content_threshold": 1.0, "distribution_constraints": {
            "perform_comparison": "Enabled", "comparison_threshold": 0.1, "comparison_method": "Robust",
            "categorical_comparison_threshold": 0.1, "categorical_drift_method": "LInfinity"}}


def monitoring_job(sm, s3, bucket: str, name: str, captured: str, baseline_prefix: str = "baseline/results",
                   extra_inputs: list[dict[str, Any]] | None = None, env: dict[str, str] | None = None) -> dict:
    """A processing job as the monitoring service starts one: captured data, baseline files, the env vars."""
    s3.put_object(Bucket=bucket, Key=f"{name}/capture/ep/AllTraffic/2026/12/02/07/00-00-000-a.jsonl",
                  Body=captured.encode())

    def s3_input(input_name: str, uri: str, local: str) -> dict[str, Any]:
        return {"InputName": input_name, "S3Input": {"S3Uri": uri, "LocalPath": local, "S3DataType": "S3Prefix",
                                                     "S3InputMode": "File"}}

    sm.create_processing_job(
        ProcessingJobName=name, RoleArn=ROLE, StoppingCondition={"MaxRuntimeInSeconds": 600},
        AppSpecification={"ImageUri": ANALYZER},
        ProcessingResources={"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge",
                                               "VolumeSizeInGB": 20}},
        ProcessingInputs=[
            s3_input("input_1", f"s3://{bucket}/{name}/capture", "/opt/ml/processing/input/endpoint"),
            s3_input("baseline", f"s3://{bucket}/{baseline_prefix}/statistics.json",
                     "/opt/ml/processing/baseline/stats"),
            s3_input("constraints", f"s3://{bucket}/{baseline_prefix}/constraints.json",
                     "/opt/ml/processing/baseline/constraints"),
            *(extra_inputs or [])],
        ProcessingOutputConfig={"Outputs": [{"OutputName": "result", "S3Output": {
            "S3Uri": f"s3://{bucket}/{name}/report", "LocalPath": "/opt/ml/processing/output",
            "S3UploadMode": "EndOfJob"}}]},
        Environment={"dataset_format": CAPTURED, "dataset_source": "/opt/ml/processing/input/endpoint",
                     "output_path": "/opt/ml/processing/output", "publish_cloudwatch_metrics": "Disabled",
                     "baseline_statistics": "/opt/ml/processing/baseline/stats/statistics.json",
                     "baseline_constraints": "/opt/ml/processing/baseline/constraints/constraints.json",
                     "start_time": "2026-12-02T07:00:00Z", "end_time": "2026-12-02T08:00:00Z",
                     "sagemaker_endpoint_name": "ep", **(env or {})})
    return PROCESSING.wait(sm, name, timeout=120)


def violations(s3, bucket: str, name: str) -> list[dict[str, str]]:
    body = s3.get_object(Bucket=bucket, Key=f"{name}/report/constraint_violations.json")["Body"].read()
    return json.loads(body)["violations"]


def test_undrifted_traffic_has_no_violation(sm, s3, bucket, baseline):
    """The same distribution (and no more missing values) as the baseline; the label column receives the
    model's 0/1 output."""
    job = monitoring_job(sm, s3, bucket, "mm-undrifted", capture_lines(bank_like(970, seed=1)))
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    assert violations(s3, bucket, "mm-undrifted") == []
    assert job["ExitMessage"] == "Completed: Job completed successfully with no violations."


def test_drifted_traffic_has_the_analyzers_violations(sm, s3, bucket, baseline):
    job = monitoring_job(sm, s3, bucket, "mm-drifted", capture_lines(bank_like(970, seed=2, drifted=True)))
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    found = {(v["feature_name"], v["constraint_check_type"]): v["description"]
             for v in violations(s3, bucket, "mm-drifted")}
    assert set(found) == {("age", "baseline_drift_check"), ("job", "baseline_drift_check"),
                          ("job", "categorical_values_check")}
    assert found[("age", "baseline_drift_check")].startswith("Numerical distance: ")
    assert found[("age", "baseline_drift_check")].endswith(" exceeds numerical threshold: 0.1")
    assert job["ExitMessage"] == "CompletedWithViolations: Job completed successfully with 3 violations."
    stats = json.loads(s3.get_object(Bucket=bucket, Key="mm-drifted/report/statistics.json")["Body"].read())
    assert stats["dataset"]["item_count"] == 970


def test_preprocessor_renames_and_drops_columns(sm, s3, bucket, baseline):
    """``preprocess_handler`` returns features by name: a dropped label is missing, a new key is extra."""
    script = (
        "def preprocess_handler(inference_record):\n"
        "    age, balance, job = inference_record.endpoint_input.data.split(',')\n"
        "    return {'age': age, 'balance': balance, 'job': job, 'score': inference_record.endpoint_output.data}\n")
    s3.put_object(Bucket=bucket, Key="scripts/pre.py", Body=script.encode())
    job = monitoring_job(
        sm, s3, bucket, "mm-preprocessed", capture_lines(bank_like(970, seed=3)),
        extra_inputs=[{"InputName": "pre", "S3Input": {
            "S3Uri": f"s3://{bucket}/scripts/pre.py", "LocalPath": "/opt/ml/processing/code/preprocessing",
            "S3DataType": "S3Prefix", "S3InputMode": "File"}}],
        env={"record_preprocessor_script": "/opt/ml/processing/code/preprocessing/pre.py"})
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    found = {(v["feature_name"], v["constraint_check_type"]) for v in violations(s3, bucket, "mm-preprocessed")}
    assert found == {("y", "missing_column_check"), ("score", "extra_column_check")}


def test_malformed_constraints_fail_the_job_saying_why(sm, s3, bucket, baseline):
    s3.put_object(Bucket=bucket, Key="broken/statistics.json", Body=json.dumps(baseline["statistics"]).encode())
    s3.put_object(Bucket=bucket, Key="broken/constraints.json", Body=b'{"features": {"age": 1}}')
    job = monitoring_job(sm, s3, bucket, "mm-malformed", capture_lines(bank_like(50, seed=4)),
                         baseline_prefix="broken")
    assert job["ProcessingJobStatus"] == "Failed"
    assert job["ExitMessage"].startswith("ClientError: The baseline constraints file is malformed")


def test_empty_window_fails_with_no_data(sm, s3, bucket, baseline):
    job = monitoring_job(sm, s3, bucket, "mm-empty", capture_lines(bank_like(20, seed=5), hour="2026-12-02T05"))
    assert job["ProcessingJobStatus"] == "Failed"
    assert "No data to analyze" in job["ExitMessage"]


def test_csv_statistics_read_back_with_pandas(baseline, s3, bucket):
    """The files are the SDK's: ``Statistics``/``Constraints`` objects read them from S3 as written."""
    body = s3.get_object(Bucket=bucket, Key="baseline/results/statistics.json")["Body"].read().decode()
    assert '"version" : 0.0' in body and body == body.strip() + "\n"
    frame = pd.read_csv(io.StringIO(baseline["frame"].to_csv(index=False)))
    assert len(frame) == json.loads(body)["dataset"]["item_count"]
