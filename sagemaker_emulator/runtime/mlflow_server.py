"""One real ``mlflow server`` process per MLflow App, started and stopped by the emulator.

Each app's server listens on a loopback port of its own, keeps its runs in a SQLite file in the
state directory (``mlflow/<app id>/mlflow.db``) and hands out artifact locations under the app's
``ArtifactStoreUri`` in the emulator's S3: the ``sagemaker-mlflow`` client writes artifacts there
itself (``--no-serve-artifacts``), as it does on SageMaker. The server's routes live under
``/_emulator/mlflow/<app id>`` (``--static-prefix``) so that the gateway can serve its UI to a
browser by path. The server starts in the background: the app is ``Creating`` until the server
answers its health check, then ``Created`` (``CreateFailed`` with the log's last lines if it never
does). On a daemon restart the servers of apps that were up are started again.

mlflow is heavy: it should live in its own environment, not the kernel's; ``MLFLOW_PYTHON`` names
that interpreter (default: the emulator's). What its start costs, and what is cut here (measured in
session 6, see ``benchmarks/README.md``):

* mlflow 3.x starts a job runner (huey consumers, each importing mlflow again) for its GenAI jobs
  (judges, prompt optimisation), which SageMaker's tracking does not need and which competed with
  the server's own start for the CPU: ``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false``;
* a fresh SQLite backend store runs every Alembic migration (over a hundred) on first open: the store
  is instead copied from a template migrated once per mlflow version and interpreter, kept beside
  the image environments (shared by CI's emulators), with experiment 0's artifact location set to
  the app's own.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .container import _SPAWNER, _die_with_parent, free_port

log = logging.getLogger(__name__)

PREFIX = "/_emulator/mlflow"
START_TIMEOUT_SECONDS = 240.0
POLL_SECONDS = 0.25
TEMPLATE_TIMEOUT_SECONDS = 240.0
#: migrates an empty SQLite store (argv[1]) to mlflow's current schema, as ``mlflow server`` would on first open
_MIGRATE = ("import sys\nfrom mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore\n"
            "SqlAlchemyStore('sqlite:///' + sys.argv[1], sys.argv[2])\n")


def route_prefix(app_id: str) -> str:
    return f"{PREFIX}/{app_id}"


@dataclass
class Server:
    app_id: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    def tail(self, lines: int = 3) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(text[-lines:])


class MlflowServers:
    """The running MLflow servers of one emulator, by app id."""

    def __init__(self, emulator: Any) -> None:
        self.emulator = emulator
        self._servers: dict[str, Server] = {}
        self._lock = threading.Lock()
        self._cancelled: set[str] = set()  # stopped while their store was being prepared
        self._versions: dict[str, str] = {}  # mlflow's version, by interpreter

    def start(self, app_id: str, artifact_uri: str, on_ready: Callable[[str | None], None]) -> None:
        """Start the app's server; ``on_ready(None)`` once it answers, ``on_ready(reason)`` if it never does."""
        with self._lock:
            self._cancelled.discard(app_id)
        threading.Thread(target=self._start_or_fail, args=(app_id, artifact_uri, on_ready), name=f"mlflow-{app_id}",
                         daemon=True).start()

    def _start_or_fail(self, app_id: str, artifact_uri: str, on_ready: Callable[[str | None], None]) -> None:
        try:
            self._start(app_id, artifact_uri, on_ready)
        except Exception as exc:  # the app must not stay Creating
            log.exception("Starting the MLflow server of %s failed", app_id)
            on_ready(f"The MLflow server could not be started: {exc}")

    def _start(self, app_id: str, artifact_uri: str, on_ready: Callable[[str | None], None]) -> None:
        from ..envvars import environment

        home = self.emulator.paths.root / "mlflow" / app_id
        home.mkdir(parents=True, exist_ok=True)
        python = os.environ.get("MLFLOW_PYTHON") or sys.executable
        env = {**os.environ, **environment(self.emulator.paths.root, self.emulator.endpoint_url,
                                           self.emulator.region),
               "MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        store = home / "mlflow.db"
        if not store.exists():
            try:
                self._copy_template(python, env, store, artifact_uri.rstrip("/"))
            except (OSError, sqlite3.Error, subprocess.SubprocessError) as exc:  # mlflow server migrates it
                log.warning("No template MLflow store (%s); the server creates its own", exc)
                store.unlink(missing_ok=True)
        port = free_port()
        command = [python, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                   "--backend-store-uri", f"sqlite:///{home / 'mlflow.db'}",
                   "--default-artifact-root", artifact_uri.rstrip("/"), "--no-serve-artifacts",
                   "--static-prefix", route_prefix(app_id)]
        log_path = home / "server.log"
        with open(log_path, "ab") as sink:
            process = _SPAWNER.submit(subprocess.Popen, command, cwd=home, env=env, stdin=subprocess.DEVNULL,
                                      stdout=sink, stderr=subprocess.STDOUT,
                                      preexec_fn=_die_with_parent).result()
        server = Server(app_id, port, process, log_path)
        with self._lock:
            self._servers[app_id] = server
            cancelled = app_id in self._cancelled
        if cancelled:
            self.stop(app_id)
            return
        self._await(server, on_ready)

    def _template(self, python: str, env: dict[str, str]) -> Path:
        """An empty store migrated to the schema of ``python``'s mlflow, built once (under a lock) and cached."""
        version = self._versions.get(python)
        if version is None:
            version = subprocess.run([python, "-c", "import importlib.metadata as m; print(m.version('mlflow'))"],
                                     env=env, capture_output=True, text=True, check=True, timeout=60).stdout.strip()
            self._versions[python] = version
        digest = hashlib.sha256(f"{python}\0{version}".encode()).hexdigest()[:12]
        cache = self.emulator.image_envs.cache_dir
        cache.mkdir(parents=True, exist_ok=True)
        template = cache / f"mlflow-{version}-store-{digest}.db"
        with open(cache / f"{template.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not template.exists():
                partial = template.with_suffix(f".{os.getpid()}.partial")
                partial.unlink(missing_ok=True)
                subprocess.run([python, "-c", _MIGRATE, str(partial), "s3://template/artifacts"], env=env, cwd=cache,
                               capture_output=True, check=True, timeout=TEMPLATE_TIMEOUT_SECONDS)
                partial.replace(template)
        return template

    def _copy_template(self, python: str, env: dict[str, str], store: Path, artifact_root: str) -> None:
        """The app's store: a copy of the template, its default experiment's artifacts under the app's root."""
        partial = store.with_suffix(".partial")
        shutil.copyfile(self._template(python, env), partial)
        with sqlite3.connect(partial) as db:
            db.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0", (f"{artifact_root}/0",))
        db.close()
        partial.replace(store)

    def _await(self, server: Server, on_ready: Callable[[str | None], None]) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        url = f"http://127.0.0.1:{server.port}{route_prefix(server.app_id)}/health"
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                on_ready(f"The MLflow server exited with code {server.process.returncode}: {server.tail()}")
                return
            try:
                with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310 - loopback only
                    if answer.status == 200:
                        on_ready(None)
                        return
            except OSError:
                pass
            time.sleep(POLL_SECONDS)
        self.stop(server.app_id)
        on_ready(f"The MLflow server did not answer within {START_TIMEOUT_SECONDS:.0f} s: {server.tail()}")

    def port(self, app_id: str) -> int | None:
        with self._lock:
            server = self._servers.get(app_id)
        return server.port if server is not None and server.process.poll() is None else None

    def stop(self, app_id: str) -> None:
        with self._lock:
            server = self._servers.pop(app_id, None)
            if server is None:
                self._cancelled.add(app_id)
        if server is None:
            return
        try:
            os.killpg(server.process.pid, signal.SIGTERM)
            server.process.wait(5)
        except (ProcessLookupError, PermissionError):
            pass
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait(5)

    def shutdown(self) -> None:
        with self._lock:
            ids = list(self._servers)
        for app_id in ids:
            self.stop(app_id)
