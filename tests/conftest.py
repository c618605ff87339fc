"""Shared fixtures: a real emulator on 127.0.0.1 and genuine boto3 clients pointed at it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from sagemaker_emulator.app import Emulator

REGION = "us-east-1"


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    state = tmp_path_factory.mktemp("emulator-state")
    emu = Emulator(state)
    emu.start("127.0.0.1", 0)
    yield emu
    emu.stop()


@pytest.fixture(scope="session")
def boto_session(emulator: Emulator) -> boto3.Session:
    return boto3.Session(
        aws_access_key_id=emulator.credentials.access_key,
        aws_secret_access_key=emulator.credentials.secret_key,
        region_name=REGION,
    )


@pytest.fixture(scope="session")
def client(emulator: Emulator, boto_session: boto3.Session):
    """``client("s3")`` → a boto3 client for that service, talking to the emulator."""

    def make(name: str, **kwargs):
        return boto_session.client(name, endpoint_url=emulator.endpoint_url, **kwargs)

    return make


@pytest.fixture(scope="session")
def sm(client):
    return client("sagemaker")


@pytest.fixture(scope="session")
def s3(client):
    return client("s3")


@pytest.fixture(scope="session")
def logs(client):
    return client("logs")


@pytest.fixture
def emulator_env(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment ``sagemaker-emulator env`` exports, applied to this test's process."""
    from sagemaker_emulator.envvars import environment

    env = environment(emulator.paths.root, emulator.endpoint_url, REGION)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    return env


def state_dir_of(emulator: Emulator) -> Path:
    return emulator.paths.root


os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
