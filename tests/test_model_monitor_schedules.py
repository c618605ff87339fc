"""Model Monitor's control plane and schedules that run, against a real endpoint with data capture.

The genuine SDK V3 (``DefaultModelMonitor``: ``suggest_baseline``, ``create_monitoring_schedule``,
``list_executions``, latest violations, stop, delete) and boto3 drive it; a schedule runs on a fast
emulated clock (an hour in a few seconds, set per schedule by a tag) so that hourly executions come
within seconds. Un-drifted traffic gives no violation, drifted traffic the analyzer's; stopping stops;
a daemon restart keeps schedules and never runs an hour twice; bad definitions fail as SageMaker says.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xgboost
from artifacts import xgboost_tarball
from botocore.exceptions import ClientError
from jobs_common import ROLE, WAITER, XGBOOST_IMAGE
from monitor_common import ANALYZER, sdk_env  # noqa: F401 - sdk_env is a fixture

from sagemaker_emulator.app import Emulator

pytestmark = pytest.mark.slow

BUCKET = "model-monitor-schedules"
HOUR_TAG = "sagemaker-emulator:hour-seconds"
FEATURES = ["age", "balance", "campaign"]


def traffic(rows: int, seed: int, drifted: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    age = rng.integers(60, 95, rows) if drifted else rng.integers(18, 80, rows)
    balance = rng.normal(1500, 400, rows).round(2)
    campaign = rng.integers(1, 6, rows)
    return np.column_stack([age, balance, campaign])


def wait_for(what: str, check: Callable[[], Any], timeout: float = 90.0, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def code(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    return exc.value.response["Error"]["Code"], exc.value.response["Error"]["Message"]


def deploy(sm, s3, name: str, capture: bool = True) -> xgboost.Booster:
    """An XGBoost endpoint (age, balance, campaign → score) capturing every request when ``capture``."""
    x = traffic(500, seed=0)
    booster = xgboost.train({"objective": "binary:logistic", "max_depth": 2},
                            xgboost.DMatrix(x, label=x[:, 0] > 45), num_boost_round=5)
    s3.put_object(Bucket=BUCKET, Key=f"models/{name}.tar.gz", Body=xgboost_tarball(booster))
    sm.create_model(ModelName=name, ExecutionRoleArn=ROLE,
                    PrimaryContainer={"Image": XGBOOST_IMAGE, "ModelDataUrl": f"s3://{BUCKET}/models/{name}.tar.gz"})
    extra = {"DataCaptureConfig": {"EnableCapture": True, "InitialSamplingPercentage": 100,
                                   "DestinationS3Uri": f"s3://{BUCKET}/capture",
                                   "CaptureOptions": [{"CaptureMode": "InputAndOutput"}]}} if capture else {}
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}],
        **extra)
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=WAITER)
    return booster


def invoke(runtime, endpoint: str, rows: np.ndarray) -> None:
    for row in rows:
        runtime.invoke_endpoint(EndpointName=endpoint, ContentType="text/csv",
                                Body=f"{int(row[0])},{row[1]:.2f},{int(row[2])}")


@pytest.fixture(scope="module")
def endpoint(sm, s3) -> dict[str, Any]:
    s3.create_bucket(Bucket=BUCKET)
    booster = deploy(sm, s3, "mm-endpoint")
    x = traffic(3000, seed=1)
    score = booster.predict(xgboost.DMatrix(x)).astype(float)  # float64 text, as the endpoint writes it
    frame = pd.DataFrame({"score": score, "age": x[:, 0].astype(int), "balance": x[:, 1],
                          "campaign": x[:, 2].astype(int)})
    s3.put_object(Bucket=BUCKET, Key="baseline/train.csv", Body=frame.to_csv(index=False).encode())
    return {"name": "mm-endpoint", "booster": booster}


@pytest.fixture(scope="module")
def monitor(endpoint, sdk_env) -> Any:  # noqa: F811 - the fixture
    """A ``DefaultModelMonitor`` whose schedules run an emulated hour every 5 s, baselined on the data."""
    from sagemaker.core.helper.session_helper import Session
    from sagemaker.core.model_monitor import DatasetFormat, DefaultModelMonitor

    monitor = DefaultModelMonitor(role=ROLE, instance_count=1, instance_type="ml.m5.xlarge",
                                  sagemaker_session=Session(), max_runtime_in_seconds=600,
                                  tags=[{"Key": HOUR_TAG, "Value": "5"}])
    monitor.suggest_baseline(baseline_dataset=f"s3://{BUCKET}/baseline/train.csv",
                             dataset_format=DatasetFormat.csv(header=True),
                             output_s3_uri=f"s3://{BUCKET}/baseline/results", wait=True, logs=False)
    return monitor


def executions(sm, schedule: str) -> list[dict[str, Any]]:
    return sm.list_monitoring_executions(MonitoringScheduleName=schedule, SortBy="ScheduledTime",
                                         SortOrder="Ascending", MaxResults=100)["MonitoringExecutionSummaries"]


def finished(sm, schedule: str, status: str | None = None) -> list[dict[str, Any]]:
    done = ("Completed", "CompletedWithViolations", "Failed", "Stopped")
    return [e for e in executions(sm, schedule)
            if e["MonitoringExecutionStatus"] in done and (status is None or e["MonitoringExecutionStatus"] == status)]


def report_of(sm, s3, execution: dict[str, Any]) -> list[dict[str, str]]:
    """The violations an execution wrote (for assertion messages)."""
    job = sm.describe_processing_job(ProcessingJobName=execution["ProcessingJobArn"].split("/")[-1])
    uri = job["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"]
    key = uri.split("/", 3)[3] + "/constraint_violations.json"
    return json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())["violations"]


def test_sdk_hourly_schedule_on_a_fast_clock(sm, s3, client, monitor, endpoint):
    """Un-drifted traffic → Completed without violations; drifted → CompletedWithViolations naming age."""
    from sagemaker.core.model_monitor import CronExpressionGenerator

    runtime = client("sagemaker-runtime")
    invoke(runtime, endpoint["name"], traffic(300, seed=2))
    time.sleep(1.2)  # the capture writer flushes every second
    monitor.create_monitoring_schedule(
        endpoint_input=endpoint["name"], output_s3_uri=f"s3://{BUCKET}/reports",
        statistics=monitor.baseline_statistics(), constraints=monitor.suggested_constraints(),
        monitor_schedule_name="mm-hourly", schedule_cron_expression=CronExpressionGenerator.hourly())
    described = monitor.describe_schedule()
    assert described["MonitoringScheduleStatus"] in ("Pending", "Scheduled")
    assert described["MonitoringType"] == "DataQuality" and described["EndpointName"] == endpoint["name"]
    tags = {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=described["MonitoringScheduleArn"])["Tags"]}
    assert tags["sagemaker-emulator:clock"] == "1 emulated hour = 5 s (time compressed 720x)"

    first = wait_for("the first execution to finish", lambda: finished(sm, "mm-hourly"))[0]
    assert first["MonitoringExecutionStatus"] == "Completed", (first.get("FailureReason"), report_of(sm, s3, first))
    assert first["ScheduledTime"].minute == first["ScheduledTime"].second == 0
    job = sm.describe_processing_job(ProcessingJobName=first["ProcessingJobArn"].split("/")[-1])
    assert job["MonitoringScheduleArn"] == described["MonitoringScheduleArn"]
    assert job["ExitMessage"] == "Completed: Job completed successfully with no violations."
    assert "1 emulated hour = 5 s" in job["Environment"]["sagemaker_emulator_clock"]
    report = job["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"]
    assert report.endswith(f"/reports/{endpoint['name']}/mm-hourly/{first['ScheduledTime']:%Y/%m/%d/%H}")

    invoke(runtime, endpoint["name"], traffic(300, seed=3, drifted=True))
    drifted = wait_for("an execution with violations",
                       lambda: finished(sm, "mm-hourly", "CompletedWithViolations"), timeout=120)[0]
    latest = monitor.latest_monitoring_constraint_violations()  # the SDK reads the newest execution's report
    by_check = {(v["feature_name"], v["constraint_check_type"]) for v in latest.body_dict["violations"]}
    assert ("age", "baseline_drift_check") in by_check
    assert ("balance", "baseline_drift_check") not in by_check
    job = sm.describe_processing_job(ProcessingJobName=drifted["ProcessingJobArn"].split("/")[-1])
    assert job["ExitMessage"].startswith("CompletedWithViolations: Job completed successfully with ")

    listed = monitor.list_executions()  # oldest first, each a MonitoringExecution with its processing job
    assert listed and all(e.describe()["ProcessingJobStatus"] in ("Completed", "InProgress") for e in listed)
    scheduled = [e["ScheduledTime"] for e in executions(sm, "mm-hourly")]
    assert len(scheduled) == len(set(scheduled)), "two executions for one hour"
    assert all((b - a).total_seconds() % 3600 == 0 for a, b in zip(scheduled, scheduled[1:], strict=False))
    with_violations = sm.list_monitoring_executions(MonitoringScheduleName="mm-hourly", EndpointName=endpoint["name"],
                                                    StatusEquals="CompletedWithViolations",
                                                    MonitoringTypeEquals="DataQuality")["MonitoringExecutionSummaries"]
    assert drifted["ScheduledTime"] in [e["ScheduledTime"] for e in with_violations]
    assert {e["MonitoringExecutionStatus"] for e in with_violations} == {"CompletedWithViolations"}
    later = sm.list_monitoring_executions(MonitoringScheduleName="mm-hourly", ScheduledTimeAfter=scheduled[0],
                                          MaxResults=100)["MonitoringExecutionSummaries"]
    assert scheduled[0] not in [e["ScheduledTime"] for e in later] and len(later) >= len(scheduled) - 1
    page = sm.list_monitoring_executions(MonitoringScheduleName="mm-hourly", MaxResults=1)
    assert len(page["MonitoringExecutionSummaries"]) == 1 and page["NextToken"]
    summary = sm.describe_monitoring_schedule(MonitoringScheduleName="mm-hourly")["LastMonitoringExecutionSummary"]
    assert summary["ScheduledTime"] == scheduled[-1]

    monitor.stop_monitoring_schedule()
    assert sm.describe_monitoring_schedule(MonitoringScheduleName="mm-hourly")["MonitoringScheduleStatus"] == "Stopped"
    count = len(executions(sm, "mm-hourly"))
    time.sleep(12)  # more than two emulated hours
    assert len(executions(sm, "mm-hourly")) == count, "a stopped schedule ran"
    monitor.delete_monitoring_schedule()
    with pytest.raises(ClientError) as err:
        sm.describe_monitoring_schedule(MonitoringScheduleName="mm-hourly")
    assert code(err)[0] == "ResourceNotFound"


def test_endpoint_and_monitor_metrics_in_cloudwatch(client, endpoint):
    """Invocation metrics per variant in ``AWS/SageMaker``; the hourly schedule's feature metrics (the test
    above ran it with ``enable_cloudwatch_metrics=True``, the SDK's default) in the data-metric namespace."""
    import datetime as dt

    cw = client("cloudwatch")
    window = {"StartTime": dt.datetime.now(dt.UTC) - dt.timedelta(hours=2),
              "EndTime": dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)}
    dims = [{"Name": "EndpointName", "Value": endpoint["name"]}, {"Name": "VariantName", "Value": "AllTraffic"}]

    def total(metric: str, stat: str = "Sum") -> float:
        points = cw.get_metric_statistics(Namespace="AWS/SageMaker", MetricName=metric, Dimensions=dims,
                                          Period=3600, Statistics=[stat], **window)["Datapoints"]
        return sum(p[stat] for p in points)

    before = total("Invocations")
    invoke(client("sagemaker-runtime"), endpoint["name"], traffic(7, seed=9))
    assert wait_for("7 more invocations", lambda: total("Invocations") == before + 7, timeout=10)
    assert total("Invocation5XXErrors") == total("Invocation4XXErrors") == 0
    latency = cw.get_metric_statistics(Namespace="AWS/SageMaker", MetricName="ModelLatency", Dimensions=dims,
                                       Period=3600, Statistics=["Average", "SampleCount"], **window)["Datapoints"]
    assert latency and all(p["Unit"] == "Microseconds" and p["Average"] > 0 for p in latency)
    names = {m["MetricName"] for m in cw.list_metrics(Namespace="AWS/SageMaker", Dimensions=dims)["Metrics"]}
    assert names == {"Invocations", "InvocationsPerInstance", "Invocation4XXErrors", "Invocation5XXErrors",
                     "ModelLatency", "OverheadLatency"}
    features = cw.list_metrics(Namespace="/aws/sagemaker/Endpoints/data-metric",
                               Dimensions=[{"Name": "MonitoringSchedule", "Value": "mm-hourly"}])["Metrics"]
    assert {"feature_baseline_drift_age", "feature_non_null_age", "feature_data_balance"} <= {
        m["MetricName"] for m in features}


def _definition(name: str, endpoint: str, baseline: str = "baseline/results") -> dict[str, Any]:
    return {
        "JobDefinitionName": name, "RoleArn": ROLE,
        "DataQualityAppSpecification": {"ImageUri": ANALYZER},
        "DataQualityJobInput": {"EndpointInput": {"EndpointName": endpoint,
                                                  "LocalPath": "/opt/ml/processing/input/endpoint"}},
        "DataQualityJobOutputConfig": {"MonitoringOutputs": [{"S3Output": {
            "S3Uri": f"s3://{BUCKET}/reports", "LocalPath": "/opt/ml/processing/output"}}]},
        "JobResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 20}},
        "DataQualityBaselineConfig": {
            "ConstraintsResource": {"S3Uri": f"s3://{BUCKET}/{baseline}/constraints.json"},
            "StatisticsResource": {"S3Uri": f"s3://{BUCKET}/{baseline}/statistics.json"}},
    }


def _now_schedule(sm, name: str, definition: str) -> None:
    sm.create_monitoring_schedule(MonitoringScheduleName=name, MonitoringScheduleConfig={
        "ScheduleConfig": {"ScheduleExpression": "NOW", "DataAnalysisStartTime": "-PT1H",
                           "DataAnalysisEndTime": "-PT0H"},
        "MonitoringJobDefinitionName": definition, "MonitoringType": "DataQuality"})


def test_job_definitions_and_schedule_requests(sm, s3, endpoint, monitor):
    sm.create_data_quality_job_definition(**_definition("mm-def", endpoint["name"]))
    described = sm.describe_data_quality_job_definition(JobDefinitionName="mm-def")
    assert described["JobDefinitionArn"].endswith(":data-quality-job-definition/mm-def")
    assert described["DataQualityJobInput"]["EndpointInput"]["EndpointName"] == endpoint["name"]
    listed = sm.list_data_quality_job_definitions(EndpointName=endpoint["name"], NameContains="mm-def")
    assert [d["MonitoringJobDefinitionName"] for d in listed["JobDefinitionSummaries"]] == ["mm-def"]
    with pytest.raises(ClientError) as err:
        sm.create_data_quality_job_definition(**_definition("mm-def", endpoint["name"]))
    assert code(err)[0] == "ResourceInUse"
    with pytest.raises(ClientError) as err:
        sm.describe_data_quality_job_definition(JobDefinitionName="mm-missing")
    assert code(err)[0] == "ResourceNotFound"

    config = {"ScheduleConfig": {"ScheduleExpression": "cron(0 * ? * * *)"},
              "MonitoringJobDefinitionName": "mm-def", "MonitoringType": "DataQuality"}
    for expression in ("rate(1 hour)", "cron(15 * ? * * *)", "cron(0 25 ? * * *)", "NOW"):
        with pytest.raises(ClientError) as err:
            sm.create_monitoring_schedule(MonitoringScheduleName="mm-bad", MonitoringScheduleConfig={
                **config, "ScheduleConfig": {"ScheduleExpression": expression}})
        assert code(err)[0] == "ValidationException", expression
    with pytest.raises(ClientError) as err:
        sm.create_monitoring_schedule(MonitoringScheduleName="mm-bad", MonitoringScheduleConfig={
            **config, "MonitoringJobDefinitionName": "mm-missing"})
    assert code(err) == ("ValidationException", "Could not find data quality job definition mm-missing.")
    assert sm.list_monitoring_schedules(NameContains="mm-bad")["MonitoringScheduleSummaries"] == []

    sm.create_monitoring_schedule(MonitoringScheduleName="mm-daily", MonitoringScheduleConfig={
        **config, "ScheduleConfig": {"ScheduleExpression": "cron(0 3 ? * * *)"}},
        Tags=[{"Key": HOUR_TAG, "Value": "3600"}])
    with pytest.raises(ClientError) as err:
        sm.create_monitoring_schedule(MonitoringScheduleName="mm-daily", MonitoringScheduleConfig=config)
    assert code(err)[0] == "ResourceInUse"
    listed = sm.list_monitoring_schedules(EndpointName=endpoint["name"], MonitoringTypeEquals="DataQuality",
                                          NameContains="mm-daily")["MonitoringScheduleSummaries"]
    assert [(s["MonitoringScheduleName"], s["MonitoringJobDefinitionName"]) for s in listed] == [("mm-daily", "mm-def")]
    sm.update_monitoring_schedule(MonitoringScheduleName="mm-daily", MonitoringScheduleConfig={
        **config, "ScheduleConfig": {"ScheduleExpression": "cron(0 0/6 ? * * *)"}})
    assert sm.describe_monitoring_schedule(MonitoringScheduleName="mm-daily")["MonitoringScheduleConfig"][
        "ScheduleConfig"]["ScheduleExpression"] == "cron(0 0/6 ? * * *)"
    with pytest.raises(ClientError) as err:
        sm.delete_data_quality_job_definition(JobDefinitionName="mm-def")
    assert code(err)[0] == "ResourceInUse"
    sm.stop_monitoring_schedule(MonitoringScheduleName="mm-daily")
    sm.start_monitoring_schedule(MonitoringScheduleName="mm-daily")
    assert wait_for("Scheduled", lambda: sm.describe_monitoring_schedule(MonitoringScheduleName="mm-daily")[
        "MonitoringScheduleStatus"] == "Scheduled")
    sm.delete_monitoring_schedule(MonitoringScheduleName="mm-daily")
    sm.delete_data_quality_job_definition(JobDefinitionName="mm-def")
    with pytest.raises(ClientError) as err:
        sm.delete_monitoring_schedule(MonitoringScheduleName="mm-daily")
    assert code(err)[0] == "ResourceNotFound"


def test_endpoint_without_capture_is_refused(sm, s3, endpoint):
    deploy(sm, s3, "mm-no-capture", capture=False)
    with pytest.raises(ClientError) as err:
        sm.create_data_quality_job_definition(**_definition("mm-no-capture-def", "mm-no-capture"))
    assert code(err) == ("ValidationException", "Endpoint mm-no-capture does not have data capture enabled: "
                         "Model Monitor analyzes the endpoint's captured data. Deploy it with a DataCaptureConfig "
                         "(EnableCapture=True).")
    with pytest.raises(ClientError) as err:
        sm.create_data_quality_job_definition(**_definition("mm-no-endpoint-def", "mm-nowhere"))
    assert code(err)[0] == "ValidationException" and "Could not find endpoint" in code(err)[1]
    sm.delete_endpoint(EndpointName="mm-no-capture")


def test_now_schedule_runs_once_and_bad_baselines_fail(sm, s3, client, endpoint, monitor):
    invoke(client("sagemaker-runtime"), endpoint["name"], traffic(50, seed=4))
    time.sleep(1.2)
    s3.put_object(Bucket=BUCKET, Key="broken/statistics.json",
                  Body=s3.get_object(Bucket=BUCKET, Key="baseline/results/statistics.json")["Body"].read())
    s3.put_object(Bucket=BUCKET, Key="broken/constraints.json", Body=b'{"features": "age"}')
    cases = {"mm-now-ok": "baseline/results", "mm-now-missing": "absent", "mm-now-malformed": "broken"}
    for name, baseline in cases.items():
        sm.create_data_quality_job_definition(**_definition(f"{name}-def", endpoint["name"], baseline))
        _now_schedule(sm, name, f"{name}-def")
    ended = {name: wait_for(f"the execution of {name}", lambda n=name: finished(sm, n))[0] for name in cases}
    ok = ended["mm-now-ok"]  # its window (the last hour) may hold the drifted traffic of another test
    assert ok["MonitoringExecutionStatus"] in ("Completed", "CompletedWithViolations"), ok.get("FailureReason")
    missing = ended["mm-now-missing"]
    assert missing["MonitoringExecutionStatus"] == "Failed"
    assert missing["FailureReason"].startswith(f'ClientError: No S3 objects found under S3 URL "s3://{BUCKET}/absent/')
    malformed = ended["mm-now-malformed"]
    assert malformed["MonitoringExecutionStatus"] == "Failed"
    job = sm.describe_processing_job(ProcessingJobName=malformed["ProcessingJobArn"].split("/")[-1])
    assert job["ExitMessage"].startswith("ClientError: The baseline constraints file is malformed")
    time.sleep(2)
    for name in cases:
        assert len(executions(sm, name)) == 1, f"{name} ran more than once"
        assert sm.describe_monitoring_schedule(MonitoringScheduleName=name)["MonitoringScheduleStatus"] == "Stopped"
        sm.delete_monitoring_schedule(MonitoringScheduleName=name)
        sm.delete_data_quality_job_definition(JobDefinitionName=f"{name}-def")


def test_daemon_restart_keeps_schedules_and_never_runs_an_hour_twice(tmp_path, boto_session):
    """Executions without traffic still happen (``Failed``: no data), so no analyzer is needed here."""

    def clients(emu: Emulator) -> tuple[Any, Any]:
        import boto3

        session = boto3.Session(aws_access_key_id=emu.credentials.access_key,
                                aws_secret_access_key=emu.credentials.secret_key, region_name="us-east-1")
        return (session.client("sagemaker", endpoint_url=emu.endpoint_url),
                session.client("s3", endpoint_url=emu.endpoint_url))

    emu = Emulator(tmp_path / "state")
    emu.start("127.0.0.1", 0)
    try:
        sm, s3 = clients(emu)
        s3.create_bucket(Bucket=BUCKET)
        deploy(sm, s3, "mm-restart")
        sm.create_data_quality_job_definition(**_definition("mm-restart-def", "mm-restart"))
        sm.create_monitoring_schedule(MonitoringScheduleName="mm-restart", Tags=[{"Key": HOUR_TAG, "Value": "3"}],
                                      MonitoringScheduleConfig={
                                          "ScheduleConfig": {"ScheduleExpression": "cron(0 * ? * * *)"},
                                          "MonitoringJobDefinitionName": "mm-restart-def",
                                          "MonitoringType": "DataQuality"})
        before = wait_for("two executions", lambda: len(finished(sm, "mm-restart")) >= 2 and
                          finished(sm, "mm-restart"), timeout=30)
        assert all(e["FailureReason"] == "Job inputs had no data" for e in before)
    finally:
        emu.stop()
    time.sleep(8)  # 2.7 emulated hours pass while the daemon is down
    emu = Emulator(tmp_path / "state")
    emu.start("127.0.0.1", 0)
    try:
        sm, _ = clients(emu)
        assert sm.describe_monitoring_schedule(MonitoringScheduleName="mm-restart")[
            "MonitoringScheduleStatus"] == "Scheduled"
        after = wait_for("executions after the restart",
                         lambda: len(executions(sm, "mm-restart")) >= len(before) + 2 and executions(sm, "mm-restart"),
                         timeout=30)
        times = [e["ScheduledTime"] for e in after]
        assert len(times) == len(set(times)), "an hour ran twice"
        gaps = [(b - a).total_seconds() / 3600 for a, b in zip(times, times[1:], strict=False)]
        # the hours missed while the daemon was down are not caught up: a jump over them, never a backlog
        assert max(gaps) >= 2 and all(g >= 1 and g == int(g) for g in gaps), gaps
        sm.delete_monitoring_schedule(MonitoringScheduleName="mm-restart")
        sm.get_waiter("endpoint_in_service").wait(EndpointName="mm-restart", WaiterConfig=WAITER)  # recovered
        sm.delete_endpoint(EndpointName="mm-restart")
    finally:
        emu.stop()


def test_monitoring_report_files(s3, monitor):
    """The baselining job's own files, as the SDK's ``Statistics``/``Constraints`` read them."""
    stats = json.loads(s3.get_object(Bucket=BUCKET, Key="baseline/results/statistics.json")["Body"].read())
    assert [f["name"] for f in stats["features"]] == ["score", *FEATURES]


def test_model_quality_baseline_and_schedule_with_ground_truth(sm, s3, client, endpoint, sdk_env):  # noqa: F811
    """``ModelQualityMonitor``: a baseline of predictions with labels; an hourly schedule joins the captured
    predictions with uploaded ground truth on ``inferenceId``; labels that contradict the model violate the
    baseline's accuracy (``LessThanThreshold``)."""
    import uuid

    from sagemaker.core.helper.session_helper import Session
    from sagemaker.core.model_monitor import CronExpressionGenerator, DatasetFormat, EndpointInput, ModelQualityMonitor

    booster = endpoint["booster"]
    x = traffic(1000, seed=11)
    probability = booster.predict(xgboost.DMatrix(x)).astype(float)
    label = (x[:, 0] > 45).astype(int)
    frame = pd.DataFrame({"probability": probability, "prediction": (probability >= 0.5).astype(int),
                          "label": label})
    s3.put_object(Bucket=BUCKET, Key="mq/baseline.csv", Body=frame.to_csv(index=False).encode())
    monitor = ModelQualityMonitor(role=ROLE, sagemaker_session=Session(), max_runtime_in_seconds=600,
                                  tags=[{"Key": HOUR_TAG, "Value": "5"}])
    monitor.suggest_baseline(baseline_dataset=f"s3://{BUCKET}/mq/baseline.csv",
                             dataset_format=DatasetFormat.csv(header=True), problem_type="BinaryClassification",
                             probability_attribute="probability", ground_truth_attribute="label",
                             probability_threshold_attribute="0.5", output_s3_uri=f"s3://{BUCKET}/mq/results",
                             wait=True, logs=False)
    stats = monitor.latest_baselining_job.baseline_statistics().body_dict
    metrics = stats["binary_classification_metrics"]
    accuracy = float(((probability >= 0.5).astype(int) == label).mean())
    assert metrics["accuracy"]["value"] == pytest.approx(accuracy)
    assert sum(sum(row.values()) for row in metrics["confusion_matrix"].values()) == 1000
    constraints = monitor.latest_baselining_job.suggested_constraints().body_dict
    assert constraints["binary_classification_constraints"]["accuracy"] == {
        "threshold": metrics["accuracy"]["value"], "comparison_operator": "LessThanThreshold"}

    runtime = client("sagemaker-runtime")
    rows = traffic(200, seed=12)
    truth_lines = []
    for row in rows:
        inference_id = str(uuid.uuid4())
        runtime.invoke_endpoint(EndpointName=endpoint["name"], ContentType="text/csv", InferenceId=inference_id,
                                Body=f"{int(row[0])},{row[1]:.2f},{int(row[2])}")
        wrong = int(row[0] <= 45)  # the opposite of what the model learned
        truth_lines.append(json.dumps({"groundTruthData": {"data": str(wrong), "encoding": "CSV"},
                                       "eventMetadata": {"eventId": inference_id}, "eventVersion": "0"}))
    s3.put_object(Bucket=BUCKET, Key="mq/ground-truth/2026/12/02/08/labels.jsonl",
                  Body=("\n".join(truth_lines) + "\n").encode())
    time.sleep(1.2)
    monitor.create_monitoring_schedule(
        endpoint_input=EndpointInput(endpoint_name=endpoint["name"], destination="/opt/ml/processing/input/endpoint",
                                     probability_attribute="0", probability_threshold_attribute=0.5),
        ground_truth_input=f"s3://{BUCKET}/mq/ground-truth", problem_type="BinaryClassification",
        output_s3_uri=f"s3://{BUCKET}/mq/reports", constraints=monitor.suggested_constraints(),
        monitor_schedule_name="mm-quality", schedule_cron_expression=CronExpressionGenerator.hourly())
    done = wait_for("a model quality execution", lambda: finished(sm, "mm-quality"), timeout=120)[0]
    assert done["MonitoringExecutionStatus"] == "CompletedWithViolations", done.get("FailureReason")
    assert done["MonitoringType"] == "ModelQuality"
    found = {v["metric_name"]: v for v in monitor.latest_monitoring_constraint_violations().body_dict["violations"]}
    assert found["accuracy"]["constraint_check_type"] == "LessThanThreshold"
    assert found["accuracy"]["description"].startswith("Metric accuracy with ")
    monitor.stop_monitoring_schedule()
    monitor.delete_monitoring_schedule()


def test_batch_transform_input_schedule(sm, s3, endpoint):
    """A schedule over a batch transform's captured data (``BatchTransformInput``, CSV without header):
    the baseline's columns are ``_c0``… as the analyzer names them, and drifted rows violate it."""
    rows = traffic(400, seed=21)
    s3.put_object(Bucket=BUCKET, Key="batch/baseline/data.csv",
                  Body="".join(f"{int(a)},{b:.2f},{int(c)}\n" for a, b, c in rows).encode())
    s3.put_object(Bucket=BUCKET, Key="batch/capture/input/2026/12/02/08/part.csv", Body="".join(
        f"{int(a)},{b:.2f},{int(c)}\n" for a, b, c in traffic(300, seed=22, drifted=True)).encode())
    sm.create_processing_job(
        ProcessingJobName="mm-batch-baseline", RoleArn=ROLE, AppSpecification={"ImageUri": ANALYZER},
        ProcessingResources={"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge",
                                               "VolumeSizeInGB": 20}},
        ProcessingInputs=[{"InputName": "baseline_dataset_input", "S3Input": {
            "S3Uri": f"s3://{BUCKET}/batch/baseline", "LocalPath": "/opt/ml/processing/input/baseline_dataset_input",
            "S3DataType": "S3Prefix", "S3InputMode": "File"}}],
        ProcessingOutputConfig={"Outputs": [{"OutputName": "monitoring_output", "S3Output": {
            "S3Uri": f"s3://{BUCKET}/batch/results", "LocalPath": "/opt/ml/processing/output",
            "S3UploadMode": "EndOfJob"}}]},
        Environment={"dataset_format": json.dumps({"csv": {"header": False}}), "output_path":
                     "/opt/ml/processing/output", "dataset_source": "/opt/ml/processing/input/baseline_dataset_input"})
    wait_for("the batch baseline", lambda: sm.describe_processing_job(ProcessingJobName="mm-batch-baseline")[
        "ProcessingJobStatus"] == "Completed", timeout=120)
    definition = _definition("mm-batch-def", endpoint["name"], "batch/results")
    definition["DataQualityJobInput"] = {"BatchTransformInput": {
        "DataCapturedDestinationS3Uri": f"s3://{BUCKET}/batch/capture", "LocalPath": "/opt/ml/processing/input/batch",
        "DatasetFormat": {"Csv": {"Header": False}}}}
    sm.create_data_quality_job_definition(**definition)
    _now_schedule(sm, "mm-batch", "mm-batch-def")
    done = wait_for("the batch execution", lambda: finished(sm, "mm-batch"), timeout=120)[0]
    assert done["MonitoringExecutionStatus"] == "CompletedWithViolations", done.get("FailureReason")
    assert "EndpointName" not in done
    found = {(v["feature_name"], v["constraint_check_type"]) for v in report_of(sm, s3, done)}
    assert ("_c0", "baseline_drift_check") in found and ("_c1", "baseline_drift_check") not in found
    sm.delete_monitoring_schedule(MonitoringScheduleName="mm-batch")
    sm.delete_data_quality_job_definition(JobDefinitionName="mm-batch-def")
