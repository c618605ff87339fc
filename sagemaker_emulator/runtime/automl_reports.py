"""What an AutoML job writes after its candidates: AUTO's mode, the candidate definition notebook and the best
candidate's explainability and model insights reports.

* ``Mode=AUTO`` resolves as SageMaker resolves it: ``ENSEMBLING`` below ``AUTO_HPO_MIN_BYTES`` (100 MB) of
  input data, ``HYPERPARAMETER_TUNING`` from there on; the resolved mode replaces ``AUTO`` in the job's
  ``TabularJobConfig.Mode`` (V1: ``AutoMLJobConfig.Mode``).
* The candidate definition notebook (``AutoMLJobArtifacts.CandidateDefinitionNotebookLocation``, beside the
  data exploration notebook): the candidates of the mode that ran, and boto3 cells that describe the job and
  re-run its candidates' training (or tuning) job with the same definition.
* ``GeneratingExplainabilityReport``: a Clarify processing job (``sagemaker-clarify-processing``: Kernel SHAP
  through a shadow endpoint of the best candidate's containers) on a sample of the validation split, its
  output (``analysis.json``, ``report.html``/``report.ipynb``, the local SHAP values) under
  ``<output>/<job>/documentation/explainability/output/<candidate>/`` —
  ``CandidateArtifactLocations.Explainability``.
* ``GeneratingModelInsightsReport``: the best candidate's answers on the validation split scored as
  Autopilot's model quality report does (metrics table, confusion matrix, ROC and precision-recall curves)
  and written as ``report.html`` (charts inline), the charts as PNG, ``model_insights.json`` and the
  predictions they come from, under ``<output>/<job>/documentation/model_monitor/output/<candidate>/`` —
  ``CandidateArtifactLocations.ModelInsights``. SageMaker writes a PDF there; this writes HTML.

A report that fails does not fail the job: its reason is one of ``PartialFailureReasons``. The reports are
skipped when ``MaxAutoMLJobRuntimeInSeconds`` leaves less than ``REPORTS_MIN_SECONDS``, and the Clarify job is
stopped when the limit comes while it runs.
"""

from __future__ import annotations

import base64
import copy
import html
import io
import json
import tarfile
import time
import uuid
from typing import Any

from . import staging
from .records import TERMINAL

#: Autopilot's AUTO mode: ENSEMBLING below this much input data, HYPERPARAMETER_TUNING from there on
AUTO_HPO_MIN_BYTES = 100 * 1024 * 1024
CANDIDATE_NOTEBOOK = "SageMakerAutopilotCandidateDefinitionNotebook.ipynb"
#: the Clarify processing image (the account is SageMaker Clarify's in us-east-1)
CLARIFY_IMAGE = "205585389593.dkr.ecr.{region}.amazonaws.com/sagemaker-clarify-processing:1.0"
#: validation rows explained and Kernel SHAP's samples per row: a few seconds on two cores
EXPLAIN_ROWS = 40
SHAP_SAMPLES = 100
EXPLAIN_TIMEOUT_SECONDS = 900
#: the reports start only with this much of ``MaxAutoMLJobRuntimeInSeconds`` left (the shadow endpoint's start)
REPORTS_MIN_SECONDS = 60
CURVE_POINTS = 200


def input_bytes(run: Any) -> int:
    """The size of the staged training channel, as SageMaker measures the data set for AUTO."""
    folder = run.root / "input"
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0


def resolve_mode(run: Any, requested: str) -> str:
    """AUTO → ENSEMBLING or HYPERPARAMETER_TUNING by the input's size; recorded in the job's config."""
    if requested != "AUTO":
        return requested
    mode = "HYPERPARAMETER_TUNING" if input_bytes(run) >= AUTO_HPO_MIN_BYTES else "ENSEMBLING"
    problem = copy.deepcopy(run.record.get("AutoMLProblemTypeConfig") or {})
    problem.setdefault("TabularJobConfig", {})["Mode"] = mode
    run._set(AutoMLProblemTypeConfig=problem)
    return mode


def _put(run: Any, uri: str, body: bytes, content_type: str) -> None:
    bucket, key = staging.parse_s3_uri(uri)
    run.emulator.s3.store.put_bytes(bucket, key, body, content_type=content_type)


# ---------------------------------------------------------------- the candidate definition notebook
def _markdown(text: str) -> dict[str, Any]:
    return {"cell_type": "markdown", "metadata": {}, "source": text.splitlines(keepends=True)}


def _code(text: str) -> dict[str, Any]:
    return {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
            "source": text.splitlines(keepends=True)}


def candidate_notebook(run: Any, candidates: list[dict[str, Any]], mode: str, problem_type: str,
                       objective: str) -> bytes:
    """The notebook's bytes: the candidates of ``mode`` and the cells that re-run them."""
    rows = "".join(f"| {i + 1} | `{c['CandidateName']}` | {c['FinalAutoMLJobObjectiveMetric']['Value']:.4f} | "
                   f"{' → '.join(x['Image'].rsplit('/', 1)[-1] for x in c['InferenceContainers'])} |\n"
                   for i, c in enumerate(candidates))
    if mode == "HYPERPARAMETER_TUNING":
        how = ("HYPERPARAMETER_TUNING mode: the data processor (feature transformation) encoded the splits, then "
               f"the tuning job `{run.tuning_name}` trained the XGBoost algorithm on them, one training job per "
               "candidate; a candidate deploys as the pipeline feature transform → XGBoost → inverse label "
               "transform.")
        rerun = ("tuning = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=TUNING_JOB)\n"
                 "name = f\"{TUNING_JOB[:22]}-rerun-{int(time.time()) % 100000}\"\n"
                 "if RERUN:\n"
                 "    sm.create_hyper_parameter_tuning_job(\n"
                 "        HyperParameterTuningJobName=name,\n"
                 "        HyperParameterTuningJobConfig=tuning[\"HyperParameterTuningJobConfig\"],\n"
                 "        TrainingJobDefinition=tuning[\"TrainingJobDefinition\"])\n"
                 "    sm.get_waiter(\"hyper_parameter_tuning_job_completed_or_stopped\").wait(\n"
                 "        HyperParameterTuningJobName=name)\n"
                 "    done = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)\n"
                 "    print(done[\"BestTrainingJob\"])\n"
                 "else:\n"
                 "    print(\"Tuning job\", TUNING_JOB, tuning[\"HyperParameterTuningJobConfig\"][\"Strategy\"],\n"
                 "          tuning[\"HyperParameterTuningJobConfig\"][\"ParameterRanges\"])")
    else:
        how = ("ENSEMBLING mode: one training job of AutoGluon-Tabular (`" + str(run.training_name) + "`) trained "
               "the model families below on the training split with the validation split as tuning data; each "
               "model, and AutoGluon's weighted ensemble of them, is a candidate served by one container.")
        rerun = ("spec = sm.describe_training_job(TrainingJobName=TRAINING_JOB)\n"
                 "name = f\"{TRAINING_JOB[:22]}-rerun-{int(time.time()) % 100000}\"\n"
                 "fields = (\"RoleArn\", \"AlgorithmSpecification\", \"HyperParameters\", \"InputDataConfig\",\n"
                 "          \"OutputDataConfig\", \"ResourceConfig\", \"StoppingCondition\")\n"
                 "request = {k: spec[k] for k in fields if k in spec}\n"
                 "request[\"AlgorithmSpecification\"] = {k: v for k, v in request[\"AlgorithmSpecification\"].items()\n"
                 "                                     if k in (\"TrainingImage\", \"TrainingInputMode\",\n"
                 "                                              \"ContainerEntrypoint\", \"ContainerArguments\")}\n"
                 "if RERUN:\n"
                 "    sm.create_training_job(TrainingJobName=name, **request)\n"
                 "    sm.get_waiter(\"training_job_completed_or_stopped\").wait(TrainingJobName=name)\n"
                 "    print(sm.describe_training_job(TrainingJobName=name)[\"TrainingJobStatus\"])\n"
                 "else:\n"
                 "    print(\"Training job\", TRAINING_JOB, request[\"AlgorithmSpecification\"][\"TrainingImage\"],\n"
                 "          request.get(\"HyperParameters\"))")
    cells = [
        _markdown(f"# Candidate definitions: AutoML job {run.name}\n\n"
                  f"Problem type **{problem_type}**, objective **{objective}**, mode **{mode}**.\n\n{how}\n\n"
                  "Written by the local SageMaker emulator; SageMaker's notebook holds the same steps with its "
                  "own containers."),
        _markdown("## The candidates, best first\n\n| rank | candidate | objective | containers |\n|---|---|---|---|\n"
                  + rows),
        _markdown("## Set up\n\nSet `RERUN = True` to train the candidates again with the same definition "
                  "(it starts a billable job)."),
        _code("import time\n\nimport boto3\n\n"
              f"AUTOML_JOB = {run.name!r}\nTRAINING_JOB = {run.training_name!r}\nTUNING_JOB = {run.tuning_name!r}\n"
              "RERUN = False\n\nsm = boto3.client(\"sagemaker\")\n"
              "job = sm.describe_auto_ml_job_v2(AutoMLJobName=AUTOML_JOB)\n"
              "best = job[\"BestCandidate\"]\n"
              "print(job[\"AutoMLJobStatus\"], best[\"CandidateName\"], best[\"FinalAutoMLJobObjectiveMetric\"])"),
        _markdown("## Re-run the candidates' " + ("tuning" if mode == "HYPERPARAMETER_TUNING" else "training")
                  + " job"),
        _code(rerun),
        _markdown("## The best candidate's inference pipeline\n\nIts containers, in order; "
                  "`sm.create_model(ModelName=..., Containers=containers, ExecutionRoleArn=...)` deploys them."),
        _code("containers = best[\"InferenceContainers\"]\n"
              "for container in containers:\n"
              "    print(container[\"Image\"], container[\"ModelDataUrl\"], container.get(\"Environment\"))"),
    ]
    for index, cell in enumerate(cells):
        cell["id"] = f"cell-{index}"
    notebook = {"cells": cells, "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                                            "name": "python3"},
                                             "language_info": {"name": "python"}},
                "nbformat": 4, "nbformat_minor": 5}
    return json.dumps(notebook, indent=1).encode()


def write_candidate_notebook(run: Any, candidates: list[dict[str, Any]], mode: str, problem_type: str,
                             objective: str) -> None:
    artifacts = dict(run.record.get("AutoMLJobArtifacts") or {})
    folder = (artifacts.get("DataExplorationNotebookLocation") or "").rsplit("/", 1)[0] or \
        f"{run._output_prefix()}/sagemaker-automl-candidates/notebooks"
    uri = f"{folder}/{CANDIDATE_NOTEBOOK}"
    _put(run, uri, candidate_notebook(run, candidates, mode, problem_type, objective), "application/x-ipynb+json")
    artifacts["CandidateDefinitionNotebookLocation"] = uri
    run._set(AutoMLJobArtifacts=artifacts)


# ---------------------------------------------------------------- the explainability report (Clarify)
def _baseline(train: Any, features: list[str]) -> list[Any]:
    """One row: each numeric feature's median, each other feature's most frequent value."""
    import pandas as pd

    row = []
    for name in features:
        column = train[name].dropna()
        if pd.api.types.is_numeric_dtype(column):
            row.append(float(column.median()))
        else:
            row.append(str(column.mode().iloc[0]) if len(column) else "")
    return row


def explain(run: Any, best: dict[str, Any], mode: str, problem_type: str, target: str, labels: list[str],
            prefix: str) -> str | None:
    """The Clarify job explaining ``best``; None, or why it failed."""
    from ..services.context import Context, call

    train, validation = run.frames
    features = [c for c in train.columns if c != target]
    containers = copy.deepcopy(best["InferenceContainers"])
    probability: int | None = 0
    if problem_type == "BinaryClassification" and mode != "HYPERPARAMETER_TUNING":
        # ensembling answers P(predicted label): explain P(positive class), the last of the probabilities
        containers[-1]["Environment"]["SAGEMAKER_INFERENCE_OUTPUT"] = "probabilities"
        probability = max(0, len(labels) - 1)
    elif problem_type != "Regression":
        containers[-1]["Environment"]["SAGEMAKER_INFERENCE_OUTPUT"] = "probability"
    else:
        probability = None
    ctx = Context.internal(run.record["AutoMLJobArn"])
    suffix = uuid.uuid4().hex[:8]
    model = f"{run.name[:40]}-explain-{suffix}"
    sample = validation.sample(n=min(EXPLAIN_ROWS, len(validation)), random_state=0)[features + [target]]
    data_uri = f"{run._output_prefix()}/documentation/explainability/input/{suffix}/data.csv"
    _put(run, data_uri, sample.to_csv(index=False).encode(), "text/csv")
    predictor: dict[str, Any] = {"model_name": model, "instance_type": "ml.m5.xlarge", "initial_instance_count": 1,
                                 "content_type": "text/csv", "accept_type": "text/csv",
                                 "endpoint_name_prefix": "sm-autopilot"}
    if probability is not None:
        predictor["probability"] = probability
    config = {"dataset_type": "text/csv", "headers": features + [target], "label": target,
              "methods": {"shap": {"baseline": [_baseline(train, features)], "num_samples": SHAP_SAMPLES,
                                   "agg_method": "mean_abs", "save_local_shap_values": True, "use_logit": False,
                                   "seed": 0},
                          "report": {"name": "report", "title": f"Explainability report: {best['CandidateName']}"}},
              "predictor": predictor}
    config_uri = f"{run._output_prefix()}/documentation/explainability/input/{suffix}/analysis_config.json"
    _put(run, config_uri, json.dumps(config).encode(), "application/json")
    job = f"{run.name[:20]}-explain-{suffix}"
    call(run.emulator.sagemaker, "CreateModel", ctx, {"ModelName": model, "ExecutionRoleArn": run.record["RoleArn"],
                                                      "Containers": containers})
    try:
        call(run.emulator.sagemaker, "CreateProcessingJob", ctx, {
            "ProcessingJobName": job, "RoleArn": run.record["RoleArn"],
            "AppSpecification": {"ImageUri": CLARIFY_IMAGE.format(region=run.emulator.region)},
            "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge",
                                                      "VolumeSizeInGB": 30}},
            "ProcessingInputs": [
                {"InputName": "dataset", "S3Input": {"S3Uri": data_uri, "S3DataType": "S3Prefix",
                                                     "S3InputMode": "File",
                                                     "LocalPath": "/opt/ml/processing/input/data"}},
                {"InputName": "analysis_config", "S3Input": {"S3Uri": config_uri, "S3DataType": "S3Prefix",
                                                             "S3InputMode": "File",
                                                             "LocalPath": "/opt/ml/processing/input/config"}}],
            "ProcessingOutputConfig": {"Outputs": [{"OutputName": "analysis_result", "S3Output": {
                "S3Uri": prefix, "LocalPath": "/opt/ml/processing/output", "S3UploadMode": "EndOfJob"}}]},
            "StoppingCondition": {"MaxRuntimeInSeconds": EXPLAIN_TIMEOUT_SECONDS}})
        limit = time.monotonic() + EXPLAIN_TIMEOUT_SECONDS + 60
        record: dict[str, Any] = {}
        deadline = run.started_at + run.job_limit
        while time.monotonic() < limit:
            record = run.emulator.state.get("ProcessingJob", job) or {}
            if record.get("ProcessingJobStatus") in TERMINAL:
                break
            if time.time() > deadline:
                run.runtime_reached = True
                run.emulator.jobs.stop("ProcessingJob", job)
                return (f"The explainability report was not generated: MaxAutoMLJobRuntimeInSeconds "
                        f"({run.job_limit:.0f} s) was reached while the Clarify job {job} ran.")
            if run.stop_requested.is_set():
                run.emulator.jobs.stop("ProcessingJob", job)
                run._check_stop()
            time.sleep(0.25)
        if record.get("ProcessingJobStatus") != "Completed":
            return (f"Generating the explainability report failed: the Clarify job {job} ended "
                    f"{record.get('ProcessingJobStatus')}: {record.get('FailureReason') or 'see its log'}")
    finally:
        try:
            call(run.emulator.sagemaker, "DeleteModel", ctx, {"ModelName": model})
        except Exception:  # noqa: BLE001 - the model is a by-product; the report stands without its deletion
            pass
    return None


# ---------------------------------------------------------------- the model insights report
def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return buffer.getvalue()


def _thin(*arrays: Any) -> list[list[float]]:
    import numpy as np

    count = len(arrays[0])
    index = np.unique(np.linspace(0, count - 1, min(count, CURVE_POINTS)).astype(int))
    return [[float(v) for v in np.asarray(a)[index]] for a in arrays]


def insights(y_true: Any, predictions: Any, problem_type: str, labels: list[Any]) -> tuple[dict[str, Any],
                                                                                         dict[str, bytes]]:
    """(``model_insights.json``'s content, the charts as PNG) of a candidate's validation answers."""
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np
    import pandas as pd
    from matplotlib import pyplot as plt
    from sklearn import metrics as m

    from ..images.autopilot.train import candidate_metrics

    charts: dict[str, bytes] = {}
    predicted = predictions["predicted_label"]
    if problem_type == "Regression":
        values = candidate_metrics(problem_type, y_true, None, predicted, None, [], 0.0)
        values.pop("InferenceLatency", None)
        figure, axis = plt.subplots(figsize=(4.5, 4))
        axis.scatter(y_true, predicted, s=4, alpha=0.4)
        axis.set(xlabel="actual", ylabel="predicted", title="Predicted vs actual")
        charts["predicted_vs_actual.png"] = _png(figure)
        plt.close(figure)
        return {"metrics": values}, charts
    predicted = predicted.astype(str)
    proba = pd.DataFrame({label: predictions[f"probability_{label}"].to_numpy(float) for label in labels})
    positive = labels[1] if problem_type == "BinaryClassification" else None
    values = candidate_metrics(problem_type, y_true, proba, predicted, positive, labels, 0.0)
    values.pop("InferenceLatency", None)
    matrix = m.confusion_matrix(y_true, predicted, labels=labels)
    body: dict[str, Any] = {"metrics": values,
                            "confusion_matrix": {"labels": [str(x) for x in labels], "matrix": matrix.tolist()}}
    figure, axis = plt.subplots(figsize=(4.5, 4))
    axis.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        axis.text(j, i, str(count), ha="center", va="center", color="white" if count > matrix.max() / 2 else "black")
    axis.set(xticks=range(len(labels)), yticks=range(len(labels)), xticklabels=[str(x) for x in labels],
             yticklabels=[str(x) for x in labels], xlabel="predicted", ylabel="actual", title="Confusion matrix")
    charts["confusion_matrix.png"] = _png(figure)
    plt.close(figure)
    if positive is not None:
        truth = (y_true == positive).to_numpy()
        fpr, tpr, _ = m.roc_curve(truth, proba[positive])
        precision, recall, _ = m.precision_recall_curve(truth, proba[positive])
        body["roc_curve"] = dict(zip(("false_positive_rate", "true_positive_rate"), _thin(fpr, tpr), strict=True))
        body["precision_recall_curve"] = dict(zip(("precision", "recall"), _thin(precision, recall), strict=True))
        body["positive_label"] = str(positive)
        body["metrics"]["AveragePrecision"] = float(m.average_precision_score(truth, proba[positive]))
        for name, (x, y, xlabel, ylabel, title) in {
                "roc_curve.png": (fpr, tpr, "false positive rate", "true positive rate",
                                  f"ROC curve (AUC {values['AUC']:.3f})"),
                "precision_recall_curve.png": (recall, precision, "recall", "precision",
                                               "Precision-recall curve")}.items():
            figure, axis = plt.subplots(figsize=(4.5, 4))
            axis.plot(x, y)
            if name == "roc_curve.png":
                axis.plot([0, 1], [0, 1], linestyle="--", color="grey")
            axis.set(xlabel=xlabel, ylabel=ylabel, title=title, xlim=(0, 1), ylim=(0, 1.02))
            charts[name] = _png(figure)
            plt.close(figure)
    return body, charts


def _html(run: Any, best: dict[str, Any], problem_type: str, body: dict[str, Any], charts: dict[str, bytes]) -> str:
    objective = best["FinalAutoMLJobObjectiveMetric"]
    details = [("Autopilot candidate name", best["CandidateName"]), ("Autopilot job name", run.name),
               ("Problem type", problem_type), ("Objective metric", objective["MetricName"]),
               ("Optimization direction", objective["Type"]), ("Validation rows", str(body["rows"]))]
    table = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in details)
    metrics = "".join(f"<tr><th>{html.escape(k)}</th><td>{v:.6g}</td></tr>" for k, v in body["metrics"].items())
    images = "".join(f'<figure style="display:inline-block;margin:4px"><img alt="{html.escape(name)}" '
                     f'src="data:image/png;base64,{base64.b64encode(png).decode()}"></figure>'
                     for name, png in charts.items())
    title = html.escape(best["CandidateName"])
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Model insights: {title}</title>"
            "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;margin:1em 0}"
            "th,td{border:1px solid #ccc;padding:4px 8px;text-align:left}</style></head><body>"
            f"<h1>Model insights report</h1><h2>Model details</h2><table>{table}</table>"
            f"<h2>Metrics on the validation split</h2><table>{metrics}</table>"
            f"<h2>Charts</h2>{images}</body></html>")


def write_insights(run: Any, best: dict[str, Any], problem_type: str, target: str, predictions: Any,
                   labels: list[Any], prefix: str) -> None:
    y_true = run.frames[1][target].reset_index(drop=True)
    if problem_type != "Regression":
        y_true = y_true.astype(str)
    body, charts = insights(y_true, predictions, problem_type, labels)
    body = {"candidate": best["CandidateName"], "auto_ml_job": run.name, "problem_type": problem_type,
            "objective": best["FinalAutoMLJobObjectiveMetric"], "rows": int(len(y_true)), **body}
    table = predictions.copy()
    table.insert(0, "label", y_true.to_numpy())
    _put(run, f"{prefix}/model_insights.json", json.dumps(body, indent=1).encode(), "application/json")
    _put(run, f"{prefix}/predictions.csv", table.to_csv(index=False).encode(), "text/csv")
    for name, png in charts.items():
        _put(run, f"{prefix}/{name}", png, "image/png")
    _put(run, f"{prefix}/report.html", _html(run, best, problem_type, body, charts).encode(), "text/html")


# ---------------------------------------------------------------- the best candidate's answers
def ensembling_predictions(run: Any, training: dict[str, Any]) -> Any:
    """The training program's ``validation_predictions.csv`` (its output archive)."""
    import pandas as pd

    from ..images.autopilot import PREDICTIONS_FILE

    uri = f"{run._output_prefix()}/tuning/{training['TrainingJobName']}/output/output.tar.gz"
    bucket, key = staging.parse_s3_uri(uri)
    with tarfile.open(fileobj=io.BytesIO(run.emulator.s3.store.get_bytes(bucket, key))) as archive:
        member = next(m for m in archive.getmembers() if m.name.lstrip("./") == PREDICTIONS_FILE)
        handle = archive.extractfile(member)
        assert handle is not None
        return pd.read_csv(handle, keep_default_na=False)


def tuning_predictions(run: Any, best: dict[str, Any], context: dict[str, Any]) -> Any:
    """The best trial's XGBoost model on the encoded validation split, its labels decoded."""
    import numpy as np
    import pandas as pd

    from .automl_hpo import _predict

    data = np.loadtxt(run.root / "validation-encoded.csv", delimiter=",", ndmin=2)
    raw = np.asarray(_predict(run, best["InferenceContainers"][1]["ModelDataUrl"], data[:, 1:]))
    labels = context["spec"]["labels"]
    if not labels:
        return pd.DataFrame({"predicted_label": raw})
    probabilities = np.column_stack([1 - raw, raw]) if raw.ndim == 1 else raw
    frame = pd.DataFrame({"predicted_label": np.asarray(labels)[probabilities.argmax(axis=1)]})
    for index, label in enumerate(labels):
        frame[f"probability_{label}"] = probabilities[:, index]
    return frame


# ---------------------------------------------------------------- the whole step
def generate(run: Any, candidates: list[dict[str, Any]], mode: str, problem_type: str, objective: str,
             target: str, context: dict[str, Any] | None) -> list[str]:
    """The notebook and both reports of ``candidates[0]`` (updated in place); the partial failures' reasons."""
    best = candidates[0]
    write_candidate_notebook(run, candidates, mode, problem_type, objective)
    failures: list[str] = []
    if run.runtime_reached or run.started_at + run.job_limit - time.time() < REPORTS_MIN_SECONDS:
        return failures  # MaxAutoMLJobRuntimeInSeconds leaves no time for the reports
    documentation = f"{run._output_prefix()}/documentation"
    locations = {"Explainability": f"{documentation}/explainability/output/{best['CandidateName']}",
                 "ModelInsights": f"{documentation}/model_monitor/output/{best['CandidateName']}"}
    predictions, error = None, None
    try:
        if context is not None:
            predictions = tuning_predictions(run, best, context)
        else:
            predictions = ensembling_predictions(run, {"TrainingJobName": run.training_name})
    except Exception as exc:  # noqa: BLE001 - the job completes; the reason is a partial failure
        error = f"Generating the model insights report failed: {type(exc).__name__}: {exc}"
    # the labels in the candidate's order (its probabilities' columns), the positive class last
    labels = [c[len("probability_"):] for c in predictions.columns if c.startswith("probability_")] \
        if predictions is not None else []
    run._secondary("GeneratingExplainabilityReport")
    try:
        explained = explain(run, best, mode, problem_type, target, labels, locations["Explainability"])
    except Exception as exc:  # noqa: BLE001 - a modelled error (a name in use …): the job goes on without it
        if run.stop_requested.is_set():
            raise
        explained = f"Generating the explainability report failed: {exc}"
    if explained:
        failures.append(explained)
    run._secondary("GeneratingModelInsightsReport")
    try:
        if predictions is None:
            raise RuntimeError(error)
        write_insights(run, best, problem_type, target, predictions, labels, locations["ModelInsights"])
    except Exception as exc:  # noqa: BLE001 - the job completes; the reason is a partial failure
        failures.append(error or f"Generating the model insights report failed: {type(exc).__name__}: {exc}")
    best.setdefault("CandidateProperties", {})["CandidateArtifactLocations"] = locations
    return failures
