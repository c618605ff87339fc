"""Generate the learner notebooks in ``labs/`` from the complete notebooks in ``solutions/``.

Why generated: ``solutions/`` is the single source of truth (instructors run it, CI executes it);
keeping a second, hand-edited copy of every notebook in sync is how exercise sets rot. The
markers follow nbgrader's ClearSolutions conventions so that authors who know nbgrader need
nothing new:

* code cells: the lines between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` become
  ``# YOUR CODE HERE`` + a ``...`` line at the marker's indentation (a statement that does nothing, so
  "Run All" goes on past an exercise not done yet and its check says so); the ``# EXERCISE``/``# TODO``
  prompt above the block stays;
* markdown cells: ``<!-- BEGIN SOLUTION -->…<!-- END SOLUTION -->`` becomes ``*Write your answer here.*``;
* cells tagged ``solution-only`` are dropped; cells tagged ``check`` (and every other cell) stay.

Cells that held an answer are tagged ``exercise`` in the lab, so tools can find the first
exercise without parsing code. The output is deterministic (same solutions → byte-identical
labs), so ``--check`` can compare bytes, and git diffs of labs show only real changes.

Usage::

    python tools/make_labs.py                    # regenerate labs/, delete orphaned labs
    python tools/make_labs.py --check            # exit 1 listing stale/missing/orphaned labs and solutions
                                                 # that carry outputs; write nothing
    python tools/make_labs.py --strip-solutions  # also strip outputs from solutions/ (for authors)
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat import NotebookNode
from nbformat.v4.rwbase import rejoin_lines

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS_DIR = ROOT / "solutions"
LABS_DIR = ROOT / "labs"
NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"
FIX_COMMAND = "make labs  (or: .venv/bin/python tools/make_labs.py)"

CODE_BEGIN = "### BEGIN SOLUTION"
CODE_END = "### END SOLUTION"
CODE_PLACEHOLDER = (
    "# YOUR CODE HERE",
    "...  # replace this line with your answer, then run the check cell below",
)
MARKDOWN_MARKER = re.compile(r"<!--\s*(BEGIN|END)\s+SOLUTION\s*-->")
MARKDOWN_PLACEHOLDER = "*Write your answer here.*"
# Anything that looks like a marker but was not consumed as one: a typo there would leak an answer.
LOOSE_MARKER = re.compile(r"\b(BEGIN|END)\s+SOLUTION\b")

SOLUTION_ONLY_TAG = "solution-only"
EXERCISE_TAG = "exercise"
BANNER_ID = "workshop-lab-banner"
VOLATILE_NOTEBOOK_METADATA = ("papermill", "widgets")
VOLATILE_CELL_METADATA = ("execution", "ExecuteTime", "papermill")


class MarkerError(ValueError):
    """A solution marker is unbalanced or malformed; the message names file, cell and line."""

    def __init__(self, message: str, *, source: str, cell: int, cell_id: str | None, line: int) -> None:
        where = f"{source}: cell {cell}" + (f" (id {cell_id})" if cell_id else "") + f", line {line}"
        super().__init__(f"{where}: {message}")
        self.source, self.cell, self.cell_id, self.line = source, cell, cell_id, line


Raise = Callable[[str, int], MarkerError]


# --------------------------------------------------------------------------- reading and writing


def read_notebook(path: Path) -> NotebookNode:
    """Read a notebook without nbformat's random repairs (missing cell ids get stable ones instead)."""
    node = nbformat.from_dict(json.loads(path.read_text(encoding="utf-8")))
    if node.get("nbformat") != 4:
        node = nbformat.convert(node, 4)
    node = rejoin_lines(node)
    ensure_cell_ids(node, seed=path.name)
    return node


def notebook_text(nb: NotebookNode) -> str:
    """Serialize the way Jupyter saves (sorted keys, indent 1, final newline), so saves don't churn."""
    text = nbformat.writes(nb, version=4)
    return text if text.endswith("\n") else text + "\n"


def write_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` unless the file already holds exactly that; return whether it wrote."""
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return True


def ensure_cell_ids(nb: NotebookNode, seed: str) -> NotebookNode:
    """Give every cell an id (nbformat 4.5); missing ones are derived from ``seed`` and position, never random."""
    if nb.get("nbformat_minor", 0) < 5:
        nb.nbformat_minor = 5
    used = {cell.get("id") for cell in nb.cells if cell.get("id")}
    for index, cell in enumerate(nb.cells):
        if cell.get("id"):
            continue
        counter = 0
        while True:
            candidate = hashlib.sha1(f"{seed}:{index}:{counter}".encode()).hexdigest()[:8]
            if candidate not in used:
                break
            counter += 1
        cell.id = candidate
        used.add(candidate)
    return nb


# --------------------------------------------------------------------------- transformations


def strip_outputs(nb: NotebookNode) -> NotebookNode:
    """Remove outputs, execution counts and run-specific metadata, in place; return ``nb``.

    Committed notebooks carry no outputs: executed copies are build artifacts, and outputs in
    git make every run a diff (and can leak local paths).
    """
    for key in VOLATILE_NOTEBOOK_METADATA:
        nb.metadata.pop(key, None)
    for cell in nb.cells:
        for key in VOLATILE_CELL_METADATA:
            cell.metadata.pop(key, None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return nb


def has_outputs(nb: NotebookNode) -> bool:
    """True if any code cell has outputs or an execution count."""
    return any(cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)
               for cell in nb.cells)


def tags_of(cell: NotebookNode) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def clear_code_solutions(source: str, error: Raise) -> tuple[str, bool]:
    """Replace each ``### BEGIN/END SOLUTION`` block by the placeholder; return (source, changed)."""
    out: list[str] = []
    opened_at: int | None = None
    changed = False
    for number, line in enumerate(source.split("\n"), start=1):
        marker = line.strip()
        if marker == CODE_BEGIN:
            if opened_at is not None:
                raise error(f"'{CODE_BEGIN}' inside the block opened on line {opened_at}", number)
            opened_at, changed = number, True
            indent = line[: len(line) - len(line.lstrip())]
            out.extend(indent + text for text in CODE_PLACEHOLDER)
        elif marker == CODE_END:
            if opened_at is None:
                raise error(f"'{CODE_END}' without a '{CODE_BEGIN}' above it", number)
            opened_at = None
        elif LOOSE_MARKER.search(line):
            raise error(f"malformed solution marker {marker!r}: write exactly '{CODE_BEGIN}' or '{CODE_END}' "
                        "on a line of its own", number)
        elif opened_at is None:
            out.append(line)
    if opened_at is not None:
        raise error(f"'{CODE_BEGIN}' without a matching '{CODE_END}'", opened_at)
    return "\n".join(out), changed


def clear_markdown_solutions(source: str, error: Raise) -> tuple[str, bool]:
    """Replace each ``<!-- BEGIN SOLUTION -->…<!-- END SOLUTION -->`` span; return (source, changed)."""
    for number, line in enumerate(source.split("\n"), start=1):
        if LOOSE_MARKER.search(MARKDOWN_MARKER.sub("", line)):
            raise error("malformed solution marker: in markdown write '<!-- BEGIN SOLUTION -->' and "
                        "'<!-- END SOLUTION -->'", number)
    pieces: list[str] = []
    position = 0
    opened: re.Match[str] | None = None
    for match in MARKDOWN_MARKER.finditer(source):
        number = source.count("\n", 0, match.start()) + 1
        if match.group(1) == "BEGIN":
            if opened is not None:
                raise error("'<!-- BEGIN SOLUTION -->' inside another solution block", number)
            pieces.append(source[position:match.start()])
            opened = match
        else:
            if opened is None:
                raise error("'<!-- END SOLUTION -->' without a '<!-- BEGIN SOLUTION -->' before it", number)
            pieces.append(MARKDOWN_PLACEHOLDER)
            opened = None
        position = match.end()
    if opened is not None:
        number = source.count("\n", 0, opened.start()) + 1
        raise error("'<!-- BEGIN SOLUTION -->' without a matching '<!-- END SOLUTION -->'", number)
    if not pieces:
        return source, False
    pieces.append(source[position:])
    return "".join(pieces), True


def banner_cell(source: str) -> NotebookNode:
    """The first cell of every lab: says where the answers are and that edits belong in the solution."""
    text = (f"> **Lab notebook**, generated from `{source}`, the complete notebook with the answers.\n"
            "> **Exercises:** replace the `...` under `# YOUR CODE HERE` with your answer, then run the check below "
            "it: ✅ right, or ❌ with a hint. **Run All** does **not** stop at exercises: one not done yet shows ❌ "
            "and the lab goes on, using whatever you have written so far.")
    return nbformat.v4.new_markdown_cell(text, id=BANNER_ID)


def make_lab(nb: NotebookNode, source: str = "solutions/notebook.ipynb") -> NotebookNode:
    """Return the lab for solution notebook ``nb`` (which is not modified).

    ``source`` is the solution's path as learners should see it; it names the file in marker
    errors and in the lab's banner and ``metadata.workshop.generated_from``.
    """
    lab = ensure_cell_ids(rejoin_lines(copy.deepcopy(nb)), seed=Path(source).name)
    cells = []
    for index, cell in enumerate(lab.cells):
        if SOLUTION_ONLY_TAG in tags_of(cell):
            continue
        cell_id = cell.get("id")

        def error(message: str, line: int, index: int = index, cell_id: str | None = cell_id) -> MarkerError:
            return MarkerError(message, source=source, cell=index, cell_id=cell_id, line=line)

        if cell.cell_type == "code":
            cell.source, changed = clear_code_solutions(cell.source, error)
        elif cell.cell_type == "markdown":
            cell.source, changed = clear_markdown_solutions(cell.source, error)
        else:
            changed = False
        if changed and EXERCISE_TAG not in tags_of(cell):
            cell.metadata["tags"] = [*tags_of(cell), EXERCISE_TAG]
        cells.append(cell)
    lab.cells = [banner_cell(source), *cells]
    lab.metadata["workshop"] = {"generated_from": source, "do_not_edit": True}
    return strip_outputs(lab)


def first_exercise(lab: NotebookNode) -> int:
    """Index of the lab's first code cell with an exercise to fill in (``len(cells)`` if none).

    Everything before it must run for a learner who has written nothing yet; markdown answers
    don't stop execution, so they don't count.
    """
    for index, cell in enumerate(lab.cells):
        if cell.cell_type == "code" and (EXERCISE_TAG in tags_of(cell) or CODE_PLACEHOLDER[1] in cell.source):
            return index
    return len(lab.cells)


# --------------------------------------------------------------------------- files and directories


def solution_notebooks(solutions_dir: Path) -> list[Path]:
    return sorted(solutions_dir.glob(NOTEBOOK_GLOB))


def source_name(solution: Path) -> str:
    """``solutions/00_setup.ipynb``: the name the banner and metadata show, independent of the checkout path."""
    return f"{solution.parent.name}/{solution.name}"


def render_lab(solution: Path) -> str:
    """The exact text the lab for ``solution`` must have."""
    return notebook_text(make_lab(read_notebook(solution), source_name(solution)))


def is_stale(solution: Path, lab: Path) -> bool:
    """True if ``lab`` is missing or differs (byte for byte) from what ``solution`` generates."""
    return not lab.exists() or lab.read_text(encoding="utf-8") != render_lab(solution)


def is_generated(lab: Path) -> bool:
    """Was ``lab`` written by this tool? Only such files are ever deleted."""
    try:
        return bool(json.loads(lab.read_text(encoding="utf-8")).get("metadata", {}).get("workshop", {})
                    .get("do_not_edit"))
    except (OSError, ValueError, AttributeError):
        return False


@dataclass(frozen=True)
class Change:
    """One difference between ``labs/`` and what ``solutions/`` generates."""

    kind: str  # "missing" | "stale" | "orphaned"
    lab: Path
    text: str | None = None  # the lab's new content (None for orphaned labs)

    def describe(self, root: Path) -> str:
        why = {"missing": "missing (its solution exists)", "stale": "out of date with its solution",
               "orphaned": "has no solution any more"}[self.kind]
        return f"{_relative(self.lab, root)}: {why}"


def plan(solutions_dir: Path = SOLUTIONS_DIR, labs_dir: Path = LABS_DIR) -> list[Change]:
    """Every change needed to bring ``labs_dir`` in sync with ``solutions_dir`` (nothing is written)."""
    changes = []
    solutions = solution_notebooks(solutions_dir)
    for solution in solutions:
        lab = labs_dir / solution.name
        text = render_lab(solution)
        if not lab.exists():
            changes.append(Change("missing", lab, text))
        elif lab.read_text(encoding="utf-8") != text:
            changes.append(Change("stale", lab, text))
    names = {solution.name for solution in solutions}
    changes.extend(Change("orphaned", lab) for lab in sorted(labs_dir.glob(NOTEBOOK_GLOB)) if lab.name not in names)
    return changes


def apply(changes: Iterable[Change], root: Path) -> list[str]:
    """Write missing/stale labs, delete orphaned generated ones; return one message per action."""
    messages = []
    for change in changes:
        if change.text is not None:
            write_if_changed(change.lab, change.text)
            messages.append(f"wrote {_relative(change.lab, root)}")
        elif is_generated(change.lab):
            change.lab.unlink()
            messages.append(f"deleted {_relative(change.lab, root)} (its solution is gone)")
        else:
            messages.append(f"kept {_relative(change.lab, root)}: no solution, and not generated by make_labs")
    return messages


def dirty_solutions(solutions_dir: Path) -> list[Path]:
    """Solutions that carry outputs or execution counts (they must be committed clean)."""
    return [path for path in solution_notebooks(solutions_dir) if has_outputs(read_notebook(path))]


def strip_solutions(solutions_dir: Path) -> list[Path]:
    """Strip outputs from the solutions in place (normalising their JSON); return the files rewritten."""
    written = []
    for path in solution_notebooks(solutions_dir):
        if write_if_changed(path, notebook_text(strip_outputs(read_notebook(path)))):
            written.append(path)
    return written


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------- command line


def check(solutions_dir: Path, labs_dir: Path, root: Path) -> int:
    """``--check``: report, write nothing; 0 when labs are in sync and solutions clean, else 1."""
    problems = [change.describe(root) for change in plan(solutions_dir, labs_dir)]
    problems += [f"{_relative(path, root)}: has outputs or execution counts (fix with: "
                 ".venv/bin/python tools/make_labs.py --strip-solutions)" for path in dirty_solutions(solutions_dir)]
    if not problems:
        print(f"labs are up to date ({len(solution_notebooks(solutions_dir))} notebooks)")
        return 0
    print("notebooks are not ready to commit:", *(f"  {problem}" for problem in problems),
          f"regenerate labs with: {FIX_COMMAND}", sep="\n", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 listing stale, missing or orphaned labs; "
                      "write nothing")
    mode.add_argument("--strip-solutions", action="store_true", help="also strip outputs from solutions/ first")
    parser.add_argument("--solutions", type=Path, default=SOLUTIONS_DIR, help="default: %(default)s")
    parser.add_argument("--labs", type=Path, default=LABS_DIR, help="default: %(default)s")
    args = parser.parse_args(argv)
    root = args.solutions.resolve().parent
    try:
        if args.check:
            return check(args.solutions, args.labs, root)
        if args.strip_solutions:
            for path in strip_solutions(args.solutions):
                print(f"stripped {_relative(path, root)}")
        messages = apply(plan(args.solutions, args.labs), root)
    except MarkerError as exc:
        print(f"make_labs: error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(messages) if messages else "labs are up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
