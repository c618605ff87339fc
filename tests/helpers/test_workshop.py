"""``helpers.workshop``: the local path against a real daemon, the AWS path with botocore's Stubber."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from stubbed import StubbedSession

from helpers import workshop

ACCOUNT = "111122223333"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/service-role/AmazonSageMaker-ExecutionRole-20240101T000000"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith(("AWS_", "SAGEMAKER_EMULATOR")) or key.lower().endswith("_proxy"):
            monkeypatch.delenv(key, raising=False)


def test_sagemaker_mode_uses_the_real_account(clean_env, monkeypatch: pytest.MonkeyPatch):
    identity = {"UserId": "AROAEXAMPLE:SageMaker", "Account": ACCOUNT,
                "Arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/AmazonSageMaker-ExecutionRole-20240101T000000/SageMaker"}
    role = {"Role": {"Path": "/service-role/", "RoleName": "AmazonSageMaker-ExecutionRole-20240101T000000",
                     "RoleId": "AROAEXAMPLEEXAMPLE01", "Arn": ROLE, "CreateDate": "2024-01-01T00:00:00Z"}}
    bucket = f"sagemaker-eu-west-1-{ACCOUNT}"
    buckets = {"Buckets": [{"Name": bucket, "CreationDate": "2024-01-01T00:00:00Z"}],
               "Owner": {"DisplayName": "learner", "ID": "c" * 64}}
    session = StubbedSession(
        {"sts": [("GetCallerIdentity", identity)] * 3, "iam": [("GetRole", role)],
         "s3": [("ListBuckets", buckets), ("HeadBucket", {}), ("HeadBucket", {})]},
        region_name="eu-west-1", aws_access_key_id="AKIAEXAMPLEEXAMPLE01", aws_secret_access_key="s" * 40,
    )
    # the emulator's variables must be removed before any client is built
    monkeypatch.setenv("SAGEMAKER_EMULATOR_STATE_DIR", "/nonexistent")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    ws = workshop.setup("sagemaker", region="eu-west-1", boto_session=session)
    assert ws.mode == "sagemaker"
    assert ws.role == ROLE
    assert ws.bucket == bucket
    assert ws.region == "eu-west-1" and ws.endpoint_url is None
    for name in ("AWS_ENDPOINT_URL", "HTTPS_PROXY", "SAGEMAKER_EMULATOR_STATE_DIR"):
        assert name not in os.environ
    assert session.calls["sts"] == ["GetCallerIdentity"] * len(session.calls["sts"])
    assert session.calls["iam"] == ["GetRole"]
    assert "HeadBucket" in session.calls["s3"], "the default bucket's owner is checked on AWS"


def test_clear_environment_keeps_real_credentials(tmp_path: Path):
    from sagemaker_emulator.config import StatePaths, load_credentials

    creds = load_credentials(StatePaths(tmp_path))
    env = {"SAGEMAKER_EMULATOR_STATE_DIR": str(tmp_path), "AWS_ENDPOINT_URL": "http://127.0.0.1:1",
           "AWS_ACCESS_KEY_ID": creds.access_key, "AWS_SECRET_ACCESS_KEY": creds.secret_key, "PATH": "/bin"}
    removed = workshop.clear_emulator_environment(env)
    assert set(removed) == {"SAGEMAKER_EMULATOR_STATE_DIR", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID",
                            "AWS_SECRET_ACCESS_KEY"}
    real = {"AWS_ACCESS_KEY_ID": "AKIAREALREALREALREAL", "AWS_SECRET_ACCESS_KEY": "r" * 40,
            "AWS_DEFAULT_REGION": "eu-west-1"}
    assert workshop.clear_emulator_environment(dict(real)) == []


def test_bad_mode_is_a_clear_error():
    with pytest.raises(ValueError, match="mode must be one of local, sagemaker, auto"):
        workshop.setup("cloud")


def test_auto_without_credentials_is_local(clean_env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert workshop._resolve_mode("auto", "us-east-1") == "local"


@pytest.mark.slow
def test_local_mode_starts_and_reuses_the_daemon(clean_env, tmp_path: Path):
    state = tmp_path / "state"
    code = (
        f"import json; from helpers import workshop; ws = workshop.setup('local', state_dir={str(state)!r}); "
        "import boto3; boto3.client('s3').head_bucket(Bucket=ws.bucket); "
        "print(json.dumps([ws.mode, ws.bucket, ws.role, ws.endpoint_url]))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    root = Path(__file__).resolve().parents[2]
    try:
        first = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=root,
                               timeout=120)
        assert first.returncode == 0, first.stderr
        second = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=root,
                                timeout=120)
        assert second.returncode == 0, second.stderr
        mode, bucket, role, url = __import__("json").loads(first.stdout.strip().splitlines()[-1])
        assert mode == "local" and bucket == "sagemaker-us-east-1-123456789012"
        assert url == __import__("json").loads(second.stdout.strip().splitlines()[-1])[3], "daemon reused"
    finally:
        subprocess.run([sys.executable, "-m", "sagemaker_emulator.cli", "stop", "--state-dir", str(state)],
                       capture_output=True, timeout=60)


def test_sdk_logs_shown_but_botocore_info_stays_quiet_after_the_sdk_configures_root_logging():
    """SDK V3's ``sagemaker.core.experiments`` runs ``logging.basicConfig(level=INFO)`` on import."""
    code = (
        "import logging, boto3; from helpers import workshop; workshop.show_sdk_logs(); "
        "import sagemaker.core.experiments._metrics; "
        "assert logging.getLogger().level == logging.INFO, 'the SDK no longer configures root logging'; "
        "boto3.client('sagemaker', region_name='us-east-1'); "
        "logging.getLogger('sagemaker').info('sdk progress line')"
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}  # botocore logs where it found it, at INFO
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=120,
                          env=env)
    assert done.returncode == 0, done.stderr
    assert "sdk progress line" in done.stdout
    assert "Found endpoint" not in done.stderr + done.stdout and "botocore" not in done.stderr


class _Shown:
    """Stands in for IPython's display: records what a RawLog shows and each in-place update."""

    def __init__(self) -> None:
        self.updates: list[str] = []

    def __call__(self, obj, display_id: bool = False):  # noqa: ANN001, ANN204 - IPython's signature
        assert display_id, "the raw log must be updatable in place"
        self.updates.append(obj.data)
        return self

    def update(self, obj) -> None:  # noqa: ANN001
        self.updates.append(obj.data)


def _record(message: str, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord("sagemaker.test", level, __file__, 1, message, (), None)


def test_training_logs_collapse_into_one_raw_log_with_tabs_decoded(capsys: pytest.CaptureFixture[str]) -> None:
    shown = _Shown()
    handler = workshop._NotebookHandler(workshop.RawLog(display=shown, interval=3600))
    handler.emit(_record("Training Job Name: job-1"))
    for round_ in range(100):
        handler.emit(_record(f"job-1/algo-1-1764662400:\n[{round_}]#011train-auc:0.79#011validation-auc:0.77"))
    handler.emit(_record("Final Resource Status: Completed"))
    printed = capsys.readouterr().out.splitlines()
    assert printed == ["Training Job Name: job-1", "Final Resource Status: Completed"]  # 2 lines, not 102
    assert len(shown.updates) == 2  # shown on the first line, brought up to date before the next record
    last = shown.updates[-1]
    assert last.startswith("<details><summary>") and "100 lines" in last and "<details open" not in last
    assert "[algo-1] [99]\ttrain-auc:0.79\tvalidation-auc:0.77" in last and "#011" not in last
    handler.raw_log.close()
    handler.emit(_record("job-2/algo-1-1764662400:\nfirst line of the next job"))
    assert "job-2" in shown.updates[-1] and "1 lines" in shown.updates[-1]


def test_sdk_noise_is_dropped_but_never_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    handler = workshop._NotebookHandler(workshop.RawLog(display=_Shown()))
    handler.emit(_record("Ignoring unnecessary instance type: None."))
    handler.emit(_record("No region provided. Using default region.", logging.WARNING))
    handler.emit(_record("✅ Model build successful: 'm-1' using server None in SAGEMAKER_ENDPOINT mode"))
    handler.emit(_record("No region provided. Using default region.", logging.ERROR))
    handler.emit(_record("Ignoring unnecessary instance type: ml.m5.xlarge."))
    handler.emit(_record("Popping out 'TrainingJobName' from the pipeline definition by default since it will be "
                         "overridden at pipeline execution time. Please utilize the PipelineDefinitionConfig to "
                         "persist this field in the pipeline definition if desired.", logging.WARNING))
    handler.emit(_record("Popping out 'CertifyForMarketplace' from the pipeline definition since it will be "
                         "overridden in pipeline execution time.", logging.WARNING))
    assert capsys.readouterr().out.splitlines() == [
        "✅ Model build successful: 'm-1'", "No region provided. Using default region.",
        "Ignoring unnecessary instance type: ml.m5.xlarge."]


def test_telemetry_opt_out_is_a_default_the_config_can_override() -> None:
    session = type("Session", (), {"sagemaker_config": None})()
    workshop.opt_out_of_telemetry(session)
    assert session.sagemaker_config["SageMaker"]["PythonSDK"]["Modules"]["TelemetryOptOut"] is True
    session.sagemaker_config["SageMaker"]["PythonSDK"]["Modules"]["TelemetryOptOut"] = False
    workshop.opt_out_of_telemetry(session)
    assert session.sagemaker_config["SageMaker"]["PythonSDK"]["Modules"]["TelemetryOptOut"] is False


def test_monitoring_clock_tags_only_for_the_emulator():
    """The emulated monitoring hour is a tag the emulator reads; against AWS the lab's schedule gets no extra tag."""
    from sagemaker_emulator.services.sagemaker.monitoring import HOUR_SECONDS_TAG, hour_seconds

    def ws(mode: str) -> workshop.Workshop:
        return workshop.Workshop(mode, "us-east-1", "bucket", "role", session=None, boto_session=None)

    tags = ws("local").monitoring_clock_tags(10)
    assert tags == [{"Key": HOUR_SECONDS_TAG, "Value": "10"}]
    assert hour_seconds({t["Key"]: t["Value"] for t in tags}) == 10.0
    assert ws("sagemaker").monitoring_clock_tags(10) == []
