"""Warm workers: a job forked from a pre-imported worker behaves as the ``Popen`` process it replaces.

Every test runs real processes: a ``WarmPool`` whose worker preloads NumPy (fast to start), the
same commands run cold with ``subprocess`` for comparison, and, at the end, jobs submitted to the
emulator with boto3 to check that they really run forked and produce the same model bytes.
"""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import tarfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from jobs_common import PROCESSING, ROLE, SKLEARN_IMAGE, TRAINING, XGBOOST_IMAGE
from processes import pid_gone

from sagemaker_emulator.runtime.container import Container, LogSink, process_environment
from sagemaker_emulator.runtime.warm import WarmPool, WarmProcess, parse_command

pytestmark = pytest.mark.slow  # real worker processes and jobs

PYTHON = sys.executable


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[WarmPool]:
    warm = WarmPool(tmp_path / "warm", enabled=True)
    warm.serve(PYTHON, ("numpy",))
    warm.ready_wait = 60  # the first launch waits for the worker instead of starting cold
    yield warm
    warm.shutdown()


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def job_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = process_environment({k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}, str(tmp_path))
    return {**env, **extra}


def warm_run(pool: WarmPool, command: list[str], cwd: Path, env: dict[str, str]) -> tuple[str, int]:
    process = pool.launch(command, cwd, env)
    assert isinstance(process, WarmProcess), "the command should have been forked from the worker"
    output = process.stdout.read().decode()
    return output, process.wait(30)


def cold_run(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[str, int]:
    done = subprocess.run(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=60)
    return done.stdout.decode(), done.returncode


# --------------------------------------------------------------------------- what a command is

def test_commands_the_pool_runs_warm_and_those_it_leaves_to_popen(tmp_path: Path) -> None:
    write(tmp_path, "train.py", "print(1)\n")
    env = {"PATH": os.environ["PATH"]}
    module = parse_command([PYTHON, "-m", "sagemaker_emulator.images.xgboost_algorithm", "train"], tmp_path, env)
    assert module is not None and (module.python, module.module, module.argv) == (
        PYTHON, "sagemaker_emulator.images.xgboost_algorithm", ("train",))
    script = parse_command([PYTHON, "-u", "train.py", "--epochs", "3"], tmp_path, env)
    assert script is not None and (script.script, script.argv, script.unbuffered) == ("train.py", ("--epochs", "3"),
                                                                                       True)
    for command in (["/bin/bash", "run.sh"], [PYTHON, "-c", "print(1)"], [PYTHON, "missing.py"], [PYTHON]):
        program = parse_command(command, tmp_path, env)
        assert program is None or program.python != PYTHON


def test_python3_on_the_jobs_path_is_the_interpreter_its_shim_names(tmp_path: Path) -> None:
    from sagemaker_emulator.runtime.container import python_shim_dir

    shims = python_shim_dir(tmp_path, PYTHON)
    write(tmp_path, "job.py", "print(1)\n")
    program = parse_command(["python3", "job.py"], tmp_path, {"PATH": f"{shims}{os.pathsep}/usr/bin"})
    assert program is not None and program.python == PYTHON and program.script == "job.py"


# --------------------------------------------------------------------------- same output, same exit status

SCRIPTS = {
    "exit code": "print('hello'); import sys; sys.exit(3)\n",
    "exit message": "raise SystemExit('cannot go on')\n",
    "exception": "def f():\n    raise ValueError('bad row 42')\n\nprint('before')\nf()\n",
    "keyboard interrupt": "raise KeyboardInterrupt\n",
    "buffered stdout, line-buffered stderr": "import sys\nprint('out 1')\nprint('err', file=sys.stderr)\n"
                                             "print('out 2')\n",
    "threads and atexit": "import atexit, threading, time\natexit.register(lambda: print('atexit ran'))\n"
                          "threading.Thread(target=lambda: (time.sleep(0.2), print('late thread'))).start()\n"
                          "print('main done')\n",
    "multiprocessing": "import multiprocessing as mp\n\ndef square(x):\n    return x * x\n\n"
                       "if __name__ == '__main__':\n"
                       "    for method in ('spawn', 'fork'):\n"
                       "        with mp.get_context(method).Pool(2) as pool:\n"
                       "            print(method, pool.map(square, range(4)))\n",
    "argv and path": "import os, sys\nprint(sys.argv, sys.path[0] == os.path.dirname(os.path.abspath(__file__)), "
                     "__name__)\n",
}


@pytest.mark.parametrize("unbuffered", ["", "1"], ids=["buffered", "PYTHONUNBUFFERED"])
@pytest.mark.parametrize("case", sorted(SCRIPTS))
def test_a_script_prints_and_exits_as_it_does_when_started_cold(pool: WarmPool, tmp_path: Path, case: str,
                                                                 unbuffered: str) -> None:
    write(tmp_path, "job.py", SCRIPTS[case])
    env = job_env(tmp_path, **({"PYTHONUNBUFFERED": unbuffered} if unbuffered else {}))
    command = [PYTHON, "job.py", "--flag", "value"]
    assert warm_run(pool, command, tmp_path, env) == cold_run(command, tmp_path, env)


@pytest.mark.parametrize("module", ["mymodule", "no_such_module"])
def test_python_dash_m_runs_a_module_as_it_does_cold(pool: WarmPool, tmp_path: Path, module: str) -> None:
    write(tmp_path, "mymodule.py", "import os, sys\nprint(sys.argv, sys.path[0] == os.getcwd(), __name__)\n")
    env = job_env(tmp_path)
    command = [PYTHON, "-m", module, "a", "b"]
    warm, cold = warm_run(pool, command, tmp_path, env), cold_run(command, tmp_path, env)
    assert warm == cold
    assert cold[1] == (0 if module == "mymodule" else 1)


# --------------------------------------------------------------------------- isolation

ISOLATION = """\
import json, os, sys, tempfile, time
started = time.time()
time.sleep(0.5)
import numpy as np
print(json.dumps({
    "argv": sys.argv[1:], "cwd": os.getcwd(), "who": os.environ.get("WHO"), "extra": os.environ.get("ONLY_A"),
    "tmpdir": tempfile.gettempdir(), "session": os.getsid(0) == os.getpid(), "group": os.getpgid(0) == os.getpid(),
    "stdin": os.readlink("/proc/self/fd/0"), "ppid": os.getppid(), "random": float(np.random.rand()),
    "started": started, "ended": time.time()}))
"""


def test_two_concurrent_jobs_keep_their_own_env_cwd_argv_tmpdir_and_session(pool: WarmPool, tmp_path: Path) -> None:
    runs = {}
    for who in ("a", "b"):
        folder = tmp_path / who
        (folder / "tmp").mkdir(parents=True)
        write(folder, "job.py", ISOLATION)
        env = job_env(folder / "tmp", WHO=who, **({"ONLY_A": "yes"} if who == "a" else {}))
        runs[who] = (folder, pool.launch([PYTHON, "job.py", who], folder, env))
    seen = {}
    for who, (_folder, process) in runs.items():
        assert isinstance(process, WarmProcess)
        seen[who] = json.loads(process.stdout.read())
        assert process.wait(30) == 0
    worker = pool.workers()[0].info["pid"]
    for who, (folder, _process) in runs.items():
        assert seen[who]["argv"] == [who] and seen[who]["cwd"] == str(folder) and seen[who]["who"] == who
        assert seen[who]["tmpdir"] == str(folder / "tmp")
        assert seen[who]["session"] and seen[who]["group"] and seen[who]["stdin"] == "/dev/null"
        assert seen[who]["ppid"] == worker
    assert seen["a"]["extra"] == "yes" and seen["b"]["extra"] is None
    assert seen["a"]["started"] < seen["b"]["ended"] and seen["b"]["started"] < seen["a"]["ended"], "ran side by side"
    assert seen["a"]["random"] != seen["b"]["random"], "NumPy's global generator is reseeded in each fork"


def test_a_job_setting_import_time_variables_gets_a_worker_started_with_them(pool: WarmPool, tmp_path: Path) -> None:
    write(tmp_path, "job.py", "print('ok')\n")
    assert warm_run(pool, [PYTHON, "job.py"], tmp_path, job_env(tmp_path)) == ("ok\n", 0)
    assert warm_run(pool, [PYTHON, "job.py"], tmp_path, job_env(tmp_path, OMP_NUM_THREADS="1")) == ("ok\n", 0)
    workers = pool.workers()
    assert len(workers) == 2
    single = next(w for w in workers if ("OMP_NUM_THREADS", "1") in w.import_env)
    environ = Path(f"/proc/{single.info['pid']}/environ").read_bytes().split(b"\0")
    assert b"OMP_NUM_THREADS=1" in environ, "OpenMP reads it when the worker imports its libraries"


# --------------------------------------------------------------------------- stopping and dying

SLEEPER = """\
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
print(child.pid, flush=True)
time.sleep(120)
"""


def wait_gone(pids: list[int], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while any(not pid_gone(pid) for pid in pids):
        assert time.monotonic() < deadline, f"still running: {[p for p in pids if not pid_gone(p)]}"
        time.sleep(0.05)


def test_stopping_signals_the_jobs_process_group_and_everything_in_it_ends(pool: WarmPool, tmp_path: Path) -> None:
    write(tmp_path, "job.py", SLEEPER)
    process = pool.launch([PYTHON, "job.py"], tmp_path, job_env(tmp_path))
    assert isinstance(process, WarmProcess)
    grandchild = int(process.stdout.readline())
    assert process.poll() is None and not pid_gone(grandchild)
    os.killpg(process.pid, signal.SIGTERM)  # what Container.signal does on a stop
    assert process.wait(10) == -signal.SIGTERM
    wait_gone([process.pid, grandchild])


OWNER = """\
import json, os, sys, time
from pathlib import Path
from sagemaker_emulator.runtime.warm import WarmPool

pool = WarmPool(Path(sys.argv[1]), enabled=True)
pool.serve(sys.executable, ("numpy",))
pool.ready_wait = 60
process = pool.launch([sys.executable, "job.py"], Path(sys.argv[1]), dict(os.environ))
print(json.dumps({"worker": pool.workers()[0].info["pid"], "job": process.pid}), flush=True)
time.sleep(120)
"""


def test_killing_the_daemon_kills_its_worker_and_the_jobs_forked_from_it(tmp_path: Path) -> None:
    write(tmp_path, "owner.py", OWNER)
    write(tmp_path, "job.py", "import time\ntime.sleep(120)\n")
    owner = subprocess.Popen([PYTHON, "owner.py", str(tmp_path)], cwd=tmp_path, stdout=subprocess.PIPE,
                             env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        assert owner.stdout is not None
        pids = json.loads(owner.stdout.readline())
        assert not pid_gone(pids["worker"]) and not pid_gone(pids["job"])
        owner.kill()
        owner.wait(10)
        wait_gone([pids["worker"], pids["job"]])
    finally:
        owner.kill()
        owner.wait(10)


# --------------------------------------------------------------------------- falling back

def test_a_worker_that_dies_ends_its_jobs_and_the_next_job_starts_cold(pool: WarmPool, tmp_path: Path,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    write(tmp_path, "job.py", "import time\nprint('up', flush=True)\ntime.sleep(120)\n")
    process = pool.launch([PYTHON, "job.py"], tmp_path, job_env(tmp_path))
    assert isinstance(process, WarmProcess) and process.stdout.readline() == b"up\n"
    worker = pool.workers()[0]
    os.kill(int(worker.info["pid"]), signal.SIGKILL)
    assert process.wait(10) == -signal.SIGTERM, "PR_SET_PDEATHSIG ended the job with its worker"
    wait_gone([process.pid])
    with caplog.at_level(logging.WARNING, logger="sagemaker_emulator.warm"):
        assert pool.launch([PYTHON, "job.py"], tmp_path, job_env(tmp_path)) is None
    assert any("stopped answering" in record.getMessage() for record in caplog.records)


def test_a_worker_that_cannot_start_leaves_the_job_to_popen_and_says_so_in_the_daemon_log(
        emulator: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    broken = write(tmp_path, "python", "#!/bin/sh\necho \"broken interpreter $*\"\nexit 3\n")
    broken.chmod(0o755)
    warm = WarmPool(tmp_path / "warm", enabled=True)
    warm.serve(str(broken), ("numpy",))
    sink = LogSink(emulator.logs, "/aws/sagemaker/TrainingJobs", f"warm-fallback-{uuid.uuid4().hex[:8]}")
    container = Container([str(broken), "-m", "anything"], tmp_path, job_env(tmp_path), sink, None)
    container.warm = warm
    try:
        with caplog.at_level(logging.WARNING, logger="sagemaker_emulator.warm"):
            container.start()
            assert container.wait(30) == 3
        assert isinstance(container.process, subprocess.Popen)
        assert container.tail == ["broken interpreter -m anything"]
        assert any("jobs start without it (Popen)" in record.getMessage() for record in caplog.records)
    finally:
        warm.shutdown()


def test_sagemaker_emulator_warm_0_turns_warm_workers_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAGEMAKER_EMULATOR_WARM", "0")
    warm = WarmPool(tmp_path)
    write(tmp_path, "job.py", "print(1)\n")
    assert warm.launch([PYTHON, "job.py"], tmp_path, job_env(tmp_path)) is None
    assert warm.workers() == []


# --------------------------------------------------------------------------- jobs through the emulator

def _bucket(s3: Any, name: str) -> str:
    s3.create_bucket(Bucket=name)
    rng = np.random.default_rng(11)
    features = rng.normal(size=(400, 4))
    labels = (features[:, 0] + rng.normal(scale=0.5, size=400) > 0).astype(int)
    buf = io.StringIO()
    np.savetxt(buf, np.column_stack([labels, features]), delimiter=",", fmt="%.6g")
    s3.put_object(Bucket=name, Key="train/part-0.csv", Body=buf.getvalue().encode())
    s3.put_object(Bucket=name, Key="code/job.py", Body=b"import os, sys\nprint(f'ppid={os.getppid()}')\n"
                                                          b"print('args', sys.argv[1:])\n")
    return name


def _model_bytes(s3: Any, uri: str) -> bytes:
    bucket, key = uri[len("s3://"):].split("/", 1)
    with tarfile.open(fileobj=io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read())) as tar:
        member = tar.extractfile("xgboost-model")
        assert member is not None
        return member.read()


@pytest.fixture
def warm_emulator(emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The session's emulator, its jobs waiting for a starting worker rather than starting cold."""
    monkeypatch.setattr(emulator.warm, "ready_wait", 120.0)
    return emulator


def test_a_job_arriving_while_its_worker_imports_starts_cold_at_once(tmp_path: Path) -> None:
    slow = WarmPool(tmp_path / "warm", enabled=True)
    slow.serve(PYTHON, ("numpy", "pandas", "sklearn"))
    write(tmp_path, "job.py", "print('ran')\n")
    try:
        started = time.monotonic()
        assert slow.launch([PYTHON, "job.py"], tmp_path, job_env(tmp_path)) is None
        assert time.monotonic() - started < 0.5
        worker = slow.workers()[0]
        assert worker.ready.wait(120) and worker.usable, "the worker kept warming up in the background"
        assert warm_run(slow, [PYTHON, "job.py"], tmp_path, job_env(tmp_path)) == ("ran\n", 0)
    finally:
        slow.shutdown()


def test_the_builtin_algorithm_trains_the_same_model_forked_as_cold(warm_emulator: Any, sm: Any, s3: Any) -> None:
    emulator = warm_emulator
    bucket = _bucket(s3, f"warm-{uuid.uuid4().hex[:8]}")
    jobs = {}
    for mode in ("warm", "cold"):
        emulator.warm.enabled = mode == "warm"
        try:
            name = f"warm-{mode}-{uuid.uuid4().hex[:8]}"
            sm.create_training_job(
                TrainingJobName=name, RoleArn=ROLE,
                AlgorithmSpecification={"TrainingImage": XGBOOST_IMAGE, "TrainingInputMode": "File"},
                HyperParameters={"num_round": "20", "max_depth": "4", "subsample": "0.8", "objective":
                                 "binary:logistic", "eval_metric": "auc"},
                InputDataConfig=[{"ChannelName": "train", "ContentType": "text/csv", "DataSource": {"S3DataSource": {
                    "S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/train/"}}}],
                OutputDataConfig={"S3OutputPath": f"s3://{bucket}/out"},
                ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
                StoppingCondition={"MaxRuntimeInSeconds": 600})
            jobs[mode] = TRAINING.wait(sm, name, timeout=120)
        finally:
            emulator.warm.enabled = True
    for job in jobs.values():
        assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    assert any(w.forks for w in emulator.warm.workers()), "the warm job was forked from a worker"
    assert jobs["warm"]["FinalMetricDataList"][0]["Value"] == jobs["cold"]["FinalMetricDataList"][0]["Value"]
    warm_model, cold_model = (_model_bytes(s3, jobs[m]["ModelArtifacts"]["S3ModelArtifacts"]) for m in jobs)
    assert warm_model == cold_model


def test_a_processing_script_run_by_python3_is_forked_from_the_worker(warm_emulator: Any, sm: Any, s3: Any,
                                                                       logs: Any) -> None:
    emulator = warm_emulator
    bucket = _bucket(s3, f"warm-{uuid.uuid4().hex[:8]}")
    name = f"warm-proc-{uuid.uuid4().hex[:8]}"
    sm.create_processing_job(
        ProcessingJobName=name, RoleArn=ROLE,
        AppSpecification={"ImageUri": SKLEARN_IMAGE, "ContainerEntrypoint": [
            "python3", "/opt/ml/processing/input/code/job.py"], "ContainerArguments": ["--out", "/opt/ml/x"]},
        ProcessingInputs=[{"InputName": "code", "S3Input": {
            "S3Uri": f"s3://{bucket}/code/job.py", "LocalPath": "/opt/ml/processing/input/code",
            "S3DataType": "S3Prefix", "S3InputMode": "File"}}],
        ProcessingResources={"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large",
                                               "VolumeSizeInGB": 5}},
        StoppingCondition={"MaxRuntimeInSeconds": 600})
    job = PROCESSING.wait(sm, name, timeout=120)
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    stream = logs.describe_log_streams(logGroupName="/aws/sagemaker/ProcessingJobs",
                                       logStreamNamePrefix=f"{name}/")["logStreams"][0]["logStreamName"]
    lines = [e["message"] for e in logs.get_log_events(logGroupName="/aws/sagemaker/ProcessingJobs",
                                                      logStreamName=stream, startFromHead=True)["events"]]
    workers = {w.info.get("pid") for w in emulator.warm.workers()}
    ppid = int(next(line for line in lines if line.startswith("ppid="))[len("ppid="):])
    assert ppid in workers
    root = emulator.paths.jobs / "processing" / name / "algo-1"
    assert f"args ['--out', '{root}/x']" in lines
