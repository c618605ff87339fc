"""A hyperparameter tuning job: an Optuna study whose trials are real local training jobs.

SageMaker's tuner is a loop: ask the search strategy for hyperparameters,
launch a training job with them (at most ``MaxParallelTrainingJobs`` at a
time), read the objective metric the job reports, tell the strategy, repeat
until a limit or a completion criterion is reached. Here the strategy is an
Optuna study (Bayesian → TPE, Random → random sampling, Grid → grid
sampling, Hyperband → TPE with Optuna's Hyperband pruner) and each trial is
a training job created through the control plane's own ``CreateTrainingJob``,
so it runs, logs and ends exactly like a job a learner starts by hand.

Intermediate objective values are read live, line by line, through the
trial's ``MetricParser.listener``: that is what SageMaker's early stopping
(a median rule) and Hyperband decide on, and a decision to stop has to reach
a job that may only run for a second.

Where this differs from SageMaker (SageMaker's own algorithms are not
public): the Bayesian strategy is TPE, not a Gaussian process; ``Auto``
scaling is linear; the median rule waits for 3 earlier jobs and skips the
first epoch; a job that fails counts as ``NonRetryableError`` (nothing is
retried); reaching ``MaxRuntimeInSeconds`` stops the running trials and ends
the tuning job ``Completed``; ``ConvergenceDetected`` is accepted but never
fires.
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
import uuid
import warnings
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

from ..protocol.errors import ServiceError
from .job import JobFailure, JobRun, Outcome
from .records import TERMINAL, status_field, transition

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution

log = logging.getLogger(__name__)

KIND = "HyperParameterTuningJob"
STATUS = status_field(KIND)
TRAINING = "TrainingJob"
POLL_SECONDS = 0.05
#: SageMaker gives up when this many training jobs failed and none succeeded (its own FailureReason says so)
FAIL_FAST_ATTEMPTS = 5
#: the median rule needs this many earlier jobs that reached the same epoch before it stops anyone
MEDIAN_MIN_PEERS = 3
#: ... and never decides on the very first epoch, where every configuration looks alike
MEDIAN_WARMUP_EPOCHS = 1
HYPERBAND_REDUCTION_FACTOR = 3
#: how long a stopping tuning job waits for its training jobs to end before it ends itself
STOP_WAIT_SECONDS = 30.0
#: a job that reached Hyperband's MaxResource gets this long to end by itself before it is stopped
MAX_RESOURCE_GRACE_SECONDS = 2.0


@cache
def _optuna() -> Any:
    """Optuna, imported on first use (it costs the daemon's start-up ~0.15 s otherwise), quietened once."""
    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the daemon's log is not a place for every trial
    return optuna


# --------------------------------------------------------------------------- facts about trials
# The control plane's Describe/List handlers and the runner read trials the same way, from these functions.


def objective_value(training: dict[str, Any], metric: str) -> float | None:
    """The trial's final objective value: the last value the job emitted for ``metric``."""
    for item in training.get("FinalMetricDataList") or []:
        if item.get("MetricName") == metric:
            return float(item["Value"])
    return None


def objective_status(training: dict[str, Any], metric: str) -> str:
    """``Succeeded`` once a finished job reported the objective (early-stopped jobs included)."""
    status = training.get("TrainingJobStatus")
    if status in ("InProgress", "Stopping"):
        return "Pending"
    if status in ("Completed", "Stopped") and objective_value(training, metric) is not None:
        return "Succeeded"
    return "Failed"


def trial_summary(training: dict[str, Any], tuning: dict[str, Any], tuned: dict[str, str]) -> dict[str, Any]:
    """A ``HyperParameterTrainingJobSummary`` of one trial."""
    objective = tuning["_objective"]
    summary: dict[str, Any] = {
        "TrainingJobName": training["TrainingJobName"],
        "TrainingJobArn": training["TrainingJobArn"],
        "TuningJobName": tuning["HyperParameterTuningJobName"],
        "CreationTime": training["CreationTime"],
        "TrainingJobStatus": training["TrainingJobStatus"],
        "TunedHyperParameters": dict(tuned),
        "ObjectiveStatus": objective_status(training, objective["MetricName"]),
    }
    for key in ("TrainingStartTime", "TrainingEndTime", "FailureReason"):
        if training.get(key) is not None:
            summary[key] = training[key]
    value = objective_value(training, objective["MetricName"])
    if value is not None and summary["ObjectiveStatus"] == "Succeeded":
        summary["FinalHyperParameterTuningJobObjectiveMetric"] = {
            "Type": objective["Type"], "MetricName": objective["MetricName"], "Value": value}
    return summary


def trial_summaries(state: Any, tuning: dict[str, Any]) -> list[dict[str, Any]]:
    """Summaries of every training job the tuning job launched, in launch order."""
    out = []
    for entry in tuning.get("_trials") or []:
        training = state.get(TRAINING, entry["Name"])
        if training is not None:
            out.append(trial_summary(training, tuning, entry["Tuned"]))
    return out


def status_counters(summaries: list[dict[str, Any]]) -> tuple[dict[str, int], dict[str, int]]:
    """``TrainingJobStatusCounters`` and ``ObjectiveStatusCounters``; each adds up to the number of trials."""
    jobs = {"Completed": 0, "InProgress": 0, "RetryableError": 0, "NonRetryableError": 0, "Stopped": 0}
    objectives = {"Succeeded": 0, "Pending": 0, "Failed": 0}
    for summary in summaries:
        status = summary["TrainingJobStatus"]
        key = {"Stopping": "InProgress", "Failed": "NonRetryableError"}.get(status, status)
        jobs[key] = jobs.get(key, 0) + 1
        objectives[summary["ObjectiveStatus"]] += 1
    return jobs, objectives


def best_summary(summaries: list[dict[str, Any]], objective_type: str) -> dict[str, Any] | None:
    """The summary with the best final objective value (earliest wins a tie), or None."""
    scored = [s for s in summaries if "FinalHyperParameterTuningJobObjectiveMetric" in s]
    if not scored:
        return None
    sign = -1.0 if objective_type == "Maximize" else 1.0
    return min(scored, key=lambda s: sign * s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"])


# --------------------------------------------------------------------------- the search space


@dataclass(frozen=True)
class Dimension:
    """One tuned hyperparameter: its Optuna distribution and how values travel to the job (as strings)."""

    name: str
    kind: str  # "Integer" | "Continuous" | "Categorical"
    distribution: BaseDistribution
    #: ReverseLogarithmic: Optuna searches y = 1 - x on a log scale, so values crowd towards 1
    reverse: bool = False

    def to_text(self, internal: Any) -> str:
        """The hyperparameter value the training job receives (SageMaker passes every value as a string)."""
        if self.kind == "Categorical":
            return str(internal)
        if self.kind == "Integer":
            return str(int(internal))
        return repr(float(1.0 - internal if self.reverse else internal))

    def from_text(self, text: str | None) -> Any | None:
        """The Optuna value of a hyperparameter string, or None if it lies outside this dimension."""
        if text is None:
            return None
        dist: Any = self.distribution
        if self.kind == "Categorical":
            return text if text in dist.choices else None
        try:
            number = float(text)
        except ValueError:
            return None
        if self.kind == "Integer":
            if number != int(number):
                return None
            value: Any = int(number)
        else:
            value = 1.0 - number if self.reverse else number
        return value if dist.low <= value <= dist.high else None


def dimensions(ranges: dict[str, Any]) -> list[Dimension]:
    """Map SageMaker's ``ParameterRanges`` (already validated) onto Optuna distributions.

    ``Auto`` scaling is searched linearly: SageMaker does not document how it chooses.
    """
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    dims = []
    for item in ranges.get("IntegerParameterRanges") or []:
        log_scale = item.get("ScalingType") == "Logarithmic"
        dist = IntDistribution(int(item["MinValue"]), int(item["MaxValue"]), log=log_scale)
        dims.append(Dimension(item["Name"], "Integer", dist))
    for item in ranges.get("ContinuousParameterRanges") or []:
        low, high = float(item["MinValue"]), float(item["MaxValue"])
        scaling = item.get("ScalingType") or "Auto"
        if scaling == "ReverseLogarithmic":
            dims.append(Dimension(item["Name"], "Continuous", FloatDistribution(1.0 - high, 1.0 - low, log=True),
                                  reverse=True))
        else:
            dims.append(Dimension(item["Name"], "Continuous",
                                  FloatDistribution(low, high, log=scaling == "Logarithmic")))
    for item in ranges.get("CategoricalParameterRanges") or []:
        dims.append(Dimension(item["Name"], "Categorical", CategoricalDistribution([str(v) for v in item["Values"]])))
    return dims


def make_sampler(strategy: str, dims: list[Dimension], seed: int | None, budget: int) -> optuna.samplers.BaseSampler:
    """The Optuna sampler that plays SageMaker's search strategy."""
    optuna = _optuna()
    if strategy == "Random":
        return optuna.samplers.RandomSampler(seed=seed)
    if strategy == "Grid":

        class GridSampler(optuna.samplers.GridSampler):
            def after_trial(self, *args: Any, **kwargs: Any) -> None:
                """No ``study.stop()`` (only valid inside ``optimize``): the budget, the grid size, ends the job."""

        space = {d.name: list(d.distribution.choices) for d in dims}  # type: ignore[attr-defined]
        return GridSampler(space, seed=seed)
    # Bayesian and Hyperband: TPE, exploring at random for a third of the budget (3 to 10 trials) first;
    # the "constant liar" keeps parallel trials from all being asked for the same point.
    startup = max(3, min(10, budget // 3))
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, constant_liar=True)


def hyperband_resources(config: dict[str, Any], static: dict[str, str]) -> tuple[int, int | None]:
    """``(MinResource, MaxResource)``; MaxResource inferred from the static epoch hyperparameters as SageMaker does."""
    hyperband = (config.get("StrategyConfig") or {}).get("HyperbandStrategyConfig") or {}
    low = int(hyperband.get("MinResource") or 1)
    high = hyperband.get("MaxResource")
    if high is None:
        for key in ("epochs", "numepochs", "n-epochs", "n_epochs", "num_epochs"):
            try:
                high = int(float(static[key]))
                break
            except (KeyError, ValueError):
                continue
    return low, int(high) if high is not None else None


# --------------------------------------------------------------------------- the runner


@dataclass
class Trial:
    """One training job of the tuning job, as the runner tracks it."""

    number: int
    name: str
    tuned: dict[str, str]
    study_trial: optuna.Trial
    series: list[float] = field(default_factory=list)  # the objective values seen so far, one per epoch
    cursor: int = 0  # how many points of the job's metric series have been read
    finished: bool = False
    stop_reason: str | None = None  # why the tuner stopped it: "median", "hyperband", "max-resource", "tuner"
    max_resource_at: float | None = None  # when it reported Hyperband's MaxResource-th epoch


class TuningRun(JobRun):
    """Runs one hyperparameter tuning job; ``stop()`` may be called from any thread."""

    KIND = KIND
    END_FIELD = "HyperParameterTuningEndTime"

    def __init__(self, emulator: Any, name: str) -> None:
        super().__init__(emulator, name)
        self.trials: list[Trial] = []
        self._lock = threading.RLock()  # the study and the trials' series are shared with log-reader threads
        self._wake = threading.Event()
        self._pending: tuple[optuna.Trial, dict[str, str]] | None = None
        self._halt: str | None = None  # why no further training job is launched
        self._best: float | None = None
        self._not_improving = 0
        self._succeeded = 0
        self._failed = 0
        self._first_failure: str | None = None

    # ------------------------------------------------------------ setup
    def _prepare(self) -> None:
        record = self.record
        config = record["HyperParameterTuningJobConfig"]
        self.definition: dict[str, Any] = record["TrainingJobDefinition"]
        self.metric: str = record["_objective"]["MetricName"]
        self.maximize = record["_objective"]["Type"] == "Maximize"
        self.strategy: str = config["Strategy"]
        self.dims = dimensions(record["_ranges"])
        self.distributions = {d.name: d.distribution for d in self.dims}
        limits = config["ResourceLimits"]
        self.parallel = int(limits["MaxParallelTrainingJobs"])
        self.budget = int(limits["MaxNumberOfTrainingJobs"])
        runtime = limits.get("MaxRuntimeInSeconds")
        self.deadline = record["CreationTime"] + float(runtime) if runtime else None
        self.early_stopping = config.get("TrainingJobEarlyStoppingType") == "Auto"
        self.criteria = config.get("TuningJobCompletionCriteria") or {}
        optuna = _optuna()
        pruner: optuna.pruners.BasePruner = optuna.pruners.NopPruner()
        self.max_resource: int | None = None
        if self.strategy == "Hyperband":
            low, self.max_resource = hyperband_resources(config, self.definition.get("StaticHyperParameters") or {})
            pruner = optuna.pruners.HyperbandPruner(min_resource=low, max_resource=self.max_resource or "auto",
                                                    reduction_factor=HYPERBAND_REDUCTION_FACTOR)
        sampler = make_sampler(self.strategy, self.dims, config.get("RandomSeed"), self.budget)
        self.study = optuna.create_study(direction="maximize" if self.maximize else "minimize", sampler=sampler,
                                         pruner=pruner, study_name=self.name)
        self._seed_from_parents()

    def _seed_from_parents(self) -> None:
        """Warm start: every parent trial that reported the objective becomes a finished trial of the study."""
        warm = self.record.get("WarmStartConfig")
        if not warm:
            return
        state = self.emulator.state
        for parent_ref in warm["ParentHyperParameterTuningJobs"]:
            parent = state.get(KIND, parent_ref["HyperParameterTuningJobName"]) or {}
            for entry in parent.get("_trials") or []:
                training = state.get(TRAINING, entry["Name"]) or {}
                value = objective_value(training, self.metric)
                if value is None or objective_status(training, self.metric) != "Succeeded":
                    continue
                hps = training.get("HyperParameters") or {}
                params = {d.name: d.from_text(hps.get(d.name)) for d in self.dims}
                if any(v is None for v in params.values()):
                    continue  # outside the new ranges (transfer learning may narrow them)
                self.study.add_trial(_optuna().trial.create_trial(
                    params=params, distributions=self.distributions, value=value))

    # ------------------------------------------------------------ lifecycle
    def execute(self) -> Outcome:
        self._prepare()
        return self._loop()

    def _release(self, outcome: Outcome) -> None:
        """A failed tuning job stops the training jobs it launched and waits for them to end."""
        if outcome.status == "Failed" and self.abort_reason is None:
            self._stop_trials("tuner", "Stopped because the hyperparameter tuning job failed")
            self._wait_for_trials()

    def _on_stop(self) -> None:
        self._wake.set()

    def _end_fields(self, now: float) -> dict[str, Any]:
        created = self.record.get("CreationTime") or now
        return {"ConsumedResources": {"RuntimeInSeconds": max(0, int(round(now - created)))}}

    def _loop(self) -> Outcome:
        while True:
            self._collect()
            self._enforce_max_resource()
            if self.stop_requested.is_set():
                return self._end_stopped()
            self._check_limits()
            if self._halt is None:
                self._launch()
            if not self._active() and (self._halt is not None or len(self.trials) >= self.budget):
                return self._end_done()
            self._wake.wait(POLL_SECONDS)
            self._wake.clear()

    def _active(self) -> list[Trial]:
        return [t for t in self.trials if not t.finished]

    def _check_limits(self) -> None:
        """Completion criteria, the runtime limit and SageMaker's give-up rule stop further launches."""
        if self._halt is not None:
            return
        target = self.criteria.get("TargetObjectiveMetricValue")
        patience = (self.criteria.get("BestObjectiveNotImproving") or {}).get("MaxNumberOfTrainingJobsNotImproving")
        if target is not None and self._best is not None and self._reached(self._best, float(target)):
            self._halt = "target"
        elif patience and self._not_improving >= int(patience):
            self._halt = "not-improving"
        elif self.deadline is not None and time.time() >= self.deadline:
            self._halt = "runtime"
        elif self._succeeded == 0 and self._failed >= FAIL_FAST_ATTEMPTS:
            self._halt = "failing"
        if self._halt in ("target", "not-improving", "runtime"):
            message = {"target": "the objective reached TargetObjectiveMetricValue",
                       "not-improving": "the best objective stopped improving (BestObjectiveNotImproving)",
                       "runtime": "the tuning job reached its MaxRuntimeInSeconds"}[self._halt]
            self._stop_trials("tuner", f"Stopped by the hyperparameter tuning job: {message}")

    def _reached(self, value: float, target: float) -> bool:
        return value >= target if self.maximize else value <= target

    # ------------------------------------------------------------ launching trials
    def _launch(self) -> None:
        while (len(self._active()) < self.parallel and len(self.trials) < self.budget
               and not self.stop_requested.is_set()):
            if self._pending is None:
                with self._lock:
                    study_trial = self.study.ask(self.distributions)
                tuned = {d.name: d.to_text(study_trial.params[d.name]) for d in self.dims}
                self._pending = (study_trial, tuned)
            study_trial, tuned = self._pending
            number = len(self.trials) + 1
            name = f"{self.name}-{number:03d}-{uuid.uuid4().hex[:8]}"
            try:
                self._create_training_job(name, tuned)
            except ServiceError as error:
                if error.code == "ResourceLimitExceeded":
                    return  # the local instances are busy: retry the same hyperparameters on the next tick
                raise JobFailure(f"ClientError: {error.message}") from error
            self._pending = None
            trial = Trial(number, name, tuned, study_trial)
            self.trials.append(trial)
            self.record = self.emulator.state.update(KIND, self.name, _trials=[
                {"Name": t.name, "Tuned": t.tuned} for t in self.trials]) or self.record
            if self.early_stopping or self.strategy == "Hyperband":
                self._attach(trial)

    def _create_training_job(self, name: str, tuned: dict[str, str]) -> None:
        """Create the trial through the control plane's own ``CreateTrainingJob``, as SageMaker's tuner does
        (validated as a client's request would be)."""
        from ..services.context import Context, call

        d = self.definition
        hyperparameters = {**(d.get("StaticHyperParameters") or {}), **tuned}
        if self.record.get("_builtin"):
            hyperparameters["_tuning_objective_metric"] = self.metric
        spec = {k: v for k, v in d["AlgorithmSpecification"].items()
                if k in ("TrainingImage", "AlgorithmName", "TrainingInputMode", "MetricDefinitions")}
        stopping = {"MaxRuntimeInSeconds": 86400, **(d.get("StoppingCondition") or {})}
        arn = self.record["HyperParameterTuningJobArn"]
        tags = [{"Key": k, "Value": v} for k, v in self.emulator.state.tags(arn).items()]
        request: dict[str, Any] = {
            "TrainingJobName": name, "AlgorithmSpecification": spec, "HyperParameters": hyperparameters,
            "ResourceConfig": training_resources(d), "StoppingCondition": stopping, "TuningJobArn": arn,
            "Tags": tags or None,
        }
        for key in ("RoleArn", "InputDataConfig", "OutputDataConfig", "VpcConfig", "EnableNetworkIsolation",
                    "EnableInterContainerTrafficEncryption", "EnableManagedSpotTraining", "CheckpointConfig",
                    "RetryStrategy"):
            if d.get(key) is not None:
                request[key] = d[key]
        if d.get("Environment"):
            request["Environment"] = d["Environment"]
        call(self.emulator.sagemaker, "CreateTrainingJob", Context.internal(arn),
             {k: v for k, v in request.items() if v is not None})

    # ------------------------------------------------------------ live metrics: early stopping and Hyperband
    def _attach(self, trial: Trial) -> None:
        """Listen to the trial's metric lines as they stream (reads the backlog too, so nothing is missed)."""
        run = next((r for r in self.emulator.jobs.running(TRAINING) if r.name == trial.name), None)
        if run is None:
            return  # already over: its final metrics are in its record
        parser = run.metrics
        parser.listener = lambda name, _value, _ts: self._on_metric(trial, parser, name)
        self._read_series(trial, parser)

    def _on_metric(self, trial: Trial, parser: Any, name: str) -> None:
        """Runs on the trial's log-reader thread: it must never raise, or the job's output stops being read."""
        if name != self.metric:
            return
        try:
            self._read_series(trial, parser)
        except Exception:
            log.exception("tuning job %s: reading the objective of %s failed", self.name, trial.name)

    def _read_series(self, trial: Trial, parser: Any) -> None:
        with self._lock:
            points = parser.series.get(self.metric, [])
            while trial.cursor < len(points):
                value = float(points[trial.cursor][1])
                epoch = trial.cursor
                trial.cursor += 1
                trial.series.append(value)
                if trial.finished or trial.stop_reason is not None:
                    continue
                verdict = self._judge(trial, epoch, value)
                if verdict is not None:
                    trial.stop_reason, message = verdict
                    self._stop_training_job(trial, message)

    def _judge(self, trial: Trial, epoch: int, value: float) -> tuple[str, str] | None:
        """Whether a trial should stop after reporting ``value`` for ``epoch`` (0-based)."""
        step = epoch + 1  # Hyperband's resource: epochs done
        trial.study_trial.report(value, step)
        if self.strategy == "Hyperband":
            if self.max_resource is not None and step >= self.max_resource:
                trial.max_resource_at = trial.max_resource_at or time.monotonic()  # stopped if it goes on
                return None
            if trial.study_trial.should_prune():
                return "hyperband", f"Stopped by Hyperband after {step} epochs: {self.metric}={value:g} did not " \
                                    "rank high enough among the jobs at this resource level"
            return None
        if not self.early_stopping or epoch < MEDIAN_WARMUP_EPOCHS:
            return None
        peers = [t for t in self.trials if t.number < trial.number and len(t.series) > epoch]
        if len(peers) < MEDIAN_MIN_PEERS:
            return None
        median = statistics.median(statistics.fmean(t.series[: epoch + 1]) for t in peers)
        worse = value < median if self.maximize else value > median
        if not worse:
            return None
        return "median", (f"Stopped early by the hyperparameter tuning job (TrainingJobEarlyStoppingType=Auto): "
                          f"{self.metric}={value:g} at epoch {epoch} is worse than the median {median:g} of the "
                          f"running averages of {len(peers)} previous training jobs")

    def _enforce_max_resource(self) -> None:
        """Hyperband stops a job that reached MaxResource, unless it ends by itself right then."""
        with self._lock:
            for trial in self._active():
                if (trial.max_resource_at is not None and trial.stop_reason is None
                        and time.monotonic() - trial.max_resource_at > MAX_RESOURCE_GRACE_SECONDS):
                    trial.stop_reason = "max-resource"
                    self._stop_training_job(trial, f"Stopped by Hyperband: the job reached MaxResource "
                                                   f"({self.max_resource})")

    def _stop_training_job(self, trial: Trial, message: str) -> None:
        transition(self.emulator.state, TRAINING, trial.name, "Stopping", "Stopping", message=message)
        self.emulator.jobs.stop(TRAINING, trial.name)

    def _stop_trials(self, reason: str, message: str) -> None:
        with self._lock:
            for trial in self._active():
                if trial.stop_reason is None:
                    trial.stop_reason = reason
                    self._stop_training_job(trial, message)

    # ------------------------------------------------------------ finished trials
    def _collect(self) -> None:
        for trial in self._active():
            training = self.emulator.state.get(TRAINING, trial.name)
            if training is not None and training.get("TrainingJobStatus") in TERMINAL:
                self._settle(trial, training)

    def _settle(self, trial: Trial, training: dict[str, Any]) -> None:
        """Tell the study how the trial ended and update the counters the completion criteria use."""
        value = objective_value(training, self.metric)
        succeeded = objective_status(training, self.metric) == "Succeeded"
        TrialState = _optuna().trial.TrialState
        with self._lock:
            trial.finished = True
            if not succeeded:
                self.study.tell(trial.study_trial, state=TrialState.FAIL)
            elif training["TrainingJobStatus"] == "Completed" or trial.stop_reason == "max-resource":
                self.study.tell(trial.study_trial, value)
            elif trial.series:
                self.study.tell(trial.study_trial, state=TrialState.PRUNED)  # its last intermediate value counts
            else:
                self.study.tell(trial.study_trial, value)
        if not succeeded:
            self._failed += 1
            if self._first_failure is None:
                reason = training.get("FailureReason") or f"it did not report the objective metric {self.metric}"
                self._first_failure = f"{trial.name}: {reason}"
            return
        assert value is not None
        self._succeeded += 1
        if self._best is None or (value > self._best if self.maximize else value < self._best):
            self._best = value
            self._not_improving = 0
        else:
            self._not_improving += 1
        self.record = self.emulator.state.update(KIND, self.name, TuningJobCompletionDetails={
            "NumberOfTrainingJobsObjectiveNotImproving": self._not_improving}) or self.record

    def _wait_for_trials(self, timeout: float = STOP_WAIT_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while self._active() and time.monotonic() < deadline:
            self._collect()
            time.sleep(POLL_SECONDS)

    # ------------------------------------------------------------ ending
    def _end_stopped(self) -> Outcome:
        if self.abort_reason is None:  # on shutdown the job manager stops the training jobs itself
            self._stop_trials("tuner", "Stopped because its hyperparameter tuning job was stopped")
        self._wait_for_trials()
        return self.stopped()

    def _end_done(self) -> Outcome:
        if self._succeeded == 0:
            attempts = len(self.trials)
            detail = f" First failure: {self._first_failure}" if self._first_failure else ""
            return Outcome.failed(f"No training job succeeded after {attempts} attempts. Please take a look at the "
                                  f"training job failures to get more details.{detail}")
        return Outcome("Completed")


def training_resources(definition: dict[str, Any]) -> dict[str, Any]:
    """The trial's ``ResourceConfig``: the definition's, else the first HyperParameterTuningResourceConfig choice."""
    if definition.get("ResourceConfig"):
        return dict(definition["ResourceConfig"])
    tuning = definition.get("HyperParameterTuningResourceConfig") or {}
    first = (tuning.get("InstanceConfigs") or [{}])[0]
    out = {"InstanceType": first.get("InstanceType") or tuning.get("InstanceType") or "ml.m5.xlarge",
           "InstanceCount": first.get("InstanceCount") or tuning.get("InstanceCount") or 1,
           "VolumeSizeInGB": first.get("VolumeSizeInGB") or tuning.get("VolumeSizeInGB") or 30}
    return out
