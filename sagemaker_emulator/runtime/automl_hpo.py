"""HYPERPARAMETER_TUNING mode: candidate pipelines (feature transformation + XGBoost) tuned by the tuning engine.

``FeatureEngineering``: the data is encoded by ``images.autopilot.transform`` (one-hot categories, labels as
indices) and written for the built-in XGBoost algorithm (CSV, label first) under
``<S3OutputPath>/<job>/preprocessed-data/``; the transformation's specification becomes the model data of
the ``sagemaker-sklearn-automl`` containers (``data-processor-models/``). ``ModelTuning``: a hyperparameter
tuning job of the built-in XGBoost 1.7-1 algorithm (Bayesian, ``MaxCandidates`` trials, two at a time: the
2 cores of a laptop, as ``MaxParallelTrainingJobs``), each trial a training job anyone can describe. Each
completed trial is a candidate, scored on the validation split with Autopilot's metrics as soon as it ends
(while the next trials train); it deploys as Autopilot's HPO candidates do: feature transform → XGBoost →
inverse label transform (regression: the first two).

Speed (issue 16: the job in ≤ 2 minutes on 2 cores): the candidates' static hyperparameters include
``tree_method=hist`` (XGBoost 1.7's ``auto`` is ``exact`` here: 11-12 CPU-seconds a trial on the bank data
instead of 1.2-2, at the same validation accuracy) and ``nthread`` = the cores / the parallel trials (more
OpenMP threads than cores wait on each other); the encoding is column-wise numpy (equal to the
containers' per-record ``encode_row``); the image environment is built (once) and its warm worker started
while the data is encoded, so the trials fork instead of importing XGBoost and pandas each.
"""

from __future__ import annotations

import json
import logging
import os
import tarfile
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

from ..images.autopilot import CANDIDATE_METRICS, CLASSIFICATION_KEYS, MINIMIZED
from ..images.autopilot.transform import SPEC_FILE, _number, build_spec
from . import staging
from .records import TERMINAL

if TYPE_CHECKING:
    from .automl import AutoMLRun

XGBOOST_ACCOUNT = "683313688378"
AUTOML_IMAGE_TAG = "2.5-1-cpu-py3"
#: the built-in algorithm's metric tuned for each Autopilot objective (the candidates are ranked by the objective)
TUNED_METRICS = {"Accuracy": "validation:accuracy", "AUC": "validation:auc", "F1": "validation:f1",
                 "BalancedAccuracy": "validation:balanced_accuracy", "Precision": "validation:auc",
                 "Recall": "validation:auc", "F1macro": "validation:accuracy", "PrecisionMacro": "validation:accuracy",
                 "RecallMacro": "validation:accuracy", "MSE": "validation:mse", "RMSE": "validation:rmse",
                 "MAE": "validation:mae", "R2": "validation:r2"}
DEFAULT_TRIALS = 10
PARALLEL = 2
POLL_SECONDS = 0.25

log = logging.getLogger(__name__)


def xgboost_image(region: str) -> str:
    return f"{XGBOOST_ACCOUNT}.dkr.ecr.{region}.amazonaws.com/sagemaker-xgboost:1.7-1"


def automl_image(region: str) -> str:
    return f"{XGBOOST_ACCOUNT}.dkr.ecr.{region}.amazonaws.com/sagemaker-sklearn-automl:{AUTOML_IMAGE_TAG}"


def encode_frame(frame: Any, spec: dict[str, Any]) -> Any:
    """The features of every row as ``encode_row`` encodes one record (the inference containers' encoding),
    column by column with numpy: 0.1 s instead of 3-10 s for the bank data's 33,000 rows."""
    import numpy as np
    import pandas as pd

    blocks = []
    for column in spec["columns"]:
        cells = frame[column["name"]]
        if column["kind"] == "numeric":
            if pd.api.types.is_numeric_dtype(cells) and not pd.api.types.is_bool_dtype(cells):
                blocks.append(cells.to_numpy(dtype=float, na_value=np.nan)[:, None])
            else:  # text in a numeric column (a validation file's odd value): the record's own parsing
                text = cells.astype(str).where(cells.notna(), "")
                blocks.append(np.asarray([_number(cell) for cell in text], dtype=float)[:, None])
        else:
            text = cells.astype(str).where(cells.notna(), "").to_numpy(dtype=object)
            categories = np.asarray(column["categories"], dtype=object)
            blocks.append((text[:, None] == categories[None, :]).astype(float))
    return np.hstack(blocks) if blocks else np.empty((len(frame), 0))


def encode_labels(frame: Any, spec: dict[str, Any]) -> Any:
    """The target as the built-in algorithm reads it: a class's index among the sorted labels, or the number."""
    import numpy as np

    target, labels = frame[spec["target"]], spec["labels"]
    if not labels:
        return target.to_numpy(dtype=float)
    index = {label: i for i, label in enumerate(labels)}
    return np.asarray([index[str(y)] for y in target.tolist()], dtype=float)


def write_encoded(frame: Any, spec: dict[str, Any], path: Any) -> Any:
    """Write ``label,features…`` rows (no header) for the built-in XGBoost; return the feature matrix.

    Text column by column (a one-hot column as ``0``/``1``, a number as its shortest ``repr``, a missing value
    empty): 1-2 s for the bank data's 33,000 rows where a formatting ``DataFrame.to_csv`` takes 3-10 s."""
    import numpy as np

    matrix = encode_frame(frame, spec)
    labels = encode_labels(frame, spec)
    columns = [[str(int(y)) for y in labels] if spec["labels"] else [repr(float(y)) for y in labels]]
    for j in range(matrix.shape[1]):
        values = matrix[:, j]
        if np.isin(values, (0.0, 1.0)).all():
            columns.append(np.where(values == 1.0, "1", "0").tolist())
        else:
            columns.append(["" if v != v else repr(v) for v in values.tolist()])
    with open(path, "w") as handle:
        handle.writelines(",".join(row) + "\n" for row in zip(*columns, strict=True))
    return matrix


def prepare_image(run: AutoMLRun) -> threading.Thread:
    """Build the built-in XGBoost's image environment if needed (only the first time on a machine), start its
    warm worker and import Optuna, in the background while the data is encoded: the tuning job then starts at
    once and its trials start from a fork. (The scoring's imports, xgboost and scikit-learn, are not waited for
    here: they happen as the first trial ends, while the others train.)"""

    def prepare() -> None:
        from ..images.registry import resolve
        from .container import process_environment
        from .tuning import _optuna

        image = resolve(xgboost_image(run.emulator.region))
        try:
            python = run.emulator.image_envs.python_for(image, lambda line: log.info("%s: %s", run.name, line))
            run.emulator.warm.prestart(process_environment(dict(os.environ), ""), python)
            _optuna()  # the tuning engine's import (1-2 s on a busy machine) before the tuning job needs it
        except Exception:  # the trials will say what is wrong with their image in their own logs
            log.exception("AutoML job %s: preparing the XGBoost image failed", run.name)

    thread = threading.Thread(target=prepare, name=f"automl-prepare-{run.name}", daemon=True)
    thread.start()
    return thread


def feature_engineering(run: AutoMLRun, train: Any, validation: Any, target: str, problem_type: str) -> dict[str, Any]:
    """Encode the splits, upload them and the transformation's model data; return the job's HPO context."""
    run._secondary("FeatureEngineering")
    preparing = prepare_image(run)
    spec = build_spec(train, target, problem_type)
    out = run._output_prefix()
    store = run.emulator.s3.store
    uris, matrices = {}, {}
    for part, data in (("train", train), ("validation", validation)):
        path = run.root / f"{part}-encoded.csv"
        matrices[part] = write_encoded(data, spec, path)
        uri = f"{out}/preprocessed-data/{part}/{part}.csv"
        staging.upload_file(store, path, uri)
        uris[part] = uri.rsplit("/", 1)[0] + "/"
    folder = run.root / "dpp-model"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / SPEC_FILE).write_text(json.dumps(spec))
    archive = run.root / "dpp-model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder / SPEC_FILE, arcname=SPEC_FILE)
    model_uri = f"{out}/data-processor-models/{run.name[:20]}-dpp0-{uuid.uuid4().hex[:8]}/output/model.tar.gz"
    staging.upload_file(store, archive, model_uri)
    while preparing.is_alive():  # an environment build (the first time only) ends before the trials start
        run._check_stop()
        preparing.join(POLL_SECONDS)
    return {"spec": spec, "data": uris, "dpp_model": model_uri, "validation": validation,
            "validation_matrix": matrices["validation"]}


def tune(run: AutoMLRun, context: dict[str, Any], problem_type: str, objective: str) -> dict[str, Any]:
    """The tuning job over XGBoost pipelines; returns its final record."""
    from ..services.context import Context, call

    run._secondary("ModelTuning")
    criteria = run._criteria()
    trials = int(criteria.get("MaxCandidates") or DEFAULT_TRIALS)
    labels = context["spec"]["labels"]
    parallel = min(PARALLEL, trials)
    # the machine's cores shared by the parallel trials (SageMaker gives each trial its own instance): OpenMP
    # threads beyond a trial's share only wait on each other's barriers
    static = {"num_round": "100", "tree_method": "hist",
              "nthread": str(max(1, (os.cpu_count() or PARALLEL) // parallel))}
    if problem_type == "BinaryClassification":
        static.update(objective="binary:logistic")
    elif problem_type == "MulticlassClassification":
        static.update(objective="multi:softprob", num_class=str(len(labels)))
    else:
        static.update(objective="reg:squarederror")
    metric = TUNED_METRICS[objective]
    name = f"{run.name[:23]}-{uuid.uuid4().hex[:8]}"
    run.tuning_name = name
    channels = [{"ChannelName": part, "ContentType": "text/csv",
                 "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri,
                                                 "S3DataDistributionType": "FullyReplicated"}}}
                for part, uri in context["data"].items()]
    left = max(1, int(run.job_limit - (time.time() - run.started_at)))
    request = {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": {
            "Strategy": "Bayesian",
            "HyperParameterTuningJobObjective": {"Type": "Minimize" if objective in MINIMIZED else "Maximize",
                                                 "MetricName": metric},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": trials, "MaxParallelTrainingJobs": parallel},
            "ParameterRanges": {
                "ContinuousParameterRanges": [
                    {"Name": "eta", "MinValue": "0.05", "MaxValue": "0.5", "ScalingType": "Logarithmic"},
                    {"Name": "subsample", "MinValue": "0.5", "MaxValue": "1.0", "ScalingType": "Linear"},
                    {"Name": "min_child_weight", "MinValue": "1", "MaxValue": "10", "ScalingType": "Linear"}],
                "IntegerParameterRanges": [{"Name": "max_depth", "MinValue": "3", "MaxValue": "8",
                                            "ScalingType": "Linear"}]},
            "TrainingJobEarlyStoppingType": "Off"},
        "TrainingJobDefinition": {
            "StaticHyperParameters": static,
            "AlgorithmSpecification": {"TrainingImage": xgboost_image(run.emulator.region),
                                       "TrainingInputMode": "File"},
            "RoleArn": run.record["RoleArn"], "InputDataConfig": channels,
            "OutputDataConfig": {"S3OutputPath": f"{run._output_prefix()}/tuning"},
            "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
            "StoppingCondition": {"MaxRuntimeInSeconds": max(1, int(min(run.trial_limit, left)))}},
    }
    call(run.emulator.sagemaker, "CreateHyperParameterTuningJob", Context.internal(run.record["AutoMLJobArn"]),
         request)
    deadline = run.started_at + run.job_limit
    kind = "HyperParameterTuningJob"
    while True:
        record = run.emulator.state.get(kind, name) or {}
        score_finished(run, context, record, problem_type, objective)  # while the next trials train
        if record.get("HyperParameterTuningJobStatus") in TERMINAL:
            return record
        if run.stop_requested.is_set() or time.time() > deadline:
            run.runtime_reached = not run.stop_requested.is_set()
            stop_tuning(run)
            run._check_stop()
            return run.emulator.state.get(kind, name) or {}
        time.sleep(0.25)


def stop_tuning(run: AutoMLRun, timeout: float = 60.0) -> None:
    from ..services.context import Context, call

    kind = "HyperParameterTuningJob"
    if not run.tuning_name:
        return
    record = run.emulator.state.get(kind, run.tuning_name) or {}
    if record.get("HyperParameterTuningJobStatus") == "InProgress":
        call(run.emulator.sagemaker, "StopHyperParameterTuningJob", Context.internal(run.record["AutoMLJobArn"]),
             {"HyperParameterTuningJobName": run.tuning_name})
    limit = time.monotonic() + timeout
    while time.monotonic() < limit:
        if (run.emulator.state.get(kind, run.tuning_name) or {}).get("HyperParameterTuningJobStatus") in TERMINAL:
            return
        time.sleep(0.25)


def _predict(run: AutoMLRun, model_url: str, matrix: Any) -> Any:
    """The trial's XGBoost model (its native file, never a pickle) on the encoded validation features."""
    import xgboost

    bucket, key = staging.parse_s3_uri(model_url)
    folder = run.root / "score" / uuid.uuid4().hex[:8]
    folder.mkdir(parents=True)
    staging.safe_extract(run.emulator.s3.store.object_path(bucket, key), folder)
    booster = xgboost.Booster()
    booster.load_model(str(folder / "xgboost-model"))
    return booster.predict(xgboost.DMatrix(matrix))


def _trial_records(run: AutoMLRun, tuning: dict[str, Any]) -> list[dict[str, Any]]:
    """The tuning job's completed trials with a model, in launch order."""
    out = []
    for entry in tuning.get("_trials") or []:
        trial = run.emulator.state.get("TrainingJob", entry["Name"]) or {}
        if trial.get("TrainingJobStatus") == "Completed" and trial.get("ModelArtifacts"):
            out.append(trial)
    return out


def score_finished(run: AutoMLRun, context: dict[str, Any], tuning: dict[str, Any], problem_type: str,
                   objective: str) -> None:
    """Score the trials that completed since the last call (``context["scored"]``): a candidate's metrics are
    computed as soon as its trial ends, on a core the running trials leave free, not all after the last one."""
    scored = context.setdefault("scored", {})
    for trial in _trial_records(run, tuning):
        if trial["TrainingJobName"] not in scored:
            scored[trial["TrainingJobName"]] = _candidate(run, context, trial, problem_type, objective)


def _candidate(run: AutoMLRun, context: dict[str, Any], trial: dict[str, Any], problem_type: str,
               objective: str) -> dict[str, Any]:
    """One completed trial as an ``AutoMLCandidate``: its model scored on the validation split."""
    import numpy as np
    import pandas as pd

    from ..images.autopilot.train import candidate_metrics

    spec, validation, matrix = context["spec"], context["validation"], context["validation_matrix"]
    labels = spec["labels"]
    y_true = validation[spec["target"]].astype(str) if labels else validation[spec["target"]]
    region = run.emulator.region
    model_url = trial["ModelArtifacts"]["S3ModelArtifacts"]
    started = time.perf_counter()
    raw = np.asarray(_predict(run, model_url, matrix))
    latency = (time.perf_counter() - started) / max(1, len(matrix))
    if problem_type == "Regression":
        proba, predicted = None, raw
    else:
        probabilities = np.column_stack([1 - raw, raw]) if raw.ndim == 1 else raw
        proba = pd.DataFrame(probabilities, columns=labels)
        predicted = pd.Series(np.asarray(labels)[probabilities.argmax(axis=1)])
    positive = labels[1] if problem_type == "BinaryClassification" else None
    values = candidate_metrics(problem_type, y_true.reset_index(drop=True), proba, predicted, positive, labels,
                               latency)
    containers = [{"Image": automl_image(region), "ModelDataUrl": context["dpp_model"],
                   "Environment": {"AUTOML_TRANSFORM_MODE": "feature-transform",
                                   "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv"}},
                  {"Image": xgboost_image(region), "ModelDataUrl": model_url,
                   "Environment": {"MAX_CONTENT_LENGTH": "20971520",
                                   "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv",
                                   **({"SAGEMAKER_INFERENCE_OUTPUT": ",".join(CLASSIFICATION_KEYS)}
                                      if labels else {})}}]
    if labels:
        containers.append({"Image": automl_image(region), "ModelDataUrl": context["dpp_model"],
                           "Environment": {"AUTOML_TRANSFORM_MODE": "inverse-label-transform",
                                           "SAGEMAKER_INFERENCE_OUTPUT": "predicted_label",
                                           "SAGEMAKER_INFERENCE_SUPPORTED": ",".join(CLASSIFICATION_KEYS)}})
    now = time.time()
    return {
        "CandidateName": trial["TrainingJobName"],
        "FinalAutoMLJobObjectiveMetric": {"Type": "Minimize" if objective in MINIMIZED else "Maximize",
                                          "MetricName": objective, "Value": float(values[objective]),
                                          "StandardMetricName": objective},
        "ObjectiveStatus": "Succeeded",
        "CandidateSteps": [{"CandidateStepType": "AWS::SageMaker::TrainingJob",
                            "CandidateStepArn": trial["TrainingJobArn"],
                            "CandidateStepName": trial["TrainingJobName"]}],
        "CandidateStatus": "Completed",
        "InferenceContainers": containers,
        "CreationTime": trial["CreationTime"], "EndTime": trial.get("TrainingEndTime") or now,
        "LastModifiedTime": now,
        "CandidateProperties": {"CandidateMetrics": [
            {"MetricName": m, "StandardMetricName": m, "Value": float(values[m]), "Set": "Validation"}
            for m in CANDIDATE_METRICS[problem_type] if m in values]},
    }


def candidates(run: AutoMLRun, context: dict[str, Any], tuning: dict[str, Any], problem_type: str,
               objective: str) -> list[dict[str, Any]]:
    """Every completed trial as an ``AutoMLCandidate`` (those scored while the tuning job ran are not scored
    again), best first by the objective."""
    score_finished(run, context, tuning, problem_type, objective)
    scored = context["scored"]
    out = [scored[t["TrainingJobName"]] for t in _trial_records(run, tuning)]
    out.sort(key=lambda c: c["FinalAutoMLJobObjectiveMetric"]["Value"], reverse=objective not in MINIMIZED)
    return out
