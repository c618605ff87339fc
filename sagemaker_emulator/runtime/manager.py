"""Owns every running job: starts it in a thread, stops it, and cleans up after a restart.

Handlers only record a job and call ``start``; everything slow happens on
the job's own thread so the API answers at once, as SageMaker's does.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from .container import kill_group
from .processing import ProcessingRun
from .records import transition
from .training import TrainingRun
from .transform import TransformRun
from .tuning import TuningRun

log = logging.getLogger(__name__)

RUNNERS: dict[str, type] = {"TrainingJob": TrainingRun, "ProcessingJob": ProcessingRun,
                            "HyperParameterTuningJob": TuningRun, "TransformJob": TransformRun}
STATUS = {"TrainingJob": "TrainingJobStatus", "ProcessingJob": "ProcessingJobStatus",
          "HyperParameterTuningJob": "HyperParameterTuningJobStatus", "TransformJob": "TransformJobStatus"}
END_TIME = {"TrainingJob": "TrainingEndTime", "ProcessingJob": "ProcessingEndTime",
            "HyperParameterTuningJob": "HyperParameterTuningEndTime", "TransformJob": "TransformEndTime"}
SHUTDOWN = (
    "InternalServerError: The local emulator was stopped (sagemaker-emulator stop) while this job was "
    "running, so the job was ended. Start it again with a new name."
)
DAEMON_DIED = (
    "InternalServerError: The local emulator stopped while this job was running, so the job was ended. "
    "Start it again with a new name."
)


class JobManager:
    def __init__(self, emulator: Any) -> None:
        self.emulator = emulator
        self._runs: dict[tuple[str, str], Any] = {}
        self._threads: dict[tuple[str, str], threading.Thread] = {}
        self._lock = threading.Lock()

    def start(self, kind: str, name: str) -> None:
        """Start the recorded job on its own thread; if even that fails, the job ends ``Failed`` saying why.

        Why never raise: the job is already recorded ``InProgress``. An exception here would answer the
        Create* call with an error while leaving a job that no process will ever finish (a zombie).
        """
        try:
            run = RUNNERS[kind](self.emulator, name)
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
            transition(self.emulator.state, kind, name, "Failed", "Failed" if kind == "TrainingJob" else None,
                       FailureReason=f"InternalServerError: The job could not be started: {type(exc).__name__}: "
                                     f"{exc}"[:1024], **{END_TIME[kind]: time.time()})

    def _run(self, kind: str, name: str, run: Any) -> None:
        try:
            run.run()
        finally:
            with self._lock:
                self._runs.pop((kind, name), None)
                self._threads.pop((kind, name), None)

    def stop(self, kind: str, name: str) -> bool:
        with self._lock:
            run = self._runs.get((kind, name))
        if run is None:
            return False
        run.stop()
        return True

    def running(self, kind: str) -> list[Any]:
        with self._lock:
            return [run for (k, _), run in self._runs.items() if k == kind]

    def recover(self) -> None:
        """Jobs a previous daemon left ``InProgress`` end ``Failed``; their processes are killed."""
        for kind, field in STATUS.items():
            for record in self.emulator.state.all(kind):
                if record.get(field) not in ("InProgress", "Stopping"):
                    continue
                for pid in record.get("_pids") or []:
                    kill_group(int(pid))
                name = record[f"{kind}Name"]
                end = END_TIME[kind]
                transition(self.emulator.state, kind, name, "Failed",
                           "Failed" if kind == "TrainingJob" else None,
                           FailureReason=DAEMON_DIED, _pids=None, **{end: time.time()})
                log.warning("%s %s was running when the emulator stopped; marked Failed", kind, name)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop every job (their processes die with them), then mark them ``Failed`` as a restart would."""
        with self._lock:
            runs = list(self._runs.values())
            threads = list(self._threads.values())
        for run in runs:
            run.stop(SHUTDOWN)
        deadline = time.time() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.time()))
