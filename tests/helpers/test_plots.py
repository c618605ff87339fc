"""helpers.plots on small synthetic data, headless: each figure builds, renders, and shows the right numbers."""

from __future__ import annotations

import io
import re

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from sklearn.metrics import average_precision_score, confusion_matrix, roc_auc_score  # noqa: E402

from helpers import plots  # noqa: E402


@pytest.fixture(scope="module")
def bank() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = 400
    df = pd.DataFrame({
        "age": rng.integers(18, 80, n),
        "job": rng.choice(["admin.", "blue-collar", "student", "retired"], n),
        "duration": rng.exponential(200, n),
        "campaign": rng.integers(1, 6, n),
        "euribor3m": rng.normal(3.5, 1.2, n),
    })
    df["nr.employed"] = 5000 + 30 * df["euribor3m"] + rng.normal(0, 5, n)
    logit = -2 + 0.005 * df["duration"] + (df["job"] == "student") * 1.5
    df["y"] = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no")
    df["score"] = np.clip(1 / (1 + np.exp(-logit)) + rng.normal(0, 0.1, n), 0, 1)
    return df


def tuning_frame(seed: int, k: int = 12) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    objective = rng.uniform(0.7, 0.8, k)
    objective[2] = np.nan  # a failed trial
    return pd.DataFrame({
        "eta": 10 ** rng.uniform(-2.5, -0.3, k),
        "max_depth": rng.integers(2, 10, k).astype(float),
        "TrainingJobName": [f"job-{i:03d}" for i in range(k)],
        "TrainingJobStatus": ["Completed"] * k,
        "FinalObjectiveValue": objective,
        "TrainingStartTime": pd.date_range("2024-01-01", periods=k, freq="min")[rng.permutation(k)],
        "TrainingEndTime": pd.date_range("2024-01-01 00:05", periods=k, freq="min"),
    })


def legend_texts(ax) -> list[str]:
    legend = ax.get_legend()
    return [t.get_text() for t in legend.get_texts()] if legend else []


def renders(fig: Figure) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    assert buffer.getvalue().startswith(b"\x89PNG")


def test_target_rate_by_category(bank: pd.DataFrame) -> None:
    fig = plots.target_rate_by_category(bank, "job")
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    assert "job" in ax.get_title()
    expected = (bank["y"] == "yes").groupby(bank["job"]).mean().sort_values(ascending=False)
    assert [t.get_text() for t in ax.get_yticklabels()] == list(expected.index)
    assert [p.get_width() for p in ax.patches] == pytest.approx(expected.to_numpy())
    assert f"overall {(bank['y'] == 'yes').mean():.1%}" in legend_texts(ax)
    counts = bank["job"].value_counts()
    annotations = [t.get_text() for t in ax.texts]
    assert all(any(f"(n={counts[job]:,})" in a for a in annotations) for job in counts.index)
    renders(fig)


def test_target_rate_bins_numeric_columns_in_order(bank: pd.DataFrame) -> None:
    fig = plots.target_rate_by_category(bank, "age", bins=5)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert len(labels) == 5 and labels[0].startswith("18")
    assert sum(int(re.search(r"n=([\d,]+)", t.get_text()).group(1).replace(",", "")) for t in fig.axes[0].texts) == 400


def test_numeric_distributions(bank: pd.DataFrame) -> None:
    columns = ["age", "duration", "campaign", "euribor3m"]
    fig = plots.numeric_distributions(bank, columns)
    assert [ax.get_title() for ax in fig.axes] == columns  # surplus grid cells removed
    assert "density" in fig.get_suptitle()
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [
        f"y = {c} (n={(bank['y'] == c).sum():,})" for c in ("no", "yes")]
    age = fig.axes[0]
    # Shared bins: both classes' histograms have identical edges.
    paths = [p.get_path().vertices[:, 0] for p in age.patches]
    assert np.unique(np.round(np.concatenate(paths[:2]), 6)).tolist() == np.unique(
        np.round(np.concatenate(paths[2:]), 6)).tolist()
    renders(fig)


def test_correlation_heatmap(bank: pd.DataFrame) -> None:
    fig = plots.correlation_heatmap(bank)
    assert len(fig.axes) == 2  # heatmap + colour bar
    ax = fig.axes[0]
    numeric = bank.select_dtypes("number")
    assert len(ax.texts) == numeric.shape[1] ** 2
    corr = numeric.corr()
    texts = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts}
    i, j = list(corr.columns).index("euribor3m"), list(corr.columns).index("nr.employed")
    assert texts[(i, j)] == f"{corr.iat[i, j]:.2f}" and texts[(0, 0)] == "1.00"
    assert "Correlation" in ax.get_title()
    fig = plots.correlation_heatmap(bank, columns=["age", "duration", "job"])  # non-numeric columns dropped
    assert len(fig.axes[0].texts) == 4


def test_roc_pr_curves_auc_in_legend_matches_sklearn(bank: pd.DataFrame) -> None:
    y = (bank["y"] == "yes").astype(int)
    fig = plots.roc_pr_curves(y, bank["score"], label="xgboost")
    roc, pr = fig.axes
    assert (roc.get_title(), pr.get_title()) == ("ROC curve", "Precision–recall curve")
    auc = float(re.search(r"xgboost \(AUC = ([\d.]+)\)", legend_texts(roc)[0]).group(1))
    assert auc == pytest.approx(roc_auc_score(y, bank["score"]), abs=5e-4)
    ap = float(re.search(r"AP = ([\d.]+)", legend_texts(pr)[0]).group(1))
    assert ap == pytest.approx(average_precision_score(y, bank["score"]), abs=5e-4)
    assert any(t.startswith("chance (AUC = 0.500") for t in legend_texts(roc))
    assert f"chance (AP = {y.mean():.3f})" in legend_texts(pr)
    renders(fig)


def test_roc_pr_curves_compares_models_and_accepts_string_labels(bank: pd.DataFrame) -> None:
    noisy = np.clip(bank["score"] + np.random.default_rng(0).normal(0, 0.3, len(bank)), 0, 1)
    fig = plots.roc_pr_curves(bank["y"], {"good": bank["score"], "noisy": noisy})
    roc_texts = legend_texts(fig.axes[0])
    assert len(roc_texts) == 3 and roc_texts[0].startswith("good") and roc_texts[1].startswith("noisy")
    y = (bank["y"] == "yes").astype(int)
    assert f"{roc_auc_score(y, noisy):.3f}" in roc_texts[1]
    with pytest.raises(ValueError):
        plots.roc_pr_curves(np.ones(5), np.linspace(0, 1, 5))


def test_roc_pr_curves_draws_on_given_axes(bank: pd.DataFrame) -> None:
    outer = Figure()
    axes = outer.subplots(1, 3)
    assert plots.roc_pr_curves(bank["y"], bank["score"], ax=axes[1:]) is outer
    assert axes[1].get_title() == "ROC curve" and not axes[0].lines


def test_confusion_matrix_plot_counts_and_row_percentages(bank: pd.DataFrame) -> None:
    predicted = (bank["score"] >= 0.5).astype(int)  # 0/1 predictions against "no"/"yes" truth
    fig = plots.confusion_matrix_plot(bank["y"], predicted)
    assert len(fig.axes) == 1
    ax = fig.axes[0]
    counts = confusion_matrix(bank["y"], np.where(predicted == 1, "yes", "no"), labels=["no", "yes"])
    cells = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts}
    for i in range(2):
        for j in range(2):
            share = counts[i, j] / counts[i].sum()
            assert cells[(i, j)] == f"{counts[i, j]:,}\n({share:.1%})"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["no", "yes"]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted", "actual")
    assert "400" in ax.get_title()


def test_feature_importance_from_booster_and_mapping() -> None:
    import xgboost as xgb

    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 4))
    y = (x[:, 2] + 0.2 * x[:, 0] > 0).astype(int)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 2, "nthread": 1},
                        xgb.DMatrix(x, label=y), num_boost_round=5)
    fig = plots.feature_importance(booster, feature_names=["age", "job", "duration", "campaign"])
    ax = fig.axes[0]
    assert ax.get_yticklabels()[0].get_text() == "duration"  # the informative feature ranks first
    assert "gain" in ax.get_title() and "gain" in ax.get_xlabel()

    fig = plots.feature_importance({f"x{i}": float(i) for i in range(30)}, top=10, importance_type="weight")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == [f"x{i}" for i in range(29, 19, -1)]
    assert ax.get_title() == "Top 10 features by weight"
    with pytest.raises(TypeError):
        plots.feature_importance([1, 2, 3])


def test_metric_curves_marks_best_validation_round() -> None:
    rounds = np.arange(30)
    history = {"train:auc": list(0.9 - 0.2 * np.exp(-rounds / 5)),
               "validation:auc": list(0.8 - 0.2 * np.exp(-rounds / 5) - 0.002 * rounds),
               "train:logloss": list(0.3 + np.exp(-rounds / 5)),
               "validation:logloss": list(0.4 + np.exp(-rounds / 5) + 0.003 * rounds)}
    fig = plots.metric_curves(history)
    auc_ax, loss_ax = fig.axes
    assert "auc" in auc_ax.get_title() and "higher is better" in auc_ax.get_title()
    assert "lower is better" in loss_ax.get_title()
    best_auc = int(np.argmax(history["validation:auc"]))
    best_loss = int(np.argmin(history["validation:logloss"]))
    assert any(f"@ round {best_auc}" in t for t in legend_texts(auc_ax))
    assert any(f"@ round {best_loss}" in t for t in legend_texts(loss_ax))
    assert legend_texts(auc_ax)[:2] == ["train", "validation"]
    # MLflow runs compared (lab 08): "<run name>:<metric>", the metric named like validation_auc
    runs = plots.metric_curves({"lab 02:validation_auc": [0.70, 0.76, 0.75],
                                "shallow:validation_auc": [0.60, 0.70, 0.72]})
    assert "higher is better" in runs.axes[0].get_title()
    assert any("best lab 02: 0.76 @ round 1" in t for t in legend_texts(runs.axes[0]))
    # XGBoost's evals_result nesting gives the same figure structure.
    nested = plots.metric_curves({"train": {"auc": history["train:auc"]}, "validation": {"auc": history[
        "validation:auc"]}})
    assert len(nested.axes) == 1 and legend_texts(nested.axes[0]) == legend_texts(auc_ax)
    renders(fig)


def test_tuning_progress_orders_by_start_time_and_tracks_best() -> None:
    df = tuning_frame(3)
    fig = plots.tuning_progress(df)
    ax = fig.axes[0]
    ordered = df.sort_values("TrainingStartTime")["FinalObjectiveValue"].reset_index(drop=True)
    best_line = next(line for line in ax.lines if line.get_drawstyle() == "steps-post")
    assert np.asarray(best_line.get_ydata(), dtype=float) == pytest.approx(ordered.cummax().ffill().to_numpy(),
                                                                           nan_ok=True)
    texts = legend_texts(ax)
    assert f"best {df['FinalObjectiveValue'].max():.4g}" in texts[0] and "12 trials" in texts[0]
    assert texts[-1].startswith("no objective")
    assert "higher is better" in ax.get_title()

    fig = plots.tuning_progress({"Bayesian": tuning_frame(4), "Random": tuning_frame(5)}, maximize=False)
    texts = legend_texts(fig.axes[0])
    assert texts[0].startswith("Bayesian: best") and texts[1].startswith("Random: best")
    assert f"{tuning_frame(5)['FinalObjectiveValue'].min():.4g}" in texts[1]
    assert len(fig.axes) == 1
    renders(fig)


def test_search_space_colours_by_objective() -> None:
    df = tuning_frame(6)
    fig = plots.search_space(df, "eta", "max_depth")
    assert len(fig.axes) == 2  # scatter + colour bar
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "linear"  # eta spans > 2 decades
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("eta", "max_depth")
    assert f"best: {df['FinalObjectiveValue'].max():.4g}" in legend_texts(ax)
    categorical = df.assign(booster=["gbtree", "dart"] * 6)
    fig = plots.search_space(categorical, "booster", "eta", logy=False)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["dart", "gbtree"]
    assert fig.axes[0].get_yscale() == "linear"
    renders(fig)


def test_drift_plot_numeric_reports_ks_distance(bank: pd.DataFrame) -> None:
    from scipy.stats import ks_2samp

    current = bank.assign(age=bank["age"] + 5)
    fig = plots.drift_plot(bank, current, "age")
    ax = fig.axes[0]
    expected = ks_2samp(bank["age"], current["age"]).statistic
    assert ax.get_title() == f"Drift in age: L∞ distance = {expected:.3f}"
    assert legend_texts(ax)[0].startswith("baseline (n=400") and legend_texts(ax)[1].startswith("current")
    renders(fig)


def test_drift_plot_categorical_from_series() -> None:
    baseline = pd.Series(["a"] * 50 + ["b"] * 50)
    current = pd.Series(["a"] * 20 + ["b"] * 60 + ["c"] * 20)
    fig = plots.drift_plot(baseline, current, "segment")
    ax = fig.axes[0]
    assert ax.get_title() == "Drift in segment: L∞ distance = 0.300"  # share of "a" fell from 50 % to 20 %
    assert [t.get_text() for t in ax.get_xticklabels()] == ["b", "a", "c"]
    assert len(ax.patches) == 6


def test_leaderboard_sorts_best_first() -> None:
    df = pd.DataFrame({"CandidateName": ["c1", "c2", "c3", "c4"], "auc": [0.78, 0.81, np.nan, 0.79]})
    fig = plots.leaderboard(df, "auc", "CandidateName")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["c2", "c4", "c1"]  # NaN dropped
    assert [t.get_text() for t in ax.texts] == ["0.81", "0.79", "0.78"]
    assert ax.patches[0].get_facecolor() != ax.patches[1].get_facecolor()  # winner highlighted
    fig = plots.leaderboard(df, "auc", "CandidateName", maximize=False, top=2)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["c1", "c4"]
    assert "lower is better" in fig.axes[0].get_title()


def test_ab_test_shows_share_and_auc_per_phase_and_variant() -> None:
    index = pd.MultiIndex.from_product([["50/50", "shifted"], ["A", "B"]], names=["phase", "variant"])
    metrics = pd.DataFrame({"share": [0.52, 0.48, 0.91, 0.09], "AUC": [0.80, 0.77, 0.79, np.nan]}, index=index)
    fig = plots.ab_test(metrics, {"50/50": {"A": 0.5, "B": 0.5}, "shifted": {"A": 0.9, "B": 0.1}})
    share, auc = fig.axes
    assert [t.get_text() for t in share.get_xticklabels()] == ["50/50", "shifted"]
    assert sorted(round(p.get_height(), 2) for p in share.patches) == [0.09, 0.48, 0.52, 0.91]
    assert [t.get_text() for t in auc.texts] == ["0.8", "0.79", "0.77"]  # a variant without both classes: no bar label
    assert len(share.collections) == 4  # the configured weights, one tick per bar
    renders(fig)


# The Immersion Day pipeline as Pipeline.definition() compiles it (abridged): references, not list order, give the DAG
IMMERSION_DAY_DEFINITION = {
    "Version": "2020-12-01",
    "Parameters": [{"Name": "AucThreshold", "Type": "Float", "DefaultValue": 0.7}],
    "Steps": [
        {"Name": "Evaluate", "Type": "Processing", "Arguments": {"ProcessingInputs": [
            {"S3Input": {"S3Uri": {"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}}},
            {"S3Input": {"S3Uri": {
                "Get": "Steps.Preprocess.ProcessingOutputConfig.Outputs['test'].S3Output.S3Uri"}}}]}},
        {"Name": "Preprocess", "Type": "Processing", "Arguments": {"ProcessingInputs": []}},
        {"Name": "Train", "Type": "Training", "Arguments": {"InputDataConfig": [{"DataSource": {"S3DataSource": {
            "S3Uri": {"Get": "Steps.Preprocess.ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri"}}}}]}},
        {"Name": "CheckAuc", "Type": "Condition", "Arguments": {
            "Conditions": [{"Type": "GreaterThanOrEqualTo", "RightValue": {"Get": "Parameters.AucThreshold"},
                            "LeftValue": {"Std:JsonGet": {"PropertyFile": {
                                "Get": "Steps.Evaluate.PropertyFiles.EvaluationReport"}, "Path": "auc"}}}],
            "IfSteps": [{"Name": "Register", "Type": "RegisterModel", "Arguments": {"InferenceSpecification": {
                "Containers": [{"ModelDataUrl": {"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}}]}}}],
            "ElseSteps": [{"Name": "AucTooLow", "Type": "Fail", "Arguments": {"ErrorMessage": "too low"}}]}},
        {"Name": "Notify", "Type": "Lambda", "DependsOn": ["Preprocess"], "Arguments": {}},
    ],
}


def test_pipeline_graph_finds_data_branch_and_explicit_edges() -> None:
    import json

    steps, edges = plots.pipeline_graph(json.dumps(IMMERSION_DAY_DEFINITION))
    assert steps == {"Evaluate": "Processing", "Preprocess": "Processing", "Train": "Training",
                     "CheckAuc": "Condition", "Notify": "Lambda", "Register": "RegisterModel", "AucTooLow": "Fail"}
    assert set(edges) == {("Train", "Evaluate", "data"), ("Preprocess", "Evaluate", "data"),
                          ("Preprocess", "Train", "data"), ("Evaluate", "CheckAuc", "data"),
                          ("CheckAuc", "Register", "if"), ("CheckAuc", "AucTooLow", "else"),
                          ("Train", "Register", "data"), ("Preprocess", "Notify", "after")}


def test_pipeline_dag_lays_steps_out_in_dependency_order_and_colours_statuses() -> None:
    summaries = [  # ListPipelineExecutionSteps: newest first; the else branch never ran
        {"StepName": "Register", "StepStatus": "Succeeded"},
        {"StepName": "CheckAuc", "StepStatus": "Succeeded"},
        {"StepName": "Evaluate", "StepStatus": "Succeeded"},
        {"StepName": "Train", "StepStatus": "Failed"},
        {"StepName": "Preprocess", "StepStatus": "Succeeded", "CacheHitResult": {"SourcePipelineExecutionArn": "x"}},
    ]
    fig = plots.pipeline_dag(IMMERSION_DAY_DEFINITION, summaries, title="Run 2")
    ax = fig.axes[0]
    names = {t.get_text(): t.get_position() for t in ax.texts if t.get_fontweight() == "bold"}
    x = {name: position[0] for name, position in names.items()}
    assert x["Preprocess"] < x["Train"] < x["Evaluate"] < x["CheckAuc"] < x["Register"] == x["AucTooLow"]
    assert x["Notify"] == x["Train"]
    labels = [t.get_text() for t in ax.texts]
    assert "Processing · cache hit" in labels and "Training · Failed" in labels and "Fail · not run" in labels
    assert {"true", "false"} <= set(labels)
    arrows = [a for a in ax.texts if getattr(a, "arrow_patch", None) is not None]
    assert len(arrows) == 6, "Train → Register and Preprocess → Evaluate are implied by longer paths"
    assert ax.get_title() == "Run 2"
    renders(fig)
    assert "not run" not in " ".join(t.get_text() for t in plots.pipeline_dag(IMMERSION_DAY_DEFINITION).axes[0].texts)


def test_pipeline_dag_refuses_a_cycle() -> None:
    cyclic = {"Steps": [{"Name": "A", "Type": "Processing", "Arguments": {"x": {"Get": "Steps.B.x"}}},
                        {"Name": "B", "Type": "Processing", "Arguments": {"x": {"Get": "Steps.A.x"}}}]}
    with pytest.raises(ValueError, match="cycle"):
        plots.pipeline_dag(cyclic)


def test_every_plot_accepts_an_axes_and_leaves_global_style_alone(bank: pd.DataFrame) -> None:
    before = dict(matplotlib.rcParams)
    outer = Figure(figsize=(28, 10), layout="constrained")
    axes = outer.subplots(2, 4).ravel()
    y01 = (bank["y"] == "yes").astype(int)
    calls = [
        lambda ax: plots.target_rate_by_category(bank, "job", ax=ax),
        lambda ax: plots.correlation_heatmap(bank, ax=ax),
        lambda ax: plots.confusion_matrix_plot(y01, (bank["score"] > 0.5).astype(int), ax=ax),
        lambda ax: plots.feature_importance({"a": 1.0, "b": 2.0}, ax=ax),
        lambda ax: plots.metric_curves({"validation:auc": [0.7, 0.8, 0.75]}, ax=ax),
        lambda ax: plots.tuning_progress(tuning_frame(1), ax=ax),
        lambda ax: plots.drift_plot(bank, bank, "duration", ax=ax),
        lambda ax: plots.leaderboard(pd.DataFrame({"n": ["a", "b"], "m": [1.0, 2.0]}), "m", "n", ax=ax),
    ]
    for ax, call in zip(axes, calls, strict=True):
        assert call(ax) is outer
        assert ax.get_title()
    renders(outer)
    assert dict(matplotlib.rcParams) == before


def test_figures_render_as_png_in_ipython_without_pyplot():
    """Notebooks show the returned Figure; IPython must know how to render it (no pyplot involved)."""
    import base64

    from IPython.core.interactiveshell import InteractiveShell

    from helpers import plots

    shell = InteractiveShell.instance()
    plots._show_figures_inline()
    fig = plots.confusion_matrix_plot(np.array([0, 1, 1, 0]), np.array([0, 1, 0, 0]))
    data, _ = shell.display_formatter.format(fig)
    png = data.get("image/png", "")
    assert base64.b64decode(png)[:4] == b"\x89PNG" if isinstance(png, str) else png[:4] == b"\x89PNG"
