"""Warm workers: job processes forked from a pre-imported Python instead of started cold.

A job's process used to be ``Popen([python, "-m", "sagemaker_emulator.images.<image>", …])``: an
interpreter start plus the imports of XGBoost, pandas or scikit-learn, 0.4–1.6 s of a 2-core machine
for every job, endpoint instance and tuning trial. A :class:`WarmPool` keeps one worker per (Python
executable, preloaded modules, import-time environment) — :mod:`.warm_worker`, a fork server that
imported the heavy modules once — and turns such a command into a fork of it, ready in milliseconds.

The forked process is isolated as the ``Popen`` one was: its own session and process group (so
``os.killpg(pid, …)`` stops it and everything it started), working directory, environment
(``os.environ`` replaced, its own ``TMPDIR``), ``sys.argv``, stdin (``/dev/null``) and stdout/stderr
(the pipe the daemon reads for CloudWatch Logs); it dies with the worker, and the worker with the
daemon (the ``PR_SET_PDEATHSIG`` chain, see ``container._die_with_parent``).

What libraries read from the environment *at import time* cannot be changed after a fork:
OpenMP's thread count and wait policy, OpenBLAS's threads, Python's own start-up variables
(``PYTHONPATH``, ``PYTHONHASHSEED`` …), the locale. Those variables are part of a worker's key, so a
job is only ever forked from a worker that imported its libraries under the values the job has; a
job that sets different ones gets (and, once, starts) its own worker.

A job that arrives while its worker is still importing starts cold rather than wait (``ready_wait``);
the daemon starts the common worker in the background as it starts (``Emulator.warm_up``).

Anything the pool cannot run warm — a command that is not ``<python> -m <module> …`` or ``<python>
<script> …`` with a Python the pool serves (a ``requirements.txt`` venv, a shell entry point), or a
worker that failed to start — returns ``None`` from :meth:`WarmPool.launch`, and the container starts
with ``Popen`` as before; a worker failure is said in the daemon's log, never in the job's.
``SAGEMAKER_EMULATOR_WARM=0`` in the daemon's environment turns warm workers off.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from .container import _SPAWNER, _die_with_parent
from .warm_worker import RUNTIME_APPLIED

log = logging.getLogger("sagemaker_emulator.warm")

#: environment variables that some library (or Python itself) reads once, at start-up or import
IMPORT_TIME_PREFIXES = (
    "PYTHON", "OMP_", "GOMP_", "KMP_", "OPENBLAS_", "GOTO_", "MKL_", "BLIS_", "VECLIB_", "NUMEXPR_", "NUMBA_",
    "MALLOC_", "LD_", "LC_", "LANG", "XGBOOST_", "SKLEARN_", "JOBLIB_", "LOKY_", "NUMPY_", "SCIPY_", "PANDAS_",
    "ARROW_",
)
#: what a worker of the emulator's own Python imports before it forks: what the images' programs import
#: (measured: together 1.1–1.5 s of CPU per job on a 2-core machine, of which xgboost and pandas are most)
DEFAULT_PRELOAD = (
    "numpy", "scipy", "pandas", "sklearn", "xgboost", "boto3",
    "sagemaker_emulator.images.xgboost_algorithm.job",
    "sagemaker_emulator.images.xgboost_algorithm.distributed",
    "sagemaker_emulator.images.xgboost_algorithm.environment",
    "sagemaker_emulator.images.model_server.http",
    "sagemaker_emulator.images.model_server.xgboost_algorithm",
    "sagemaker_emulator.images.model_server.script_mode",
    "sagemaker_emulator.images.script_mode.trainer",
    "sagemaker_emulator.images.model_monitor.analyzer", "sagemaker_emulator.images.model_monitor.model_quality",
)
READY_WAIT_SECONDS = 60.0  # how long a starting worker may take to import its modules before it counts as failed
RETRY_SECONDS = 60.0  # a worker that failed to start is not tried again for this long
_SHIM = re.compile(r'#!/bin/sh\nexec (\S+) "\$@"\n')


def import_time_environment(env: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """The part of ``env`` a forked job cannot apply itself: it must equal the worker's."""
    return tuple(sorted((k, v) for k, v in env.items()
                        if k.startswith(IMPORT_TIME_PREFIXES) and k not in RUNTIME_APPLIED))


@dataclass(frozen=True)
class Program:
    """What a container command asks Python to run: a module (``-m``) or a script, with its arguments."""

    python: str
    module: str | None
    script: str | None
    argv: tuple[str, ...]
    unbuffered: bool = False


def resolve_python(executable: str, env: dict[str, str]) -> str:
    """The interpreter ``executable`` runs: itself if it is a path; a bare ``python3`` through the job's PATH,
    where the runtime's shims (``container.python_shim_dir``) name the job's interpreter."""
    if "/" in executable:
        return executable
    found = shutil.which(executable, path=env.get("PATH", ""))
    if found is None:
        return executable
    with contextlib.suppress(OSError, UnicodeDecodeError):
        with open(found) as handle:
            match = _SHIM.fullmatch(handle.read(256))
        if match:
            return match.group(1)
    return found


def parse_command(command: list[str], cwd: Path, env: dict[str, str]) -> Program | None:
    """``[python, -m, module, …]`` or ``[python, script, …]`` (``-u`` allowed first), else None."""
    if len(command) < 2:
        return None
    python = resolve_python(command[0], env)
    rest = list(command[1:])
    unbuffered = rest[0] == "-u"
    if unbuffered:
        rest = rest[1:]
    if len(rest) >= 2 and rest[0] == "-m" and rest[1] and not rest[1].startswith("-"):
        return Program(python, rest[1], None, tuple(rest[2:]), unbuffered)
    if rest and not rest[0].startswith("-") and (cwd / rest[0]).is_file():
        return Program(python, None, rest[0], tuple(rest[1:]), unbuffered)
    return None


class WarmProcess:
    """A job process forked by a worker, with the part of ``subprocess.Popen`` the runtime uses.

    The worker reaps the process and reports its exit status on a socket of its own; ``wait`` reads it
    in short slices so that ``poll`` from another thread (an endpoint's health check) is never blocked.
    A worker that dies takes its children with it (SIGTERM by ``PR_SET_PDEATHSIG``), so a lost status
    socket reads as ``-SIGTERM``.
    """

    def __init__(self, pid: int, status: socket.socket, stdout: IO[bytes], args: list[str],
                 on_exit: Callable[[float], None] | None = None) -> None:
        self.pid, self.stdout, self.args = pid, stdout, args
        self.returncode: int | None = None
        #: user + system CPU seconds of the process and the children it waited for, once it ended
        self.cpu_seconds: float | None = None
        self._on_exit = on_exit
        self._status = status
        self._buffer = b""
        self._lock = threading.Lock()

    def poll(self) -> int | None:
        with self._lock:
            self._read(0.0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                remaining = 0.05 if deadline is None else min(0.05, deadline - time.monotonic())
                self._read(max(0.0, remaining))
            if self.returncode is not None:
                return self.returncode
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(self.args, timeout or 0.0)

    def _read(self, timeout: float) -> None:
        if self.returncode is not None:
            return
        self._status.settimeout(timeout)
        try:
            chunk = self._status.recv(4096)
        except (TimeoutError, BlockingIOError):
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._end(-int(signal.SIGTERM))
            return
        self.feed(chunk)

    def feed(self, data: bytes) -> None:
        """Messages from the worker's status socket: the exit status, once the worker reaped the process."""
        *lines, self._buffer = (self._buffer + data).split(b"\n")
        for line in lines:
            message = json.loads(line)
            if "exit" in message:
                self.cpu_seconds = float(message.get("cpu_seconds") or 0.0)
                if self._on_exit is not None:
                    self._on_exit(self.cpu_seconds)
                self._end(int(message["exit"]))

    def _end(self, code: int) -> None:
        self.returncode = code
        self._status.close()


def _read_line(sock: socket.socket, timeout: float) -> tuple[bytes, bytes]:
    """One message line from ``sock`` and whatever arrived after it (b"" on EOF or timeout)."""
    sock.settimeout(timeout)
    data = b""
    with contextlib.suppress(OSError):
        while b"\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    line, _, rest = data.partition(b"\n")
    return line, rest


class Worker:
    """The daemon's handle on one worker process: start it, wait until it is ready, ask it to fork."""

    def __init__(self, python: str, preload: tuple[str, ...], import_env: tuple[tuple[str, str], ...],
                 cwd: Path) -> None:
        self.python, self.preload, self.import_env, self.cwd = python, preload, import_env, cwd
        self.ready = threading.Event()
        self.failed_at: float | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.info: dict[str, object] = {}
        self.forks = 0  # job processes forked so far (diagnostics, tests)
        self.cpu_seconds = 0.0  # CPU time of the forked processes that ended (as RUSAGE_CHILDREN counts Popen's)
        self._control: socket.socket | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Launch the worker (from the spawner thread: it dies with the daemon) and wait for it in the background."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = {k: v for k, v in os.environ.items() if not k.startswith(IMPORT_TIME_PREFIXES)}
        env.update(self.import_env)
        command = [self.python, "-m", "sagemaker_emulator.runtime.warm_worker", str(theirs.fileno()),
                   *self.preload]
        self.cwd.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        try:
            self.process = _SPAWNER.submit(
                subprocess.Popen, command, cwd=self.cwd, env=env, pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, preexec_fn=_die_with_parent).result()
        except OSError as exc:
            ours.close()
            self._fail(f"could not start: {exc}")
            return
        finally:
            theirs.close()
        self._control = ours
        threading.Thread(target=self._await_ready, args=(started,), name="warm-worker-start", daemon=True).start()

    def _await_ready(self, started: float) -> None:
        control = self._control
        assert control is not None
        control.settimeout(READY_WAIT_SECONDS)
        try:
            message = control.recv(1 << 16)
            control.settimeout(None)  # from now on the socket carries requests, which block as needed
        except OSError as exc:
            message, reason = b"", f"gave no answer ({exc})"
        else:
            reason = "exited while importing"
        if not message:
            if self._control is not None:  # not closed on purpose (the emulator stopping)
                self._fail(reason)
                self.close()
            self.ready.set()
            return
        self.info = json.loads(message)
        self.info["seconds"] = round(time.monotonic() - started, 3)
        if self.info.get("failed"):
            log.info("warm worker for %s could not preload %s", self.python, self.info["failed"])
        log.info("warm worker %s for %s ready in %.2f s (%s threads)", self.info.get("pid"), self.python,
                 self.info["seconds"], self.info.get("threads"))
        self.ready.set()

    def _fail(self, reason: str) -> None:
        self.failed_at = time.monotonic()
        log.warning("warm worker for %s %s; jobs start without it (Popen)", self.python, reason)
        self.ready.set()

    @property
    def usable(self) -> bool:
        return self.ready.is_set() and self.failed_at is None and self._control is not None

    def spawn(self, program: Program, cwd: Path, env: dict[str, str], args: list[str]) -> WarmProcess | None:
        """Fork the job; None if the worker is gone (it is marked failed, and the caller starts the job cold)."""
        if program.unbuffered:
            env = {**env, "PYTHONUNBUFFERED": "1"}
        request = json.dumps({"module": program.module, "script": program.script, "argv": list(program.argv),
                              "cwd": str(cwd), "env": env}).encode()
        read_fd, write_fd = os.pipe()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with self._lock:
                if self._control is None:
                    raise OSError("worker closed")
                socket.send_fds(self._control, [request], [theirs.fileno(), write_fd, write_fd])
        except OSError as exc:
            for fd in (read_fd, write_fd):
                os.close(fd)
            ours.close()
            theirs.close()
            self._fail(f"stopped answering ({exc})")
            self.close()
            return None
        os.close(write_fd)
        theirs.close()
        line, rest = _read_line(ours, 30.0)
        try:
            reply = json.loads(line or b"{}")
        except ValueError:
            reply = {}
        if "pid" not in reply:
            os.close(read_fd)
            ours.close()
            log.warning("warm worker for %s could not fork: %s", self.python, reply.get("error", "no reply"))
            return None
        self.forks += 1
        process = WarmProcess(int(reply["pid"]), ours, os.fdopen(read_fd, "rb"), args, self._count_cpu)
        process.feed(rest)
        return process

    def _count_cpu(self, seconds: float) -> None:
        with self._lock:
            self.cpu_seconds += seconds

    def close(self, wait: float = 2.0) -> None:
        """Close the control socket (the worker exits, its children die with it) and reap the worker."""
        with self._lock:
            control, self._control = self._control, None
        if control is not None:
            control.close()
        if self.process is not None:
            try:
                self.process.wait(wait)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


class WarmPool:
    """The workers of one emulator, keyed by (python, preloaded modules, import-time environment)."""

    def __init__(self, cwd: Path, enabled: bool | None = None) -> None:
        self.cwd = cwd
        self.enabled = os.environ.get("SAGEMAKER_EMULATOR_WARM", "1") != "0" if enabled is None else enabled
        #: the interpreters the pool forks for, and what their workers preload; an image environment's
        #: interpreter joins with ``serve(python, modules)``
        self.pythons: dict[str, tuple[str, ...]] = {sys.executable: DEFAULT_PRELOAD}
        #: how long a job waits for a worker that is still importing. 0: it starts cold at once and the worker
        #: warms up meanwhile — waiting would cost the first job all of the worker's imports (xgboost, pandas,
        #: scikit-learn …, 3.5 CPU-seconds) instead of its own (0.8 s for the built-in algorithm)
        self.ready_wait = 0.0
        self._workers: dict[tuple[str, tuple[tuple[str, str], ...]], Worker] = {}
        self._lock = threading.Lock()
        self._closed = False

    def serve(self, python: str, preload: tuple[str, ...]) -> None:
        """Fork jobs of ``python`` (an image environment's interpreter) from a worker preloading ``preload``."""
        self.pythons[python] = tuple(preload)

    def launch(self, command: list[str], cwd: Path, env: dict[str, str]) -> WarmProcess | None:
        """Start ``command`` as a fork of a warm worker, or None: then the caller starts it with Popen."""
        if not self.enabled or self._closed:
            return None
        program = parse_command(command, cwd, env)
        if program is None or program.python not in self.pythons:
            return None
        worker = self._worker(program.python, import_time_environment(env))
        if worker is None or not worker.ready.wait(self.ready_wait) or not worker.usable:
            return None
        return worker.spawn(program, cwd, env, command)

    def prestart(self, env: dict[str, str], python: str = sys.executable) -> None:
        """Start the worker a job with environment ``env`` would use, in the background (at emulator start)."""
        if self.enabled and python in self.pythons:
            self._worker(python, import_time_environment(env))

    def _worker(self, python: str, import_env: tuple[tuple[str, str], ...]) -> Worker | None:
        with self._lock:
            if self._closed:
                return None
            key = (python, import_env)
            worker = self._workers.get(key)
            if worker is not None and worker.failed_at is not None:
                if time.monotonic() - worker.failed_at < RETRY_SECONDS:
                    return worker
                worker = None
            if worker is None:
                worker = Worker(python, self.pythons[python], import_env, self.cwd)
                self._workers[key] = worker
                worker.start()
            return worker

    def workers(self) -> list[Worker]:
        with self._lock:
            return list(self._workers.values())

    def cpu_seconds(self) -> float:
        """CPU time of the job processes forked by this pool's current workers that have ended."""
        return sum(worker.cpu_seconds for worker in self.workers())

    def shutdown(self) -> None:
        """Stop every worker (and so any job process still forked from one)."""
        with self._lock:
            self._closed = True
            workers, self._workers = list(self._workers.values()), {}
        for worker in workers:
            worker.close()
