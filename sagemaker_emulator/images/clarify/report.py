"""Clarify's report: ``report.ipynb`` and ``report.html`` beside ``analysis.json``, titled by ``methods.report``.

The real image renders a notebook of tables and charts (and a PDF); this one writes the same
tables — each bias metric with its description and value per facet, the global SHAP values in
order — as a notebook and its HTML (no PDF locally).
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any


def _sections(result: dict[str, Any]) -> list[tuple[str, list[tuple[str, str, str]]]]:
    sections = []
    for key, title in (("pre_training_bias_metrics", "Pre-training bias metrics"),
                       ("post_training_bias_metrics", "Post-training bias metrics")):
        part = result.get(key)
        if part:
            rows = [(f"{facet} = {entry['value_or_threshold']}: {m['name']}", m["description"], str(m["value"]))
                    for facet, entries in part["facets"].items() for entry in entries for m in entry["metrics"]]
            sections.append((f"{title} (label {part['label']} = {part['label_value_or_threshold']})", rows))
    shap = (result.get("explanations") or {}).get("kernel_shap", {}).get("label0")
    if shap:
        ordered = sorted(shap["global_shap_values"].items(), key=lambda kv: -abs(kv[1]))
        rows = [(feature, "global SHAP value", f"{value:.6g}") for feature, value in ordered]
        sections.append((f"Feature attributions (Kernel SHAP, expected value {shap['expected_value']:.6g})", rows))
    return sections


def _markdown_cell(index: int, text: str) -> dict[str, Any]:
    return {"cell_type": "markdown", "id": f"report-{index}", "metadata": {}, "source": text}


def write_report(out: Path, result: dict[str, Any], settings: dict[str, Any]) -> None:
    """The notebook is written as nbformat 4.5 JSON directly: importing nbformat (and its schema validation)
    took 2-4 s of a job that otherwise finishes in seconds."""
    title = settings.get("title") or "Analysis Report"
    name = settings.get("name") or "report"
    cells = [_markdown_cell(0, f"# {title}")]
    parts = [f"<html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head><body>"
             f"<h1>{html.escape(title)}</h1>"]
    for heading, rows in _sections(result):
        table = "".join(f"<tr><td>{html.escape(a)}</td><td>{html.escape(b)}</td><td>{html.escape(c)}</td></tr>"
                        for a, b, c in rows)
        parts.append(f"<h2>{html.escape(heading)}</h2><table>{table}</table>")
        markdown = "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows)
        cells.append(_markdown_cell(len(cells), f"## {heading}\n\n| | | value |\n|---|---|---|\n{markdown}"))
    parts.append("</body></html>")
    (out / f"{name}.html").write_text("".join(parts))
    notebook = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (out / f"{name}.ipynb").write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")
