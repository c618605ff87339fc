"""SageMaker-managed MLflow Apps on a real ``mlflow server``, reached with ``mlflow`` and the
``sagemaker-mlflow`` plugin exactly as on AWS: the app's ARN as tracking URI, HTTPS to
``mlflow.sagemaker.<region>.app.aws`` through the emulator's proxy, SigV4 for ``sagemaker``."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore.exceptions import ClientError
from jobs_common import ROLE

pytestmark = pytest.mark.slow

BUCKET = "mlflow-tests"
NO_PROXY = {"http": None, "https": None}  # the UI is on the gateway's own loopback address


@pytest.fixture(scope="module")
def app(client, emulator) -> Any:
    sm, s3 = client("sagemaker"), client("s3")
    s3.create_bucket(Bucket=BUCKET)
    name = f"mlflow-app-{uuid.uuid4().hex[:6]}"
    arn = sm.create_mlflow_app(Name=name, ArtifactStoreUri=f"s3://{BUCKET}/artifacts", RoleArn=ROLE,
                               ModelRegistrationMode="AutoModelRegistrationEnabled")["Arn"]
    assert sm.describe_mlflow_app(Arn=arn)["Status"] == "Creating"
    deadline = time.monotonic() + 300
    while (status := sm.describe_mlflow_app(Arn=arn)["Status"]) == "Creating":
        assert time.monotonic() < deadline, "the MLflow App never became Created"
        time.sleep(1)
    assert status == "Created", emulator.state.get("MlflowApp", arn.rsplit("/", 1)[1]).get("_failure")
    yield {"arn": arn, "name": name}
    sm.delete_mlflow_app(Arn=arn)


def test_app_is_described_listed_and_unique_by_name(sm, app):
    described = sm.describe_mlflow_app(Arn=app["arn"])
    assert described["Name"] == app["name"] and described["MlflowVersion"].startswith("3.")
    assert described["ArtifactStoreUri"] == f"s3://{BUCKET}/artifacts"
    assert app["arn"] in [s["Arn"] for s in sm.list_mlflow_apps(Status="Created")["Summaries"]]
    with pytest.raises(ClientError) as info:
        sm.create_mlflow_app(Name=app["name"], ArtifactStoreUri=f"s3://{BUCKET}/x", RoleArn=ROLE)
    assert info.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as info:
        sm.describe_mlflow_app(Arn=app["arn"][:-3] + "XYZ")
    assert info.value.response["Error"]["Code"] == "ResourceNotFound"


def test_runs_metrics_and_artifacts_land_in_the_server_and_in_s3(emulator_env, app, s3, tmp_path: Path):
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(app["arn"])
    experiment = f"immersion-day-{uuid.uuid4().hex[:6]}"
    mlflow.set_experiment(experiment)
    note = tmp_path / "note.txt"
    note.write_text("trained locally")
    with mlflow.start_run(run_name="xgb") as run:
        mlflow.log_params({"eta": 0.2, "max_depth": 5})
        for step, value in enumerate((0.71, 0.75, 0.78)):
            mlflow.log_metric("validation_auc", value, step=step)
        mlflow.log_artifact(str(note))
    found = mlflow.search_runs(experiment_names=[experiment])
    assert list(found["run_id"]) == [run.info.run_id]
    assert found["metrics.validation_auc"][0] == pytest.approx(0.78) and found["params.max_depth"][0] == "5"
    history = MlflowClient().get_metric_history(run.info.run_id, "validation_auc")
    assert [m.value for m in history] == pytest.approx([0.71, 0.75, 0.78])
    prefix = run.info.artifact_uri.removeprefix(f"s3://{BUCKET}/")
    assert run.info.artifact_uri.startswith(f"s3://{BUCKET}/artifacts/")
    body = s3.get_object(Bucket=BUCKET, Key=f"{prefix}/note.txt")["Body"].read()
    assert body == b"trained locally"
    # the store is a copy of a migrated template: its default experiment keeps its artifacts under this app's root
    assert MlflowClient().get_experiment("0").artifact_location == f"s3://{BUCKET}/artifacts/0"

    # AutoModelRegistrationEnabled: a version registered in MLflow shows up in SageMaker's model registry
    model = f"bank-xgb-{uuid.uuid4().hex[:6]}"
    client = MlflowClient()
    client.create_registered_model(model)
    registered = client.create_model_version(model, source=run.info.artifact_uri, run_id=run.info.run_id)
    sm = boto3.client("sagemaker")
    group = sm.list_model_package_groups(NameContains=model)["ModelPackageGroupSummaryList"]
    assert [g["ModelPackageGroupName"] for g in group] == [model]
    package = sm.list_model_packages(ModelPackageGroupName=model)["ModelPackageSummaryList"][0]
    described = sm.describe_model_package(ModelPackageName=package["ModelPackageArn"])
    assert described["SourceUri"] == f"models:/{model}/{registered.version}"
    assert described["CustomerMetadataProperties"]["mlflow_run_id"] == run.info.run_id
    assert described["ModelApprovalStatus"] == "PendingManualApproval"


def test_presigned_url_opens_the_ui_and_only_it_does(sm, app):
    url = sm.create_presigned_mlflow_app_url(Arn=app["arn"], ExpiresInSeconds=60,
                                             SessionExpirationDurationInSeconds=1800)["AuthorizedUrl"]
    base = url.split("/auth")[0]
    browser = requests.Session()
    page = browser.get(url, proxies=NO_PROXY, timeout=30)
    assert page.status_code == 200 and page.url == base + "/" and "text/html" in page.headers["Content-Type"]
    assert browser.get(base + "/ajax-api/2.0/mlflow/experiments/search?max_results=5", proxies=NO_PROXY,
                       timeout=30).status_code == 200, "the UI's own API calls carry the session cookie"
    stranger = requests.get(base + "/", proxies=NO_PROXY, timeout=30)
    assert stranger.status_code == 401 and "presigned URL" in stranger.json()["message"]
    forged = requests.get(url[:-4] + "AAAA", proxies=NO_PROXY, timeout=30, allow_redirects=False)
    assert forged.status_code == 403


def test_unsigned_and_badly_signed_rest_calls_are_refused(emulator, app):
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    url = f"{emulator.endpoint_url}/api/2.0/mlflow/experiments/create"
    headers = {"x-sm-mlflow-app-arn": app["arn"], "Content-Type": "application/json"}
    unsigned = requests.post(url, data='{"name": "nope"}', headers=headers, proxies=NO_PROXY, timeout=30)
    assert unsigned.status_code == 403
    wrong = AWSRequest("POST", url, data='{"name": "nope"}', headers=headers)
    SigV4Auth(boto3.Session(aws_access_key_id=emulator.credentials.access_key,
                            aws_secret_access_key="not-the-secret").get_credentials(), "sagemaker",
              "us-east-1").add_auth(wrong)
    forged = requests.post(url, data='{"name": "nope"}', headers=dict(wrong.headers), proxies=NO_PROXY, timeout=30)
    assert forged.status_code == 403 and forged.json()["error_code"] == "SignatureDoesNotMatch"


def _wait_server(sm: Any, name: str, busy: str) -> dict[str, Any]:
    deadline = time.monotonic() + 300
    while (server := sm.describe_mlflow_tracking_server(TrackingServerName=name))["TrackingServerStatus"] == busy:
        assert time.monotonic() < deadline, f"tracking server {name} still {busy}"
        time.sleep(1)
    return server


def test_tracking_server_logs_runs_and_keeps_them_across_stop_and_start(emulator_env, sm):
    import mlflow

    name = f"ts-{uuid.uuid4().hex[:6]}"
    arn = sm.create_mlflow_tracking_server(TrackingServerName=name, ArtifactStoreUri=f"s3://{BUCKET}/ts",
                                           RoleArn=ROLE, TrackingServerSize="Small")["TrackingServerArn"]
    try:
        server = _wait_server(sm, name, "Creating")
        assert (server["TrackingServerStatus"], server["IsActive"]) == ("Created", "Active")
        mlflow.set_tracking_uri(arn)  # https://us-east-1.experiments.sagemaker.aws, signed for sagemaker-mlflow
        mlflow.set_experiment("tracking-server")
        with mlflow.start_run() as run:
            mlflow.log_metric("auc", 0.77)
        sm.stop_mlflow_tracking_server(TrackingServerName=name)
        stopped = sm.describe_mlflow_tracking_server(TrackingServerName=name)
        assert (stopped["TrackingServerStatus"], stopped["IsActive"]) == ("Stopped", "Inactive")
        with pytest.raises(ClientError) as info:
            sm.create_presigned_mlflow_tracking_server_url(TrackingServerName=name)
        assert info.value.response["Error"]["Code"] == "ValidationException"
        sm.start_mlflow_tracking_server(TrackingServerName=name)
        assert _wait_server(sm, name, "Starting")["TrackingServerStatus"] == "Started"
        assert mlflow.get_run(run.info.run_id).data.metrics == {"auc": 0.77}, "runs survive a stop and start"
        url = sm.create_presigned_mlflow_tracking_server_url(TrackingServerName=name)["AuthorizedUrl"]
        assert requests.get(url, proxies=NO_PROXY, timeout=30).status_code == 200
    finally:
        sm.delete_mlflow_tracking_server(TrackingServerName=name)
    with pytest.raises(ClientError) as info:
        sm.describe_mlflow_tracking_server(TrackingServerName=name)
    assert info.value.response["Error"]["Code"] == "ResourceNotFound"
