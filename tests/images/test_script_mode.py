"""Script mode of the framework images, run as the runtime runs it: a real subprocess on real files.

Each test stages a fresh ``/opt/ml`` stand-in under ``tmp_path``, launches
``python -m sagemaker_emulator.images.script_mode train`` and checks what
SageMaker would look at: the exit code, ``output/success`` / ``output/failure``
and the artifacts. pip never needs the network: requirements are served from
wheels built here with ``--no-index``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import pytest

from sagemaker_emulator.images.script_mode.environment import decode_hyperparameters, to_cmd_args
from sagemaker_emulator.runtime import pyenvs

RUNNER = [sys.executable, "-m", "sagemaker_emulator.images.script_mode", "train"]
FAILURE_RE = re.compile(
    r'\A(?P<cls>\w+):\nExitCode (?P<code>-?\d+)\nErrorMessage "(?P<msg>.*)"\nCommand "(?P<cmd>.*)"\Z', re.S
)

TRAIN_SCRIPT = textwrap.dedent(
    """
    import argparse, json, os, sys
    import numpy as np
    import xgboost as xgb

    parser = argparse.ArgumentParser()
    parser.add_argument("--max_depth", type=int)
    parser.add_argument("--eta", type=float)
    parser.add_argument("--objective", type=str, default="reg:squarederror")
    parser.add_argument("--num_round", type=int, default=5)
    args = parser.parse_args()

    out = os.environ["SM_OUTPUT_DATA_DIR"]
    with open(os.path.join(out, "seen.json"), "w") as f:
        plain = ("PYTHONPATH", "CURRENT_HOST", "SAGEMAKER_REGION")
        env = {k: v for k, v in os.environ.items() if k.startswith("SM_") or k in plain}
        json.dump({"argv": sys.argv[1:], "executable": sys.executable, "cwd": os.getcwd(), "env": env}, f)

    data = np.loadtxt(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "train.csv"), delimiter=",")
    dtrain = xgb.DMatrix(data[:, 1:], label=data[:, 0])
    booster = xgb.train({"max_depth": args.max_depth, "eta": args.eta, "objective": args.objective},
                        dtrain, num_boost_round=args.num_round)
    booster.save_model(os.path.join(os.environ["SM_MODEL_DIR"], "xgboost-model.json"))
    print("trained with", args)
    """
)


def make_job(
    tmp_path: Path,
    hyperparameters: dict[str, str],
    files: dict[str, str],
    code_location: str = "code",
    name: str = "job",
) -> Path:
    """Stage a base dir the way the runtime does (configs, a train channel, extracted code)."""
    base = tmp_path / name
    config = base / "input" / "config"
    for directory in (config, base / "input" / "data" / "train", base / "model", base / "output" / "data"):
        directory.mkdir(parents=True, exist_ok=True)
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    (config / "inputdataconfig.json").write_text(
        json.dumps(
            {
                "train": {
                    "ContentType": "text/csv",
                    "TrainingInputMode": "File",
                    "S3DistributionType": "FullyReplicated",
                    "RecordWrapperType": "None",
                }
            }
        )
    )
    (config / "resourceconfig.json").write_text(
        json.dumps({"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0"})
    )
    rows = [f"{(i % 7) * 1.5},{i},{(i * 3) % 5},{i % 2}" for i in range(30)]
    (base / "input" / "data" / "train" / "train.csv").write_text("\n".join(rows) + "\n")
    code = base / code_location
    code.mkdir(parents=True, exist_ok=True)
    for rel, text in files.items():
        (code / rel).parent.mkdir(parents=True, exist_ok=True)
        (code / rel).write_text(text)
    return base


def runner_env(base: Path, cache: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SM_", "SAGEMAKER_"))}
    env.update(
        SAGEMAKER_BASE_DIR=str(base),
        TRAINING_JOB_NAME=base.name,
        TRAINING_JOB_ARN=f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{base.name}",
        SM_EMULATOR_CACHE_DIR=str(cache),
    )
    env.update(extra)
    return env


def run_job(base: Path, cache: Path, timeout: float = 60, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        RUNNER,
        cwd=base.parent,
        env=runner_env(base, cache, **extra),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def failure_of(base: Path) -> re.Match[str]:
    text = (base / "output" / "failure").read_text()
    match = FAILURE_RE.match(text)
    assert match, text
    return match


def build_wheel(directory: Path, name: str, version: str, source: str) -> Path:
    """A minimal pure-Python wheel, so pip can install something real with --no-index."""
    directory.mkdir(parents=True, exist_ok=True)
    dist_info = f"{name}-{version}.dist-info"
    contents = {
        f"{name}.py": source,
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist_info}/WHEEL": ("Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"),
    }
    record = []
    for path, text in contents.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    record.append(f"{dist_info}/RECORD,,")
    contents[f"{dist_info}/RECORD"] = "\n".join(record) + "\n"
    wheel = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in contents.items():
            archive.writestr(path, text)
    return wheel


# --- pure functions -------------------------------------------------------------------------------


def test_hyperparameters_decode_like_the_toolkit() -> None:
    decoded = decode_hyperparameters(
        {
            "max_depth": "5",
            "eta": "0.2",
            "objective": '"reg:squarederror"',
            "raw": "reg:logistic",
            "flag": "true",
        }
    )
    assert decoded == {
        "max_depth": 5,
        "eta": 0.2,
        "objective": "reg:squarederror",
        "raw": "reg:logistic",
        "flag": True,
    }
    args = to_cmd_args({"max_depth": 5, "eta": 0.2, "a": 1, "flag": True, "d": {"y": 2, "x": 1}})
    assert args == ["-a", "1", "-d", "x=1,y=2", "--eta", "0.2", "--flag", "True", "--max_depth", "5"]


# --- script entry points ----------------------------------------------------------------------------


def test_sdk_encoded_hyperparameters_train_an_xgboost_model(tmp_path: Path) -> None:
    hps = {
        "max_depth": "3",
        "eta": "0.2",
        "num_round": "4",
        "sagemaker_program": '"train.py"',
        "sagemaker_submit_directory": '"s3://bucket/job/source/sourcedir.tar.gz"',
        "sagemaker_region": '"us-east-1"',
        "sagemaker_container_log_level": "20",
    }
    base = make_job(tmp_path, hps, {"train.py": TRAIN_SCRIPT})
    proc = run_job(base, tmp_path / "cache")

    assert proc.returncode == 0, proc.stderr
    assert (base / "output" / "success").exists()
    assert not (base / "output" / "failure").exists()
    assert (base / "model" / "xgboost-model.json").stat().st_size > 0
    assert "Invoking user script" in proc.stderr and "Reporting training SUCCESS" in proc.stderr
    assert "trained with" in proc.stdout

    seen = json.loads((base / "output" / "data" / "seen.json").read_text())
    assert seen["argv"] == ["--eta", "0.2", "--max_depth", "3", "--num_round", "4"]
    assert seen["executable"] == sys.executable  # no requirements.txt: the emulator's own interpreter
    assert seen["cwd"] == str(base / "code")
    env = seen["env"]
    assert env["SM_MODEL_DIR"] == str(base / "model")
    assert env["SM_CHANNEL_TRAIN"] == str(base / "input" / "data" / "train")
    assert json.loads(env["SM_CHANNELS"]) == ["train"]
    assert json.loads(env["SM_HPS"]) == {"eta": 0.2, "max_depth": 3, "num_round": 4}
    assert env["SM_HP_MAX_DEPTH"] == "3" and env["SM_HP_ETA"] == "0.2"
    assert json.loads(env["SM_USER_ARGS"]) == seen["argv"]
    assert env["SM_CURRENT_HOST"] == "algo-1" and json.loads(env["SM_HOSTS"]) == ["algo-1"]
    assert env["SM_NUM_GPUS"] == "0" and int(env["SM_NUM_CPUS"]) >= 1
    assert env["SM_OUTPUT_DATA_DIR"] == str(base / "output" / "data")
    assert env["SM_OUTPUT_DIR"] == str(base / "output")
    assert env["SM_OUTPUT_INTERMEDIATE_DIR"] == str(base / "output" / "intermediate")
    assert env["SM_INPUT_DIR"] == str(base / "input")
    assert env["SM_INPUT_CONFIG_DIR"] == str(base / "input" / "config")
    assert json.loads(env["SM_RESOURCE_CONFIG"])["current_host"] == "algo-1"
    assert json.loads(env["SM_INPUT_DATA_CONFIG"])["train"]["ContentType"] == "text/csv"
    assert env["SM_MODULE_NAME"] == "train" and env["SM_USER_ENTRY_POINT"] == "train.py"
    assert env["SM_MODULE_DIR"] == "s3://bucket/job/source/sourcedir.tar.gz"
    assert env["SM_LOG_LEVEL"] == "20" and env["SM_NETWORK_INTERFACE_NAME"] == "eth0"
    assert json.loads(env["SM_FRAMEWORK_PARAMS"]) == {}
    assert env["SAGEMAKER_REGION"] == "us-east-1" and env["CURRENT_HOST"] == "algo-1"
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(base / "code")
    training_env = json.loads(env["SM_TRAINING_ENV"])
    assert training_env["job_name"] == base.name
    assert training_env["hyperparameters"] == {"eta": 0.2, "max_depth": 3, "num_round": 4}
    assert training_env["channel_input_dirs"] == {"train": env["SM_CHANNEL_TRAIN"]}


def test_model_trainer_raw_strings_and_code_channel(tmp_path: Path) -> None:
    hps = {"max_depth": "2", "eta": "0.3", "objective": "reg:squarederror", "sagemaker_program": "train.py"}
    base = make_job(tmp_path, hps, {"train.py": TRAIN_SCRIPT}, code_location="input/data/code")
    proc = run_job(base, tmp_path / "cache")

    assert proc.returncode == 0, proc.stderr
    seen = json.loads((base / "output" / "data" / "seen.json").read_text())
    assert seen["argv"] == ["--eta", "0.3", "--max_depth", "2", "--objective", "reg:squarederror"]
    assert (base / "model" / "xgboost-model.json").exists()


def test_user_exit_code_becomes_execute_user_script_error(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "print('progress', flush=True)\n"
        "print('disk quota exceeded for foo', file=sys.stderr)\n"
        "sys.exit(3)\n"
    )
    base = make_job(tmp_path, {"alpha": "1", "sagemaker_program": '"train.py"'}, {"train.py": script})
    proc = run_job(base, tmp_path / "cache")

    assert proc.returncode == 1
    assert not (base / "output" / "success").exists()
    failure = failure_of(base)
    assert failure["cls"] == "ExecuteUserScriptError"
    assert failure["code"] == "3"
    assert failure["msg"] == "disk quota exceeded for foo"
    assert failure["cmd"] == f"{sys.executable} train.py --alpha 1"
    assert "disk quota exceeded for foo" in proc.stderr  # streamed as well as captured
    assert "progress" in proc.stdout


def test_traceback_is_kept_from_the_exception_line(tmp_path: Path) -> None:
    script = "import sys\nprint('warming up', file=sys.stderr)\nraise ValueError('bad label column')\n"
    base = make_job(tmp_path, {"sagemaker_program": '"train.py"'}, {"train.py": script})
    proc = run_job(base, tmp_path / "cache")

    assert proc.returncode == 1
    failure = failure_of(base)
    assert failure["code"] == "1"
    assert "ValueError: bad label column" in failure["msg"]
    assert "warming up" not in failure["msg"]


def test_user_written_failure_file_is_kept(tmp_path: Path) -> None:
    script = (
        "import os, sys\n"
        "open(os.path.join(os.environ['SM_OUTPUT_DIR'], 'failure'), 'w').write('my own reason')\n"
        "sys.exit(2)\n"
    )
    base = make_job(tmp_path, {"sagemaker_program": '"train.py"'}, {"train.py": script})
    proc = run_job(base, tmp_path / "cache")

    assert proc.returncode == 1
    assert (base / "output" / "failure").read_text() == "my own reason"


def test_missing_program_is_a_framework_error(tmp_path: Path) -> None:
    base = make_job(tmp_path, {"eta": "0.1"}, {"train.py": "print('never')\n"})
    proc = run_job(base, tmp_path / "cache")

    assert proc.returncode == 1
    text = (base / "output" / "failure").read_text()
    assert text.startswith("Framework Error: \nTraceback")
    assert text.rstrip().endswith("No entry point: the sagemaker_program hyperparameter is not set")


def test_shell_entry_point(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """\
        #!/bin/sh
        echo "args: $*" > "$SM_OUTPUT_DATA_DIR/args.txt"
        python -c 'import sys; print(sys.executable)' > "$SM_OUTPUT_DATA_DIR/python.txt"
        echo model > "$SM_MODEL_DIR/model.txt"
        """
    )
    hps = {"epochs": "2", "name": '"a b"', "sagemaker_program": '"train.sh"'}
    base = make_job(tmp_path, hps, {"train.sh": script})  # written without the x bit, like a tarball may
    proc = run_job(base, tmp_path / "cache")

    assert proc.returncode == 0, proc.stderr
    assert (base / "output" / "data" / "args.txt").read_text() == "args: --epochs 2 --name a b\n"
    assert (base / "model" / "model.txt").exists()
    python = Path((base / "output" / "data" / "python.txt").read_text().strip())
    assert python.parent == Path(sys.executable).parent
    assert "/bin/sh -c \"./train.sh --epochs 2 --name 'a b'\"" in proc.stderr


# --- stopping -------------------------------------------------------------------------------------


def _start_sleeper(tmp_path: Path, handles_sigterm: bool) -> tuple[Path, subprocess.Popen[str]]:
    script = textwrap.dedent(
        f"""
        import os, signal, sys, time
        out = os.environ["SM_OUTPUT_DATA_DIR"]
        if {handles_sigterm!r}:
            def stop(signum, frame):
                open(os.path.join(os.environ["SM_MODEL_DIR"], "checkpoint"), "w").write("saved")
                sys.exit(0)
            signal.signal(signal.SIGTERM, stop)
        open(os.path.join(out, "ready"), "w").close()
        time.sleep(60)
        """
    )
    base = make_job(tmp_path, {"sagemaker_program": '"train.py"'}, {"train.py": script})
    proc = subprocess.Popen(
        RUNNER,
        env=runner_env(base, tmp_path / "cache"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while not (base / "output" / "data" / "ready").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "user script never started"
        time.sleep(0.05)
    return base, proc


def test_sigterm_is_forwarded_and_the_runner_stops_promptly(tmp_path: Path) -> None:
    base, proc = _start_sleeper(tmp_path, handles_sigterm=False)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=10)

    assert time.monotonic() - started < 5
    assert proc.returncode == 128 + signal.SIGTERM
    assert "Training stopped by signal" in stderr
    assert not (base / "output" / "failure").exists()
    assert not (base / "output" / "success").exists()


def test_sigterm_reaches_a_script_that_saves_on_stop(tmp_path: Path) -> None:
    base, proc = _start_sleeper(tmp_path, handles_sigterm=True)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=10)

    assert proc.returncode == 0
    assert (base / "model" / "checkpoint").read_text() == "saved"
    assert (base / "output" / "success").exists()


# --- requirements.txt -------------------------------------------------------------------------------

REQS_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import tinydep, xgboost  # one from the cached venv, one from the emulator's environment
    with open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "seen.json"), "w") as f:
        json.dump({"executable": sys.executable, "tinydep": tinydep.VALUE}, f)
    """
)


def _envs(cache: Path) -> list[Path]:
    root = cache / "pyenvs"
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.exists() else []


def test_requirements_install_once_per_content(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    build_wheel(wheels, "tinydep", "1.0", "VALUE = 'one'\n")
    cache = tmp_path / "cache"
    pip_args = {"SM_EMULATOR_PIP_ARGS": f"--no-index --find-links {wheels}"}
    hps = {"sagemaker_program": '"train.py"'}
    files = {"train.py": REQS_SCRIPT, "requirements.txt": "tinydep==1.0\nsix\n"}

    t0 = time.monotonic()
    first = make_job(tmp_path, hps, files, name="first")
    proc = run_job(first, cache, **pip_args)
    t_first = time.monotonic() - t0
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Installing dependencies from requirements.txt" in proc.stderr
    assert "tinydep" in proc.stdout  # pip's own output is part of the job's log
    (env_dir,) = _envs(cache)
    sentinel = env_dir / pyenvs.SENTINEL
    mtime = sentinel.stat().st_mtime_ns
    seen = json.loads((first / "output" / "data" / "seen.json").read_text())
    assert seen == {"executable": str(env_dir / "bin" / "python"), "tinydep": "one"}

    t0 = time.monotonic()
    second = make_job(tmp_path, hps, files, name="second")
    proc = run_job(second, cache, **pip_args)
    t_second = time.monotonic() - t0
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Reusing cached Python environment" in proc.stderr
    assert _envs(cache) == [env_dir]
    assert sentinel.stat().st_mtime_ns == mtime
    assert t_second < t_first

    third = make_job(tmp_path, hps, {**files, "requirements.txt": "tinydep==1.0\n"}, name="third")
    proc = run_job(third, cache, **pip_args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(_envs(cache)) == 2

    # The emulator's own environment was not touched.
    assert subprocess.run([sys.executable, "-c", "import tinydep"], capture_output=True).returncode != 0


def test_pinned_requirement_shadows_the_emulator_package_without_touching_it(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    # tqdm: nothing that importing XGBoost pulls in needs it (six, say, is python-dateutil's, so pandas')
    build_wheel(wheels, "tqdm", "0.0.1", "__version__ = '0.0.1'\n")
    script = (
        "import json, os, tqdm, xgboost\n"
        "out = os.path.join(os.environ['SM_OUTPUT_DATA_DIR'], 'v.json')\n"
        "json.dump({'tqdm': tqdm.__version__}, open(out, 'w'))\n"
    )
    files = {"train.py": script, "requirements.txt": "tqdm==0.0.1\n"}
    base = make_job(tmp_path, {"sagemaker_program": '"train.py"'}, files)
    proc = run_job(base, tmp_path / "cache", SM_EMULATOR_PIP_ARGS=f"--no-index --find-links {wheels}")

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads((base / "output" / "data" / "v.json").read_text()) == {"tqdm": "0.0.1"}
    check = subprocess.run([sys.executable, "-c", "import tqdm; print(tqdm.__version__)"], capture_output=True,
                           text=True)
    assert check.stdout.strip() != "0.0.1"


def test_concurrent_jobs_share_one_install(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    build_wheel(wheels, "tinydep", "1.0", "VALUE = 'two'\n")
    cache = tmp_path / "cache"
    files = {"train.py": REQS_SCRIPT, "requirements.txt": "tinydep\n"}
    bases = [make_job(tmp_path, {"sagemaker_program": "train.py"}, files, name=f"job{i}") for i in range(2)]
    env = {"SM_EMULATOR_PIP_ARGS": f"--no-index --find-links {wheels}"}
    procs = [
        subprocess.Popen(RUNNER, env=runner_env(b, cache, **env), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for b in bases
    ]
    outputs = [p.communicate(timeout=60) for p in procs]

    assert [p.returncode for p in procs] == [0, 0], outputs
    assert len(_envs(cache)) == 1
    for base in bases:
        assert json.loads((base / "output" / "data" / "seen.json").read_text())["tinydep"] == "two"


def test_bad_requirement_is_install_requirements_error_and_not_cached(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    files = {"train.py": "print('never')\n", "requirements.txt": "surely-not-a-real-package-4711\n"}
    base = make_job(tmp_path, {"sagemaker_program": '"train.py"'}, files)
    started = time.monotonic()
    proc = run_job(base, cache, SM_EMULATOR_PIP_ARGS="--no-index")

    assert time.monotonic() - started < 30
    assert proc.returncode == 1
    failure = failure_of(base)
    assert failure["cls"] == "InstallRequirementsError"
    assert failure["code"] == "1"
    assert "surely-not-a-real-package-4711" in failure["msg"]
    assert " -m pip install " in failure["cmd"] and "requirements.txt" in failure["cmd"]
    assert "never" not in proc.stdout
    assert _envs(cache) == []  # nothing half-built is left to be reused


def test_python_for_requirements_without_requirements_is_the_emulator_python(tmp_path: Path) -> None:
    assert pyenvs.python_for_requirements(None, tmp_path) == Path(sys.executable)
    comments = tmp_path / "requirements.txt"
    comments.write_text("# nothing here\n\n")
    assert pyenvs.python_for_requirements(comments, tmp_path) == Path(sys.executable)
    assert not (tmp_path / "pyenvs").exists()


# --- package entry point ----------------------------------------------------------------------------


def test_package_entry_point_is_installed_and_run_as_module(tmp_path: Path) -> None:
    files = {
        "setup.py": ("from setuptools import setup\nsetup(name='userpkg', version='1.0', py_modules=['train'])\n"),
        "train.py": (
            "import json, os, sys\n"
            "json.dump({'argv': sys.argv[1:], 'executable': sys.executable},\n"
            "          open(os.path.join(os.environ['SM_OUTPUT_DATA_DIR'], 'seen.json'), 'w'))\n"
        ),
    }
    base = make_job(tmp_path, {"lr": "0.1", "sagemaker_program": '"train.py"'}, files)
    offline = {"SM_EMULATOR_PIP_ARGS": "--no-index"} if pyenvs._can_build_without_isolation() else {}
    proc = run_job(base, tmp_path / "cache", timeout=120, **offline)
    if proc.returncode != 0 and not offline:
        text = (base / "output" / "failure").read_text()
        if "InstallModuleError" in text and re.search(r"No matching distribution|Could not find", text):
            pytest.skip("building a setup.py package needs setuptools/wheel from a package index")

    assert proc.returncode == 0, proc.stdout + proc.stderr
    seen = json.loads((base / "output" / "data" / "seen.json").read_text())
    assert seen["argv"] == ["--lr", "0.1"]
    (env_dir,) = _envs(tmp_path / "cache")
    assert env_dir.name.startswith("pkg-")
    assert seen["executable"] == str(env_dir / "bin" / "python")
    assert " -m train --lr 0.1" in proc.stderr
