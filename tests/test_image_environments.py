"""An environment per image: a job "in" an image runs with that image's own libraries, as on SageMaker.

What a learner would notice: the public notebooks' pandas-2-only split works in a scikit-learn 1.2-1
processing job; the job's first log line names the image's library versions; the image's environment
is built once (progress in the log) and reused by later jobs and daemons; an unreachable package index
makes a job run in the emulator's environment, said in its log, instead of failing; the built-in
1.7-1 algorithm writes the legacy binary model its AWS container writes, which the kernel loads the way
lab 02 does.

Cost: the real environments (scikit-learn 1.2-1, XGBoost 1.7-1) are built once per machine before the
session (``conftest.pytest_sessionstart``, 1.5–3 min each on a busy 2-core machine, then cached in
``build/image-envs``); the build/reuse/fallback tests use a one-module wheel or a dead index and take
seconds.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tarfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pandas as pd
import pytest
from jobs_common import PROCESSING, ROLE, SKLEARN_IMAGE, TRAINING, XGBOOST_IMAGE
from wheels import make_wheel

import sagemaker_emulator
from sagemaker_emulator.app import Emulator
from sagemaker_emulator.images import environments
from sagemaker_emulator.images.environments import ImageEnvironment, environment_for, tag_family
from sagemaker_emulator.images.registry import resolve
from sagemaker_emulator.runtime import imageenvs
from sagemaker_emulator.runtime.pyenvs import SENTINEL

RUN = uuid.uuid4().hex[:6]
PROCESSING_LOGS = "/aws/sagemaker/ProcessingJobs"
TRAINING_LOGS = "/aws/sagemaker/TrainingJobs"
PY = imageenvs.PYTHON_LABEL
SKLEARN_FIRST_LINE = f"sagemaker-scikit-learn:1.2-1-cpu-py3 — scikit-learn 1.2.1, pandas 1.5.3, numpy 1.24.1 ({PY})"

#: the public Immersion Day notebooks' split (feature-engineering-and-training), then ``to_csv``
SPLIT_SCRIPT = """\
import importlib.util, json, sys
import numpy as np
import pandas as pd
import sklearn

model_data = pd.read_csv("/opt/ml/processing/input/data/bank.csv")
train_data, validation_data, test_data = np.split(
    model_data.sample(frac=1, random_state=1729), [int(0.7 * len(model_data)), int(0.9 * len(model_data))])
for name, part in (("train", train_data), ("validation", validation_data), ("test", test_data)):
    part.to_csv(f"/opt/ml/processing/output/{name}.csv", index=False, header=False)
print("VERSIONS " + json.dumps({"pandas": pd.__version__, "numpy": np.__version__,
                                "scikit-learn": sklearn.__version__, "python": sys.executable,
                                "xgboost importable": importlib.util.find_spec("xgboost") is not None}))
"""

PROBE_SCRIPT = """\
import importlib.util, json, sys
found = {name: importlib.util.find_spec(name) is not None for name in ("tinyimagelib", "pandas", "numpy")}
print("PROBE " + json.dumps({"python": sys.executable, **found}))
"""


def bank_frame(rows: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(12)
    return pd.DataFrame({
        "age": rng.integers(18, 90, rows), "job": rng.choice(["admin.", "technician", "retired"], rows),
        "balance": np.round(rng.normal(1000, 300, rows), 2), "y": rng.integers(0, 2, rows)})


def log_lines(logs: Any, group: str, name: str) -> list[str]:
    streams = logs.describe_log_streams(logGroupName=group, logStreamNamePrefix=f"{name}/")["logStreams"]
    lines: list[str] = []
    for stream in sorted(s["logStreamName"] for s in streams):
        events = logs.get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True)["events"]
        lines += [event["message"] for event in events]
    return lines


def tagged(lines: list[str], tag: str) -> dict[str, Any]:
    found = [line for line in lines if line.startswith(tag + " ")]
    assert found, f"no {tag} line in {lines[-5:]}"
    return json.loads(found[-1][len(tag) + 1:])


def run_processing(sm: Any, s3: Any, logs: Any, bucket: str, script: str, *, image: str = SKLEARN_IMAGE,
                   data: bytes | None = None, timeout: float = 240.0) -> tuple[dict[str, Any], list[str]]:
    """Upload ``script`` (and ``data`` as bank.csv), run it as a processing job, return (job, log lines)."""
    name = f"imgenv-{RUN}-{uuid.uuid4().hex[:6]}"
    s3.put_object(Bucket=bucket, Key=f"{name}/code/job.py", Body=script.encode())
    s3.put_object(Bucket=bucket, Key=f"{name}/data/bank.csv", Body=data or b"x\n1\n")
    sm.create_processing_job(
        ProcessingJobName=name, RoleArn=ROLE,
        AppSpecification={"ImageUri": image,
                          "ContainerEntrypoint": ["python3", "/opt/ml/processing/input/code/job.py"]},
        ProcessingInputs=[
            {"InputName": "code", "S3Input": {"S3Uri": f"s3://{bucket}/{name}/code/",
                                              "LocalPath": "/opt/ml/processing/input/code",
                                              "S3DataType": "S3Prefix", "S3InputMode": "File"}},
            {"InputName": "data", "S3Input": {"S3Uri": f"s3://{bucket}/{name}/data/",
                                              "LocalPath": "/opt/ml/processing/input/data",
                                              "S3DataType": "S3Prefix", "S3InputMode": "File"}}],
        ProcessingOutputConfig={"Outputs": [{"OutputName": "out", "S3Output": {
            "S3Uri": f"s3://{bucket}/{name}/out", "LocalPath": "/opt/ml/processing/output",
            "S3UploadMode": "EndOfJob"}}]},
        ProcessingResources={"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large",
                                               "VolumeSizeInGB": 5}},
        StoppingCondition={"MaxRuntimeInSeconds": 600})
    job = PROCESSING.wait(sm, name, timeout=timeout)
    return job, log_lines(logs, PROCESSING_LOGS, name)


@contextmanager
def private_emulator(state: Path) -> Iterator[tuple[Emulator, dict[str, Any]]]:
    """An emulator of its own (its own image-environment settings, read at start) with boto3 clients for it."""
    emu = Emulator(state)
    emu.start("127.0.0.1", 0)
    session = boto3.Session(aws_access_key_id=emu.credentials.access_key,
                            aws_secret_access_key=emu.credentials.secret_key, region_name="us-east-1")
    clients = {name: session.client(name, endpoint_url=emu.endpoint_url) for name in ("sagemaker", "s3", "logs")}
    with contextlib.suppress(clients["s3"].exceptions.BucketAlreadyOwnedByYou):  # a restarted emulator has it
        clients["s3"].create_bucket(Bucket="imgenv")
    try:
        yield emu, clients
    finally:
        emu.stop()


def run_private(clients: dict[str, Any], script: str, **kwargs: Any) -> tuple[dict[str, Any], list[str]]:
    return run_processing(clients["sagemaker"], clients["s3"], clients["logs"], "imgenv", script, **kwargs)


# --------------------------------------------------------------------------- the table


def test_every_pinned_environment_names_only_what_it_installs():
    for env in set(environments.ENVIRONMENTS.values()):
        assert all("==" in requirement for requirement in env.requirements), env.name
        assert env.summary().count(",") == len(env.shown) - 1


@pytest.mark.parametrize(("uri", "expected"), [
    (SKLEARN_IMAGE, "sagemaker-scikit-learn:1.2-1"),
    ("683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.4-2-py312", "sagemaker-scikit-learn:1.4-2"),
    (XGBOOST_IMAGE, "sagemaker-xgboost:1.7-1"),
    ("683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:3.0-5", "sagemaker-xgboost:3.0-5"),
    ("811284229777.dkr.ecr.us-east-1.amazonaws.com/xgboost:latest", "sagemaker-xgboost:1.7-1"),
    ("811284229777.dkr.ecr.us-east-1.amazonaws.com/xgboost:1", "sagemaker-xgboost:1.7-1"),
    ("683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:0.90-2-cpu-py3", None),
])
def test_sdk_image_uris_map_to_their_tags_environment(uri: str, expected: str | None):
    image = resolve(uri)
    assert image is not None
    env = environment_for(image)
    assert (env.name if env else None) == expected, tag_family(image)


# --------------------------------------------------------------------------- built, reused, isolated, warm


@pytest.fixture
def tiny_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ImageEnvironment:
    """scikit-learn 1.2-1 stands for an image whose environment is one tiny wheel, served offline."""
    wheels = tmp_path / "wheels"
    make_wheel(wheels)
    env = ImageEnvironment("sagemaker-scikit-learn:1.2-1", ("tinyimagelib==1.0",), ("tinyimagelib",))
    monkeypatch.setitem(environments.ENVIRONMENTS, ("sagemaker-scikit-learn", "1.2-1"), env)
    monkeypatch.setenv("SM_EMULATOR_PIP_ARGS", f"--no-index --find-links {wheels}")
    monkeypatch.setenv(imageenvs.DIR_ENV, str(tmp_path / "image-envs"))
    monkeypatch.setenv(imageenvs.ENABLED_ENV, "1")
    return env


@pytest.mark.slow
def test_an_image_environment_is_built_once_with_progress_then_reused_isolated_and_warm(tmp_path, tiny_environment):
    first_line = f"sagemaker-scikit-learn:1.2-1-cpu-py3 — tinyimagelib 1.0 ({PY})"
    with private_emulator(tmp_path / "state") as (emu, clients):
        job, lines = run_private(clients, PROBE_SCRIPT)
        assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
        assert lines[0] == first_line
        assert lines[1].startswith("Building the environment of sagemaker-scikit-learn:1.2-1 (first use")
        assert any(line.startswith("Built the environment of sagemaker-scikit-learn:1.2-1 in ") for line in lines)
        probe = tagged(lines, "PROBE")
        assert probe == {"python": probe["python"], "tinyimagelib": True, "pandas": False, "numpy": False}, \
            "the image's library, and none of the emulator's"
        env_dir = emu.image_envs.env_dir(tiny_environment)
        assert probe["python"] == str(env_dir / "bin" / "python")
        runner = env_dir / "runner" / "sagemaker_emulator"
        assert runner.resolve() == Path(sagemaker_emulator.__file__).resolve().parent
        built = (env_dir / "sagemaker-emulator-image-env.json").stat().st_mtime

        job, lines = run_private(clients, PROBE_SCRIPT)
        assert job["ProcessingJobStatus"] == "Completed" and lines[0] == first_line
        assert not any("Building" in line for line in lines), "reused: no pip the second time"
        worker = next(w for w in emu.warm.workers() if w.python == probe["python"])
        assert worker.ready.wait(60) and worker.usable, "the image environment's own warm worker"
        job, lines = run_private(clients, PROBE_SCRIPT)
        assert job["ProcessingJobStatus"] == "Completed" and worker.forks >= 1
        assert tagged(lines, "PROBE")["python"] == probe["python"]

    with private_emulator(tmp_path / "state") as (emu, clients):  # a daemon restart
        job, lines = run_private(clients, PROBE_SCRIPT)
        assert job["ProcessingJobStatus"] == "Completed" and lines[0] == first_line
        assert not any("Building" in line for line in lines)
    assert (env_dir / "sagemaker-emulator-image-env.json").stat().st_mtime == built


@pytest.mark.slow
def test_unreachable_index_runs_the_job_in_the_emulators_environment_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv(imageenvs.DIR_ENV, str(tmp_path / "image-envs"))
    monkeypatch.setenv(imageenvs.ENABLED_ENV, "1")
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/")  # nothing listens on the discard port
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    for name in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "SM_EMULATOR_PIP_ARGS"):
        monkeypatch.delenv(name, raising=False)
    ours = f"scikit-learn {_version('scikit-learn')}, pandas {pd.__version__}, numpy {np.__version__} ({PY})"
    with private_emulator(tmp_path / "state") as (_emu, clients):
        job, lines = run_private(clients, SPLIT_SCRIPT, data=bank_frame().to_csv(index=False).encode())
        assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
        assert lines[0] == SKLEARN_FIRST_LINE
        fallback = [line for line in lines if line.startswith("Could not build the environment")]
        assert fallback and fallback[0].endswith(f"runs in the emulator's own environment instead: {ours}")
        assert tagged(lines, "VERSIONS")["pandas"] == pd.__version__

        started = time.monotonic()
        job, lines = run_private(clients, SPLIT_SCRIPT, data=bank_frame().to_csv(index=False).encode())
        assert job["ProcessingJobStatus"] == "Completed"
        assert any("failed" in line and "ago" in line for line in lines), "not retried at once"
        assert time.monotonic() - started < 30


@pytest.mark.slow
def test_switched_off_every_job_runs_in_the_emulators_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(imageenvs.ENABLED_ENV, "0")
    with private_emulator(tmp_path / "state") as (_emu, clients):
        job, lines = run_private(clients, PROBE_SCRIPT)
    assert job["ProcessingJobStatus"] == "Completed"
    assert lines[0].startswith("sagemaker-scikit-learn:1.2-1-cpu-py3 — the emulator's own environment (image "
                               "environments are off: SAGEMAKER_EMULATOR_IMAGE_ENVS=0): scikit-learn ")
    assert tagged(lines, "PROBE")["pandas"] is True


def _version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


# --------------------------------------------------------------------------- the real images


@pytest.fixture(scope="module")
def bucket(s3) -> str:
    name = f"image-envs-{RUN}"
    s3.create_bucket(Bucket=name)
    return name


def _require_built(emulator: Emulator, uri: str) -> None:
    image = resolve(uri)
    assert image is not None
    env = environment_for(image)
    if not imageenvs.enabled() or env is None or not (emulator.image_envs.env_dir(env) / SENTINEL).exists():
        pytest.skip(f"the environment of {uri} is not built here (image environments off, or no package index)")


@pytest.mark.slow
def test_the_public_notebooks_split_runs_in_the_kernel_and_in_a_scikit_learn_1_2_1_processing_job(
        emulator, sm, s3, logs, bucket):
    _require_built(emulator, SKLEARN_IMAGE)
    frame = bank_frame()
    job, lines = run_processing(sm, s3, logs, bucket, SPLIT_SCRIPT, data=frame.to_csv(index=False).encode())
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    assert lines[0] == SKLEARN_FIRST_LINE
    versions = tagged(lines, "VERSIONS")
    assert (versions["pandas"], versions["numpy"], versions["scikit-learn"]) == ("1.5.3", "1.24.1", "1.2.1")
    assert versions["xgboost importable"] is False, "the emulator's xgboost does not show through the image"

    # the same cell in the kernel (pandas 2.x): the same rows in the same order
    kernel = np.split(frame.sample(frac=1, random_state=1729), [int(0.7 * len(frame)), int(0.9 * len(frame))])
    for name, part in zip(("train", "validation", "test"), kernel, strict=True):
        assert isinstance(part, pd.DataFrame)
        body = s3.get_object(Bucket=bucket, Key=f"{job['ProcessingJobName']}/out/{name}.csv")["Body"].read()
        assert body.decode() == part.to_csv(index=False, header=False)


@pytest.mark.slow
def test_builtin_1_7_1_writes_the_legacy_binary_model_the_kernel_loads_as_lab_02_does(emulator, sm, s3, logs, bucket):
    import xgboost
    from sklearn.metrics import roc_auc_score

    _require_built(emulator, XGBOOST_IMAGE)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(500, 4))
    y = (x[:, 0] - x[:, 2] + rng.normal(scale=0.4, size=500) > 0).astype(int)
    s3.put_object(Bucket=bucket, Key="xgb/train/train.csv",
                  Body=pd.DataFrame(np.column_stack([y, x])).to_csv(index=False, header=False).encode())
    name = f"imgenv-xgb-{RUN}"
    sm.create_training_job(
        TrainingJobName=name, RoleArn=ROLE,
        AlgorithmSpecification={"TrainingImage": XGBOOST_IMAGE, "TrainingInputMode": "File"},
        HyperParameters={"objective": "binary:logistic", "num_round": "20", "max_depth": "3"},
        InputDataConfig=[{"ChannelName": "train", "ContentType": "text/csv", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/xgb/train/"}}}],
        OutputDataConfig={"S3OutputPath": f"s3://{bucket}/xgb/output"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        StoppingCondition={"MaxRuntimeInSeconds": 600})
    job = TRAINING.wait(sm, name, timeout=240)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    first = log_lines(logs, TRAINING_LOGS, name)[0]
    assert first == (f"sagemaker-xgboost:1.7-1 — xgboost 1.7.4, pandas 1.5.3, numpy 1.24.1, scikit-learn 1.1.3 "
                     f"({PY})")

    key = job["ModelArtifacts"]["S3ModelArtifacts"].split(f"s3://{bucket}/", 1)[1]
    with tarfile.open(fileobj=io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read())) as tar:
        model_bytes = tar.extractfile("xgboost-model").read()
    assert not model_bytes.startswith(b"{"), "XGBoost 1.7's save_model without an extension: the legacy binary"
    booster = xgboost.Booster()  # lab 02, cell "test AUC", unchanged
    booster.load_model(bytearray(model_bytes))
    assert roc_auc_score(y, booster.predict(xgboost.DMatrix(x))) > 0.9
