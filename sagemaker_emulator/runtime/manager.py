"""Owns every running job: starts it in a thread, stops it, and cleans up after a restart.

Handlers only record a job and call ``start``; everything slow happens on
the job's own thread so the API answers at once, as SageMaker's does.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from .automl import AutoMLRun
from .job import SHUTDOWN, JobRun
from .pipeline import PipelineRun
from .processing import ProcessingRun
from .training import TrainingRun
from .transform import TransformRun
from .tuning import TuningRun

log = logging.getLogger(__name__)

#: every job kind, by the kind its records are stored under; a new kind is one more class here
RUNNERS: dict[str, type[JobRun]] = {
    run.KIND: run for run in (TrainingRun, ProcessingRun, TuningRun, TransformRun, PipelineRun, AutoMLRun)}


class JobManager:
    def __init__(self, emulator: Any) -> None:
        self.emulator = emulator
        self._runs: dict[tuple[str, str], JobRun] = {}
        self._threads: dict[tuple[str, str], threading.Thread] = {}
        self._lock = threading.Lock()

    def start(self, kind: str, name: str, runner: type[JobRun] | None = None) -> None:
        """Start the recorded job on its own thread; if even that fails, the job ends ``Failed`` saying why.

        ``runner``: a subclass of the kind's runner for jobs the platform starts itself (rule evaluations
        are processing jobs that report back to their training job).

        Why never raise: the job is already recorded ``InProgress``. An exception here would answer the
        Create* call with an error while leaving a job that no process will ever finish (a zombie).
        """
        runner = runner or RUNNERS[kind]
        try:
            run = runner(self.emulator, name)
            thread = threading.Thread(target=self._run, args=(kind, name, run), name=f"{kind}-{name}", daemon=True)
            with self._lock:
                self._runs[(kind, name)] = run
                self._threads[(kind, name)] = thread
            thread.start()
        except Exception as exc:  # noqa: BLE001 - e.g. "can't start new thread", a record the runner cannot read
            log.exception("%s %s could not be started", kind, name)
            with self._lock:
                self._runs.pop((kind, name), None)
                self._threads.pop((kind, name), None)
            runner.end_record(self.emulator.state, name, "Failed",
                              FailureReason=f"InternalServerError: The job could not be started: "
                                            f"{type(exc).__name__}: {exc}")

    def _run(self, kind: str, name: str, run: JobRun) -> None:
        try:
            run.run()
        finally:
            with self._lock:
                self._runs.pop((kind, name), None)
                self._threads.pop((kind, name), None)

    def stop(self, kind: str, name: str) -> bool:
        """Ask the job's run to stop; False if no run is behind the job (it has just ended)."""
        with self._lock:
            run = self._runs.get((kind, name))
        if run is None:
            return False
        run.stop()
        return True

    def running(self, kind: str) -> list[JobRun]:
        with self._lock:
            return [run for (k, _), run in self._runs.items() if k == kind]

    def recover(self) -> None:
        """Jobs a previous daemon left ``InProgress`` end ``Failed``; their processes are killed."""
        for runner in RUNNERS.values():
            runner.recover(self.emulator)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop every job (their processes die with them), then mark them ``Failed`` as a restart would."""
        with self._lock:
            runs = list(self._runs.values())
            threads = list(self._threads.values())
        for run in runs:
            run.abort(SHUTDOWN)
        deadline = time.time() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.time()))
