"""Model Monitor's control plane: job definitions, monitoring schedules and their executions.

Job definitions (data quality, model quality) are stored as ``Describe*``
returns them. A schedule is created ``Pending`` and becomes ``Scheduled``
when the scheduler (``runtime.monitoring``) takes it up; Stop/Start move it to
``Stopped``/``Scheduled``. Executions are records the scheduler writes (one
per schedule and scheduled hour, never two) and keeps in step with the
processing job that runs each one.

Where local time differs: a schedule runs on an emulated clock where an hour
lasts ``SAGEMAKER_EMULATOR_MONITORING_HOUR_SECONDS`` seconds (60 unless set),
or the value of the schedule's tag ``sagemaker-emulator:hour-seconds``; the
emulator states the clock in the tag ``sagemaker-emulator:clock`` of the
schedule and in each execution's processing job.
"""

from __future__ import annotations

import os
import time
from typing import Any

from ...protocol.errors import ServiceError, invalid
from ...protocol.values import parse_timestamp
from ...runtime.monitor_clock import HOUR, Clock, Schedule, ScheduleError, parse_offset
from ...runtime.monitoring import executions_where
from ..context import Context
from ..listing import list_records
from .common import SageMakerBase, resource_arn, tag_dict

HOUR_SECONDS_ENV = "SAGEMAKER_EMULATOR_MONITORING_HOUR_SECONDS"
DEFAULT_HOUR_SECONDS = 60.0
HOUR_SECONDS_TAG = "sagemaker-emulator:hour-seconds"
CLOCK_TAG = "sagemaker-emulator:clock"
#: job definition kinds: the record kind, its ARN resource type, its field prefix, its label in messages
DEFINITIONS = {
    "DataQuality": ("DataQualityJobDefinition", "data-quality-job-definition", "data quality"),
    "ModelQuality": ("ModelQualityJobDefinition", "model-quality-job-definition", "model quality"),
}
SCHEDULE = "MonitoringSchedule"
EXECUTION = "MonitoringExecution"


def not_found(message: str) -> ServiceError:
    return ServiceError("ResourceNotFound", message, 400)


def hour_seconds(tags: dict[str, str]) -> float:
    """The schedule's emulated hour in real seconds: its tag, else the emulator's setting, else 60."""
    for text, where in ((tags.get(HOUR_SECONDS_TAG), f"tag {HOUR_SECONDS_TAG}"),
                        (os.environ.get(HOUR_SECONDS_ENV), HOUR_SECONDS_ENV)):
        if text:
            try:
                value = float(text)
            except ValueError:
                value = 0.0
            if not 0.5 <= value <= HOUR:
                raise invalid(f"{where} must be a number of seconds between 0.5 and 3600, got '{text}'.")
            return value
    return DEFAULT_HOUR_SECONDS


def job_input(definition: dict[str, Any], kind: str) -> dict[str, Any]:
    """``EndpointInput``/``BatchTransformInput`` of a named definition (``<Kind>JobInput``) or inline one."""
    if f"{kind}JobInput" in definition:
        return definition[f"{kind}JobInput"]
    inputs = definition.get("MonitoringInputs") or [{}]
    return inputs[0]


class MonitoringOperations(SageMakerBase):
    # ------------------------------------------------------------ job definitions
    def _check_job_input(self, ctx: Context, source: dict[str, Any]) -> str | None:
        """The endpoint a monitoring input names must exist and capture its data; returns its name."""
        endpoint = (source.get("EndpointInput") or {}).get("EndpointName")
        if not endpoint:
            if not source.get("BatchTransformInput"):
                raise invalid("The job input must have an EndpointInput or a BatchTransformInput.")
            return None
        record = self.emulator.state.get("Endpoint", endpoint)
        if record is None:
            raise invalid(f"Could not find endpoint \"{resource_arn(ctx, 'endpoint', endpoint)}\".")
        config = self.emulator.state.get("EndpointConfig", record["EndpointConfigName"]) or {}
        capture = config.get("DataCaptureConfig") or {}
        if not capture or not capture.get("EnableCapture", True):
            raise invalid(f"Endpoint {endpoint} does not have data capture enabled: Model Monitor analyzes the "
                          f"endpoint's captured data. Deploy it with a DataCaptureConfig (EnableCapture=True).")
        return endpoint

    def _create_definition(self, ctx: Context, params: dict[str, Any], kind: str) -> dict[str, Any]:
        record_kind, arn_kind, label = DEFINITIONS[kind]
        name = params["JobDefinitionName"]
        self._check_job_input(ctx, params[f"{kind}JobInput"])
        arn = resource_arn(ctx, arn_kind, name)
        record = {**{k: v for k, v in params.items() if k != "Tags"}, "JobDefinitionArn": arn,
                  "CreationTime": time.time()}
        record.setdefault("StoppingCondition", {"MaxRuntimeInSeconds": 3600})
        if not self.emulator.state.insert(record_kind, name, arn, record["CreationTime"], record,
                                          tag_dict(params.get("Tags"))):
            raise ServiceError("ResourceInUse", f"A {label} job definition named {name} already exists ({arn}).")
        return {"JobDefinitionArn": arn}

    def _definition(self, name: str, kind: str) -> dict[str, Any]:
        record_kind, _, label = DEFINITIONS[kind]
        record = self.emulator.state.get(record_kind, name)
        if record is None:
            raise not_found(f"Could not find {label} job definition {name}.")
        return record

    def _delete_definition(self, name: str, kind: str) -> dict[str, Any]:
        self._definition(name, kind)
        users = [s["MonitoringScheduleName"] for s in self.emulator.state.all(SCHEDULE)
                 if s["MonitoringScheduleConfig"].get("MonitoringJobDefinitionName") == name]
        if users:
            raise ServiceError("ResourceInUse", f"Job definition {name} is used by monitoring schedule "
                                                f"{users[0]}; delete the schedule first.")
        self.emulator.state.delete(DEFINITIONS[kind][0], name)
        return {}

    def _list_definitions(self, params: dict[str, Any], kind: str) -> dict[str, Any]:
        records = self.emulator.state.all(DEFINITIONS[kind][0])
        if params.get("EndpointName"):
            records = [r for r in records
                       if (job_input(r, kind).get("EndpointInput") or {}).get("EndpointName") == params["EndpointName"]]
        items, token = list_records(
            records, params, name_field="JobDefinitionName", status_field="",
            sort_fields={"Name": "JobDefinitionName"},
            summary=lambda r: {"MonitoringJobDefinitionName": r["JobDefinitionName"],
                               "MonitoringJobDefinitionArn": r["JobDefinitionArn"], "CreationTime": r["CreationTime"],
                               "EndpointName": (job_input(r, kind).get("EndpointInput") or {}).get("EndpointName", "")})
        return {"JobDefinitionSummaries": items, "NextToken": token}

    def CreateDataQualityJobDefinition(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        return self._create_definition(ctx, params, "DataQuality")

    def DescribeDataQualityJobDefinition(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        return self._definition(params["JobDefinitionName"], "DataQuality")

    def DeleteDataQualityJobDefinition(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        return self._delete_definition(params["JobDefinitionName"], "DataQuality")

    def ListDataQualityJobDefinitions(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        return self._list_definitions(params, "DataQuality")

    def CreateModelQualityJobDefinition(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        return self._create_definition(ctx, params, "ModelQuality")

    def DescribeModelQualityJobDefinition(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        return self._definition(params["JobDefinitionName"], "ModelQuality")

    def DeleteModelQualityJobDefinition(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        return self._delete_definition(params["JobDefinitionName"], "ModelQuality")

    def ListModelQualityJobDefinitions(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        return self._list_definitions(params, "ModelQuality")

    # ------------------------------------------------------------ schedules
    def _schedule_fields(self, ctx: Context, config: dict[str, Any]) -> dict[str, Any]:
        """Check a ``MonitoringScheduleConfig``; the fields it gives the schedule (type, endpoint)."""
        schedule = config.get("ScheduleConfig")
        if not schedule:
            raise invalid("MonitoringScheduleConfig.ScheduleConfig is required.")
        try:
            parsed = Schedule.parse(schedule["ScheduleExpression"])
            if parsed.once:
                for key in ("DataAnalysisStartTime", "DataAnalysisEndTime"):
                    if not schedule.get(key):
                        raise ScheduleError(f"A NOW schedule needs ScheduleConfig.{key} (e.g. -PT1H and -PT0H).")
                    parse_offset(schedule[key], key)
            elif schedule.get("DataAnalysisStartTime") or schedule.get("DataAnalysisEndTime"):
                raise ScheduleError("DataAnalysisStartTime and DataAnalysisEndTime apply only to NOW schedules.")
        except ScheduleError as exc:
            raise invalid(str(exc)) from None
        name = config.get("MonitoringJobDefinitionName")
        if name:
            kind = config.get("MonitoringType") or "DataQuality"
            if kind not in DEFINITIONS:
                raise invalid(f"MonitoringType {kind} is not provided by the local emulator "
                              f"(it provides {', '.join(DEFINITIONS)}).")
            definition = self.emulator.state.get(DEFINITIONS[kind][0], name)
            if definition is None:
                raise invalid(f"Could not find {DEFINITIONS[kind][2]} job definition {name}.")
        elif config.get("MonitoringJobDefinition"):
            kind, definition = "DataQuality", config["MonitoringJobDefinition"]
            if config.get("MonitoringType") not in (None, "DataQuality"):
                raise invalid("An inline MonitoringJobDefinition is a DataQuality definition.")
        else:
            raise invalid("MonitoringScheduleConfig needs MonitoringJobDefinitionName (with MonitoringType) or "
                          "MonitoringJobDefinition.")
        endpoint = self._check_job_input(ctx, job_input(definition, kind))
        return {"MonitoringType": kind, **({"EndpointName": endpoint} if endpoint else {})}

    def _schedule(self, name: str) -> dict[str, Any]:
        record = self.emulator.state.get(SCHEDULE, name)
        if record is None:
            raise not_found(f"Could not find monitoring schedule {name}.")
        return record

    def CreateMonitoringSchedule(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        name, config = params["MonitoringScheduleName"], params["MonitoringScheduleConfig"]
        fields = self._schedule_fields(ctx, config)
        tags = tag_dict(params.get("Tags"))
        clock = Clock(time.time(), hour_seconds(tags))
        tags.setdefault(CLOCK_TAG, clock.describe())
        arn = resource_arn(ctx, "monitoring-schedule", name)
        record = {"MonitoringScheduleArn": arn, "MonitoringScheduleName": name, "MonitoringScheduleStatus": "Pending",
                  "CreationTime": clock.anchor, "LastModifiedTime": clock.anchor, "MonitoringScheduleConfig": config,
                  **fields, "_clock": {"anchor": clock.anchor, "hour_seconds": clock.hour_seconds}}
        if not self.emulator.state.insert(SCHEDULE, name, arn, clock.anchor, record, tags):
            raise ServiceError("ResourceInUse", f"Monitoring schedule {arn} already exists.")
        self.emulator.monitoring.wake()
        return {"MonitoringScheduleArn": arn}

    def DescribeMonitoringSchedule(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        record = self._schedule(params["MonitoringScheduleName"])
        latest = self._executions(record["MonitoringScheduleName"])
        if latest:
            record["LastMonitoringExecutionSummary"] = latest[-1]
        return record

    def UpdateMonitoringSchedule(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        name = params["MonitoringScheduleName"]
        record = self._schedule(name)
        fields = self._schedule_fields(ctx, params["MonitoringScheduleConfig"])
        self.emulator.state.update(SCHEDULE, name, MonitoringScheduleConfig=params["MonitoringScheduleConfig"],
                                   LastModifiedTime=time.time(), **fields)
        self.emulator.monitoring.wake()
        return {"MonitoringScheduleArn": record["MonitoringScheduleArn"]}

    def StopMonitoringSchedule(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        self._schedule(params["MonitoringScheduleName"])
        self.emulator.state.update(SCHEDULE, params["MonitoringScheduleName"], MonitoringScheduleStatus="Stopped",
                                   LastModifiedTime=time.time())
        return {}

    def StartMonitoringSchedule(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        record = self._schedule(params["MonitoringScheduleName"])
        if record["MonitoringScheduleStatus"] != "Scheduled":
            # a restarted schedule does not catch up on the hours it was stopped
            self.emulator.state.update(SCHEDULE, params["MonitoringScheduleName"], MonitoringScheduleStatus="Scheduled",
                                       LastModifiedTime=time.time(), _resumed=time.time())
        self.emulator.monitoring.wake()
        return {}

    def DeleteMonitoringSchedule(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        name = params["MonitoringScheduleName"]
        self._schedule(name)
        with self.emulator.monitoring.lock:  # never half-way through creating one of its executions
            for execution in executions_where(self.emulator.state, "MonitoringScheduleName", (name,)):
                self.emulator.state.delete(EXECUTION, execution["_name"])
            self.emulator.state.delete(SCHEDULE, name)
        return {}

    def ListMonitoringSchedules(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        records = self.emulator.state.all(SCHEDULE)
        for key, field in (("EndpointName", "EndpointName"), ("MonitoringTypeEquals", "MonitoringType")):
            if params.get(key):
                records = [r for r in records if r.get(field) == params[key]]
        if params.get("MonitoringJobDefinitionName"):
            records = [r for r in records if r["MonitoringScheduleConfig"].get("MonitoringJobDefinitionName")
                       == params["MonitoringJobDefinitionName"]]
        fields = ("MonitoringScheduleName", "MonitoringScheduleArn", "CreationTime", "LastModifiedTime",
                  "MonitoringScheduleStatus", "EndpointName", "MonitoringType")
        items, token = list_records(
            records, params, name_field="MonitoringScheduleName", status_field="MonitoringScheduleStatus",
            summary=lambda r: {**{k: r[k] for k in fields if k in r}, **(
                {"MonitoringJobDefinitionName": r["MonitoringScheduleConfig"]["MonitoringJobDefinitionName"]}
                if r["MonitoringScheduleConfig"].get("MonitoringJobDefinitionName") else {})})
        return {"MonitoringScheduleSummaries": items, "NextToken": token}

    # ------------------------------------------------------------ executions
    def _executions(self, schedule: str) -> list[dict[str, Any]]:
        """A schedule's executions as summaries, oldest scheduled first."""
        records = executions_where(self.emulator.state, "MonitoringScheduleName", (schedule,))
        return [_summary(r) for r in sorted(records, key=lambda r: r["ScheduledTime"])]

    def ListMonitoringExecutions(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        records = self.emulator.state.all(EXECUTION)
        for key, field in (("MonitoringScheduleName", "MonitoringScheduleName"), ("EndpointName", "EndpointName"),
                           ("MonitoringJobDefinitionName", "MonitoringJobDefinitionName"),
                           ("MonitoringTypeEquals", "MonitoringType")):
            if params.get(key):
                records = [r for r in records if r.get(field) == params[key]]
        for key, after in (("ScheduledTimeAfter", True), ("ScheduledTimeBefore", False)):
            if params.get(key) is not None:
                bound = parse_timestamp(params[key]).timestamp()
                records = [r for r in records if (r["ScheduledTime"] > bound) == after]
        items, token = list_records(
            records, params, name_field="MonitoringScheduleName", status_field="MonitoringExecutionStatus",
            sort_fields={"ScheduledTime": "ScheduledTime"}, summary=_summary)
        return {"MonitoringExecutionSummaries": items, "NextToken": token}


def _summary(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if not k.startswith("_")}
