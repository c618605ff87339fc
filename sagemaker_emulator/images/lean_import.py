"""Importing XGBoost in the image processes without the scikit-learn wrapper they never use."""

from __future__ import annotations

import sys


def import_xgboost_without_sklearn() -> None:
    """Import XGBoost with its optional scikit-learn wrapper switched off.

    ``import xgboost`` pulls in scikit-learn for its sklearn-style estimators, which neither the
    built-in algorithm nor its model server uses: that is 0.7 s of a 1.0 s import, paid by every job
    and every endpoint instance. The block is lifted right after, so the few features that do need
    scikit-learn (container metrics, k-fold) still import it.
    """
    if "xgboost" in sys.modules:
        return
    had = "sklearn" in sys.modules
    if not had:
        sys.modules["sklearn"] = None  # type: ignore[assignment]
    try:
        import xgboost  # noqa: F401
    finally:
        if not had:
            del sys.modules["sklearn"]
