"""Monitoring schedules' time: SageMaker's schedule expressions, analysis offsets and the emulator's clock.

SageMaker accepts four shapes of ``ScheduleExpression`` for a monitoring
schedule: ``cron(0 * ? * * *)`` (hourly), ``cron(0 H ? * * *)`` (daily at
H:00 UTC), ``cron(0 H/X ? * * *)`` (every X hours from H) and ``NOW`` (one
execution, at once, over ``DataAnalysisStartTime``..``DataAnalysisEndTime``
given as negative ISO-8601 offsets such as ``-PT1H``).

A learner should not wait an hour for "the next hourly execution", so a
schedule runs on an emulated clock: from the moment the schedule was created
(its anchor) an emulated hour lasts ``hour_seconds`` real seconds; before
the anchor emulated and real time are the same. The first hourly execution
analyses the real traffic of the hour before the schedule existed plus what
came since (``monitor_job.real_window``), wherever the real hour boundaries
fall: traffic sent just before one is not lost to a schedule created just after.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

HOUR = 3600.0
_CRON = re.compile(r"^cron\((?P<body>[^)]*)\)$")
_OFFSET = re.compile(r"^-P(?:(?P<days>\d+)D)?(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?$")
EXPRESSIONS_HELP = ("Use cron(0 * ? * * *) (hourly), cron(0 H ? * * *) (daily at hour H UTC), cron(0 H/X ? * * *) "
                    "(every X hours from hour H) or NOW (one execution, with DataAnalysisStartTime and "
                    "DataAnalysisEndTime).")


class ScheduleError(ValueError):
    """A schedule expression or offset SageMaker would refuse; the message says which forms it takes."""


def parse_offset(text: str, name: str) -> float:
    """``-PT1H`` → -3600.0 seconds; SageMaker takes only negative (past) offsets, ``-PT0H`` meaning now."""
    match = _OFFSET.match(text or "")
    if match is None or not any(match.groupdict().values()):
        raise ScheduleError(f"{name} '{text}' is not a valid offset: use a negative ISO-8601 duration such as "
                            f"-PT1H (one hour before the scheduled time) or -PT0H.")
    parts = {k: int(v or 0) for k, v in match.groupdict().items()}
    return -float(parts["days"] * 86400 + parts["hours"] * 3600 + parts["minutes"] * 60 + parts["seconds"])


@dataclass(frozen=True)
class Schedule:
    """A parsed ``ScheduleExpression``: ``hours`` it fires at (minute 0, UTC), or one-time (``NOW``)."""

    expression: str
    hours: frozenset[int]
    once: bool = False

    @classmethod
    def parse(cls, expression: str) -> Schedule:
        text = expression.strip()
        if text == "NOW":
            return cls(text, frozenset(), once=True)
        match = _CRON.match(text)
        fields = match.group("body").split() if match else []
        if len(fields) != 6:
            raise ScheduleError(f"Schedule expression '{expression}' is not valid. {EXPRESSIONS_HELP}")
        minute, hour, day, month, weekday, year = fields
        if minute != "0" or day not in ("?", "*") or month != "*" or weekday not in ("*", "?") or year != "*":
            raise ScheduleError(f"Schedule expression '{expression}' is not valid: monitoring schedules run at "
                                f"minute 0 of an hour, every day. {EXPRESSIONS_HELP}")
        return cls(text, _hours(hour, expression))

    def fire_times(self, after: float, until: float) -> list[float]:
        """Emulated times (epoch seconds, on the hour) in (after, until] at which the schedule fires."""
        start = (int(after // HOUR) + 1) * int(HOUR)
        return [float(t) for t in range(start, int(until) + 1, int(HOUR))
                if dt.datetime.fromtimestamp(t, dt.UTC).hour in self.hours]


def _hours(field: str, expression: str) -> frozenset[int]:
    try:
        if field == "*":
            return frozenset(range(24))
        if "/" in field:
            first, step = field.split("/")
            start, every = (0 if first == "*" else int(first)), int(step)
            if not 0 <= start < 24 or not 1 <= every < 24:
                raise ValueError(field)
            return frozenset(range(start, 24, every))
        hours = frozenset(int(part) for part in field.split(","))
        if not all(0 <= h < 24 for h in hours):
            raise ValueError(field)
        return hours
    except ValueError:
        raise ScheduleError(f"Schedule expression '{expression}' has an invalid hour field '{field}'. "
                            f"{EXPRESSIONS_HELP}") from None


@dataclass(frozen=True)
class Clock:
    """Emulated time of one schedule: real time until ``anchor``, then one hour per ``hour_seconds``."""

    anchor: float
    hour_seconds: float = HOUR

    @property
    def speed(self) -> float:
        return HOUR / self.hour_seconds

    def emulated(self, real: float) -> float:
        return real if real <= self.anchor else self.anchor + (real - self.anchor) * self.speed

    def real(self, emulated: float) -> float:
        return emulated if emulated <= self.anchor else self.anchor + (emulated - self.anchor) / self.speed

    def describe(self) -> str:
        if self.hour_seconds == HOUR:
            return "real time (1 emulated hour = 3600 s)"
        return f"1 emulated hour = {self.hour_seconds:g} s (time compressed {self.speed:g}x)"


def iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
