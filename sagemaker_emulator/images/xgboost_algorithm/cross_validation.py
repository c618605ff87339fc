"""K-fold cross-validation mode (``_kfold`` / ``_num_cv_round``), a SageMaker extension.

As in the 1.7-1 container: train and validation data are combined, split with (stratified, for
classification) repeated k-fold, one booster per fold is trained and saved as
``xgboost-model-<i>``, a ``[<num_round>]\\t<data>-<metric>:<mean>`` summary line is printed after
every repetition (and over all repetitions when there are several), and the out-of-fold
predictions go to ``<output/data>/predictions.csv`` (label, mean probability and majority class
for classification; label and mean prediction otherwise).

Faithfully reproduced quirk: the per-fold evaluation lines are computed on the *whole* train and
validation channels (the container's watch list), not on the fold.  Deviation: a missing
``objective`` counts as regression (the container crashes on ``None.startswith``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import xgboost as xgb

from .console import print_line
from .errors import AlgorithmError

logger = logging.getLogger(__name__)

PREDICTIONS_FILE = "predictions.csv"


class PredictionRecorder:
    """Collects out-of-fold predictions, one column per cross-validation repetition."""

    def __init__(self, labels: np.ndarray, num_cv_round: int, classification: bool) -> None:
        self.labels = labels.copy()
        self.num_cv_round = num_cv_round
        self.classification = classification
        self.predicted = np.zeros((len(labels), num_cv_round))
        self.probability = np.zeros((len(labels), num_cv_round))
        self.count = np.zeros(len(labels), dtype=int)

    def record(self, indices: np.ndarray, predictions: np.ndarray) -> None:
        column = self.count[indices]
        if np.any(column >= self.num_cv_round):
            raise AlgorithmError(
                f"More than {self.num_cv_round} repeated predictions for same row were provided."
            )
        if self.classification:
            if predictions.ndim > 1:
                classes = np.argmax(predictions, axis=-1)
                probability = predictions[np.arange(len(classes)), classes]
            else:
                classes = (predictions > 0.5).astype(int)
                probability = predictions
            self.predicted[indices, column] = classes
            self.probability[indices, column] = probability
        else:
            self.predicted[indices, column] = predictions
        self.count[indices] += 1

    def _majority(self) -> np.ndarray:
        result = np.empty(len(self.labels))
        for row, values in enumerate(self.predicted):
            uniques, counts = np.unique(values, return_counts=True)
            result[row] = uniques[np.argmax(counts)]
        return result

    def save(self, output_data_dir: str) -> None:
        columns = [self.labels]
        if self.classification:
            columns += [self.probability.mean(axis=-1), self._majority()]
        else:
            columns.append(self.predicted.mean(axis=-1))
        os.makedirs(output_data_dir, exist_ok=True)
        path = os.path.join(output_data_dir, PREDICTIONS_FILE)
        logger.info(f"Storing predictions on validation set(s) in {path}")
        np.savetxt(path, np.vstack(columns).T, delimiter=",", fmt="%f")


def print_cv_metric(num_round: int, evals_results: list[dict[str, dict[str, list[float]]]]) -> None:
    """Print the mean of every final metric over ``evals_results`` (metric-major order)."""
    line = f"[{num_round}]"
    data_names = list(evals_results[0])
    for metric_name in evals_results[0]["train"]:
        for data_name in data_names:
            values = [result[data_name][metric_name][-1] for result in evals_results]
            line += f"\t{data_name}-{metric_name}:{np.mean(values):.5f}"
    print_line(line)


def run(
    *,
    params: dict[str, Any],
    train_val_dmatrix: xgb.DMatrix,
    watchlist: list[tuple[xgb.DMatrix, str]],
    num_round: int,
    kfold: int,
    num_cv_round: int,
    custom_metric: Callable | None,
    callbacks_for: Callable[[int], tuple[str | None, int, list]],
    output_data_dir: str,
) -> list[xgb.Booster]:
    """Train one booster per fold and repetition; returns them in training order."""
    objective = params.get("objective") or ""
    classification = bool(params.get("num_class")) or objective.startswith("binary:")
    rows = train_val_dmatrix.num_row()
    logger.info(f"Run {num_cv_round}-round of {kfold}-fold cross validation with {rows} rows")

    from sklearn import model_selection  # lazy: only k-fold jobs pay for importing scikit-learn

    labels = train_val_dmatrix.get_label()
    splitter = (
        model_selection.RepeatedStratifiedKFold(n_splits=kfold, n_repeats=num_cv_round)
        if classification
        else model_selection.RepeatedKFold(n_splits=kfold, n_repeats=num_cv_round)
    )
    recorder = PredictionRecorder(labels, num_cv_round, classification)
    boosters: list[xgb.Booster] = []
    results: list[dict] = []
    for train_idx, val_idx in splitter.split(X=np.zeros(rows), y=labels if classification else None):
        fold_train = train_val_dmatrix.slice(train_idx)
        fold_val = train_val_dmatrix.slice(val_idx)
        xgb_model, iteration, callbacks = callbacks_for(len(boosters))
        result: dict = {}
        logger.info(f"Train cross validation fold {(len(boosters) % kfold) + 1}")
        booster = xgb.train(
            params,
            fold_train,
            num_boost_round=num_round - iteration,
            evals=watchlist,
            custom_metric=custom_metric,
            evals_result=result,
            callbacks=callbacks,
            xgb_model=xgb_model,
            verbose_eval=False,
        )
        boosters.append(booster)
        results.append(result)
        recorder.record(val_idx, booster.predict(fold_val))
        if len(boosters) % kfold == 0:
            logger.info(f"The metrics of round {len(boosters) // kfold} cross validation")
            print_cv_metric(num_round, results[-kfold:])

    recorder.save(output_data_dir)
    if num_cv_round > 1:
        logger.info(f"The overall metrics of {num_cv_round}-round cross validation")
        print_cv_metric(num_round, results)
    return boosters
