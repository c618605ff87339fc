"""Status changes of job records, with SageMaker's secondary-status history.

Every transition goes through ``transition`` so that ``LastModifiedTime``,
the open ``SecondaryStatusTransitions`` entry and the primary status always
move together, exactly as ``DescribeTrainingJob`` shows them on AWS.
"""

from __future__ import annotations

import time
from typing import Any

STATUS_FIELD = {"TrainingJob": "TrainingJobStatus", "ProcessingJob": "ProcessingJobStatus",
                "TransformJob": "TransformJobStatus", "HyperParameterTuningJob": "HyperParameterTuningJobStatus"}
TERMINAL = {"Completed", "Failed", "Stopped"}

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


def transition(
    state: Any, kind: str, name: str, status: str | None = None, secondary: str | None = None,
    message: str | None = None, **fields: Any,
) -> dict[str, Any] | None:
    """Move a job to ``status``/``secondary`` and merge ``fields``; returns the new record."""
    with state.transaction() as conn:
        import json

        row = conn.execute("SELECT data FROM resources WHERE kind=? AND name=?", (kind, name)).fetchone()
        if row is None:
            return None
        record = json.loads(row[0])
        now = time.time()
        current = record.get(STATUS_FIELD[kind])
        if current in TERMINAL and status not in (None, current):
            return record  # a finished job never changes status again (e.g. stop racing completion)
        if status is not None:
            record[STATUS_FIELD[kind]] = status
        if secondary is not None and kind == "TrainingJob" and record.get("SecondaryStatus") != secondary:
            history = record.setdefault("SecondaryStatusTransitions", [])
            if history and "EndTime" not in history[-1]:
                history[-1]["EndTime"] = now
            entry: dict[str, Any] = {"Status": secondary, "StartTime": now,
                                     "StatusMessage": message or MESSAGES.get(secondary, secondary)}
            if secondary in TERMINAL or secondary == "MaxRuntimeExceeded":
                entry["EndTime"] = now
            history.append(entry)
            record["SecondaryStatus"] = secondary
        for key, value in fields.items():
            if value is None:
                record.pop(key, None)
            else:
                record[key] = value
        record["LastModifiedTime"] = now
        conn.execute("UPDATE resources SET data=? WHERE kind=? AND name=?", (json.dumps(record), kind, name))
        return record
