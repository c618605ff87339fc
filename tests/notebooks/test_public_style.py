"""``examples/public_style_xgboost.ipynb``: a notebook written as the public Immersion Day ones are, run end to end.

The public ``feature-engineering-and-training`` notebooks are SageMaker SDK V3 and boto3 only, retrieve the
legacy ``xgboost:latest`` image, train it with ``silent=0``, split with ``np.split`` inside a scikit-learn
1.2-1 processing job, deploy, predict and clean up. Ours does the same with one set-up cell in front; these
tests check that it keeps that shape (cheap, no kernel) and that it runs against the emulator (papermill,
with the watchdog engine the other notebook tests use).
"""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest
from test_notebooks import NOTEBOOK_TIMEOUT, notebook_session, run  # noqa: F401 (a fixture)

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "examples" / "public_style_xgboost.ipynb"
EXECUTED = ROOT / "build" / "notebooks" / NOTEBOOK.name


def code_cells() -> list[str]:
    return [cell.source for cell in nbformat.read(NOTEBOOK, as_version=4).cells if cell.cell_type == "code"]


def imported_modules(source: str) -> set[str]:
    tree = ast.parse("\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("!", "%"))))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_written_as_the_public_notebooks_are():
    cells = code_cells()
    parameters = nbformat.read(NOTEBOOK, as_version=4).cells[1]
    assert "parameters" in parameters.metadata.get("tags", []), "papermill's parameters cell comes first"
    helper_cells = [i for i, source in enumerate(cells) if any(m.split(".")[0] == "helpers"
                                                               for m in imported_modules(source))]
    assert helper_cells == [1], "helpers is imported once, in the set-up cell right after the parameters"
    everything = "\n".join(cells)
    for phrase in ('version="latest"', '"silent": 0', "np.split(", 'version="1.2-1"', "ModelTrainer(",
                   "ModelBuilder(", "delete_endpoint("):
        assert phrase in everything, phrase
    modules = set().union(*(imported_modules(source) for source in cells))
    v2_only = {"sagemaker.estimator", "sagemaker.inputs", "sagemaker.sklearn", "sagemaker.xgboost",
               "sagemaker.predictor", "sagemaker.serializers"}
    assert not modules & v2_only, "SDK V3 only"


@pytest.mark.slow
@pytest.mark.timeout(NOTEBOOK_TIMEOUT + 120)
def test_runs_end_to_end_against_the_emulator(notebook_session, tmp_path):  # noqa: F811 (the imported fixture)
    result = run(NOTEBOOK, EXECUTED, {"mode": "local"}, tmp_path)  # the watchdog engine; one retry of a kernel hang
    assert result.ok, f"{NOTEBOOK.name} {result.status}\nexecuted copy: {result.output}\n\n{result.error}"
    executed = nbformat.read(EXECUTED, as_version=4)
    printed = "".join(output.get("text", "") for cell in executed.cells if cell.cell_type == "code"
                      for output in cell.get("outputs", []))
    assert "accuracy on the test split" in printed and "deleted" in printed
