"""``tools/run_workshop.py`` on throwaway notebooks in a tmp dir: parameters, failures, summary, HTML.

These start real kernels but need no emulator, so they take seconds and are not marked slow:
they keep the tool honest even before (or without) the real notebooks.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from tools import run_workshop
from tools.run_workshop import Result, format_summary, parse_parameters, select_notebooks


def sample(path: Path, *sources: str, headline: str | None = None) -> Path:
    """A notebook: a ``parameters`` cell (``n = 1``), ``sources`` as code cells, an optional headline cell."""
    cells = [new_markdown_cell("# sample"), new_code_cell("n = 1", metadata={"tags": ["parameters"]})]
    cells += [new_code_cell(source) for source in sources]
    if headline is not None:
        cells.append(new_code_cell(headline, metadata={"tags": ["headline"]}))
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(new_notebook(cells=cells), path)
    return path


@pytest.fixture
def jupyter_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """run_workshop points JUPYTER_PATH at its kernelspec; undo that after the test."""
    monkeypatch.setenv("JUPYTER_PATH", os.environ.get("JUPYTER_PATH", ""))


def test_parse_parameters() -> None:
    assert parse_parameters(["sample_fraction=0.2", "mode=local", "num_round=20", "flag=True", "name='x y'",
                             "hosts=[1, 2]", "empty="]) == {
        "sample_fraction": 0.2, "mode": "local", "num_round": 20, "flag": True, "name": "x y", "hosts": [1, 2],
        "empty": ""}
    with pytest.raises(ValueError, match="NAME=VALUE"):
        parse_parameters(["sample_fraction"])


def test_select_notebooks(tmp_path: Path) -> None:
    for name in ("00_setup", "01_features", "02_training"):
        (tmp_path / f"{name}.ipynb").write_text("{}")
    (tmp_path / "scratch.ipynb").write_text("{}")
    assert [p.stem for p in select_notebooks(tmp_path)] == ["00_setup", "01_features", "02_training"]
    assert [p.stem for p in select_notebooks(tmp_path, ["02", "00_setup.ipynb"])] == ["00_setup", "02_training"]
    with pytest.raises(ValueError, match="matches no notebook"):
        select_notebooks(tmp_path, ["07"])


def test_summary_table() -> None:
    table = format_summary([
        Result("00_setup", True, 12.34, Path("x"), "bucket ready"),
        Result("02_training", False, 3.0, Path("y"), "", "ValueError: bad num_round\nTraceback..."),
    ])
    lines = table.splitlines()
    assert lines[0].split() == ["notebook", "status", "seconds", "headline"]
    assert "ok" in lines[2] and "12.3" in lines[2] and lines[2].endswith("bucket ready")
    assert "FAILED: ValueError: bad num_round" in lines[3] and "Traceback" not in table


def test_headline_of_reads_stream_or_result() -> None:
    cell = new_code_cell("", metadata={"tags": ["headline"]})
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="test AUC 0.7712\n")]
    assert run_workshop.headline_of(new_notebook(cells=[new_code_cell("x"), cell])) == "test AUC 0.7712"
    cell.outputs = [nbformat.v4.new_output("execute_result", data={"text/plain": "'AUC 0.77'"}, execution_count=1)]
    assert run_workshop.headline_of(new_notebook(cells=[cell])) == "'AUC 0.77'"
    assert run_workshop.headline_of(new_notebook(cells=[new_code_cell("x")])) == ""


def test_kernelspec_is_this_interpreter(tmp_path: Path, jupyter_path: None) -> None:
    from jupyter_client.kernelspec import KernelSpecManager

    run_workshop.ensure_kernelspec(tmp_path)
    spec = KernelSpecManager().get_kernel_spec(run_workshop.KERNEL_NAME)
    assert spec.argv[0] == sys.executable
    assert Path(spec.resource_dir).is_relative_to(tmp_path)


def test_run_workshop_end_to_end(tmp_path: Path, jupyter_path: None, capsys: pytest.CaptureFixture[str]) -> None:
    solutions = tmp_path / "solutions"
    sample(solutions / "00_good.ipynb", "import os\ncwd = os.getcwd()", headline='print(f"n is {n}, cwd {cwd}")')
    sample(solutions / "01_bad.ipynb", "raise ValueError('broken on purpose')", headline='print("never")')
    sample(solutions / "02_after.ipynb", headline='print("still ran")')
    build = tmp_path / "build"

    code = run_workshop.main(["--solutions", str(solutions), "--build-dir", str(build), "-p", "n=3"])

    out = capsys.readouterr()
    assert code == 1, "a failed notebook makes the run fail"
    assert "ValueError: broken on purpose" in out.err, "the failing cell's error is shown"
    rows = {line.split()[0]: line for line in out.out.splitlines() if line[:2].isdigit()}
    assert f"n is 3, cwd {solutions}" in rows["00_good"] and " ok " in rows["00_good"]
    assert "FAILED: ValueError: broken on purpose" in rows["01_bad"]
    assert "still ran" in rows["02_after"], "the run continues after a failure"
    for name in ("00_good", "01_bad", "02_after"):
        assert (build / "notebooks" / f"{name}.ipynb").exists()
        assert (build / "html" / f"{name}.html").read_text().lstrip().lower().startswith("<!doctype html")
    assert json.loads((build / "notebooks" / "01_bad.ipynb").read_text())["metadata"]["papermill"]["exception"]


def test_run_workshop_only_and_no_html(tmp_path: Path, jupyter_path: None, capsys: pytest.CaptureFixture[str]) -> None:
    solutions = tmp_path / "solutions"
    sample(solutions / "00_a.ipynb", headline='print("a")')
    sample(solutions / "01_b.ipynb", headline='print("b")')
    build = tmp_path / "build"
    assert run_workshop.main(["--solutions", str(solutions), "--build-dir", str(build), "--only", "01",
                              "--no-html"]) == 0
    assert [p.name for p in (build / "notebooks").iterdir()] == ["01_b.ipynb"]
    assert not (build / "html").exists()
    assert "01_b" in capsys.readouterr().out


def test_html_export_shows_a_widgets_static_copy(tmp_path: Path) -> None:
    """With its state saved (as papermill saves it) a widget would still be an empty box offline; its copy shows."""
    view = {"version_major": 2, "version_minor": 0, "model_id": "m1"}
    cell = nbformat.v4.new_code_cell("explorer", outputs=[nbformat.v4.new_output(
        "display_data", data={"application/vnd.jupyter.widget-view+json": view, "text/plain": "VBox(...)",
                              "text/html": '<div class="workshop-widget-static">threshold: <b>0.50</b></div>'})])
    nb = nbformat.v4.new_notebook(cells=[cell], metadata={"widgets": {
        "application/vnd.jupyter.widget-state+json": {"state": {"m1": {}}, "version_major": 2, "version_minor": 0}}})
    executed = tmp_path / "nb.ipynb"
    nbformat.write(nb, executed)
    page = run_workshop.export_html(executed, tmp_path / "nb.html").read_text(encoding="utf-8")
    assert '<div class="workshop-widget-static">threshold: <b>0.50</b></div>' in page
