"""A killed test session or workshop run leaves no emulator daemon, model server or kernel behind.

Each test starts the real thing in a subprocess — a pytest session using the notebook tests'
``emulator_state`` fixture, or ``tools/run_workshop.py`` — lets it start a daemon (and, for the
session, deploy an endpoint so a model server runs), kills it, and checks by pid that every one of
those processes is gone. SIGTERM must clean up before the process exits (the fixture teardown or
the runner's ``finally``); SIGKILL runs no clean-up at all, so the daemon's own watch on the pid
that asked for it (``SAGEMAKER_EMULATOR_EXIT_WITH_PID``) has to end it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from sagemaker_emulator.cli import EXIT_WITH_PID_ENV, _alive

ROOT = Path(__file__).resolve().parents[2]
STARTUP = 150.0  # seconds for the subprocess to start its daemon (and deploy): imports are slow on a busy CI box

#: the inner session: start the daemon as a notebook's setup cell does, deploy an endpoint, record pids, wait
INNER_SESSION = '''
import json, os, subprocess, sys, time
from pathlib import Path

import boto3
import numpy as np
import xgboost

sys.path.insert(0, os.environ["TESTS_DIR"])
from artifacts import xgboost_tarball
from jobs_common import ROLE, WAITER, XGBOOST_IMAGE
from sagemaker_emulator.cli import running_info
from sagemaker_emulator.envvars import environment


def descendants(pid):
    children = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def test_hold(emulator_state):
    subprocess.run([sys.executable, "-m", "sagemaker_emulator.cli", "start"], check=True, capture_output=True,
                   timeout=120)
    info = running_info(emulator_state)
    env = environment(emulator_state, info["endpoint_url"], "us-east-1")
    session = boto3.Session(aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region_name="us-east-1")
    s3 = session.client("s3", endpoint_url=info["endpoint_url"])
    sm = session.client("sagemaker", endpoint_url=info["endpoint_url"])
    x = np.random.default_rng(0).normal(size=(50, 3))
    booster = xgboost.train({"objective": "binary:logistic"}, xgboost.DMatrix(x, label=x[:, 0] > 0), 2)
    s3.create_bucket(Bucket="cleanup")
    s3.put_object(Bucket="cleanup", Key="model.tar.gz", Body=xgboost_tarball(booster))
    sm.create_model(ModelName="m", ExecutionRoleArn=ROLE,
                    PrimaryContainer={"Image": XGBOOST_IMAGE, "ModelDataUrl": "s3://cleanup/model.tar.gz"})
    sm.create_endpoint_config(EndpointConfigName="c", ProductionVariants=[
        {"VariantName": "A", "ModelName": "m", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
    sm.create_endpoint(EndpointName="e", EndpointConfigName="c")
    sm.get_waiter("endpoint_in_service").wait(EndpointName="e", WaiterConfig=WAITER)
    pids = {"daemon": info["pid"], "servers": descendants(info["pid"])}
    Path(os.environ["HOLD_PIDS"]).write_text(json.dumps(pids))
    time.sleep(600)
'''

#: a workshop notebook that starts the daemon the way ``helpers.workshop.setup`` does, then runs long
RUNNER_CELLS = (
    "import json, os\nfrom pathlib import Path\nfrom sagemaker_emulator.cli import start\n"
    "info = start(Path(os.environ['SAGEMAKER_EMULATOR_STATE_DIR']), 0, 'us-east-1')\n"
    "Path(os.environ['HOLD_PIDS']).write_text(json.dumps({'daemon': info['pid'], 'servers': [os.getpid()]}))",
    "import time\ntime.sleep(600)",
)


def clean_environment(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "SAGEMAKER_EMULATOR_STATE_DIR": str(tmp_path / "state"), "HOLD_PIDS": str(tmp_path / "pids"),
           "TESTS_DIR": str(ROOT / "tests"), "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests' / 'notebooks'}"}
    env.pop(EXIT_WITH_PID_ENV, None)  # as if started from a shell, not from inside another guarded run
    return env


@pytest.fixture
def started(tmp_path: Path) -> Iterator[Callable[[list[str]], tuple[subprocess.Popen[bytes], dict[str, object]]]]:
    """``started(command)`` → (process, pids it recorded); whatever is left is SIGKILLed afterwards."""
    procs: list[subprocess.Popen[bytes]] = []
    recorded: list[int] = []

    def start(command: list[str]) -> tuple[subprocess.Popen[bytes], dict[str, object]]:
        log = open(tmp_path / "output.log", "wb")  # noqa: SIM115  (closed with the process)
        proc = subprocess.Popen(command, cwd=ROOT, env=clean_environment(tmp_path), stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(proc)
        deadline = time.monotonic() + STARTUP
        pid_file = tmp_path / "pids"
        while not pid_file.exists() or not pid_file.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the subprocess did not start its daemon (exit {proc.poll()}):\n"
                            + (tmp_path / "output.log").read_text(errors="replace")[-3000:], pytrace=False)
            time.sleep(0.2)
        pids = json.loads(pid_file.read_text())
        recorded.extend([pids["daemon"], *pids["servers"]])
        return proc, pids

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    for pid in recorded:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def survivors(pids: dict[str, object], within: float) -> list[int]:
    """The recorded processes still running after ``within`` seconds."""
    wanted = [pids["daemon"], *pids["servers"]]
    deadline = time.monotonic() + within
    while True:
        alive = [pid for pid in wanted if _alive(pid)]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_killed_test_session_leaves_no_daemon_or_model_server(tmp_path: Path, started, signum: int) -> None:
    inner = tmp_path / "test_inner_session.py"
    inner.write_text(INNER_SESSION)
    proc, pids = started([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p",
                          "emulator_session", "--rootdir", str(tmp_path), str(inner)])
    assert pids["servers"], "the endpoint's model server should be a process of the daemon"

    os.kill(proc.pid, signum)
    proc.wait(timeout=60)

    # SIGTERM: the fixture teardown stopped everything before pytest exited; SIGKILL: the daemon's watch does it
    left = survivors(pids, within=3 if signum == signal.SIGTERM else 30)
    output = (tmp_path / "output.log").read_text(errors="replace")
    assert not left, f"still running after {signal.Signals(signum).name}: {left} of {pids}\n{output[-3000:]}"
    if signum == signal.SIGTERM:
        assert proc.returncode == pytest.ExitCode.INTERRUPTED, output[-3000:]
        assert "stopped by SIGTERM" in output


@pytest.mark.timeout(300)
def test_a_terminated_workshop_run_stops_its_kernel_and_the_daemon_it_started(tmp_path: Path, started) -> None:
    solutions = tmp_path / "solutions"
    solutions.mkdir()
    nbformat.write(new_notebook(cells=[new_code_cell(source) for source in RUNNER_CELLS]), solutions / "00_hold.ipynb")
    proc, pids = started([sys.executable, str(ROOT / "tools" / "run_workshop.py"), "--solutions", str(solutions),
                          "--build-dir", str(tmp_path / "build"), "--no-html"])

    os.kill(proc.pid, signal.SIGTERM)
    proc.wait(timeout=60)

    output = (tmp_path / "output.log").read_text(errors="replace")
    assert not survivors(pids, within=3), f"the daemon or the kernel outlived the runner:\n{output[-3000:]}"
    assert proc.returncode == 128 + signal.SIGTERM, output[-3000:]
    assert "workshop run interrupted (stopped by SIGTERM)" in output
