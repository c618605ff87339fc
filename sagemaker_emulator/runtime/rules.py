"""Debugger rule evaluations: the processing jobs SageMaker runs beside a training job, one per rule.

On SageMaker each ``DebugRuleConfigurations`` entry becomes a processing job named
``<job>-<rule name in lower case>-<8 hex>`` running the ``RuleEvaluatorImage``, with the training
job's ARN in its ``TrainingJobArn``, its logs in ``/aws/sagemaker/ProcessingJobs`` and its output
under the rule's ``S3OutputPath``. It starts with the training job and reads the tensors while they
are saved; the training job's ``DebugRuleEvaluationStatuses`` follow it: ``InProgress``, then
``IssuesFound`` (its exit message, ``RuleEvaluationConditionMet: …``, as ``StatusDetails``),
``NoIssuesFound``, ``Error`` (a failed evaluation, with its reason) or ``Stopped``.
"""

from __future__ import annotations

import json
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from .debug_output import debug_output_uri
from .job import DAEMON_DIED
from .processing import ProcessingRun

RULE_LOCAL_PATH = "/opt/ml/processing/output/rule"
RULE_ENTRYPOINT = ["python3", "-m", "sagemaker_emulator.images.debugger"]
PARAMETERS_ENV = "SM_RULE_PARAMETERS"


def rule_job_name(training: str, rule: str) -> str:
    """``<training job>-<rule>-<8 hex>``, the training job's part cut so the name fits 63 characters."""
    suffix = f"-{rule.lower()[:30]}-{secrets.token_hex(4)}"
    return training[:63 - len(suffix)] + suffix


def rule_job_record(training: dict[str, Any], config: dict[str, Any], name: str, arn: str) -> dict[str, Any]:
    """The rule's processing job, in ``DescribeProcessingJob`` shape."""
    job = training["TrainingJobName"]
    output = config.get("S3OutputPath") or (
        f"{training['OutputDataConfig']['S3OutputPath'].rstrip('/')}/{job}/rule-output")
    parameters = {**(config.get("RuleParameters") or {}), "base_trial": debug_output_uri(training)}
    now = time.time()
    return {
        "ProcessingJobName": name, "ProcessingJobArn": arn, "ProcessingJobStatus": "InProgress",
        "ProcessingInputs": [],
        "ProcessingOutputConfig": {"Outputs": [{"OutputName": "RuleOutput", "S3Output": {
            "S3Uri": output, "LocalPath": config.get("LocalPath") or RULE_LOCAL_PATH, "S3UploadMode": "EndOfJob"}}]},
        "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1,
                                                  "InstanceType": config.get("InstanceType") or "ml.m5.xlarge",
                                                  "VolumeSizeInGB": config.get("VolumeSizeInGB") or 30}},
        "StoppingCondition": {"MaxRuntimeInSeconds": 86400},
        "AppSpecification": {"ImageUri": config["RuleEvaluatorImage"]},
        "Environment": {PARAMETERS_ENV: json.dumps(parameters)},
        "RoleArn": training.get("RoleArn", ""), "TrainingJobArn": training["TrainingJobArn"],
        "CreationTime": now, "LastModifiedTime": now,
        "_TrainingJobName": job, "_RuleConfigurationName": config["RuleConfigurationName"],
    }


def start_rule_evaluations(emulator: Any, training: dict[str, Any]) -> None:
    """Start one processing job per rule and record its ARN in the training job's statuses."""
    configs = training.get("DebugRuleConfigurations") or []
    arns: dict[str, str] = {}
    for config in configs:
        name = rule_job_name(training["TrainingJobName"], config["RuleConfigurationName"])
        arn = training["TrainingJobArn"].split(":training-job/")[0] + f":processing-job/{name.lower()}"
        record = rule_job_record(training, config, name, arn)
        emulator.state.insert("ProcessingJob", name, arn, record["CreationTime"], record, {})
        arns[config["RuleConfigurationName"]] = arn
        emulator.jobs.start("ProcessingJob", name, runner=RuleEvaluationRun)

    def change(record: dict[str, Any]) -> None:
        for status in record.get("DebugRuleEvaluationStatuses") or []:
            if status["RuleConfigurationName"] in arns:
                status["RuleEvaluationJobArn"] = arns[status["RuleConfigurationName"]]
                status["LastModifiedTime"] = time.time()

    if arns:
        emulator.state.modify("TrainingJob", training["TrainingJobName"], change)


def evaluation_status(record: dict[str, Any]) -> tuple[str, str | None]:
    """``RuleEvaluationStatus`` and ``StatusDetails`` for a finished rule job."""
    status = record.get("ProcessingJobStatus")
    message = record.get("ExitMessage") or ""
    if status == "Completed":
        if message.startswith("RuleEvaluationConditionMet"):
            return "IssuesFound", message
        return "NoIssuesFound", None
    if status == "Stopped":
        return "Stopped", None
    return "Error", (message or record.get("FailureReason") or "").strip()[:1024] or None


def recover_rule_statuses(emulator: Any) -> None:
    """After a restart: rule evaluations a previous daemon left running end ``Error``, saying why.

    Their processing jobs are ended by ``ProcessingRun.recover``; this gives their training jobs the news.
    """
    for training in emulator.state.all("TrainingJob"):
        entries = training.get("DebugRuleEvaluationStatuses") or []
        if not any(entry.get("RuleEvaluationStatus") == "InProgress" for entry in entries):
            continue

        def change(record: dict[str, Any]) -> None:
            for entry in record.get("DebugRuleEvaluationStatuses") or []:
                if entry.get("RuleEvaluationStatus") == "InProgress":
                    entry.update(RuleEvaluationStatus="Error", StatusDetails=DAEMON_DIED, LastModifiedTime=time.time())

        emulator.state.modify("TrainingJob", training["TrainingJobName"], change)


class RuleEvaluationRun(ProcessingRun):
    """A rule's processing job: the rule evaluator image, then its outcome reported to the training job.

    It takes nothing from the local instance quota (``RESOURCES``): SageMaker runs built-in rules on
    instances of its own, free of charge, and here each is one small polling process.
    """

    RESOURCES = ()

    def hosts(self) -> list[str]:
        return ["algo-1"]

    def _command(self, base: Path) -> list[str]:
        if self.record["AppSpecification"].get("ContainerEntrypoint"):
            return super()._command(base)
        return [sys.executable, *RULE_ENTRYPOINT[1:]]

    def run(self) -> None:
        super().run()
        record = self.emulator.state.get(self.KIND, self.name) or self.record
        status, details = evaluation_status(record)
        rule = record.get("_RuleConfigurationName")

        def change(training: dict[str, Any]) -> None:
            for entry in training.get("DebugRuleEvaluationStatuses") or []:
                if entry["RuleConfigurationName"] == rule:
                    entry["RuleEvaluationStatus"] = status
                    entry.pop("StatusDetails", None)
                    if details:
                        entry["StatusDetails"] = details
                    entry["LastModifiedTime"] = time.time()

        try:
            self.emulator.state.modify("TrainingJob", record.get("_TrainingJobName", ""), change)
        except Exception:  # noqa: BLE001 - the state may be closed (shutdown); the rule job itself has ended
            pass
