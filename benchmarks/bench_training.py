"""Training: the Immersion Day XGBoost job through the emulator vs. the same training in-process.

(a) in-process: ``xgboost.DMatrix`` from the prepared CSV files + ``xgboost.train`` (train and
    validation evals, printing nothing), timed from the start of loading to the trained booster;
(b) emulator: ``CreateTrainingJob`` → ``DescribeTrainingJob`` says ``Completed`` (polled every
    20 ms), with the job's ``TrainingTimeInSeconds`` and a breakdown of where the wall time went,
    taken from the job's ``SecondaryStatusTransitions`` and the time stamps of its log events;
(c) the same job with the emulator's warm workers switched off (a cold ``python`` per job), so that
    what the warm workers save is measured under the same machine noise.

The three are interleaved (a, b, c, a, b, c, …) so that machine noise hits both alike. The interpreter
start-up and ``import xgboost`` cost that every job pays (it runs in a fresh process) is measured
separately with ``python -c``.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

from bank_data import Prepared

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
HYPERPARAMETERS = {
    "max_depth": "5", "eta": "0.2", "gamma": "4", "min_child_weight": "6", "subsample": "0.8",
    "objective": "binary:logistic", "num_round": "100", "eval_metric": "auc",
}
POLL_SECONDS = 0.02
#: what a job may cost beyond the training itself: Create → Completed seen minus in-process load + train
TARGET_OVERHEAD = 0.15
BUCKET = "bench-training"
LOG_GROUP = "/aws/sagemaker/TrainingJobs"
#: what a fresh job process pays before it can do any work: the bare interpreter, a plain
#: ``import xgboost``, and the algorithm's real entry point run on an empty ``/opt/ml`` (it imports
#: what a job imports, the way a job imports it, then stops at "Missing required hyperparameter")
STARTUP_COMMANDS = {
    "python -c pass": ["-c", "pass"],
    "python -c 'import xgboost'": ["-c", "import xgboost"],
    "algorithm entry point, empty /opt/ml": ["-m", "sagemaker_emulator.images.xgboost_algorithm", "train"],
}


def xgb_params() -> dict[str, Any]:
    params: dict[str, Any] = {k: v for k, v in HYPERPARAMETERS.items() if k != "num_round"}
    for key in ("max_depth", "min_child_weight"):
        params[key] = int(params[key])
    for key in ("eta", "gamma", "subsample"):
        params[key] = float(params[key])
    return params


def in_process(data: Prepared) -> dict[str, float]:
    """Load both CSV files and train, as a notebook would without the emulator."""
    import xgboost as xgb

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # XGBoost >= 3.1: "Text file input has been deprecated"
        cpu, start = time.process_time(), time.perf_counter()
        train = xgb.DMatrix(f"{data.train_csv}?format=csv&label_column=0")
        validation = xgb.DMatrix(f"{data.validation_csv}?format=csv&label_column=0")
        loaded = time.perf_counter()
        history: dict[str, Any] = {}
        xgb.train(xgb_params(), train, num_boost_round=int(HYPERPARAMETERS["num_round"]),
                  evals=[(train, "train"), (validation, "validation")], evals_result=history, verbose_eval=False)
        end = time.perf_counter()
        cpu = time.process_time() - cpu
    return {"wall": end - start, "load": loaded - start, "train": end - loaded, "cpu_seconds": cpu,
            "validation_auc": float(history["validation"]["auc"][-1])}


def upload(s3: Any, data: Prepared) -> tuple[str, str]:
    s3.create_bucket(Bucket=BUCKET)
    s3.upload_file(str(data.train_csv), BUCKET, "bank/train/train.csv")
    s3.upload_file(str(data.validation_csv), BUCKET, "bank/validation/validation.csv")
    return f"s3://{BUCKET}/bank/train/", f"s3://{BUCKET}/bank/validation/"


def _channel(name: str, uri: str) -> dict[str, Any]:
    return {"ChannelName": name, "ContentType": "text/csv",
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri,
                                            "S3DataDistributionType": "FullyReplicated"}}}


def _epoch(value: Any) -> float:
    return value.timestamp() if hasattr(value, "timestamp") else float(value)


def _log_marks(logs: Any, job: str) -> dict[str, float]:
    """Epoch seconds of the interesting log lines of the job's (single) stream."""
    streams = logs.describe_log_streams(logGroupName=LOG_GROUP, logStreamNamePrefix=f"{job}/")["logStreams"]
    if not streams:
        return {}
    events: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"logGroupName": LOG_GROUP, "logStreamName": streams[0]["logStreamName"],
                              "startFromHead": True}
    while True:
        page = logs.get_log_events(**kwargs)
        events += page["events"]
        if not page["events"] or page.get("nextForwardToken") in (None, kwargs.get("nextToken")):
            break
        kwargs["nextToken"] = page["nextForwardToken"]
    marks: dict[str, float] = {}
    metric_lines = [e for e in events if e["message"].startswith("[") and "#011" in e["message"]]
    # the emulator's own lines come first (the image environment's versions, then "Local emulator: running …");
    # the job's process writes everything after them
    started = next((i + 1 for i, e in enumerate(events) if e["message"].startswith("Local emulator:")), 0)
    for index, event in enumerate(events):
        text, stamp = event["message"], event["timestamp"] / 1000
        if "first_line" not in marks and index >= started:
            marks["first_line"] = stamp
        if "Train matrix has" in text:
            marks["data_loaded"] = stamp
    if metric_lines:
        marks["first_round"] = metric_lines[0]["timestamp"] / 1000
        marks["last_round"] = metric_lines[-1]["timestamp"] / 1000
    return marks


def emulator_job(sagemaker: Any, logs: Any, channels: tuple[str, str], role_arn: str,
                 warm: Any = None) -> dict[str, Any]:
    """One training job, timed from ``CreateTrainingJob`` to a ``Completed`` description.

    Its CPU time is that of the emulator's reaped children plus that of the processes its warm worker
    forked (``warm``, the emulator's ``WarmPool``): a forked job is the worker's child, not ours.
    """
    forked = warm.cpu_seconds() if warm is not None else 0.0
    name = f"bench-xgb-{uuid.uuid4().hex[:12]}"
    request = {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        "RoleArn": role_arn,
        "HyperParameters": HYPERPARAMETERS,
        "InputDataConfig": [_channel("train", channels[0]), _channel("validation", channels[1])],
        "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/output"},
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 10},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
    }
    calls: list[float] = []
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    created_epoch = time.time()
    start = time.perf_counter()
    sagemaker.create_training_job(**request)
    while True:
        before = time.perf_counter()
        job = sagemaker.describe_training_job(TrainingJobName=name)
        calls.append(time.perf_counter() - before)
        if job["TrainingJobStatus"] != "InProgress":
            break
        time.sleep(POLL_SECONDS)
    wall = time.perf_counter() - start
    seen_epoch = created_epoch + wall
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    job_cpu = (reaped.ru_utime - children.ru_utime) + (reaped.ru_stime - children.ru_stime)
    if warm is not None:
        job_cpu += _settled(warm.cpu_seconds) - forked
    if job["TrainingJobStatus"] != "Completed":
        raise RuntimeError(f"training job {name} ended {job['TrainingJobStatus']}: {job.get('FailureReason')}")

    transitions = {t["Status"]: _epoch(t["StartTime"]) for t in job.get("SecondaryStatusTransitions", [])}
    marks = _log_marks(logs, name)
    metrics = {m["MetricName"]: m["Value"] for m in job.get("FinalMetricDataList", [])}

    def span(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else b - a

    training, uploading, completed = (transitions.get(s) for s in ("Training", "Uploading", "Completed"))
    breakdown = {
        "create_to_Training": span(created_epoch, training),
        "Training_to_first_log_line": span(training, marks.get("first_line")),
        "first_log_line_to_data_loaded": span(marks.get("first_line"), marks.get("data_loaded")),
        "data_loaded_to_first_round": span(marks.get("data_loaded"), marks.get("first_round")),
        "boosting_rounds": span(marks.get("first_round"), marks.get("last_round")),
        "last_round_to_Uploading": span(marks.get("last_round"), uploading),
        "Uploading_to_Completed": span(uploading, completed),
        "Completed_to_client_sees_it": span(completed, seen_epoch),
        "Training_to_Uploading": span(training, uploading),
    }
    work = span(marks.get("first_line"), marks.get("last_round"))  # the job's own loading and training
    return {
        "name": name, "wall": wall, "training_time_in_seconds": job.get("TrainingTimeInSeconds"),
        "outside_training": None if work is None else wall - work,
        "validation_auc": metrics.get("validation:auc"), "job_process_cpu_seconds": job_cpu,
        "describe_calls": len(calls),
        "describe_call_median": statistics.median(calls), "breakdown": breakdown,
    }


def _settled(read: Any, wait: float = 1.0) -> float:
    """``read()`` once it stops changing: the exit report of a forked job may arrive just after Completed."""
    value, deadline = read(), time.monotonic() + wait
    while time.monotonic() < deadline:
        time.sleep(0.05)
        again = read()
        if again == value:
            return value
        value = again
    return value


def interpreter_startup(repeats: int, scratch: Path, warm: Any = None) -> dict[str, dict[str, float]]:
    """Wall time of fresh interpreters that only import what a training job imports first, and of the
    algorithm's entry point forked from the emulator's warm worker (``warm``, its ``WarmPool``)."""
    from sagemaker_emulator.runtime.container import process_environment

    scratch.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(scratch), "PYTHONDONTWRITEBYTECODE": "1"}
    out: dict[str, dict[str, float]] = {}
    for label, args in STARTUP_COMMANDS.items():
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            subprocess.run([sys.executable, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           check=False)
            times.append(time.perf_counter() - start)
        out[label] = summary(times)
    if warm is not None:
        command = [sys.executable, *STARTUP_COMMANDS["algorithm entry point, empty /opt/ml"]]
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            process = warm.launch(command, scratch, process_environment(env, str(scratch)))
            if process is None:
                break
            process.stdout.read()
            process.wait()
            times.append(time.perf_counter() - start)
        if times:
            out["the same, forked from the warm worker"] = summary(times)
    return out


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def run(emu: Any, make_client: Any, data: Prepared, repeats: int, log: Any = print) -> dict[str, Any]:
    from sagemaker_emulator.config import ROLE_ARN

    s3, sagemaker, logs = make_client("s3"), make_client("sagemaker"), make_client("logs")
    begin = time.perf_counter()
    channels = upload(s3, data)
    upload_seconds = time.perf_counter() - begin

    # The emulator's warm-up job runs first, before this process has imported XGBoost, so that it
    # shows what the first job after an emulator start costs (reported, not counted).
    log("training: warm-up (not counted) ...")
    pool = emu.warm
    warm_b = emulator_job(sagemaker, logs, channels, ROLE_ARN, pool)
    warm_a = in_process(data)
    runs_a, runs_b, runs_c = [], [], []
    for i in range(repeats):
        runs_a.append(in_process(data))
        runs_b.append(emulator_job(sagemaker, logs, channels, ROLE_ARN, pool))
        pool.enabled = False  # (c): the same job started cold, as before warm workers, interleaved with (b)
        try:
            runs_c.append(emulator_job(sagemaker, logs, channels, ROLE_ARN, pool))
        finally:
            pool.enabled = True
        log(f"training: repeat {i + 1}/{repeats}: in-process {runs_a[-1]['wall']:.3f} s, "
            f"emulator job {runs_b[-1]['wall']:.3f} s, cold job {runs_c[-1]['wall']:.3f} s")
    log("training: interpreter start-up ...")
    startup = interpreter_startup(repeats, data.train_csv.parent / "empty-opt-ml", pool)

    a = summary([r["wall"] for r in runs_a])
    b = summary([r["wall"] for r in runs_b])
    c = summary([r["wall"] for r in runs_c])
    breakdown, breakdown_c = _breakdown(runs_b), _breakdown(runs_c)
    auc_a = runs_a[-1]["validation_auc"]
    auc_b = runs_b[-1]["validation_auc"]
    return {
        "dataset": {"source": str(data.source), "rows": data.rows, "feature_columns": data.feature_columns,
                    "train_csv_bytes": data.train_csv.stat().st_size,
                    "validation_csv_bytes": data.validation_csv.stat().st_size},
        "hyperparameters": HYPERPARAMETERS,
        "upload_seconds": upload_seconds,
        "in_process": {**a, "load": summary([r["load"] for r in runs_a]),
                       "cpu_seconds": summary([r["cpu_seconds"] for r in runs_a]),
                       "train": summary([r["train"] for r in runs_a]), "warm_up": warm_a["wall"]},
        "emulator": {**b, "warm_up": warm_b["wall"], "warm_up_breakdown": warm_b["breakdown"],
                     "job_process_cpu_seconds": summary([r["job_process_cpu_seconds"] for r in runs_b]),
                     "training_time_in_seconds": [r["training_time_in_seconds"] for r in runs_b],
                     "describe_call_median": statistics.median(r["describe_call_median"] for r in runs_b),
                     "describe_calls_median": statistics.median(r["describe_calls"] for r in runs_b),
                     "breakdown": breakdown},
        "outside_training": summary([r["outside_training"] for r in runs_b if r["outside_training"] is not None]),
        "outside_training_cold": summary([r["outside_training"] for r in runs_c
                                          if r["outside_training"] is not None]),
        "emulator_cold": {**c, "breakdown": breakdown_c,
                          "job_process_cpu_seconds": summary([r["job_process_cpu_seconds"] for r in runs_c])},
        "overhead_median": b["median"] - a["median"],
        "overhead_cold_median": c["median"] - a["median"],
        "target_overhead": TARGET_OVERHEAD,
        "target_met": b["median"] - a["median"] <= TARGET_OVERHEAD,
        "validation_auc": {"in_process": auc_a, "emulator": auc_b,
                           "match": auc_b is not None and abs(round(auc_a, 5) - auc_b) < 1e-9,
                           "all_in_process": sorted({round(r["validation_auc"], 5) for r in runs_a}),
                           "all_emulator": sorted({r["validation_auc"] for r in runs_b})},
        "interpreter_startup": startup,
        "runs": {"in_process": runs_a, "emulator": runs_b, "emulator_cold": runs_c},
    }


def _breakdown(runs: list[dict[str, Any]]) -> dict[str, dict[str, float] | None]:
    out: dict[str, dict[str, float] | None] = {}
    for key in runs[0]["breakdown"]:
        values = [r["breakdown"][key] for r in runs if r["breakdown"][key] is not None]
        out[key] = summary(values) if values else None
    return out
