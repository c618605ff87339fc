"""Exercise checks: each says, in one line, whether the answer is right and, if not, what to look at.

One style for every check cell: the cell only calls functions from this module. A right answer prints
✅ and a one-line confirmation; a wrong one raises :class:`CheckFailed` whose message is the one-line
hint (❌ …). Why raise rather than print ❌ and carry on: a check that only printed would let a broken
solution notebook pass CI, and a learner running "Run All" would sail past a wrong answer into cells
that then fail for a reason far from the mistake. Fix the answer and re-run the cell to go on.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import numpy as np
import pandas as pd


class CheckFailed(AssertionError):
    """A wrong answer; the message is the hint the learner sees."""


def _require(ok: bool, bad: str) -> None:
    """Raise :class:`CheckFailed` with the hint ``bad`` unless ``ok``."""
    __tracebackhide__ = True  # IPython and pytest hide this frame: the learner sees the hint, not our internals
    if not ok:
        raise CheckFailed("❌ " + bad)


def _report(ok: bool, good: str, bad: str) -> None:
    """Print ``good`` if ``ok``, else raise :class:`CheckFailed` with ``bad``."""
    __tracebackhide__ = True
    _require(ok, bad)
    print("✅ " + good)


def check_object_uploaded(s3_client: Any, bucket: str, key: str, expected: bytes | None = None) -> None:
    """Exercise 00: the learner's object exists in S3 (local or real) with the expected content."""
    __tracebackhide__ = True
    try:
        body = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception as exc:  # NoSuchKey, NoSuchBucket …: say which
        raise CheckFailed(f"❌ s3://{bucket}/{key} is not there yet ({type(exc).__name__}). Upload it first.") from None
    _report(expected is None or body == expected, f"s3://{bucket}/{key} is in S3 ({len(body)} bytes).",
            f"s3://{bucket}/{key} exists but holds {len(body)} bytes, not the text expected.")


def check_indicator(df: pd.DataFrame, column: str, expected: pd.Series) -> None:
    """Exercise 01: an engineered 0/1 indicator column matches the reference definition."""
    __tracebackhide__ = True
    _require(column in df.columns, f"There is no column {column!r} yet.")
    values = df[column]
    _require(set(pd.unique(values.astype(int))) <= {0, 1},
            f"{column!r} should contain only 0 and 1 (use .astype(int)).")
    wrong = int((values.astype(int).to_numpy() != expected.astype(int).to_numpy()).sum())
    _report(not wrong, f"{column!r} is right: {int(values.sum())} of {len(values)} rows are 1.",
            f"{column!r} differs from the expected definition in {wrong} rows.")


def check_dropped(df: pd.DataFrame, columns: list[str]) -> None:
    """Exercise 01: leaking or unforecastable columns are gone."""
    __tracebackhide__ = True
    left = [c for c in columns if c in df.columns]
    _report(not left, f"All {len(columns)} columns are dropped.", f"Still present: {', '.join(left)}.")


def check_auc(auc: float, at_least: float, what: str = "test AUC") -> None:
    """Exercises 02: a model reaches a quality bar."""
    __tracebackhide__ = True
    ok = bool(np.isfinite(auc)) and auc >= at_least
    _report(ok, f"{what} {auc:.4f} ≥ {at_least}.", f"{what} is {auc:.4f}; it should reach {at_least}.")


def check_close(value: float, reference: float, tolerance: float, what: str) -> None:
    """A number matches a reference computed another way (the job vs in-process, batch vs endpoint …)."""
    __tracebackhide__ = True
    _report(abs(value - reference) <= tolerance, f"{what}: {value:.4f} matches {reference:.4f} (±{tolerance}).",
            f"{what}: {value:.4f} is not within {tolerance} of {reference:.4f}.")


def check_equal(value: Any, expected: Any, what: str, hint: str = "") -> None:
    """A name, code, count or shape is exactly the one expected; ``hint`` says why it should be."""
    __tracebackhide__ = True
    _report(bool(value == expected), f"{what}: {value!r}.",
            f"{what} is {value!r}; expected {expected!r}." + (f" {hint}" if hint else ""))


def check_one_of(value: Any, options: Collection[Any], what: str) -> None:
    """A choice is one of the allowed options (a variant name, a strategy …)."""
    __tracebackhide__ = True
    _report(value in options, f"{what}: {value!r}.", f"{what} is {value!r}; it should be one of {list(options)}.")


def check_same_frame(frame: pd.DataFrame, expected: pd.DataFrame, what: str) -> None:
    """A DataFrame equals a reference one: same columns in the same order, same values."""
    __tracebackhide__ = True
    _require(frame.shape == expected.shape, f"{what}: shape {frame.shape}, expected {expected.shape}.")
    _require(list(frame.columns) == list(expected.columns), f"{what}: the columns differ (or are in another order).")
    _report(frame.equals(expected), f"{what}: {frame.shape[0]} rows × {frame.shape[1]} columns, identical.",
            f"{what}: same shape and columns, but some values differ.")
