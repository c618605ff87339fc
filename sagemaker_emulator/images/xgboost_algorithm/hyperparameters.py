"""Hyperparameter validation of the XGBoost 1.7-1 algorithm container.

``validate`` reproduces the container's four steps and their error texts (users and tests match on
them): 0. aliases, 1. required (``num_round``), 2. unknown names and parsing, 3. ranges,
4. dependency rules (each rule sees only the hyperparameters it depends on that were given).

Faithfully reproduced container quirks:

* any ``eval_metric`` without an ``objective`` fails with ``KeyError: 'objective'`` (the
  dependency rule indexes the missing objective);
* ``interaction_constraints`` elements must be >= 1 and ``updater`` lists its allowed values
  with duplicates, exactly as the container prints them.

Deviations: ``monotone_constraints`` is parsed with ``ast.literal_eval`` (the container uses
``eval``), ``SyntaxError`` while parsing becomes the usual "could not parse value" error, and the
gblinear updater message lists the options readably (the container formats a generator object).
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import AlgorithmError, UserError
from .metrics import ALL_METRICS, TUNING_OBJECTIVE_NAMES

INF = "+inf"


@dataclass(frozen=True)
class Interval:
    """A numeric range printed in the container's notation, e.g. ``(0, 1]`` or ``[1, +inf)``."""

    min_open: float | None = None
    min_closed: float | None = None
    max_open: float | None = None
    max_closed: float | None = None

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, int | float):
            raise TypeError(f"'{type(value).__name__}' cannot be compared with an interval")
        return not (
            (self.min_open is not None and value <= self.min_open)
            or (self.min_closed is not None and value < self.min_closed)
            or (self.max_open is not None and value >= self.max_open)
            or (self.max_closed is not None and value > self.max_closed)
        )

    def __str__(self) -> str:
        if self.min_open is not None:
            low = f"({self.min_open}, "
        elif self.min_closed is not None:
            low = f"[{self.min_closed}, "
        else:
            low = "(-inf, "
        if self.max_open is not None:
            high = f"{self.max_open})"
        elif self.max_closed is not None:
            high = f"{self.max_closed}]"
        else:
            high = f"{INF})"
        return low + high


@dataclass(frozen=True)
class CustomRange:
    """A range defined by a predicate; printed as the list of its reference values."""

    values: list[str]
    accepts: Callable[[list[str], Any], bool]

    def __contains__(self, value: object) -> bool:
        return self.accepts(self.values, value)

    def __str__(self) -> str:
        return str(self.values)


Range = Interval | CustomRange | list
DependencyRule = Callable[[Any, dict[str, Any]], None]


@dataclass(frozen=True)
class Spec:
    """Declaration of one hyperparameter: how to parse it, its valid range and dependency rule."""

    name: str
    kind: str  # Integer, Continuous, Categorical, CommaSeparatedList, NestedList, Tuple
    range: Range
    required: bool = False
    depends_on: tuple[str, ...] = ()
    rule: DependencyRule | None = field(default=None, compare=False)

    def parse(self, value: Any) -> Any:
        if self.kind == "Integer":
            return int(value)
        if self.kind == "Continuous":
            return float(value)
        if self.kind == "CommaSeparatedList":
            return value.split(",")
        if self.kind in ("NestedList", "Tuple"):
            if not isinstance(value, str):
                return value
            try:
                return ast.literal_eval(value)
            except SyntaxError as error:
                raise ValueError(str(error)) from error
        return value

    def check_range(self, value: Any) -> None:
        if self.kind == "CommaSeparatedList":
            bad = any(item not in self.range for item in value)
        elif self.kind == "NestedList":
            bad = any(item not in self.range for inner in value for item in inner)
        elif self.kind == "Tuple":
            bad = any(item not in self.range for item in value)
        else:
            if value not in self.range:
                raise UserError(f"Hyperparameter {self.name}: {value} is not in {self.range}")
            return
        if bad:
            raise UserError(f"Hyperparameter {self.name}: value {value} not in range {self.range}")


# ---------------------------------------------------------------------------- dependency rules

_TREE_PLUGINS = [
    "grow_colmaker",
    "distcol",
    "grow_histmaker",
    "grow_skmaker",
    "sync",
    "refresh",
    "prune",
    "grow_quantile_histmaker",
]
_TREE_BUILD_PLUGINS = ["grow_colmaker", "distcol", "grow_histmaker", "grow_quantile_histmaker"]
_LINEAR_PLUGINS = ["shotgun", "coord_descent"]
_PROCESS_UPDATE_PLUGINS = ["refresh", "prune"]


def _updater_rule(value: list[str], deps: dict[str, Any]) -> None:
    if deps.get("booster") == "gblinear":
        if not (len(value) == 1 and value[0] in _LINEAR_PLUGINS):
            options = ", ".join(f"'{plugin}'" for plugin in _LINEAR_PLUGINS)
            raise UserError(f"Linear updater should be one of these options: {options}.")
    elif deps.get("process_type") == "update":
        if not all(item in _PROCESS_UPDATE_PLUGINS for item in value):
            raise UserError("process_type 'update' can only be used with updater 'refresh' and 'prune'")
    else:
        if not all(item in _TREE_PLUGINS for item in value):
            raise UserError(
                "Tree updater should be selected from these options: 'grow_colmaker', 'distcol', "
                "'grow_histmaker', 'grow_skmaker', 'grow_quantile_histmaker', 'sync', 'refresh', 'prune', "
                "'shortgun', 'coord_descent'."
            )
        if sum(1 for item in value if item in _TREE_BUILD_PLUGINS) > 1:
            raise UserError(
                "Only one tree grow plugin can be selected. Choose one from the"
                "following: 'grow_colmaker', 'distcol', 'grow_histmaker', 'grow_skmaker'"
            )


def _objective_rule(value: str, deps: dict[str, Any]) -> None:
    if value in ("multi:softmax", "multi:softprob") and deps.get("num_class") is None:
        raise UserError("Require input for parameter 'num_class' for multi-classification")


def _eval_metric_rule(value: list[str], deps: dict[str, Any]) -> None:
    objective = deps["objective"]  # KeyError without an objective: reproduces the container
    if "auc" in value and not any(objective.startswith(prefix) for prefix in ("binary:", "rank:")):
        raise UserError("Metric 'auc' can only be applied for classification and ranking problems.")
    if "aft-nloglik" in value and objective != "survival:aft":
        raise UserError("Metric 'aft-nloglik' can only be applied for 'survival:aft' objective.")


def _monotone_rule(value: Any, deps: dict[str, Any]) -> None:
    if value is not None and deps.get("tree_method") not in ("exact", "hist"):
        raise UserError(
            "monotone_constraints can be used only when the tree_method parameter is set to "
            "either 'exact' or 'hist'."
        )


def _interaction_rule(value: Any, deps: dict[str, Any]) -> None:
    if value is not None and deps.get("tree_method") not in ("exact", "hist", "approx"):
        raise UserError(
            "interaction_constraints can be used only when the tree_method parameter is set to "
            "either 'exact', 'hist' or 'approx'."
        )


def _eval_metric_accepts(supported: list[str], metric: str) -> bool:
    if "<function" in metric:
        raise UserError(f"User defined evaluation metric {metric} is not supported yet.")
    if "@" in metric:
        name, threshold = (part.strip() for part in metric.split("@")[:2])
        if name not in ("error", "ndcg", "map"):
            raise UserError(
                f"Metric '{metric}' is not supported. Parameter 'eval_metric' with customized threshold "
                "should be one of these options: 'error', 'ndcg', 'map'."
            )
        try:
            float(threshold)
        except ValueError:
            raise UserError(f"Threshold value 't' in '{name}@t' expects float input.") from None
        return True
    return metric in supported


def _in_list(values: list[str], value: Any) -> bool:
    return value in values


# ---------------------------------------------------------------------------- declarations

#: the container's list as written there, repeats included
_UPDATER_RANGE = [*_TREE_PLUGINS[:7], "grow_colmaker", "distcol", "grow_histmaker", "grow_colmaker", "shotgun",
                  "coord_descent", "refresh", "prune"]

_OBJECTIVES = [
    "aft_loss_distribution",
    "binary:logistic",
    "binary:logitraw",
    "binary:hinge",
    "count:poisson",
    "multi:softmax",
    "multi:softprob",
    "rank:pairwise",
    "rank:ndcg",
    "rank:map",
    "reg:linear",
    "reg:squarederror",
    "reg:logistic",
    "reg:gamma",
    "reg:pseudohubererror",
    "reg:squaredlogerror",
    "reg:absoluteerror",
    "reg:tweedie",
    "survival:aft",
    "survival:cox",
]

_TRUE_FALSE = ["true", "false"]
_UNIT = Interval(min_closed=0, max_closed=1)
_UNIT_OPEN_LOW = Interval(min_open=0, max_closed=1)
_NON_NEGATIVE = Interval(min_closed=0)
_AT_LEAST_ONE = Interval(min_closed=1)


def _int(name: str, rng: Range, **kw: Any) -> Spec:
    return Spec(name, "Integer", rng, **kw)


def _float(name: str, rng: Range, **kw: Any) -> Spec:
    return Spec(name, "Continuous", rng, **kw)


def _cat(name: str, rng: Range, **kw: Any) -> Spec:
    return Spec(name, "Categorical", rng, **kw)


SPECS: dict[str, Spec] = {
    spec.name: spec
    for spec in [
        _int("num_round", _AT_LEAST_ONE, required=True),
        _int("csv_weights", _UNIT),
        _int("early_stopping_rounds", _AT_LEAST_ONE),
        _cat("booster", ["gbtree", "gblinear", "dart"]),
        _int("verbosity", Interval(min_closed=0, max_closed=3)),
        _int("nthread", _AT_LEAST_ONE),
        _float("eta", _UNIT),
        _float("gamma", _NON_NEGATIVE),
        _int("max_depth", _NON_NEGATIVE),
        _float("min_child_weight", _NON_NEGATIVE),
        _float("max_delta_step", _NON_NEGATIVE),
        _float("subsample", _UNIT_OPEN_LOW),
        _float("colsample_bytree", _UNIT_OPEN_LOW),
        _float("colsample_bylevel", _UNIT_OPEN_LOW),
        _float("colsample_bynode", _UNIT_OPEN_LOW),
        _float("lambda", _NON_NEGATIVE),
        _float("alpha", _NON_NEGATIVE),
        _cat("tree_method", CustomRange(["auto", "exact", "approx", "hist", "gpu_hist"], _in_list)),
        _float("sketch_eps", Interval(min_open=0, max_open=1)),
        _float("scale_pos_weight", Interval(min_open=0)),
        Spec(
            "updater",
            "CommaSeparatedList",
            _UPDATER_RANGE,
            depends_on=("booster", "process_type"),
            rule=_updater_rule,
        ),
        _cat("dsplit", ["row", "col"]),
        _int("refresh_leaf", _UNIT),
        _cat("process_type", ["default", "update"]),
        _cat("grow_policy", ["depthwise", "lossguide"]),
        _int("max_leaves", _NON_NEGATIVE),
        _int("max_bin", _NON_NEGATIVE),
        _cat("predictor", CustomRange(["auto", "cpu_predictor", "gpu_predictor"], _in_list)),
        Spec("monotone_constraints", "Tuple", [-1, 0, 1], depends_on=("tree_method",), rule=_monotone_rule),
        Spec(
            "interaction_constraints",
            "NestedList",
            _AT_LEAST_ONE,
            depends_on=("tree_method",),
            rule=_interaction_rule,
        ),
        _cat("sample_type", ["uniform", "weighted"]),
        _cat("normalize_type", ["tree", "forest"]),
        _float("rate_drop", _UNIT),
        _int("one_drop", _UNIT),
        _float("skip_drop", _UNIT),
        _float("lambda_bias", _UNIT),
        _float("tweedie_variance_power", Interval(min_open=1, max_open=2)),
        _cat("objective", _OBJECTIVES, depends_on=("num_class",), rule=_objective_rule),
        _int("num_class", Interval(min_closed=2)),
        _float("base_score", _NON_NEGATIVE),
        _int("_kfold", Interval(min_closed=2)),
        _int("_num_cv_round", _AT_LEAST_ONE),
        _cat("_tuning_objective_metric", TUNING_OBJECTIVE_NAMES),
        Spec(
            "eval_metric",
            "CommaSeparatedList",
            CustomRange(ALL_METRICS, _eval_metric_accepts),
            depends_on=("objective",),
            rule=_eval_metric_rule,
        ),
        _int("seed", Interval(min_open=-(2**31), max_open=2**31 - 1)),
        _int("num_parallel_tree", _AT_LEAST_ONE),
        _cat("save_model_on_termination", _TRUE_FALSE),
        _cat("aft_loss_distribution", ["normal", "logistic", "extreme"]),
        _float("aft_loss_distribution_scale", _NON_NEGATIVE),
        _cat("deterministic_histogram", _TRUE_FALSE),
        _cat("sampling_method", ["uniform", "gradient_based"]),
        _int("prob_buffer_row", Interval(min_open=1.0)),
        _cat("use_dask_gpu_training", _TRUE_FALSE),
    ]
}

ALIASES: dict[str, str] = {
    "learning_rate": "eta",
    "min_split_loss": "gamma",
    "reg_lambda": "lambda",
    "reg_alpha": "alpha",
}


def _dependency_order(names: Iterable[str]) -> list[str]:
    """Order ``names`` so that every hyperparameter comes after the given ones it depends on."""
    present = list(names)
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        seen.add(name)
        for dep in SPECS[name].depends_on:
            if dep in present and dep not in seen:
                visit(dep)
        order.append(name)

    for name in present:
        if name not in seen:
            visit(name)
    return order


def validate(user_values: Mapping[str, Any]) -> dict[str, Any]:
    """Validate the raw ``hyperparameters.json`` mapping and return typed values.

    Raises :class:`UserError` with the container's texts on the first problem found.
    """
    values = {ALIASES.get(name, name): value for name, value in user_values.items()}

    for name, spec in SPECS.items():
        if spec.required and name not in values:
            raise UserError(f"Missing required hyperparameter: {name}")

    parsed: dict[str, Any] = {}
    for name, value in values.items():
        spec = SPECS.get(name)
        if spec is None:
            raise UserError(f"Extraneous hyperparameter found: {name}")
        try:
            parsed[name] = spec.parse(value)
        except ValueError as error:
            raise UserError(f"Hyperparameter {name}: could not parse value", caused_by=error) from error

    for name, value in parsed.items():
        try:
            SPECS[name].check_range(value)
        except UserError:
            raise
        except Exception as error:
            raise AlgorithmError(
                f"Hyperparameter {name}: unexpected failure when validating {value}", caused_by=error
            ) from error

    validated: dict[str, Any] = {}
    for name in _dependency_order(parsed):
        spec = SPECS[name]
        if spec.rule is not None:
            deps = {dep: validated[dep] for dep in spec.depends_on if dep in validated}
            spec.rule(parsed[name], deps)
        validated[name] = parsed[name]
    # Keep the user's order (the container returns dependency order; nothing depends on it).
    return {name: validated[name] for name in parsed}
