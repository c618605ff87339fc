"""Metrics the container computes in Python rather than in XGBoost (accuracy, f1, r2, mse, ...).

The container passes them to ``xgb.train`` as ``feval``; XGBoost 1.7 then hands the function the
*raw margin*, and the container derives class labels with ``margin > 0`` (or ``argmax``).
XGBoost 3 hands a ``custom_metric`` the *transformed* prediction instead, so this module first
maps the prediction back to the margin the container saw (``logit`` for logistic objectives,
``log`` for log-link objectives).  The printed numbers therefore match the 1.7-1 container.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import numpy as np
import xgboost as xgb


def _sk() -> ModuleType:
    """scikit-learn's metrics, imported on first use: most jobs never need them, and importing
    scikit-learn costs more than half a second of every job's start-up."""
    import sklearn.metrics

    return sklearn.metrics


_LOGISTIC = ("binary:logistic", "reg:logistic")
_LOG_LINK = ("count:poisson", "reg:gamma", "reg:tweedie", "survival:cox")


def _class_metric(score: Callable[[np.ndarray, np.ndarray], float]) -> Callable:
    def compute(margin: np.ndarray, labels: np.ndarray) -> float:
        if margin.size == 0:
            return 0.0
        predicted = np.argmax(margin, axis=-1) if margin.ndim > 1 else (margin > 0.0).astype(int)
        return float(score(labels, predicted))

    return compute


def _regression_metric(score: Callable[[np.ndarray, np.ndarray], float]) -> Callable:
    def compute(margin: np.ndarray, labels: np.ndarray) -> float:
        return float(score(labels, margin))

    return compute


CUSTOM_METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "accuracy": _class_metric(lambda y, p: _sk().accuracy_score(y, p)),
    "balanced_accuracy": _class_metric(lambda y, p: _sk().balanced_accuracy_score(y, p)),
    "f1": _class_metric(lambda y, p: _sk().f1_score(y, p, average="macro")),
    "f1_binary": _class_metric(lambda y, p: _sk().f1_score(y, p, average="binary")),
    "f1_macro": _class_metric(lambda y, p: _sk().f1_score(y, p, average="macro")),
    "mse": _regression_metric(lambda y, p: _sk().mean_squared_error(y, p)),
    "rmse": _regression_metric(lambda y, p: float(np.sqrt(_sk().mean_squared_error(y, p)))),
    "mae": _regression_metric(lambda y, p: _sk().mean_absolute_error(y, p)),
    "precision": _class_metric(lambda y, p: _sk().precision_score(y, p)),
    "precision_macro": _class_metric(lambda y, p: _sk().precision_score(y, p, average="macro")),
    "precision_micro": _class_metric(lambda y, p: _sk().precision_score(y, p, average="micro")),
    "r2": _regression_metric(lambda y, p: _sk().r2_score(y, p)),
    "recall": _class_metric(lambda y, p: _sk().recall_score(y, p)),
    "recall_macro": _class_metric(lambda y, p: _sk().recall_score(y, p, average="macro")),
    "recall_micro": _class_metric(lambda y, p: _sk().recall_score(y, p, average="micro")),
}


def custom_metric_names(metrics: list[str]) -> list[str]:
    """The container-computed metrics among ``metrics``, in the given order."""
    return [name for name in metrics if name in CUSTOM_METRICS]


def to_margin(predictions: np.ndarray, objective: str | None, num_class: int | None) -> np.ndarray:
    """Recover the raw margin XGBoost 1.7 passed to ``feval`` from a transformed prediction."""
    predictions = np.asarray(predictions, dtype=np.float64)
    if objective in _LOGISTIC:
        clipped = np.clip(predictions, 1e-15, 1 - 1e-15)
        return np.log(clipped / (1 - clipped))
    if objective in _LOG_LINK:
        return np.log(np.clip(predictions, 1e-300, None))
    if objective == "multi:softmax" and num_class and predictions.ndim == 1:
        # A one-hot matrix has the same argmax as the margins the container received.
        return np.eye(int(num_class))[predictions.astype(int)]
    if objective == "multi:softprob" and num_class and predictions.ndim == 1:
        return predictions.reshape(-1, int(num_class))
    return predictions


def make_feval(names: list[str], objective: str | None, num_class: int | None) -> Callable:
    """Build the ``custom_metric`` callable reporting ``names`` for one DMatrix."""

    def evaluate(predictions: np.ndarray, dmatrix: xgb.DMatrix) -> list[tuple[str, float]]:
        margin = to_margin(predictions, objective, num_class)
        labels = dmatrix.get_label()
        return [(name, CUSTOM_METRICS[name](margin, labels)) for name in names]

    return evaluate
