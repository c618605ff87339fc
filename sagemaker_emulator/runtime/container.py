"""Run one "container" (a local process group) per instance, streaming its output to CloudWatch Logs.

This is the part of the runtime every job kind shares: rewriting
``/opt/ml`` paths into the instance directory, launching the process in its
own session so that stopping it stops everything it started, forwarding its
lines (tabs shown as ``#011`` as CloudWatch shows them) to a log stream, and
parsing metric lines with the job's metric definitions as they stream.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import posixpath
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .warm import WarmPool, WarmProcess

CONTAINER_ROOT = "/opt/ml"
STOP_GRACE_SECONDS = 3.0
_FLOAT = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf)", re.IGNORECASE)


def rewrite(value: str, base: Path) -> str:
    """``/opt/ml/...`` → ``<base>/...`` anywhere in an argument or environment value."""
    return value.replace(CONTAINER_ROOT, str(base))


def container_path(path: str, under: str = CONTAINER_ROOT) -> str | None:
    """``path`` normalised (``a/../b`` → ``b``), or None unless it is absolute and lies within ``under``.

    SageMaker's own rule for processing paths (they must be under ``/opt/ml/processing/``), applied
    to every path of a request that names a place in the container: after normalisation
    ``/opt/ml/processing/../../etc`` is ``/etc``, outside the container's ``/opt/ml`` — and outside
    the job's directory once mapped onto the host.
    """
    if not path.startswith("/") or "\x00" in path:
        return None
    normal = posixpath.normpath(path)
    if normal.startswith("//"):  # POSIX keeps a leading "//"; it names the same root
        normal = "/" + normal.lstrip("/")
    top = posixpath.normpath(under)
    if normal != top and not normal.startswith(top.rstrip("/") + "/"):
        return None
    return normal


def host_path(path: str, base: Path, under: str = CONTAINER_ROOT) -> Path:
    """Where the container path ``path`` (within ``under``) lives on the host: under ``base``.

    Raises ``ValueError`` for a path outside ``under``; the create-time checks refuse those, this is
    the runtime's own guard (e.g. for a job recorded before those checks existed).
    """
    normal = container_path(path, under)
    if normal is None:
        raise ValueError(f"{path!r} is not a path under {under}")
    relative = posixpath.relpath(normal, CONTAINER_ROOT)
    return base if relative == "." else base / relative


def rewrite_tree(root: Path, base: Path) -> None:
    """Rewrite ``/opt/ml`` inside the text files of a directory (the SDK's own driver scripts)."""
    for path in root.rglob("*"):
        if path.is_file() and path.suffix in ("", ".sh", ".py", ".json", ".env", ".cfg", ".yaml", ".yml"):
            try:
                text = path.read_text()
            except (UnicodeDecodeError, OSError):
                continue
            if CONTAINER_ROOT in text:
                path.write_text(rewrite(text, base))


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM the process if the thread that started it dies (no orphans).

    Linux ties ``PR_SET_PDEATHSIG`` to the spawning *thread*, so every process is spawned from
    the one long-lived ``_SPAWNER`` thread: it lives as long as the daemon, and a process
    started for an endpoint by a short-lived deploy thread is not killed when that thread ends.
    """
    os.setsid()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


_SPAWNER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spawner")


@dataclass
class MetricParser:
    """Applies ``MetricDefinitions`` regexes to log lines; keeps the latest value and the series."""

    definitions: list[dict[str, str]]
    latest: dict[str, tuple[float, float]] = field(default_factory=dict)
    series: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    listener: Callable[[str, float, float], None] | None = None

    def __post_init__(self) -> None:
        self._compiled = []
        for item in self.definitions:
            try:
                self._compiled.append((item["Name"], re.compile(item["Regex"])))
            except re.error:
                continue

    def feed(self, line: str, timestamp: float) -> None:
        for name, regex in self._compiled:
            match = regex.search(line)
            if not match:
                continue
            text = match.group(1) if match.groups() else match.group(0)
            number = _FLOAT.match(text.strip())
            if number is None:
                continue
            value = float(number.group(0))
            self.latest[name] = (value, timestamp)
            self.series.setdefault(name, []).append((timestamp, value))
            if self.listener is not None:
                self.listener(name, value, timestamp)

    def final_metric_data(self) -> list[dict[str, Any]]:
        return [{"MetricName": n, "Value": v, "Timestamp": t} for n, (v, t) in sorted(self.latest.items())]


class LogSink:
    """Buffers lines and appends them to one log stream in small batches (live, but cheap)."""

    def __init__(self, logs: Any, group: str, stream: str) -> None:
        self.logs, self.group, self.stream = logs, group, stream
        self._buffer: list[tuple[int, str]] = []
        self._lock = threading.Lock()
        self._last_flush = time.monotonic()
        logs.ensure_stream(group, stream)

    def write(self, message: str) -> None:
        with self._lock:
            self._buffer.append((int(time.time() * 1000), message))
            if len(self._buffer) >= 200 or time.monotonic() - self._last_flush > 0.2:
                self._flush_locked()

    def flush(self) -> None:
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        if self._buffer:
            self.logs.append(self.group, self.stream, self._buffer)
            self._buffer = []
        self._last_flush = time.monotonic()


def process_environment(env: dict[str, str], tmpdir: str) -> dict[str, str]:
    """A container's environment as its process gets it: with its own ``TMPDIR`` and a passive OpenMP.

    Jobs share the machine's cores; OpenMP's default busy-waiting makes concurrent XGBoost jobs
    20-100x slower (two 300-round jobs: 44 s instead of 1.6 s). A container's own value wins.
    """
    return {"OMP_WAIT_POLICY": "PASSIVE", **env, "TMPDIR": tmpdir}


class Container:
    """One running instance: a process group whose output goes to a ``LogSink``."""

    def __init__(
        self, command: list[str], cwd: Path, env: dict[str, str], sink: LogSink, metrics: MetricParser | None,
    ) -> None:
        self.command, self.cwd, self.env, self.sink, self.metrics = command, cwd, env, sink, metrics
        self.process: subprocess.Popen[bytes] | WarmProcess | None = None
        #: the warm workers to fork the process from (``runtime.warm``); None or a command they cannot run: Popen
        self.warm: WarmPool | None = None
        self.tail: list[str] = []
        self._reader: threading.Thread | None = None
        self.tmpdir: str | None = None

    def start(self) -> int:
        """Start the process (forked from a warm worker when ``warm`` can run the command) and its log pump."""
        # Every SageMaker container has its own /tmp. A private TMPDIR keeps concurrent jobs apart: XGBoost's text
        # loader (dmlc) lists the *parent* of its input directory, so in a shared /tmp it trips over other jobs'
        # temporary directories vanishing ("LocalFileSystem.GetPathInfo: /tmp/... No such file or directory").
        self.tmpdir = tempfile.mkdtemp(prefix="sm-emulator-tmp-")
        env = process_environment(self.env, self.tmpdir)
        self.process = self.warm.launch(self.command, self.cwd, env) if self.warm is not None else None
        if self.process is None:
            self.process = _SPAWNER.submit(
                subprocess.Popen, self.command, cwd=self.cwd, env=env,
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            ).result()
        self._reader = threading.Thread(target=self._pump, name=f"log-{self.sink.stream}", daemon=True)
        self._reader.start()
        return self.process.pid

    def _pump(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        ticker = threading.Event()

        def tick() -> None:  # flush idle buffers so a quiet job's last lines still show up live
            while not ticker.wait(0.25):
                self.sink.flush()

        threading.Thread(target=tick, daemon=True).start()
        try:
            for raw in iter(self.process.stdout.readline, b""):
                line = raw.decode("utf-8", "replace").rstrip("\r\n").replace("\t", "#011")
                self.tail = (self.tail + [line])[-40:]
                self.sink.write(line)
                if self.metrics is not None:
                    self.metrics.feed(line, time.time())
        finally:
            ticker.set()
            self.sink.flush()

    def wait(self, timeout: float | None = None) -> int | None:
        assert self.process is not None
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        if self._reader is not None:
            self._reader.join(5)
        if self.tmpdir is not None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
        return code

    def signal(self, signum: int) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signum)

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """SIGTERM (as SageMaker does), then SIGKILL the whole group after a grace period."""
        self.signal(signal.SIGTERM)
        if self.process is not None and self.wait(grace) is None:
            self.signal(signal.SIGKILL)
            self.wait(5)


def free_port() -> int:
    """A loopback port nobody listens on right now (for trackers and model servers)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def kill_group(pid: int) -> None:
    """Kill a process group left over from a previous daemon (recorded pid = group id)."""
    for signum in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signum)
        time.sleep(0.2)


def python_shim_dir(cache: Path, python: str) -> Path:
    """A ``bin`` directory whose ``python``/``python3``/``pip`` run ``python``.

    Containers call ``python3`` by name (the SDK's ``sm_train.sh`` does
    ``command -v python3``). Wrapper scripts, not symlinks, keep the
    interpreter's virtual environment in effect.
    """
    import hashlib

    folder = cache / "shims" / hashlib.sha256(python.encode()).hexdigest()[:12]
    if not (folder / "python3").exists():
        folder.mkdir(parents=True, exist_ok=True)
        for name, target in (("python", python), ("python3", python), ("pip", f"{python} -m pip"),
                             ("pip3", f"{python} -m pip")):
            shim = folder / name
            tmp = shim.with_suffix(f".{os.getpid()}-{threading.get_ident()}.tmp")  # concurrent jobs race here
            tmp.write_text(f'#!/bin/sh\nexec {target} "$@"\n')
            tmp.chmod(0o755)
            os.replace(tmp, shim)
    return folder


def container_environment(emulator: Any, base: Path, python: str, user_env: dict[str, str] | None,
                          extra: dict[str, str]) -> dict[str, str]:
    """What every local "container" process sees, built in one place.

    The daemon's environment; AWS clients pointed at the emulator (a container's role credentials);
    ``python3`` meaning the job's interpreter; ``SAGEMAKER_BASE_DIR`` standing for ``/opt/ml``;
    unbuffered output so logs stream live; then ``extra`` and the resource's own ``Environment``
    (with ``/opt/ml`` rewritten), which wins as it does in a real container.
    """
    from ..envvars import environment

    env = dict(os.environ)
    env.update(environment(emulator.paths.root, emulator.endpoint_url, emulator.region))
    shims = python_shim_dir(emulator.paths.cache, python)
    env.update({"PATH": f"{shims}{os.pathsep}{env.get('PATH', '')}", "SAGEMAKER_BASE_DIR": str(base),
                "PYTHONUNBUFFERED": "1", **extra})
    for key, value in (user_env or {}).items():
        env[key] = rewrite(value, base)
    return env
