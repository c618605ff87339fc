"""Hyperparameter tuning jobs end to end: boto3 and the genuine SDK V3 ``HyperparameterTuner`` as clients.

Every trial is a real local training job of the built-in XGBoost algorithm on a few hundred synthetic
rows. The tests check what a learner looks at: ``DescribeHyperParameterTuningJob`` (status, counters,
best job), ``ListTrainingJobsForHyperParameterTuningJob``, the trials' own descriptions, and the SDK's
``best_training_job()`` and ``analytics().dataframe()``.
"""

from __future__ import annotations

import io
import re
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import numpy as np
import pytest
from botocore.exceptions import ClientError
from jobs_common import ROLE, TUNING, XGBOOST_IMAGE

from sagemaker_emulator.app import Emulator

pytestmark = pytest.mark.slow  # real training jobs; the whole file takes about a minute and a half

REGION = "us-east-1"
RUN = uuid.uuid4().hex[:5]
STATIC = {"objective": "binary:logistic", "num_round": "15", "eval_metric": "auc"}
RANGES = {
    "ContinuousParameterRanges": [{"Name": "eta", "MinValue": "0.05", "MaxValue": "0.5", "ScalingType": "Logarithmic"}],
    "IntegerParameterRanges": [{"Name": "max_depth", "MinValue": "1", "MaxValue": "5", "ScalingType": "Linear"}],
}


# --------------------------------------------------------------------------- helpers


def tuning_name(key: str) -> str:
    """≤ 32 characters, as SageMaker requires; unique per run."""
    return f"t{RUN}-{key}-{uuid.uuid4().hex[:4]}"[:32]


def rows(seed: int, n: int) -> bytes:
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, 5))
    labels = (features[:, 0] + 0.5 * features[:, 1] + rng.normal(scale=0.5, size=n) > 0).astype(int)
    buf = io.StringIO()
    np.savetxt(buf, np.column_stack([labels, features]), delimiter=",", fmt="%.6g")
    return buf.getvalue().encode()


def channel(name: str, uri: str) -> dict[str, Any]:
    return {"ChannelName": name, "ContentType": "text/csv",
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri,
                                            "S3DataDistributionType": "FullyReplicated"}}}


def definition(data: dict[str, str], static: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "AlgorithmSpecification": {"TrainingImage": XGBOOST_IMAGE, "TrainingInputMode": "File"},
        "RoleArn": ROLE,
        "StaticHyperParameters": dict(STATIC if static is None else static),
        "InputDataConfig": [channel("train", data["train"]), channel("validation", data["validation"])],
        "OutputDataConfig": {"S3OutputPath": data["output"]},
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 10},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
        **extra,
    }


def config(strategy: str = "Bayesian", jobs: int | None = 6, parallel: int = 2, ranges: dict | None = None,
           metric: str = "validation:auc", kind: str = "Maximize", **extra: Any) -> dict[str, Any]:
    limits: dict[str, Any] = {"MaxParallelTrainingJobs": parallel}
    if jobs is not None:
        limits["MaxNumberOfTrainingJobs"] = jobs
    return {"Strategy": strategy, "ResourceLimits": limits, "ParameterRanges": ranges or RANGES,
            "HyperParameterTuningJobObjective": {"Type": kind, "MetricName": metric}, **extra}


def trials(sm: Any, name: str, **kwargs: Any) -> list[dict[str, Any]]:
    """Every trial, following NextToken."""
    out: list[dict[str, Any]] = []
    args: dict[str, Any] = {"HyperParameterTuningJobName": name, **kwargs}
    while True:
        page = sm.list_training_jobs_for_hyper_parameter_tuning_job(**args)
        out += page["TrainingJobSummaries"]
        if not page.get("NextToken"):
            return out
        args["NextToken"] = page["NextToken"]


def value(summary: dict[str, Any]) -> float:
    return summary["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]


def last_round(logs: Any, job: str) -> int:
    """The last boosting round a training job logged (``[i]#011train-...`` lines)."""
    group = "/aws/sagemaker/TrainingJobs"
    rounds = [-1]
    for stream in logs.describe_log_streams(logGroupName=group, logStreamNamePrefix=f"{job}/")["logStreams"]:
        args: dict[str, Any] = {"logGroupName": group, "logStreamName": stream["logStreamName"], "startFromHead": True}
        while True:
            page = logs.get_log_events(**args)
            rounds += [int(m.group(1)) for e in page["events"] if (m := re.match(r"\[(\d+)\]#011", e["message"]))]
            if not page["events"] or page.get("nextForwardToken") == args.get("nextToken"):
                break
            args["nextToken"] = page["nextForwardToken"]
    return max(rounds)


def error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    return exc.value.response["Error"]["Code"], exc.value.response["Error"]["Message"]


def max_overlap(summaries: list[dict[str, Any]]) -> int:
    """How many trials ran at once at the busiest moment ([TrainingStartTime, TrainingEndTime] intervals)."""
    events = []
    for s in summaries:
        events += [(s["TrainingStartTime"].timestamp(), 1), (s["TrainingEndTime"].timestamp(), -1)]
    busiest = running = 0
    for _, delta in sorted(events, key=lambda e: (e[0], e[1])):  # an end sorts before a start at the same instant
        running += delta
        busiest = max(busiest, running)
    return busiest


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def data(client) -> dict[str, str]:
    s3 = client("s3")
    bucket = f"tuning-{RUN}"
    s3.create_bucket(Bucket=bucket)
    for key, body in (("train/part-0.csv", rows(1, 300)), ("validation/part-0.csv", rows(2, 200)),
                      ("big/train/part-0.csv", rows(3, 1000))):
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    uri = f"s3://{bucket}"
    return {"bucket": bucket, "train": f"{uri}/train/", "validation": f"{uri}/validation/",
            "big_train": f"{uri}/big/train/", "output": f"{uri}/output"}


@pytest.fixture(scope="module")
def bayesian(sm, data) -> dict[str, Any]:
    """A finished 6-trial Bayesian tuning job (2 in parallel) that several tests read."""
    name = tuning_name("bayes")
    arn = sm.create_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name, HyperParameterTuningJobConfig=config(),
        TrainingJobDefinition=definition(data), Tags=[{"Key": "team", "Value": "ml"}],
    )["HyperParameterTuningJobArn"]
    job = TUNING.wait(sm, name)
    return {"name": name, "arn": arn, "job": job}


# --------------------------------------------------------------------------- boto3


def test_bayesian_job_counts_its_trials_and_picks_the_best(sm, bayesian):
    job, name = bayesian["job"], bayesian["name"]
    assert job["HyperParameterTuningJobStatus"] == "Completed", job.get("FailureReason")
    assert job["HyperParameterTuningJobArn"] == bayesian["arn"]
    assert bayesian["arn"].endswith(f":hyper-parameter-tuning-job/{name.lower()}")
    listed = trials(sm, name)
    assert len(listed) == 6
    counters, objectives = job["TrainingJobStatusCounters"], job["ObjectiveStatusCounters"]
    assert sum(counters.values()) == len(listed) and counters["Completed"] == 6
    assert sum(objectives.values()) == len(listed) and objectives["Succeeded"] == 6
    best = max(listed, key=value)
    assert job["BestTrainingJob"]["TrainingJobName"] == best["TrainingJobName"]
    assert job["BestTrainingJob"]["FinalHyperParameterTuningJobObjectiveMetric"] == {
        "Type": "Maximize", "MetricName": "validation:auc", "Value": value(best)}
    assert 0.8 < value(best) <= 1.0
    assert job["HyperParameterTuningEndTime"] >= job["CreationTime"]
    assert job["ConsumedResources"]["RuntimeInSeconds"] >= 1
    # the trials that finished after the best one, in the order the tuner saw them finish: it polls every 50 ms,
    # so trials ending within a second of the best one may fall on either side of it
    after_best = [(t["TrainingEndTime"] - best["TrainingEndTime"]).total_seconds() for t in listed if t is not best]
    surely, perhaps = sum(s > 1 for s in after_best), sum(s > -1 for s in after_best)
    assert surely <= job["TuningJobCompletionDetails"]["NumberOfTrainingJobsObjectiveNotImproving"] <= perhaps
    assert job["HyperParameterTuningJobConfig"]["TrainingJobEarlyStoppingType"] == "Off"
    assert "OverallBestTrainingJob" not in job


def test_parallel_trials_never_exceed_the_limit(sm, bayesian):
    listed = trials(sm, bayesian["name"])
    assert max_overlap(listed) <= 2
    assert max_overlap(listed) == 2, "two trials should have run side by side"


def test_trials_are_training_jobs_named_and_tagged_as_sagemaker_does(sm, bayesian):
    name = bayesian["name"]
    listed = sorted(trials(sm, name), key=lambda s: s["TrainingJobName"])
    for number, summary in enumerate(listed, start=1):
        assert re.fullmatch(rf"{re.escape(name)}-{number:03d}-[0-9a-f]{{8}}", summary["TrainingJobName"])
        assert summary["TuningJobName"] == name and summary["ObjectiveStatus"] == "Succeeded"
        tuned = summary["TunedHyperParameters"]
        assert set(tuned) == {"eta", "max_depth"}
        assert 0.05 <= float(tuned["eta"]) <= 0.5 and tuned["max_depth"] in {"1", "2", "3", "4", "5"}
    job = sm.describe_training_job(TrainingJobName=listed[0]["TrainingJobName"])
    assert job["TuningJobArn"] == bayesian["arn"]
    hps = job["HyperParameters"]
    assert hps["_tuning_objective_metric"] == "validation:auc"
    assert {k: hps[k] for k in STATIC} == STATIC
    assert hps["eta"] == listed[0]["TunedHyperParameters"]["eta"]
    final = {m["MetricName"]: m["Value"] for m in job["FinalMetricDataList"]}
    assert final["validation:auc"] == value(listed[0])
    tags = sm.list_tags(ResourceArn=job["TrainingJobArn"])["Tags"]
    assert {"Key": "team", "Value": "ml"} in tags
    assert sm.list_tags(ResourceArn=bayesian["arn"])["Tags"] == [{"Key": "team", "Value": "ml"}]
    names = {j["TrainingJobName"] for j in sm.list_training_jobs(NameContains=name, MaxResults=100)
             ["TrainingJobSummaries"]}
    assert names == {s["TrainingJobName"] for s in listed}


def test_list_training_jobs_for_tuning_job_sorts_filters_and_pages(sm, bayesian):
    name = bayesian["name"]
    by_name = trials(sm, name, MaxResults=4)  # two pages
    assert [s["TrainingJobName"] for s in by_name] == sorted(s["TrainingJobName"] for s in by_name)
    by_value = trials(sm, name, SortBy="FinalObjectiveMetricValue", SortOrder="Descending")
    assert [value(s) for s in by_value] == sorted((value(s) for s in by_value), reverse=True)
    assert by_value[0]["TrainingJobName"] == bayesian["job"]["BestTrainingJob"]["TrainingJobName"]
    by_time = trials(sm, name, SortBy="CreationTime", SortOrder="Ascending")
    assert [s["CreationTime"] for s in by_time] == sorted(s["CreationTime"] for s in by_time)
    assert len(trials(sm, name, StatusEquals="Completed")) == 6
    assert trials(sm, name, StatusEquals="Failed") == []
    paginator = sm.get_paginator("list_training_jobs_for_hyper_parameter_tuning_job")
    pages = list(paginator.paginate(HyperParameterTuningJobName=name, PaginationConfig={"PageSize": 5}))
    assert [len(p["TrainingJobSummaries"]) for p in pages] == [5, 1]


def test_list_tuning_jobs(sm, bayesian):
    summaries = sm.list_hyper_parameter_tuning_jobs(NameContains=bayesian["name"])["HyperParameterTuningJobSummaries"]
    assert len(summaries) == 1
    summary = summaries[0]
    assert summary["Strategy"] == "Bayesian" and summary["HyperParameterTuningJobStatus"] == "Completed"
    assert summary["TrainingJobStatusCounters"]["Completed"] == 6
    assert summary["ResourceLimits"]["MaxParallelTrainingJobs"] == 2
    completed = sm.list_hyper_parameter_tuning_jobs(StatusEquals="Completed", MaxResults=100,
                                                    SortBy="Name")["HyperParameterTuningJobSummaries"]
    names = [s["HyperParameterTuningJobName"] for s in completed]
    assert bayesian["name"] in names and names == sorted(names)


def test_warm_start_reuses_the_parent_jobs(sm, data, bayesian, emulator):
    parent = bayesian["job"]
    child = tuning_name("warm")
    sm.create_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=child, HyperParameterTuningJobConfig=config(jobs=2),
        TrainingJobDefinition=definition(data),
        WarmStartConfig={"ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName": bayesian["name"]}],
                         "WarmStartType": "IdenticalDataAndAlgorithm"},
    )
    job = TUNING.wait(sm, child)
    assert job["HyperParameterTuningJobStatus"] == "Completed", job.get("FailureReason")
    assert len(trials(sm, child)) == 2, "only the new trials run; the parent's six are reused"
    everyone = trials(sm, child) + trials(sm, bayesian["name"])
    overall = job["OverallBestTrainingJob"]
    assert value(overall) == max(value(s) for s in everyone)
    assert value(overall) >= value(parent["BestTrainingJob"])
    assert job["BestTrainingJob"]["TuningJobName"] == child
    assert job["WarmStartConfig"]["WarmStartType"] == "IdenticalDataAndAlgorithm"

    transfer = tuning_name("transfer")
    sm.create_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=transfer, HyperParameterTuningJobConfig=config(jobs=1, parallel=1),
        TrainingJobDefinition=definition({**data, "train": data["big_train"]}),
        WarmStartConfig={"ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName": bayesian["name"]}],
                         "WarmStartType": "TransferLearning"},
    )
    job = TUNING.wait(sm, transfer)
    assert job["HyperParameterTuningJobStatus"] == "Completed" and len(trials(sm, transfer)) == 1
    assert "OverallBestTrainingJob" not in job, "only identical-data warm starts compare with the parents"

    from sagemaker_emulator.runtime.tuning import TuningRun

    run = TuningRun(emulator, child)  # what the child's study started from: the parent's six finished trials
    run._prepare()
    assert len(run.study.trials) == 6 and all(t.state.name == "COMPLETE" for t in run.study.trials)
    assert sorted(t.value for t in run.study.trials) == sorted(value(s) for s in trials(sm, bayesian["name"]))

    with pytest.raises(ClientError) as exc:  # identical warm start on other data is refused
        sm.create_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=tuning_name("bad-warm"), HyperParameterTuningJobConfig=config(jobs=1),
            TrainingJobDefinition=definition({**data, "train": data["big_train"]}),
            WarmStartConfig={"ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName": bayesian["name"]}],
                             "WarmStartType": "IdenticalDataAndAlgorithm"})
    assert error(exc)[0] == "ValidationException" and "TransferLearning" in error(exc)[1]


def test_early_stopping_stops_unpromising_trials(sm, data, client):
    logs = client("logs")
    # Random search with a fixed seed draws eta=0.1 or 1e-5 in this order: G G t G G t G t. With eta=1e-5 the
    # validation logloss stays near 0.693 for 2000 rounds, far worse than the median of the earlier jobs. The long
    # budget leaves the median rule ample time to stop those trials even on a fast, idle machine.
    name = tuning_name("early")
    ranges = {"CategoricalParameterRanges": [{"Name": "eta", "Values": ["0.1", "0.00001"]}],
              "IntegerParameterRanges": [{"Name": "max_depth", "MinValue": "2", "MaxValue": "4"}]}
    sm.create_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name,
        HyperParameterTuningJobConfig=config("Random", jobs=8, ranges=ranges, metric="validation:logloss",
                                             kind="Minimize", RandomSeed=8, TrainingJobEarlyStoppingType="Auto"),
        TrainingJobDefinition=definition({**data, "train": data["big_train"]},
                                         {"objective": "binary:logistic", "num_round": "2000"}),
    )
    job = TUNING.wait(sm, name)
    assert job["HyperParameterTuningJobStatus"] == "Completed", job.get("FailureReason")
    listed = sorted(trials(sm, name), key=lambda s: s["TrainingJobName"])
    etas = "".join("G" if s["TunedHyperParameters"]["eta"] == "0.1" else "t" for s in listed)
    assert etas == "GGtGGtGt"
    stopped = [s for s in listed if s["TrainingJobStatus"] == "Stopped"]
    assert {s["TrainingJobName"] for s in stopped} >= {listed[5]["TrainingJobName"], listed[7]["TrainingJobName"]}
    assert job["TrainingJobStatusCounters"]["Stopped"] == len(stopped)
    assert sum(job["TrainingJobStatusCounters"].values()) == 8
    assert job["ObjectiveStatusCounters"]["Succeeded"] == 8, "early-stopped jobs keep their last objective value"
    for summary in stopped:
        training = sm.describe_training_job(TrainingJobName=summary["TrainingJobName"])
        final = {m["MetricName"]: m["Value"] for m in training["FinalMetricDataList"]}
        assert value(summary) == final["validation:logloss"]
        messages = [t["StatusMessage"] for t in training["SecondaryStatusTransitions"]]
        assert any("TrainingJobEarlyStoppingType=Auto" in m for m in messages)
        assert value(summary) >= value(job["BestTrainingJob"])
    for tiny in (listed[5], listed[7]):  # stopped long before their 2000 rounds, near the untrained 0.693
        assert value(tiny) > 0.6
        assert last_round(logs, tiny["TrainingJobName"]) < 1999 == last_round(logs, listed[0]["TrainingJobName"])
    assert job["BestTrainingJob"]["TunedHyperParameters"]["eta"] == "0.1"


def test_stopping_a_tuning_job_stops_its_trials(sm, data):
    name = tuning_name("stop")
    sm.create_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name, HyperParameterTuningJobConfig=config("Random", jobs=6),
        TrainingJobDefinition=definition(data, {**STATIC, "num_round": "100000"}),
    )
    TUNING.wait(sm, name, lambda j: j["TrainingJobStatusCounters"]["InProgress"] == 2, timeout=30)
    sm.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    assert sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)[
        "HyperParameterTuningJobStatus"] in ("Stopping", "Stopped")
    job = TUNING.wait(sm, name, timeout=30)
    assert job["HyperParameterTuningJobStatus"] == "Stopped"
    listed = trials(sm, name)
    assert len(listed) == 2 and {s["TrainingJobStatus"] for s in listed} == {"Stopped"}
    assert job["TrainingJobStatusCounters"]["Stopped"] == 2 and job["TrainingJobStatusCounters"]["InProgress"] == 0
    with pytest.raises(ClientError) as exc:
        sm.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    assert error(exc)[0] == "ValidationException"
    sm.delete_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)  # the record goes, its trials stay
    with pytest.raises(ClientError) as exc:
        sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    assert error(exc)[0] == "ResourceNotFound"
    assert sm.describe_training_job(TrainingJobName=listed[0]["TrainingJobName"])["TrainingJobStatus"] == "Stopped"


def test_random_search_with_a_seed_is_reproducible(sm, data):
    static = {**STATIC, "num_round": "3"}
    names = [tuning_name(f"seed{i}") for i in range(2)]
    for name in names:
        sm.create_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=name, HyperParameterTuningJobConfig=config("Random", jobs=4, RandomSeed=42),
            TrainingJobDefinition=definition(data, static))
    drawn = []
    for name in names:
        assert TUNING.wait(sm, name)["HyperParameterTuningJobStatus"] == "Completed"
        drawn.append([s["TunedHyperParameters"] for s in sorted(trials(sm, name), key=lambda s: s["TrainingJobName"])])
    assert drawn[0] == drawn[1]
    assert len({d["eta"] for d in drawn[0]}) == 4


def test_grid_search_enumerates_the_grid(sm, data):
    name = tuning_name("grid")
    ranges = {"CategoricalParameterRanges": [{"Name": "max_depth", "Values": ["2", "4"]},
                                             {"Name": "eta", "Values": ["0.1", "0.2", "0.3"]}]}
    sm.create_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name, HyperParameterTuningJobConfig=config("Grid", jobs=None, ranges=ranges),
        TrainingJobDefinition=definition(data, {**STATIC, "num_round": "3"}))
    job = TUNING.wait(sm, name)
    assert job["HyperParameterTuningJobStatus"] == "Completed"
    assert job["HyperParameterTuningJobConfig"]["ResourceLimits"]["MaxNumberOfTrainingJobs"] == 6
    combos = sorted((s["TunedHyperParameters"]["max_depth"], s["TunedHyperParameters"]["eta"])
                    for s in trials(sm, name))
    assert combos == [(d, e) for d in ("2", "4") for e in ("0.1", "0.2", "0.3")]


def test_hyperband_stops_jobs_by_rung(sm, data):
    name = tuning_name("hyperband")
    sm.create_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name,
        HyperParameterTuningJobConfig=config("Hyperband", jobs=6, StrategyConfig={
            "HyperbandStrategyConfig": {"MinResource": 1, "MaxResource": 400}}),
        TrainingJobDefinition=definition(data, {**STATIC, "num_round": "400"}))
    job = TUNING.wait(sm, name)
    assert job["HyperParameterTuningJobStatus"] == "Completed", job.get("FailureReason")
    listed = trials(sm, name)
    assert len(listed) == 6 and sum(job["TrainingJobStatusCounters"].values()) == 6
    assert job["TrainingJobStatusCounters"]["Stopped"] >= 1, "Hyperband stops the jobs that lose at a rung"
    assert job["ObjectiveStatusCounters"]["Succeeded"] == 6
    assert value(job["BestTrainingJob"]) == max(value(s) for s in listed)
    stopped = next(s for s in listed if s["TrainingJobStatus"] == "Stopped")
    training = sm.describe_training_job(TrainingJobName=stopped["TrainingJobName"])
    assert any("Hyperband" in t["StatusMessage"] for t in training["SecondaryStatusTransitions"])


def test_completion_criteria_end_the_search_early(sm, data):
    name = tuning_name("target")
    sm.create_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name,
        HyperParameterTuningJobConfig=config("Random", jobs=8, parallel=1,
                                             TuningJobCompletionCriteria={"TargetObjectiveMetricValue": 0.5}),
        TrainingJobDefinition=definition(data, {**STATIC, "num_round": "3"}))
    job = TUNING.wait(sm, name)
    assert job["HyperParameterTuningJobStatus"] == "Completed"
    assert len(trials(sm, name)) == 1, "the first job already beat the target"

    name = tuning_name("patience")  # the seed changes nothing here (no sampling), so no trial improves on the first
    seeds = {"CategoricalParameterRanges": [{"Name": "seed", "Values": [str(i) for i in range(8)]}]}
    sm.create_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name,
        HyperParameterTuningJobConfig=config("Random", jobs=8, parallel=1, ranges=seeds, TuningJobCompletionCriteria={
            "BestObjectiveNotImproving": {"MaxNumberOfTrainingJobsNotImproving": 3}}),
        TrainingJobDefinition=definition(data, {**STATIC, "num_round": "3"}))
    job = TUNING.wait(sm, name)
    assert job["HyperParameterTuningJobStatus"] == "Completed"
    assert len(trials(sm, name)) == 4
    assert job["TuningJobCompletionDetails"]["NumberOfTrainingJobsObjectiveNotImproving"] == 3


def test_max_runtime_ends_the_search(sm, data, emulator):
    name = tuning_name("runtime")
    limits = {"MaxNumberOfTrainingJobs": 6, "MaxParallelTrainingJobs": 2, "MaxRuntimeInSeconds": 120}
    sm.create_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name, HyperParameterTuningJobConfig={**config("Random"), "ResourceLimits": limits},
        TrainingJobDefinition=definition(data, {**STATIC, "num_round": "100000"}))
    TUNING.wait(sm, name, lambda j: j["TrainingJobStatusCounters"]["InProgress"] == 2, timeout=30)
    deadline = time.monotonic() + 30
    while not all(sm.describe_training_job(TrainingJobName=s["TrainingJobName"]).get("FinalMetricDataList")
                  for s in trials(sm, name)):  # both report an objective value before time runs out
        assert time.monotonic() < deadline
        time.sleep(0.1)
    run = next(r for r in emulator.jobs.running("HyperParameterTuningJob") if r.name == name)
    run.deadline = time.time()  # as if the 120 s had passed
    job = TUNING.wait(sm, name, timeout=30)
    assert job["HyperParameterTuningJobStatus"] == "Completed"
    listed = trials(sm, name)
    assert len(listed) == 2 and {s["TrainingJobStatus"] for s in listed} == {"Stopped"}
    training = sm.describe_training_job(TrainingJobName=listed[0]["TrainingJobName"])
    assert any("MaxRuntimeInSeconds" in t["StatusMessage"] for t in training["SecondaryStatusTransitions"])


def test_failed_trials_are_counted_and_only_all_failing_fails_the_job(sm, data):
    mixed = tuning_name("mixed")
    ranges = {"CategoricalParameterRanges": [{"Name": "max_depth", "Values": ["3", "-4"]}]}
    sm.create_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=mixed, HyperParameterTuningJobConfig=config("Grid", jobs=None, ranges=ranges),
        TrainingJobDefinition=definition(data, {**STATIC, "num_round": "3"}))
    job = TUNING.wait(sm, mixed)
    assert job["HyperParameterTuningJobStatus"] == "Completed"
    assert job["TrainingJobStatusCounters"]["NonRetryableError"] == 1
    assert job["TrainingJobStatusCounters"]["Completed"] == 1
    assert job["ObjectiveStatusCounters"] == {"Succeeded": 1, "Pending": 0, "Failed": 1}
    failed = trials(sm, mixed, StatusEquals="Failed")
    assert len(failed) == 1 and failed[0]["ObjectiveStatus"] == "Failed" and failed[0]["FailureReason"]
    assert "FinalHyperParameterTuningJobObjectiveMetric" not in failed[0]
    assert job["BestTrainingJob"]["TunedHyperParameters"] == {"max_depth": "3"}

    broken = tuning_name("broken")
    sm.create_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=broken, HyperParameterTuningJobConfig=config("Random", jobs=2),
        TrainingJobDefinition=definition(data, {**STATIC, "objective": "no:such-objective"}))
    job = TUNING.wait(sm, broken)
    assert job["HyperParameterTuningJobStatus"] == "Failed"
    assert job["FailureReason"].startswith("No training job succeeded after 2 attempts.")
    assert job["TrainingJobStatusCounters"]["NonRetryableError"] == 2
    assert "BestTrainingJob" not in job


BAD_REQUESTS = {
    "min above max": (config(ranges={"ContinuousParameterRanges": [
        {"Name": "eta", "MinValue": "0.5", "MaxValue": "0.1"}]}), "must be less than or equal to its MaxValue"),
    "not a number": (config(ranges={"ContinuousParameterRanges": [
        {"Name": "eta", "MinValue": "low", "MaxValue": "0.1"}]}), "is not a number"),
    "not an integer": (config(ranges={"IntegerParameterRanges": [
        {"Name": "max_depth", "MinValue": "1.5", "MaxValue": "4"}]}), "is not an integer"),
    "log of zero": (config(ranges={"ContinuousParameterRanges": [
        {"Name": "eta", "MinValue": "0", "MaxValue": "0.5", "ScalingType": "Logarithmic"}]}), "range above 0"),
    "reverse log integer": (config(ranges={"IntegerParameterRanges": [
        {"Name": "max_depth", "MinValue": "1", "MaxValue": "4", "ScalingType": "ReverseLogarithmic"}]}),
        "only for continuous"),
    "reverse log reaching 1": (config(ranges={"ContinuousParameterRanges": [
        {"Name": "subsample", "MinValue": "0.5", "MaxValue": "1", "ScalingType": "ReverseLogarithmic"}]}),
        "MaxValue < 1"),
    "grid with a numeric range": (config("Grid", jobs=None), "supports only CategoricalParameterRanges"),
    "grid of the wrong size": (config("Grid", jobs=3, ranges={"CategoricalParameterRanges": [
        {"Name": "max_depth", "Values": ["2", "4"]}]}), "number of hyperparameter combinations (2)"),
    "hyperband with early stopping": (config("Hyperband", TrainingJobEarlyStoppingType="Auto", StrategyConfig={
        "HyperbandStrategyConfig": {"MaxResource": 10}}), "must be Off"),
    "hyperband without max resource": (config("Hyperband"), "cannot be inferred"),
    "strategy config without hyperband": (config(StrategyConfig={"HyperbandStrategyConfig": {"MaxResource": 9}}),
                                          "only with the Hyperband strategy"),
    "unknown objective": (config(metric="validation:accuracy-ish"), "not a metric of the built-in XGBoost"),
    "train metric": (config(metric="train:auc"), "not a metric of the built-in XGBoost"),
    "no max jobs": (config(jobs=None), "MaxNumberOfTrainingJobs is required"),
    "no parallel jobs": (config(parallel=0), "maxParallelTrainingJobs"),
    "static and tuned": (config(ranges={"CategoricalParameterRanges": [
        {"Name": "num_round", "Values": ["5", "10"]}]}), "both static"),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_invalid_requests_are_refused_with_a_clear_message(client, data, case):
    sm = client("sagemaker", config=botocore.config.Config(parameter_validation=False))  # the service validates
    bad_config, expected = BAD_REQUESTS[case]
    name = tuning_name("bad")
    with pytest.raises(ClientError) as exc:
        sm.create_hyper_parameter_tuning_job(HyperParameterTuningJobName=name,
                                             HyperParameterTuningJobConfig=bad_config,
                                             TrainingJobDefinition=definition(data))
    code, message = error(exc)
    assert code == "ValidationException" and expected in message and "\n" not in message
    with pytest.raises(ClientError) as exc:
        sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    assert error(exc)[0] == "ResourceNotFound"


def test_custom_metric_definitions_and_names(sm, data, bayesian):
    with pytest.raises(ClientError) as exc:  # the objective must be one of the job's metric definitions
        sm.create_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=tuning_name("metric"), HyperParameterTuningJobConfig=config(metric="loss"),
            TrainingJobDefinition=definition(data, AlgorithmSpecification={
                "TrainingImage": XGBOOST_IMAGE, "TrainingInputMode": "File",
                "MetricDefinitions": [{"Name": "accuracy", "Regex": "accuracy=([0-9.]+)"}]}))
    assert error(exc)[0] == "ValidationException" and "not among the MetricDefinitions" in error(exc)[1]
    with pytest.raises(ClientError) as exc:  # a trial that could never get its instances is refused up front
        sm.create_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=tuning_name("huge"), HyperParameterTuningJobConfig=config(),
            TrainingJobDefinition=definition(data, ResourceConfig={"InstanceType": "ml.m5.xlarge",
                                                                   "InstanceCount": 9, "VolumeSizeInGB": 10}))
    assert error(exc)[0] == "ResourceLimitExceeded"
    with pytest.raises(ClientError) as exc:
        sm.create_hyper_parameter_tuning_job(HyperParameterTuningJobName=bayesian["name"].upper(),
                                             HyperParameterTuningJobConfig=config(),
                                             TrainingJobDefinition=definition(data))
    assert error(exc)[0] == "ResourceInUse", "tuning job names are not case sensitive"
    for call in (sm.describe_hyper_parameter_tuning_job, sm.list_training_jobs_for_hyper_parameter_tuning_job,
                 sm.stop_hyper_parameter_tuning_job):
        with pytest.raises(ClientError) as exc:
            call(HyperParameterTuningJobName=f"t{RUN}-missing")
        assert error(exc) == ("ResourceNotFound", f"Amazon SageMaker can't find a tuning job with name t{RUN}-missing")


def test_restart_ends_an_in_progress_tuning_job(tmp_path: Path):
    """``sagemaker-emulator stop`` fails a running tuning job; a daemon that died leaves it to the next to fail."""
    state = tmp_path / "state"
    emu = Emulator(state)
    emu.start("127.0.0.1", 0)
    session = boto3.Session(aws_access_key_id=emu.credentials.access_key,
                            aws_secret_access_key=emu.credentials.secret_key, region_name=REGION)
    s3, sm = (session.client(n, endpoint_url=emu.endpoint_url) for n in ("s3", "sagemaker"))
    s3.create_bucket(Bucket="restart-tuning")
    s3.put_object(Bucket="restart-tuning", Key="train/part-0.csv", Body=rows(1, 100))
    s3.put_object(Bucket="restart-tuning", Key="validation/part-0.csv", Body=rows(2, 100))
    data = {"train": "s3://restart-tuning/train/", "validation": "s3://restart-tuning/validation/",
            "output": "s3://restart-tuning/output"}
    sm.create_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="restart", HyperParameterTuningJobConfig=config("Random", jobs=4),
        TrainingJobDefinition=definition(data, {**STATIC, "num_round": "100000"}))
    TUNING.wait(sm, "restart", lambda j: j["TrainingJobStatusCounters"]["InProgress"] >= 1, timeout=30)
    emu.stop()

    emu = Emulator(state)
    job = emu.state.get("HyperParameterTuningJob", "restart")
    assert job["HyperParameterTuningJobStatus"] == "Failed" and "emulator was stopped" in job["FailureReason"]
    emu.state.update("HyperParameterTuningJob", "restart", HyperParameterTuningJobStatus="InProgress")  # as if killed
    emu.start("127.0.0.1", 0)
    try:
        sm = session.client("sagemaker", endpoint_url=emu.endpoint_url)
        job = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="restart")
        assert job["HyperParameterTuningJobStatus"] == "Failed"
        assert "emulator stopped while this job was running" in job["FailureReason"]
        assert "HyperParameterTuningEndTime" in job
        assert job["TrainingJobStatusCounters"]["InProgress"] == 0
    finally:
        emu.stop()


def test_scaling_types_map_onto_optuna_distributions():
    from sagemaker_emulator.runtime.tuning import _optuna, dimensions, make_sampler

    ranges = {
        "ContinuousParameterRanges": [
            {"Name": "lin", "MinValue": "0", "MaxValue": "1", "ScalingType": "Auto"},
            {"Name": "log", "MinValue": "0.0001", "MaxValue": "1", "ScalingType": "Logarithmic"},
            {"Name": "rev", "MinValue": "0.5", "MaxValue": "0.9999", "ScalingType": "ReverseLogarithmic"}],
        "IntegerParameterRanges": [{"Name": "n", "MinValue": "1", "MaxValue": "1000", "ScalingType": "Logarithmic"}],
    }
    dims = {d.name: d for d in dimensions(ranges)}
    study = _optuna().create_study(sampler=make_sampler("Random", list(dims.values()), 0, 300))
    drawn: dict[str, list[float]] = {name: [] for name in dims}
    for _ in range(300):
        trial = study.ask({d.name: d.distribution for d in dims.values()})
        for name, dim in dims.items():
            text = dim.to_text(trial.params[name])
            assert dim.from_text(text) is not None, "a drawn value maps back into its range"
            drawn[name].append(float(text))
    median = {name: float(np.median(values)) for name, values in drawn.items()}
    assert 0.35 < median["lin"] < 0.65
    assert median["log"] < 0.05, "log scale: as many draws in [1e-4, 1e-2] as in [1e-2, 1]"
    assert median["rev"] > 0.95, "reverse log scale: draws crowd towards 1"
    assert median["n"] < 100 and all(v == int(v) for v in drawn["n"])
    assert min(drawn["rev"]) >= 0.5 and max(drawn["rev"]) <= 0.9999
    assert dims["rev"].from_text("0.3") is None and dims["n"].from_text("2.5") is None


# --------------------------------------------------------------------------- the SDK V3


def test_sdk_hyperparameter_tuner_with_model_trainer(emulator_env, data):
    from sagemaker.core.helper.session_helper import Session, get_execution_role
    from sagemaker.core.parameter import ContinuousParameter, IntegerParameter
    from sagemaker.train import ModelTrainer
    from sagemaker.train.configs import Compute, InputData, OutputDataConfig
    from sagemaker.train.tuner import HyperparameterTuner

    session = Session()
    trainer = ModelTrainer(
        training_image=XGBOOST_IMAGE, role=get_execution_role(),
        compute=Compute(instance_type="ml.m5.xlarge", instance_count=1),
        output_data_config=OutputDataConfig(s3_output_path=data["output"]),
        hyperparameters={"objective": "binary:logistic", "num_round": 10, "eval_metric": "auc"},
        base_job_name="sdk-tune", sagemaker_session=session,
    )
    tuner = HyperparameterTuner(
        model_trainer=trainer, objective_metric_name="validation:auc",
        hyperparameter_ranges={"eta": ContinuousParameter(0.1, 0.5), "max_depth": IntegerParameter(2, 5)},
        max_jobs=4, max_parallel_jobs=2, base_tuning_job_name=f"sdk-{RUN}",
    )
    tuner.tune(inputs=[InputData(channel_name="train", data_source=data["train"], content_type="text/csv"),
                       InputData(channel_name="validation", data_source=data["validation"],
                                 content_type="text/csv")], wait=True)
    described = tuner.describe()
    assert described.hyper_parameter_tuning_job_status == "Completed"
    assert described.training_job_status_counters.completed == 4
    best = tuner.best_training_job()
    assert best == described.best_training_job.training_job_name
    frame = tuner.analytics().dataframe()
    assert list(frame.columns) == ["max_depth", "eta", "TrainingJobName", "TrainingJobStatus", "FinalObjectiveValue",
                                   "TrainingStartTime", "TrainingEndTime", "TrainingElapsedTimeSeconds"]
    assert len(frame) == 4 and set(frame["TrainingJobStatus"]) == {"Completed"}
    assert frame.loc[frame["FinalObjectiveValue"].idxmax(), "TrainingJobName"] == best
    assert frame["eta"].between(0.1, 0.5).all() and frame["max_depth"].isin([2.0, 3.0, 4.0, 5.0]).all()
