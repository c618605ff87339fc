"""``statistics.json``: per-feature types, counts, moments and distributions, in the documented shape.

Types are inferred value by value as Deequ does (a column with any non-numeric
text is ``String``; else any fraction makes it ``Fractional``; else
``Integral``; nothing present is ``Unknown``). Numbers are exact (pandas):
``std_dev`` is the population standard deviation, as Deequ's. The KLL
section keeps SageMaker's layout (10 equal-width buckets between min and max,
sketch parameters ``c=0.64``, ``k=2048``); its ``data`` holds the values
themselves up to ``SKETCH_SIZE`` and evenly spaced quantiles of them beyond,
which is what the drift check reads back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

SKETCH_SIZE = 2048
BUCKETS = 10
_INTEGRAL = r"[+-]?\d+"
_FRACTIONAL = r"[+-]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?|[+-]?(?:[Nn]a[Nn]|[Ii]nfinity)"


@dataclass(frozen=True)
class Column:
    """One column's values sorted by kind: what type checks and statistics are computed from.

    Each distinct text is classified and parsed once (columns repeat few values: 41,188 bank rows hold
    a few hundred distinct texts per column), then mapped back to the rows.
    """

    name: str
    present: pd.Series  # the non-missing values, as text
    missing: int
    integral: np.ndarray  # boolean masks over ``present``
    fractional: np.ndarray
    parsed: np.ndarray  # the number each present value stands for (NaN for text that is not one)

    @classmethod
    def of(cls, name: str, values: pd.Series) -> Column:
        present = values.dropna().astype(str)
        codes, uniques = pd.factorize(present, sort=False)
        distinct = pd.Series(uniques, dtype=object).astype(str)
        integral = distinct.str.fullmatch(_INTEGRAL).to_numpy(dtype=bool)
        fractional = distinct.str.fullmatch(_FRACTIONAL).to_numpy(dtype=bool) & ~integral
        numbers = pd.to_numeric(distinct.where(integral | fractional), errors="coerce").to_numpy(dtype=float)
        return cls(name, present, int(values.isna().sum()), integral[codes], fractional[codes], numbers[codes])

    @property
    def inferred_type(self) -> str:
        if self.present.empty:
            return "Unknown"
        if not (self.integral | self.fractional).all():
            return "String"
        return "Fractional" if self.fractional.any() else "Integral"

    def numbers(self) -> np.ndarray:
        """The numeric values among the present ones (all of them for a numeric column)."""
        return self.parsed[self.integral | self.fractional]

    def matching(self, expected: str) -> float:
        """The fraction of present values of type ``expected`` (integers count as fractional numbers)."""
        if self.present.empty or expected in ("String", "Unknown"):
            return 1.0
        mask = self.integral if expected == "Integral" else self.integral | self.fractional
        return float(mask.mean())


def sketch_values(values: np.ndarray) -> list[float]:
    """The values (sorted) up to ``SKETCH_SIZE``, else that many evenly spaced quantiles of them."""
    ordered = np.sort(values)
    if ordered.size > SKETCH_SIZE:
        ranks = np.ceil((np.arange(SKETCH_SIZE) + 0.5) / SKETCH_SIZE * ordered.size).astype(int) - 1
        ordered = ordered[ranks]  # the inverse of the empirical CDF at the midpoints of 2048 equal slices
    return [float(v) for v in ordered]


def _buckets(values: np.ndarray, low: float, high: float) -> list[dict[str, float]]:
    if high == low:
        return [{"lower_bound": low, "upper_bound": high, "count": float(values.size)}]
    edges = np.linspace(low, high, BUCKETS + 1)
    counts, _ = np.histogram(values, bins=edges)
    return [{"lower_bound": float(edges[i]), "upper_bound": float(edges[i + 1]), "count": float(counts[i])}
            for i in range(BUCKETS)]


def feature_statistics(column: Column) -> dict[str, Any]:
    kind = column.inferred_type
    common = {"num_present": int(column.present.size), "num_missing": column.missing}
    feature: dict[str, Any] = {"name": column.name, "inferred_type": kind}
    if kind in ("Integral", "Fractional"):
        values = column.numbers()
        low, high = float(values.min()), float(values.max())
        feature["numerical_statistics"] = {
            "common": common, "mean": float(values.mean()), "sum": float(values.sum()),
            "std_dev": float(values.std(ddof=0)), "min": low, "max": high,
            "distribution": {"kll": {
                "buckets": _buckets(values, low, high),
                "sketch": {"parameters": {"c": 0.64, "k": float(SKETCH_SIZE)}, "data": [sketch_values(values)]},
            }},
        }
        return feature
    counts = column.present.value_counts(sort=True)
    feature["string_statistics"] = {
        "common": common, "distinct_count": float(counts.size),
        "distribution": {"categorical": {"buckets": [{"value": str(v), "count": int(c)} for v, c in counts.items()]}},
    }
    return feature


def columns_of(table: pd.DataFrame) -> list[Column]:
    return [Column.of(str(name), table[name]) for name in table.columns]


def statistics(columns: list[Column], item_count: int) -> dict[str, Any]:
    return {"version": 0.0, "dataset": {"item_count": item_count},
            "features": [feature_statistics(c) for c in columns]}


def baseline_distribution(feature: dict[str, Any]) -> np.ndarray | None:
    """The numeric values a baseline feature's sketch stands for (level ``h`` weighs ``2**h``, as in KLL)."""
    sketch = (((feature.get("numerical_statistics") or {}).get("distribution") or {}).get("kll") or {}).get("sketch")
    levels = (sketch or {}).get("data") or []
    parts = [np.repeat(np.asarray(level, dtype=float), 2 ** height) for height, level in enumerate(levels) if level]
    return np.concatenate(parts) if parts else None
