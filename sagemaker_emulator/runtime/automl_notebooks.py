"""The data exploration notebook an AutoML job writes (``AutoMLJobArtifacts.DataExplorationNotebookLocation``).

SageMaker's notebook reports the data set's statistics and the issues it found; this one holds the same
kind of summary, computed when the job analyses the data: the target's distribution and one row per
column (type, missing values, distinct values, an example), then a cell that loads the job's training
split from S3 for a learner's own exploration. A valid ``.ipynb`` (nbformat 4) without outputs.
"""

from __future__ import annotations

import json
from typing import Any

NOTEBOOK_NAME = "SageMakerAutopilotDataExplorationNotebook.ipynb"


def _markdown(text: str) -> dict[str, Any]:
    return {"cell_type": "markdown", "metadata": {}, "source": text.splitlines(keepends=True)}


def _code(text: str) -> dict[str, Any]:
    return {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
            "source": text.splitlines(keepends=True)}


def _cell_text(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")[:40]


def exploration_notebook(frame: Any, *, job: str, target: str, problem_type: str, objective: str,
                         source: str, train_uri: str) -> bytes:
    """The notebook's bytes for ``frame`` (the job's input data, target included)."""
    rows, columns = frame.shape
    counts = frame[target].value_counts()
    if problem_type == "Regression":
        described = frame[target].describe()
        target_table = "| statistic | value |\n|---|---|\n" + "".join(
            f"| {k} | {v:.6g} |\n" for k, v in described.items())
    else:
        target_table = "| value | rows | share |\n|---|---|---|\n" + "".join(
            f"| {_cell_text(k)} | {n} | {n / rows:.1%} |\n" for k, n in counts.items())
    column_rows = []
    for name in frame.columns:
        column = frame[name]
        missing = column.isna().mean()
        example = column.dropna().iloc[0] if column.notna().any() else ""
        column_rows.append(f"| {_cell_text(name)}{' (target)' if name == target else ''} | {column.dtype} | "
                           f"{missing:.1%} | {column.nunique()} | {_cell_text(example)} |\n")
    bucket, _, key = train_uri[5:].partition("/")
    cells = [
        _markdown(f"# Data exploration: AutoML job {job}\n\n"
                  f"The input data at `{source}`: **{rows} rows, {columns} columns**. Target attribute "
                  f"`{target}`, problem type **{problem_type}**, objective **{objective}**.\n\n"
                  "Written by the local SageMaker emulator while the job analysed the data; SageMaker's own "
                  "report has more sections (duplicate rows, anomalies, prediction power)."),
        _markdown(f"## The target `{target}`\n\n{target_table}"),
        _markdown("## The columns\n\n| column | type | missing | distinct | example |\n|---|---|---|---|---|\n"
                  + "".join(column_rows)),
        _markdown("## Explore it yourself\n\nThe job's training split (the validation split is beside it):"),
        _code("import io\n\nimport boto3\nimport pandas as pd\n\n"
              f"body = boto3.client(\"s3\").get_object(Bucket={bucket!r}, Key={key + 'train.csv'!r})[\"Body\"].read()\n"
              "df = pd.read_csv(io.BytesIO(body))\ndf.describe(include=\"all\").T"),
    ]
    notebook = {"cells": cells, "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                                            "name": "python3"},
                                             "language_info": {"name": "python"}},
                "nbformat": 4, "nbformat_minor": 5}
    for index, cell in enumerate(cells):
        cell["id"] = f"cell-{index}"
    return json.dumps(notebook, indent=1).encode()
