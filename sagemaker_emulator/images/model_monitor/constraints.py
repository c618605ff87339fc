"""``constraints.json``: the constraints a baseline suggests, and the monitoring configuration's defaults.

Suggestions as the analyzer makes them: each feature's type and observed
completeness; ``is_non_negative`` for numbers; the observed values as the
domain of a string feature with few of them (at most ``DOMAIN_LIMIT``); and
the global ``monitoring_config`` with the analyzer's defaults (data type and
domain thresholds 1.0, drift threshold 0.1 compared with the ``Robust``
method, categorical drift by ``LInfinity``).
"""

from __future__ import annotations

from typing import Any

from .statistics import Column

DOMAIN_LIMIT = 20


def default_monitoring_config(categorical_drift_method: str | None = None) -> dict[str, Any]:
    return {
        "evaluate_constraints": "Enabled",
        "emit_metrics": "Enabled",
        "datatype_check_threshold": 1.0,
        "domain_content_threshold": 1.0,
        "distribution_constraints": {
            "perform_comparison": "Enabled",
            "comparison_threshold": 0.1,
            "comparison_method": "Robust",
            "categorical_comparison_threshold": 0.1,
            "categorical_drift_method": categorical_drift_method or "LInfinity",
        },
    }


def feature_constraints(column: Column, item_count: int) -> dict[str, Any]:
    kind = column.inferred_type
    feature: dict[str, Any] = {"name": column.name, "inferred_type": kind,
                               "completeness": column.count / item_count if item_count else 0.0}
    if kind in ("Integral", "Fractional"):
        feature["num_constraints"] = {"is_non_negative": bool((column.numbers() >= 0).all())}
    elif kind == "String":
        values = column.distinct
        if len(values) <= DOMAIN_LIMIT:
            feature["string_constraints"] = {"domains": [str(v) for v in values]}
    return feature


def suggest(columns: list[Column], item_count: int, categorical_drift_method: str | None) -> dict[str, Any]:
    return {"version": 0.0, "features": [feature_constraints(c, item_count) for c in columns],
            "monitoring_config": default_monitoring_config(categorical_drift_method)}
