"""Hyperparameter tuning jobs in the SageMaker control plane: each operation a function of that name.

``CreateHyperParameterTuningJob`` validates the request as SageMaker does
(ranges, strategy rules, objective metric, warm start), records the job
``InProgress`` and hands it to the runtime's ``TuningRun``, which launches
the trials as ordinary training jobs. Describe and List read those training
jobs back, so counters, best job and objective values always agree with what
``DescribeTrainingJob`` shows for each trial.
"""

from __future__ import annotations

import math
import time
from typing import Any

from ...protocol.errors import ServiceError, invalid
from ...runtime.tuning import (
    KIND,
    STATUS,
    TERMINAL,
    best_summary,
    hyperband_resources,
    status_counters,
    trial_summaries,
)
from ..context import Context
from ..listing import list_records
from .common import MAX_INSTANCES, SageMakerBase, check_channels, check_checkpoint

#: SageMaker's quota of training jobs one tuning job may consider (its own plus its warm-start parents')
MAX_TRAINING_JOBS_PER_TUNING_JOB = 500
HYPERBAND_MAX_RESOURCE = 20000
SUMMARY_FIELDS = ("HyperParameterTuningJobName", "HyperParameterTuningJobArn", "HyperParameterTuningJobStatus",
                  "CreationTime", "HyperParameterTuningEndTime", "LastModifiedTime")


def _tuning_not_found(name: str) -> ServiceError:
    return ServiceError("ResourceNotFound", f"Amazon SageMaker can't find a tuning job with name {name}")


class TuningOperations(SageMakerBase):
    """Hyperparameter tuning jobs."""

    # ------------------------------------------------------------ create
    def CreateHyperParameterTuningJob(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        name = params["HyperParameterTuningJobName"]
        config = dict(params["HyperParameterTuningJobConfig"])
        definition = _single_definition(params)
        if (params.get("Autotune") or {}).get("Mode") == "Enabled":
            raise invalid("Autotune is not supported by the local emulator; give ParameterRanges instead.")
        ranges = definition.get("HyperParameterRanges") or config.get("ParameterRanges") or {}
        _check_ranges(ranges, definition.get("StaticHyperParameters") or {})
        objective = _objective(config, definition)
        builtin = _check_objective(objective["MetricName"], definition)
        config = _check_strategy(config, ranges, definition)
        parents = self._check_warm_start(params.get("WarmStartConfig"), config, objective, ranges, definition)
        _check_definition(definition)
        existing = self._find_tuning_job(name)
        arn = f"arn:aws:sagemaker:{ctx.region}:{ctx.account_id}:hyper-parameter-tuning-job/{name.lower()}"
        if existing is not None:
            raise ServiceError(
                "ResourceInUse",
                "Hyperparameter tuning job names must be unique within an AWS account and region, and a "
                f"hyperparameter tuning job with this name already exists ({existing['HyperParameterTuningJobArn']})",
            )
        now = time.time()
        record = {
            "HyperParameterTuningJobName": name,
            "HyperParameterTuningJobArn": arn,
            "HyperParameterTuningJobConfig": config,
            "TrainingJobDefinition": definition,
            "HyperParameterTuningJobStatus": "InProgress",
            "CreationTime": now,
            "LastModifiedTime": now,
            "TuningJobCompletionDetails": {"NumberOfTrainingJobsObjectiveNotImproving": 0},
            "_objective": objective,
            "_ranges": ranges,
            "_builtin": builtin,
            "_parents": parents,
        }
        if params.get("WarmStartConfig"):
            record["WarmStartConfig"] = params["WarmStartConfig"]
        if params.get("Autotune"):
            record["Autotune"] = params["Autotune"]
        tags = {t["Key"]: t.get("Value") or "" for t in params.get("Tags") or []}
        if not self.emulator.state.insert(KIND, name, arn, now, record, tags):
            raise ServiceError("ResourceInUse", f"A hyperparameter tuning job named {name} already exists ({arn})")
        self.emulator.jobs.start(KIND, name)
        return {"HyperParameterTuningJobArn": arn}

    def _check_warm_start(self, warm: dict[str, Any] | None, config: dict[str, Any], objective: dict[str, str],
                          ranges: dict[str, Any], definition: dict[str, Any]) -> list[str]:
        """Warm start as SageMaker restricts it; returns the parent job names."""
        if not warm:
            return []
        if config["Strategy"] not in ("Bayesian", "Random"):
            raise invalid(f"Warm start is supported only with the Bayesian and Random strategies, not "
                          f"{config['Strategy']}.")
        names = [p["HyperParameterTuningJobName"] for p in warm["ParentHyperParameterTuningJobs"]]
        tuned = _range_names(ranges)
        count = len(set(tuned) | set(definition.get("StaticHyperParameters") or {}))
        parent_trials = 0
        for parent_name in names:
            parent = self._find_tuning_job(parent_name)
            if parent is None:
                raise invalid(f"The parent hyperparameter tuning job {parent_name} does not exist.")
            if parent[STATUS] not in TERMINAL:
                raise invalid(f"The parent hyperparameter tuning job {parent_name} is {parent[STATUS]}; warm start "
                              "needs parent jobs that have finished (Completed, Stopped or Failed).")
            if parent["_objective"]["MetricName"] != objective["MetricName"]:
                raise invalid(f"The objective metric {objective['MetricName']} differs from the objective metric "
                              f"{parent['_objective']['MetricName']} of the parent tuning job {parent_name}.")
            parent_def = parent["TrainingJobDefinition"]
            parent_static = parent_def.get("StaticHyperParameters") or {}
            parent_count = len(set(_range_names(parent["_ranges"])) | set(parent_static))
            if parent_count != count:
                raise invalid(f"The number of static plus tunable hyperparameters ({count}) must remain the same as "
                              f"in the parent tuning job {parent_name} ({parent_count}).")
            if warm["WarmStartType"] == "IdenticalDataAndAlgorithm":
                for key, label in (("AlgorithmSpecification", "training image"), ("InputDataConfig", "input data")):
                    mine, theirs = definition.get(key), parent_def.get(key)
                    if key == "AlgorithmSpecification":
                        mine, theirs = _image_of(mine or {}), _image_of(theirs or {})
                    if mine != theirs:
                        raise invalid(f"WarmStartType IdenticalDataAndAlgorithm needs the same {label} as the parent "
                                      f"tuning job {parent_name}; use TransferLearning to change it.")
            parent_trials += len(parent.get("_trials") or [])
        total = parent_trials + int(config["ResourceLimits"]["MaxNumberOfTrainingJobs"])
        if total > MAX_TRAINING_JOBS_PER_TUNING_JOB:
            raise invalid(f"The parent tuning jobs launched {parent_trials} training jobs; together with "
                          f"MaxNumberOfTrainingJobs this exceeds the limit of {MAX_TRAINING_JOBS_PER_TUNING_JOB} "
                          "training jobs per tuning job.")
        return names

    # ------------------------------------------------------------ read
    def _find_tuning_job(self, name: str) -> dict[str, Any] | None:
        """Tuning job names are not case sensitive."""
        record = self.emulator.state.get(KIND, name)
        if record is not None:
            return record
        lowered = name.lower()
        for candidate in self.emulator.state.all(KIND):
            if candidate["HyperParameterTuningJobName"].lower() == lowered:
                return candidate
        return None

    def _tuning_job(self, name: str) -> dict[str, Any]:
        record = self._find_tuning_job(name)
        if record is None:
            raise _tuning_not_found(name)
        return record

    def _tuning_view(self, record: dict[str, Any], summaries: list[dict[str, Any]]) -> dict[str, Any]:
        """The record as ``DescribeHyperParameterTuningJob`` shows it, counters and best jobs read live."""
        out = {k: v for k, v in record.items() if not k.startswith("_")}
        out["TrainingJobStatusCounters"], out["ObjectiveStatusCounters"] = status_counters(summaries)
        objective_type = record["_objective"]["Type"]
        best = best_summary(summaries, objective_type)
        if best is not None:
            out["BestTrainingJob"] = best
        warm = record.get("WarmStartConfig") or {}
        if warm.get("WarmStartType") == "IdenticalDataAndAlgorithm":
            everyone = list(summaries)
            for parent_name in record.get("_parents") or []:
                parent = self.emulator.state.get(KIND, parent_name)
                if parent is not None:
                    everyone += trial_summaries(self.emulator.state, parent)
            overall = best_summary(everyone, objective_type)
            if overall is not None:
                out["OverallBestTrainingJob"] = overall
        end = record.get("HyperParameterTuningEndTime") or time.time()
        out["ConsumedResources"] = {"RuntimeInSeconds": max(0, int(round(end - record["CreationTime"])))}
        return out

    def DescribeHyperParameterTuningJob(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        record = self._tuning_job(params["HyperParameterTuningJobName"])
        return self._tuning_view(record, trial_summaries(self.emulator.state, record))

    def ListHyperParameterTuningJobs(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        def summary(record: dict[str, Any]) -> dict[str, Any]:
            jobs, objectives = status_counters(trial_summaries(self.emulator.state, record))
            out = {k: record[k] for k in SUMMARY_FIELDS if k in record}
            config = record["HyperParameterTuningJobConfig"]
            out.update(Strategy=config["Strategy"], ResourceLimits=config["ResourceLimits"],
                       TrainingJobStatusCounters=jobs, ObjectiveStatusCounters=objectives)
            return out

        items, token = list_records(
            self.emulator.state.all(KIND), {"SortBy": "Name", "SortOrder": "Ascending", **_given(params)},
            name_field="HyperParameterTuningJobName", status_field=STATUS, summary=summary,
        )
        return {"HyperParameterTuningJobSummaries": items, "NextToken": token}

    def ListTrainingJobsForHyperParameterTuningJob(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        record = self._tuning_job(params["HyperParameterTuningJobName"])
        rows = []
        for summary in trial_summaries(self.emulator.state, record):
            metric = summary.get("FinalHyperParameterTuningJobObjectiveMetric")
            rows.append({**summary, "_objective": metric["Value"] if metric else None})
        query = {"SortBy": "Name", "SortOrder": "Ascending", **_given(params)}
        if query["SortBy"] == "FinalObjectiveMetricValue":  # jobs without an objective value are not listed then
            rows = [r for r in rows if r["_objective"] is not None]
        items, token = list_records(
            rows, query, name_field="TrainingJobName", status_field="TrainingJobStatus",
            summary=lambda r: {k: v for k, v in r.items() if not k.startswith("_")},
            sort_fields={"Name": "TrainingJobName", "Status": "TrainingJobStatus",
                         "FinalObjectiveMetricValue": "_objective"},
        )
        return {"TrainingJobSummaries": items, "NextToken": token}

    # ------------------------------------------------------------ stop, delete
    def StopHyperParameterTuningJob(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        from ...runtime.records import transition

        record = self._tuning_job(params["HyperParameterTuningJobName"])
        name, status = record["HyperParameterTuningJobName"], record[STATUS]
        if status in TERMINAL:
            raise invalid(f"The hyperparameter tuning job {name} has already finished (status {status}).")
        if status == "InProgress":
            transition(self.emulator.state, KIND, name, "Stopping")
        self.emulator.jobs.stop(KIND, name)
        return {}

    def DeleteHyperParameterTuningJob(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        record = self._tuning_job(params["HyperParameterTuningJobName"])
        name, status = record["HyperParameterTuningJobName"], record[STATUS]
        if status not in TERMINAL:
            raise invalid(f"The hyperparameter tuning job {name} is {status}; stop it before deleting it.")
        arn = record["HyperParameterTuningJobArn"]
        self.emulator.state.remove_tags(arn, list(self.emulator.state.tags(arn)))
        self.emulator.state.delete(KIND, name)  # its training jobs stay, as on SageMaker
        return {}


# --------------------------------------------------------------------------- validation


def _given(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


def _single_definition(params: dict[str, Any]) -> dict[str, Any]:
    single, several = params.get("TrainingJobDefinition"), params.get("TrainingJobDefinitions")
    if bool(single) == bool(several):
        raise invalid("Exactly one of TrainingJobDefinition and TrainingJobDefinitions must be specified.")
    if several:
        raise invalid("TrainingJobDefinitions (tuning several algorithms in one job) is not supported by the local "
                      "emulator; use TrainingJobDefinition.")
    return dict(single)


def _range_names(ranges: dict[str, Any]) -> list[str]:
    return [item["Name"] for key in ("IntegerParameterRanges", "ContinuousParameterRanges",
                                     "CategoricalParameterRanges") for item in ranges.get(key) or []]


def _number(text: Any, kind: str, bound: str, name: str) -> float:
    label = "an integer" if kind == "Integer" else "a number"
    try:
        value = int(str(text)) if kind == "Integer" else float(str(text))
    except ValueError:
        raise invalid(f"The {bound} '{text}' of the {kind.lower()} hyperparameter '{name}' is not {label}.") from None
    if not math.isfinite(value):
        raise invalid(f"The {bound} '{text}' of the {kind.lower()} hyperparameter '{name}' is not {label}.")
    return float(value)


def _check_ranges(ranges: dict[str, Any], static: dict[str, str]) -> None:
    """SageMaker's rules for ``ParameterRanges``: numeric strings, Min ≤ Max, scaling types."""
    if ranges.get("AutoParameters"):
        raise invalid("AutoParameters (Autotune) are not supported by the local emulator; give explicit ranges.")
    names = _range_names(ranges)
    if not names:
        raise invalid("ParameterRanges must define at least one hyperparameter range.")
    for name in names:
        if names.count(name) > 1:
            raise invalid(f"Hyperparameter '{name}' is given more than one range.")
        if name in static:
            raise invalid(f"Hyperparameter '{name}' is both static (StaticHyperParameters) and tunable "
                          "(ParameterRanges); remove it from one of them.")
    for kind, key in (("Integer", "IntegerParameterRanges"), ("Continuous", "ContinuousParameterRanges")):
        for item in ranges.get(key) or []:
            name = item["Name"]
            low = _number(item["MinValue"], kind, "MinValue", name)
            high = _number(item["MaxValue"], kind, "MaxValue", name)
            if low > high:
                raise invalid(f"The MinValue ({item['MinValue']}) of hyperparameter '{name}' must be less than or "
                              f"equal to its MaxValue ({item['MaxValue']}).")
            scaling = item.get("ScalingType") or "Auto"
            if scaling == "Logarithmic" and low <= 0:
                raise invalid(f"Logarithmic scaling of hyperparameter '{name}' needs a range above 0; its MinValue "
                              f"is {item['MinValue']}.")
            if scaling == "ReverseLogarithmic":
                if kind == "Integer":
                    raise invalid(f"ReverseLogarithmic scaling is valid only for continuous ranges; '{name}' is an "
                                  "integer range.")
                if not (0 <= low and high < 1):
                    raise invalid(f"ReverseLogarithmic scaling of hyperparameter '{name}' needs 0 <= MinValue <= "
                                  f"MaxValue < 1; the range is [{item['MinValue']}, {item['MaxValue']}].")


def _objective(config: dict[str, Any], definition: dict[str, Any]) -> dict[str, str]:
    objective = config.get("HyperParameterTuningJobObjective") or definition.get("TuningObjective")
    if not objective:
        raise invalid("HyperParameterTuningJobObjective is required: give the objective metric name and its Type "
                      "(Maximize or Minimize).")
    return {"Type": objective["Type"], "MetricName": objective["MetricName"]}


def _check_objective(metric: str, definition: dict[str, Any]) -> bool:
    """The objective must be a metric the training jobs report; True when the built-in algorithm reports it."""
    from ...images.registry import resolve
    from ...images.xgboost_algorithm import legacy, metrics

    spec = definition.get("AlgorithmSpecification") or {}
    declared = [m["Name"] for m in spec.get("MetricDefinitions") or []]
    image = resolve(spec.get("TrainingImage") or "")
    static = definition.get("StaticHyperParameters") or {}
    builtin = image is not None and image.framework == "xgboost" and "sagemaker_program" not in static
    legacy_image = image is not None and image.legacy
    objectives = legacy.TUNING_OBJECTIVE_NAMES if legacy_image else metrics.TUNING_OBJECTIVE_NAMES
    if declared:
        if metric not in declared:
            raise invalid(f"The objective metric '{metric}' is not among the MetricDefinitions of the training job "
                          f"definition ({', '.join(declared)}).")
        return builtin and metric in objectives
    if builtin:
        if metric not in objectives:
            shown = ", ".join(objectives)
            raise invalid(f"The objective metric '{metric}' is not a metric of the built-in XGBoost algorithm; "
                          f"use one of: {shown}.")
        return True
    raise invalid(f"The training job definition declares no MetricDefinitions: add one named '{metric}' with a "
                  "regex that finds its value in the training job's logs.")


def _check_strategy(config: dict[str, Any], ranges: dict[str, Any], definition: dict[str, Any]) -> dict[str, Any]:
    """Rules that depend on the strategy; returns the config with SageMaker's defaults filled in."""
    config = {**config, "ResourceLimits": dict(config["ResourceLimits"])}
    limits = config["ResourceLimits"]
    strategy = config["Strategy"]
    config.setdefault("TrainingJobEarlyStoppingType", "Off")
    if int(limits["MaxParallelTrainingJobs"]) < 1:
        raise invalid("MaxParallelTrainingJobs must be at least 1.")
    if config.get("StrategyConfig") and strategy != "Hyperband":
        raise invalid(f"StrategyConfig (HyperbandStrategyConfig) is valid only with the Hyperband strategy, not "
                      f"{strategy}.")
    if strategy == "Grid":
        numeric = [item["Name"] for key in ("IntegerParameterRanges", "ContinuousParameterRanges")
                   for item in ranges.get(key) or []]
        if numeric:
            raise invalid(f"The Grid strategy supports only CategoricalParameterRanges; {', '.join(numeric)} "
                          "must be categorical, or choose another strategy.")
        size = math.prod(len(item["Values"]) for item in ranges.get("CategoricalParameterRanges") or [])
        given = limits.get("MaxNumberOfTrainingJobs")
        if given is not None and int(given) != size:
            raise invalid(f"For the Grid strategy MaxNumberOfTrainingJobs must be omitted or equal to the number of "
                          f"hyperparameter combinations ({size}); it is {given}.")
        limits["MaxNumberOfTrainingJobs"] = size
    elif limits.get("MaxNumberOfTrainingJobs") is None:
        raise invalid(f"ResourceLimits.MaxNumberOfTrainingJobs is required for the {strategy} strategy (only Grid "
                      "may omit it).")
    if int(limits["MaxNumberOfTrainingJobs"]) > MAX_TRAINING_JOBS_PER_TUNING_JOB:
        raise invalid(f"MaxNumberOfTrainingJobs ({limits['MaxNumberOfTrainingJobs']}) exceeds the limit of "
                      f"{MAX_TRAINING_JOBS_PER_TUNING_JOB} training jobs per tuning job.")
    if strategy == "Hyperband":
        if config["TrainingJobEarlyStoppingType"] != "Off":
            raise invalid("TrainingJobEarlyStoppingType must be Off with the Hyperband strategy, which stops "
                          "training jobs itself.")
        low, high = hyperband_resources(config, definition.get("StaticHyperParameters") or {})
        if high is None:
            raise invalid("HyperbandStrategyConfig.MaxResource is missing and cannot be inferred from the static "
                          "hyperparameters epochs, numepochs, n-epochs, n_epochs or num_epochs (for the built-in "
                          "XGBoost algorithm set it to num_round).")
        if high > HYPERBAND_MAX_RESOURCE:
            raise invalid(f"HyperbandStrategyConfig.MaxResource ({high}) exceeds the maximum of "
                          f"{HYPERBAND_MAX_RESOURCE}.")
        if low > high:
            raise invalid(f"HyperbandStrategyConfig.MinResource ({low}) must not exceed MaxResource ({high}).")
    return config


def _check_definition(definition: dict[str, Any]) -> None:
    """What ``CreateTrainingJob`` would reject for every trial is rejected once, up front."""
    spec = definition.get("AlgorithmSpecification") or {}
    if not spec.get("TrainingImage") and not spec.get("AlgorithmName"):
        raise invalid("Either TrainingImage or AlgorithmName must be specified in the AlgorithmSpecification.")
    if not definition.get("ResourceConfig") and not definition.get("HyperParameterTuningResourceConfig"):
        raise invalid("The training job definition needs a ResourceConfig (or a HyperParameterTuningResourceConfig).")
    from ...runtime.tuning import training_resources

    check_channels(definition.get("InputDataConfig"))
    check_checkpoint(definition.get("CheckpointConfig"))

    resources = training_resources(definition)
    if int(resources.get("InstanceCount") or 1) > MAX_INSTANCES:
        raise ServiceError(
            "ResourceLimitExceeded",
            f"The account-level service limit '{resources.get('InstanceType')} for local job usage' is "
            f"{MAX_INSTANCES} Instances; each training job of this tuning job asks for "
            f"{resources['InstanceCount']}.",
        )


def _image_of(spec: dict[str, Any]) -> str:
    return spec.get("TrainingImage") or spec.get("AlgorithmName") or ""
