"""The three analyses of a Clarify job: pre-training bias, post-training bias (smclarify) and Kernel SHAP (shap).

Each returns its part of ``analysis.json`` in Clarify's layout: per facet a list of
``{"value_or_threshold", "metrics": [{"name", "description", "value"}]}`` (metrics sorted by name,
infinities as ``"Infinity"``), and ``explanations.kernel_shap.label0`` with ``global_shap_values``
and ``expected_value``.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import pandas as pd

from .config import POST_TRAINING, PRE_TRAINING, Analysis, AnalysisConfigError, metric_names


class _OneLine(logging.Handler):
    """smclarify's log records as one line each in the job's log: a metric that cannot be computed (CDDL and
    CDDPL without a group variable) is logged by ``logger.exception``, a 15-line traceback for a known case."""

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            reason = str(record.exc_info[1])
            text = f"{text}: {reason}"
            if "Group variable" in reason:
                text += " (set group_variable, BiasConfig(group_name=...), to compute it)"
        print(f"{record.levelname}: {text}", flush=True)


def _quiet_smclarify() -> None:
    logger = logging.getLogger("smclarify")
    if not any(isinstance(h, _OneLine) for h in logger.handlers):
        logger.addHandler(_OneLine(logging.WARNING))
        logger.propagate = False


def bias(analysis: Analysis, stage: str, predicted: np.ndarray | None = None) -> dict[str, Any]:
    """``pre_training_bias_metrics`` or ``post_training_bias_metrics``."""
    from smclarify.bias import report

    _quiet_smclarify()

    config = analysis.config
    entry = analysis.methods[f"{stage}_training_bias"]
    names = metric_names(entry, PRE_TRAINING if stage == "pre" else POST_TRAINING, f"{stage}-training")
    data = analysis.data
    positive = config["label_values_or_threshold"]
    label = report.LabelColumn(analysis.label, data[analysis.label], positive)
    group = data[config["group_variable"]] if config.get("group_variable") else None
    frame = data[[c for c in data.columns if c not in (config.get("excluded_columns") or [])]]
    facets: dict[str, Any] = {}
    for facet in analysis.facets:
        kwargs: dict[str, Any] = {}
        stage_type = report.StageType.PRE_TRAINING
        if stage == "post":
            stage_type = report.StageType.POST_TRAINING
            kwargs["predicted_label_column"] = report.LabelColumn("_predicted_label", pd.Series(predicted), positive)
        facet_column = report.FacetColumn(facet["name"], facet.get("value_or_threshold"))
        result = report.bias_report(frame, facet_column, label, stage_type, metrics=names,
                                    group_variable=group, **kwargs)
        facets[facet["name"]] = [_clean(item) for item in result]
    return {"label": analysis.label, "label_value_or_threshold": report.label_value_or_threshold(
        data[analysis.label], positive), "facets": facets}


def _clean(item: dict[str, Any]) -> dict[str, Any]:
    """smclarify's facet report with Clarify's JSON values: infinities as strings, NaN as null."""
    def value(v: Any) -> Any:
        if isinstance(v, float) and math.isinf(v):
            return "Infinity" if v > 0 else "-Infinity"
        if isinstance(v, float) and math.isnan(v):
            return None
        return v

    metrics = [{**m, "value": value(m.get("value"))} for m in item["metrics"]]
    return {**item, "metrics": sorted(metrics, key=lambda m: m["name"])}


def predicted_labels(scores: np.ndarray, analysis: Analysis) -> np.ndarray:
    """Scores → labels with ``probability_threshold`` (0.5), in the label's own values when they are 0/1."""
    threshold = float(analysis.config.get("probability_threshold", 0.5))
    return (scores > threshold).astype(int)


def kernel_shap(analysis: Analysis, predict: Any) -> tuple[dict[str, Any], pd.DataFrame, np.ndarray]:
    """Kernel SHAP of every row: (``explanations`` part, local values with ``<feature>_label0`` columns, baseline)."""
    import shap

    settings = analysis.methods["shap"]
    features = analysis.features
    numeric = all(pd.api.types.is_numeric_dtype(analysis.data[f]) for f in features)
    dtype: Any = float if numeric else object  # categories go to the model as text
    x = analysis.data[features].to_numpy(dtype=dtype)
    baseline = settings.get("baseline")
    if isinstance(baseline, list) and baseline:
        background = np.asarray(baseline, dtype=dtype).reshape(-1, len(features))
    elif not numeric:
        raise AnalysisConfigError("SHAPConfig.baseline is required when some features are not numeric: the "
                                  "baseline cannot be computed by clustering.")
    else:
        clusters = int(settings.get("num_clusters") or min(10, len(x)))
        background = shap.kmeans(x, clusters).data
    use_logit = bool(settings.get("use_logit", False))
    # Every record's own prediction in one request, not one request of one row per record (Kernel SHAP asks f(x)
    # of each record before its synthetic samples); a model answers a row the same alone or in a batch.
    known = dict(zip(map(_key, x), predict(x), strict=True)) if len(x) else {}

    def model(rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows)
        cached = known.get(_key(rows[0])) if len(rows) == 1 else None
        scores = np.asarray([cached]) if cached is not None else predict(rows)
        if use_logit:
            scores = np.clip(scores, 1e-12, 1 - 1e-12)
            return np.log(scores / (1 - scores))
        return scores

    if settings.get("seed") is not None:
        np.random.seed(int(settings["seed"]))
    explainer = shap.KernelExplainer(model, background)
    samples = settings.get("num_samples")
    values = np.asarray(explainer.shap_values(x, nsamples=int(samples) if samples else "auto", silent=True))
    method = settings.get("agg_method", "mean_abs")
    aggregated = {"mean_abs": np.mean(np.abs(values), axis=0), "mean_sq": np.mean(values ** 2, axis=0),
                  "median": np.median(values, axis=0)}[method]
    expected = float(np.ravel(explainer.expected_value)[0])
    part = {"kernel_shap": {"label0": {"global_shap_values": dict(zip(features, map(float, aggregated), strict=True)),
                                       "expected_value": expected}}}
    local = pd.DataFrame(values, columns=[f"{f}_label0" for f in features])
    return part, local, background


def _key(row: np.ndarray) -> tuple[Any, ...]:
    return tuple(row.tolist())
