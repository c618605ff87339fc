"""The ``train`` step of a framework container in script mode, end to end.

Mirrors the toolkit's ``trainer.train()``: build the environment, install the
code's dependencies, run the entry point, then report through
``output/success`` or ``output/failure`` and the exit code, which is all the
runtime (like SageMaker) looks at to decide Completed or Failed.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from collections.abc import Mapping
from pathlib import Path

from sagemaker_emulator.runtime import pyenvs

from . import process
from .entry_point import Command, EntryPointKind, build_command, kind_of, make_executable, prepare_code_dir
from .environment import SUBMIT_DIR_PARAM, Paths, TrainingEnvironment
from .errors import (
    ClientError,
    ExecuteUserScriptError,
    InstallModuleError,
    InstallRequirementsError,
    TrainingStopped,
)

logger = logging.getLogger("sagemaker-training-toolkit")

CACHE_DIR_ENV = "SM_EMULATOR_CACHE_DIR"
LOG_FORMAT = "%(asctime)s %(name)-12s %(levelname)-8s %(message)s"
OOM_INFO = "OutOfMemory: Process killed by SIGKILL (signal 9)"


def _configure_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(format=LOG_FORMAT, level=level, stream=sys.stderr)
    logging.getLogger().setLevel(level)


def _cache_dir(environ: Mapping[str, str]) -> Path:
    configured = environ.get(CACHE_DIR_ENV)
    if configured:
        return Path(configured)
    from sagemaker_emulator.config import default_state_dir

    return default_state_dir() / "cache"


def _write_success(paths: Paths) -> None:
    paths.output.mkdir(parents=True, exist_ok=True)
    (paths.output / "success").write_text("", encoding="utf-8")


def _write_failure(paths: Paths, message: str) -> None:
    """First writer wins: user code or a framework may already have explained the failure."""
    paths.output.mkdir(parents=True, exist_ok=True)
    failure = paths.output / "failure"
    if failure.exists():
        logger.info("Failure file exists. Skipping creation....")
        return
    failure.write_text(message, encoding="utf-8")


def _python_for(kind: EntryPointKind, code_dir: Path, cache_dir: Path) -> Path:
    """Install what the toolkit would install for this kind; return the interpreter to use."""
    try:
        if kind is EntryPointKind.PYTHON_PACKAGE:
            logger.info("Installing module.")
            return pyenvs.python_for_package(code_dir, cache_dir)
        requirements = code_dir / "requirements.txt"
        if kind is EntryPointKind.PYTHON_PROGRAM and pyenvs.has_requirements(requirements):
            logger.info("Installing dependencies from requirements.txt")
            return pyenvs.python_for_requirements(requirements, cache_dir)
    except pyenvs.PipInstallError as exc:
        error = InstallModuleError if kind is EntryPointKind.PYTHON_PACKAGE else InstallRequirementsError
        raise error(exc.cmd, exc.returncode, exc.output) from exc
    return Path(sys.executable)


def _child_environ(environ: Mapping[str, str], env_vars: Mapping[str, str], python: Path) -> dict[str, str]:
    """The user process sees the job's environment, the SM_* variables and the right ``python``."""
    child = {**environ, **env_vars}
    child.setdefault("PYTHONUNBUFFERED", "TRUE")  # as the framework images set it: logs appear live
    # Shell entry points that call `python` must get the interpreter that has the requirements.
    child["PATH"] = os.pathsep.join(filter(None, [str(python.parent), environ.get("PATH", os.defpath)]))
    return child


def _log_invocation(env: TrainingEnvironment, env_vars: Mapping[str, str], command: Command) -> None:
    variables = "\n".join(f"{key}={value}" for key, value in env_vars.items())
    logger.info(
        "Invoking user script\n\nTraining Env:\n\n%s\n\nEnvironment variables:\n\n%s\n\n"
        "Invoking script with the following command:\n\n%s\n\n",
        json.dumps(env.training_env(), indent=4),
        variables,
        command.display,
    )


def _run_user_code(paths: Paths, environ: Mapping[str, str]) -> None:
    env = TrainingEnvironment.load(paths, environ)
    _configure_logging(env.log_level)
    entry = env.user_entry_point
    if not entry:
        raise ValueError("No entry point: the sagemaker_program hyperparameter is not set")
    code_dir = prepare_code_dir(paths, env.sagemaker_parameters.get(SUBMIT_DIR_PARAM))
    kind = kind_of(code_dir, entry)
    python = _python_for(kind, code_dir, _cache_dir(environ))
    if kind is EntryPointKind.COMMAND:
        make_executable(code_dir, entry)
    env_vars = env.env_vars()
    env_vars["PYTHONPATH"] = os.pathsep.join(filter(None, [str(code_dir), environ.get("PYTHONPATH")]))
    command = build_command(kind, python, entry, env.cmd_args())
    _log_invocation(env, env_vars, command)
    result = process.run(command.argv, _child_environ(environ, env_vars, python), code_dir)
    stop = process.stop_signal_received()
    if result.returncode != 0 and stop is not None:
        raise TrainingStopped(stop)
    if result.returncode != 0:
        info = OOM_INFO if result.returncode == 137 else None
        raise ExecuteUserScriptError(command.display, result.returncode, result.stderr, info)


def train(environ: Mapping[str, str] | None = None) -> int:
    """Run the job's entry point and report the outcome; returns the process exit code.

    0 with ``output/success``; 1 with the error's text in ``output/failure``
    for user errors; for any other exception a ``Framework Error`` report and
    the exception's errno (or 1); ``128 + signal`` without a report when the
    job was stopped (SIGTERM/SIGINT).
    """
    environ = dict(os.environ if environ is None else environ)
    paths = Paths.from_environ(environ)
    _configure_logging()
    try:
        _run_user_code(paths, environ)
    except TrainingStopped as stopped:
        logger.warning("Training stopped by signal %d", stopped.signum)
        return 128 + stopped.signum
    except ClientError as exc:
        message = str(exc)
        _write_failure(paths, message)
        logger.error("Reporting training FAILURE")
        logger.error(message)
        return 1
    except Exception as exc:
        message = f"Framework Error: \n{traceback.format_exc()}\n{exc}"
        _write_failure(paths, message)
        logger.error("Reporting training FAILURE")
        logger.error(message)
        errno = getattr(exc, "errno", None)
        return errno if isinstance(errno, int) and errno > 0 else 1
    logger.info("Reporting training SUCCESS")
    _write_success(paths)
    return 0
