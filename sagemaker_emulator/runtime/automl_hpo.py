"""HYPERPARAMETER_TUNING mode: candidate pipelines (feature transformation + XGBoost) tuned by the tuning engine.

``FeatureEngineering``: the data is encoded by ``images.autopilot.transform`` (one-hot categories, labels as
indices) and written for the built-in XGBoost algorithm (CSV, label first) under
``<S3OutputPath>/<job>/preprocessed-data/``; the transformation's specification becomes the model data of
the ``sagemaker-sklearn-automl`` containers (``data-processor-models/``). ``ModelTuning``: a hyperparameter
tuning job of the built-in XGBoost 1.7-1 algorithm (Bayesian, ``MaxCandidates`` trials, two at a time),
each trial a training job anyone can describe. Each completed trial is a candidate, scored on the
validation split with Autopilot's metrics; it deploys as Autopilot's HPO candidates do: feature transform
→ XGBoost → inverse label transform (regression: the first two).
"""

from __future__ import annotations

import json
import tarfile
import time
import uuid
from typing import TYPE_CHECKING, Any

from ..images.autopilot import CANDIDATE_METRICS, CLASSIFICATION_KEYS, MINIMIZED
from ..images.autopilot.transform import SPEC_FILE, build_spec, encode_row, format_number
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


def xgboost_image(region: str) -> str:
    return f"{XGBOOST_ACCOUNT}.dkr.ecr.{region}.amazonaws.com/sagemaker-xgboost:1.7-1"


def automl_image(region: str) -> str:
    return f"{XGBOOST_ACCOUNT}.dkr.ecr.{region}.amazonaws.com/sagemaker-sklearn-automl:{AUTOML_IMAGE_TAG}"


def _encoded_csv(frame: Any, spec: dict[str, Any]) -> str:
    target, labels = spec["target"], spec["labels"]
    features = [c["name"] for c in spec["columns"]]
    rows = frame[features].astype(str).where(frame[features].notna(), "").to_numpy().tolist()
    lines = []
    for cells, y in zip(rows, frame[target].tolist(), strict=True):
        label = labels.index(str(y)) if labels else float(y)
        lines.append(",".join([str(label), *(format_number(v) for v in encode_row(cells, spec))]))
    return "\n".join(lines) + "\n"


def feature_engineering(run: AutoMLRun, train: Any, validation: Any, target: str, problem_type: str) -> dict[str, Any]:
    """Encode the splits, upload them and the transformation's model data; return the job's HPO context."""
    run._secondary("FeatureEngineering")
    spec = build_spec(train, target, problem_type)
    out = run._output_prefix()
    store = run.emulator.s3.store
    uris = {}
    for part, data in (("train", train), ("validation", validation)):
        path = run.root / f"{part}-encoded.csv"
        path.write_text(_encoded_csv(data, spec))
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
    return {"spec": spec, "data": uris, "dpp_model": model_uri, "validation": validation}


def tune(run: AutoMLRun, context: dict[str, Any], problem_type: str, objective: str) -> dict[str, Any]:
    """The tuning job over XGBoost pipelines; returns its final record."""
    from ..services.context import Context, call

    run._secondary("ModelTuning")
    criteria = run._criteria()
    trials = int(criteria.get("MaxCandidates") or DEFAULT_TRIALS)
    labels = context["spec"]["labels"]
    static = {"num_round": "100"}
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
            "ResourceLimits": {"MaxNumberOfTrainingJobs": trials, "MaxParallelTrainingJobs": min(PARALLEL, trials)},
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


def candidates(run: AutoMLRun, context: dict[str, Any], tuning: dict[str, Any], problem_type: str,
               objective: str) -> list[dict[str, Any]]:
    """Every completed trial as an ``AutoMLCandidate``, best first by the objective."""
    import numpy as np
    import pandas as pd

    from ..images.autopilot.train import candidate_metrics

    spec, validation = context["spec"], context["validation"]
    encoded = run.root / "validation-encoded.csv"
    data = np.loadtxt(encoded, delimiter=",", ndmin=2) if encoded.exists() else None
    if data is None:
        return []
    matrix = data[:, 1:]
    labels = spec["labels"]
    y_true = validation[spec["target"]].astype(str) if labels else validation[spec["target"]]
    arn = tuning.get("HyperParameterTuningJobArn")
    trials = [t for t in run.emulator.state.all("TrainingJob") if t.get("TuningJobArn") == arn
              and t.get("TrainingJobStatus") == "Completed" and t.get("ModelArtifacts")]
    region = run.emulator.region
    out = []
    for trial in trials:
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
        out.append({
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
            "CreationTime": trial["CreationTime"], "EndTime": trial.get("TrainingEndTime") or time.time(),
            "LastModifiedTime": time.time(),
            "CandidateProperties": {"CandidateMetrics": [
                {"MetricName": m, "StandardMetricName": m, "Value": float(values[m]), "Set": "Validation"}
                for m in CANDIDATE_METRICS[problem_type] if m in values]},
        })
    out.sort(key=lambda c: c["FinalAutoMLJobObjectiveMetric"]["Value"], reverse=objective not in MINIMIZED)
    return out
