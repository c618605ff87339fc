"""Cached Python environments for jobs whose code brings a ``requirements.txt`` (or setup.py).

In a container, the toolkit pip-installs the user's requirements into the
image's own Python on every run; that image is thrown away afterwards. Here the
"image" is the emulator's own environment, which must never be modified, and
re-installing on every run would make each notebook cell slow. So each distinct
requirements file gets one virtual environment, created once and reused:

* keyed by a SHA-256 of the requirements content and of the base interpreter,
  at ``<cache_dir>/pyenvs/<hash[:16]>``;
* layered on the emulator's environment (``--system-site-packages`` plus a
  ``.pth`` hook, because a venv made from a venv only sees the *base*
  interpreter's packages), so xgboost, pandas, scikit-learn stay importable and
  pip only installs what is actually missing or pinned differently;
* built under an exclusive ``fcntl.flock`` so concurrent jobs with the same
  requirements wait for one install instead of racing, and marked complete with
  a sentinel file only after pip succeeded, so a failed install is retried by
  the next job rather than cached.

pip runs non-interactively with a short timeout and one retry so that an
unreachable package index fails the job quickly with pip's own message.
Extra pip arguments (``--no-index``, ``--find-links ...``) can be given in
``SM_EMULATOR_PIP_ARGS``.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import fcntl
import hashlib
import logging
import os
import shlex
import shutil
import signal
import site
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO

logger = logging.getLogger(__name__)

PIP_ARGS_ENV = "SM_EMULATOR_PIP_ARGS"
SENTINEL = ".sagemaker-emulator-complete"
PARENT_PTH = "_sagemaker_emulator_parent.pth"
IMAGE_ENV_MARKER = "sagemaker-emulator-image-env.json"
BASE_PIP_ARGS = ("--disable-pip-version-check", "--no-input", "--timeout", "15", "--retries", "1")
_TAIL_LINES = 30
# Directories pip or setuptools write into the source tree; not part of a package's identity.
_BUILD_LITTER = {"__pycache__", "build", "dist", ".git", ".eggs"}


class PipInstallError(RuntimeError):
    """pip (or venv creation) failed; carries what the failure file needs."""

    def __init__(self, cmd: str, returncode: int, output: str) -> None:
        super().__init__(f"{cmd!r} exited with {returncode}: {output}")
        self.cmd = cmd
        self.returncode = returncode
        self.output = output


def has_requirements(requirements: Path | None) -> bool:
    """True when the file exists and lists at least one requirement or option."""
    if requirements is None or not requirements.is_file():
        return False
    for line in requirements.read_text(encoding="utf-8", errors="replace").splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            return True
    return False


def python_for_requirements(requirements: Path | None, cache_dir: Path, base_python: str | None = None) -> Path:
    """The interpreter to run user code with, given the code's ``requirements.txt``.

    Without (meaningful) requirements this is ``base_python`` (default: this interpreter: the
    emulator's, or an image environment's when called from a job's process); otherwise the python of
    a cached venv layered on it that has them installed, created on first use. Raises
    :class:`PipInstallError` if the install fails.
    """
    base = base_python or sys.executable
    if requirements is None or not has_requirements(requirements):
        return Path(base)
    digest = _digest([requirements.read_bytes()], base)
    pip_args = ["-r", str(requirements.resolve())]
    return _ensure_env(digest, cache_dir, pip_args, cwd=requirements.resolve().parent, base_python=base)


def python_for_package(package_dir: Path, cache_dir: Path) -> Path:
    """The interpreter of a cached venv with the package in ``package_dir`` pip-installed.

    The toolkit runs ``pip install . [-r requirements.txt]`` for setup.py
    entry points; installing into the emulator's environment is not an option,
    so the package goes into a venv keyed by the whole source tree's content
    (an unchanged re-run reuses it, any edit gets a fresh one).
    """
    digest = _digest(_tree_chunks(package_dir))
    pip_args = ["."]
    if (package_dir / "requirements.txt").is_file():
        pip_args += ["-r", "requirements.txt"]
    if _can_build_without_isolation():
        # Building in an isolated env would fetch setuptools/wheel from the index on every install.
        pip_args.append("--no-build-isolation")
    return _ensure_env("pkg-" + digest, cache_dir, pip_args, cwd=package_dir)


def pip_extra_args() -> list[str]:
    """Extra pip arguments from ``SM_EMULATOR_PIP_ARGS`` (shell-quoted)."""
    return shlex.split(os.environ.get(PIP_ARGS_ENV, ""))


def _digest(chunks: Sequence[bytes] | Iterator[bytes], base_python: str | None = None) -> str:
    """Hash of the content plus the base interpreter, so two emulator installs (or image environments)
    never share a venv."""
    sha = hashlib.sha256()
    base = sys.prefix if base_python is None or base_python == sys.executable else base_python
    sha.update(f"{os.path.realpath(base)}\0{sys.version}\0".encode())
    for chunk in chunks:
        sha.update(len(chunk).to_bytes(8, "big"))
        sha.update(chunk)
    return sha.hexdigest()[:16]


def _tree_chunks(root: Path) -> Iterator[bytes]:
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part in _BUILD_LITTER or part.endswith(".egg-info") for part in rel.parts):
            continue
        if path.is_file():
            yield str(rel).encode()
            yield path.read_bytes()


def _can_build_without_isolation() -> bool:
    """setuptools can build wheels offline only with ``wheel`` installed or setuptools >= 70.1."""
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:  # pragma: no cover
        return False
    try:
        version("wheel")
        return True
    except PackageNotFoundError:
        pass
    try:
        major, minor, *_ = (int(p) for p in version("setuptools").split(".")[:2])
    except (PackageNotFoundError, ValueError):
        return False
    return (major, minor) >= (70, 1)


@contextlib.contextmanager
def exclusive(lock_path: Path, timeout: float | None = None,
              on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold an exclusive flock on ``lock_path`` (released when the file closes, even on crash).

    With ``timeout``, waiting for another holder is bounded: ``TimeoutError`` names the lock after it.
    """
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            message = "Waiting for another job that is preparing the same Python environment"
            (on_wait or logger.info)(message)
            if timeout is None:
                fcntl.flock(handle, fcntl.LOCK_EX)
            else:
                _wait_for_lock(handle, lock_path, timeout)
        yield


def _wait_for_lock(handle: IO[str], lock_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"another process held {lock_path} for more than {timeout:.0f} s") from None
            time.sleep(0.5)


def _venv_python(env_dir: Path) -> Path:
    return env_dir / "bin" / "python"


def _ensure_env(key: str, cache_dir: Path, pip_args: list[str], cwd: Path, base_python: str | None = None) -> Path:
    env_dir = Path(cache_dir) / "pyenvs" / key
    python = _venv_python(env_dir)
    if (env_dir / SENTINEL).exists():
        logger.info("Reusing cached Python environment %s", env_dir)
        return python
    with exclusive(env_dir.with_name(key + ".lock")):
        if (env_dir / SENTINEL).exists():
            logger.info("Reusing cached Python environment %s", env_dir)
            return python
        if env_dir.exists():  # left over by a failed or killed attempt
            shutil.rmtree(env_dir)
        started = time.monotonic()
        try:
            _create_venv(env_dir, base_python or sys.executable)
            cmd = [str(python), "-m", "pip", "install", *BASE_PIP_ARGS, *pip_args, *pip_extra_args()]
            run_logged(cmd, cwd)
        except BaseException:
            shutil.rmtree(env_dir, ignore_errors=True)
            raise
        (env_dir / SENTINEL).write_text(" ".join(pip_args) + "\n", encoding="utf-8")
        logger.info("Created Python environment %s in %.1fs", env_dir, time.monotonic() - started)
    return python


def image_env_marker(python: str) -> Path:
    """The file that marks ``python``'s prefix as an image environment (``runtime.imageenvs`` writes it)."""
    return Path(python).parent.parent / IMAGE_ENV_MARKER


def _create_venv(env_dir: Path, base_python: str) -> None:
    """A pip-less venv that sees the base interpreter's packages (and so, where it has one, its pip).

    On an image environment it sees that environment only (no ``--system-site-packages``: the machine's
    own Python must not show through an image).
    """
    isolated = image_env_marker(base_python).exists()
    cmd = [base_python, "-m", "venv", *([] if isolated else ["--system-site-packages"]), "--without-pip",
           str(env_dir)]
    result = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise PipInstallError(shlex.join(cmd), result.returncode, (result.stderr or result.stdout).strip())
    python = _venv_python(env_dir)
    site_dir = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    parents = _site_packages(base_python)
    hook = "import site; " + "; ".join(f"site.addsitedir({p!r})" for p in parents) + "\n"
    Path(site_dir, PARENT_PTH).write_text(hook, encoding="utf-8")
    probe = subprocess.run(
        [str(python), "-m", "pip", "--version"], capture_output=True, stdin=subprocess.DEVNULL
    )
    if probe.returncode != 0:  # the emulator's env has no pip to borrow: give the venv its own
        run_logged([str(python), "-m", "ensurepip", "--default-pip"], env_dir)


def _site_packages(python: str) -> list[str]:
    if python == sys.executable:
        return [p for p in site.getsitepackages() if os.path.isdir(p)]
    listing = subprocess.run([python, "-c", "import site; print('\\n'.join(site.getsitepackages()))"],
                             capture_output=True, text=True, check=True, stdin=subprocess.DEVNULL).stdout
    return [p for p in listing.splitlines() if os.path.isdir(p)]


def _killed_with_caller() -> None:
    """SIGKILL the command when the thread that waits for it dies (the daemon or job process ending):
    a half-finished install must not keep writing into a directory the next attempt removes."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)


def _copy_to_stdout(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def run_logged(cmd: list[str], cwd: Path, on_line: Callable[[str], None] | None = None,
               env: dict[str, str] | None = None, timeout: float | None = None) -> None:
    """Run a command with each output line handed to ``on_line`` (default: copied to our stdout); raise
    :class:`PipInstallError` with its error lines on failure, or when it ran past ``timeout`` seconds."""
    logger.info("Running %s", shlex.join(cmd))
    sys.stdout.flush()
    emit = on_line or _copy_to_stdout
    tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
    errors: list[str] = []
    proc = subprocess.Popen(
        cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
        preexec_fn=_killed_with_caller,
    )
    assert proc.stdout is not None
    timer = threading.Timer(timeout, proc.kill) if timeout else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    try:
        for raw in iter(proc.stdout.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            emit(line)
            tail.append(line)
            if line.startswith("ERROR:") or errors:
                if len(errors) < _TAIL_LINES and line.strip():
                    errors.append(line)
        returncode = proc.wait()
    except BaseException:  # interrupted (e.g. the job was stopped): do not leave pip running
        proc.kill()
        proc.wait()
        raise
    finally:
        proc.stdout.close()
        if timer is not None:
            timer.cancel()
    if returncode != 0 and timeout and returncode == -9 and not errors:
        raise PipInstallError(shlex.join(cmd), returncode, f"did not finish within {timeout:.0f} s")
    if returncode != 0:
        message = "\n".join(errors or [line for line in tail if line.strip()]).strip()
        raise PipInstallError(shlex.join(cmd), returncode, message)
