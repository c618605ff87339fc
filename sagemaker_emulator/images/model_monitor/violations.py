"""``constraint_violations.json``: the current data checked against the baseline's constraints.

The analyzer's check types: ``missing_column_check``/``extra_column_check``
(columns of the baseline the data lacks / that it adds), ``data_type_check``
(share of values of the baseline's type below ``datatype_check_threshold``),
``completeness_check`` (share of non-missing values below the feature's
``completeness``), ``categorical_values_check`` (share of values in the
baseline's domain below ``domain_content_threshold``) and
``baseline_drift_check`` (distance between the baseline's and the current
distribution above the threshold). Numeric distance is the L-infinity distance
of the two cumulative distributions (the two-sample Kolmogorov-Smirnov
statistic); ``Robust`` additionally requires it to exceed the KS critical
value at the 5 % level for the two sample sizes, so that a handful of
records cannot fire it by chance (the documented intent of ``Robust``; its
exact formula is not public). Categorical distance is the L-infinity distance
of the value frequencies (``LInfinity``) or, with ``ChiSquared``, a
chi-squared test whose p-value must stay above the threshold.

The descriptions of data-type and numeric drift violations are the real
analyzer's wording; the others follow the same pattern.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats as scistats

from .inputs import InputError
from .statistics import Column, baseline_distribution

KS_ALPHA_COEFFICIENT = 1.358  # c(alpha) of the two-sample KS test at alpha = 0.05


@dataclass
class Report:
    violations: list[dict[str, str]] = field(default_factory=list)
    #: feature → distance to the baseline distribution (for the ``feature_baseline_drift_*`` metrics)
    drift: dict[str, float] = field(default_factory=dict)

    def add(self, feature: str, check: str, description: str) -> None:
        self.violations.append({"feature_name": feature, "constraint_check_type": check, "description": description})


def _percent(fraction: float) -> str:
    return f"{fraction * 100}%"


def linf_numeric(baseline: np.ndarray, current: np.ndarray) -> float:
    """sup |F_baseline(x) - F_current(x)| over every value of either sample."""
    a, b = np.sort(baseline), np.sort(current)
    points = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, points, side="right") / a.size
    cdf_b = np.searchsorted(b, points, side="right") / b.size
    return float(np.max(np.abs(cdf_a - cdf_b)))


def _frequencies(buckets: list[dict[str, Any]]) -> dict[str, float]:
    return {str(b["value"]): float(b["count"]) for b in buckets}


def _config(constraints: dict[str, Any]) -> dict[str, Any]:
    config = constraints.get("monitoring_config") or {}
    if not isinstance(config, dict):
        raise InputError("The baseline constraints' monitoring_config must be a JSON object.")
    return config


def _features(document: dict[str, Any], what: str) -> list[dict[str, Any]]:
    features = document.get("features")
    if not isinstance(features, list) or not all(isinstance(f, dict) and isinstance(f.get("name"), str)
                                                 for f in features):
        raise InputError(f"The baseline {what} file is malformed: 'features' must be a list of objects "
                         f"each with a 'name'.")
    return features


def check(constraints: dict[str, Any], baseline_stats: dict[str, Any] | None, columns: list[Column],
          item_count: int) -> Report:
    """Every violation of ``constraints`` by the current ``columns`` (and drift from ``baseline_stats``)."""
    report = Report()
    config = _config(constraints)
    features = _features(constraints, "constraints")
    base_stats = {f["name"]: f for f in _features(baseline_stats, "statistics")} if baseline_stats else {}
    current = {c.name: c for c in columns}
    baseline_names = [f["name"] for f in features]
    counts = (f"Number of columns in current dataset: {len(columns)}, "
              f"Number of columns in baseline constraints: {len(features)}")
    if config.get("evaluate_constraints", "Enabled") == "Enabled":
        for name in baseline_names:
            if name not in current:
                report.add(name, "missing_column_check", f"There are missing columns in current dataset. {counts}")
        for column in columns:
            if column.name not in baseline_names:
                report.add(column.name, "extra_column_check", f"There are extra columns in current dataset. {counts}")
    for feature in features:
        column = current.get(feature["name"])
        if column is not None:
            _check_feature(report, feature, column, item_count, config, base_stats.get(feature["name"]))
    return report


def _overrides(feature: dict[str, Any]) -> dict[str, Any]:
    value = feature.get("monitoringConfigOverrides") or feature.get("monitoring_config_overrides") or {}
    return value if isinstance(value, dict) else {}


def _number(config: dict[str, Any], key: str, default: float) -> float:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InputError(f"The baseline constraints' {key} must be a number, got {value!r}.")
    try:
        return float(value)
    except ValueError:
        raise InputError(f"The baseline constraints' {key} must be a number, got {value!r}.") from None


def _check_feature(report: Report, feature: dict[str, Any], column: Column, item_count: int,
                   config: dict[str, Any], base: dict[str, Any] | None) -> None:
    name, expected = feature["name"], feature.get("inferred_type", "Unknown")
    settings = {**config, **_overrides(feature)}
    evaluate = settings.get("evaluate_constraints", "Enabled") == "Enabled"
    if evaluate and expected in ("Integral", "Fractional"):
        threshold = _number(settings, "datatype_check_threshold", 1.0)
        matching = column.matching(expected)
        if matching < threshold:
            report.add(name, "data_type_check",
                       f"Data type match requirement is not met. Expected data type: {expected}, Expected match: "
                       f"{_percent(threshold)}. Observed: Only {_percent(matching)} of data is {expected}.")
    if evaluate and "completeness" in feature:
        required = _number(feature, "completeness", 0.0)
        observed = column.count / item_count if item_count else 0.0
        if observed < required:
            report.add(name, "completeness_check",
                       f"Data completeness requirement is not met. Expected completeness: {_percent(required)}. "
                       f"Observed: Only {_percent(observed)} of data is complete.")
    domains = (feature.get("string_constraints") or {}).get("domains")
    if evaluate and isinstance(domains, list) and column.count:
        threshold = _number(settings, "domain_content_threshold", 1.0)
        inside = column.share_in([str(d) for d in domains])
        if inside < threshold:
            report.add(name, "categorical_values_check",
                       f"Data domain requirement is not met. Expected: {_percent(threshold)} of values in the "
                       f"baseline domain. Observed: Only {_percent(inside)} of data is in the baseline domain.")
    distribution = settings.get("distribution_constraints") or {}
    if base is not None and distribution.get("perform_comparison", "Enabled") == "Enabled":
        _check_drift(report, name, column, base, distribution, evaluate)


def _check_drift(report: Report, name: str, column: Column, base: dict[str, Any], distribution: dict[str, Any],
                 evaluate: bool) -> None:
    if "numerical_statistics" in base:
        baseline = baseline_distribution(base)
        values = column.numbers()
        if baseline is None or baseline.size == 0 or values.size == 0:
            return
        distance = linf_numeric(baseline, values)
        report.drift[name] = distance
        threshold = _number(distribution, "comparison_threshold", 0.1)
        significant = True
        if distribution.get("comparison_method", "Robust") == "Robust":
            n = float(((base["numerical_statistics"].get("common") or {}).get("num_present")) or baseline.size)
            m = float(values.size)
            significant = distance > KS_ALPHA_COEFFICIENT * math.sqrt((n + m) / (n * m))
        if evaluate and distance > threshold and significant:
            report.add(name, "baseline_drift_check",
                       f"Numerical distance: {distance} exceeds numerical threshold: {threshold}")
        return
    categorical = ((base.get("string_statistics") or {}).get("distribution") or {}).get("categorical") or {}
    buckets = categorical.get("buckets")
    if not buckets or not column.count:
        return
    expected = _frequencies(buckets)
    observed = column.value_counts().to_dict()
    values = sorted(set(expected) | {str(v) for v in observed})
    base_total, cur_total = sum(expected.values()), float(column.count)
    threshold = _number(distribution, "categorical_comparison_threshold",
                        _number(distribution, "comparison_threshold", 0.1))
    if distribution.get("categorical_drift_method", "LInfinity") == "ChiSquared":
        table = np.array([[expected.get(v, 0.0) for v in values], [float(observed.get(v, 0)) for v in values]])
        p_value = float(scistats.chi2_contingency(table + 0.5)[1])  # +0.5: values seen on one side only
        report.drift[name] = 1.0 - p_value
        if evaluate and p_value < threshold:
            report.add(name, "baseline_drift_check",
                       f"Categorical drift: chi-squared p-value {p_value} is below categorical threshold: {threshold}")
        return
    distance = max(abs(expected.get(v, 0.0) / base_total - observed.get(v, 0) / cur_total) for v in values)
    report.drift[name] = distance
    if evaluate and distance > threshold:
        report.add(name, "baseline_drift_check",
                   f"Categorical distance: {distance} exceeds categorical threshold: {threshold}")
