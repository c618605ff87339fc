"""Metric names and SageMaker's default metric definitions for the built-in XGBoost algorithm.

The tuner and the training-job metric scraper use ``METRIC_DEFINITIONS`` to turn log lines into
``FinalMetricDataList`` values, and ``MAXIMIZE`` / ``direction`` to know which way is better.

Deviations from the container's own ``metrics.py`` (both on purpose, both documented in the spec):

* the regexes capture only the leading number instead of ``(\\S+)``, which in the container
  swallows the rest of the line when the metric is not the last one on it;
* ``train:<m>`` definitions are declared too (the container only declares ``validation:<m>``), so
  that training metrics show up locally as they do for the SDK's ``TrainingJobAnalytics``.

Lines are matched after tabs have been replaced by ``#011``, as CloudWatch renders them.
"""

from __future__ import annotations

# Order matters: the container prints this exact list (maximised names first) in the
# "eval_metric ... not in range [...]" error message and uses it for `_tuning_objective_metric`.
MAXIMIZE_METRICS: list[str] = [
    "accuracy",
    "auc",
    "aucpr",
    "balanced_accuracy",
    "f1",
    "f1_binary",
    "f1_macro",
    "map",
    "ndcg",
    "precision",
    "r2",
    "recall",
    "precision_macro",
    "precision_micro",
    "recall_macro",
    "recall_micro",
]

MINIMIZE_METRICS: list[str] = [
    "aft-nloglik",
    "cox-nloglik",
    "error",
    "gamma-deviance",
    "gamma-nloglik",
    "interval-regression-accuracy",
    "logloss",
    "mae",
    "mape",
    "merror",
    "mlogloss",
    "mphe",
    "mse",
    "poisson-nloglik",
    "rmse",
    "rmsle",
    "tweedie-nloglik",
]

ALL_METRICS: list[str] = MAXIMIZE_METRICS + MINIMIZE_METRICS

MAXIMIZE: set[str] = set(MAXIMIZE_METRICS)
MINIMIZE: set[str] = set(MINIMIZE_METRICS)

NUMBER_PATTERN = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"

# Names accepted by the `_tuning_objective_metric` hyperparameter (the container's metric names).
TUNING_OBJECTIVE_NAMES: list[str] = [f"validation:{name}" for name in ALL_METRICS]


def metric_regex(data_name: str, metric: str) -> str:
    """Regex that captures the value of ``<data_name>-<metric>`` on a ``[i]#011...`` line."""
    return f".*\\[[0-9]+\\].*#011{data_name}-{metric}:{NUMBER_PATTERN}.*"


METRIC_DEFINITIONS: list[dict[str, str]] = [
    {"Name": f"{data_name}:{metric}", "Regex": metric_regex(data_name, metric)}
    for data_name in ("validation", "train")
    for metric in ALL_METRICS
]


def direction(metric_name: str) -> str:
    """``"Maximize"`` or ``"Minimize"`` for ``auc``, ``validation:auc`` or ``train:auc``."""
    bare = metric_name.split(":", 1)[-1]
    return "Maximize" if bare in MAXIMIZE else "Minimize"
