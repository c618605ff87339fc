"""The data transformation of Autopilot's HYPERPARAMETER_TUNING candidates, in plain Python.

One specification (``automl_transform.json``, written when the job analyses the data) drives both the
encoding of the training data (``runtime.automl_hpo``) and the ``sagemaker-sklearn-automl`` inference
containers (``model_server.automl_transform``), so a record is encoded the same way in both: numeric
columns as numbers (empty → missing), each categorical column one-hot over the categories seen in
training (an unseen category → all zeros); labels as their index in the sorted class names.
"""

from __future__ import annotations

import math
from typing import Any

SPEC_FILE = "automl_transform.json"


def build_spec(frame: Any, target: str, problem_type: str) -> dict[str, Any]:
    import pandas as pd

    columns = []
    for name in frame.columns:
        if name == target:
            continue
        column = frame[name]
        if pd.api.types.is_numeric_dtype(column):
            columns.append({"name": str(name), "kind": "numeric"})
        else:
            categories = sorted(column.dropna().astype(str).unique().tolist())
            columns.append({"name": str(name), "kind": "categorical", "categories": categories})
    labels = [] if problem_type == "Regression" else sorted(frame[target].dropna().astype(str).unique().tolist())
    return {"target": target, "problem_type": problem_type, "columns": columns, "labels": labels}


def _number(cell: str) -> float:
    try:
        return float(cell) if cell.strip() else math.nan
    except ValueError:
        return math.nan


def encode_row(cells: list[str], spec: dict[str, Any]) -> list[float]:
    """One record's features (strings, the training data's column order, target left out) as numbers."""
    out: list[float] = []
    for cell, column in zip(cells, spec["columns"], strict=True):
        if column["kind"] == "numeric":
            out.append(_number(cell))
        else:
            out.extend(1.0 if cell == category else 0.0 for category in column["categories"])
    return out


def format_number(value: float) -> str:
    return "" if math.isnan(value) else repr(value)
