"""Schedule expressions, analysis offsets and the emulated clock of monitoring schedules (no emulator)."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from sagemaker_emulator.runtime.monitor_clock import Clock, Schedule, ScheduleError, parse_offset
from sagemaker_emulator.runtime.monitor_job import NoData


def at(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()


def hours(times: list[float]) -> list[str]:
    return [dt.datetime.fromtimestamp(t, dt.UTC).strftime("%d %H:%M") for t in times]


@pytest.mark.parametrize("expression,expected", [
    ("cron(0 * ? * * *)", ["02 06:00", "02 07:00", "02 08:00", "02 09:00"]),  # the SDK's hourly()
    ("cron(0 7 ? * * *)", ["02 07:00"]),  # daily(7)
    ("cron(0 1/3 ? * * *)", ["02 07:00"]),  # daily_every_x_hours(3, 1): 1, 4, 7, 10 …
    ("cron(0 6,9 ? * * *)", ["02 06:00", "02 09:00"]),
])
def test_fire_times(expression, expected):
    schedule = Schedule.parse(expression)
    assert hours(schedule.fire_times(at("2026-12-02T05:00:00"), at("2026-12-02T09:30:00"))) == expected


@pytest.mark.parametrize("expression", [
    "rate(1 hour)", "cron(15 * ? * * *)", "cron(0 24 ? * * *)", "cron(0 * 1 * ? *)", "cron(0 * ? * MON *)",
    "cron(0 */0 ? * * *)", "cron(0 * ? * *)", "now", "",
])
def test_refused_expressions(expression):
    with pytest.raises(ScheduleError):
        Schedule.parse(expression)


def test_now_is_one_time():
    assert Schedule.parse("NOW").once and not Schedule.parse("cron(0 * ? * * *)").once


@pytest.mark.parametrize("text,seconds", [("-PT1H", -3600.0), ("-PT0H", 0.0), ("-P1DT2H30M", -95400.0),
                                          ("-PT90S", -90.0)])
def test_offsets(text, seconds):
    assert parse_offset(text, "StartTimeOffset") == seconds


@pytest.mark.parametrize("text", ["PT1H", "-1H", "-P", "-PT", "", "-PT1.5H"])
def test_bad_offsets(text):
    with pytest.raises(ScheduleError):
        parse_offset(text, "StartTimeOffset")


def test_compressed_clock_maps_both_ways():
    anchor = at("2026-12-02T07:40:00")
    clock = Clock(anchor, hour_seconds=10)
    assert clock.emulated(anchor - 100) == anchor - 100  # before the anchor: real time
    assert clock.emulated(anchor + 10) == anchor + 3600
    assert clock.real(at("2026-12-02T08:00:00")) == pytest.approx(anchor + 20 * 60 / 360)
    assert clock.real(clock.emulated(anchor + 123.4)) == pytest.approx(anchor + 123.4)
    assert clock.describe() == "1 emulated hour = 10 s (time compressed 360x)"
    assert Clock(anchor).describe() == "real time (1 emulated hour = 3600 s)"


class _Store:
    """The S3 store as ``captured_inputs`` reads it: bucket and keys."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = keys

    def bucket_exists(self, bucket: str) -> bool:
        return bucket == "capture-bucket"

    def list_objects(self, bucket: str, prefix: str) -> list[SimpleNamespace]:
        return [SimpleNamespace(key=k) for k in self.keys if k.startswith(prefix)]


class _State:
    def __init__(self, records: dict[tuple[str, str], dict]) -> None:
        self.records = records

    def get(self, kind: str, name: str) -> dict | None:
        return self.records.get((kind, name))


def _schedule(expression: str, anchor: float) -> dict:
    arn = "arn:aws:sagemaker:us-east-1:123456789012:monitoring-schedule/s"
    return {"MonitoringScheduleName": "s", "MonitoringScheduleArn": arn,
            "MonitoringType": "DataQuality", "_clock": {"anchor": anchor, "hour_seconds": 10},
            "MonitoringScheduleConfig": {
                "ScheduleConfig": {"ScheduleExpression": expression},
                "MonitoringJobDefinition": {
                    "MonitoringAppSpecification": {"ImageUri": "analyzer"}, "RoleArn": "role",
                    "MonitoringInputs": [{"EndpointInput": {"EndpointName": "ep",
                                                            "LocalPath": "/opt/ml/processing/input"}}],
                    "MonitoringOutputConfig": {"MonitoringOutputs": [{"S3Output": {
                        "S3Uri": "s3://capture-bucket/reports", "LocalPath": "/opt/ml/processing/output"}}]},
                    "MonitoringResources": {"ClusterConfig": {"InstanceCount": 1}}}}}


def test_traffic_just_before_a_real_hour_boundary_reaches_the_first_execution():
    """The flake of lab 06's model-quality schedule, forced: requests captured at 10:59:58 (the hour-10 folder),
    the schedule created at 11:00:01. Its first execution (11:00-12:00 emulated) analyses them; the next
    one does not reach back before the schedule's creation."""
    from sagemaker_emulator.runtime.monitor_job import execution_request

    traffic, anchor = at("2026-12-02T10:59:58"), at("2026-12-02T11:00:01")
    emulator = SimpleNamespace(
        state=_State({("Endpoint", "ep"): {"EndpointConfigName": "cfg"},
                      ("EndpointConfig", "cfg"): {"DataCaptureConfig": {"DestinationS3Uri": "s3://capture-bucket/dc"}}}),
        s3=SimpleNamespace(store=_Store([f"dc/ep/AllTraffic/{dt.datetime.fromtimestamp(traffic, dt.UTC):%Y/%m/%d/%H}/"
                                         f"59-58-000-x.jsonl"])))
    schedule, clock = _schedule("cron(0 * ? * * *)", anchor), Clock(anchor, hour_seconds=10)
    first = Schedule.parse("cron(0 * ? * * *)").fire_times(clock.emulated(anchor), clock.emulated(anchor + 10))
    assert hours(first) == ["02 12:00"]
    request = execution_request(emulator, schedule, first[0], clock)
    env = request["Environment"]
    assert env["start_time"] <= "2026-12-02T10:59:58Z" < env["end_time"]  # the analyzer keeps the records
    assert env["start_time"] == "2026-12-02T10:00:01Z"  # the hour before the schedule was created
    assert [i["S3Input"]["S3Uri"] for i in request["ProcessingInputs"]] == [
        "s3://capture-bucket/dc/ep/AllTraffic/2026/12/02/10/"]
    later = clock.emulated(anchor) + 2 * 3600 - (clock.emulated(anchor) % 3600)  # 13:00 emulated
    with pytest.raises(NoData):  # no traffic since: the second window starts at 12:00 emulated, after the anchor
        execution_request(emulator, schedule, later, clock)
    with pytest.raises(NoData):  # a one-time schedule keeps its explicit window
        once = _schedule("NOW", anchor)
        once["MonitoringScheduleConfig"]["ScheduleConfig"].update(DataAnalysisStartTime="-PT1S",
                                                                  DataAnalysisEndTime="-PT0S")
        execution_request(emulator, once, anchor, clock)
