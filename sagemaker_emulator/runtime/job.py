"""The one base of every job kind: what a job is to the emulator, whatever it runs.

A job is a record in Describe shape that a run moves from ``InProgress`` to
``Completed``, ``Failed`` or ``Stopped``, on its own thread, and that must
end whatever happens: a bad request (``ClientError``), a failing container
(``AlgorithmError``), an emulator bug (``InternalServerError``), a Stop* call,
the emulator shutting down, or the emulator dying under it (found at the next
start). That life is the same for training, processing, transform and tuning
jobs and for the kinds still to come (monitoring executions, rule
evaluations, AutoML, pipeline steps), so it is written once, here; a kind
subclasses ``JobRun``, names its fields and writes ``execute``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from . import staging
from .container import Container, kill_group
from .records import status_field, transition

log = logging.getLogger(__name__)

SHUTDOWN = (
    "InternalServerError: The local emulator was stopped (sagemaker-emulator stop) while this job was "
    "running, so the job was ended. Start it again with a new name."
)
DAEMON_DIED = (
    "InternalServerError: The local emulator stopped while this job was running, so the job was ended. "
    "Start it again with a new name."
)


class JobFailure(Exception):
    """Ends the job ``Failed`` with this reason, already in SageMaker's wording (``ClientError: …``)."""


class JobStopped(Exception):
    """Raised at a step boundary once a stop was requested: the job ends as ``stopped()`` says."""


@dataclass
class Outcome:
    """How a run ended: the final status, the fields to record with it, and (training) the secondary status."""

    status: str
    fields: dict[str, Any] = field(default_factory=dict)
    secondary: str | None = None  # defaults to ``status`` for kinds with a secondary status history

    @classmethod
    def failed(cls, reason: str, **fields: Any) -> Outcome:
        return cls("Failed", {**fields, "FailureReason": reason})


class JobRun:
    """Runs one job of kind ``KIND``; ``stop()``/``abort()`` may be called from any thread.

    A subclass sets the class attributes and writes ``execute``; it may add ``_end_fields`` (fields
    recorded with the final status), ``_release`` (what to tear down before the job ends) and
    ``_on_stop`` (what must react at once to a stop).
    """

    KIND: ClassVar[str]
    #: the field recording when the job ended (``TrainingEndTime``)
    END_FIELD: ClassVar[str]
    #: the field recording when it started running, set as the run begins (``TrainingStartTime``), if any
    START_FIELD: ClassVar[str | None] = None
    #: where ``InstanceCount`` is in the record; () for a kind that occupies no instance itself (tuning)
    RESOURCES: ClassVar[tuple[str, ...]] = ()
    #: whether the kind has SageMaker's ``SecondaryStatus`` with ``SecondaryStatusTransitions``
    SECONDARY_STATUSES: ClassVar[bool] = False
    #: the folder under the state directory's ``jobs/`` holding the job's per-instance ``/opt/ml`` trees
    WORK_FOLDER: ClassVar[str] = ""

    def __init__(self, emulator: Any, name: str) -> None:
        self.emulator = emulator
        self.name = name
        self.record: dict[str, Any] = emulator.state.get(self.KIND, name) or {}
        self.stop_requested = threading.Event()
        #: set when the emulator itself ends the job (shutting down): it ends Failed with this reason
        self.abort_reason: str | None = None
        #: set when the job ran past its ``StoppingCondition.MaxRuntimeInSeconds`` (and was stopped for it)
        self.max_runtime_exceeded = False
        self.started_at = time.time()
        self.root: Path = emulator.paths.jobs / self.WORK_FOLDER / name
        #: the processes the run started ("containers"): stopped before the job's end is recorded
        self.containers: list[Container] = []

    # ------------------------------------------------------------ the record
    @classmethod
    def end_record(cls, state: Any, name: str, status: str, secondary: str | None = None,
                   **fields: Any) -> dict[str, Any] | None:
        """Give a job its final ``status`` and end time; also for a job no run is behind (restart, no thread)."""
        if cls.SECONDARY_STATUSES:
            secondary = secondary or status
        fields.setdefault(cls.END_FIELD, time.time())
        return transition(state, cls.KIND, name, status, secondary, _pids=None, **fields)

    def _set(self, status: str | None = None, secondary: str | None = None, message: str | None = None,
             **fields: Any) -> None:
        record = transition(self.emulator.state, self.KIND, self.name, status, secondary, message, **fields)
        if record is not None:
            self.record = record

    @property
    def instance_count(self) -> int:
        """How many local instances the job occupies (the quota counts them)."""
        if not self.RESOURCES:
            return 0
        resources: dict[str, Any] = self.record
        for key in self.RESOURCES:
            resources = resources[key]
        return int(resources.get("InstanceCount") or 1)

    def hosts(self) -> list[str]:
        """The instances' host names, as SageMaker's ``resourceconfig.json`` lists them."""
        return [f"algo-{i + 1}" for i in range(self.instance_count)]

    # ------------------------------------------------------------ instances
    def _stage(self, source: dict[str, Any], dest: Path, index: int, gzip_input: bool) -> None:
        """Copy an S3 input to instance ``index``'s directory (its shard of it, with ``ShardedByS3Key``)."""
        staging.stage_prefix(
            self.emulator.s3.store, source["S3Uri"], dest,
            sharded=source.get("S3DataDistributionType") == "ShardedByS3Key",
            instance=index, instances=self.instance_count, gzip_input=gzip_input,
            role_arn=self.record.get("RoleArn", ""), region=self.emulator.region,
        )

    def _start_containers(self, containers: list[Container]) -> None:
        """Start the instances' processes and record their process groups (a restart kills them)."""
        self.containers.extend(containers)
        for container in containers:
            if container.warm is None:
                container.warm = getattr(self.emulator, "warm", None)
        self._set(_pids=[container.start() for container in containers])

    def _wait_for_containers(self, tick: Callable[[], None] | None = None) -> list[int]:
        """Every container's exit code, ``tick`` called between polls. A stop, or ``MaxRuntimeInSeconds``
        passing (``max_runtime_exceeded``), stops them all: then check ``_check_stop``, not the codes."""
        limit = float((self.record.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds") or 86400)
        deadline = self.started_at + limit
        codes: list[int | None] = [None] * len(self.containers)
        while any(c is None for c in codes):
            for i, container in enumerate(self.containers):
                if codes[i] is None:
                    codes[i] = container.wait(0.05)
            if not self.stop_requested.is_set() and time.time() > deadline:
                self.max_runtime_exceeded = True
                self.stop_requested.set()
            if self.stop_requested.is_set():
                for container in self.containers:
                    container.stop()
                break
            if tick is not None:
                tick()
        return [-1 if c is None else c for c in codes]

    # ------------------------------------------------------------ lifecycle
    def run(self) -> None:
        """Run the job to its final status. Never raises: it runs on its own thread, and the job must end."""
        outcome = self._outcome()
        try:
            self._release(outcome)
            now = time.time()
            record = self.end_record(self.emulator.state, self.name, outcome.status, outcome.secondary,
                                     **{self.END_FIELD: now, **self._end_fields(now), **outcome.fields})
            self.record = record or self.record
        except Exception:  # the state may already be closed (the emulator shutting down): nothing left to tell
            log.exception("%s %s could not record its end", self.KIND, self.name)

    def _outcome(self) -> Outcome:
        try:
            if self.START_FIELD:
                self._set(secondary="Starting" if self.SECONDARY_STATUSES else None,
                          **{self.START_FIELD: time.time()})
            return self.execute()
        except JobStopped:
            return self.stopped()
        except JobFailure as failure:
            return Outcome.failed(str(failure))
        except staging.StagingError as exc:
            return Outcome.failed(f"ClientError: {exc}")
        except Exception as exc:  # an emulator bug still ends the job with a readable reason
            log.exception("%s %s crashed", self.KIND, self.name)
            return Outcome.failed(f"InternalServerError: {type(exc).__name__}: {exc}")

    def execute(self) -> Outcome:
        """The kind's own work; raise ``JobFailure``/``StagingError`` for a failure, ``JobStopped`` on a stop."""
        raise NotImplementedError

    def _end_fields(self, now: float) -> dict[str, Any]:
        """Fields the kind records with its final status (billable seconds, consumed resources …)."""
        return {}

    def _release(self, outcome: Outcome) -> None:
        """Tear down what the run started before the final status is recorded, so that a client that
        sees the job ended also sees every log line."""
        for container in self.containers:
            container.stop(0.5)

    # ------------------------------------------------------------ stopping
    def stop(self) -> None:
        """A Stop* call: the run notices at its next check and the job ends ``Stopped``."""
        self.stop_requested.set()
        self._on_stop()

    def abort(self, reason: str) -> None:
        """The emulator ends the job (it is shutting down): it ends ``Failed`` with ``reason``, not ``Stopped``."""
        self.abort_reason = reason
        self.stop()

    def _on_stop(self) -> None:
        """What must react to a stop at once, from the caller's thread (wake a loop, kill servers)."""

    def _check_stop(self) -> None:
        if self.stop_requested.is_set():
            raise JobStopped()

    def stopped(self) -> Outcome:
        """How a stopped job ends: ``Stopped``, or ``Failed`` with the reason if the emulator ended it."""
        if self.abort_reason is not None:
            return Outcome.failed(self.abort_reason)
        return Outcome("Stopped")

    # ------------------------------------------------------------ daemon restart
    @classmethod
    def recover(cls, emulator: Any) -> None:
        """Jobs a previous daemon left running end ``Failed`` saying so; their processes are killed."""
        for record in emulator.state.all(cls.KIND):
            if record.get(status_field(cls.KIND)) not in ("InProgress", "Stopping"):
                continue
            for pid in record.get("_pids") or []:
                kill_group(int(pid))
            name = record[f"{cls.KIND}Name"]
            cls.end_record(emulator.state, name, "Failed", FailureReason=DAEMON_DIED)
            log.warning("%s %s was running when the emulator stopped; marked Failed", cls.KIND, name)
