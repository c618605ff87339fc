"""An AutoML (Autopilot) job from ``InProgress`` to ``Completed``/``Failed``/``Stopped``, locally.

ENSEMBLING mode (what ``AUTO`` resolves to below 100 MB of input, ``runtime.automl_reports``), as Autopilot runs it:
``AnalyzingData`` (the data is read, checked as SageMaker checks it, the problem type and objective
inferred when not given, and split into training and validation sets written under
``<S3OutputPath>/<job>/data-split/``), then ``TrainingModels``: one training job of the
``autogluon-training`` image (``images.autopilot.train``: AutoGluon-Tabular in its own environment)
whose models are the candidates, each scored on the validation split. Every candidate names that
training job in ``CandidateSteps`` and deploys as one ``autogluon-inference`` container.

HYPERPARAMETER_TUNING mode is ``runtime.automl_hpo``: the same analysis, then ``FeatureEngineering`` and
``ModelTuning`` (a tuning job of the built-in XGBoost algorithm), each trial a candidate.

The completion criteria bound the work: ``MaxCandidates`` (the number of candidates),
``MaxRuntimePerTrainingJobInSeconds`` (the training job's ``MaxRuntimeInSeconds``) and
``MaxAutoMLJobRuntimeInSeconds`` (the whole job); AutoGluon's ``time_limit`` is derived from the
smaller of the two runtimes so that it ends its fit in time. ``ModelDeployConfig`` deploys the best
candidate to an endpoint (``DeployingModel``, ``ModelDeployResult``) before the job completes.

After the candidates, ``runtime.automl_reports`` writes the candidate definition notebook and the best
candidate's explainability (``GeneratingExplainabilityReport``: a Clarify job) and model insights
(``GeneratingModelInsightsReport``) reports.
"""

from __future__ import annotations

import io
import json
import logging
import math
import shutil
import tarfile
import time
import uuid
from typing import Any

from ..images.autopilot import CANDIDATE_METRICS, CANDIDATE_MODEL_ENV, CLASSIFICATION_KEYS, MINIMIZED
from . import staging
from .job import JobFailure, JobRun, Outcome
from .records import TERMINAL, transition

log = logging.getLogger(__name__)

KIND = "AutoMLJob"
TRAINING = "TrainingJob"
#: the AutoGluon containers (AWS's AutoGluon DLC repositories; the account is the DLCs')
IMAGE_ACCOUNT = "763104351884"
IMAGE_TAG = "1.6.3-cpu-py311"
#: SageMaker's minimum number of rows for an Autopilot data set
MIN_ROWS = 500
#: a target with more distinct numeric values than this is a regression target
REGRESSION_MIN_VALUES = 100
POLL_SECONDS = 0.25
#: seconds of the per-job runtime kept for AutoGluon's import, the scoring of candidates and the upload
OVERHEAD_SECONDS = 30
DEFAULT_TIME_LIMIT = 300
DEPLOY_TIMEOUT_SECONDS = 600
DEFAULT_OBJECTIVES = {"BinaryClassification": "F1", "MulticlassClassification": "Accuracy", "Regression": "MSE"}
SUPPORTED_CONTENT_TYPES = ("text/csv;header=present", "text/csv")


def image_uri(repository: str, region: str) -> str:
    return f"{IMAGE_ACCOUNT}.dkr.ecr.{region}.amazonaws.com/{repository}:{IMAGE_TAG}"


def tabular(record: dict[str, Any]) -> dict[str, Any]:
    return (record.get("AutoMLProblemTypeConfig") or {}).get("TabularJobConfig") or {}


def infer_problem_type(target: Any) -> str:
    """Autopilot's inference: two distinct values → binary; a numeric target with many values → regression."""
    import pandas as pd

    values = target.dropna()
    distinct = values.nunique()
    if distinct == 2:
        return "BinaryClassification"
    if pd.api.types.is_numeric_dtype(values) and (pd.api.types.is_float_dtype(values) or
                                                  distinct > REGRESSION_MIN_VALUES):
        return "Regression"
    return "MulticlassClassification"


class AutoMLRun(JobRun):
    """Runs one AutoML job; its candidates' training job is an ordinary training job anyone can describe."""

    KIND = KIND
    END_FIELD = "EndTime"
    WORK_FOLDER = "automl"

    def __init__(self, emulator: Any, name: str) -> None:
        super().__init__(emulator, name)
        self.training_name: str | None = None
        self.tuning_name: str | None = None  # HYPERPARAMETER_TUNING mode's tuning job
        self.frames: tuple[Any, Any] = (None, None)  # the training and validation splits
        criteria = tabular(self.record).get("CompletionCriteria") or {}
        self.job_limit = float(criteria.get("MaxAutoMLJobRuntimeInSeconds") or 30 * 86400)
        self.trial_limit = float(criteria.get("MaxRuntimePerTrainingJobInSeconds") or 86400)
        self.runtime_reached = False

    # ------------------------------------------------------------ statuses
    @classmethod
    def end_record(cls, state: Any, name: str, status: str, secondary: str | None = None,
                   **fields: Any) -> dict[str, Any] | None:
        fields.setdefault(cls.END_FIELD, time.time())
        fields["AutoMLJobSecondaryStatus"] = secondary or status
        return transition(state, KIND, name, status, None, _pids=None, **fields)

    def _secondary(self, status: str) -> None:
        self._check_stop()
        self._set(AutoMLJobSecondaryStatus=status)

    # ------------------------------------------------------------ the run
    def execute(self) -> Outcome:
        config = tabular(self.record)
        mode = config.get("Mode") or "AUTO"
        self._secondary("AnalyzingData")
        frame = self._load()
        from . import automl_reports

        mode = automl_reports.resolve_mode(self, mode)
        target = config["TargetAttributeName"]
        problem_type, objective = self._resolve(frame, target, config)
        train_uri, validation_uri = self._split(frame, target)
        self._explore(frame, target, problem_type, objective, train_uri)
        if config.get("GenerateCandidateDefinitionsOnly"):
            return Outcome("Completed", secondary="CandidateDefinitionsGenerated")
        secondary = "Completed"
        if mode == "HYPERPARAMETER_TUNING":
            from . import automl_hpo

            context = automl_hpo.feature_engineering(self, self.frames[0], self.frames[1], target, problem_type)
            tuning = automl_hpo.tune(self, context, problem_type, objective)
            candidates = automl_hpo.candidates(self, context, tuning, problem_type, objective)
            if not candidates:
                raise JobFailure(f"ClientError: No training job of the tuning job {self.tuning_name} completed: "
                                 f"{tuning.get('FailureReason') or 'see its training jobs'}")
            if len(candidates) >= int(self._criteria().get("MaxCandidates") or automl_hpo.DEFAULT_TRIALS):
                secondary = "MaxCandidatesReached"
        else:
            self._secondary("TrainingModels")
            training = self._train(train_uri, validation_uri, target, problem_type, objective)
            candidates = self._candidates(training, problem_type, objective)
            if not candidates:
                raise JobFailure("ClientError: No candidate was trained: see the training job "
                                 f"{training['TrainingJobName']}'s log.")
        best = candidates[0]
        self._set(_candidates=candidates, BestCandidate=best)
        failures = automl_reports.generate(self, candidates, mode, problem_type, objective, target,
                                           context if mode == "HYPERPARAMETER_TUNING" else None)
        self._set(_candidates=candidates, BestCandidate=best,
                  **({"PartialFailureReasons": [{"PartialFailureMessage": f} for f in failures]} if failures else {}))
        secondary = "MaxAutoMLJobRuntimeReached" if self.runtime_reached else secondary
        deploy = self.record.get("ModelDeployConfig") or {}
        if deploy.get("AutoGenerateEndpointName") or deploy.get("EndpointName"):
            error = self._deploy(best, deploy)
            if error:
                return Outcome("Completed", {"BestCandidate": best, "PartialFailureReasons": [
                    *[{"PartialFailureMessage": f} for f in failures], {"PartialFailureMessage": error}]},
                    secondary="ModelDeploymentError")
        return Outcome("Completed", {"BestCandidate": best}, secondary=secondary)

    def _deploy(self, best: dict[str, Any], deploy: dict[str, Any]) -> str | None:
        """``ModelDeployConfig``: the best candidate as a model, an endpoint configuration and an endpoint
        (``DeployingModel`` until it is ``InService``); the error that stopped it, or None."""
        from ..services.context import Context, call

        self._secondary("DeployingModel")
        endpoint = deploy.get("EndpointName") or f"{self.name[:50]}-{uuid.uuid4().hex[:8]}"
        ctx = Context.internal(self.record["AutoMLJobArn"])
        try:
            call(self.emulator.sagemaker, "CreateModel", ctx, {
                "ModelName": endpoint, "ExecutionRoleArn": self.record["RoleArn"],
                "Containers": best["InferenceContainers"]})
            call(self.emulator.sagemaker, "CreateEndpointConfig", ctx, {
                "EndpointConfigName": endpoint, "ProductionVariants": [{
                    "VariantName": "AllTraffic", "ModelName": endpoint, "InstanceType": "ml.m5.large",
                    "InitialInstanceCount": 1}]})
            call(self.emulator.sagemaker, "CreateEndpoint", ctx, {"EndpointName": endpoint,
                                                                  "EndpointConfigName": endpoint})
        except Exception as exc:  # a modelled error (a name in use …): the job completes without its endpoint
            return f"Deploying the best candidate failed: {exc}"
        self._set(ModelDeployResult={"EndpointName": endpoint})
        limit = time.monotonic() + DEPLOY_TIMEOUT_SECONDS
        while time.monotonic() < limit:
            status = (self.emulator.state.get("Endpoint", endpoint) or {}).get("EndpointStatus")
            if status == "InService":
                return None
            if status in ("Failed", None):
                reason = (self.emulator.state.get("Endpoint", endpoint) or {}).get("FailureReason", "deleted")
                return f"The endpoint {endpoint} of the best candidate failed: {reason}"
            self._check_stop()
            time.sleep(POLL_SECONDS)
        return f"The endpoint {endpoint} was not InService after {DEPLOY_TIMEOUT_SECONDS} s."

    def _load(self) -> Any:
        """The training channel's CSV files (each with a header) as one frame; checked as SageMaker does."""
        import pandas as pd

        channels = self.record.get("AutoMLJobInputDataConfig") or []
        channel = next((c for c in channels if (c.get("ChannelType") or "training") == "training"), channels[0])
        source = channel["DataSource"]["S3DataSource"]
        folder = self.root / "input"
        if folder.exists():
            shutil.rmtree(folder)
        count = staging.stage_prefix(self.emulator.s3.store, source["S3Uri"], folder,
                                     gzip_input=channel.get("CompressionType") == "Gzip",
                                     role_arn=self.record.get("RoleArn", ""), region=self.emulator.region)
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        if not count or not files:
            raise JobFailure(f"ClientError: No data found at {source['S3Uri']}: the S3 prefix holds no objects.")
        frames = []
        for path in files:
            try:
                frames.append(pd.read_csv(path, low_memory=False))
            except (ValueError, UnicodeDecodeError) as exc:
                raise JobFailure(f"ClientError: Could not read {path.name} as CSV with a header: {exc}") from None
        target = tabular(self.record)["TargetAttributeName"]
        for path, frame in zip(files, frames, strict=True):
            if target not in frame.columns:
                shown = ", ".join(map(str, frame.columns[:30]))
                raise JobFailure(f"ClientError: The target attribute '{target}' is not in the header of the input "
                                 f"data file {path.name} (columns: {shown}). The first row of every CSV file must "
                                 "be a header naming the columns.")
        frame = pd.concat(frames, ignore_index=True)
        frame = frame[frame[target].notna()]
        if len(frame) < MIN_ROWS:
            raise JobFailure(f"ClientError: The input data has {len(frame)} rows with a target value; Autopilot needs "
                             f"at least {MIN_ROWS} rows.")
        if frame.shape[1] < 2:
            raise JobFailure("ClientError: The input data has no column besides the target attribute.")
        return frame

    def _resolve(self, frame: Any, target: str, config: dict[str, Any]) -> tuple[str, str]:
        """The problem type and objective, given or inferred; recorded as ``ResolvedAttributes``."""
        inferred = infer_problem_type(frame[target])
        problem_type = config.get("ProblemType") or inferred
        distinct = frame[target].nunique()
        if problem_type == "BinaryClassification" and distinct != 2:
            raise JobFailure(f"ClientError: ProblemType is BinaryClassification but the target attribute '{target}' "
                             f"has {distinct} distinct values; a binary target has exactly 2.")
        if problem_type == "MulticlassClassification" and distinct < 3:
            raise JobFailure(f"ClientError: ProblemType is MulticlassClassification but the target attribute "
                             f"'{target}' has {distinct} distinct values; it needs at least 3.")
        objective = (self.record.get("AutoMLJobObjective") or {}).get("MetricName") or \
            DEFAULT_OBJECTIVES[problem_type]
        from ..services.sagemaker.automl import OBJECTIVES

        if objective not in OBJECTIVES[problem_type]:
            raise JobFailure(f"ClientError: The objective metric {objective} is not valid for the problem type "
                             f"{problem_type} (inferred from the target attribute '{target}'). Valid metrics: "
                             f"{', '.join(OBJECTIVES[problem_type])}.")
        criteria = {k: v for k, v in (config.get("CompletionCriteria") or {}).items()}
        criteria.setdefault("MaxCandidates", 250)
        criteria.setdefault("MaxRuntimePerTrainingJobInSeconds", 86400)
        criteria.setdefault("MaxAutoMLJobRuntimeInSeconds", 2592000)
        resolved = {"AutoMLJobObjective": {"MetricName": objective},
                    "CompletionCriteria": criteria,
                    "AutoMLProblemTypeResolvedAttributes": {"TabularResolvedAttributes": {
                        "ProblemType": problem_type}}}
        self._set(ResolvedAttributes=resolved)
        return problem_type, objective

    def _split(self, frame: Any, target: str) -> tuple[str, str]:
        """80/20 (``DataSplitConfig.ValidationFraction``) unless a validation channel is given; uploaded to S3."""
        import pandas as pd

        fraction = float((self.record.get("DataSplitConfig") or {}).get("ValidationFraction") or 0.2)
        channels = self.record.get("AutoMLJobInputDataConfig") or []
        given = next((c for c in channels if c.get("ChannelType") == "validation"), None)
        if given is not None:
            train = frame
            folder = self.root / "validation"
            staging.stage_prefix(self.emulator.s3.store, given["DataSource"]["S3DataSource"]["S3Uri"], folder,
                                 gzip_input=given.get("CompressionType") == "Gzip", region=self.emulator.region)
            validation = pd.concat([pd.read_csv(p, low_memory=False) for p in sorted(folder.rglob("*"))
                                    if p.is_file()], ignore_index=True)
        else:
            shuffled = frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
            cut = len(shuffled) - max(1, int(round(len(shuffled) * fraction)))
            train, validation = shuffled.iloc[:cut], shuffled.iloc[cut:]
        self.frames = (train, validation)
        out = self._output_prefix()
        uris = []
        for part, data in (("train", train), ("validation", validation)):
            path = self.root / f"{part}.csv"
            data.to_csv(path, index=False)
            uri = f"{out}/data-split/{part}/{part}.csv"
            staging.upload_file(self.emulator.s3.store, path, uri)
            uris.append(uri.rsplit("/", 1)[0] + "/")
        return uris[0], uris[1]

    def _explore(self, frame: Any, target: str, problem_type: str, objective: str, train_uri: str) -> None:
        """The data exploration notebook, where SageMaker puts it: ``AutoMLJobArtifacts``."""
        from .automl_notebooks import NOTEBOOK_NAME, exploration_notebook

        channels = self.record.get("AutoMLJobInputDataConfig") or []
        source = channels[0]["DataSource"]["S3DataSource"]["S3Uri"] if channels else ""
        body = exploration_notebook(frame, job=self.name, target=target, problem_type=problem_type,
                                    objective=objective, source=source, train_uri=train_uri)
        uri = (f"{self._output_prefix()}/sagemaker-automl-candidates/{self.name[:20]}-pr-1-{uuid.uuid4().hex[:8]}"
               f"/notebooks/{NOTEBOOK_NAME}")
        bucket, key = staging.parse_s3_uri(uri)
        self.emulator.s3.store.put_bytes(bucket, key, body, content_type="application/x-ipynb+json")
        self._set(AutoMLJobArtifacts={"DataExplorationNotebookLocation": uri})

    def _criteria(self) -> dict[str, Any]:
        return tabular(self.record).get("CompletionCriteria") or {}

    def _output_prefix(self) -> str:
        return f"{self.record['OutputDataConfig']['S3OutputPath'].rstrip('/')}/{self.name}"

    # ------------------------------------------------------------ the candidates' training job
    def _time_limit(self) -> int:
        left = self.job_limit - (time.time() - self.started_at)
        budget = min(self.trial_limit, left)
        if budget >= 86400 and self.job_limit >= 30 * 86400:
            return DEFAULT_TIME_LIMIT
        return max(10, int(budget - min(OVERHEAD_SECONDS, budget / 3)))

    def _train(self, train_uri: str, validation_uri: str, target: str, problem_type: str,
               objective: str) -> dict[str, Any]:
        from ..services.context import Context, call

        criteria = tabular(self.record).get("CompletionCriteria") or {}
        name = f"{self.name[:20]}-t1-{uuid.uuid4().hex[:8]}"
        self.training_name = name
        self._set(_training=name)
        left = max(1, int(self.job_limit - (time.time() - self.started_at)))
        channels = [{"ChannelName": channel, "ContentType": "text/csv",
                     "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri,
                                                     "S3DataDistributionType": "FullyReplicated"}}}
                    for channel, uri in (("train", train_uri), ("validation", validation_uri))]
        hyperparameters = {"target": target, "problem_type": problem_type, "objective": objective,
                           "time_limit": str(self._time_limit())}
        if criteria.get("MaxCandidates"):
            hyperparameters["max_candidates"] = str(criteria["MaxCandidates"])
        request = {
            "TrainingJobName": name, "RoleArn": self.record["RoleArn"],
            "AlgorithmSpecification": {
                "TrainingImage": image_uri("autogluon-training", self.emulator.region), "TrainingInputMode": "File",
                "ContainerEntrypoint": ["python3", "-m", "sagemaker_emulator.images.autopilot", "train"]},
            "HyperParameters": hyperparameters, "InputDataConfig": channels,
            "OutputDataConfig": {"S3OutputPath": f"{self._output_prefix()}/tuning"},
            "ResourceConfig": {"InstanceType": "ml.m5.2xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
            "StoppingCondition": {"MaxRuntimeInSeconds": max(1, int(min(self.trial_limit, left)))},
        }
        call(self.emulator.sagemaker, "CreateTrainingJob", Context.internal(self.record["AutoMLJobArn"]), request)
        return self._wait(name)

    def _wait(self, name: str) -> dict[str, Any]:
        """The training job's final record; a stop or ``MaxAutoMLJobRuntimeInSeconds`` stops it first."""
        deadline = self.started_at + self.job_limit
        while True:
            training = self.emulator.state.get(TRAINING, name) or {}
            if training.get("TrainingJobStatus") in TERMINAL:
                break
            if self.stop_requested.is_set() or time.time() > deadline:
                self.runtime_reached = not self.stop_requested.is_set()
                self.emulator.jobs.stop(TRAINING, name)
                self._wait_end(name)
                self._check_stop()
                training = self.emulator.state.get(TRAINING, name) or {}
                break
            time.sleep(POLL_SECONDS)
        status = training.get("TrainingJobStatus")
        if status == "Stopped" and training.get("SecondaryStatus") == "MaxRuntimeExceeded":
            self.runtime_reached = True
        if status != "Completed" and not self._has_candidates(training):
            self._check_stop()
            if self.runtime_reached:
                raise JobFailure(f"ClientError: The time limit (MaxAutoMLJobRuntimeInSeconds {self.job_limit:.0f} s, "
                                 f"MaxRuntimePerTrainingJobInSeconds {self.trial_limit:.0f} s) was reached before "
                                 f"the training job {name} trained any candidate.")
            reason = training.get("FailureReason") or f"it ended {status}"
            raise JobFailure(f"ClientError: The training job {name} did not complete: {reason}")
        return training

    def _wait_end(self, name: str, timeout: float = 60.0) -> None:
        limit = time.monotonic() + timeout
        while time.monotonic() < limit:
            if (self.emulator.state.get(TRAINING, name) or {}).get("TrainingJobStatus") in TERMINAL:
                return
            time.sleep(POLL_SECONDS)

    def _has_candidates(self, training: dict[str, Any]) -> bool:
        return self._read_candidates(training) is not None

    def _read_candidates(self, training: dict[str, Any]) -> dict[str, Any] | None:
        uri = f"{self._output_prefix()}/tuning/{training.get('TrainingJobName')}/output/output.tar.gz"
        bucket, key = staging.parse_s3_uri(uri)
        try:
            data = self.emulator.s3.store.get_bytes(bucket, key)
        except Exception:
            return None
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            member = next((m for m in archive.getmembers() if m.name.lstrip("./") == "candidates.json"), None)
            if member is None:
                return None
            handle = archive.extractfile(member)
            return json.loads(handle.read()) if handle else None

    def _candidates(self, training: dict[str, Any], problem_type: str, objective: str) -> list[dict[str, Any]]:
        """``AutoMLCandidate`` shapes, best first (the training program sorts them by the objective)."""
        found = self._read_candidates(training)
        model_url = (training.get("ModelArtifacts") or {}).get("S3ModelArtifacts")
        if not found or not model_url:
            return []
        now = time.time()
        step = {"CandidateStepType": "AWS::SageMaker::TrainingJob", "CandidateStepArn": training["TrainingJobArn"],
                "CandidateStepName": training["TrainingJobName"]}
        region = self.emulator.region
        out = []
        for index, item in enumerate(found["candidates"]):
            value = item["metrics"][objective]
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            environment = {CANDIDATE_MODEL_ENV: item["model"]}
            if problem_type != "Regression":
                environment.update(SAGEMAKER_INFERENCE_OUTPUT="predicted_label",
                                   SAGEMAKER_INFERENCE_SUPPORTED=",".join(CLASSIFICATION_KEYS))
            metrics = [{"MetricName": metric, "StandardMetricName": metric, "Value": float(item["metrics"][metric]),
                        "Set": "Validation"}
                       for metric in CANDIDATE_METRICS[problem_type] if metric in item["metrics"]]
            out.append({
                "CandidateName": f"{self.name[:40]}-{item['model'][:12]}-{index + 1:03d}".replace("_", "-"),
                "FinalAutoMLJobObjectiveMetric": {
                    "Type": "Minimize" if objective in MINIMIZED else "Maximize", "MetricName": objective,
                    "Value": float(value), "StandardMetricName": objective},
                "ObjectiveStatus": "Succeeded",
                "CandidateSteps": [step],
                "CandidateStatus": "Completed",
                "InferenceContainers": [{"Image": image_uri("autogluon-inference", region), "ModelDataUrl": model_url,
                                         "Environment": environment}],
                "CreationTime": training.get("TrainingStartTime") or training["CreationTime"],
                "EndTime": training.get("TrainingEndTime") or now,
                "LastModifiedTime": now,
                "CandidateProperties": {"CandidateMetrics": metrics},
            })
        return out

    # ------------------------------------------------------------ stopping
    def stopped(self) -> Outcome:
        if self.tuning_name:
            from .automl_hpo import stop_tuning

            stop_tuning(self)
        if self.training_name:
            self.emulator.jobs.stop(TRAINING, self.training_name)
            self._wait_end(self.training_name)
        return super().stopped()
