"""Status changes of job records, with SageMaker's secondary-status history.

Every transition goes through ``transition`` so that ``LastModifiedTime``,
the open ``SecondaryStatusTransitions`` entry and the primary status always
move together, exactly as ``DescribeTrainingJob`` shows them on AWS. The
rules live here; the read-modify-write is ``State.modify``'s.
"""

from __future__ import annotations

import time
from typing import Any

from ..state import merge

TERMINAL = frozenset({"Completed", "Failed", "Stopped"})
#: SageMaker's limit on ``FailureReason`` (botocore's model says so): a longer one is cut, never refused
FAILURE_REASON_LIMIT = 1024

MESSAGES = {
    "Starting": "Launching requested ML instances (local processes)",
    "Downloading": "Downloading input data from the local S3 store",
    "Training": "Training image download completed. Training in progress.",
    "Uploading": "Uploading generated training model",
    "Completed": "Training job completed",
    "Failed": "Training job failed",
    "Stopping": "Stopping the training job",
    "Stopped": "Training job stopped",
    "MaxRuntimeExceeded": "Training job ended because it exceeded MaxRuntimeInSeconds",
}


def status_field(kind: str) -> str:
    """The field holding a resource's status: SageMaker names it ``<Kind>Status`` for every job kind
    (``TrainingJobStatus``, ``HyperParameterTuningJobStatus``, ``AutoMLJobStatus``, ``PipelineExecutionStatus``),
    so a rule, not a table that a new kind could forget to join."""
    return f"{kind}Status"


def failure_reason(text: str) -> str:
    """``text`` cut to SageMaker's ``FailureReason`` limit: the one place that limit is applied."""
    return text[:FAILURE_REASON_LIMIT]


def transition(
    state: Any, kind: str, name: str, status: str | None = None, secondary: str | None = None,
    message: str | None = None, **fields: Any,
) -> dict[str, Any] | None:
    """Move a job to ``status``/``secondary`` and merge ``fields``; returns the new record (None if missing).

    ``secondary`` is given only for kinds with SageMaker's ``SecondaryStatus`` history (training jobs).
    """
    if fields.get("FailureReason"):
        fields["FailureReason"] = failure_reason(fields["FailureReason"])

    def change(record: dict[str, Any]) -> None:
        current = record.get(status_field(kind))
        if current in TERMINAL and status not in (None, current):
            return  # a finished job never changes status again (e.g. stop racing completion)
        now = time.time()
        if status is not None:
            record[status_field(kind)] = status
        if secondary is not None and record.get("SecondaryStatus") != secondary:
            _open_secondary(record, secondary, message, now)
        merge(record, fields)
        record["LastModifiedTime"] = now

    return state.modify(kind, name, change)


def _open_secondary(record: dict[str, Any], secondary: str, message: str | None, now: float) -> None:
    """Close the open ``SecondaryStatusTransitions`` entry and open one for ``secondary``."""
    history = record.setdefault("SecondaryStatusTransitions", [])
    if history and "EndTime" not in history[-1]:
        history[-1]["EndTime"] = now
    entry: dict[str, Any] = {"Status": secondary, "StartTime": now,
                             "StatusMessage": message or MESSAGES.get(secondary, secondary)}
    if secondary in TERMINAL or secondary == "MaxRuntimeExceeded":
        entry["EndTime"] = now
    history.append(entry)
    record["SecondaryStatus"] = secondary
