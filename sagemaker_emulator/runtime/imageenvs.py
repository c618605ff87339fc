"""Image environments: one cached virtual environment per image tag, built on first use.

A job, endpoint or transform "in" an image runs with the Python of that image's environment
(:mod:`..images.environments` says what each holds and why). The environment is built once per tag
and emulator install, at ``<cache>/<repository>-<tag>-<hash>``, and reused by every later job and
daemon; the first job to need it builds it with its progress in the job's log. How it is built:

* ``python -m venv --without-pip``: isolated, so the emulator's own pandas/numpy/xgboost never
  show through; pip runs from the emulator's environment (``pip --python <env>``), ``--only-binary``
  so that a release without a wheel for this Python fails at once instead of compiling for minutes;
* the emulator's runner code (``sagemaker_emulator.images…``, pure Python, standard library only
  besides the image's own libraries) is importable through a ``.pth`` naming a directory that holds
  one symlink to the emulator's package — not its parent folder, which may be a ``site-packages``
  full of the emulator's libraries;
* under an exclusive ``fcntl`` lock (concurrent jobs and daemons wait for one build, bounded), with
  a marker written last: a build that failed or was killed is removed and retried, never used.

When the build fails (no package index, pip's error) the job runs in the emulator's own environment
and its log says so; a failed build is retried after ``RETRY_SECONDS``, so an offline laptop does
not pay for pip on every job. ``SAGEMAKER_EMULATOR_IMAGE_ENVS=0`` turns image environments off (every
job in the emulator's environment, said in its log); ``SAGEMAKER_EMULATOR_IMAGE_ENV_DIR`` moves the
cache (CI shares one across a run's emulators so each environment is built once).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import sagemaker_emulator

from ..images.environments import ImageEnvironment, environment_for
from ..images.registry import Image
from .pyenvs import (
    BASE_PIP_ARGS,
    IMAGE_ENV_MARKER,
    SENTINEL,
    PipInstallError,
    exclusive,
    pip_extra_args,
    run_logged,
)

log = logging.getLogger("sagemaker_emulator.imageenvs")

ENABLED_ENV = "SAGEMAKER_EMULATOR_IMAGE_ENVS"
DIR_ENV = "SAGEMAKER_EMULATOR_IMAGE_ENV_DIR"
BUILD_TIMEOUT_SECONDS = 900.0  # pip's own timeouts bound each download; this bounds the whole install
LOCK_TIMEOUT_SECONDS = BUILD_TIMEOUT_SECONDS + 60.0  # waiting for another process's build
RETRY_SECONDS = 300.0  # a failed build is not tried again (by this daemon) for this long
RUNNER_PTH = "_sagemaker_emulator_runner.pth"
PYTHON_LABEL = f"Python {sys.version_info.major}.{sys.version_info.minor}"
#: what the first log line names for a tag without a pinned environment
DEFAULT_SHOWN = {"sklearn": ("scikit-learn", "pandas", "numpy"), "xgboost": ("xgboost", "pandas", "numpy")}

Log = Callable[[str], None]


def enabled() -> bool:
    return os.environ.get(ENABLED_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def emulator_summary(shown: tuple[str, ...]) -> str:
    """``scikit-learn 1.7.2, pandas 2.3.3, numpy 1.26.4`` for the emulator's own environment."""
    parts = []
    for name in shown:
        try:
            parts.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            continue
    return ", ".join(parts)


def label(image: Image) -> str:
    return f"{image.repository}:{image.tag}"


class ImageEnvironments:
    """The image environments of one emulator: resolve an image to the Python its jobs run with."""

    def __init__(self, cache_dir: Path, warm: Any = None) -> None:
        configured = os.environ.get(DIR_ENV)
        self.cache_dir = Path(configured).expanduser().resolve() if configured else cache_dir
        self.warm = warm
        self._failed: dict[tuple[str, ...], tuple[float, str]] = {}
        self._lock = threading.Lock()

    def python_for(self, image: Image, log_line: Log) -> str:
        """The interpreter for a job in ``image``; writes the job's first log line (and any build progress)."""
        env = environment_for(image)
        shown = env.shown if env is not None else DEFAULT_SHOWN.get(image.framework, ("numpy",))
        if env is None or not enabled():
            why = (f"no pinned environment for the tag {image.tag}" if env is None
                   else f"image environments are off: {ENABLED_ENV}=0")
            log_line(f"{label(image)} — the emulator's own environment ({why}): {emulator_summary(shown)} "
                     f"({PYTHON_LABEL})")
            return sys.executable
        log_line(f"{label(image)} — {env.summary()} ({PYTHON_LABEL})")
        try:
            python = self.ensure(env, log_line)
        except (PipInstallError, OSError, TimeoutError, subprocess.SubprocessError) as exc:
            reason = _one_line(exc)
            log_line(f"Could not build the environment of {label(image)} ({reason}); this job runs in the "
                     f"emulator's own environment instead: {emulator_summary(shown)} ({PYTHON_LABEL})")
            return sys.executable
        if self.warm is not None:
            self.warm.serve(python, _preload())
        return python

    def built_pythons(self) -> list[str]:
        """The interpreters of the table's environments already built here (each now served by the warm pool)."""
        if not enabled():
            return []
        from ..images.environments import ENVIRONMENTS

        pythons = []
        for env in {env.requirements: env for env in ENVIRONMENTS.values()}.values():
            env_dir = self.env_dir(env)
            if (env_dir / SENTINEL).exists():
                python = str(env_dir / "bin" / "python")
                if self.warm is not None:
                    self.warm.serve(python, _preload())
                pythons.append(python)
        return pythons

    # ------------------------------------------------------------ building
    def env_dir(self, env: ImageEnvironment) -> Path:
        """``<cache>/<first pin>-<hash>``: the hash covers the pins, this Python and this emulator, so images
        with the same pins (the legacy image and 1.7-1) share one build."""
        package = os.path.realpath(os.path.dirname(sagemaker_emulator.__file__))
        base = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
        digest = hashlib.sha256("\0".join([*env.requirements, base, sys.version, package]).encode()).hexdigest()
        return self.cache_dir / f"{env.requirements[0].replace('==', '-')}-{digest[:12]}"

    def ensure(self, env: ImageEnvironment, log_line: Log) -> str:
        """The environment's python, built now if no complete build exists (raises when the build fails)."""
        env_dir = self.env_dir(env)
        python = env_dir / "bin" / "python"
        if (env_dir / SENTINEL).exists():
            return str(python)
        with self._lock:
            failed = self._failed.get(env.requirements)
        if failed is not None and time.monotonic() - failed[0] < RETRY_SECONDS:
            raise PipInstallError("pip install", 1, f"it failed {time.monotonic() - failed[0]:.0f} s ago: "
                                                   f"{failed[1]}; retried after {RETRY_SECONDS:.0f} s")
        try:
            with exclusive(env_dir.with_name(env_dir.name + ".lock"), LOCK_TIMEOUT_SECONDS, log_line):
                if not (env_dir / SENTINEL).exists():
                    self._build(env, env_dir, log_line)
        except (PipInstallError, OSError, TimeoutError, subprocess.SubprocessError) as exc:
            with self._lock:
                self._failed[env.requirements] = (time.monotonic(), _one_line(exc))
            raise
        return str(python)

    def _build(self, env: ImageEnvironment, env_dir: Path, log_line: Log) -> None:
        if env_dir.exists():  # left over by a failed or killed build
            shutil.rmtree(env_dir)
        started = time.monotonic()
        log_line(f"Building the environment of {env.name} (first use; cached for later jobs): "
                 f"pip install {' '.join(env.requirements)}")
        try:
            subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True,
                           capture_output=True, stdin=subprocess.DEVNULL, timeout=120)
            python = str(env_dir / "bin" / "python")
            progress = _Progress(log_line)
            command = [sys.executable, "-m", "pip", "--python", python, "install", *BASE_PIP_ARGS,
                       "--progress-bar", "off", "--only-binary=:all:", *env.requirements, *pip_extra_args()]
            run_logged(command, env_dir, progress.feed, timeout=BUILD_TIMEOUT_SECONDS)
            versions = _link_runner(env_dir, python)
        except BaseException:
            shutil.rmtree(env_dir, ignore_errors=True)
            raise
        seconds = time.monotonic() - started
        (env_dir / IMAGE_ENV_MARKER).write_text(json.dumps(
            {"image": env.name, "requirements": list(env.requirements), "versions": versions,
             "build_seconds": round(seconds, 1)}, indent=1), encoding="utf-8")
        (env_dir / SENTINEL).write_text(" ".join(env.requirements) + "\n", encoding="utf-8")
        log_line(f"Built the environment of {env.name} in {seconds:.1f} s ({progress.count} packages)")
        log.info("built image environment %s in %.1f s at %s", env.name, seconds, env_dir)


class _Progress:
    """Turns pip's output into a few readable progress lines in the job's log."""

    def __init__(self, log_line: Log) -> None:
        self.log_line = log_line
        self.count = 0

    def feed(self, line: str) -> None:
        text = line.strip()
        if text.startswith("Collecting "):
            self.count += 1
            if self.count % 5 == 1:
                self.log_line(f"  resolving: {text[len('Collecting '):].split(' ')[0]} "
                              f"({self.count} packages so far)")
        elif text.startswith("Installing collected packages"):
            self.log_line(f"  installing {self.count} packages")
        elif text.startswith("ERROR:"):
            self.log_line(f"  pip: {text}")


def _link_runner(env_dir: Path, python: str) -> dict[str, str]:
    """Make ``sagemaker_emulator`` importable in the environment; return what the environment has installed."""
    runner = env_dir / "runner"
    runner.mkdir()
    (runner / "sagemaker_emulator").symlink_to(os.path.realpath(os.path.dirname(sagemaker_emulator.__file__)))
    probe = ("import json, sysconfig, importlib.metadata as m; "
             "print(json.dumps([sysconfig.get_paths()['purelib'], "
             "{d.metadata['Name'].lower(): d.version for d in m.distributions()}]))")
    out = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=True,
                         stdin=subprocess.DEVNULL, timeout=60).stdout
    purelib, versions = json.loads(out)
    Path(purelib, RUNNER_PTH).write_text(str(runner) + "\n", encoding="utf-8")
    return dict(sorted(versions.items()))


def _preload() -> tuple[str, ...]:
    from .warm import DEFAULT_PRELOAD

    return DEFAULT_PRELOAD


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, PipInstallError):
        lines = [line for line in exc.output.splitlines() if line.strip()]
        detail = lines[-1] if lines else f"exit code {exc.returncode}"
        return f"pip: {detail.strip()}"[:300]
    return f"{type(exc).__name__}: {exc}"[:300]
