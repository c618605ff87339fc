"""Tuning: the Immersion Day's hyperparameter tuning job, 20 Bayesian trials 2 at a time, through the emulator.

``CreateHyperParameterTuningJob`` on the prepared Bank Marketing data (the same CSV files and static
hyperparameters as ``bench_training``), timed until ``DescribeHyperParameterTuningJob`` says
``Completed`` (polled every 50 ms). Reported: the wall time, the best trial's validation AUC, how
busy the two trial "slots" were (sum of trial durations / (2 × wall)) and the gaps between a trial
ending and the next one starting, which is the tuner's own overhead. Each measured tuning job is
followed by the same one with the emulator's warm workers off (every trial a cold ``python``), so
that what they save is measured under the same machine noise.

    .venv/bin/python benchmarks/bench_tuning.py [--repeats N]     # standalone, with its own emulator

``run(emulator, repeats)`` is the entry point for ``benchmarks/run.py``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
for entry in (str(HERE), str(HERE.parent)):
    if entry not in sys.path:
        sys.path.insert(0, entry)

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
REGION = "us-east-1"
BUCKET = "bench-tuning"
STATIC = {"gamma": "4", "subsample": "0.8", "objective": "binary:logistic", "num_round": "100", "eval_metric": "auc"}
#: the ranges of the Immersion Day's tuning lab
RANGES = {
    "ContinuousParameterRanges": [{"Name": "eta", "MinValue": "0", "MaxValue": "1"},
                                  {"Name": "alpha", "MinValue": "0", "MaxValue": "2"}],
    "IntegerParameterRanges": [{"Name": "min_child_weight", "MinValue": "1", "MaxValue": "10"},
                               {"Name": "max_depth", "MinValue": "1", "MaxValue": "10"}],
}
TRIALS, PARALLEL = 20, 2
TARGET_SECONDS = 60.0
POLL_SECONDS = 0.05


def _channel(name: str, uri: str) -> dict[str, Any]:
    return {"ChannelName": name, "ContentType": "text/csv",
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri,
                                            "S3DataDistributionType": "FullyReplicated"}}}


def _clients(emulator: Any) -> tuple[Any, Any]:
    import boto3

    session = boto3.Session(aws_access_key_id=emulator.credentials.access_key,
                            aws_secret_access_key=emulator.credentials.secret_key, region_name=REGION)
    return (session.client("s3", endpoint_url=emulator.endpoint_url),
            session.client("sagemaker", endpoint_url=emulator.endpoint_url))


def upload(s3: Any, data: Any) -> tuple[str, str]:
    if BUCKET not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket=BUCKET)
    s3.upload_file(str(data.train_csv), BUCKET, "bank/train/train.csv")
    s3.upload_file(str(data.validation_csv), BUCKET, "bank/validation/validation.csv")
    return f"s3://{BUCKET}/bank/train/", f"s3://{BUCKET}/bank/validation/"


def tuning_job(sm: Any, channels: tuple[str, str], role_arn: str) -> dict[str, Any]:
    """One tuning job, timed from ``CreateHyperParameterTuningJob`` to a ``Completed`` description."""
    name = f"bench-tune-{uuid.uuid4().hex[:8]}"
    start = time.perf_counter()
    sm.create_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name,
        HyperParameterTuningJobConfig={
            "Strategy": "Bayesian", "ParameterRanges": RANGES,
            "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "validation:auc"},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": TRIALS, "MaxParallelTrainingJobs": PARALLEL},
        },
        TrainingJobDefinition={
            "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
            "RoleArn": role_arn, "StaticHyperParameters": STATIC,
            "InputDataConfig": [_channel("train", channels[0]), _channel("validation", channels[1])],
            "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/output"},
            "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 10},
            "StoppingCondition": {"MaxRuntimeInSeconds": 600},
        },
    )
    while True:
        job = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
        if job["HyperParameterTuningJobStatus"] not in ("InProgress", "Stopping"):
            break
        time.sleep(POLL_SECONDS)
    wall = time.perf_counter() - start
    if job["HyperParameterTuningJobStatus"] != "Completed":
        raise RuntimeError(f"tuning job {name} ended {job['HyperParameterTuningJobStatus']}: "
                           f"{job.get('FailureReason')}")
    trials: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"HyperParameterTuningJobName": name, "MaxResults": 100}
    while True:
        page = sm.list_training_jobs_for_hyper_parameter_tuning_job(**kwargs)
        trials += page["TrainingJobSummaries"]
        if not page.get("NextToken"):
            break
        kwargs["NextToken"] = page["NextToken"]
    spans = sorted((t["TrainingStartTime"].timestamp(), t["TrainingEndTime"].timestamp()) for t in trials)
    durations = [end - begin for begin, end in spans]
    ends = sorted(end for _, end in spans)
    # each start after the first PARALLEL waited for a slot: the slot freed at the k-th earliest end
    gaps = [begin - ends[i] for i, (begin, _) in enumerate(spans[PARALLEL:])]
    best = job["BestTrainingJob"]
    return {
        "name": name, "wall": wall, "trials": len(trials), "counters": job["TrainingJobStatusCounters"],
        "best_validation_auc": best["FinalHyperParameterTuningJobObjectiveMetric"]["Value"],
        "best_hyperparameters": best["TunedHyperParameters"],
        "trial_seconds": summary(durations), "slot_utilisation": sum(durations) / (PARALLEL * wall),
        "launch_gap_seconds": summary(gaps) if gaps else None,
    }


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def run(emulator: Any, repeats: int, log: Any = print) -> dict[str, Any]:
    """Prepare the bank data, then run ``repeats`` tuning jobs (a first one as warm-up, not counted)."""
    import bank_data

    from sagemaker_emulator.config import ROLE_ARN

    s3, sm = _clients(emulator)
    with tempfile.TemporaryDirectory(prefix="bench-tuning-") as tmp:
        data = bank_data.prepare(Path(tmp))
        channels = upload(s3, data)
    log("tuning: warm-up job (not counted) ...")
    warm = tuning_job(sm, channels, ROLE_ARN)
    runs, cold_runs = [], []
    for i in range(repeats):
        runs.append(tuning_job(sm, channels, ROLE_ARN))
        emulator.warm.enabled = False  # the same tuning job with cold trial processes, interleaved
        try:
            cold_runs.append(tuning_job(sm, channels, ROLE_ARN))
        finally:
            emulator.warm.enabled = True
        log(f"tuning: repeat {i + 1}/{repeats}: {runs[-1]['wall']:.1f} s (warm workers off: "
            f"{cold_runs[-1]['wall']:.1f} s), best validation AUC {runs[-1]['best_validation_auc']:.5f}")
    wall = summary([r["wall"] for r in runs])
    return {
        "dataset": {"rows": data.rows, "feature_columns": data.feature_columns},
        "strategy": "Bayesian", "trials": TRIALS, "parallel": PARALLEL, "static_hyperparameters": STATIC,
        "ranges": RANGES, "wall": wall, "warm_up": warm["wall"],
        "wall_cold": summary([r["wall"] for r in cold_runs]),
        "trial_seconds_cold_median": statistics.median(r["trial_seconds"]["median"] for r in cold_runs),
        "best_validation_auc": summary([r["best_validation_auc"] for r in runs]),
        "trial_seconds_median": statistics.median(r["trial_seconds"]["median"] for r in runs),
        "slot_utilisation_median": statistics.median(r["slot_utilisation"] for r in runs),
        "target_seconds": TARGET_SECONDS, "target_met": wall["median"] < TARGET_SECONDS,
        "runs": runs,
    }


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json
    import os
    import shutil

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=1, help="measured tuning jobs (default 1)")
    args = parser.parse_args(argv)
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    # trials run in the image's environment: reuse the one the tests build (a first build costs minutes)
    os.environ.setdefault("SAGEMAKER_EMULATOR_IMAGE_ENV_DIR", str(HERE.parent / "build" / "image-envs"))
    from sagemaker_emulator.app import Emulator

    root = Path(tempfile.mkdtemp(prefix="sagemaker-emulator-bench-tuning-"))
    try:
        emu = Emulator(root / "state")
        emu.start("127.0.0.1", 0)
        emu.warm_up()  # as the daemon does (sagemaker-emulator serve/start)
        try:
            result = run(emu, args.repeats)
        finally:
            emu.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    shown = {k: v for k, v in result.items() if k not in ("runs", "ranges", "static_hyperparameters")}
    print(json.dumps(shown, indent=2, default=str))
    verdict = "met" if result["target_met"] else "MISSED"
    print(f"\n{TRIALS} Bayesian trials, {PARALLEL} in parallel: {result['wall']['median']:.1f} s (median), "
          f"target < {TARGET_SECONDS:.0f} s: {verdict}; best validation AUC "
          f"{result['best_validation_auc']['median']:.5f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
