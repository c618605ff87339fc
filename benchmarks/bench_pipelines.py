"""Pipelines: what the orchestration of a 5-step pipeline costs beyond the jobs it runs.

The pipeline is the Immersion Day's shape: prepare (processing) → train (built-in XGBoost) →
evaluate (processing, a property file) → condition on the AUC → register the model. Timed from
``StartPipelineExecution`` to ``DescribePipelineExecution`` saying ``Succeeded`` (polled every 20 ms);
the jobs' own time is the sum, over the three jobs (they run one after the other), of
``CreationTime`` → ``ProcessingEndTime``/``TrainingEndTime`` from their Describe calls. The rest —
evaluating expressions, reading the property file, launching and noticing the end of each step,
the condition and the registration — is the overhead (target ≤ 1 s). Also reported: the gaps between a
step's end and the next step's start.

    .venv/bin/python benchmarks/bench_pipelines.py [--repeats N]     # standalone, with its own emulator
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

BUCKET = "bench-pipelines"
SKLEARN = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
XGBOOST = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
PREPARE = """\
import os
import numpy as np
rng = np.random.default_rng(0)
x = rng.normal(size=(2000, 5))
y = (x[:, 0] + 0.5 * rng.normal(size=2000) > 0).astype(int)
np.savetxt("/opt/ml/processing/train/train.csv", np.column_stack([y, x]), delimiter=",", fmt="%.5f")
"""
EVALUATE = """\
import json
json.dump({"metrics": {"auc": {"value": 0.9}}}, open("/opt/ml/processing/evaluation/evaluation.json", "w"))
"""
POLL_SECONDS = 0.02


def _processing(role: str, script: str, output: str, uri: str, inputs: list[Any]) -> dict[str, Any]:
    code = {"InputName": "code", "S3Input": {"S3Uri": f"s3://{BUCKET}/code/{script}", "S3DataType": "S3Prefix",
                                             "LocalPath": "/opt/ml/processing/input/code", "S3InputMode": "File"}}
    return {"RoleArn": role,
            "ProcessingResources": {"ClusterConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1,
                                                      "VolumeSizeInGB": 30}},
            "AppSpecification": {"ImageUri": SKLEARN,
                                 "ContainerEntrypoint": ["python3", f"/opt/ml/processing/input/code/{script}"]},
            "ProcessingInputs": [code, *inputs],
            "ProcessingOutputConfig": {"Outputs": [{"OutputName": output, "S3Output": {
                "S3Uri": uri, "LocalPath": f"/opt/ml/processing/{output}", "S3UploadMode": "EndOfJob"}}]}}


def definition(role: str) -> dict[str, Any]:
    model = {"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}
    steps = [
        {"Name": "Prepare", "Type": "Processing",
         "Arguments": _processing(role, "prepare.py", "train", f"s3://{BUCKET}/prepared", [])},
        {"Name": "Train", "Type": "Training", "Arguments": {
            "RoleArn": role, "AlgorithmSpecification": {"TrainingImage": XGBOOST, "TrainingInputMode": "File"},
            "HyperParameters": {"objective": "binary:logistic", "num_round": "20"},
            "InputDataConfig": [{"ChannelName": "train", "ContentType": "text/csv", "DataSource": {"S3DataSource": {
                "S3DataType": "S3Prefix",
                "S3Uri": {"Get": "Steps.Prepare.ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri"}}}}],
            "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/model"},
            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30},
            "StoppingCondition": {"MaxRuntimeInSeconds": 600}}},
        {"Name": "Evaluate", "Type": "Processing",
         "PropertyFiles": [{"PropertyFileName": "Report", "OutputName": "evaluation", "FilePath": "evaluation.json"}],
         "Arguments": _processing(role, "evaluate.py", "evaluation", f"s3://{BUCKET}/evaluation", [
             {"InputName": "model", "S3Input": {"S3Uri": model, "S3DataType": "S3Prefix", "S3InputMode": "File",
                                                "LocalPath": "/opt/ml/processing/model"}}])},
        {"Name": "CheckAuc", "Type": "Condition", "Arguments": {
            "Conditions": [{"Type": "GreaterThanOrEqualTo", "RightValue": 0.7, "LeftValue": {"Std:JsonGet": {
                "PropertyFile": {"Get": "Steps.Evaluate.PropertyFiles.Report"}, "Path": "metrics.auc.value"}}}],
            "IfSteps": [{"Name": "Register", "Type": "RegisterModel", "Arguments": {
                "ModelPackageGroupName": "bench-pipeline-models",
                "InferenceSpecification": {"Containers": [{"Image": XGBOOST, "ModelDataUrl": model}],
                                           "SupportedContentTypes": ["text/csv"],
                                           "SupportedResponseMIMETypes": ["text/csv"]}}}],
            "ElseSteps": []}}]
    return {"Version": "2020-12-01", "Parameters": [], "Steps": steps}


def execution(sm: Any, pipeline: str) -> dict[str, Any]:
    """One execution: its wall time, the jobs' time and the gaps between steps."""
    start = time.time()
    arn = sm.start_pipeline_execution(PipelineName=pipeline)["PipelineExecutionArn"]
    while True:
        described = sm.describe_pipeline_execution(PipelineExecutionArn=arn)
        if described["PipelineExecutionStatus"] not in ("Executing", "Stopping"):
            break
        time.sleep(POLL_SECONDS)
    wall = time.time() - start
    if described["PipelineExecutionStatus"] != "Succeeded":
        raise RuntimeError(f"{arn} ended {described['PipelineExecutionStatus']}: {described.get('FailureReason')}")
    steps = sorted(sm.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"],
                   key=lambda s: s["StartTime"])
    jobs = 0.0
    for step in steps:
        metadata = step["Metadata"]
        if "TrainingJob" in metadata:
            job = sm.describe_training_job(TrainingJobName=metadata["TrainingJob"]["Arn"].rsplit("/", 1)[1])
            jobs += job["TrainingEndTime"].timestamp() - job["CreationTime"].timestamp()
        elif "ProcessingJob" in metadata:
            job = sm.describe_processing_job(ProcessingJobName=metadata["ProcessingJob"]["Arn"].rsplit("/", 1)[1])
            jobs += job["ProcessingEndTime"].timestamp() - job["CreationTime"].timestamp()
    gaps = [b["StartTime"].timestamp() - a["EndTime"].timestamp() for a, b in zip(steps, steps[1:], strict=False)]
    return {"wall": wall, "jobs": jobs, "overhead": wall - jobs, "steps": len(steps), "gaps": gaps}


def run(emulator: Any, repeats: int, log: Any = print) -> dict[str, Any]:
    import boto3

    from sagemaker_emulator.config import ROLE_ARN

    session = boto3.Session(aws_access_key_id=emulator.credentials.access_key,
                            aws_secret_access_key=emulator.credentials.secret_key, region_name="us-east-1")
    s3, sm = (session.client(n, endpoint_url=emulator.endpoint_url) for n in ("s3", "sagemaker"))
    s3.create_bucket(Bucket=BUCKET)
    for script, body in (("prepare.py", PREPARE), ("evaluate.py", EVALUATE)):
        s3.put_object(Bucket=BUCKET, Key=f"code/{script}", Body=body.encode())
    pipeline = f"bench-{uuid.uuid4().hex[:6]}"
    sm.create_pipeline(PipelineName=pipeline, RoleArn=ROLE_ARN, PipelineDefinition=json.dumps(definition(ROLE_ARN)))
    log("pipelines: warm-up execution (not counted) ...")
    execution(sm, pipeline)
    runs = [execution(sm, pipeline) for _ in range(repeats)]
    overheads = [r["overhead"] for r in runs]
    gaps = [g for r in runs for g in r["gaps"]]
    return {"runs": runs, "overhead_median": statistics.median(overheads), "overhead_max": max(overheads),
            "wall_median": statistics.median(r["wall"] for r in runs),
            "jobs_median": statistics.median(r["jobs"] for r in runs),
            "gap_median": statistics.median(gaps), "gap_max": max(gaps), "target_seconds": 1.0}


def main(argv: list[str] | None = None) -> int:
    from standalone import with_emulator

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    result = with_emulator(lambda emulator: run(emulator, args.repeats), "bench-pipelines-")
    print(summary_line(result, args.repeats))
    return 0


def summary_line(result: dict[str, Any], repeats: int) -> str:
    return (f"Pipelines: 5-step pipeline, {repeats} executions: wall {result['wall_median']:.2f} s (median), jobs "
            f"{result['jobs_median']:.2f} s, orchestration overhead {result['overhead_median']:.3f} s median / "
            f"{result['overhead_max']:.3f} s max (target ≤ 1 s); step-to-step gap "
            f"{result['gap_median'] * 1000:.0f} ms median / {result['gap_max'] * 1000:.0f} ms max")


if __name__ == "__main__":
    sys.exit(main())
