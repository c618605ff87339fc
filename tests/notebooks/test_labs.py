"""Labs are generated correctly and in sync; committed notebooks are clean and follow the conventions.

Fast: nothing here starts a kernel. The unit tests build small notebooks in memory, so they
pin ``make_lab``'s behaviour independently of the real notebooks' content.
"""

from __future__ import annotations

import json
import re
import zlib
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from tools import make_labs
from tools.make_labs import CODE_PLACEHOLDER, EXERCISE_TAG, MARKDOWN_PLACEHOLDER, MarkerError, make_lab

ROOT = Path(__file__).resolve().parents[2]
SOLUTIONS = ROOT / "solutions"
LABS = ROOT / "labs"
SOLUTION_FILES = sorted(SOLUTIONS.glob(make_labs.NOTEBOOK_GLOB))
COMMITTED = SOLUTION_FILES + sorted(LABS.glob(make_labs.NOTEBOOK_GLOB))


def code(source: str, *tags: str, cell_id: str | None = None) -> nbformat.NotebookNode:
    cell = new_code_cell(source, metadata={"tags": list(tags)} if tags else {})
    cell.id = cell_id or f"c{zlib.crc32(source.encode())}"
    return cell


def markdown(source: str, *tags: str) -> nbformat.NotebookNode:
    cell = new_markdown_cell(source, metadata={"tags": list(tags)} if tags else {})
    cell.id = f"m{zlib.crc32(source.encode())}"
    return cell


def notebook(*cells: nbformat.NotebookNode) -> nbformat.NotebookNode:
    return new_notebook(cells=list(cells), metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                    "language": "python"}})


SAMPLE = notebook(
    markdown("# 99 · Sample\nObjectives."),
    code('mode = "local"\nseed = 42', "parameters", cell_id="params"),
    code("x = 1\n# EXERCISE 1: set y to twice x\n### BEGIN SOLUTION\ny = 2 * x\n### END SOLUTION\nprint(y)",
         cell_id="ex1"),
    code("assert y == 2", "check", cell_id="check1"),
    code("def f(v):\n    # TODO: return v squared\n    ### BEGIN SOLUTION\n    return v * v\n    ### END SOLUTION\n"
         "\n### BEGIN SOLUTION\nz = f(3)\n### END SOLUTION", cell_id="ex2"),
    markdown("Why is AUC better here?\n<!-- BEGIN SOLUTION -->\nClasses are imbalanced.\n<!-- END SOLUTION -->"),
    code("print('only for instructors')", "solution-only", cell_id="instructor"),
    code('print("sample headline 1.0")', "headline", cell_id="headline"),
)


# --------------------------------------------------------------------------- the committed notebooks


def test_labs_are_in_sync_with_solutions() -> None:
    if not SOLUTION_FILES:
        pytest.skip("no solutions/NN_*.ipynb yet")
    changes = make_labs.plan(SOLUTIONS, LABS)
    if changes:
        pytest.fail("labs/ is out of date:\n" + "\n".join(f"  {c.describe(ROOT)}" for c in changes)
                    + f"\nfix with: {make_labs.FIX_COMMAND}", pytrace=False)


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_committed_notebook_has_no_outputs(path: Path) -> None:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    dirty = [index for index, cell in enumerate(cells)
             if cell["cell_type"] == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)]
    assert not dirty, (f"{path.relative_to(ROOT)}: cells {dirty} have outputs or execution counts; fix with: "
                       ".venv/bin/python tools/make_labs.py --strip-solutions")


@pytest.mark.parametrize("path", SOLUTION_FILES, ids=lambda p: p.name)
def test_solution_starts_with_parameters_cell(path: Path) -> None:
    first_code = next((cell for cell in make_labs.read_notebook(path).cells if cell.cell_type == "code"), None)
    assert first_code is not None, f"{path.name} has no code cell"
    assert "parameters" in make_labs.tags_of(first_code), (
        f"{path.name}: the first code cell must be tagged 'parameters' (papermill injects CI's values after it)")


@pytest.mark.parametrize("path", SOLUTION_FILES, ids=lambda p: p.name)
def test_solution_has_exactly_one_headline_cell(path: Path) -> None:
    cells = make_labs.read_notebook(path).cells
    headlines = [i for i, cell in enumerate(cells) if "headline" in make_labs.tags_of(cell)]
    assert len(headlines) == 1, f"{path.name}: expected one cell tagged 'headline', found cells {headlines}"
    assert cells[headlines[0]].cell_type == "code", f"{path.name}: the 'headline' cell must be a code cell"


@pytest.mark.parametrize("path", SOLUTION_FILES, ids=lambda p: p.name)
def test_solution_generates_a_lab(path: Path) -> None:
    """Marker errors surface here with file, cell and line, even when labs/ was never regenerated."""
    make_labs.render_lab(path)


# Outside `code spans`, a "$" that is not escaped opens LaTeX in JupyterLab, Studio and VS Code.
UNESCAPED_DOLLAR = re.compile(r"(?<!\\)\$")
CODE_SPAN = re.compile(r"(`+).*?\1", re.S)


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_markdown_dollars_are_not_maths(path: Path) -> None:
    """Prices in prose ("about $170 a month") must read as money, not turn the rest of the line into a formula."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    bad = [index for index, cell in enumerate(cells) if cell["cell_type"] == "markdown"
           and UNESCAPED_DOLLAR.search(CODE_SPAN.sub("", "".join(cell["source"])))]
    assert not bad, f"{path.relative_to(ROOT)}: markdown cells {bad} hold an unescaped $ (write \\$)"


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_cost_box_is_shown_as_html(path: Path) -> None:
    """Every lab that runs jobs shows the cost box, and shows it as the HTML ``costs.aws_box`` returns.

    Wrapped in ``Markdown(...)`` its "$/h" and "$0.23" would be typeset as LaTeX in every front end but the export.
    """
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    sources = ["".join(cell["source"]) for cell in cells if cell["cell_type"] == "code"]
    boxes = [source for source in sources if "costs.aws_box(" in source]
    assert not [s for s in boxes if re.search(r"Markdown\(\s*costs\.aws_box", s)], \
        f"{path.relative_to(ROOT)}: display(costs.aws_box(...)) directly; Markdown(...) would typeset its $ signs"
    says_cost = any("would cost and take on AWS" in "".join(cell["source"]) for cell in cells)
    assert bool(boxes) == says_cost, f"{path.relative_to(ROOT)}: a 'what this would cost' section needs its box"


# --------------------------------------------------------------------------- make_lab on small notebooks


def lab_cells() -> dict[str, nbformat.NotebookNode]:
    return {cell.id: cell for cell in make_lab(SAMPLE, "solutions/99_sample.ipynb").cells}


def test_code_solution_replaced_and_prompt_kept() -> None:
    source = lab_cells()["ex1"].source
    assert source == "x = 1\n# EXERCISE 1: set y to twice x\n" + "\n".join(CODE_PLACEHOLDER) + "\nprint(y)"


def test_several_blocks_keep_their_indentation() -> None:
    lines = lab_cells()["ex2"].source.split("\n")
    assert lines[:4] == ["def f(v):", "    # TODO: return v squared", "    " + CODE_PLACEHOLDER[0],
                         "    " + CODE_PLACEHOLDER[1]]
    assert lines[-2:] == list(CODE_PLACEHOLDER)
    assert "v * v" not in "\n".join(lines) and "f(3)" not in "\n".join(lines)


def test_markdown_solution_replaced() -> None:
    md = [c for c in make_lab(SAMPLE).cells if c.cell_type == "markdown" and c.source.startswith("Why")][0]
    assert md.source == f"Why is AUC better here?\n{MARKDOWN_PLACEHOLDER}"
    assert EXERCISE_TAG in md.metadata["tags"]


def test_inline_markdown_solution_replaced() -> None:
    nb = notebook(markdown("Answer: <!-- BEGIN SOLUTION -->**42**<!-- END SOLUTION -->, then more."))
    assert make_lab(nb).cells[1].source == f"Answer: {MARKDOWN_PLACEHOLDER}, then more."


def test_check_parameters_and_headline_cells_kept_unchanged() -> None:
    cells = lab_cells()
    originals = {cell.id: cell for cell in SAMPLE.cells}
    for cell_id in ("check1", "params", "headline"):
        assert cells[cell_id].source == originals[cell_id].source
        assert cells[cell_id].metadata == originals[cell_id].metadata


def test_solution_only_cells_dropped() -> None:
    assert "instructor" not in lab_cells()
    assert "only for instructors" not in nbformat.writes(make_lab(SAMPLE))


def test_exercise_cells_tagged() -> None:
    tagged = [cell.id for cell in make_lab(SAMPLE).cells if EXERCISE_TAG in make_labs.tags_of(cell)]
    assert tagged[:2] == ["ex1", "ex2"] and len(tagged) == 3


def test_banner_and_metadata() -> None:
    lab = make_lab(SAMPLE, "solutions/99_sample.ipynb")
    assert lab.cells[0].cell_type == "markdown" and "solutions/99_sample.ipynb" in lab.cells[0].source
    assert lab.metadata["workshop"] == {"generated_from": "solutions/99_sample.ipynb", "do_not_edit": True}
    assert lab.metadata["kernelspec"]["name"] == "python3"
    assert "**Run All** does **not** stop at exercises" in lab.cells[0].source


def test_placeholders_are_statements_that_run() -> None:
    """An exercise not done yet must not stop "Run All": its cell compiles and runs, doing nothing."""
    for cell in make_lab(SAMPLE).cells:
        if cell.cell_type == "code" and EXERCISE_TAG in make_labs.tags_of(cell):
            compile(cell.source, cell.id, "exec")
    namespace: dict[str, object] = {}
    ex2 = next(cell for cell in make_lab(SAMPLE).cells if cell.id == "ex2")
    exec(compile(ex2.source, "ex2", "exec"), namespace)  # noqa: S102 - our own sample
    assert namespace["f"](3) is None and "z" not in namespace


def test_cell_ids_stable_and_input_not_modified() -> None:
    before = nbformat.writes(SAMPLE)
    lab = make_lab(SAMPLE)
    assert nbformat.writes(SAMPLE) == before
    kept = [cell.id for cell in SAMPLE.cells if "solution-only" not in make_labs.tags_of(cell)]
    assert [cell.id for cell in lab.cells] == [make_labs.BANNER_ID, *kept]


def test_missing_cell_ids_get_deterministic_ones() -> None:
    raw = json.loads(nbformat.writes(SAMPLE))
    for cell in raw["cells"]:
        del cell["id"]
    raw["nbformat_minor"] = 4
    ids = [[c.id for c in make_lab(nbformat.from_dict(json.loads(json.dumps(raw)))).cells] for _ in range(2)]
    assert ids[0] == ids[1] and len(set(ids[0])) == len(ids[0])


def test_outputs_and_counts_stripped() -> None:
    nb = notebook(code("print(1)", cell_id="p"))
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    nb.cells[0].execution_count = 3
    nb.cells[0].metadata["execution"] = {"iopub.status.busy": "2024-01-01T00:00:00"}
    nb.metadata["papermill"] = {"duration": 1.0}
    lab = make_lab(nb)
    assert lab.cells[1].outputs == [] and lab.cells[1].execution_count is None
    assert "execution" not in lab.cells[1].metadata and "papermill" not in lab.metadata
    assert make_labs.has_outputs(nb) and not make_labs.has_outputs(make_labs.strip_outputs(nb))


def test_output_is_deterministic() -> None:
    texts = {make_labs.notebook_text(make_lab(SAMPLE, "solutions/99_sample.ipynb")) for _ in range(3)}
    assert len(texts) == 1
    assert texts.pop().endswith("}\n")


@pytest.mark.parametrize(("source", "line", "words"), [
    ("a = 1\n### BEGIN SOLUTION\nb = 2", 2, "without a matching"),
    ("a = 1\n### END SOLUTION", 2, "without a '### BEGIN SOLUTION' above"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", 2, "inside the block opened on line 1"),
    ("x = 0\n#### BEGIN SOLUTION\nx = 1\n### END SOLUTION", 2, "malformed"),
    ("### BEGIN SOLUTION:\nx = 1\n### END SOLUTION", 1, "malformed"),
])
def test_unbalanced_code_markers_name_file_cell_and_line(source: str, line: int, words: str) -> None:
    nb = notebook(markdown("intro"), code(source, cell_id="bad"))
    with pytest.raises(MarkerError) as info:
        make_lab(nb, "solutions/07_broken.ipynb")
    message = str(info.value)
    assert message.startswith(f"solutions/07_broken.ipynb: cell 1 (id bad), line {line}:"), message
    assert words in message
    assert (info.value.cell, info.value.line) == (1, line)


@pytest.mark.parametrize(("source", "line"), [
    ("Q?\n<!-- BEGIN SOLUTION -->\nA.", 2),
    ("Q?\nA.\n<!-- END SOLUTION -->", 3),
    ("<!-- BEGIN SOLUTION -->\n<!-- BEGIN SOLUTION -->A<!-- END SOLUTION -->", 2),
    ("Q?\n### BEGIN SOLUTION\nA\n### END SOLUTION", 2),
])
def test_unbalanced_markdown_markers(source: str, line: int) -> None:
    with pytest.raises(MarkerError, match=rf"^solutions/x\.ipynb: cell 0 \(id m\d+\), line {line}:"):
        make_lab(notebook(markdown(source)), "solutions/x.ipynb")


# --------------------------------------------------------------------------- the command line, on a tmp tree


def write_sample(directory: Path, name: str = "99_sample.ipynb", nb: nbformat.NotebookNode = SAMPLE) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(nbformat.writes(nb), encoding="utf-8")
    return path


def run_cli(tmp_path: Path, *args: str) -> int:
    return make_labs.main([*args, "--solutions", str(tmp_path / "solutions"), "--labs", str(tmp_path / "labs")])


def test_cli_generates_checks_and_deletes_orphans(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_sample(tmp_path / "solutions")
    assert run_cli(tmp_path, "--check") == 1
    assert "labs/99_sample.ipynb: missing" in capsys.readouterr().err
    assert not (tmp_path / "labs").exists(), "--check must not write"

    assert run_cli(tmp_path) == 0
    lab = tmp_path / "labs" / "99_sample.ipynb"
    first = lab.read_bytes()
    assert run_cli(tmp_path) == 0 and lab.read_bytes() == first, "regenerating must be byte-identical"
    assert run_cli(tmp_path, "--check") == 0
    assert not make_labs.is_stale(tmp_path / "solutions" / "99_sample.ipynb", lab)

    lab.write_text(lab.read_text().replace("YOUR CODE HERE", "edited by hand"))
    assert make_labs.is_stale(tmp_path / "solutions" / "99_sample.ipynb", lab)
    assert run_cli(tmp_path, "--check") == 1
    assert "out of date" in capsys.readouterr().err

    (tmp_path / "solutions" / "99_sample.ipynb").rename(tmp_path / "solutions" / "98_renamed.ipynb")
    hand_made = write_sample(tmp_path / "labs", "50_hand_made.ipynb", notebook(markdown("mine")))
    assert run_cli(tmp_path, "--check") == 1
    assert run_cli(tmp_path) == 0
    assert sorted(p.name for p in (tmp_path / "labs").iterdir()) == ["50_hand_made.ipynb", "98_renamed.ipynb"]
    assert hand_made.exists(), "a lab make_labs did not generate is never deleted"


def test_cli_reports_marker_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_sample(tmp_path / "solutions", "03_bad.ipynb", notebook(code("### BEGIN SOLUTION\nx = 1", cell_id="b")))
    assert run_cli(tmp_path) == 2
    assert "03_bad.ipynb: cell 0 (id b), line 1" in capsys.readouterr().err


def test_cli_strip_solutions(tmp_path: Path) -> None:
    nb = notebook(code("print(1)", cell_id="p"))
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    nb.cells[0].execution_count = 1
    path = write_sample(tmp_path / "solutions", "00_x.ipynb", nb)
    assert run_cli(tmp_path, "--check") == 1
    assert run_cli(tmp_path, "--strip-solutions") == 0
    assert not make_labs.has_outputs(make_labs.read_notebook(path))
    assert run_cli(tmp_path, "--check") == 0


def test_first_exercise_is_first_code_cell_to_fill_in() -> None:
    lab = make_lab(SAMPLE)
    assert lab.cells[make_labs.first_exercise(lab)].id == "ex1"
    assert make_labs.first_exercise(notebook(code("x = 1", cell_id="a"))) == 1
