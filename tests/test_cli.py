"""The ``sagemaker-emulator`` command as a learner uses it: start, reuse, env, status, stop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "sagemaker_emulator.cli"]


def run(*args: str, state: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args, "--state-dir", str(state)], capture_output=True, text=True,
                          timeout=120, env=env or os.environ.copy())


@pytest.fixture
def daemon(tmp_path: Path):
    state = tmp_path / "state"
    started = run("start", state=state)
    assert started.returncode == 0, started.stderr
    yield state, json.loads(started.stdout)
    run("stop", state=state)


def test_start_is_idempotent_and_status_reports_the_daemon(daemon):
    state, info = daemon
    again = run("start", state=state)
    assert json.loads(again.stdout)["pid"] == info["pid"], "a second start must reuse the running daemon"
    status = run("status", state=state)
    assert status.returncode == 0
    body = json.loads(status.stdout)
    assert body["running"] is True
    assert body["endpoint_url"] == info["endpoint_url"]
    assert body["state_dir"] == str(state.resolve())
    assert (state / "credentials.json").stat().st_mode & 0o777 == 0o600
    assert (state / "ca" / "ca-key.pem").stat().st_mode & 0o777 == 0o600


def test_env_makes_the_aws_cli_and_boto3_talk_to_it(daemon):
    state, info = daemon
    exported = run("env", state=state)
    assert exported.returncode == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # the project's own AWS CLI
    script = exported.stdout + "aws sts get-caller-identity --output json\n"
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["Account"] == "123456789012"
    assert f"AWS_ENDPOINT_URL={info['endpoint_url']}" in exported.stdout
    assert "HTTPS_PROXY=" in exported.stdout and "AWS_CA_BUNDLE=" in exported.stdout


def test_stop_stops_and_status_says_so(tmp_path: Path):
    state = tmp_path / "state"
    info = json.loads(run("start", state=state).stdout)
    assert run("stop", state=state).returncode == 0
    status = run("status", state=state)
    assert status.returncode == 3
    assert json.loads(status.stdout)["running"] is False
    from sagemaker_emulator.cli import _alive

    assert not _alive(info["pid"]), "the daemon process must be gone (a zombie awaiting its reaper counts as gone)"
    assert run("env", state=state).returncode == 1


def test_state_dir_from_environment_variable(tmp_path: Path):
    state = tmp_path / "from-env"
    env = {**os.environ, "SAGEMAKER_EMULATOR_STATE_DIR": str(state)}
    out = subprocess.run([*CLI, "start"], capture_output=True, text=True, env=env, timeout=120)
    try:
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["state_dir"] == str(state.resolve())
    finally:
        subprocess.run([*CLI, "stop"], env=env, timeout=60, capture_output=True)


def test_serve_refuses_non_loopback(tmp_path: Path):
    out = run("serve", "--host", "0.0.0.0", state=tmp_path / "s")
    assert out.returncode != 0
    assert "loopback" in out.stderr
