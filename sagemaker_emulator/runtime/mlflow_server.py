"""One real ``mlflow server`` process per MLflow App, started and stopped by the emulator.

Each app's server listens on a loopback port of its own, keeps its runs in a SQLite file in the
state directory (``mlflow/<app id>/mlflow.db``) and hands out artifact locations under the app's
``ArtifactStoreUri`` in the emulator's S3: the ``sagemaker-mlflow`` client writes artifacts there
itself (``--no-serve-artifacts``), as it does on SageMaker. The server's routes live under
``/_emulator/mlflow/<app id>`` (``--static-prefix``) so that the gateway can serve its UI to a
browser by path. The server starts in the background: the app is ``Creating`` until the server
answers its health check, then ``Created`` (``CreateFailed`` with the log's last lines if it never
does). On a daemon restart the servers of apps that were up are started again.

mlflow is heavy (and 3.x starts a job runner with several consumers): it should live in its own
environment, not the kernel's; ``MLFLOW_PYTHON`` names that interpreter (default: the emulator's).
"""

from __future__ import annotations

import logging
import os
import signal
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
POLL_SECONDS = 0.5


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

    def start(self, app_id: str, artifact_uri: str, on_ready: Callable[[str | None], None]) -> None:
        """Start the app's server; ``on_ready(None)`` once it answers, ``on_ready(reason)`` if it never does."""
        from ..envvars import environment

        home = self.emulator.paths.root / "mlflow" / app_id
        home.mkdir(parents=True, exist_ok=True)
        port = free_port()
        python = os.environ.get("MLFLOW_PYTHON") or sys.executable
        command = [python, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                   "--backend-store-uri", f"sqlite:///{home / 'mlflow.db'}",
                   "--default-artifact-root", artifact_uri.rstrip("/"), "--no-serve-artifacts",
                   "--static-prefix", route_prefix(app_id)]
        env = {**os.environ, **environment(self.emulator.paths.root, self.emulator.endpoint_url,
                                           self.emulator.region), "MLFLOW_DISABLE_TELEMETRY": "true"}
        log_path = home / "server.log"
        with open(log_path, "ab") as sink:
            process = _SPAWNER.submit(subprocess.Popen, command, cwd=home, env=env, stdin=subprocess.DEVNULL,
                                      stdout=sink, stderr=subprocess.STDOUT,
                                      preexec_fn=_die_with_parent).result()
        server = Server(app_id, port, process, log_path)
        with self._lock:
            self._servers[app_id] = server
        threading.Thread(target=self._await, args=(server, on_ready), name=f"mlflow-{app_id}", daemon=True).start()

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
