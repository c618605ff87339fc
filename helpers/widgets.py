"""Interactive widgets for the labs: pick a decision threshold by cost, and try a deployed endpoint.

Why widgets: "which threshold?" and "what does the endpoint answer?" are questions a learner should
*play* with, not read about. The arithmetic lives in plain functions (:func:`cost_at_threshold`,
:func:`best_threshold`, :func:`cost_curve`) that are tested without any widget; the widgets only wire
sliders and buttons to them. Figures are rendered to PNG into an ``ipywidgets.Image`` rather than shown
through an ``Output`` area, so they update in place and work in every front end (and in tests).
"""

from __future__ import annotations

import base64
import functools
import html
import io
import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as widgets
import matplotlib as mpl
import numpy as np
from matplotlib.figure import Figure

from helpers.plots import NEUTRAL, PALETTE, STYLE, _positive_mask

__all__ = ["cost_at_threshold", "best_threshold", "cost_curve", "threshold_explorer", "endpoint_try_it", "snap",
           "static_html"]


# --------------------------------------------------------------------------------------------------------------
# The arithmetic (no widgets)
# --------------------------------------------------------------------------------------------------------------


def _prepare(y_true: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    """Sorted scores of the positives and of the negatives: every count at any threshold is a searchsorted."""
    y = _positive_mask(y_true)
    s = np.asarray(scores, dtype=float).ravel()
    if s.shape != y.shape:
        raise ValueError(f"{s.size} scores for {y.size} labels")
    return np.sort(s[y]), np.sort(s[~y])


def cost_curve(y_true: Any, scores: Any, thresholds: Any, cost_fp: float = 1.0, cost_fn: float = 5.0,
               gain_tp: float = 0.0) -> dict[str, np.ndarray]:
    """Confusion counts and total cost at many thresholds at once (vectorised :func:`cost_at_threshold`).

    A customer is contacted when ``score >= threshold``. Returns arrays ``threshold, tp, fp, fn, tn,
    total_cost``.
    """
    pos, neg = _prepare(y_true, scores)
    t = np.atleast_1d(np.asarray(thresholds, dtype=float))
    tp = pos.size - np.searchsorted(pos, t, side="left")
    fp = neg.size - np.searchsorted(neg, t, side="left")
    fn, tn = pos.size - tp, neg.size - fp
    total = fp * cost_fp + fn * cost_fn - tp * gain_tp
    return {"threshold": t, "tp": tp, "fp": fp, "fn": fn, "tn": tn, "total_cost": total.astype(float)}


def cost_at_threshold(y_true: Any, scores: Any, threshold: float, cost_fp: float = 1.0, cost_fn: float = 5.0,
                      gain_tp: float = 0.0) -> dict[str, float]:
    """What contacting every customer with ``score >= threshold`` would cost.

    Why a cost rather than accuracy: in the bank-marketing case a wasted call (false positive,
    ``cost_fp``) is cheap and a missed subscriber (false negative, ``cost_fn``) is expensive, so the best
    threshold is wherever *money* is minimised, usually far below 0.5. ``gain_tp`` is the value of a
    successful call, counted as a negative cost::

        total_cost = fp * cost_fp + fn * cost_fn - tp * gain_tp

    Returns ``threshold, tp, fp, fn, tn, contacted, precision, recall, total_cost, cost_per_customer``
    (total over everyone scored) and ``cost_per_contacted`` (total over the customers called; NaN when
    nobody is). Precision is NaN when nobody is contacted, recall NaN when there are no positives.
    """
    curve = cost_curve(y_true, scores, [threshold], cost_fp, cost_fn, gain_tp)
    tp, fp, fn, tn = (int(curve[k][0]) for k in ("tp", "fp", "fn", "tn"))
    total = float(curve["total_cost"][0])
    contacted, n = tp + fp, tp + fp + fn + tn
    return {
        "threshold": float(threshold),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "contacted": contacted,
        "precision": tp / contacted if contacted else math.nan,
        "recall": tp / (tp + fn) if tp + fn else math.nan,
        "total_cost": total,
        "cost_per_customer": total / n if n else math.nan,
        "cost_per_contacted": total / contacted if contacted else math.nan,
    }


def _candidates(scores: Any) -> np.ndarray:
    """Every threshold that changes a decision (each distinct score), plus the ends 0 and 1 of the slider."""
    s = np.asarray(scores, dtype=float).ravel()
    return np.unique(np.concatenate([np.clip(s[np.isfinite(s)], 0.0, 1.0), [0.0, 1.0]]))


def best_threshold(y_true: Any, scores: Any, cost_fp: float = 1.0, cost_fn: float = 5.0,
                   gain_tp: float = 0.0) -> float:
    """The threshold in [0, 1] with the lowest total cost (the lowest such threshold on ties).

    Only the distinct scores (and 0 and 1) need checking: between two consecutive scores no decision
    changes, so the cost is constant there. The result is therefore exact, not a grid approximation.
    """
    candidates = _candidates(scores)
    curve = cost_curve(y_true, scores, candidates, cost_fp, cost_fn, gain_tp)
    return float(candidates[int(np.argmin(curve["total_cost"]))])


# --------------------------------------------------------------------------------------------------------------
# A static rendering, for front ends that cannot run widgets (the HTML export)
# --------------------------------------------------------------------------------------------------------------


def static_html(widget: widgets.Widget) -> str:
    """The widget as plain HTML, showing its current state: what an HTML export shows instead of an empty box.

    Why: without a kernel (nbconvert's HTML, a notebook viewer) a widget is an empty output. Every widget kind the
    labs use is drawn here: text and figures as they are, inputs and buttons as disabled copies with their values.
    """
    if isinstance(widget, widgets.HTML):
        return f"<div>{widget.value}</div>"
    if isinstance(widget, widgets.Image):
        data = base64.b64encode(bytes(widget.value)).decode()
        width = widget.layout.width or "auto"
        return f'<img alt="figure" style="width:{width}" src="data:image/{widget.format};base64,{data}"/>'
    if isinstance(widget, widgets.Button):
        return f"<button disabled>{html.escape(widget.description)}</button>"
    if isinstance(widget, widgets.Textarea):
        return f'<textarea disabled style="width:95%">{html.escape(str(widget.value))}</textarea>'
    if isinstance(widget, widgets.ValueWidget) and hasattr(widget, "description"):
        value = f"{widget.value:.2f}" if isinstance(widget, widgets.FloatSlider) else str(widget.value)
        return (f'<span style="margin-right:16px">{html.escape(widget.description)}: '
                f"<b>{html.escape(value)}</b></span>")
    if isinstance(widget, widgets.Box):
        direction = "row" if isinstance(widget, widgets.HBox) else "column"
        inner = "".join(static_html(child) for child in widget.children)
        return f'<div style="display:flex;flex-direction:{direction};gap:6px;align-items:flex-start">{inner}</div>'
    return ""


class _Box(widgets.VBox):
    """A VBox whose output also carries :func:`static_html` (``text/html``), for front ends without widgets."""

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any] | None:
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is not None:
            note = "<p><i>A static copy of an interactive widget: run the notebook to use it.</i></p>"
            bundle["text/html"] = f'<div class="workshop-widget-static">{note}{static_html(self)}</div>'
        return bundle


# --------------------------------------------------------------------------------------------------------------
# One widget's handlers run one at a time
# --------------------------------------------------------------------------------------------------------------


def serialized(lock: threading.RLock) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Run a widget's handler under its widget's lock, so two handlers never interleave.

    Why: ipykernel 7 handles widget (comm) messages concurrently, so a slider moved by a button and then snapped
    back by the browser runs two refreshes at once. Two ``savefig`` calls on one figure at once leave matplotlib's
    canvas in its "saving" state and every later PNG comes out transparent: the figure goes blank for good. The
    lock is re-entrant because a handler that sets a widget's value (the button moving the slider) runs the
    slider's handler in the same thread.
    """

    def wrap(handler: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(handler)
        def run(*args: Any) -> None:
            with lock:
                handler(*args)

        return run

    return wrap


def snap(value: float, step: float, low: float, high: float) -> float:
    """``value`` on the slider's own grid (``low + k * step``, within bounds), rounded as the browser shows it.

    Why: a value off the grid is snapped by the browser and sent back, one more update racing the first.
    """
    decimals = max(0, -math.floor(math.log10(step))) if step > 0 else 6
    k = round((value - low) / step) if step > 0 else 0
    return round(min(high, max(low, low + k * step)), decimals)


def _fit(text: str) -> widgets.Layout:
    """A layout wide enough for a label: never "go to minimu…" (a flex item's text does not wrap)."""
    return widgets.Layout(width="max-content", min_width=f"{len(text) * 0.62 + 4:.0f}em")


# --------------------------------------------------------------------------------------------------------------
# Threshold explorer
# --------------------------------------------------------------------------------------------------------------


def _pct(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.1%}"


def _money(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:,.2f}"


def _summary_html(r: dict[str, float], best: dict[str, float], n: int) -> str:
    """Confusion table and the numbers a marketing manager asks about. ``data-cell`` names each count."""
    cell = "padding:2px 10px;text-align:right"
    head = "padding:2px 10px;color:#555;font-weight:normal"

    def count(key: str, title: str) -> str:
        return f'<td style="{cell}" title="{title}" data-cell="{key}">{int(r[key]):,}</td>'

    table = (
        '<table style="border-collapse:collapse;font-size:13px">'
        f'<tr><th></th><th style="{head}">predicted no</th><th style="{head}">predicted yes</th></tr>'
        f'<tr><th style="{head}">actual no</th>{count("tn", "true negatives")}{count("fp", "false positives")}</tr>'
        f'<tr><th style="{head}">actual yes</th>{count("fn", "false negatives")}{count("tp", "true positives")}</tr>'
        "</table>"
    )
    rows = [
        ("contacted", f'<span data-cell="contacted">{int(r["contacted"]):,}</span> of {n:,} '
                      f'({_pct(r["contacted"] / n if n else math.nan)})'),
        ("precision", f'<span data-cell="precision">{_pct(r["precision"])}</span>'),
        ("recall", f'<span data-cell="recall">{_pct(r["recall"])}</span>'),
        ("total cost", f'<span data-cell="total_cost">{_money(r["total_cost"])}</span>'),
        ("cost per customer contacted", f'<span data-cell="cost_per_contacted">{_money(r["cost_per_contacted"])}'
                                        "</span>"),
        ("minimum cost", f'{_money(best["total_cost"])} at threshold '
                         f'<span data-cell="best_threshold">{best["threshold"]:.3f}</span>'),
    ]
    metrics = "".join(f'<tr><th style="{head};text-align:left">{k}</th><td style="{cell}">{v}</td></tr>'
                      for k, v in rows)
    return (f'<div style="display:flex;gap:32px;align-items:flex-start">{table}'
            f'<table style="border-collapse:collapse;font-size:13px">{metrics}</table></div>')


class _CostFigure:
    """One persistent small figure; updates move its artists and re-render a PNG (fast enough for a slider)."""

    def __init__(self) -> None:
        with mpl.rc_context(STYLE):
            self.figure = Figure(figsize=(7.0, 2.7), dpi=100, layout="constrained")
            self.ax = self.figure.add_subplot()
            (self.curve,) = self.ax.plot([], [], color=PALETTE[0], linewidth=2, label="total cost")
            self.current = self.ax.axvline(0.5, color=NEUTRAL, linestyle="--", linewidth=1.4, label="threshold")
            (self.best,) = self.ax.plot([], [], marker="o", markersize=9, color=PALETTE[3], markeredgecolor="white",
                                        linestyle="none", label="minimum cost")
            self.ax.set_xlim(0, 1)
            self.ax.set_xlabel("threshold (contact if score ≥ threshold)")
            self.ax.set_ylabel("total cost")
            self.ax.set_title("Total cost vs threshold", fontsize=11)

    def render(self, thresholds: np.ndarray, costs: np.ndarray, current: float, best_t: float,
               best_cost: float) -> bytes:
        with mpl.rc_context(STYLE):
            return self._render(thresholds, costs, current, best_t, best_cost)

    def _render(self, thresholds: np.ndarray, costs: np.ndarray, current: float, best_t: float,
                best_cost: float) -> bytes:
        self.curve.set_data(thresholds, costs)
        self.current.set_xdata([current, current])
        self.best.set_data([best_t], [best_cost])
        self.current.set_label(f"threshold {current:.2f}")
        self.best.set_label(f"minimum {best_cost:,.1f}\nat {best_t:.3f}")
        self.ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8.5)
        low, high = float(np.min(costs)), float(np.max(costs))
        pad = (high - low) * 0.06 or 1.0
        self.ax.set_ylim(low - pad, high + pad)
        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png")
        return buffer.getvalue()


def threshold_explorer(y_true: Any, scores: Any, cost_fp: float = 1.0, cost_fn: float = 5.0,
                       gain_tp: float = 0.0, *, threshold: float = 0.5) -> widgets.VBox:
    """A threshold slider and cost inputs with live confusion counts, precision/recall and cost.

    Why: the model outputs a probability; the business decides whom to call. Dragging the threshold shows
    the trade-off (more calls → more subscribers found, more wasted calls) and the cost curve marks where
    it is cheapest for the costs entered, which learners can change to see the optimum move. The counts
    come from :func:`cost_at_threshold`, the minimum from :func:`best_threshold`.

    The returned box also carries its parts as attributes (``slider``, ``cost_fp``, ``cost_fn``,
    ``gain_tp``, ``summary``, ``image``) so notebooks and tests can drive it.
    """
    y = _positive_mask(y_true)
    s = np.asarray(scores, dtype=float).ravel()
    _prepare(y, s)  # validate shapes once, up front, with a clear message
    n = int(y.size)
    # The drawn curve is sampled (drawing every distinct score would make each slider move slow); the minimum
    # marked on it is the exact one from best_threshold.
    grid = np.linspace(0.0, 1.0, 401)

    slider = widgets.FloatSlider(value=threshold, min=0.0, max=1.0, step=0.01, description="threshold",
                                 readout_format=".2f", continuous_update=True,
                                 layout=widgets.Layout(width="480px"))
    style = {"description_width": "initial"}
    fp_box = widgets.FloatText(value=cost_fp, description="cost of a wasted call (FP)", style=style,
                               layout=widgets.Layout(width="240px"))
    fn_box = widgets.FloatText(value=cost_fn, description="cost of a missed subscriber (FN)", style=style,
                               layout=widgets.Layout(width="270px"))
    tp_box = widgets.FloatText(value=gain_tp, description="gain per subscriber (TP)", style=style,
                               layout=widgets.Layout(width="230px"))
    best_button = widgets.Button(description="go to minimum cost", icon="bullseye",
                                 tooltip="move the slider to the cheapest threshold",
                                 layout=_fit("go to minimum cost"))
    summary = widgets.HTML()
    image = widgets.Image(format="png", layout=widgets.Layout(width="700px"))
    figure = _CostFigure()

    def costs() -> tuple[float, float, float]:
        return float(fp_box.value), float(fn_box.value), float(tp_box.value)

    @functools.lru_cache(maxsize=8)
    def optimum(fp: float, fn: float, tp: float) -> tuple[dict[str, float], np.ndarray]:
        """Best point and cost curve depend on the costs only, so dragging the slider reuses them."""
        best = cost_at_threshold(y, s, best_threshold(y, s, fp, fn, tp), fp, fn, tp)
        return best, cost_curve(y, s, grid, fp, fn, tp)["total_cost"]

    lock = threading.RLock()

    @serialized(lock)
    def refresh(_change: Any = None) -> None:
        threshold, fp, fn, tp = slider.value, *costs()  # read once: another thread may change them meanwhile
        current = cost_at_threshold(y, s, threshold, fp, fn, tp)
        best, curve = optimum(fp, fn, tp)
        summary.value = _summary_html(current, best, n)
        image.value = figure.render(grid, curve, threshold, best["threshold"], best["total_cost"])

    @serialized(lock)
    def go_to_best(_button: widgets.Button) -> None:
        # On the slider's own step, so the browser has nothing to snap and send back; the exact optimum stays in
        # the summary and the figure. Redrawn even when the slider was already there.
        target = snap(optimum(*costs())[0]["threshold"], slider.step, slider.min, slider.max)
        if slider.value == target:
            refresh()
        slider.value = target

    slider.observe(refresh, names="value")
    for box in (fp_box, fn_box, tp_box):
        box.observe(refresh, names="value")
    best_button.on_click(go_to_best)
    refresh()

    intro = widgets.HTML(
        "<b>Choose whom to call.</b> A customer is contacted when the model's score ≥ threshold. "
        "Set what a wasted call and a missed subscriber cost; the cheapest threshold is marked.")
    explorer = _Box([intro, slider, widgets.HBox([fp_box, fn_box, tp_box]), best_button, summary, image])
    explorer.slider, explorer.cost_fp, explorer.cost_fn, explorer.gain_tp = slider, fp_box, fn_box, tp_box
    explorer.summary, explorer.image = summary, image
    return explorer


# --------------------------------------------------------------------------------------------------------------
# Endpoint "try it"
# --------------------------------------------------------------------------------------------------------------


def _csv_value(value: Any) -> str:
    """CSV text for one feature: integers without ``.0``, floats with full precision, strings as they are."""
    if isinstance(value, bool | np.bool_):
        return str(int(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(float(value))
    return str(value)


def _describe_result(raw: str) -> str:
    text = raw.strip()
    try:
        values = [float(v) for v in text.replace("\n", ",").split(",") if v.strip()]
    except ValueError:
        values = []
    if len(values) == 1:
        score = values[0]
        bar = (f'<div style="width:240px;height:10px;background:#eee;border-radius:3px;margin-top:4px">'
               f'<div style="width:{max(0.0, min(score, 1.0)) * 100:.1f}%;height:10px;background:{PALETTE[0]};'
               'border-radius:3px"></div></div>') if 0.0 <= score <= 1.0 else ""
        return f'score: <b style="font-size:16px" data-cell="score">{score:.4f}</b>{bar}'
    return f'response: <code data-cell="score">{html.escape(text)}</code>'


def endpoint_try_it(invoke: Callable[[str], str], feature_names: Sequence[str],
                    example_row: Sequence[float]) -> widgets.VBox:
    """A form to send one CSV row to a deployed model and see its score.

    ``invoke(csv_row) -> str`` is supplied by the notebook (typically a boto3 ``invoke_endpoint`` call with
    ``ContentType="text/csv"`` returning the decoded body), so this widget works unchanged against the
    local emulator and real SageMaker. Why a form: editing one feature (age, contact, …) and re-scoring is
    the quickest way to feel what the model learned. A row with the wrong number of fields is refused
    here with a clear message instead of an opaque endpoint error; endpoint errors are shown, not raised,
    so the notebook keeps running.

    The returned box carries ``text``, ``button`` and ``result`` as attributes.
    """
    names = list(feature_names)
    if len(example_row) != len(names):
        raise ValueError(f"example_row has {len(example_row)} values for {len(names)} feature names")
    default = ",".join(_csv_value(v) for v in example_row)
    preview = ", ".join(names[:8]) + (f", … ({len(names)} in all)" if len(names) > 8 else "")
    header = widgets.HTML(f"<b>Try the endpoint.</b> One CSV row, no header, no target, in this order: "
                          f"<code>{html.escape(preview)}</code>")
    text = widgets.Textarea(value=default, layout=widgets.Layout(width="95%", height="64px"))
    button = widgets.Button(description="invoke endpoint", button_style="primary", icon="paper-plane",
                            layout=_fit("invoke endpoint"))
    reset = widgets.Button(description="reset row", icon="undo", layout=_fit("reset row"))
    result = widgets.HTML("")

    lock = threading.RLock()

    @serialized(lock)
    def send(_button: widgets.Button) -> None:
        row = text.value.strip().replace("\n", "")
        n_fields = len(row.split(",")) if row else 0
        if n_fields != len(names):
            result.value = (f'<span style="color:{PALETTE[3]}">The row has {n_fields} values; the model expects '
                            f"{len(names)}. Nothing was sent.</span>")
            return
        result.value = "<i>calling the endpoint…</i>"
        started = time.perf_counter()
        try:
            answer = invoke(row)
        except Exception as exc:  # show any endpoint / network failure to the learner instead of a traceback
            result.value = (f'<span style="color:{PALETTE[3]}">{html.escape(type(exc).__name__)}: '
                            f"{html.escape(str(exc))}</span>")
            return
        if isinstance(answer, bytes | bytearray):
            answer = answer.decode("utf-8")
        elapsed = (time.perf_counter() - started) * 1000
        result.value = f'{_describe_result(str(answer))}<div style="color:#777;font-size:11px">{elapsed:.0f} ms</div>'

    @serialized(lock)
    def restore(_button: widgets.Button) -> None:
        text.value = default
        result.value = ""

    button.on_click(send)
    reset.on_click(restore)
    form = _Box([header, text, widgets.HBox([button, reset]), result])
    form.text, form.button, form.result = text, button, result
    return form
