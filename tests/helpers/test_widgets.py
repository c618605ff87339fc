"""helpers.widgets: the cost arithmetic by hand on a tiny example, then the widgets driven like a learner would."""

from __future__ import annotations

import io
import math
import re
import sys
import threading

import matplotlib

matplotlib.use("Agg")

import ipywidgets  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib import image as mpimg  # noqa: E402

from helpers.widgets import (  # noqa: E402
    best_threshold,
    cost_at_threshold,
    cost_curve,
    endpoint_try_it,
    snap,
    threshold_explorer,
)

# Four customers. Sorted by score: 0.1 (no), 0.35 (yes), 0.4 (no), 0.8 (yes).
Y = [0, 0, 1, 1]
SCORES = [0.1, 0.4, 0.35, 0.8]


def descendants(widget: ipywidgets.Widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from descendants(child)


def find(widget: ipywidgets.Widget, kind: type, **attrs):
    matches = [w for w in descendants(widget) if isinstance(w, kind)
               and all(getattr(w, k) == v for k, v in attrs.items())]
    assert matches, f"no {kind.__name__} with {attrs}"
    return matches[0]


def cells(html: str) -> dict[str, str]:
    return dict(re.findall(r'data-cell="(\w+)"[^>]*>([^<]*)<', html))


# ---- pure functions -------------------------------------------------------------------------------------------


def test_cost_at_threshold_by_hand() -> None:
    # threshold 0.5: contact only 0.8 → TP 1, FP 0, FN 1 (0.35), TN 2; cost = 0·1 + 1·5 = 5.
    r = cost_at_threshold(Y, SCORES, 0.5, cost_fp=1.0, cost_fn=5.0)
    assert (r["tp"], r["fp"], r["fn"], r["tn"], r["contacted"]) == (1, 0, 1, 2, 1)
    assert (r["precision"], r["recall"], r["total_cost"]) == (1.0, 0.5, 5.0)
    assert (r["cost_per_customer"], r["cost_per_contacted"]) == (1.25, 5.0)
    # threshold 0.3: contact 0.35, 0.4, 0.8 → TP 2, FP 1; cost = 1·1 + 0·5 = 1.
    r = cost_at_threshold(Y, SCORES, 0.3, cost_fp=1.0, cost_fn=5.0)
    assert (r["tp"], r["fp"], r["fn"], r["tn"], r["total_cost"]) == (2, 1, 0, 1, 1.0)
    assert r["precision"] == pytest.approx(2 / 3) and r["cost_per_contacted"] == pytest.approx(1 / 3)
    # A score equal to the threshold is contacted; a gain per TP counts as negative cost: 1 − 2·10 = −19.
    r = cost_at_threshold(Y, SCORES, 0.35, cost_fp=1.0, cost_fn=5.0, gain_tp=10.0)
    assert (r["tp"], r["fp"], r["total_cost"]) == (2, 1, -19.0)


def test_cost_at_threshold_nobody_contacted_and_string_labels() -> None:
    r = cost_at_threshold(["no", "no", "yes", "yes"], SCORES, 0.9, cost_fp=1.0, cost_fn=5.0)
    assert (r["tp"], r["fp"], r["fn"], r["tn"], r["total_cost"]) == (0, 0, 2, 2, 10.0)
    assert math.isnan(r["precision"]) and math.isnan(r["cost_per_contacted"]) and r["recall"] == 0.0
    with pytest.raises(ValueError):
        cost_at_threshold(Y, SCORES[:3], 0.5)


def test_best_threshold_by_hand() -> None:
    # Costs at the candidate thresholds 0, 0.1, 0.35, 0.4, 0.8, 1.0 are 2, 2, 1, 6, 5, 10.
    assert best_threshold(Y, SCORES, cost_fp=1.0, cost_fn=5.0) == 0.35
    # Missed subscribers free, calls cost: 0.8 and 1.0 both cost 0; the lowest such threshold wins.
    assert best_threshold(Y, SCORES, cost_fp=1.0, cost_fn=0.0) == 0.8
    # Calls free, misses cost: contact everyone.
    assert best_threshold(Y, SCORES, cost_fp=0.0, cost_fn=1.0) == 0.0


def test_cost_curve_matches_pointwise_costs() -> None:
    rng = np.random.default_rng(0)
    y, s = rng.integers(0, 2, 300), rng.random(300)
    grid = np.linspace(0, 1, 41)
    curve = cost_curve(y, s, grid, cost_fp=1.0, cost_fn=4.0, gain_tp=0.5)
    for i, t in enumerate(grid):
        r = cost_at_threshold(y, s, t, cost_fp=1.0, cost_fn=4.0, gain_tp=0.5)
        assert (curve["tp"][i], curve["fp"][i], curve["total_cost"][i]) == (r["tp"], r["fp"], r["total_cost"])
    # best_threshold is exact: no threshold at all (brute force over every score) does better.
    best_cost = cost_at_threshold(y, s, best_threshold(y, s, 1.0, 4.0, 0.5), 1.0, 4.0, 0.5)["total_cost"]
    brute = min(cost_at_threshold(y, s, t, 1.0, 4.0, 0.5)["total_cost"] for t in [*s, 0.0, 1.0])
    assert best_cost == brute <= curve["total_cost"].min()


# ---- threshold explorer ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scored() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    y = rng.random(300) < 0.15
    s = np.clip(0.15 + 0.5 * y + rng.normal(0, 0.2, 300), 0, 1)
    return np.where(y, "yes", "no"), s


def test_threshold_explorer_updates_counts_live(scored) -> None:
    y, s = scored
    box = threshold_explorer(y, s, cost_fp=1.0, cost_fn=5.0)
    assert isinstance(box, ipywidgets.VBox)
    slider = find(box, ipywidgets.FloatSlider)
    assert (slider.min, slider.max, slider.value) == (0.0, 1.0, 0.5)
    summary = next(w for w in descendants(box) if isinstance(w, ipywidgets.HTML) and 'data-cell="tp"' in w.value)
    image = find(box, ipywidgets.Image)
    first_png = bytes(image.value)
    assert first_png.startswith(b"\x89PNG")

    def shown() -> dict[str, int]:
        return {k: int(v.replace(",", "")) for k, v in cells(summary.value).items() if k in ("tp", "fp", "fn", "tn")}

    expected = cost_at_threshold(y, s, 0.5, 1.0, 5.0)
    assert shown() == {k: expected[k] for k in ("tp", "fp", "fn", "tn")}

    slider.value = 0.25
    expected = cost_at_threshold(y, s, 0.25, 1.0, 5.0)
    assert shown() == {k: expected[k] for k in ("tp", "fp", "fn", "tn")}
    assert expected["fp"] > cost_at_threshold(y, s, 0.5, 1.0, 5.0)["fp"]  # the example really moved
    shown_cells = cells(summary.value)
    assert shown_cells["precision"] == f"{expected['precision']:.1%}"
    assert shown_cells["recall"] == f"{expected['recall']:.1%}"
    assert shown_cells["cost_per_contacted"] == f"{expected['cost_per_contacted']:,.2f}"
    assert bytes(image.value) != first_png and bytes(image.value).startswith(b"\x89PNG")


def test_threshold_explorer_costs_move_the_optimum(scored) -> None:
    y, s = scored
    box = threshold_explorer(y, s, cost_fp=1.0, cost_fn=5.0)
    assert float(cells(box.summary.value)["best_threshold"]) == pytest.approx(best_threshold(y, s, 1.0, 5.0),
                                                                            abs=5e-4)
    fn_box = [w for w in descendants(box) if isinstance(w, ipywidgets.FloatText)][1]
    assert fn_box.value == 5.0
    fn_box.value = 0.5  # missed subscribers are cheap now: call fewer people
    cheap = best_threshold(y, s, 1.0, 0.5)
    assert cheap > best_threshold(y, s, 1.0, 5.0)
    assert float(cells(box.summary.value)["best_threshold"]) == pytest.approx(cheap, abs=5e-4)

    go = find(box, ipywidgets.Button)
    go.click()
    assert box.slider.value == pytest.approx(cheap, abs=0.01)
    expected = cost_at_threshold(y, s, box.slider.value, 1.0, 0.5)
    assert int(cells(box.summary.value)["tp"]) == expected["tp"]


def opaque_pixels(png: bytes) -> int:
    """How many pixels of a PNG are drawn at all (a figure left in matplotlib's "saving" state has none)."""
    return int((mpimg.imread(io.BytesIO(bytes(png)), format="png")[..., 3] > 0).sum())


@pytest.fixture
def eager_thread_switches():
    """Switch threads every few microseconds (not every 5 ms) so overlapping handlers overlap for sure."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(before)


@pytest.mark.usefixtures("eager_thread_switches")
def test_threshold_explorer_survives_concurrent_updates(scored) -> None:
    """Two threads moving the slider at once, as ipykernel 7 delivers a button press and the browser's snap-back.

    Before the handlers were serialized, the overlapping ``savefig`` calls left the canvas "saving" and every
    later figure was a transparent PNG, however the slider moved afterwards.
    """
    y, s = scored
    box = threshold_explorer(y, s, cost_fp=1.0, cost_fn=5.0)
    errors: list[BaseException] = []

    def drive(values: list[float]) -> None:
        try:
            for value in values:
                box.slider.value = value
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=drive, args=([round(0.1 + 0.01 * (i % 40), 2) for i in range(30)],)),
               threading.Thread(target=drive, args=([round(0.9 - 0.01 * (i % 40), 2) for i in range(30)],))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
        assert not thread.is_alive(), "a slider update never finished (deadlock?)"
    assert not errors, errors
    box.slider.value = 0.33
    assert opaque_pixels(box.image.value) > 10_000, "the figure went blank after concurrent updates"
    expected = cost_at_threshold(y, s, 0.33, 1.0, 5.0)
    assert int(cells(box.summary.value)["tp"]) == expected["tp"]


def test_go_to_minimum_lands_on_the_slider_step_and_redraws(scored) -> None:
    y, s = scored
    box = threshold_explorer(y, s, cost_fp=1.0, cost_fn=5.0)
    go = find(box, ipywidgets.Button)
    go.click()
    value = box.slider.value
    assert value == round(value, 2) and value == pytest.approx(best_threshold(y, s, 1.0, 5.0), abs=0.005)
    box.image.value = b""  # pressing again with the slider already there still draws the figure
    go.click()
    assert opaque_pixels(box.image.value) > 10_000


def test_snap_puts_values_on_the_grid() -> None:
    assert snap(0.14300912, 0.01, 0.0, 1.0) == 0.14
    assert snap(0.146, 0.01, 0.0, 1.0) == 0.15
    assert snap(1.7, 0.01, 0.0, 1.0) == 1.0 and snap(-3, 0.5, -1.0, 1.0) == -1.0
    assert snap(7.3, 2, 1, 11) == 7


# ---- endpoint try-it ------------------------------------------------------------------------------------------


def test_endpoint_try_it_sends_the_row_and_shows_the_score() -> None:
    calls: list[str] = []

    def invoke(row: str) -> str:
        calls.append(row)
        return "0.8123456\n"

    form = endpoint_try_it(invoke, ["age", "duration", "euribor3m"], [35.0, 261, 4.857])
    text = find(form, ipywidgets.Textarea)
    assert text.value == "35,261,4.857"
    button = find(form, ipywidgets.Button, description="invoke endpoint")
    result = form.children[-1]
    assert result.value == ""
    button.click()
    assert calls == ["35,261,4.857"]
    assert cells(result.value)["score"] == "0.8123"

    text.value = "50,10,1.2"
    button.click()
    assert calls[-1] == "50,10,1.2"

    find(form, ipywidgets.Button, description="reset row").click()
    assert text.value == "35,261,4.857" and result.value == ""


def test_endpoint_try_it_refuses_bad_rows_and_shows_errors() -> None:
    calls: list[str] = []

    def failing(row: str) -> str:
        calls.append(row)
        raise RuntimeError("Endpoint bank-xgb is not InService")

    form = endpoint_try_it(failing, ["a", "b"], [1, 2])
    form.text.value = "1,2,3"
    form.button.click()
    assert calls == [] and "expects 2" in form.result.value
    form.text.value = "1,2"
    form.button.click()
    assert calls == ["1,2"] and "RuntimeError" in form.result.value and "not InService" in form.result.value

    raw = endpoint_try_it(lambda row: b'{"predictions": [0.5]}', ["a"], [0.25])
    raw.button.click()
    assert "predictions" in raw.result.value
    with pytest.raises(ValueError):
        endpoint_try_it(failing, ["a", "b"], [1.0])


def test_widgets_carry_a_static_rendering_for_the_html_export(scored) -> None:
    """Without a kernel (nbconvert's HTML) a widget is an empty box; its text/html copy shows its state instead."""
    y, s = scored
    bundle = threshold_explorer(y, s, cost_fp=1.0, cost_fn=5.0)._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle  # JupyterLab still gets the live widget
    static = bundle["text/html"]
    assert 'src="data:image/png;base64,iVBOR' in static and "threshold: <b>0.50</b>" in static
    assert "cost of a missed subscriber (FN): <b>5.0</b>" in static and "go to minimum cost</button>" in static
    assert 'data-cell="tp"' in static  # the confusion counts at the initial threshold
    form = endpoint_try_it(lambda row: "0.5", ["age", "job"], [30, 1])._repr_mimebundle_()["text/html"]
    assert "30,1</textarea>" in form and "invoke endpoint</button>" in form
