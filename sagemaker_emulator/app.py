"""The emulator as one object: state directory, credentials, services, runtime and server.

``Emulator(state_dir).serve(host, port)`` is everything ``sagemaker-emulator
serve`` does; tests build one in-process on port 0 the same way.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from . import __version__
from .config import ACCOUNT_ID, DEFAULT_REGION, StatePaths, load_credentials
from .protocol.http import Request, Response
from .state import State

log = logging.getLogger("sagemaker_emulator")


class Emulator:
    def __init__(self, state_dir: Path, region: str = DEFAULT_REGION) -> None:
        from .access_log import AccessLog
        from .ca import LocalCA
        from .runtime.hosting import EndpointManager
        from .runtime.imageenvs import ImageEnvironments
        from .runtime.manager import JobManager
        from .runtime.monitoring import MonitoringScheduler
        from .runtime.warm import WarmPool
        from .services.cloudwatch import CloudWatch
        from .services.iam import IAM
        from .services.logs import Logs
        from .services.s3 import S3
        from .services.sagemaker import SageMaker
        from .services.sagemaker_runtime import SageMakerRuntime
        from .services.sts import STS

        self.paths = StatePaths(Path(state_dir).resolve()).ensure()
        self.region = region
        self.account_id = ACCOUNT_ID
        self.credentials = load_credentials(self.paths)
        self.state = State(self.paths.db)
        self.ca = LocalCA.load_or_create(self.paths.ca)
        self.ca.write_bundle(self.paths.ca / "bundle.pem")
        self.endpoint_url = ""
        self.started = time.time()
        self.s3 = S3(self)
        self.logs = Logs(self)
        self.sagemaker = SageMaker(self)
        self.services: dict[str, Any] = {
            "s3": self.s3, "sts": STS(self), "iam": IAM(self), "logs": self.logs, "sagemaker": self.sagemaker,
            "sagemaker-runtime": SageMakerRuntime(self), "monitoring": CloudWatch(self),
        }
        self.cloudwatch: CloudWatch = self.services["monitoring"]
        self.access_log = AccessLog(self.paths.root / "access.log")
        self.warm = WarmPool(self.paths.cache / "warm")
        self.image_envs = ImageEnvironments(self.paths.cache / "image-envs", self.warm)
        self.jobs = JobManager(self)
        self.endpoints = EndpointManager(self)
        self.monitoring = MonitoringScheduler(self)
        self._server: Any = None

    # ------------------------------------------------------------ serving
    def dispatch(self, request: Request) -> Response:
        from .gateway import dispatch

        return dispatch(self, request)

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "version": __version__, "pid": os.getpid(), "endpoint_url": self.endpoint_url,
                "state_dir": str(self.paths.root), "uptime_seconds": round(time.time() - self.started, 3)}

    def start(self, host: str = "127.0.0.1", port: int = 0, limits: Any = None) -> str:
        """Bind, recover jobs from a previous run, and serve in a background thread."""
        from .http_server import make_server

        self._server = make_server(self, host, port, limits)
        bound_host, bound_port = self._server.server_address[:2]
        self.endpoint_url = f"http://{bound_host}:{bound_port}"
        self._server.upstream_proxy = self._upstream_proxy(bound_port)
        self.jobs.recover()
        self.endpoints.recover()
        self.monitoring.start()
        self.sagemaker.recover_mlflow_apps()
        threading.Thread(target=self._server.serve_forever, name="gateway", daemon=True).start()
        return self.endpoint_url

    @staticmethod
    def _upstream_proxy(own_port: int) -> Any:
        """The user's own proxy, chained to for non-AWS traffic (never this daemon itself: a loop)."""
        from .upstream import from_environ

        chain = from_environ(os.environ)
        if chain is not None and chain.port == own_port and chain.host in ("127.0.0.1", "localhost", "::1"):
            chain = None
        if chain is not None:
            log.info("non-AWS traffic goes through the proxy %s (from the environment this daemon started in)",
                     chain)
        return chain

    def warm_up(self) -> None:
        """Start the warm workers that jobs fork from, in the background, so the first job is fast too: one per
        image environment already built (jobs run there), else the emulator's own."""
        from .runtime.container import process_environment

        env = process_environment(dict(os.environ), "")
        pythons = self.image_envs.built_pythons()
        for python in pythons:
            self.warm.prestart(env, python)
        if not pythons:
            self.warm.prestart(env)

    def write_server_info(self) -> None:
        info = {"endpoint_url": self.endpoint_url, "pid": os.getpid(), "state_dir": str(self.paths.root),
                "version": __version__, "region": self.region}
        tmp = self.paths.server_info.with_suffix(".tmp")
        tmp.write_text(json.dumps(info))
        os.replace(tmp, self.paths.server_info)

    #: how long ``stop`` lets the requests being served finish before it closes the database under them
    DRAIN_SECONDS = 10.0

    def stop(self) -> None:
        """Stop accepting requests, stop every job this emulator started, let the requests being served
        finish (bounded), close the database.

        The order matters: jobs and endpoints stop first, so that a request waiting on one (an
        ``InvokeEndpoint``) ends at once, and the requests still running have finished writing state
        when the database closes.
        """
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()  # no new connections; the requests being served go on, later ones are answered 503
            server.stopping = True
        self.monitoring.shutdown()
        self.jobs.shutdown()
        self.endpoints.shutdown()
        if getattr(self, "mlflow", None) is not None:
            self.mlflow.shutdown()
        self.warm.shutdown()
        if server is not None:
            running = server.drain(self.DRAIN_SECONDS)
            if running:
                log.warning("%d request(s) still running %.0f s after stop; closing the state database under them",
                            running, self.DRAIN_SECONDS)
            server.server_close()
        self.cloudwatch.close()
        self.access_log.close()
        self.state.close()
