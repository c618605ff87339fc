"""The ``sagemaker-debugger-rules`` image: evaluate one built-in rule on a training job's tensors as they arrive.

Run as the rule-evaluation processing job SageMaker starts beside a training job. Its environment
holds the rule's ``RuleParameters`` (``rule_to_invoke`` and the rule's own) and ``base_trial``, the
S3 location of the training job's ``debug-output``. It reads each new step as training saves it
and ends when the rule's condition is met (``RuleEvaluationConditionMet: …``, written to the job's
exit message, and the ``action_json`` actions taken: ``stoptraining`` stops the training job) or
when training has ended with every step evaluated. A bad configuration exits 1 with the reason as
the exit message. How the outcome becomes ``DebugRuleEvaluationStatuses`` is the runtime's
(``runtime/rules.py``).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from .report import CreateXgboostReport
from .rules import RULES, Rule, RuleConfigError
from .trial import Trial, store_for

ALL_RULES: dict[str, type[Rule]] = {**RULES, CreateXgboostReport.NAME: CreateXgboostReport}
POLL_SECONDS = 0.1
PARAMETER_ENV = "SM_RULE_PARAMETERS"


def _base() -> Path:
    return Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml"))


def _exit_message(text: str) -> None:
    path = _base() / "output" / "message"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text[:1024])


def _stop_training(action_json: str, rule: str) -> None:
    """smdebug's ``StopTrainingAction``: stop the InProgress training jobs whose name starts with the prefix."""
    import boto3

    try:
        actions = json.loads(action_json.lower())
    except json.JSONDecodeError:
        print(f"Action string {action_json!r} is not JSON; no action taken for rule {rule}", flush=True)
        return
    client = boto3.client("sagemaker", region_name=os.environ.get("AWS_REGION", "us-east-1"))
    for action in actions if isinstance(actions, list) else [actions]:
        if not isinstance(action, dict) or action.get("name") != "stoptraining":
            continue
        prefix = action.get("training_job_prefix")
        if not prefix:
            print("Action stoptraining requires 'training_job_prefix'", flush=True)
            continue
        jobs = client.list_training_jobs(NameContains=prefix, StatusEquals="InProgress")["TrainingJobSummaries"]
        for job in jobs:
            if job["TrainingJobName"].startswith(prefix):
                print(f"Rule {rule}: stopping training job {job['TrainingJobName']}", flush=True)
                client.stop_training_job(TrainingJobName=job["TrainingJobName"])


def evaluate(rule: Rule, trial: Trial, name: str) -> str | None:
    """Evaluate ``rule`` on every step until it fires (its message) or training has ended (None)."""
    while True:
        ended = trial.ended()  # read before the steps: a step saved before the end marker is never missed
        for step in trial.refresh():
            if step >= rule.start_step and rule.invoke(step):
                return f"RuleEvaluationConditionMet: Evaluation of the rule {name} at step {step} resulted in the " \
                       f"condition being met\n"
        if ended:
            if rule.finish():
                last = max(trial.steps(), default=0)
                return f"RuleEvaluationConditionMet: Evaluation of the rule {name} at step {last} resulted in the " \
                       f"condition being met\n"
            return None
        time.sleep(POLL_SECONDS)


def main() -> int:
    parameters = json.loads(os.environ.get(PARAMETER_ENV) or "{}")
    name = parameters.get("rule_to_invoke", "")
    base_trial = parameters.get("base_trial") or os.environ.get("base_trial", "")
    rule_class = ALL_RULES.get(name)
    if rule_class is None:
        _exit_message(f"ClientError: rule_to_invoke '{name}' is not a built-in rule of this image. Built-in rules: "
                      f"{', '.join(sorted(ALL_RULES))}.")
        return 1
    trial = Trial(store_for(base_trial))
    try:
        rule = rule_class(trial, parameters)
    except RuleConfigError as exc:
        _exit_message(f"ClientError: {exc}")
        return 1
    print(f"Started execution of rule {name} on {base_trial}", flush=True)
    message = evaluate(rule, trial, name)
    rule.report(_base() / "processing" / "output" / "rule")
    if message is None:
        print(f"Ended execution of rule {name}: no issues found", flush=True)
        return 0
    print(message.strip() + (f" ({rule.details})" if rule.details else ""), flush=True)
    _exit_message(message)
    if parameters.get("action_json"):
        _stop_training(parameters["action_json"], name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
