"""A pipeline execution: the definition's DAG run step by step, each step a real job or resource.

One thread per execution (``JobRun``), a loop that polls: steps whose
dependencies all succeeded are launched (at most ``MaxParallelExecutionSteps``
at a time), running steps are watched, a ``Condition`` step decides which of
its branches become runnable (the other branch's steps never run and are not
listed, as on SageMaker), a ``Fail`` step fails with its message. Once a step
fails no new step starts; the execution ends ``Failed`` with SageMaker's
generic reason when the running ones are over, the step's own reason being on
the step. ``RetryPipelineExecution`` runs the same loop again keeping the
steps that succeeded. A step with ``CacheConfig.Enabled`` whose evaluated
arguments equal those of a step that succeeded in an earlier execution of the
same pipeline (within ``ExpireAfter``) is not run: it succeeds at once, points
at the earlier job and says so in ``CacheHitResult``. SageMaker hashes a
documented subset of each step type's arguments; locally all of them count.

Where it differs from SageMaker: steps are polled every 50 ms (SageMaker's
orchestration takes seconds per step); a job refused for the local instance
quota waits and is created again instead of failing the step.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from datetime import UTC, datetime
from typing import Any, ClassVar

from ..protocol.errors import ServiceError
from .job import DAEMON_DIED, JobRun, JobStopped, Outcome
from .pipeline_definition import Definition, Step, expire_seconds, parse
from .pipeline_expressions import Evaluator, StepError, coerce_parameter
from .pipeline_steps import (
    JOB_STEPS,
    create_model,
    job_name,
    job_outcome,
    properties,
    register_model,
    start_job,
    stop_job,
)
from .records import transition

log = logging.getLogger(__name__)

KIND = "PipelineExecution"
POLL_SECONDS = 0.05
#: SageMaker's execution ``FailureReason`` when a step failed (the step's own reason is on the step)
STEP_FAILURE = "Step failure: One or multiple steps failed."
DEFAULT_PARALLELISM = 50
STOP_WAIT_SECONDS = 30.0
#: at shutdown the jobs are ended by the emulator itself: wait less
SHUTDOWN_WAIT_SECONDS = 3.0
RUNNING = ("Starting", "Executing", "Stopping")


def now_iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()


class PipelineRun(JobRun):
    KIND: ClassVar[str] = KIND
    END_FIELD: ClassVar[str] = "LastModifiedTime"

    def __init__(self, emulator: Any, name: str) -> None:
        super().__init__(emulator, name)
        self.arn: str = self.record.get("PipelineExecutionArn", "")
        self.execution_id = self.arn.rsplit("/", 1)[-1]
        self.entries: dict[str, dict[str, Any]] = {}

    # ------------------------------------------------------------ the loop
    def execute(self) -> Outcome:
        definition = parse(self.record["_definition"])
        declared = definition.parameters
        parameters = {p["Name"]: coerce_parameter(declared[p["Name"]], p["Value"])
                      for p in self.record.get("_parameters") or []}
        limit = int((self.record.get("ParallelismConfiguration") or {}).get("MaxParallelExecutionSteps")
                    or DEFAULT_PARALLELISM)
        # a retry keeps what succeeded; everything else runs (again)
        self.entries = {e["StepName"]: e for e in self.record.get("_steps") or [] if e["StepStatus"] == "Succeeded"}
        attempts = {e["StepName"]: int(e.get("AttemptCount") or 1) for e in self.record.get("_steps") or []}
        self._save()
        failed = False
        while True:
            if self.stop_requested.is_set():
                self._stop_running()
                raise JobStopped()
            for name in [n for n, e in self.entries.items() if e["StepStatus"] in RUNNING]:
                failed |= self._poll(name)
            running = sum(1 for e in self.entries.values() if e["StepStatus"] in RUNNING)
            ready = [] if failed else self._ready(definition)
            for step in ready[: max(0, limit - running)]:
                attempt = attempts.get(step.name, 0) + 1
                failed |= self._launch(definition, step, parameters, attempt)
            running = sum(1 for e in self.entries.values() if e["StepStatus"] in RUNNING)
            if running == 0 and (failed or not self._ready(definition)):
                return Outcome.failed(STEP_FAILURE) if failed else Outcome("Succeeded")
            time.sleep(POLL_SECONDS)

    def _ready(self, definition: Definition) -> list[Step]:
        """Steps not yet run whose dependencies all succeeded and whose branch (if any) was taken."""
        out = []
        for name in definition.order():
            step = definition.steps[name]
            if name in self.entries or not self._taken(step):
                continue
            if all(self.entries.get(dep, {}).get("StepStatus") == "Succeeded" for dep in step.depends_on):
                out.append(step)
        return out

    def _taken(self, step: Step) -> bool:
        if step.branch_of is None:
            return True
        condition, branch = step.branch_of
        outcome = ((self.entries.get(condition) or {}).get("Metadata") or {}).get("Condition", {}).get("Outcome")
        return outcome == ("True" if branch == "If" else "False")

    # ------------------------------------------------------------ one step
    def _launch(self, definition: Definition, step: Step, parameters: dict[str, Any], attempt: int) -> bool:
        """Start ``step``; True if it failed at once."""
        started = time.time()
        entry: dict[str, Any] = {"StepName": step.name, "StartTime": started, "StepStatus": "Starting",
                                 "AttemptCount": attempt, "_type": step.type}
        for key, field in (("DisplayName", "StepDisplayName"), ("Description", "StepDescription")):
            if step.raw.get(key):
                entry[field] = step.raw[key]
        spec = JOB_STEPS.get(step.type)
        name = job_name(self.execution_id, step.name, spec.max_name if spec else 63)
        evaluator = self._evaluator(definition, parameters, step, name)
        try:
            if step.type == "Condition":
                outcome = all(evaluator.condition(c) for c in step.arguments["Conditions"])
                entry.update(StepStatus="Succeeded", Metadata={"Condition": {"Outcome": str(outcome)}})
            elif step.type == "Fail":
                message = str(evaluator.resolve(step.arguments.get("ErrorMessage", "")))
                entry.update(StepStatus="Failed", FailureReason=message, Metadata={"Fail": {"ErrorMessage": message}})
            else:
                arguments = evaluator.resolve(step.arguments)
                digest = hashlib.sha256(json.dumps([step.type, arguments], sort_keys=True).encode()).hexdigest()
                entry["_args_hash"] = digest
                if not self._cache_hit(step, digest, entry):
                    entry.update(self._start(step, arguments, name))
        except StepError as exc:
            entry.update(StepStatus="Failed", FailureReason=str(exc))
        except ServiceError as exc:  # ResourceLimitExceeded: the local instance quota is full; try again later
            log.info("pipeline %s: step %s waits for capacity: %s", self.name, step.name, exc.message)
            return False
        if entry["StepStatus"] not in RUNNING:
            entry["EndTime"] = time.time()
        self.entries[step.name] = entry
        self._save()
        return entry["StepStatus"] == "Failed"

    def _start(self, step: Step, arguments: dict[str, Any], name: str) -> dict[str, Any]:
        spec = JOB_STEPS.get(step.type)
        if spec is not None:
            started = start_job(self.emulator, spec, arguments, name, self.arn)
            status = "Executing"
        elif step.type in ("Model", "CreateModel"):
            started, status = create_model(self.emulator, arguments, name, self.arn), "Succeeded"
        else:  # RegisterModel
            started, status = register_model(self.emulator, arguments, self.arn), "Succeeded"
        return {"StepStatus": status, "Metadata": started["metadata"], "_resource": started["resource"]}

    def _poll(self, name: str) -> bool:
        """Update a running job step; True if it failed."""
        entry = self.entries[name]
        kind, job = entry["_resource"]
        ended = job_outcome(self.emulator, kind, job)
        if ended is None:
            return False
        status, reason = ended
        entry.update(StepStatus="Failed" if status == "Stopped" and not self.stop_requested.is_set() else status,
                     EndTime=time.time())
        if reason:
            entry["FailureReason"] = reason
        self._save()
        return entry["StepStatus"] == "Failed"

    def _cache_hit(self, step: Step, digest: str, entry: dict[str, Any]) -> bool:
        """Reuse an earlier execution's successful step with identical evaluated arguments, if caching is on."""
        config = step.raw.get("CacheConfig") or {}
        if not config.get("Enabled"):
            return False
        oldest = time.time() - expire_seconds(config.get("ExpireAfter"))
        pipeline = self.record["_pipeline"]
        for record in reversed(self.emulator.state.all(KIND)):
            if record.get("_pipeline") != pipeline or record["PipelineExecutionArn"] == self.arn:
                continue
            for old in record.get("_steps") or []:
                if (old["StepName"] == step.name and old.get("_args_hash") == digest and old.get("_resource")
                        and old["StepStatus"] == "Succeeded" and old.get("EndTime", 0) >= oldest):
                    source = (old.get("CacheHitResult") or {}).get("SourcePipelineExecutionArn") \
                        or record["PipelineExecutionArn"]
                    entry.update(StepStatus="Succeeded", Metadata=old.get("Metadata"), _resource=old["_resource"],
                                 CacheHitResult={"SourcePipelineExecutionArn": source})
                    return True
        return False

    # ------------------------------------------------------------ expressions
    def _evaluator(self, definition: Definition, parameters: dict[str, Any], step: Step,
                   name: str) -> Evaluator:
        values = {n: parameters.get(n, p.get("DefaultValue")) for n, p in definition.parameters.items()}
        variables: dict[str, Any] = {
            "PipelineExecutionId": self.execution_id, "PipelineExecutionArn": self.arn,
            "PipelineName": self.record["_pipeline"], "PipelineArn": self.record["PipelineArn"],
            "StartDateTime": now_iso(self.record["CreationTime"]), "CurrentDateTime": now_iso(time.time())}
        if step.type == "Training":
            variables["TrainingJobName"] = name
        elif step.type == "Processing":
            variables["ProcessingJobName"] = name

        def step_properties(source: str) -> dict[str, Any]:
            entry = self.entries.get(source) or {}
            if entry.get("_type") == "Condition":
                return {"Outcome": entry["Metadata"]["Condition"]["Outcome"] == "True"}
            return properties(self.emulator, entry.get("_resource"))

        def property_file(source: str, file_name: str) -> str:
            declared = next(f for f in definition.steps[source].raw.get("PropertyFiles") or []
                            if f.get("PropertyFileName") == file_name)
            outputs = (step_properties(source).get("ProcessingOutputConfig") or {}).get("Outputs") or []
            output = next((o for o in outputs if o.get("OutputName") == declared.get("OutputName")), None)
            if output is None:
                raise StepError(f"Step {source} has no output {declared.get('OutputName')} for property file "
                                f"{file_name}.")
            return output["S3Output"]["S3Uri"].rstrip("/") + "/" + declared["FilePath"].lstrip("/")

        return Evaluator(values, variables, step_properties, property_file, self._read_s3)

    def _read_s3(self, uri: str) -> bytes:
        from .staging import StagingError, parse_s3_uri

        try:
            bucket, key = parse_s3_uri(uri)
            return self.emulator.s3.store.get_bytes(bucket, key)
        except StagingError as exc:
            raise StepError(str(exc)) from None
        except Exception:  # noqa: BLE001 - NoSuchKey/NoSuchBucket from the store
            raise StepError(f"Received an error while reading file {uri} from S3: NoSuchKey.") from None

    # ------------------------------------------------------------ record
    def _save(self) -> None:
        ordered = sorted(self.entries.values(), key=lambda e: e["StartTime"])
        self._set(_steps=ordered)

    def _stop_running(self) -> None:
        """A stop or a shutdown: stop every running step's job, wait (bounded) for them, mark the steps."""
        for entry in self.entries.values():
            if entry["StepStatus"] in RUNNING and entry.get("_resource"):
                entry["StepStatus"] = "Stopping"
                stop_job(self.emulator, entry["_resource"][0], entry["_resource"][1], self.arn)
        self._save()
        deadline = time.time() + (SHUTDOWN_WAIT_SECONDS if self.abort_reason else STOP_WAIT_SECONDS)
        while time.time() < deadline and any(
                job_outcome(self.emulator, *e["_resource"]) is None
                for e in self.entries.values() if e["StepStatus"] == "Stopping"):
            time.sleep(POLL_SECONDS)
        for entry in self.entries.values():
            if entry["StepStatus"] == "Stopping":
                entry["EndTime"] = time.time()
                if self.abort_reason:
                    entry.update(StepStatus="Failed", FailureReason=self.abort_reason)
                else:
                    entry["StepStatus"] = "Stopped"
        self._save()

    def stopped(self) -> Outcome:
        return Outcome.failed(self.abort_reason) if self.abort_reason else Outcome("Stopped")

    @classmethod
    def recover(cls, emulator: Any) -> None:
        """Executions a previous daemon left running end ``Failed`` saying so, and so do their running steps
        (their jobs are ended by their own kinds' recovery)."""
        for record in emulator.state.all(KIND):
            if record.get("PipelineExecutionStatus") not in ("Executing", "Stopping"):
                continue
            steps = record.get("_steps") or []
            for entry in steps:
                if entry["StepStatus"] in RUNNING:
                    entry.update(StepStatus="Failed", FailureReason=DAEMON_DIED, EndTime=time.time())
            name = f"{record['_pipeline']}/{record['PipelineExecutionArn'].rsplit('/', 1)[-1]}"
            transition(emulator.state, KIND, name, "Failed", _steps=steps, FailureReason=DAEMON_DIED)
            log.warning("pipeline execution %s was running when the emulator stopped; marked Failed", name)
