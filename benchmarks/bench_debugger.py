"""Debugger: what the hook and the rule evaluations add to the Immersion Day XGBoost job's wall time.

Interleaved, ``--repeats`` times, on the bank data (``bank_data.prepare``):
(a) the job of ``bench_training`` (100 rounds) without Debugger;
(b) the same job with ``DebugHookConfig`` (``metrics`` every 10 rounds, the hook's default) and the
    rules ``LossNotDecreasing``, ``Overfit`` and ``Overtraining``.
Reported: Create → ``Completed`` of each, and for (b) Create → every ``DebugRuleEvaluationStatuses``
entry final. The issue's target: the rules end ≤ 1 s after a plain job would have completed.

    .venv/bin/python benchmarks/bench_debugger.py [--repeats N]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import bank_data  # noqa: E402
from bench_training import HYPERPARAMETERS, IMAGE, upload  # noqa: E402

RULES_IMAGE = "503895931360.dkr.ecr.us-east-1.amazonaws.com/sagemaker-debugger-rules:latest"
RULES = ("LossNotDecreasing", "Overfit", "Overtraining")
POLL_SECONDS = 0.02
FINAL = ("NoIssuesFound", "IssuesFound", "Error", "Stopped")


def request(name: str, train: str, validation: str, debug: bool) -> dict[str, Any]:
    channels = [{"ChannelName": c, "ContentType": "text/csv",
                 "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri}}}
                for c, uri in (("train", train), ("validation", validation))]
    extra: dict[str, Any] = {}
    if debug:
        extra = {"DebugHookConfig": {"S3OutputPath": "s3://bench-training/debug"},
                 "DebugRuleConfigurations": [
                     {"RuleConfigurationName": r, "RuleEvaluatorImage": RULES_IMAGE,
                      "RuleParameters": {"rule_to_invoke": r}} for r in RULES]}
    return {"TrainingJobName": name, "RoleArn": "arn:aws:iam::123456789012:role/SageMakerRole",
            "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
            "InputDataConfig": channels, "HyperParameters": HYPERPARAMETERS,
            "OutputDataConfig": {"S3OutputPath": "s3://bench-training/output"},
            "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 5},
            "StoppingCondition": {"MaxRuntimeInSeconds": 600}, **extra}


def timed(sm: Any, body: dict[str, Any]) -> dict[str, float]:
    start = time.perf_counter()
    sm.create_training_job(**body)
    marks: dict[str, float] = {}
    while True:
        job = sm.describe_training_job(TrainingJobName=body["TrainingJobName"])
        now = time.perf_counter() - start
        if "completed" not in marks and job["TrainingJobStatus"] in ("Completed", "Failed", "Stopped"):
            assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
            marks["completed"] = now
        rules = job.get("DebugRuleEvaluationStatuses") or []
        if "completed" in marks and all(r["RuleEvaluationStatus"] in FINAL for r in rules):
            marks["rules_done"] = now
            marks["statuses"] = {r["RuleConfigurationName"]: r["RuleEvaluationStatus"] for r in rules}
            return marks
        if now > 300:
            raise TimeoutError(f"{body['TrainingJobName']} or its rules still running after 300 s")
        time.sleep(POLL_SECONDS)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import boto3

    from sagemaker_emulator.app import Emulator

    root = Path(tempfile.mkdtemp(prefix="bench-debugger-"))
    try:
        data = bank_data.prepare(root / "data")
        emu = Emulator(root / "state")
        emu.start("127.0.0.1", 0)
        emu.warm_up()
        session = boto3.Session(aws_access_key_id=emu.credentials.access_key,
                                aws_secret_access_key=emu.credentials.secret_key, region_name="us-east-1")
        sm = session.client("sagemaker", endpoint_url=emu.endpoint_url)
        train, validation = upload(session.client("s3", endpoint_url=emu.endpoint_url), data)
        plain, debug = [], []
        for i in range(args.repeats):
            tag = uuid.uuid4().hex[:6]
            plain.append(timed(sm, request(f"bench-plain-{tag}", train, validation, False)))
            debug.append(timed(sm, request(f"bench-debug-{tag}", train, validation, True)))
            print(f"run {i + 1}: plain {plain[-1]['completed']:.2f} s; with Debugger completed "
                  f"{debug[-1]['completed']:.2f} s, rules done {debug[-1]['rules_done']:.2f} s "
                  f"{debug[-1]['statuses']}", flush=True)
        base = statistics.median(r["completed"] for r in plain)
        hooked = statistics.median(r["completed"] for r in debug)
        rules = statistics.median(r["rules_done"] for r in debug)
        print(f"median: plain job {base:.2f} s; with hook {hooked:.2f} s (+{hooked - base:.2f} s); "
              f"rules final {rules:.2f} s (+{rules - base:.2f} s over the plain job; target ≤ +1 s)")
        emu.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
