"""Local model servers for real-time endpoints and batch transform (the containers' ``serve`` command).

Each production-variant instance is its own process, started by the runtime as::

    python -m sagemaker_emulator.images.model_server serve

with the instance directory (the stand-in for ``/opt/ml``) as working directory and environment:

* ``SAGEMAKER_BASE_DIR`` – that directory; the model archive is extracted into ``<dir>/model``
  (``SM_MODEL_DIR`` overrides the model directory, as in the containers);
* ``SAGEMAKER_BIND_TO_PORT`` – the port to serve on; the server binds **127.0.0.1** only;
* ``SM_EMULATOR_FRAMEWORK`` – ``xgboost`` (default) or ``sklearn``: which image this stands for;
  ``SM_EMULATOR_LEGACY_ALGORITHM=1`` for the legacy first-party XGBoost image (``xgboost:latest``);
* the Model's container ``Environment``: ``SAGEMAKER_PROGRAM`` selects script mode (else the
  built-in algorithm serves ``<dir>/model``), ``SAGEMAKER_SUBMIT_DIRECTORY``,
  ``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT``, ``SAGEMAKER_INFERENCE_OUTPUT``,
  ``SAGEMAKER_INFERENCE_ENSEMBLE``, ``SAGEMAKER_BATCH``, ``MAX_CONTENT_LENGTH``,
  ``SAGEMAKER_MODEL_SERVER_TIMEOUT`` (60 s), ``SAGEMAKER_MODEL_SERVER_WORKERS`` (CPU count),
  ``SAGEMAKER_CONTAINER_LOG_LEVEL`` (``10``/``DEBUG`` logs every request).

The process loads the model *before* it listens, so ``GET /ping`` answers 200 as soon as the port
accepts connections. If loading fails it logs why, prints a last line ``FAILURE: <one-line reason>``
and exits with status 1. It logs to stdout, serves ``POST /invocations`` and
``GET /execution-parameters``, and exits with status 0 on SIGTERM (in-flight requests get a short
grace). Script-mode code with a ``requirements.txt`` must be started with the interpreter of
``sagemaker_emulator.runtime.pyenvs.python_for_requirements``; this process installs nothing.

Modules: :mod:`.http` (the HTTP/1.1 server and worker pool), :mod:`.xgboost_algorithm` (built-in
algorithm serving), :mod:`.script_mode` (inference handlers), :mod:`.errors`; ``__main__`` wires
them together.
"""
