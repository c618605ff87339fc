"""Shared fixtures: a real emulator on 127.0.0.1 and genuine boto3 clients pointed at it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from sagemaker_emulator.app import Emulator

REGION = "us-east-1"
ROOT = Path(__file__).resolve().parents[1]
# One cache of image environments for the whole test run (and the daemons notebook tests start): each
# image tag's environment is built once per machine, not once per emulator (runtime/imageenvs.py).
os.environ.setdefault("SAGEMAKER_EMULATOR_IMAGE_ENV_DIR", str(ROOT / "build" / "image-envs"))


#: the images the tests' jobs run in (and the labs': sklearn 1.2-1, xgboost 1.7-1, whose build the legacy image shares)
TEST_IMAGES = (
    "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3",
    "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Build (once per machine: the cache is shared) the image environments before any test, so that neither a
    job's waiter nor a test's timeout has to outlast a first build. Free when they are built already. A build that
    fails here fails again in the job, which then runs in the emulator's own environment and says so (the tests
    that need an image's own versions read the job's first log line)."""
    import concurrent.futures

    from sagemaker_emulator.images.environments import environment_for
    from sagemaker_emulator.images.registry import resolve
    from sagemaker_emulator.runtime.imageenvs import ImageEnvironments, enabled

    if not enabled():
        return
    envs = ImageEnvironments(ROOT / "build" / "image-envs")
    wanted = {env.requirements: env for env in (environment_for(resolve(uri)) for uri in TEST_IMAGES) if env}
    with concurrent.futures.ThreadPoolExecutor(len(wanted)) as pool:
        futures = {pool.submit(envs.ensure, env, lambda line: None): env for env in wanted.values()}
        for future, env in futures.items():
            try:
                future.result()
            except Exception as exc:  # noqa: BLE001 - said, and the jobs fall back
                print(f"image environment {env.name} could not be built: {exc}")


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
