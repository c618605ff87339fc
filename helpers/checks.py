"""Exercise checks: each tells the learner, in one line, whether the answer is right and why not.

Checks never raise for a wrong answer (a learner should be able to keep
going); they print ✅ or ❌ with a hint and return a bool, so the solution
notebooks can assert on it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def _report(ok: bool, good: str, bad: str) -> bool:
    print(("✅ " + good) if ok else ("❌ " + bad))
    return ok


def check_object_uploaded(s3_client: Any, bucket: str, key: str, expected: bytes | None = None) -> bool:
    """Exercise 00: the learner's object exists in S3 (local or real) with the expected content."""
    try:
        body = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception as exc:  # NoSuchKey, NoSuchBucket …: say which
        return _report(False, "", f"s3://{bucket}/{key} is not there yet ({type(exc).__name__}). Upload it first.")
    if expected is not None and body != expected:
        return _report(False, "", f"s3://{bucket}/{key} exists but holds {len(body)} bytes, not the text expected.")
    return _report(True, f"s3://{bucket}/{key} is in S3 ({len(body)} bytes).", "")


def check_indicator(df: pd.DataFrame, column: str, expected: pd.Series) -> bool:
    """Exercise 01: an engineered 0/1 indicator column matches the reference definition."""
    if column not in df.columns:
        return _report(False, "", f"There is no column {column!r} yet.")
    values = df[column]
    if not set(pd.unique(values.astype(int))) <= {0, 1}:
        return _report(False, "", f"{column!r} should contain only 0 and 1 (use .astype(int)).")
    wrong = int((values.astype(int).to_numpy() != expected.astype(int).to_numpy()).sum())
    if wrong:
        return _report(False, "", f"{column!r} differs from the expected definition in {wrong} rows.")
    return _report(True, f"{column!r} is right: {int(values.sum())} of {len(values)} rows are 1.", "")


def check_dropped(df: pd.DataFrame, columns: list[str]) -> bool:
    """Exercise 01: leaking or unforecastable columns are gone."""
    left = [c for c in columns if c in df.columns]
    return _report(not left, f"All {len(columns)} columns are dropped.", f"Still present: {', '.join(left)}.")


def check_auc(auc: float, at_least: float, what: str = "test AUC") -> bool:
    """Exercises 02: a model reaches a quality bar."""
    ok = bool(np.isfinite(auc)) and auc >= at_least
    return _report(ok, f"{what} {auc:.4f} ≥ {at_least}.", f"{what} is {auc:.4f}; it should reach {at_least}.")


def check_close(value: float, reference: float, tolerance: float, what: str) -> bool:
    ok = abs(value - reference) <= tolerance
    return _report(ok, f"{what}: {value:.4f} matches {reference:.4f} (±{tolerance}).",
                   f"{what}: {value:.4f} is not within {tolerance} of {reference:.4f}.")
