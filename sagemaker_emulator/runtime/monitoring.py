"""The monitoring scheduler: runs each ``Scheduled`` monitoring schedule's executions on its emulated clock.

One daemon thread ticks a few times a second. For every schedule it takes
``Pending`` ones to ``Scheduled``; when the schedule's emulated clock passes
a fire time (and the data capture of the window has been written) it records
one execution for that time — the record's key is the schedule and the
scheduled time, so an hour can never run twice, also across a daemon restart —
and starts the processing job of the analyzer (``monitor_job.py`` builds its
request). Hours that passed while the daemon was down or the schedule was
stopped are not caught up: only the latest due time runs, as a schedule that
resumes on AWS runs at its next time. It also keeps every running
execution's status in step with its processing job: ``Completed``,
``CompletedWithViolations`` (the analyzer's exit message says so), ``Failed``
(with the job's reason) or ``Stopped``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from .monitor_clock import Clock, Schedule, iso
from .monitor_job import CAPTURE_DELAY, NoData, execution_request, publish_monitor_metrics

log = logging.getLogger(__name__)

TICK_SECONDS = 0.25
SCHEDULE = "MonitoringSchedule"
EXECUTION = "MonitoringExecution"
RUNNING = ("Pending", "InProgress", "Stopping")


def execution_key(schedule: str, scheduled: float) -> str:
    return f"{schedule}@{int(scheduled)}"


def executions_where(state: Any, field: str, values: tuple[str, ...]) -> list[dict[str, Any]]:
    """The executions whose ``field`` is one of ``values``, oldest first, read by SQLite's JSON functions:
    a long-running schedule has thousands of executions, and the scheduler looks several times a second."""
    marks = ",".join("?" * len(values))
    rows = state.query(f"SELECT data FROM resources WHERE kind=? AND json_extract(data, '$.{field}') IN ({marks}) "
                       "ORDER BY created", (EXECUTION, *values))
    return [json.loads(row[0]) for row in rows]


class MonitoringScheduler:
    def __init__(self, emulator: Any) -> None:
        self.emulator = emulator
        #: held while an execution is recorded and started, and while a schedule is deleted
        self.lock = threading.RLock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="monitoring-scheduler", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def shutdown(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick(time.time())
            except Exception:  # noqa: BLE001 - a bad record must not stop every other schedule
                log.exception("monitoring scheduler tick failed")
            self._wake.wait(TICK_SECONDS)
            self._wake.clear()

    # ------------------------------------------------------------ one tick
    def tick(self, now: float) -> None:
        state = self.emulator.state
        for execution in executions_where(state, "MonitoringExecutionStatus", RUNNING):
            self._sync(execution)
        for schedule in state.all(SCHEDULE):
            status = schedule["MonitoringScheduleStatus"]
            if status == "Pending":
                state.update(SCHEDULE, schedule["MonitoringScheduleName"], MonitoringScheduleStatus="Scheduled",
                             LastModifiedTime=now)
                status = "Scheduled"
            if status == "Scheduled":
                self._due(schedule, now)

    def _due(self, schedule: dict[str, Any], now: float) -> None:
        """Start the schedule's latest due execution, if it has one that has not run."""
        config = schedule["MonitoringScheduleConfig"]["ScheduleConfig"]
        parsed = Schedule.parse(config["ScheduleExpression"])
        clock = Clock(**schedule["_clock"])
        if parsed.once:
            due = [clock.anchor] if now >= clock.anchor + CAPTURE_DELAY else []
        else:
            after = clock.emulated(max(schedule.get("_resumed") or 0.0, clock.anchor))
            last = schedule.get("_last_scheduled")
            # the window of a fire time ends at it: wait until its captures are written
            due = parsed.fire_times(max(after, last or after), clock.emulated(now - CAPTURE_DELAY))
        if not due:
            return
        scheduled = due[-1]
        name = schedule["MonitoringScheduleName"]
        with self.lock:
            if self.emulator.state.get(SCHEDULE, name) is None:  # deleted meanwhile
                return
            self.emulator.state.update(SCHEDULE, name, _last_scheduled=scheduled)
            if parsed.once:
                self.emulator.state.update(SCHEDULE, name, MonitoringScheduleStatus="Stopped")
            self._start_execution(schedule, scheduled, clock, now)

    def _start_execution(self, schedule: dict[str, Any], scheduled: float, clock: Clock, now: float) -> None:
        from ..services.context import Context, call

        name = schedule["MonitoringScheduleName"]
        record = {"_name": execution_key(name, scheduled), "MonitoringScheduleName": name, "ScheduledTime": scheduled,
                  "CreationTime": now, "LastModifiedTime": now, "MonitoringExecutionStatus": "Pending",
                  "MonitoringType": schedule["MonitoringType"]}
        if schedule.get("EndpointName"):
            record["EndpointName"] = schedule["EndpointName"]
        definition_name = schedule["MonitoringScheduleConfig"].get("MonitoringJobDefinitionName")
        if definition_name:
            record["MonitoringJobDefinitionName"] = definition_name
        if not self.emulator.state.insert(EXECUTION, record["_name"], record["_name"], now, record):
            return  # this hour already has its execution
        try:
            request = execution_request(self.emulator, schedule, scheduled, clock)
            ctx = Context.internal(schedule["MonitoringScheduleArn"])
            arn = call(self.emulator.sagemaker, "CreateProcessingJob", ctx, request)["ProcessingJobArn"]
        except NoData as exc:
            self._end(record["_name"], "Failed", FailureReason=str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - the execution fails saying why; the schedule goes on
            log.exception("monitoring execution %s could not start", record["_name"])
            reason = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            self._end(record["_name"], "Failed", FailureReason=f"{getattr(exc, 'code', 'InternalServerError')}: "
                                                               f"{reason}")
            return
        self.emulator.state.update("ProcessingJob", request["ProcessingJobName"],
                                   MonitoringScheduleArn=schedule["MonitoringScheduleArn"])
        self.emulator.state.update(EXECUTION, record["_name"], ProcessingJobArn=arn, _job=request["ProcessingJobName"],
                                   MonitoringExecutionStatus="InProgress", LastModifiedTime=time.time())
        log.info("monitoring schedule %s: execution for %s (%s) started as %s", name, iso(scheduled),
                 clock.describe(), request["ProcessingJobName"])

    def _end(self, key: str, status: str, **fields: Any) -> None:
        self.emulator.state.update(EXECUTION, key, MonitoringExecutionStatus=status, LastModifiedTime=time.time(),
                                   **fields)

    def _sync(self, execution: dict[str, Any]) -> None:
        """An execution's status from its processing job's."""
        job = self.emulator.state.get("ProcessingJob", execution.get("_job") or "")
        if job is None:
            return
        status = job["ProcessingJobStatus"]
        if status == "Completed":
            publish_monitor_metrics(self.emulator, job, execution)
            violations = (job.get("ExitMessage") or "").startswith("CompletedWithViolations")
            self._end(execution["_name"], "CompletedWithViolations" if violations else "Completed")
        elif status == "Failed":
            self._end(execution["_name"], "Failed", FailureReason=job.get("FailureReason") or "Job failed")
        elif status in ("Stopped", "Stopping") and execution["MonitoringExecutionStatus"] != status:
            self._end(execution["_name"], status)
