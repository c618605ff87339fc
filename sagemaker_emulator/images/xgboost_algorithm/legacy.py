"""The legacy first-party XGBoost algorithm (``xgboost:latest`` / ``xgboost:1``): XGBoost 0.72's hyperparameters.

``image_uris.retrieve("xgboost", region, "latest")`` still returns this image, and the public Immersion Day
notebooks train it with ``silent=0``, a hyperparameter the 1.x containers refuse ("Extraneous hyperparameter
found: silent"). This module validates a job's hyperparameters as the legacy algorithm did, then translates
them for the XGBoost installed here; everything after validation (data, metric lines, model) is the 1.x
pipeline's.

Sources: the developer guide's "XGBoost Release 0.72 Hyperparameters" table (names, defaults, ranges) and
the legacy algorithm's own validation code as AWS published it in the first commit of
``aws/sagemaker-xgboost-container`` (``train_helper.get_params``, "copied from AI APPS XGB"), whose texts
are reproduced: "Parameter 'eta' should be in range [0,1].", "Require input for parameter num_round" …

Judgements, said here because no public source settles them:

* a name outside the table fails with the wording of the first-party algorithm family's schema check,
  "Additional hyperparameters are not allowed ('<name>' was unexpected)" (``get_params`` itself would
  ignore it; the platform's check ran first);
* failures are reported as first-party algorithms report them, ``ClientError: <message>`` for the user's
  mistakes and ``AlgorithmError: <message>`` otherwise (the FailureReason is the failure file's text).

Translation for the installed XGBoost (each said in the job's log): ``silent=1`` becomes ``verbosity=0``
(``silent=0`` is XGBoost's default verbosity), ``reg:linear`` becomes its new name ``reg:squarederror``,
parameters XGBoost no longer has (``sketch_eps``, ``lambda_bias``, ``dsplit``, ``prob_buffer_row``) are
dropped, and without ``eval_metric`` or a tuning objective the 0.72 default metric is kept (``error`` for
``binary:logistic``, ``merror`` for ``multi:*``; XGBoost 1.2 changed both to log-loss).
Deviation: the model is saved in XGBoost's own format, not pickled (0.72 pickled the Booster); load it with
``xgboost.Booster().load_model``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .errors import UserError

#: the nine metrics the 0.72 algorithm emits for tuning (developer guide, "Metrics Computed by ... 0.72")
TUNING_METRICS = ("auc", "error", "logloss", "mae", "map", "merror", "mlogloss", "ndcg", "rmse")
TUNING_OBJECTIVE_NAMES = [f"validation:{name}" for name in TUNING_METRICS]

OBJECTIVES = ["reg:linear", "reg:logistic", "binary:logistic", "binary:logitraw", "count:poisson",
              "multi:softmax", "multi:softprob", "rank:pairwise", "reg:gamma", "reg:tweedie"]
EVAL_METRICS = ["rmse", "mae", "logloss", "error", "merror", "mlogloss", "auc", "ndcg", "map",
                "poisson-nloglik", "gamma-nloglik", "gamma-deviance", "tweedie-nloglik"]
_AUC_OBJECTIVES = ("binary:logistic", "binary:logitraw", "multi:softmax", "multi:softprob", "reg:logistic",
                   "rank:pairwise", "binary:hinge")
_MULTI = ("multi:softmax", "multi:softprob")
_TREE_PLUGINS = ["grow_colmaker", "distcol", "grow_histmaker", "grow_local_histmaker", "grow_skmaker", "sync",
                 "refresh", "prune"]
_TREE_BUILD_PLUGINS = ["grow_colmaker", "distcol", "grow_histmaker", "grow_local_histmaker"]
_LINEAR_PLUGINS = ["shotgun", "coord_descent"]
_LINEAR_UPDATER_TEXT = "Linear updater should be one of these options: 'shotgun', 'coor_descent'."
_UPDATE_TEXT = "process_type 'update' can only be used with updater 'refresh' and 'prune'"

#: parameters of XGBoost 0.72 that the installed XGBoost no longer reads
REMOVED = ("sketch_eps", "lambda_bias", "dsplit", "prob_buffer_row")
#: XGBoost 1.2 changed these objectives' default metric; 0.72 printed the old one
DEFAULT_METRICS = {"binary:logistic": "error", "multi:softmax": "merror", "multi:softprob": "merror"}


def _int(value: Any, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise UserError(f"Parameter {name} expects integer input.") from None


def _float(value: Any, name: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise UserError(f"Parameter {name} expects float input.") from None


def _number(parse: Callable[[Any, str], float], ok: Callable[[float], bool] | None = None,
            text: str = "") -> Callable[[Any, str], Any]:
    def check(value: Any, name: str) -> Any:
        number = parse(value, name)
        if ok is not None and not ok(number):
            raise UserError(text.format(name=name))
        return number
    return check


def _choice(options: list[str]) -> Callable[[Any, str], Any]:
    shown = ", ".join(f"'{option}'" for option in options)

    def check(value: Any, name: str) -> Any:
        if value not in options:
            raise UserError(f"Parameter '{name}' should be one of these options: {shown}.")
        return value
    return check


def _flag(value: Any, name: str) -> int:
    number = _int(value, name)
    if number not in (0, 1):
        raise UserError(f"Parameter '{name}' should be either '0' or '1'.")
    return number


def _cpu_only(options: list[str]) -> Callable[[Any, str], Any]:
    choose = _choice(options)

    def check(value: Any, name: str) -> Any:
        if "gpu" in str(value):
            raise UserError("GPU training is not supported yet.")
        return choose(value, name)
    return check


_UNIT = "Parameter '{name}' should be in range [0,1]."
_HALF_OPEN = "Parameter '{name}' should be in range (0,1]."
_NON_NEGATIVE = "Parameter '{name}' should be greater than or equal to 0."

#: name → parse-and-check, in the order the legacy code checks them (the first failure is the one reported)
CHECKS: dict[str, Callable[[Any, str], Any]] = {
    "booster": _choice(["gbtree", "gblinear", "dart"]),
    "silent": _flag,
    "nthread": _number(_int, lambda v: v >= 1, "Parameter '{name}' should be greater or equal to 1."),
    "eta": _number(_float, lambda v: 0 <= v <= 1, _UNIT),
    "gamma": _number(_float, lambda v: v >= 0, _NON_NEGATIVE),
    "max_depth": _number(_int, lambda v: v >= 0, _NON_NEGATIVE),
    "min_child_weight": _number(_float, lambda v: v >= 0, _NON_NEGATIVE),
    "max_delta_step": _number(_float, lambda v: v >= 0, _NON_NEGATIVE),
    "subsample": _number(_float, lambda v: 0 < v <= 1, _HALF_OPEN),
    "colsample_bytree": _number(_float, lambda v: 0 < v <= 1, _HALF_OPEN),
    "colsample_bylevel": _number(_float, lambda v: 0 < v <= 1, _HALF_OPEN),
    "lambda": _number(_float),
    "alpha": _number(_float),
    "tree_method": _cpu_only(["auto", "exact", "approx", "hist"]),
    "sketch_eps": _number(_float, lambda v: 0 < v < 1, "Parameter '{name}' should be in range (0,1)."),
    "scale_pos_weight": _number(_float),
    "updater": lambda value, name: value,  # checked with booster and process_type below
    "dsplit": _choice(["row", "col"]),
    "prob_buffer_row": _number(_float),
    "refresh_leaf": _flag,
    "process_type": _choice(["default", "update"]),
    "grow_policy": _choice(["depthwise", "lossguide"]),
    "max_leaves": _number(_int),
    "max_bin": _number(_int),
    "predictor": _cpu_only(["cpu_predictor"]),
    "sample_type": _choice(["uniform", "weighted"]),
    "normalize_type": _choice(["tree", "forest"]),
    "rate_drop": _number(_float, lambda v: 0 <= v <= 1, _UNIT),
    "one_drop": _flag,
    "skip_drop": _number(_float, lambda v: 0 <= v <= 1, _UNIT),
    "lambda_bias": _number(_float),
    "tweedie_variance_power": _number(_float, lambda v: 1 < v < 2, "Parameter '{name}' should be in range (1,2)."),
    "objective": _choice(OBJECTIVES),
    "num_class": _number(_int, lambda v: v >= 2, "Parameter '{name}' should be greater or equal to 2."),
    "base_score": _number(_float),
    "_tuning_objective_metric": lambda value, name: value,  # checked against the nine tuning metrics below
    "eval_metric": lambda value, name: value,  # checked with objective below
    "seed": _number(_int),
    "num_round": _number(_int),
    "early_stopping_rounds": _number(_int),
    "csv_weights": _flag,
}
ACCEPTED = frozenset(CHECKS)


def _updater(text: str, config: Mapping[str, Any]) -> list[str]:
    if "[" in text or "]" in text:
        raise UserError("Do not expect bracket for input value of 'updater'. Use format as 'A,B,C...'.")
    plugins = text.split(",")
    if config.get("booster") == "gblinear":
        if not (len(plugins) == 1 and plugins[0] in _LINEAR_PLUGINS):
            raise UserError(_LINEAR_UPDATER_TEXT)
    elif config.get("process_type") == "update":
        if not all(plugin in ("refresh", "prune") for plugin in plugins):
            raise UserError(_UPDATE_TEXT)
    else:
        if not all(plugin in _TREE_PLUGINS for plugin in plugins):
            raise UserError(
                "Tree updater should be selected from these options: 'grow_colmaker', 'distcol', 'grow_histmaker', "
                "'grow_local_histmaker', 'grow_skmaker', 'sync', 'refresh', 'prune', 'shortgun', 'coord_descent'.")
        if sum(plugin in _TREE_BUILD_PLUGINS for plugin in plugins) > 1:
            raise UserError("Only one tree grow plugin can be selected. Choose one from the following: "
                            "'grow_colmaker', 'distcol', 'grow_histmaker', 'grow_local_histmaker', 'grow_skmaker'")
    return plugins


def _eval_metric(text: str, objective: str | None) -> list[str]:
    if "[" in text or "]" in text:
        raise UserError("Do not expect bracket for input value of 'eval_metric'. Use format as 'A,B,C...'.")
    metrics = text.split(",")
    for metric in metrics:
        if metric == "auc" and objective not in _AUC_OBJECTIVES:
            raise UserError("Metric 'auc' can only be applied for classification and ranking problem.")
        if "<function" in metric:
            raise UserError(f"User defined evaluation metric {metric} is not supported yet.")
        if "@" not in metric and metric not in EVAL_METRICS:
            shown = ", ".join(f"'{name}'" for name in EVAL_METRICS)
            raise UserError(f"Metric '{metric}' is not supported. Parameter 'eval_metric' should be one of these "
                            f"options:{shown}.")
        if "@" in metric:
            name, threshold = (part.strip() for part in metric.split("@")[:2])
            if name not in ("error", "ndcg", "map"):
                raise UserError(f"Metric '{metric}' is not supported. Parameter 'eval_metric' with customized "
                                "threshold should be one of these options: 'error', 'ndcg', 'map'.")
            _float_threshold(threshold, name)
    return metrics


def _float_threshold(threshold: str, name: str) -> None:
    try:
        float(threshold)
    except ValueError:
        raise UserError(f"Threshold value 't' in '{name}@t' expects float input.") from None


def validate(user_values: Mapping[str, Any]) -> dict[str, Any]:
    """Check ``hyperparameters.json`` as the 0.72 algorithm did; return typed values (0.72's names).

    Raises :class:`UserError` with the legacy algorithm's text on the first problem found.
    """
    for name in user_values:
        if name not in ACCEPTED:
            raise UserError(f"Additional hyperparameters are not allowed ('{name}' was unexpected)")
    config = {name: CHECKS[name](user_values[name], name) for name in CHECKS if name in user_values}
    if config.get("booster") == "gblinear" and "updater" not in config:
        raise UserError(_LINEAR_UPDATER_TEXT)
    if "updater" in config:
        config["updater"] = _updater(str(config["updater"]), config)
    if config.get("process_type") == "update" and "updater" not in config:
        raise UserError(_UPDATE_TEXT)
    objective = config.get("objective")
    if objective in _MULTI and "num_class" not in config:
        raise UserError("Require input for parameter 'num_class' for multi classification.")
    if "num_class" in config and objective not in _MULTI:
        raise UserError("Do not need to setup parameter 'num_class' for learning task other than multi "
                        "classification.")
    if "eval_metric" in config:
        config["eval_metric"] = _eval_metric(str(config["eval_metric"]), objective)
    tuning = config.get("_tuning_objective_metric")
    if tuning is not None and tuning not in TUNING_OBJECTIVE_NAMES:
        raise UserError(f"Tuning objective metric '{tuning}' is not supported. It should be one of these options: "
                        f"{', '.join(TUNING_OBJECTIVE_NAMES)}.")
    if "num_round" not in config:
        raise UserError("Require input for parameter num_round")
    return config


def translate(config: Mapping[str, Any], log: Callable[[str], None]) -> dict[str, Any]:
    """0.72's validated values → what the installed XGBoost reads, each change said through ``log``."""
    from importlib.metadata import version

    installed = version("xgboost")
    out = dict(config)
    silent = out.pop("silent", None)
    if silent == 1:
        out["verbosity"] = 0
        log("silent=1 is verbosity=0 for XGBoost " + installed)
    if out.get("objective") == "reg:linear":
        out["objective"] = "reg:squarederror"
        log(f"objective reg:linear is named reg:squarederror in XGBoost {installed}")
    dropped = [name for name in REMOVED if out.pop(name, None) is not None]
    if dropped:
        log(f"XGBoost {installed} no longer has {', '.join(dropped)}: not used")
    default = DEFAULT_METRICS.get(out.get("objective") or "")
    if default and "eval_metric" not in out and "_tuning_objective_metric" not in out:
        out["eval_metric"] = [default]
    return out
