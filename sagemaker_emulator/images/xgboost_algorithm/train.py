"""One training run on this host's data: ``xgb.train`` with the container's metric and callback setup.

Mirrors ``algorithm_mode/train.py::train_job`` of the 1.7-1 container: the evaluation metrics are
the sorted union of ``eval_metric`` and the HPO objective metric (container-computed metrics go to
a custom metric function), early stopping watches the *last* metric of the HPO objective (else of
``eval_metric``) on the ``validation`` data, XGBoost errors become ``UserError`` when they are
known data mistakes and ``AlgorithmError`` otherwise, and only the master saves the model.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import xgboost as xgb

from . import cross_validation
from .callbacks import MODEL_NAME, build_callbacks
from .custom_metrics import custom_metric_names, make_feval
from .debug_hook import hook_from_config
from .errors import AlgorithmError, UserError, library_message
from .metrics import MAXIMIZE

logger = logging.getLogger(__name__)

CUSTOMER_ERRORS = [
    "label must be in [0,1] for logistic regression",
    "label must be in [0, num_class)",
    "Target is multiclass but average='binary'",
    "feature_names mismatch",
    "Check failed: preds.size() == info.labels_.size()",
    "Check failed: !auc_error AUC: the dataset only contains pos or neg samples",
    "Check failed: base_score > 0.0f && base_score < 1.0f base_score must be in (0,1) for logistic loss",
    "Check failed: label_correct PoissonRegression: label must be nonnegative",
    "Check failed: label_correct TweedieRegression: label must be nonnegative",
    "Parameter reg_lambda should be greater equal to 0",
    # The same data mistakes as XGBoost 3 words them.
    "base_score must be in (0,1) for the logistic loss",
    "label must be in (0, 1) for logistic regression",
    "label must be non-negative for Poisson/Tweedie regression",
    "label must be discrete values in the range of [0, num_class)",
]


def union_metrics(first: list[str] | None, second: list[str] | None) -> list[str] | None:
    """Union of two metric lists; sorted when both are given (so all hosts agree on the order)."""
    if first is None:
        return second
    if second is None:
        return first
    return sorted(set(first) | set(second))


def configure_metrics(
    tuning_objective_metric: str | None,
    eval_metric: list[str] | None,
    objective: str | None,
    num_class: int | None,
) -> tuple[list[str] | None, Callable | None, list[str] | None]:
    """Return (native eval_metric list, custom metric function, HPO objective metric list)."""
    tuning_metrics = None
    if tuning_objective_metric is not None:
        metric_name = tuning_objective_metric.split(":")[1]
        tuning_metrics = metric_name.split(",")
        logger.info(f"Setting up HPO optimized metric to be : {metric_name}")

    union = union_metrics(tuning_metrics, eval_metric)
    if union is None:
        return None, None, tuning_metrics
    custom = custom_metric_names(union)
    if not custom:
        return union, None, tuning_metrics
    native = [name for name in union if name not in custom]
    return native, make_feval(custom, objective, num_class), tuning_metrics


def _xgboost_params(train_cfg: dict[str, Any]) -> dict[str, Any]:
    """Turn validated hyperparameters into the parameter strings XGBoost expects."""
    params = dict(train_cfg)
    if "monotone_constraints" in params:
        params["monotone_constraints"] = "(" + ",".join(str(v) for v in params["monotone_constraints"]) + ")"
    if "interaction_constraints" in params:
        params["interaction_constraints"] = str([list(group) for group in params["interaction_constraints"]])
    return params


def _translate(error: Exception) -> Exception:
    text = library_message(error)
    if any(known in text for known in CUSTOMER_ERRORS):
        return UserError(text)
    return AlgorithmError(f"XGB train call failed with exception:\n {text}")


def train_job(
    train_cfg: dict[str, Any],
    train_dmatrix: xgb.DMatrix,
    val_dmatrix: xgb.DMatrix | None,
    train_val_dmatrix: xgb.DMatrix | None,
    model_dir: str,
    checkpoint_dir: str | None,
    is_master: bool,
    output_data_dir: str,
    debug_hook_config: dict[str, Any] | None = None,
) -> None:
    """Train (or cross-validate) on the given matrices and save the model(s) if ``is_master``.

    ``debug_hook_config``: the job's ``debughookconfig.json`` (``LocalPath`` already on this host), which
    adds SageMaker Debugger's hook to a single training, as the 1.7-1 container's ``add_debugging`` does.
    """
    train_cfg = dict(train_cfg)
    num_round = train_cfg.pop("num_round")
    save_model_on_termination = train_cfg.pop("save_model_on_termination", "false")
    tuning_param = train_cfg.pop("_tuning_objective_metric", None)
    eval_metric = train_cfg.get("eval_metric")
    native, custom_metric, tuning_metrics = configure_metrics(
        tuning_param, eval_metric, train_cfg.get("objective"), train_cfg.get("num_class")
    )
    if native:
        train_cfg["eval_metric"] = native
    else:
        train_cfg.pop("eval_metric", None)

    early_stopping_rounds = train_cfg.pop("early_stopping_rounds", None)
    early_stopping_data_name = "validation" if val_dmatrix is not None else None
    early_stopping_metric = None
    if early_stopping_rounds:
        if tuning_metrics:
            early_stopping_metric = tuning_metrics[-1]
        elif eval_metric:
            early_stopping_metric = eval_metric[-1]

    logger.info(f"Train matrix has {train_dmatrix.num_row()} rows and {train_dmatrix.num_col()} columns")
    if val_dmatrix is not None:
        logger.info(f"Validation matrix has {val_dmatrix.num_row()} rows")

    def callbacks_for(fold: int | None) -> tuple[str | None, int, list]:
        return build_callbacks(
            model_dir=model_dir,
            checkpoint_dir=checkpoint_dir,
            early_stopping_data_name=early_stopping_data_name,
            early_stopping_metric=early_stopping_metric,
            early_stopping_rounds=early_stopping_rounds,
            maximize=early_stopping_metric in MAXIMIZE,
            save_model_on_termination=save_model_on_termination,
            is_master=is_master,
            fold=fold,
        )

    watchlist = [(train_dmatrix, "train")]
    if val_dmatrix is not None:
        watchlist.append((val_dmatrix, "validation"))

    try:
        kfold = train_cfg.pop("_kfold", None)
        if kfold is None:
            xgb_model, iteration, callbacks = callbacks_for(None)
            hook = hook_from_config(debug_hook_config, (debug_hook_config or {}).get("LocalPath", ""),
                                    train_cfg, train_dmatrix, val_dmatrix)
            if hook is not None:
                callbacks = [*callbacks, hook]
            boosters = [
                xgb.train(
                    _xgboost_params(train_cfg),
                    train_dmatrix,
                    num_boost_round=num_round - iteration,
                    evals=watchlist,
                    custom_metric=custom_metric,
                    callbacks=callbacks,
                    xgb_model=xgb_model,
                    verbose_eval=False,
                )
            ]
        else:
            num_cv_round = train_cfg.pop("_num_cv_round", 1)
            boosters = cross_validation.run(
                params=_xgboost_params(train_cfg),
                train_val_dmatrix=train_val_dmatrix if train_val_dmatrix is not None else train_dmatrix,
                watchlist=watchlist,
                num_round=num_round,
                kfold=kfold,
                num_cv_round=num_cv_round,
                custom_metric=custom_metric,
                callbacks_for=callbacks_for,
                output_data_dir=output_data_dir,
            )
    except Exception as error:
        raise _translate(error) from error

    os.makedirs(model_dir, exist_ok=True)
    if not is_master:
        return
    if kfold is None:
        boosters[0].save_model(os.path.join(model_dir, MODEL_NAME))
        logger.debug(f"Stored trained model at {os.path.join(model_dir, MODEL_NAME)}")
    else:
        for fold, booster in enumerate(boosters):
            booster.save_model(os.path.join(model_dir, f"{MODEL_NAME}-{fold}"))
