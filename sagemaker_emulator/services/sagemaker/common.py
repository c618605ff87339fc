"""What every SageMaker resource family shares: ARNs, errors, tags, the local instance quota, job records.

Each family (training, processing, hosting, tuning, transform, tags, and the
coming ones) is a class deriving from ``SageMakerBase`` with only its own
operations; ``SageMaker`` in ``__init__`` combines them into the service.
"""

from __future__ import annotations

import threading
from typing import Any

from ...protocol.errors import ServiceError, invalid
from ...runtime.container import container_path
from ..base import Service
from ..context import Context
from ..listing import list_records

#: how many local "instances" may run at once, across all jobs (the local account's service quota)
MAX_INSTANCES = 8
#: the job kinds that occupy local instances, and so count against ``MAX_INSTANCES``
INSTANCE_KINDS = ("TrainingJob", "ProcessingJob", "TransformJob")


def resource_arn(ctx: Context, kind: str, name: str) -> str:
    """SageMaker's ARNs carry the name in lower case."""
    return f"arn:aws:sagemaker:{ctx.region}:{ctx.account_id}:{kind}/{name.lower()}"


def tag_dict(tags: list[dict[str, str]] | None) -> dict[str, str]:
    """``[{"Key": k, "Value": v}]`` → ``{k: v}``: stored with the resource in one transaction."""
    return {t["Key"]: t.get("Value") or "" for t in tags or []}


def check_channels(channels: list[dict[str, Any]] | None, where: str = "InputDataConfig") -> None:
    """Channel names are unique, and each is a directory name: ``/opt/ml/input/data/<ChannelName>``.

    The model's pattern (``[A-Za-z0-9\\.\\-_]+``) lets ``.`` and ``..`` through; as directory names they
    would put a channel's files into ``/opt/ml/input`` itself (over the job's configuration).
    """
    names = [c["ChannelName"] for c in channels or []]
    if len(set(names)) != len(names):
        raise invalid(f"Channel names must be unique within {where}.")
    for name in names:
        if name in (".", ".."):
            raise invalid(f"The channel name '{name}' in {where} is not a valid directory name; use letters, "
                          "digits, '.', '-' or '_'.")


def check_checkpoint(config: dict[str, Any] | None) -> None:
    """``CheckpointConfig.LocalPath``: an absolute path the job's "container" has, i.e. under ``/opt/ml/``."""
    local = (config or {}).get("LocalPath")
    if local is not None and container_path(local) is None:
        raise invalid(f"CheckpointConfig.LocalPath '{local[:256]}' must be an absolute path under /opt/ml/ "
                      "(the local emulator maps only /opt/ml).")


class SageMakerBase(Service):
    """The SageMaker service's state and the steps its resource families share."""

    name = "sagemaker"

    def __init__(self, emulator: Any) -> None:
        super().__init__(emulator)
        # Admission to the local instance quota: checking the free instances and starting the job that takes
        # them is one step, so concurrent creates can never admit more than MAX_INSTANCES between them.
        self.admission = threading.RLock()

    def _get(self, kind: str, name: str) -> dict[str, Any]:
        """A job's record; a missing one is ``ValidationException`` "Requested resource not found.", which is
        what SageMaker answers for Describe/Stop of a job that does not exist (and what botocore's waiters
        expect)."""
        record = self._find(kind, name)
        if record is None:
            raise invalid("Requested resource not found.")
        return record

    def _find(self, kind: str, name: str) -> dict[str, Any] | None:
        """A record by name, matched without regard to case as SageMaker does: its ARNs carry names in lower
        case, and clients cut names out of them (the SDK's ``PipelineExecution.result()`` does)."""
        record = self.emulator.state.get(kind, name)
        if record is None:
            record = next((r for r in self.emulator.state.all(kind) if r[f"{kind}Name"].lower() == name.lower()), None)
        return record

    def _admit_job(self, kind: str, label: str, record: dict[str, Any], tags: list[dict[str, str]] | None,
                   instance_type: str, count: int, usage: str = "local job") -> None:
        """Check the quota, record the job with its tags (one transaction) and start it, as one step."""
        name, job_arn = record[f"{kind}Name"], record[f"{kind}Arn"]
        with self.admission:
            self._check_capacity(instance_type, count, usage)
            if not self.emulator.state.insert(kind, name, job_arn, record["CreationTime"], record, tag_dict(tags)):
                existing = self.emulator.state.get(kind, name) or {}
                raise ServiceError(
                    "ResourceInUse",
                    f"{label} job names must be unique within an AWS account and region, and a {label.lower()} "
                    f"job with this name already exists ({existing.get(f'{kind}Arn', job_arn)})",
                )
            self.emulator.jobs.start(kind, name)

    def _list(self, kind: str, params: dict[str, Any], result: str, fields: tuple[str, ...],
              status_field: str = "") -> dict[str, Any]:
        """A List* answer: ``fields`` of each record, filtered, sorted and paged as SageMaker does."""
        items, token = list_records(
            self.emulator.state.all(kind), params, name_field=f"{kind}Name", status_field=status_field,
            summary=lambda r: {k: r[k] for k in fields if k in r},
        )
        return {result: items, "NextToken": token}

    def _check_capacity(self, instance_type: str, count: int, usage: str = "local job") -> None:
        """One quota for every job kind that occupies local instances (training, processing, transform).

        Call it holding ``self.admission`` up to the job's ``jobs.start``: that is what makes it atomic.
        """
        in_use = sum(run.instance_count for kind in INSTANCE_KINDS for run in self.emulator.jobs.running(kind))
        if in_use + count > MAX_INSTANCES:
            raise ServiceError(
                "ResourceLimitExceeded",
                f"The account-level service limit '{instance_type} for {usage} usage' is {MAX_INSTANCES} "
                f"Instances, with current utilization of {in_use} Instances and a request delta of {count} "
                "Instances. Wait for running jobs to finish or stop some.",
            )

    def _stop_job(self, kind: str, name: str, record: dict[str, Any], finished: str) -> dict[str, Any]:
        """Stop a job: ``Stopping`` now, ``Stopped`` when its run ends (at once when nothing runs any more)."""
        from ...runtime.manager import RUNNERS
        from ...runtime.records import TERMINAL, status_field, transition

        name = record[f"{kind}Name"]  # its own spelling: the caller's may differ in case
        status = record[status_field(kind)]
        if status in TERMINAL:
            raise invalid(finished.format(name=name, status=status))
        runner = RUNNERS[kind]
        transition(self.emulator.state, kind, name, "Stopping", "Stopping" if runner.SECONDARY_STATUSES else None)
        if not self.emulator.jobs.stop(kind, name):  # no run behind it (it just ended): nothing left to stop
            runner.end_record(self.emulator.state, name, "Stopped")
        return {}
