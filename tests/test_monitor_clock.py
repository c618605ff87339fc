"""Schedule expressions, analysis offsets and the emulated clock of monitoring schedules (no emulator)."""

from __future__ import annotations

import datetime as dt

import pytest

from sagemaker_emulator.runtime.monitor_clock import Clock, Schedule, ScheduleError, parse_offset


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
