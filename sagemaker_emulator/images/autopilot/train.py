"""The ENSEMBLING trial: fit AutoGluon-Tabular, score every model on the validation split, write the candidates.

Reads the container contract (``/opt/ml`` is ``SAGEMAKER_BASE_DIR``): the ``train`` and ``validation``
channels (CSV with a header, split by the AutoML job), ``hyperparameters.json`` (``target``,
``problem_type``, ``objective``, ``time_limit``, ``max_candidates``). Writes the predictor and
``autopilot.json`` to the model directory, ``candidates.json`` and the best candidate's validation
predictions (``validation_predictions.csv``) to the output data directory, and on
failure one line to ``output/failure``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from . import CANDIDATE_METRICS, EVAL_METRICS, FAMILIES, PREDICTIONS_FILE, PREDICTOR_DIR, PROBLEM_TYPES, SCHEMA_FILE

#: AutoGluon's settings per family: small enough for a laptop's two cores, the families Autopilot lists
FAMILY_SETTINGS: dict[str, dict[str, Any]] = {
    "GBM": {}, "XGB": {}, "RF": {"n_estimators": 100}, "XT": {"n_estimators": 100}, "LR": {}, "KNN": {},
}


def _read(channel: Path) -> Any:
    import pandas as pd

    files = sorted(p for p in channel.rglob("*") if p.is_file() and not p.name.startswith("."))
    return pd.concat([pd.read_csv(p, low_memory=False) for p in files], ignore_index=True)


def candidate_metrics(problem_type: str, y_true: Any, proba: Any, predicted: Any, positive: Any,
                      labels: list[Any], latency: float) -> dict[str, float]:
    """Autopilot's candidate metrics on one data set (scikit-learn's definitions)."""
    import numpy as np
    from sklearn import metrics as m

    out: dict[str, float] = {}
    if problem_type == "Regression":
        mse = float(m.mean_squared_error(y_true, predicted))
        out.update(MAE=float(m.mean_absolute_error(y_true, predicted)), MSE=mse, RMSE=float(np.sqrt(mse)),
                   R2=float(m.r2_score(y_true, predicted)))
    else:
        out["Accuracy"] = float(m.accuracy_score(y_true, predicted))
        out["BalancedAccuracy"] = float(m.balanced_accuracy_score(y_true, predicted))
        matrix = proba[labels].to_numpy(dtype="float64")
        matrix = matrix / matrix.sum(axis=1, keepdims=True)  # float32 rows that miss 1 by an ulp
        out["LogLoss"] = float(m.log_loss(y_true, matrix, labels=labels))
        if problem_type == "BinaryClassification":
            out["AUC"] = float(m.roc_auc_score(y_true == positive, proba[positive]))
            kw = {"pos_label": positive, "zero_division": 0}
            out.update(F1=float(m.f1_score(y_true, predicted, **kw)),
                       Precision=float(m.precision_score(y_true, predicted, **kw)),
                       Recall=float(m.recall_score(y_true, predicted, **kw)))
        else:
            kw = {"average": "macro", "zero_division": 0}
            out.update(F1macro=float(m.f1_score(y_true, predicted, **kw)),
                       PrecisionMacro=float(m.precision_score(y_true, predicted, **kw)),
                       RecallMacro=float(m.recall_score(y_true, predicted, **kw)))
    out["InferenceLatency"] = latency
    return {k: out[k] for k in CANDIDATE_METRICS[problem_type] if k in out}


def _predictions(proba: Any, predicted: Any, labels: list[Any]) -> Any:
    """One row per validation row: ``predicted_label`` and, for a classifier, ``probability_<label>``."""
    import pandas as pd

    frame = pd.DataFrame({"predicted_label": list(predicted)})
    for label in labels:
        frame[f"probability_{label}"] = proba[label].to_numpy(dtype="float64")
    return frame


def fit(base: Path, hps: dict[str, str]) -> None:
    from autogluon.tabular import TabularPredictor

    target, problem_type, objective = hps["target"], hps["problem_type"], hps["objective"]
    max_candidates = int(hps.get("max_candidates") or len(FAMILIES) + 1)
    time_limit = float(hps.get("time_limit") or 120)
    data = base / "input" / "data"
    train, validation = _read(data / "train"), _read(data / "validation")
    print(f"Autopilot ENSEMBLING: AutoGluon-Tabular on {len(train)} training and {len(validation)} validation "
          f"rows, target {target!r}, {problem_type}, objective {objective}, time limit {time_limit:.0f} s",
          flush=True)
    families = FAMILIES[:max(1, min(len(FAMILIES), max_candidates))]
    model_dir = base / "model"
    predictor = TabularPredictor(label=target, problem_type=PROBLEM_TYPES[problem_type],
                                 eval_metric=EVAL_METRICS[objective], path=str(model_dir / PREDICTOR_DIR),
                                 verbosity=2)
    predictor.fit(train, tuning_data=validation, time_limit=time_limit, presets="medium_quality",
                  hyperparameters={f: FAMILY_SETTINGS[f] for f in families}, num_cpus=os.cpu_count() or 1,
                  num_gpus=0)
    features = [c for c in train.columns if c != target]
    y_true = validation[target]
    board = predictor.leaderboard(validation, silent=True)
    classification = problem_type != "Regression"
    labels = list(predictor.class_labels) if classification else []
    positive = predictor.positive_class if problem_type == "BinaryClassification" else None
    candidates = []
    predictions: dict[str, Any] = {}
    for row in board.to_dict("records"):
        model = row["model"]
        started = time.perf_counter()
        if classification:
            proba = predictor.predict_proba(validation[features], model=model)
            predicted = proba.idxmax(axis=1)
        else:
            proba, predicted = None, predictor.predict(validation[features], model=model)
        latency = (time.perf_counter() - started) / max(1, len(validation))
        values = candidate_metrics(problem_type, y_true, proba, predicted, positive, labels, latency)
        print(f"candidate {model}: " + ", ".join(f"{k}={v:.6g}" for k, v in values.items()), flush=True)
        predictions[model] = _predictions(proba, predicted, labels)
        candidates.append({"model": model, "fit_time": float(row.get("fit_time") or 0.0),
                           "metrics": values})
    higher = objective not in ("LogLoss", "MAE", "MSE", "RMSE")
    candidates.sort(key=lambda c: c["metrics"][objective], reverse=higher)
    candidates = candidates[:max_candidates]
    schema = {"target": target, "problem_type": problem_type, "features": features,
              "labels": [str(x) for x in labels], "positive_class": None if positive is None else str(positive),
              "label_dtype": str(train[target].dtype)}
    (model_dir / SCHEMA_FILE).write_text(json.dumps(schema, indent=1))
    out = base / "output" / "data"
    out.mkdir(parents=True, exist_ok=True)
    (out / "candidates.json").write_text(json.dumps({"candidates": candidates, "schema": schema}, indent=1))
    # the best candidate's answers on the validation split: the AutoML job's model insights report reads them
    predictions[candidates[0]["model"]].to_csv(out / PREDICTIONS_FILE, index=False)
    print(f"Autopilot ENSEMBLING: {len(candidates)} candidates; best {candidates[0]['model']} "
          f"{objective}={candidates[0]['metrics'][objective]:.6g}", flush=True)


def main() -> int:
    base = Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml"))
    hps = json.loads((base / "input" / "config" / "hyperparameters.json").read_text())
    try:
        fit(base, hps)
    except Exception as exc:  # the job's FailureReason: one line
        import traceback

        traceback.print_exc()
        (base / "output").mkdir(parents=True, exist_ok=True)
        (base / "output" / "failure").write_text(f"{type(exc).__name__}: {exc}"[:900])
        return 1
    sys.stdout.flush()
    return 0
