"""Run the whole workshop: execute every ``solutions/NN_*.ipynb`` in order with papermill.

This is what ``make workshop`` runs. It starts nothing itself: each notebook's setup cell
starts (or reuses) the emulator daemon, exactly as it does for a learner, so this exercises
the same path. Executed notebooks go to ``build/notebooks/`` and HTML to ``build/html/``
(build artifacts, never committed); a failed notebook does not stop the run, because later
labs often fail for unrelated reasons and one run should show all of them.

A run never waits forever (``tools/notebook_watchdog.py``): a cell over its budget
(``--timeout``), a notebook over its wall budget (``--notebook-timeout``) or a kernel idle while
the run waits for its reply (``--idle-timeout``) fails that notebook at once, naming the cell.
A daemon the run's notebooks started is stopped when the run ends, however it ends (SIGTERM,
Ctrl-C, even SIGKILL: the daemon watches this process); ``--keep-emulator`` leaves it running,
and a daemon that was already running before the run is never touched.

Usage::

    python tools/run_workshop.py                                   # everything, default parameters
    python tools/run_workshop.py --only 00,02 -p sample_fraction=0.2 -p num_round=20
    python tools/run_workshop.py --timeout 600 --no-html --keep-emulator
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script (python tools/run_workshop.py): make ``tools`` importable
    sys.path.insert(0, str(ROOT))

from tools.notebook_watchdog import DEFAULT_IDLE_TIMEOUT, ENGINE_NAME  # noqa: E402  (registers the engine)

SOLUTIONS_DIR = ROOT / "solutions"
BUILD_DIR = ROOT / "build"
NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"
KERNEL_NAME = "python3"
HEADLINE_TAG = "headline"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass
class Result:
    """How one notebook run went: what the summary table and the tests report."""

    notebook: str
    ok: bool
    seconds: float
    output: Path
    headline: str = ""
    error: str = ""  # the failing cell's traceback (without colours), empty when ok

    @property
    def status(self) -> str:
        if self.ok:
            return "ok"
        first = next((line.strip() for line in self.error.splitlines() if line.strip()), "unknown error")
        return f"FAILED: {first}"


# --------------------------------------------------------------------------- kernel


def ensure_kernelspec(build_dir: Path = BUILD_DIR, name: str = KERNEL_NAME) -> Path:
    """Make kernel ``name`` mean *this* interpreter, without touching the user's Jupyter config.

    A ``python3`` kernelspec in ``~/.local/share/jupyter`` (or another environment's) would run the
    notebooks with the wrong packages. A kernelspec under ``build/jupyter`` listed first in
    ``JUPYTER_PATH`` wins over those, for this process and the kernels and subprocesses it starts.
    Returns the ``JUPYTER_PATH`` entry.
    """
    jupyter_dir = build_dir / "jupyter"
    spec_dir = jupyter_dir / "kernels" / name
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (workshop)",
        "language": "python",
        "metadata": {"debugger": True},
    }
    text = json.dumps(spec, indent=1, sort_keys=True) + "\n"
    spec_file = spec_dir / "kernel.json"
    if not spec_file.exists() or spec_file.read_text() != text:
        spec_dir.mkdir(parents=True, exist_ok=True)
        spec_file.write_text(text)
    entries = [str(jupyter_dir), *(p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p)]
    os.environ["JUPYTER_PATH"] = os.pathsep.join(dict.fromkeys(entries))
    return jupyter_dir


# --------------------------------------------------------------------------- the emulator a run starts


class Terminated(KeyboardInterrupt):
    """SIGTERM (or SIGHUP) as an exception, so that a killed run still shuts its kernel and emulator down.

    A ``KeyboardInterrupt`` because that is what papermill, nbclient and pytest already unwind for
    (pytest then runs its fixture teardown and ends the session, as on Ctrl-C); the default action of
    SIGTERM would end the process on the spot and orphan the emulator daemon and its model servers.
    """

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")


@contextmanager
def terminate_as_interrupt(signals: Sequence[int] = (signal.SIGTERM, signal.SIGHUP)) -> Iterator[None]:
    """While inside, ``signals`` raise :class:`Terminated` in the main thread; later ones are ignored.

    Ignoring the repeats lets the clean-up that the first one started finish (CI tools often send
    SIGTERM twice); a SIGKILL after that is handled by the daemon's own parent watch.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        for number in signals:
            signal.signal(number, signal.SIG_IGN)
        raise Terminated(signum)

    previous = {number: signal.signal(number, handler) for number in signals}
    try:
        yield
    finally:
        for number, action in previous.items():
            signal.signal(number, action)


@contextmanager
def emulator_for_run(state_dir: Path, keep: bool = False) -> Iterator[bool]:
    """Make the emulator daemon the run's notebooks start for ``state_dir`` live no longer than this process.

    Unless ``keep`` or a daemon already serves ``state_dir`` (then it is the user's, e.g. ``make lab`` in
    another terminal, and is left alone), this exports ``SAGEMAKER_EMULATOR_EXIT_WITH_PID`` = our pid for
    the kernels to pass on to the daemon they start (it stops when we are gone, even after a SIGKILL) and
    stops that daemon, with its jobs and model servers, on the way out. Yields whether the run owns it.
    """
    from sagemaker_emulator.cli import EXIT_WITH_PID_ENV, running_info, stop

    owned = not keep and running_info(state_dir) is None
    previous = os.environ.get(EXIT_WITH_PID_ENV)
    if owned:
        os.environ[EXIT_WITH_PID_ENV] = str(os.getpid())
    try:
        yield owned
    finally:
        if previous is None:
            os.environ.pop(EXIT_WITH_PID_ENV, None)
        else:
            os.environ[EXIT_WITH_PID_ENV] = previous
        if owned and started_for_us(state_dir, EXIT_WITH_PID_ENV):
            stop(state_dir)


def started_for_us(state_dir: Path, variable: str) -> bool:
    """Whether the daemon serving ``state_dir`` was started on our behalf (its environment names our pid).

    A daemon someone else started there during the run (``make lab`` in another terminal) is not ours to
    stop. Without ``/proc`` to tell (or with the daemon already gone), assume it is ours: none was running
    when we began, and stopping a dead daemon only tidies its server info.
    """
    from sagemaker_emulator.config import StatePaths

    try:
        pid = int(json.loads(StatePaths(state_dir).server_info.read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return True
    return f"\0{variable}={os.getpid()}\0".encode() in b"\0" + environ


# --------------------------------------------------------------------------- running one notebook


def headline_of(nb: Any) -> str:
    """The text the ``headline``-tagged cell printed (or displayed), stripped; '' if none."""
    for cell in nb.cells:
        if cell.cell_type != "code" or HEADLINE_TAG not in cell.get("metadata", {}).get("tags", []):
            continue
        texts = []
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stdout":
                texts.append(output.get("text", ""))
            elif output.get("output_type") in ("execute_result", "display_data"):
                texts.append(output.get("data", {}).get("text/plain", ""))
        return "".join(texts).strip()
    return ""


def error_text(exc: BaseException) -> str:
    """First line ``Name: message``, then the cell's traceback, colours removed."""
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        head = f"{exc.ename}: {exc.evalue}".strip()
        return ANSI.sub("", f"{head}\n(cell {exc.cell_index}, In [{exc.exec_count}])\n" + "\n".join(exc.traceback))
    return ANSI.sub("", f"{type(exc).__name__}: {exc}")


def run_notebook(path: Path, output: Path, parameters: dict[str, Any] | None = None, *, cwd: Path | None = None,
                 timeout: float | None = None, notebook_timeout: float | None = None,
                 idle_timeout: float = DEFAULT_IDLE_TIMEOUT, progress: bool = True, log_output: bool = False) -> Result:
    """Execute ``path`` with papermill into ``output``; never raises for a failing notebook.

    ``cwd`` defaults to the notebook's own folder so its relative paths work as in Jupyter.
    ``timeout`` is per cell and ``notebook_timeout`` the wall budget of the whole notebook (None: no
    limit); ``idle_timeout`` is how long the kernel may sit idle while the run waits for a reply
    before the run fails (see ``tools/notebook_watchdog.py``). Each names the cell it stopped in.
    """
    import papermill

    output.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        nb = papermill.execute_notebook(
            path, output, parameters=dict(parameters or {}), kernel_name=KERNEL_NAME, language="python",
            cwd=cwd or path.parent, progress_bar=progress, log_output=log_output, execution_timeout=timeout,
            engine_name=ENGINE_NAME, notebook_timeout=notebook_timeout, idle_timeout=idle_timeout,
            notebook_name=f"{path.parent.name}/{path.name}",
        )
    except Exception as exc:  # a notebook error, a timeout, a dead kernel: report it and go on
        return Result(path.stem, False, time.monotonic() - started, output, _saved_headline(output), error_text(exc))
    return Result(path.stem, True, time.monotonic() - started, output, headline_of(nb))


def _saved_headline(output: Path) -> str:
    """Headline of a partly executed notebook (a failure after the headline cell still has one)."""
    try:
        import nbformat

        return headline_of(nbformat.read(output, as_version=4))
    except Exception:
        return ""


def export_html(notebook: Path, html: Path) -> Path:
    """Write ``notebook`` (an executed copy) as standalone HTML, for reading without Jupyter."""
    import nbformat
    from nbconvert import HTMLExporter
    from traitlets.config import Config

    # A widget's static copy (its text/html, see helpers.widgets) before its live view: the live view needs a kernel
    # and JavaScript from a CDN, and without them it is an empty box.
    priority = list(HTMLExporter().default_config.NbConvertBase.display_data_priority)
    widget_view = "application/vnd.jupyter.widget-view+json"
    if widget_view in priority:
        priority.insert(priority.index("text/html") + 1, priority.pop(priority.index(widget_view)))
    exporter = HTMLExporter(config=Config({"NbConvertBase": {"display_data_priority": priority}}))
    body, _ = exporter.from_notebook_node(nbformat.read(notebook, as_version=4))
    html.parent.mkdir(parents=True, exist_ok=True)
    html.write_text(body, encoding="utf-8")
    return html


# --------------------------------------------------------------------------- command line


def parse_parameters(items: Iterable[str]) -> dict[str, Any]:
    """``["sample_fraction=0.2", "mode=local"]`` → ``{"sample_fraction": 0.2, "mode": "local"}``.

    Values are Python literals when they parse as one (numbers, True/None, quoted strings,
    lists), otherwise plain strings, so ``mode=local`` needs no quotes.
    """
    parameters: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or not name.strip().isidentifier():
            raise ValueError(f"parameter {item!r} is not NAME=VALUE")
        try:
            value: Any = ast.literal_eval(raw.strip())
        except (ValueError, SyntaxError):
            value = raw.strip()
        parameters[name.strip()] = value
    return parameters


def select_notebooks(solutions_dir: Path, only: Sequence[str] | None = None) -> list[Path]:
    """The solutions to run, in order; ``only`` holds prefixes such as ``00`` or ``02_training``."""
    notebooks = sorted(solutions_dir.glob(NOTEBOOK_GLOB))
    if not only:
        return notebooks
    chosen = []
    for prefix in only:
        matches = [nb for nb in notebooks if nb.stem.startswith(prefix.removesuffix(".ipynb"))]
        if not matches:
            names = ", ".join(nb.stem for nb in notebooks) or "none"
            raise ValueError(f"--only {prefix!r} matches no notebook in {solutions_dir} (have: {names})")
        chosen.extend(nb for nb in matches if nb not in chosen)
    return sorted(chosen)


def format_summary(results: Sequence[Result], width: int = 100) -> str:
    """A plain-text table: notebook, status, seconds, headline (long statuses are shortened)."""

    def short(text: str, limit: int) -> str:
        return text if len(text) <= limit else text[: limit - 1] + "…"

    rows = [("notebook", "status", "seconds", "headline")]
    rows += [(r.notebook, short(r.status, width), f"{r.seconds:.1f}", r.headline.splitlines()[0] if r.headline else "")
             for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = []
    for number, row in enumerate(rows):
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1]), row[2].rjust(widths[2]), row[3]]
        lines.append("  ".join(cells).rstrip())
        if number == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-p", "--parameters", action="extend", nargs="+", default=[], metavar="NAME=VALUE",
                        help="papermill parameter(s) for every notebook, e.g. sample_fraction=0.2")
    parser.add_argument("--only", default="", help="comma-separated notebook prefixes, e.g. 00,02")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per cell (default: %(default)s)")
    parser.add_argument("--notebook-timeout", type=float, default=3600,
                        help="wall seconds per notebook (default: %(default)s)")
    parser.add_argument("--idle-timeout", type=float, default=DEFAULT_IDLE_TIMEOUT,
                        help="seconds the kernel may be idle while a cell's reply is missing (default: %(default)s)")
    parser.add_argument("--keep-emulator", action="store_true",
                        help="leave the emulator daemon the notebooks started running after the run")
    parser.add_argument("--no-html", action="store_true", help="skip the HTML export")
    parser.add_argument("--log-output", action="store_true", help="stream cell outputs to the terminal")
    parser.add_argument("--solutions", type=Path, default=SOLUTIONS_DIR, help="default: %(default)s")
    parser.add_argument("--build-dir", type=Path, default=BUILD_DIR, help="default: %(default)s")
    return parser


def run_one(number: int, path: Path, notebooks: Sequence[Path], parameters: dict[str, Any],
            args: argparse.Namespace) -> Result:
    """Run one notebook of the workshop, report a failure at once, export its HTML."""
    print(f"[{number}/{len(notebooks)}] {path.name}" + (f"  parameters {parameters}" if parameters else ""),
          flush=True)
    result = run_notebook(path, args.build_dir / "notebooks" / path.name, parameters, cwd=args.solutions,
                          timeout=args.timeout or None, notebook_timeout=args.notebook_timeout or None,
                          idle_timeout=args.idle_timeout, log_output=args.log_output)
    if not result.ok:
        print(f"{path.name} FAILED (executed copy: {result.output}):\n{result.error}\n", file=sys.stderr, flush=True)
    if not args.no_html and result.output.exists():
        export_html(result.output, args.build_dir / "html" / f"{path.stem}.html")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        parameters = parse_parameters(args.parameters)
        notebooks = select_notebooks(args.solutions, [p.strip() for p in args.only.split(",") if p.strip()])
    except ValueError as exc:
        parser.error(str(exc))
    if not notebooks:
        print(f"no notebooks matching {NOTEBOOK_GLOB} in {args.solutions}", file=sys.stderr)
        return 1
    ensure_kernelspec(args.build_dir)
    from sagemaker_emulator.config import default_state_dir

    try:
        with terminate_as_interrupt(), emulator_for_run(default_state_dir().expanduser().resolve(),
                                                        keep=args.keep_emulator):
            results = [run_one(number, path, notebooks, parameters, args) for number, path in
                       enumerate(notebooks, start=1)]
    except KeyboardInterrupt as exc:  # Ctrl-C or Terminated: kernels and the emulator are already stopped
        print(f"\nworkshop run interrupted ({exc or 'Ctrl-C'})", file=sys.stderr)
        return 128 + (exc.signum if isinstance(exc, Terminated) else signal.SIGINT)
    print()
    print(format_summary(results))
    print(f"\nexecuted notebooks: {args.build_dir / 'notebooks'}"
          + ("" if args.no_html else f"   HTML: {args.build_dir / 'html'}"))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
