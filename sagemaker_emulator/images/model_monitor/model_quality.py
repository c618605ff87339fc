"""Model quality (``analysis_type=MODEL_QUALITY``): metrics of predictions against ground truth.

Baseline: a dataset holding, per record, the model's prediction
(``inference_attribute``) and/or probability (``probability_attribute``,
turned into a label with ``probability_threshold_attribute``, 0.5 by default)
and the true label (``ground_truth_attribute``); attributes are column names,
or 0-based indices for a CSV without header. Monitoring: the endpoint's
captured outputs of the window joined with the ground truth a user uploaded
(``{"groundTruthData": {"data": …}, "eventMetadata": {"eventId": <inferenceId>}}``
lines) on the request's ``inferenceId`` (its ``eventId`` when none was sent),
which is the merge the monitoring service runs before the analyzer.

Metrics and files follow the documented layout: ``statistics.json`` with
``binary_classification_metrics`` (each metric a ``value`` with its
``standard_deviation`` — here the binomial standard error for rates, where
SageMaker bootstraps), ``constraints.json`` with
``binary_classification_constraints`` (threshold = the baseline's value,
``LessThanThreshold``, or ``GreaterThanThreshold`` for error rates) and
violations ``{"metric_name", "constraint_check_type", "description"}``.
Regression computes ``mae``, ``mse``, ``rmse`` and ``r2``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from .dataset import EventData, _decoded, _event, _files, _flatten, _values, captured_records, read_baseline_dataset
from .inputs import AnalyzerInput, InputError

GREATER_IS_WORSE = {"false_positive_rate", "false_negative_rate", "mae", "mse", "rmse"}
BINARY_CONSTRAINED = ("recall", "precision", "accuracy", "true_positive_rate", "true_negative_rate",
                      "false_positive_rate", "false_negative_rate", "auc", "f0_5", "f1", "f2")
REGRESSION_CONSTRAINED = ("mae", "mse", "rmse", "r2")


def _column(table: pd.DataFrame, attribute: str | None, what: str) -> pd.Series | None:
    if attribute is None or attribute == "":
        return None
    if attribute in table.columns:
        return table[attribute]
    if attribute.isdigit() and int(attribute) < table.shape[1]:
        return table.iloc[:, int(attribute)]
    raise InputError(f"The {what} '{attribute}' is not a column of the dataset (columns: "
                     f"{', '.join(map(str, table.columns[:20]))}).")


def labelled(inputs: AnalyzerInput, table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(true labels, predicted labels, probabilities or None) as numbers."""
    options = inputs.model_quality
    truth = _column(table, options.get("ground_truth_attribute"), "ground_truth_attribute")
    if truth is None:
        raise InputError("ground_truth_attribute is required for model quality.")
    probability = _column(table, options.get("probability_attribute"), "probability_attribute")
    predicted = _column(table, options.get("inference_attribute"), "inference_attribute")
    if predicted is None and probability is None:
        raise InputError("Model quality needs inference_attribute or probability_attribute.")
    keep = truth.notna() & (predicted.notna() if predicted is not None else probability.notna())
    try:
        y = pd.to_numeric(truth[keep]).to_numpy(dtype=float)
        scores = pd.to_numeric(probability[keep]).to_numpy(dtype=float) if probability is not None else None
        if predicted is not None:
            guess = pd.to_numeric(predicted[keep]).to_numpy(dtype=float)
        else:
            threshold = float(options.get("probability_threshold_attribute") or 0.5)
            guess = (scores >= threshold).astype(float)
    except (ValueError, TypeError) as exc:
        raise InputError(f"Labels, predictions and probabilities must be numbers: {exc}") from None
    if y.size == 0:
        raise InputError("No record has both a prediction and a ground truth label.")
    return y, guess, scores


def _rate(value: float, n: int) -> dict[str, float]:
    return {"value": float(value), "standard_deviation": math.sqrt(max(value * (1 - value), 0.0) / n) if n else 0.0}


def binary_metrics(y: np.ndarray, guess: np.ndarray, scores: np.ndarray | None,
                   positive: float = 1.0) -> dict[str, Any]:
    truth, predicted = y == positive, guess == positive
    tp, fp = int((truth & predicted).sum()), int((~truth & predicted).sum())
    fn, tn = int((truth & ~predicted).sum()), int((~truth & ~predicted).sum())
    pos, neg, n = tp + fn, fp + tn, y.size
    majority = 1.0 if pos >= neg else 0.0  # the best constant classifier always says the majority class

    def fbeta(beta: float, p: float, r: float) -> float:
        return (1 + beta**2) * p * r / (beta**2 * p + r) if p + r else 0.0

    precision, recall = (tp / (tp + fp) if tp + fp else 0.0), (tp / pos if pos else 0.0)
    const_precision, const_recall = (pos / n if majority else 0.0), majority
    out: dict[str, Any] = {
        "confusion_matrix": {"0": {"0": tn, "1": fp}, "1": {"0": fn, "1": tp}},
        "recall": _rate(recall, pos), "precision": _rate(precision, tp + fp),
        "accuracy": _rate((tp + tn) / n, n),
        "recall_best_constant_classifier": _rate(const_recall, pos),
        "precision_best_constant_classifier": _rate(const_precision, n),
        "accuracy_best_constant_classifier": _rate(max(pos, neg) / n, n),
        "true_positive_rate": _rate(recall, pos), "true_negative_rate": _rate(tn / neg if neg else 0.0, neg),
        "false_positive_rate": _rate(fp / neg if neg else 0.0, neg),
        "false_negative_rate": _rate(fn / pos if pos else 0.0, pos),
    }
    for beta, name in ((0.5, "f0_5"), (1.0, "f1"), (2.0, "f2")):
        out[name] = {"value": fbeta(beta, precision, recall), "standard_deviation": 0.0}
        out[f"{name}_best_constant_classifier"] = {"value": fbeta(beta, const_precision, const_recall),
                                                   "standard_deviation": 0.0}
    if scores is not None and pos and neg:
        fpr, tpr, _ = skm.roc_curve(truth, scores)
        precisions, recalls, _ = skm.precision_recall_curve(truth, scores)
        out["receiver_operating_characteristic_curve"] = {"false_positive_rates": fpr.tolist(),
                                                          "true_positive_rates": tpr.tolist()}
        out["precision_recall_curve"] = {"precisions": precisions.tolist(), "recalls": recalls.tolist()}
        out["auc"] = {"value": float(skm.roc_auc_score(truth, scores)), "standard_deviation": 0.0}
    return out


def regression_metrics(y: np.ndarray, guess: np.ndarray) -> dict[str, Any]:
    mse = float(skm.mean_squared_error(y, guess))
    return {name: {"value": value, "standard_deviation": 0.0} for name, value in (
        ("mae", float(skm.mean_absolute_error(y, guess))), ("mse", mse), ("rmse", math.sqrt(mse)),
        ("r2", float(skm.r2_score(y, guess)) if y.size > 1 else 0.0))}


def compute(inputs: AnalyzerInput, table: pd.DataFrame) -> tuple[str, dict[str, Any], int]:
    """(section name, metrics, record count) for the job's ``problem_type``."""
    problem = inputs.model_quality.get("problem_type", "BinaryClassification")
    y, guess, scores = labelled(inputs, table)
    if problem == "BinaryClassification":
        positive = float(inputs.model_quality.get("positive_label") or 1)
        return "binary_classification_metrics", binary_metrics(y, guess, scores, positive), y.size
    if problem == "Regression":
        return "regression_metrics", regression_metrics(y, guess), y.size
    raise InputError(f"problem_type {problem} is not provided by the local analyzer "
                     f"(it provides BinaryClassification and Regression).")


def suggest(section: str, metrics: dict[str, Any]) -> dict[str, Any]:
    names = BINARY_CONSTRAINED if section.startswith("binary") else REGRESSION_CONSTRAINED
    constraints = {name: {"threshold": metrics[name]["value"],
                          "comparison_operator": "GreaterThanThreshold" if name in GREATER_IS_WORSE
                          else "LessThanThreshold"} for name in names if name in metrics}
    return {"version": 0.0, section.replace("_metrics", "_constraints"): constraints}


def violations(constraints: dict[str, Any], section: str, metrics: dict[str, Any]) -> list[dict[str, str]]:
    rules = constraints.get(section.replace("_metrics", "_constraints"))
    if not isinstance(rules, dict):
        raise InputError(f"The baseline constraints file is malformed: it has no "
                         f"{section.replace('_metrics', '_constraints')} object.")
    found = []
    for name, rule in rules.items():
        if name not in metrics or not isinstance(rule, dict):
            continue
        value, threshold = metrics[name]["value"], float(rule.get("threshold", 0.0))
        operator = rule.get("comparison_operator", "LessThanThreshold")
        if (operator == "LessThanThreshold" and value < threshold) or \
                (operator == "GreaterThanThreshold" and value > threshold):
            found.append({"constraint_check_type": operator, "metric_name": name,
                          "description": f"Metric {name} with {value} was {operator} '{threshold}'"})
    return found


# ------------------------------------------------------------------ monitoring: captured data joined with truth
def _first(event: EventData | None) -> Any:
    """The first record of a captured output or a ground truth: the JSON value, or the first CSV row as a list
    (read, and BASE64 decoded, as the data-quality analysis reads captures)."""
    if event is not None and event.encoding == "JSON":
        return json.loads(_decoded(event))
    rows = _values(event)
    return rows[0] if rows else []


def _pick(value: Any, attribute: str | None) -> Any:
    """A value out of a captured output: the CSV field at index ``attribute`` (default the first), or the
    JSON member at the dotted path."""
    if isinstance(value, list):
        index = int(attribute) if attribute and attribute.isdigit() else 0
        return value[index] if index < len(value) else None
    if isinstance(value, dict):
        flat = _flatten(value)
        return flat.get(attribute or "", next(iter(flat.values()), None))
    return value


def ground_truth(source: Path) -> dict[str, Any]:
    truth: dict[str, Any] = {}
    for path in _files(source, (".jsonl", ".json")):
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            record = json.loads(line)
            data = record.get("groundTruthData") or {}
            event = (record.get("eventMetadata") or {}).get("eventId")
            if event is not None:
                truth[str(event)] = _pick(_first(_event(data)), None)
    return truth


def merged(inputs: AnalyzerInput, truth_source: Path) -> pd.DataFrame:
    """Captured predictions of the window that have a ground truth label, as a table the metrics read."""
    truth = ground_truth(truth_source)
    options = inputs.model_quality
    rows = []
    for record in captured_records(inputs):
        key = record.event_metadata.inference_id or record.event_metadata.event_id
        if key not in truth or record.endpoint_output is None:
            continue
        output = _first(record.endpoint_output)
        rows.append({"probability": _pick(output, options.get("probability_attribute")),
                     "prediction": _pick(output, options.get("inference_attribute")), "groundTruth": truth[key]})
    table = pd.DataFrame(rows, columns=["probability", "prediction", "groundTruth"])
    if table.empty:
        raise InputError("No captured record of the window has a ground truth label (joined on inferenceId).")
    return table


def run(inputs: AnalyzerInput, truth_source: Path | None) -> tuple[dict[str, Any], list[dict[str, str]] | None]:
    """(statistics, violations or None for a baseline)."""
    if inputs.monitoring:
        table = merged(inputs, truth_source or inputs.dataset_source)
        options = dict(inputs.model_quality)
        options["ground_truth_attribute"] = "groundTruth"
        options["probability_attribute"] = "probability" if options.get("probability_attribute") else ""
        options["inference_attribute"] = "prediction" if options.get("inference_attribute") else ""
        inputs = AnalyzerInput(**{**inputs.__dict__, "model_quality": options})
    else:
        table = read_baseline_dataset(inputs)
    section, metrics, count = compute(inputs, table)
    statistics = {"version": 0.0, "dataset": {"item_count": count}, section: metrics}
    if not inputs.monitoring:
        return statistics, None
    constraints = inputs.read_json(inputs.baseline_constraints, "constraints") if inputs.baseline_constraints \
        else suggest(section, metrics)
    return statistics, violations(constraints, section, metrics)
