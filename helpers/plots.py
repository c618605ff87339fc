"""The figures the labs show, one function each, all in one consistent style.

Why a module rather than plotting code in the notebooks: the labs are about
SageMaker, not matplotlib, so a learner should read ``plots.roc_pr_curves(y,
scores)`` and see a finished, correctly labelled figure, not thirty lines of
axis fiddling. Every function here

* takes plain numpy / pandas inputs and knows nothing about SageMaker;
* returns the :class:`matplotlib.figure.Figure` and never calls ``plt.show()``.
  New figures are created with :class:`~matplotlib.figure.Figure` directly, not
  through ``pyplot``: Jupyter then displays a figure exactly once when it is the
  last expression of a cell (pyplot figures are shown a second time by the
  inline backend), nothing accumulates in pyplot's global registry, and the same
  code runs headless (Agg) in tests and CI;
* accepts an optional ``ax`` (or a sequence of axes for multi-panel figures) so
  a notebook can compose several plots into one figure;
* uses a colour-blind-safe palette (Okabe & Ito) and sizes that stay readable
  at notebook width.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ParamSpec, TypeVar

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator, PercentFormatter

__all__ = [
    "PALETTE",
    "STYLE",
    "target_rate_by_category",
    "numeric_distributions",
    "correlation_heatmap",
    "roc_pr_curves",
    "confusion_matrix_plot",
    "feature_importance",
    "metric_curves",
    "tuning_progress",
    "search_space",
    "drift_plot",
    "leaderboard",
    "ab_test",
    "pipeline_dag",
]

#: Okabe & Ito (2008): distinguishable under the common colour-vision deficiencies and in greyscale print.
PALETTE: tuple[str, ...] = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#D55E00",  # vermillion
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#F0E442",  # yellow
    "#000000",  # black
)
NEUTRAL = "#7f7f7f"  # reference lines (chance, overall rate): visible but never mistaken for data

#: The rcParams every figure here is drawn with (locally, see :func:`_styled`).
STYLE: dict[str, Any] = {
    "axes.prop_cycle": mpl.cycler(color=list(PALETTE)),
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "axes.titlesize": 12,
    "axes.titleweight": "bold",
    "axes.labelsize": 10.5,
    "figure.titlesize": 13,
    "figure.titleweight": "bold",
    "font.size": 10,
    "grid.color": "#dddddd",
    "grid.linewidth": 0.8,
    "legend.frameon": False,
    "legend.fontsize": 9.5,
    "xtick.labelsize": 9.5,
    "ytick.labelsize": 9.5,
    "image.cmap": "viridis",
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
}

# Metrics XGBoost (and most libraries) report where larger is better; everything else is a loss.
_HIGHER_IS_BETTER = ("auc", "aucpr", "pr_auc", "map", "ndcg", "pre", "accuracy", "acc", "f1", "r2", "precision",
                     "recall")

P = ParamSpec("P")
R = TypeVar("R")


def _styled(func: Callable[P, R]) -> Callable[P, R]:
    """Draw inside ``rc_context(STYLE)``: the style is local to our figures and never leaks into the notebook."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with mpl.rc_context(STYLE):
            return func(*args, **kwargs)

    return wrapper


# --------------------------------------------------------------------------------------------------------------
# Small internals
# --------------------------------------------------------------------------------------------------------------


def _root_figure(ax: Axes) -> Figure:
    fig: Any = ax.figure
    while not isinstance(fig, Figure):  # axes on a SubFigure: walk up to the figure that owns the canvas
        fig = fig.figure
    return fig


def _single_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        return _root_figure(ax), ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def _axes_grid(ax: Axes | Sequence[Axes] | None, n: int, ncols: int, panel: tuple[float, float]) -> tuple[
        Figure, list[Axes]]:
    """``n`` axes: the caller's (checked) or a fresh grid with the surplus cells removed."""
    if ax is not None:
        axes = [ax] if isinstance(ax, Axes) else list(ax)
        if len(axes) < n:
            raise ValueError(f"need {n} axes for this figure, got {len(axes)}")
        return _root_figure(axes[0]), axes[:n]
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(panel[0] * ncols, panel[1] * nrows), layout="constrained")
    grid = fig.subplots(nrows, ncols, squeeze=False).ravel().tolist()
    for extra in grid[n:]:
        extra.remove()
    return fig, grid[:n]


def _positive_mask(y: Any, positive: Any = None) -> np.ndarray:
    """Boolean "is the positive class" for labels given as bools, 0/1 or strings such as "yes"/"no".

    The labs meet all three spellings (the raw CSV says ``yes``, the training CSV says ``1``), so the
    plots accept any of them; ``positive=None`` means True, 1 or "yes".
    """
    values = pd.Series(np.asarray(y).ravel())
    if positive is not None:
        return (values == positive).to_numpy()
    if pd.api.types.is_bool_dtype(values):
        return values.to_numpy(dtype=bool)
    if pd.api.types.is_numeric_dtype(values):
        return (values == 1).to_numpy()
    lowered = values.astype(str).str.strip().str.lower()
    if lowered.isin(["yes", "no"]).all():
        return (lowered == "yes").to_numpy()
    if lowered.isin(["true", "false"]).all():
        return (lowered == "true").to_numpy()
    if lowered.isin(["1", "0"]).all():
        return (lowered == "1").to_numpy()
    raise ValueError(f"cannot tell which label is positive among {sorted(values.unique())[:5]}; pass positive=")


def _values(data: Any, column: str) -> pd.Series:
    """A column of a DataFrame, or a Series / array taken as the column itself."""
    if isinstance(data, pd.DataFrame):
        return data[column]
    return pd.Series(np.asarray(data).ravel() if not isinstance(data, pd.Series) else data, name=column)


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _shared_bins(arrays: Iterable[np.ndarray], bins: int, clip_quantile: float | None) -> np.ndarray:
    """One set of bin edges for all groups, so densities compare bar for bar."""
    finite = [a[np.isfinite(a)] for a in arrays]
    combined = np.concatenate(finite) if finite else np.array([])
    if combined.size == 0:
        return np.linspace(0.0, 1.0, bins + 1)
    low = float(combined.min())
    high = float(np.quantile(combined, clip_quantile)) if clip_quantile is not None else float(combined.max())
    if np.allclose(combined, np.round(combined)):
        # Integer features (age, campaign …): bins a whole number of values wide, centred on the integers;
        # equal-width float bins would hold 2 or 3 integers each and draw a misleading comb.
        lo, hi = int(round(low)), int(round(high))
        width = max(1, math.ceil((hi - lo + 1) / bins))
        return lo - 0.5 + width * np.arange(math.ceil((hi - lo + 1) / width) + 1)
    if high <= low:
        high = low + 1.0
    return np.linspace(low, high, bins + 1)


def _fmt(value: float) -> str:
    """Four significant digits: enough to compare tuning trials, short enough for a legend."""
    return f"{value:.4g}"


def _higher_is_better(metric: str) -> bool:
    """``auc``, ``ndcg@5`` and, as MLflow runs name them, ``validation_auc``: higher is better; losses are not."""
    name = metric.lower().split("@")[0]
    return name in _HIGHER_IS_BETTER or name.rsplit("_", 1)[-1] in _HIGHER_IS_BETTER


# --------------------------------------------------------------------------------------------------------------
# Exploration (lab 1)
# --------------------------------------------------------------------------------------------------------------


@_styled
def target_rate_by_category(df: pd.DataFrame, column: str, target: str = "y", positive: Any = "yes", *,
                            ax: Axes | None = None, sort: str | None = "rate", bins: int = 10) -> Figure:
    """Share of positive outcomes per category, the counts behind each bar, and the overall rate.

    Why: a rate without its count misleads (a 50 % rate over 4 customers is noise), and a rate without the
    overall rate as reference cannot be read as "better or worse than average". Bars above the overall
    rate are coloured differently so the interesting categories stand out.

    ``sort`` is ``"rate"`` (highest first), ``"count"`` or ``None`` (data order; ordered categoricals keep
    their order). Numeric columns with more than ``bins`` distinct values are cut into ``bins`` quantile
    bins and shown in bin order.
    """
    is_pos = pd.Series(_positive_mask(df[target], positive), index=df.index)
    raw = df[column]
    if _is_numeric(raw) and raw.nunique() > bins:
        cut = pd.qcut(raw, q=bins, duplicates="drop")
        if np.allclose(raw.dropna(), np.round(raw.dropna())):  # integers (age): "18–25", "26–32", no overlap
            names = {iv: f"{math.floor(iv.left) + 1}–{math.floor(iv.right)}" for iv in cut.cat.categories}
        else:
            names = {iv: f"{iv.left:.4g} – {iv.right:.4g}" for iv in cut.cat.categories}
        groups = cut.map(names).astype(object).where(cut.notna(), "(missing)").astype(str)
        order_by_data = [*names.values(), "(missing)"]
        sort = None
    else:
        groups = raw.astype(object).where(raw.notna(), "(missing)").astype(str)
        if isinstance(raw.dtype, pd.CategoricalDtype):
            order_by_data = [str(c) for c in raw.cat.categories] + ["(missing)"]
        else:
            order_by_data = list(dict.fromkeys(groups))
    stats = is_pos.groupby(groups).agg(["mean", "size"]).rename(columns={"mean": "rate", "size": "count"})
    if sort == "rate":
        stats = stats.sort_values(["rate", "count"], ascending=False)
    elif sort == "count":
        stats = stats.sort_values("count", ascending=False)
    else:
        stats = stats.reindex([c for c in order_by_data if c in stats.index])
    overall = float(is_pos.mean()) if len(is_pos) else float("nan")

    fig, ax = _single_axes(ax, (7.5, max(2.6, 0.36 * len(stats) + 1.3)))
    positions = np.arange(len(stats))
    above = stats["rate"].to_numpy() > overall
    colors = np.where(above, PALETTE[3], PALETTE[0])
    ax.barh(positions, stats["rate"], color=colors, height=0.7)
    ax.axvline(overall, color=NEUTRAL, linestyle="--", linewidth=1.4)
    for pos, (rate, count) in zip(positions, stats[["rate", "count"]].itertuples(index=False), strict=True):
        ax.annotate(f"{rate:.1%}  (n={count:,})", (rate, pos), xytext=(4, 0), textcoords="offset points",
                    va="center", fontsize=8.5, color="#333333", zorder=4,
                    bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.85})
    ax.set_yticks(positions, stats.index)
    ax.invert_yaxis()  # first row on top, like a table
    ax.grid(axis="y", visible=False)
    max_rate = float(stats["rate"].max()) if len(stats) else 1.0
    ax.set_xlim(0, max(max_rate, overall, 0.01) * 1.35)
    ax.xaxis.set_major_formatter(PercentFormatter(xmax=1, decimals=0))
    ax.set_xlabel(f"share of {target} = {positive!r}")
    ax.set_ylabel(column)
    ax.set_title(f"{target} = {positive!r} rate by {column}")
    ax.legend(handles=[Patch(color=PALETTE[3], label="above overall"), Patch(color=PALETTE[0], label="at or below"),
                       Line2D([], [], color=NEUTRAL, linestyle="--", label=f"overall {overall:.1%}")],
              loc="lower right")
    return fig


@_styled
def numeric_distributions(df: pd.DataFrame, columns: Sequence[str], target: str = "y", *,
                          ax: Axes | Sequence[Axes] | None = None, bins: int = 30, ncols: int = 3,
                          clip_quantile: float | None = 0.995) -> Figure:
    """Small multiples: one histogram per numeric column, one overlaid density per target class.

    Why densities on shared bins: the classes are very unbalanced (about 1 in 9 customers subscribes), so
    raw counts would hide the minority class; densities over identical bins compare the *shapes*, which is
    what tells a learner whether a feature separates the classes. ``clip_quantile`` trims the long right
    tail (``duration``, ``campaign``) that would otherwise squeeze everything into the first bin; pass
    ``None`` to show the full range.
    """
    columns = list(columns)
    if not columns:
        raise ValueError("columns is empty")
    fig, axes = _axes_grid(ax, len(columns), ncols, (3.6, 2.7))
    classes = sorted(df[target].dropna().unique(), key=str)
    for axis, column in zip(axes, columns, strict=True):
        per_class = [df.loc[df[target] == cls, column].to_numpy(dtype=float) for cls in classes]
        edges = _shared_bins(per_class, bins, clip_quantile)
        for i, values in enumerate(per_class):
            values = values[np.isfinite(values)]
            if values.size == 0:
                continue
            color = PALETTE[i % len(PALETTE)]
            axis.hist(values, bins=edges, density=True, histtype="stepfilled", alpha=0.3, color=color)
            axis.hist(values, bins=edges, density=True, histtype="step", linewidth=1.4, color=color)
        if np.allclose(edges % 1, 0.5):
            axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_title(column, fontsize=11)
        axis.set_xlabel(column)
        axis.set_ylabel("density")
        axis.yaxis.set_major_locator(MaxNLocator(4))
    handles = [Patch(facecolor=PALETTE[i % len(PALETTE)], alpha=0.6,
                     label=f"{target} = {cls} (n={int((df[target] == cls).sum()):,})") for i, cls in enumerate(classes)]
    if ax is None:  # one legend for all panels, below them, where it never covers a histogram
        fig.suptitle(f"Distributions by {target} (density, shared bins)")
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles))
    else:
        axes[0].legend(handles=handles, loc="best", fontsize=8.5)
    return fig


@_styled
def correlation_heatmap(df: pd.DataFrame, columns: Sequence[str] | None = None, *, ax: Axes | None = None,
                        method: str = "pearson", annotate: bool = True) -> Figure:
    """Pairwise correlations of the numeric columns, each cell labelled with its value.

    Why annotated: colour alone cannot tell 0.91 from 0.97, and the lab's point (the macro-economic
    columns such as ``euribor3m`` and ``nr.employed`` are nearly collinear) is in those numbers. A diverging
    map centred on 0 with fixed limits ±1 keeps the sign readable and figures comparable.
    """
    data = df[list(columns)] if columns is not None else df.select_dtypes("number")
    data = data.select_dtypes("number")
    if data.shape[1] == 0:
        raise ValueError("no numeric columns to correlate")
    corr = data.corr(method=method)
    n = corr.shape[0]
    side = min(10.0, max(4.0, 0.62 * n + 2.2))
    fig, ax = _single_axes(ax, (side + 1.0, side))
    image = ax.imshow(corr.to_numpy(), cmap="RdBu_r", vmin=-1, vmax=1)
    ax.grid(False)
    ax.set_xticks(range(n), corr.columns, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(n), corr.index)
    ax.spines[:].set_visible(False)
    if annotate:
        fontsize = 9 if n <= 10 else 7.5 if n <= 16 else 6
        for i in range(n):
            for j in range(n):
                value = corr.iat[i, j]
                if np.isnan(value):
                    continue
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=fontsize,
                        color="white" if abs(value) > 0.6 else "#222222")
    colorbar = fig.colorbar(image, ax=ax, shrink=0.8, pad=0.02)
    colorbar.set_label(f"{method} correlation")
    colorbar.outline.set_visible(False)
    ax.set_title(f"Correlation of numeric features ({method})")
    return fig


# --------------------------------------------------------------------------------------------------------------
# Model evaluation (training, tuning, deployment labs)
# --------------------------------------------------------------------------------------------------------------


@_styled
def roc_pr_curves(y_true: Any, scores: Any | Mapping[str, Any], label: str | None = None, *,
                  ax: Sequence[Axes] | None = None, positive: Any = None) -> Figure:
    """ROC and precision–recall curves side by side, AUC and average precision in the legends.

    Why both: with ~11 % positives the ROC curve looks flattering, while precision–recall shows what a
    marketing team experiences (how many calls are wasted per subscriber found). Chance lines give each
    its baseline: the diagonal (AUC 0.5) and the positive rate (AP = prevalence). Pass ``scores`` as a
    dict ``{label: scores}`` to compare models on the same axes.
    """
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

    y = _positive_mask(y_true, positive).astype(int)
    if y.min() == y.max():
        raise ValueError("y_true holds a single class; ROC and PR curves need both")
    models = dict(scores) if isinstance(scores, Mapping) else {label or "model": scores}
    fig, (ax_roc, ax_pr) = _axes_grid(ax, 2, 2, (4.9, 4.4))
    for i, (name, model_scores) in enumerate(models.items()):
        s = np.asarray(model_scores, dtype=float).ravel()
        if s.shape != y.shape:
            raise ValueError(f"{name}: {s.size} scores for {y.size} labels")
        color = PALETTE[i % len(PALETTE)]
        fpr, tpr, _ = roc_curve(y, s)
        ax_roc.plot(fpr, tpr, color=color, linewidth=2, label=f"{name} (AUC = {roc_auc_score(y, s):.3f})")
        precision, recall, _ = precision_recall_curve(y, s)
        ax_pr.plot(recall, precision, color=color, linewidth=2, drawstyle="steps-post",
                   label=f"{name} (AP = {average_precision_score(y, s):.3f})")
    prevalence = float(y.mean())
    ax_roc.plot([0, 1], [0, 1], color=NEUTRAL, linestyle="--", linewidth=1.2, label="chance (AUC = 0.500)")
    ax_pr.axhline(prevalence, color=NEUTRAL, linestyle="--", linewidth=1.2, label=f"chance (AP = {prevalence:.3f})")
    ax_roc.set(title="ROC curve", xlabel="false positive rate", ylabel="true positive rate (recall)",
               xlim=(-0.01, 1.01), ylim=(-0.01, 1.01))
    ax_pr.set(title="Precision–recall curve", xlabel="recall", ylabel="precision", xlim=(-0.01, 1.01),
              ylim=(-0.01, 1.01))
    for axis in (ax_roc, ax_pr):
        axis.set_aspect("equal")
    ax_roc.legend(loc="lower right")
    ax_pr.legend(loc="upper right")
    return fig


def _as_labels(values: Any, labels: Sequence[Any]) -> np.ndarray:
    """Map 0/1 (or True/False) predictions onto ``labels`` so ("no", "yes") works for either spelling."""
    array = np.asarray(values).ravel()
    if pd.Series(array).isin(list(labels)).all():
        return array
    series = pd.Series(array)
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        codes = series.astype(int).to_numpy()
        if codes.min() >= 0 and codes.max() < len(labels):
            return np.asarray(labels, dtype=object)[codes]
    raise ValueError(f"values {sorted(set(array.tolist()), key=str)[:5]} do not match labels {tuple(labels)}")


@_styled
def confusion_matrix_plot(y_true: Any, y_pred: Any, labels: Sequence[Any] = ("no", "yes"), *,
                          ax: Axes | None = None) -> Figure:
    """Confusion matrix with counts and row percentages (the share of each *actual* class).

    Why row percentages: with unbalanced classes the raw counts of the minority row look tiny; the row
    share reads directly as recall (bottom right) and false positive rate (top right). Cells are shaded
    by that share so the diagonal of a good model is dark. ``y_true``/``y_pred`` may use the label names
    or the 0/1 indices of ``labels``.
    """
    from sklearn.metrics import confusion_matrix

    labels = list(labels)
    truth, predicted = _as_labels(y_true, labels), _as_labels(y_pred, labels)
    counts = confusion_matrix(truth, predicted, labels=labels)
    row_totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, row_totals, out=np.zeros_like(counts, dtype=float), where=row_totals > 0)
    k = len(labels)
    fig, ax = _single_axes(ax, (max(4.2, 1.3 * k + 2.2), max(3.6, 1.2 * k + 1.6)))
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    ax.grid(False)
    ax.spines[:].set_visible(False)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{counts[i, j]:,}\n({shares[i, j]:.1%})", ha="center", va="center", fontsize=11,
                    color="white" if shares[i, j] > 0.55 else "#222222")
    ax.set_xticks(range(k), [str(label) for label in labels])
    ax.set_yticks(range(k), [str(label) for label in labels])
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(f"Confusion matrix (n = {int(counts.sum()):,}; row %)")
    return fig


@_styled
def feature_importance(booster_or_dict: Any, top: int = 15, importance_type: str = "gain", *,
                       ax: Axes | None = None, feature_names: Sequence[str] | None = None) -> Figure:
    """The ``top`` most important features as horizontal bars, largest on top.

    Kept for lab 05 (Debugger and Clarify), which compares XGBoost's own importances with SHAP values.

    Accepts an ``xgboost.Booster`` (as loaded from a SageMaker ``model.tar.gz``), a scikit-learn style
    ``XGBClassifier``, or any mapping / Series ``{feature: importance}``. Models trained by SageMaker on a
    header-less CSV name their features ``f0, f1, …``; pass ``feature_names`` (the CSV's columns without
    the target) to get readable labels back. Why "gain" by default: it measures how much each feature
    improved the splits, which is closer to "what the model relies on" than the split count ("weight").
    """
    if hasattr(booster_or_dict, "get_booster"):  # XGBClassifier / XGBRegressor
        booster_or_dict = booster_or_dict.get_booster()
    if hasattr(booster_or_dict, "get_score"):
        scores = dict(booster_or_dict.get_score(importance_type=importance_type))
    elif isinstance(booster_or_dict, Mapping | pd.Series):
        scores = {str(k): float(v) for k, v in booster_or_dict.items()}
    else:
        raise TypeError(f"expected an xgboost Booster or a mapping, got {type(booster_or_dict).__name__}")
    if feature_names is not None:
        names = list(feature_names)
        scores = {names[int(k[1:])] if k[:1] == "f" and k[1:].isdigit() and int(k[1:]) < len(names) else k: v
                  for k, v in scores.items()}
    if not scores:
        raise ValueError("no feature importances (an empty model?)")
    ranked = sorted(scores.items(), key=lambda item: item[1], reverse=True)[:top]
    names, values = zip(*ranked, strict=True)
    fig, ax = _single_axes(ax, (7.0, max(2.4, 0.32 * len(ranked) + 1.2)))
    positions = np.arange(len(ranked))
    ax.barh(positions, values, color=PALETTE[0], height=0.7)
    ax.set_yticks(positions, names)
    ax.invert_yaxis()
    ax.grid(axis="y", visible=False)
    for pos, value in zip(positions, values, strict=True):
        ax.annotate(_fmt(value), (value, pos), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8.5)
    ax.set_xlim(0, max(values) * 1.15)
    ax.set_xlabel(f"importance ({importance_type})")
    ax.set_title(f"Top {len(ranked)} features by {importance_type}")
    return fig


def _flatten_history(history: Mapping[str, Any]) -> dict[str, list[float]]:
    """Accept ``{"train:auc": [...]}`` (parsed logs) and XGBoost's ``{"train": {"auc": [...]}}`` alike."""
    flat: dict[str, list[float]] = {}
    for key, value in history.items():
        if isinstance(value, Mapping):
            for metric, series in value.items():
                flat[f"{key}:{metric}"] = [float(v) for v in series]
        else:
            flat[str(key)] = [float(v) for v in value]
    return flat


@_styled
def metric_curves(history: Mapping[str, Any], *, ax: Axes | Sequence[Axes] | None = None) -> Figure:
    """Each metric per boosting round, one panel per metric, one line per channel (train, validation …).

    Why: the gap between the train and validation lines is over-fitting made visible, and the marked best
    validation round is what early stopping would keep. Keys are ``"channel:metric"`` as SageMaker's
    XGBoost logs them (``{"train:auc": [...], "validation:auc": [...]}``); XGBoost's own ``evals_result``
    nesting is accepted too.
    """
    flat = _flatten_history(history)
    if not flat:
        raise ValueError("history is empty")
    by_metric: dict[str, list[tuple[str, list[float]]]] = {}
    channels: list[str] = []
    for key, series in flat.items():
        channel, _, metric = key.rpartition(":")
        by_metric.setdefault(metric, []).append((channel, series))
        if channel not in channels:
            channels.append(channel)
    panel = (4.6, 3.6) if len(by_metric) > 1 else (7.0, 4.0)
    fig, axes = _axes_grid(ax, len(by_metric), 3, panel)
    for axis, (metric, lines) in zip(axes, by_metric.items(), strict=True):
        higher = _higher_is_better(metric)
        for channel, series in lines:
            color = PALETTE[channels.index(channel) % len(PALETTE)]
            rounds = np.arange(len(series))
            axis.plot(rounds, series, color=color, linewidth=1.8, label=channel or metric)
            if channel and not channel.startswith("train") and series:
                values = np.asarray(series)
                best = int(np.nanargmax(values) if higher else np.nanargmin(values))
                axis.plot([best], [values[best]], marker="o", markersize=7, color=color, markeredgecolor="white",
                          linestyle="none", label=f"best {channel}: {_fmt(values[best])} @ round {best}")
        axis.set_title(f"{metric} per round ({'higher' if higher else 'lower'} is better)")
        axis.set_xlabel("boosting round")
        axis.set_ylabel(metric)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.legend(loc="best")
    return fig


# --------------------------------------------------------------------------------------------------------------
# Hyperparameter tuning
# --------------------------------------------------------------------------------------------------------------


def _trials_in_start_order(df: pd.DataFrame) -> pd.DataFrame:
    if "TrainingStartTime" in df.columns:
        start = pd.to_datetime(df["TrainingStartTime"], errors="coerce", utc=True)
        return df.assign(_start=start).sort_values("_start", kind="stable", na_position="last").drop(columns="_start")
    return df


@_styled
def tuning_progress(df: pd.DataFrame | Mapping[str, pd.DataFrame], objective: str = "FinalObjectiveValue",
                    maximize: bool = True, *, ax: Axes | None = None) -> Figure:
    """Objective of every trial in start order, with the best-so-far line; several strategies on one axis.

    ``df`` is ``HyperparameterTuningJobAnalytics(...).dataframe()`` or a dict ``{strategy name: dataframe}``.
    Why this view: tuning strategies differ in *how fast* they find good trials, not only in the final
    best, and the best-so-far line shows exactly that. Trials without an objective (failed or stopped
    before reporting) are marked as grey crosses along the bottom so they are not silently dropped.
    """
    frames = dict(df) if isinstance(df, Mapping) else {"trials": df}
    fig, ax = _single_axes(ax, (8.0, 4.4))
    failed_drawn = False
    for i, (name, frame) in enumerate(frames.items()):
        if objective not in frame.columns:
            raise KeyError(f"{name}: no column {objective!r} (columns: {list(frame.columns)})")
        color = PALETTE[i % len(PALETTE)]
        ordered = _trials_in_start_order(frame)
        values = pd.to_numeric(ordered[objective], errors="coerce").reset_index(drop=True)
        trials = np.arange(1, len(values) + 1)
        ok = values.notna().to_numpy()
        best_so_far = (values.cummax() if maximize else values.cummin()).ffill()
        ax.scatter(trials[ok], values[ok], s=28, color=color, alpha=0.55, edgecolors="none")
        n_failed = int((~ok).sum())
        if ok.any():
            best = float(best_so_far.iloc[-1])
            detail = f"{len(values)} trials" + (f", {n_failed} without objective" if n_failed else "")
            ax.plot(trials, best_so_far, color=color, linewidth=2, drawstyle="steps-post",
                    label=f"{name}: best {_fmt(best)} ({detail})")
            best_trial = int(trials[ok][np.argmax(values[ok]) if maximize else np.argmin(values[ok])])
            ax.plot([best_trial], [best], marker="*", markersize=14, color=color, markeredgecolor="black",
                    markeredgewidth=0.6, linestyle="none")
        if n_failed:
            ax.plot(trials[~ok], np.full(n_failed, 0.02), transform=ax.get_xaxis_transform(), marker="x",
                    color=NEUTRAL, linestyle="none", label=None if failed_drawn else "no objective (failed/stopped)")
            failed_drawn = True
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial (in order of start time)")
    ax.set_ylabel("objective" if objective == "FinalObjectiveValue" else objective)
    ax.set_title(f"Tuning progress — best so far ({'higher' if maximize else 'lower'} is better)")
    handles, texts = ax.get_legend_handles_labels()
    order = sorted(range(len(texts)), key=lambda i: texts[i].startswith("no objective"))  # strategies first
    # Below the axes: inside, the legend would cover exactly the trials a learner wants to look at.
    ax.legend([handles[i] for i in order], [texts[i] for i in order], loc="upper center",
              bbox_to_anchor=(0.5, -0.14), ncols=1)
    return fig


def _axis_values(series: pd.Series, rng: np.random.Generator) -> tuple[np.ndarray, list[str] | None]:
    """Numbers to plot; categorical hyperparameters become jittered integer positions plus tick labels."""
    numeric = pd.to_numeric(series, errors="coerce")
    if numeric.notna().all():
        return numeric.to_numpy(dtype=float), None
    categories = sorted(series.astype(str).unique())
    codes = series.astype(str).map({c: i for i, c in enumerate(categories)}).to_numpy(dtype=float)
    return codes + rng.uniform(-0.15, 0.15, size=codes.size), categories


def _wants_log(values: np.ndarray) -> bool:
    finite = values[np.isfinite(values)]
    return bool(finite.size and finite.min() > 0 and finite.max() / finite.min() >= 20)


@_styled
def search_space(df: pd.DataFrame, x: str, y: str, color: str = "FinalObjectiveValue", *, ax: Axes | None = None,
                 maximize: bool = True, logx: bool | None = None, logy: bool | None = None) -> Figure:
    """Where the tuner sampled two hyperparameters, each trial coloured by its objective.

    Why: it shows how a strategy explores (random scatters, Bayesian clusters near good regions, grid sits
    on a lattice) and where the good region is. Axes switch to log scale when a hyperparameter spans
    more than ~1.5 decades (as with a ``Logarithmic`` scaling type); categorical hyperparameters are
    shown as jittered categories. The best trial is ringed; trials without an objective are grey crosses.
    """
    rng = np.random.default_rng(0)
    xs, x_cats = _axis_values(df[x], rng)
    ys, y_cats = _axis_values(df[y], rng)
    objective = pd.to_numeric(df[color], errors="coerce").to_numpy(dtype=float)
    ok = np.isfinite(objective)
    fig, ax = _single_axes(ax, (7.0, 5.0))
    points = ax.scatter(xs[ok], ys[ok], c=objective[ok], cmap="viridis", s=55, edgecolors="white", linewidths=0.6)
    if (~ok).any():
        ax.scatter(xs[~ok], ys[~ok], marker="x", color=NEUTRAL, label="no objective")
    if ok.any():
        best = int(np.flatnonzero(ok)[np.argmax(objective[ok]) if maximize else np.argmin(objective[ok])])
        ax.scatter([xs[best]], [ys[best]], s=220, facecolors="none", edgecolors="black", linewidths=1.6,
                   label=f"best: {_fmt(objective[best])}")
        colorbar = fig.colorbar(points, ax=ax, pad=0.02)
        colorbar.set_label("objective" if color == "FinalObjectiveValue" else color)
        colorbar.outline.set_visible(False)
    if x_cats is not None:
        ax.set_xticks(range(len(x_cats)), x_cats)
    elif logx if logx is not None else _wants_log(xs):
        ax.set_xscale("log")
    if y_cats is not None:
        ax.set_yticks(range(len(y_cats)), y_cats)
    elif logy if logy is not None else _wants_log(ys):
        ax.set_yscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(f"Search space: {y} vs {x}")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best")
    return fig


# --------------------------------------------------------------------------------------------------------------
# Monitoring and model selection
# --------------------------------------------------------------------------------------------------------------


@_styled
def drift_plot(baseline: Any, current: Any, column: str, *, ax: Axes | None = None, bins: int = 30,
               labels: tuple[str, str] = ("baseline", "current")) -> Figure:
    """One feature's baseline and current distributions overlaid, with their L∞ distance in the title.

    Kept for lab 06 (Model Monitor), which shows the drift its data-quality monitor reports.

    Why L∞: it is the distance SageMaker Model Monitor's data-quality drift check reports (the largest gap
    between the two CDFs for numeric features, between the category shares for categorical ones), so the
    number in the title is the number a monitoring violation would show. ``baseline``/``current`` are
    DataFrames holding ``column`` or the column's values directly.
    """
    base, cur = _values(baseline, column).dropna(), _values(current, column).dropna()
    fig, ax = _single_axes(ax, (7.0, 3.8))
    if _is_numeric(base) and _is_numeric(cur):
        b, c = base.to_numpy(dtype=float), cur.to_numpy(dtype=float)
        edges = _shared_bins([b, c], bins, None)
        handles = []
        for values, label, color in ((b, labels[0], PALETTE[0]), (c, labels[1], PALETTE[1])):
            ax.hist(values, bins=edges, density=True, histtype="stepfilled", alpha=0.3, color=color)
            ax.hist(values, bins=edges, density=True, histtype="step", linewidth=1.6, color=color)
            mean = _fmt(values.mean()) if values.size else "–"
            handles.append(Patch(facecolor=mpl.colors.to_rgba(color, 0.3), edgecolor=color, linewidth=1.6,
                                 label=f"{label} (n={values.size:,}, mean {mean})"))
        # Below the axes: overlaid histograms fill the plot, any inside position would hide bins.
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=2)
        grid = np.union1d(b, c)
        cdf_b = np.searchsorted(np.sort(b), grid, side="right") / max(b.size, 1)
        cdf_c = np.searchsorted(np.sort(c), grid, side="right") / max(c.size, 1)
        distance = float(np.abs(cdf_b - cdf_c).max()) if grid.size else 0.0
        ax.set_ylabel("density")
        ax.set_xlabel(column)
    else:
        share_b = base.astype(str).value_counts(normalize=True)
        share_c = cur.astype(str).value_counts(normalize=True)
        categories = share_b.add(share_c, fill_value=0).sort_values(ascending=False).index
        share_b, share_c = share_b.reindex(categories, fill_value=0), share_c.reindex(categories, fill_value=0)
        positions = np.arange(len(categories))
        width = 0.4
        ax.bar(positions - width / 2, share_b, width, color=PALETTE[0], label=f"{labels[0]} (n={base.size:,})")
        ax.bar(positions + width / 2, share_c, width, color=PALETTE[1], label=f"{labels[1]} (n={cur.size:,})")
        ax.set_xticks(positions, categories, rotation=30 if len(categories) > 5 else 0,
                      ha="right" if len(categories) > 5 else "center")
        ax.grid(axis="x", visible=False)
        ax.yaxis.set_major_formatter(PercentFormatter(xmax=1, decimals=0))
        distance = float((share_b - share_c).abs().max()) if len(categories) else 0.0
        ax.set_ylabel("share of rows")
        ax.set_xlabel(column)
        ax.legend(loc="best")
    ax.set_title(f"Drift in {column}: L∞ distance = {distance:.3f}")
    return fig


@_styled
def leaderboard(df: pd.DataFrame, metric: str, name_col: str, *, ax: Axes | None = None, maximize: bool = True,
                top: int | None = 20) -> Figure:
    """Candidates (Autopilot, tuning jobs, registered model versions) as bars sorted best-first.

    Kept for lab 07 (Autopilot), whose candidates it ranks.

    Why bars from zero with the value printed: the differences between good candidates are often in the
    third decimal; printing the number keeps them readable without a truncated axis exaggerating them.
    The winner is highlighted.
    """
    ranked = df[[name_col, metric]].dropna(subset=[metric]).sort_values(metric, ascending=not maximize)
    if top is not None:
        ranked = ranked.head(top)
    if ranked.empty:
        raise ValueError(f"no candidate has a value for {metric!r}")
    names = ranked[name_col].astype(str).tolist()
    values = ranked[metric].to_numpy(dtype=float)
    fig, ax = _single_axes(ax, (7.5, max(2.4, 0.34 * len(names) + 1.2)))
    positions = np.arange(len(names))
    colors = [PALETTE[3]] + [PALETTE[0]] * (len(names) - 1)
    ax.barh(positions, values, color=colors, height=0.7)
    for pos, value in zip(positions, values, strict=True):
        ax.annotate(_fmt(value), (max(value, 0), pos), xytext=(3, 0), textcoords="offset points", va="center",
                    fontsize=8.5, fontweight="bold" if pos == 0 else "normal")
    ax.set_yticks(positions, names)
    ax.invert_yaxis()
    ax.grid(axis="y", visible=False)
    low = min(0.0, float(values.min()) * 1.15)
    ax.set_xlim(low, max(float(values.max()), 0.0) * 1.15 or 1.0)
    ax.set_xlabel(metric)
    ax.set_ylabel(name_col)
    ax.set_title(f"Leaderboard by {metric} ({'higher' if maximize else 'lower'} is better)")
    return fig


@_styled
def ab_test(metrics: pd.DataFrame, weights: Mapping[str, Mapping[str, float]] | None = None, *,
            ax: Sequence[Axes] | None = None) -> Figure:
    """An A/B test's live metrics: each variant's traffic share and AUC, phase by phase.

    ``metrics`` is indexed by (phase, variant) with columns ``share`` and ``AUC``; ``weights`` maps
    phase → variant → configured weight share, drawn as a tick so the observed split can be checked
    against what was asked for. Why side by side: shifting traffic is only justified by the metric
    panel, and the share panel shows the shift happened.
    """
    shares = metrics["share"].unstack("variant")
    aucs = metrics["AUC"].unstack("variant")
    fig, axes = _axes_grid(ax, 2, 2, (4.6, 3.2))
    phases, variants = list(shares.index), list(shares.columns)
    width = 0.8 / max(1, len(variants))
    positions = np.arange(len(phases))
    for panel, (frame, title, label) in zip(axes, ((shares, "Traffic share", "share of calls"),
                                                   (aucs, "AUC on the traffic served", "AUC")), strict=True):
        for i, variant in enumerate(variants):
            x = positions + (i - (len(variants) - 1) / 2) * width
            values = frame[variant].to_numpy(dtype=float)
            panel.bar(x, values, width * 0.95, color=PALETTE[i % len(PALETTE)], label=f"variant {variant}")
            for xi, value in zip(x, values, strict=True):
                if np.isfinite(value):
                    panel.annotate(_fmt(value), (xi, value), xytext=(0, 2), textcoords="offset points",
                                   ha="center", fontsize=8)
            if weights and frame is shares:
                for xi, phase in zip(x, phases, strict=True):
                    if variant in weights.get(phase, {}):
                        panel.hlines(weights[phase][variant], xi - width / 2, xi + width / 2, color=NEUTRAL,
                                     linestyles="--")
        panel.set_xticks(positions, phases)
        panel.set_title(title)
        panel.set_ylabel(label)
    axes[0].set_ylim(0, 1.08)
    finite = aucs.to_numpy(dtype=float)
    finite = finite[np.isfinite(finite)]
    if finite.size:
        axes[1].set_ylim(max(0.0, finite.min() - 0.1), min(1.0, finite.max() + 0.05))
    axes[0].legend(loc="upper right", fontsize=8)
    return fig


# --------------------------------------------------------------------------------------------------------------
# SageMaker Pipelines
# --------------------------------------------------------------------------------------------------------------

#: step status → (fill colour, edge colour); "Cached" is a step that succeeded by reusing an earlier run's job
_STEP_COLOURS: dict[str, tuple[str, str]] = {
    "Succeeded": ("#cdeee3", PALETTE[2]),
    "Cached": ("#e3f1fb", PALETTE[5]),
    "Failed": ("#f7d6c6", PALETTE[3]),
    "Executing": ("#fbe9c2", PALETTE[1]),
    "Starting": ("#fbe9c2", PALETTE[1]),
    "Stopped": ("#eeeeee", NEUTRAL),
    "not run": ("#ffffff", "#bbbbbb"),
}


def _step_references(value: Any) -> set[str]:
    """The step names a definition fragment reads from: ``{"Get": "Steps.<Name>...."}`` anywhere inside."""
    found: set[str] = set()
    if isinstance(value, Mapping):
        reference = value.get("Get")
        if isinstance(reference, str) and reference.startswith("Steps."):
            found.add(reference.split(".")[1])
        for item in value.values():
            found |= _step_references(item)
    elif isinstance(value, list):
        for item in value:
            found |= _step_references(item)
    return found


def pipeline_graph(definition: str | Mapping[str, Any]) -> tuple[dict[str, str], list[tuple[str, str, str]]]:
    """A pipeline definition's steps (name → type) and edges ``(from, to, kind)``, as SageMaker derives them.

    ``kind`` is ``data`` (the step reads a property of the other: ``{"Get": "Steps.Train.…"}``), ``after``
    (an explicit ``DependsOn``), ``if`` or ``else`` (a condition step's branches, whose steps are nested in
    the condition's ``Arguments`` rather than listed at the top level).
    """
    import json

    parsed = json.loads(definition) if isinstance(definition, str) else definition
    steps: dict[str, str] = {}
    edges: list[tuple[str, str, str]] = []
    pending: list[tuple[Mapping[str, Any], str | None, str]] = [(step, None, "") for step in parsed.get("Steps", [])]
    while pending:
        step, parent, branch = pending.pop(0)
        name = step["Name"]
        steps[name] = step.get("Type", "")
        if parent is not None:
            edges.append((parent, name, branch))
        arguments = dict(step.get("Arguments") or {})
        for key, kind in (("IfSteps", "if"), ("ElseSteps", "else")):
            pending.extend((child, name, kind) for child in arguments.pop(key, None) or [])
        edges.extend((source, name, "data") for source in sorted(_step_references(arguments)) if source != name)
        edges.extend((source, name, "after") for source in step.get("DependsOn") or [])
    return steps, [edge for edge in dict.fromkeys(edges) if edge[0] in steps]


def _layers(steps: Sequence[str], edges: Iterable[tuple[str, str, str]]) -> dict[str, int]:
    """Each step's column: the length of the longest chain of dependencies leading to it."""
    parents: dict[str, set[str]] = {name: set() for name in steps}
    for source, target, _ in edges:
        parents[target].add(source)
    layer: dict[str, int] = {}

    def depth(name: str, seen: frozenset[str] = frozenset()) -> int:
        if name not in layer:
            if name in seen:
                raise ValueError(f"the pipeline has a cycle through {name!r}")
            layer[name] = 1 + max((depth(p, seen | {name}) for p in parents[name]), default=-1)
        return layer[name]

    for name in steps:
        depth(name)
    return layer


def _transitive_reduction(edges: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """The edges without those implied by a longer path (Train → Register when Train → Evaluate → … → Register)."""
    children: dict[str, set[str]] = {}
    for source, target, _ in edges:
        children.setdefault(source, set()).add(target)

    def reachable(start: str, goal: str, skip: tuple[str, str]) -> bool:
        stack, seen = [start], set()
        while stack:
            node = stack.pop()
            for child in children.get(node, ()):
                if (node, child) == skip or child in seen:
                    continue
                if child == goal:
                    return True
                seen.add(child)
                stack.append(child)
        return False

    return [edge for edge in edges if edge[2] in ("if", "else") or not reachable(edge[0], edge[1], edge[:2])]


def _step_state(summary: Mapping[str, Any]) -> str:
    status = str(summary.get("StepStatus", ""))
    return "Cached" if status == "Succeeded" and summary.get("CacheHitResult") else status


@_styled
def pipeline_dag(definition: str | Mapping[str, Any], steps: Iterable[Mapping[str, Any]] | None = None, *,
                 ax: Axes | None = None, title: str | None = None) -> Figure:
    """A pipeline's DAG as SageMaker Studio draws it: one box per step, arrows for dependencies, left to right.

    ``definition`` is ``Pipeline.definition()`` (JSON) or its parsed dict; ``steps`` the summaries of
    ``ListPipelineExecutionSteps`` (``execution.list_steps()``), which colour each box by its status: a step that
    succeeded by reusing an earlier run's job (``CacheHitResult``) is marked *cache hit*, a step absent from the
    list (the condition took the other branch, or the run stopped before it) *not run*. Arrows implied by a longer
    path are left out. Why a picture: the order of a pipeline is in its data references, not in the order its
    steps were listed.
    """
    names, edges = pipeline_graph(definition)
    edges = _transitive_reduction(edges)
    states = {str(s["StepName"]): _step_state(s) for s in steps or []}
    layer = _layers(list(names), edges)
    columns: dict[int, list[str]] = {}
    for name in names:
        columns.setdefault(layer[name], []).append(name)
    height = max(len(column) for column in columns.values())
    position = {name: (col * 2.2, (len(column) - 1) / 2 - row)
                for col, column in columns.items() for row, name in enumerate(column)}
    fig, ax = _single_axes(ax, (max(5.0, 1.9 * len(columns) + 0.6), max(2.0, 1.1 * height + 0.9)))
    box_w, box_h = 1.6, 0.62
    for source, target, kind in edges:
        (x0, y0), (x1, y1) = position[source], position[target]
        colour = {"if": PALETTE[2], "else": PALETTE[3]}.get(kind, NEUTRAL)
        ax.annotate("", xy=(x1 - box_w / 2, y1), xytext=(x0 + box_w / 2, y0),
                    arrowprops={"arrowstyle": "-|>", "color": colour, "lw": 1.3,
                                "linestyle": ":" if kind == "after" else "-",
                                "shrinkA": 2, "shrinkB": 2, "connectionstyle": "arc3,rad=0.0"})
        if kind in ("if", "else"):
            ax.annotate("true" if kind == "if" else "false", ((x0 + x1) / 2, (y0 + y1) / 2), xytext=(0, 4),
                        textcoords="offset points", ha="center", fontsize=8, color=colour)
    from matplotlib.patches import FancyBboxPatch

    for name, kind in names.items():
        x, y = position[name]
        state = states.get(name, "not run" if states else "")
        fill, edge = _STEP_COLOURS.get(state, ("#ffffff", PALETTE[0]))
        ax.add_patch(FancyBboxPatch((x - box_w / 2, y - box_h / 2), box_w, box_h,
                                    boxstyle="round,pad=0.02,rounding_size=0.08", facecolor=fill, edgecolor=edge,
                                    linewidth=1.6, linestyle="--" if state == "not run" else "-"))
        ax.text(x, y + 0.1, name, ha="center", va="center", fontsize=9.5, fontweight="bold")
        label = kind if not state else f"{kind} · {'cache hit' if state == 'Cached' else state}"
        ax.text(x, y - 0.15, label, ha="center", va="center", fontsize=7.5, color="#444444")
    ax.set_xlim(-box_w / 2 - 0.2, max(x for x, _ in position.values()) + box_w / 2 + 0.2)
    ax.set_ylim(-(height - 1) / 2 - box_h, (height - 1) / 2 + box_h)
    ax.set_axis_off()
    ax.set_title(title or "Pipeline steps and their dependencies")
    return fig


def _show_figures_inline() -> None:
    """Let a returned ``Figure`` display as a PNG in Jupyter without importing pyplot.

    The figures here are made with ``Figure()`` (no pyplot state), and IPython only knows how
    to render figures once the inline backend has registered its formatter; register it.
    """
    try:
        from IPython import get_ipython
        from IPython.core.pylabtools import select_figure_formats
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None and hasattr(shell, "display_formatter"):
        select_figure_formats(shell, {"png"}, bbox_inches="tight")


_show_figures_inline()
