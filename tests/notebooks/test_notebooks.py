"""Every solution runs end to end against the emulator; every lab runs up to its first exercise; nbval-lax.

One module on purpose: pytest runs its tests in file order, so the papermill runs write
``build/notebooks/*.ipynb`` before the nbval tests re-execute those copies and compare the
``# NBVAL_CHECK_OUTPUT`` cells. One emulator state directory serves the whole session (the
notebooks build on each other: 01 writes the channels 02 trains on); each notebook's own
``helpers.workshop.setup(mode)`` starts or reuses the daemon for it, exactly as for a learner.

Environment:
* ``WORKSHOP_TEST_PARAMETERS``: JSON object of papermill parameters, e.g. ``{"sample_fraction": 0.2}``;
* ``SAGEMAKER_EMULATOR_STATE_DIR``: the state directory to use (default: a fresh tmp dir);
* ``WORKSHOP_TEST_CELL_TIMEOUT`` / ``WORKSHOP_TEST_NOTEBOOK_TIMEOUT``: seconds (default 1200 / 3600);
* ``WORKSHOP_TEST_IDLE_TIMEOUT``: seconds the kernel may be idle while a cell's reply is missing (default 60).

No run waits forever: a cell or notebook over budget, or a kernel idle while the client waits,
fails the test at once naming the notebook, cell and first line (``tools/notebook_watchdog.py``);
pytest-timeout is only the last resort behind those budgets.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from tools import make_labs, run_workshop

ROOT = Path(__file__).resolve().parents[2]
SOLUTIONS = ROOT / "solutions"
LABS = ROOT / "labs"
BUILD = ROOT / "build"
EXECUTED = BUILD / "notebooks"
LAB_RUNS = BUILD / "lab-runs"
SANITIZE = Path(__file__).with_name("nbval_sanitize.cfg")
PARAMETERS_ENV = "WORKSHOP_TEST_PARAMETERS"
HANG = "NotebookHang"  # how tools/notebook_watchdog.py names a kernel that went idle without replying

# The notebooks the workshop has promised so far (a missing one is reported as skipped, not
# silently absent); any other solutions/NN_*.ipynb is picked up by the glob.
EXPECTED = ("00_setup", "01_feature_engineering", "02_training", "03_tuning", "04_deployment", "05_debug_and_explain",
            "06_monitoring", "07_automl", "08_mlops")
NBVAL_NOTEBOOKS = ("00_setup", "01_feature_engineering")
CELL_TIMEOUT = float(os.environ.get("WORKSHOP_TEST_CELL_TIMEOUT", "1200"))
NOTEBOOK_TIMEOUT = int(os.environ.get("WORKSHOP_TEST_NOTEBOOK_TIMEOUT", "3600"))
IDLE_TIMEOUT = float(os.environ.get("WORKSHOP_TEST_IDLE_TIMEOUT", str(run_workshop.DEFAULT_IDLE_TIMEOUT)))
#: pytest-timeout's limit leaves the notebook budget room to fail first, with the cell named, and shut down
LAST_RESORT_TIMEOUT = NOTEBOOK_TIMEOUT + 120

pytestmark = [pytest.mark.slow, pytest.mark.timeout(LAST_RESORT_TIMEOUT)]


def notebook_names() -> list[str]:
    return sorted(set(EXPECTED) | {path.stem for path in SOLUTIONS.glob(make_labs.NOTEBOOK_GLOB)})


@pytest.fixture(scope="session")
def workshop_parameters() -> dict[str, Any]:
    raw = os.environ.get(PARAMETERS_ENV) or "{}"
    try:
        parameters = json.loads(raw)
    except json.JSONDecodeError as exc:
        pytest.fail(f"{PARAMETERS_ENV} is not JSON ({exc}): {raw!r}", pytrace=False)
    if not isinstance(parameters, dict):
        pytest.fail(f"{PARAMETERS_ENV} must be a JSON object such as {{\"sample_fraction\": 0.2}}; got {raw!r}",
                    pytrace=False)
    return parameters


@pytest.fixture(scope="session")
def notebook_session(emulator_state: Path) -> Iterator[Path]:
    """This venv's kernel, and the session's emulator state dir (see ``emulator_state`` in conftest.py)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", os.environ.get("JUPYTER_PATH", ""))  # restored after ensure_kernelspec edits it
        run_workshop.ensure_kernelspec(BUILD)
        yield emulator_state


def run(path: Path, output: Path, parameters: dict[str, Any], cwd: Path) -> run_workshop.Result:
    """Run a notebook; a kernel hang that the watchdog names is retried once, with a fresh kernel.

    Why one retry: a kernel that publishes ``idle`` but never sends the cell's ``execute_reply`` is a
    bug of the kernel stack, not of the notebook (it struck once in about 15 full runs, on an import
    cell, with ipykernel 7.4). The watchdog turns it into a failure within ``IDLE_TIMEOUT`` instead of a
    hang; the retry keeps CI honest about the notebooks themselves. A second hang fails the test, and
    the first is reported as a warning so it stays visible.
    """
    result = run_workshop.run_notebook(path, output, parameters, cwd=cwd, timeout=CELL_TIMEOUT,
                                       notebook_timeout=NOTEBOOK_TIMEOUT, idle_timeout=IDLE_TIMEOUT, progress=False)
    if result.ok or HANG not in result.error:
        return result
    warnings.warn(f"{path.name}: {result.error.strip().splitlines()[0][:300]}; retrying once with a fresh kernel",
                  stacklevel=2)
    return run_workshop.run_notebook(path, output, parameters, cwd=cwd, timeout=CELL_TIMEOUT,
                                     notebook_timeout=NOTEBOOK_TIMEOUT, idle_timeout=IDLE_TIMEOUT, progress=False)


@pytest.mark.parametrize("name", notebook_names())
def test_solution_runs_end_to_end(name: str, workshop_parameters: dict[str, Any], notebook_session: Path) -> None:
    path = SOLUTIONS / f"{name}.ipynb"
    if not path.exists():
        pytest.skip(f"solutions/{name}.ipynb does not exist yet")
    result = run(path, EXECUTED / path.name, workshop_parameters, SOLUTIONS)
    if not result.ok:
        pytest.fail(f"solutions/{name}.ipynb {result.status}\nexecuted copy: {result.output}\n\n{result.error}",
                    pytrace=False)
    lines = result.headline.splitlines()
    assert len(lines) == 1, f"the 'headline' cell of {name} must print exactly one line; it printed {lines!r}"
    assert_cost_boxes_are_not_maths(result.output)
    assert_no_check_failed(result.output)


def assert_no_check_failed(executed: Path) -> None:
    """An exercise check prints ❌ rather than raising (so "Run All" goes on in labs); in a solution, a failure."""
    for index, cell in enumerate(nbformat.read(executed, as_version=4).cells):
        for output in cell.get("outputs", []):
            failed = [line for line in str(output.get("text", "")).splitlines() if line.startswith("❌")]
            assert not failed, f"{executed.name} cell {index}: a check failed: {failed[0]}"


def assert_cost_boxes_are_not_maths(executed: Path) -> None:
    """Each cost box the run displayed is HTML that MathJax skips (its "$" would otherwise become LaTeX)."""
    for index, cell in enumerate(nbformat.read(executed, as_version=4).cells):
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "would cost and take on AWS" not in str(data.get("text/html", "")) + str(data.get("text/markdown", "")):
                continue
            assert "text/markdown" not in data, f"{executed.name} cell {index}: the cost box is Markdown"
            assert "mathjax_ignore" in data.get("text/html", ""), f"{executed.name} cell {index}: typesettable box"


@pytest.mark.parametrize("name", notebook_names())
def test_lab_runs_all_past_unanswered_exercises(name: str, workshop_parameters: dict[str, Any],
                                               notebook_session: Path) -> None:
    """"Run All" on a lab nobody has answered yet reaches the end, each exercise's check saying so in one line.

    That is what each lab's header promises: an exercise not done yet does not stop the run, so a learner meets
    every exercise.
    """
    lab = LABS / f"{name}.ipynb"
    if not lab.exists():
        pytest.skip(f"labs/{name}.ipynb does not exist (yet): run make labs")
    result = run(lab, LAB_RUNS / lab.name, workshop_parameters, LABS)
    if not result.ok:
        pytest.fail(f"labs/{name}.ipynb stops before its end with no answers written: {result.status}\n"
                    f"executed copy: {result.output}\n\n{result.error}", pytrace=False)
    executed = nbformat.read(result.output, as_version=4).cells
    for index, cell in enumerate(executed):
        if "check" in cell.metadata.get("tags", []) and "checks.answer(" in cell.source:
            lines = [line for output in cell.outputs if output.get("name") == "stdout"
                     for line in output["text"].splitlines()]
            answers = cell.source.count("checks.answer(")
            # a check cell may also hold plain checks (checks.check_equal …) of the lab's own work: one ✅ line each
            marks = [line for line in lines if line.startswith(("✅ ", "❌ "))]
            # (not "every answer ❌": an answer kept outside the kernel, lab 00's object in S3, is there when the
            # solution ran first in the same emulator, as it does here)
            assert len(marks) == answers + cell.source.count("checks.check_"), (
                f"{name} cell {index}: expected one ✅/❌ line per checks.answer and per checks.check_*: {lines}")


def executed_copy(name: str, parameters: dict[str, Any]) -> Path:
    """``build/notebooks/<name>.ipynb`` as nbval's reference: the papermill run's copy, made here if missing or stale.

    Why make it rather than skip: a skip is green, so ``pytest -k nbval`` on its own used to pass without
    checking anything. In a full run ``test_solution_runs_end_to_end`` has just written a fresh copy.
    """
    executed, solution = EXECUTED / f"{name}.ipynb", SOLUTIONS / f"{name}.ipynb"
    if not executed.exists() or solution.stat().st_mtime > executed.stat().st_mtime:
        result = run(solution, executed, parameters, SOLUTIONS)
        if not result.ok:
            pytest.fail(f"solutions/{name}.ipynb {result.status}; nbval needs a successful run as its reference\n"
                        f"{result.error}", pytrace=False)
    if nbformat.read(executed, as_version=4).metadata.get("papermill", {}).get("exception"):
        pytest.fail(f"the papermill run of {name} failed; nbval needs a successful run as its reference",
                    pytrace=False)
    return executed


@pytest.mark.parametrize("name", NBVAL_NOTEBOOKS)
def test_nbval_lax(name: str, workshop_parameters: dict[str, Any], notebook_session: Path) -> None:
    """Re-execute the papermill copy with nbval; only ``# NBVAL_CHECK_OUTPUT`` cells must reproduce their output."""
    executed = executed_copy(name, workshop_parameters)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax", "--nbval-current-env",
               f"--nbval-cell-timeout={int(CELL_TIMEOUT)}", f"--timeout={NOTEBOOK_TIMEOUT}",
               "--nbval-sanitize-with", str(SANITIZE), str(executed)]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=NOTEBOOK_TIMEOUT + 60,
                          check=False)
    if proc.returncode != 0:
        tail = "\n".join(run_workshop.ANSI.sub("", proc.stdout + proc.stderr).splitlines()[-80:])
        pytest.fail(f"nbval --nbval-lax failed for build/notebooks/{name}.ipynb (exit {proc.returncode}):\n"
                    f"$ {' '.join(command)}\n{tail}", pytrace=False)
