"""The ``CreateXgboostReport`` rule: the XGBoost training report, as a notebook and its HTML.

SageMaker's report rule writes ``CreateXgboostReport/xgboost_report.ipynb`` and ``xgboost_report.html``
under the rule's output; its sections are the saved metrics over the steps, the feature importance,
the hyperparameters and, from ``labels`` and ``predictions``, the confusion matrix. This one builds
those sections from the trial (plots as embedded PNGs). It never fires: its status ends
``NoIssuesFound`` once training has ended.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import numpy as np

from .rules import Rule
from .trial import Trial

FOLDER = "CreateXgboostReport"


def _figure_png(draw: Any) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 3.5))
    draw(axes)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


class CreateXgboostReport(Rule):
    NAME = "CreateXgboostReport"

    def __init__(self, trial: Trial, parameters: dict[str, str]) -> None:
        super().__init__(trial, parameters)
        self.sections: list[tuple[str, str, str | None]] = []  # (title, html text, png)

    def finish(self) -> bool:
        self._metrics()
        self._importance()
        self._hyperparameters()
        self._confusion()
        return False

    def _series(self, name: str) -> tuple[list[int], list[float]]:
        steps = sorted(self.trial.locations.get(name, {}))
        return steps, [self.trial.scalar(name, s) for s in steps]

    def _metrics(self) -> None:
        names = self.trial.tensor_names(regex=r"^[a-zA-Z]+-[a-zA-Z0-9@:]+$")
        if not names:
            return

        def draw(axes: Any) -> None:
            for name in names:
                axes.plot(*self._series(name), marker=".", label=name)
            axes.set_xlabel("step (boosting round)")
            axes.legend()

        rows = "".join(f"<tr><td>{html.escape(n)}</td><td>{self._series(n)[1][-1]:.6g}</td></tr>" for n in names)
        self.sections.append(("Metrics", f"<table><tr><th>metric</th><th>last value</th></tr>{rows}</table>",
                              _figure_png(draw)))

    def _importance(self) -> None:
        names = self.trial.tensor_names(regex=r"^feature_importance/gain/")
        if not names:
            return
        last = max(self.trial.steps())
        scores = sorted(((self.trial.scalar(n, last), n.rsplit("/", 1)[-1]) for n in names
                         if self.trial.has(n, last)), reverse=True)[:20]

        def draw(axes: Any) -> None:
            axes.barh([f for _, f in scores][::-1], [s for s, _ in scores][::-1])
            axes.set_xlabel("normalised gain")

        self.sections.append(("Feature importance (gain)", f"<p>At step {last}.</p>", _figure_png(draw)))

    def _hyperparameters(self) -> None:
        names = self.trial.tensor_names(regex=r"^hyperparameters/")
        if not names:
            return
        rows = "".join(
            f"<tr><td>{html.escape(n.split('/', 1)[1])}</td>"
            f"<td>{html.escape(', '.join(map(str, np.asarray(self.trial.value(n, min(self.trial.locations[n]))).reshape(-1))))}</td></tr>"  # noqa: E501
            for n in names)
        self.sections.append(("Hyperparameters", f"<table>{rows}</table>", None))

    def _confusion(self) -> None:
        steps = [s for s in self.trial.steps() if self.trial.has("labels", s) and self.trial.has("predictions", s)]
        if not steps:
            return
        y = np.asarray(self.trial.value("labels", steps[-1])).reshape(-1)
        p = np.asarray(self.trial.value("predictions", steps[-1]))
        p = np.argmax(p.reshape(len(y), -1), axis=1) if p.ndim > 1 else (p > 0.5) if set(np.unique(y)) <= {0, 1} else p
        classes = np.unique(np.concatenate([y, np.rint(p)]))
        matrix = np.array([[int(np.sum((y == a) & (np.rint(p) == b))) for b in classes] for a in classes])
        header = "".join(f"<th>predicted {c:g}</th>" for c in classes)
        rows = "".join(f"<tr><th>actual {c:g}</th>{''.join(f'<td>{v}</td>' for v in row)}</tr>"
                       for c, row in zip(classes, matrix, strict=True))
        self.sections.append((f"Confusion matrix (validation data, step {steps[-1]})",
                              f"<table><tr><th></th>{header}</tr>{rows}</table>", None))

    def report(self, out_dir: Any) -> None:
        import nbformat

        folder = Path(out_dir) / FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        parts = ["<html><head><meta charset='utf-8'><title>SageMaker Debugger XGBoost Training Report</title>"
                 "</head><body><h1>SageMaker Debugger XGBoost Training Report</h1>"]
        cells = [nbformat.v4.new_markdown_cell("# SageMaker Debugger XGBoost Training Report")]
        for title, text, png in self.sections:
            image = f"<img src='data:image/png;base64,{png}'/>" if png else ""
            parts.append(f"<h2>{html.escape(title)}</h2>{text}{image}")
            cells.append(nbformat.v4.new_markdown_cell(f"## {title}\n\n{text}\n\n{image}"))
        parts.append("</body></html>")
        (folder / "xgboost_report.html").write_text("".join(parts))
        nbformat.write(nbformat.v4.new_notebook(cells=cells), str(folder / "xgboost_report.ipynb"))
