"""``python -m sagemaker_emulator.images.model_server serve``: the containers' ``serve`` command.

Reads the environment (see the package docstring), loads the model, binds, then serves until
SIGTERM. A start-up failure ends with ``FAILURE: <reason>`` on stdout and exit status 1, so that
the runtime can fail the endpoint with the reason instead of waiting for ``/ping``.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Sequence

from ..lean_import import import_xgboost_without_sklearn
from .errors import ModelLoadError, failure_line

logger = logging.getLogger("sagemaker_emulator.model_server")

USAGE = "usage: python -m sagemaker_emulator.images.model_server serve"
ALGORITHM_FORMAT = ("[%(asctime)s:%(levelname)s] %(message)s", "%Y-%m-%d:%H:%M:%S")
SCRIPT_FORMAT = ("%(asctime)s %(levelname)s - %(name)s - %(message)s", None)


class _FlushingHandler(logging.StreamHandler):
    """Every record is flushed at once: the runtime turns each stdout line into a CloudWatch event."""

    def emit(self, record: logging.LogRecord) -> None:
        super().emit(record)
        self.flush()


def configure_logging(script_mode: bool, debug: bool) -> None:
    """The containers' formats (algorithm mode: UTC, ``[date:LEVEL] message``), on stdout."""
    fmt, datefmt = SCRIPT_FORMAT if script_mode else ALGORITHM_FORMAT
    formatter = logging.Formatter(fmt, datefmt=datefmt)
    formatter.converter = time.gmtime
    handler = _FlushingHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    import warnings

    # XGBoost >= 2.1 guesses the format of the extension-less ``xgboost-model`` and says so.
    warnings.filterwarnings("ignore", message=r".*Unknown file format.*")


def build_service(environ: dict[str, str]) -> tuple[object, int | None]:
    """The service for this container environment, model loaded, and its request-size limit."""
    base_dir = environ.get("SAGEMAKER_BASE_DIR", "/opt/ml")
    model_dir = environ.get("SM_MODEL_DIR") or os.path.join(base_dir, "model")
    framework = environ.get("SM_EMULATOR_FRAMEWORK", "xgboost").strip().lower() or "xgboost"
    if environ.get("SAGEMAKER_PROGRAM"):
        from .script_mode import SAFETY_MAX_CONTENT_LENGTH, ScriptModeService, ScriptSettings

        settings = ScriptSettings.from_env(environ, base_dir, model_dir)
        logger.info(f"Serving {settings.program} in script mode ({framework} image)")
        return ScriptModeService(settings), SAFETY_MAX_CONTENT_LENGTH
    if framework == "automl-transform":  # an Autopilot HYPERPARAMETER_TUNING candidate's transformations
        from .automl_transform import MAX_CONTENT_LENGTH as LIMIT
        from .automl_transform import AutoMLTransformService

        return AutoMLTransformService(environ, model_dir), LIMIT
    if framework == "autogluon":  # an Autopilot ENSEMBLING candidate
        from .autogluon import MAX_CONTENT_LENGTH, AutoGluonService

        return AutoGluonService(environ, model_dir), MAX_CONTENT_LENGTH
    if framework != "xgboost":
        raise ModelLoadError(f"SAGEMAKER_PROGRAM is not set: the {framework} image serves only in script mode "
                             "(give the model an entry_point / inference script).")
    import_xgboost_without_sklearn()
    from .xgboost_algorithm import AlgorithmService, AlgorithmSettings

    algorithm_settings = AlgorithmSettings.from_env(environ, model_dir)
    return AlgorithmService(algorithm_settings), algorithm_settings.max_content_length


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``serve`` command; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args not in ([], ["serve"]):
        print(USAGE, file=sys.stderr)
        return 2
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # serving_entrypoint(): one thread per worker
    environ = dict(os.environ)
    level = environ.get("SAGEMAKER_CONTAINER_LOG_LEVEL", "").strip().upper()
    configure_logging(bool(environ.get("SAGEMAKER_PROGRAM")), level in ("10", "DEBUG"))
    from .http import ModelServer, ServerConfig

    try:
        service, max_content_length = build_service(environ)
        config = ServerConfig.from_env(environ, max_content_length)
        server = ModelServer(service, config)  # type: ignore[arg-type]
        host, port = server.bind()
    except ModelLoadError as error:
        logger.error(str(error))
        print(failure_line(str(error)), flush=True)
        return 1
    except OSError as error:
        reason = f"The model server could not listen on port {environ.get('SAGEMAKER_BIND_TO_PORT', '8080')}: {error}"
        logger.error(reason)
        print(failure_line(reason), flush=True)
        return 1
    except Exception as error:
        logger.error("The model server failed to start:\n" + traceback.format_exc())
        print(failure_line(f"The model server failed to start: {type(error).__name__}: {error}"), flush=True)
        return 1

    # The model and the libraries are here to stay: keep them out of the garbage collector's full passes,
    # which would otherwise walk every object of xgboost/numpy/scipy in the middle of some request.
    gc.collect()
    gc.freeze()

    def on_signal(signum: int, _frame: object) -> None:
        logger.info(f"Received {signal.Signals(signum).name}, shutting down")
        server.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    logger.info(f"Listening at: http://{host}:{port} ({os.getpid()}), {config.workers} worker thread(s), "
                f"timeout {config.timeout:g}s")
    server.serve_forever()
    logger.info("Model server stopped")
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # worker threads may still be inside user code: do not wait for them
