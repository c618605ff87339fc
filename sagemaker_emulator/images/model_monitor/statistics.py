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

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

SKETCH_SIZE = 2048
BUCKETS = 10
_INTEGRAL = r"[+-]?\d+"
_FRACTIONAL = r"[+-]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?|[+-]?(?:[Nn]a[Nn]|[Ii]nfinity)"
_INTEGRAL_RE, _FRACTIONAL_RE = re.compile(_INTEGRAL), re.compile(_FRACTIONAL)


@dataclass(frozen=True)
class Column:
    """One column's values sorted by kind: what type checks and statistics are computed from.

    Each distinct text is classified and parsed once (columns repeat few values: 41,188 bank rows hold
    a few hundred distinct texts per column), then mapped back to the rows through ``codes``.
    """

    name: str
    distinct: np.ndarray  # the distinct present texts, in order of first appearance
    codes: np.ndarray  # per present value (in row order), its index in ``distinct``
    missing: int
    distinct_integral: np.ndarray  # boolean masks over ``distinct``
    distinct_fractional: np.ndarray
    distinct_numbers: np.ndarray  # the number each distinct text stands for (NaN for text that is not one)

    @classmethod
    def of(cls, name: str, values: pd.Series) -> Column:
        present = values.dropna().astype(str)
        codes, uniques = pd.factorize(present, sort=False)
        return cls.classified(name, np.asarray(uniques, dtype=object), codes, int(values.size - present.size))

    @classmethod
    def of_arrow(cls, name: str, values: Any) -> Column:
        """The same from an Arrow string column (nulls missing): factorised in Arrow, no Python string per row."""
        import pyarrow.compute as pc

        array = values.combine_chunks() if hasattr(values, "combine_chunks") else values
        encoded = pc.dictionary_encode(pc.drop_null(array))
        codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.intp, copy=False)
        distinct = np.asarray(encoded.dictionary.to_pylist(), dtype=object)
        return cls.classified(name, distinct, codes, array.null_count)

    @classmethod
    def classified(cls, name: str, distinct: np.ndarray, codes: np.ndarray, missing: int) -> Column:
        texts = [str(t) for t in distinct]
        integral = np.fromiter((_INTEGRAL_RE.fullmatch(t) is not None for t in texts), bool, len(texts))
        fractional = np.fromiter((_FRACTIONAL_RE.fullmatch(t) is not None for t in texts), bool, len(texts))
        fractional &= ~integral
        numbers = np.full(len(texts), np.nan)
        numeric = np.flatnonzero(integral | fractional)
        if numeric.size:  # Python's float() reads every text the two patterns accept (NaN, Infinity, 1e5, +.5)
            numbers[numeric] = np.array([texts[i] for i in numeric], dtype=object).astype(float)
        return cls(name, np.asarray(texts, dtype=object), np.asarray(codes, dtype=np.intp), missing, integral,
                   fractional, numbers)

    @property
    def count(self) -> int:
        """How many values are present."""
        return int(self.codes.size)

    @cached_property
    def counts(self) -> np.ndarray:
        """How often each distinct text occurs."""
        return np.bincount(self.codes, minlength=self.distinct.size)

    def value_counts(self) -> pd.Series:
        """The present values' counts, most frequent first, ordered exactly as ``Series.value_counts``."""
        return pd.Series(self.counts, index=pd.Index(self.distinct, dtype=object)).sort_values(ascending=False)

    def share_in(self, domain: list[str]) -> float:
        """The fraction of present values whose text is one of ``domain``."""
        inside = np.isin(self.distinct.astype(str), np.asarray(domain, dtype=str))
        return float(self.counts[inside].sum() / self.count) if self.count else 0.0

    @property
    def inferred_type(self) -> str:
        if self.count == 0:
            return "Unknown"
        if not (self.distinct_integral | self.distinct_fractional).all():
            return "String"
        return "Fractional" if self.distinct_fractional.any() else "Integral"

    def numbers(self) -> np.ndarray:
        """The numeric values among the present ones (all of them for a numeric column), in row order."""
        numeric = self.distinct_integral | self.distinct_fractional
        if numeric.all():
            return self.distinct_numbers[self.codes]
        return self.distinct_numbers[self.codes[numeric[self.codes]]]

    def matching(self, expected: str) -> float:
        """The fraction of present values of type ``expected`` (integers count as fractional numbers)."""
        if self.count == 0 or expected in ("String", "Unknown"):
            return 1.0
        mask = self.distinct_integral if expected == "Integral" else self.distinct_integral | self.distinct_fractional
        return float(self.counts[mask].sum() / self.count)


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
    common = {"num_present": column.count, "num_missing": column.missing}
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
    counts = column.value_counts()
    feature["string_statistics"] = {
        "common": common, "distinct_count": float(counts.size),
        "distribution": {"categorical": {"buckets": [{"value": str(v), "count": int(c)} for v, c in counts.items()]}},
    }
    return feature


def columns_of(table: Any) -> list[Column]:
    """The columns of a pandas frame of texts, or of an Arrow table of strings (the baseline CSV reader's)."""
    if isinstance(table, pd.DataFrame):
        return [Column.of(str(name), table[name]) for name in table.columns]
    return [Column.of_arrow(str(name), table.column(i)) for i, name in enumerate(table.column_names)]


def statistics(columns: list[Column], item_count: int) -> dict[str, Any]:
    return {"version": 0.0, "dataset": {"item_count": item_count},
            "features": [feature_statistics(c) for c in columns]}


def baseline_distribution(feature: dict[str, Any]) -> np.ndarray | None:
    """The numeric values a baseline feature's sketch stands for (level ``h`` weighs ``2**h``, as in KLL)."""
    sketch = (((feature.get("numerical_statistics") or {}).get("distribution") or {}).get("kll") or {}).get("sketch")
    levels = (sketch or {}).get("data") or []
    parts = [np.repeat(np.asarray(level, dtype=float), 2 ** height) for height, level in enumerate(levels) if level]
    return np.concatenate(parts) if parts else None
