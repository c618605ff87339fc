"""No notebook run waits forever: budgets and the idle-kernel watch of ``tools/notebook_watchdog.py``.

Real kernels on throwaway notebooks (no emulator). The hangs are made for real inside the kernel: a
cell patches the running ipykernel so that it loses the next request, or drops a cell's reply (and
its ``idle`` status) — the states ipykernel 7 reached by itself (ipython/ipykernel#1554, and once on 7.4.0 in our CI).
Without the watch each of these runs waits forever (no cell timeout is set), so every test carries
a pytest timeout that turns a missing watchdog into a failure instead of a hang.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from tools import run_workshop

IDLE = 2.0  # seconds: the tests' idle bound, so that a detected hang fails within seconds

#: the kernel never reads the next request: like the ipykernel 7 wedge, it stays idle and never replies
LOSE_NEXT_REQUEST = """import functools, ipykernel
k = get_ipython().kernel
if ipykernel.version_info[0] >= 7:  # requests reach dispatch_shell through the shell channel thread
    real_dispatch = k.dispatch_shell
    async def lose(msg, *args, **kwargs):
        k.dispatch_shell = real_dispatch
    k.dispatch_shell = lose
else:  # ipykernel 6: the shell stream's callback queues each request; the next one is dropped unread
    def lose(msg):
        k.shell_stream.on_recv(functools.partial(k.schedule_dispatch, k.dispatch_shell), copy=False)
    k.shell_stream.on_recv(lose, copy=False)"""

#: this cell's execute_reply (and with ``idle=True`` its idle status) is built but never sent
DROP_OWN_REPLY = """k = get_ipython().kernel
target = k.get_parent("shell")["header"]["msg_id"]
real_send = k.session.send
def send(stream, msg_type, content=None, parent=None, *args, **kwargs):
    mine = parent is not None and parent["header"]["msg_id"] == target
    if mine and (msg_type == "execute_reply" or (DROP_IDLE and msg_type == "status"
                                                 and content.get("execution_state") == "idle")):
        return k.session.msg(msg_type, content, parent)
    return real_send(stream, msg_type, content, parent, *args, **kwargs)
k.session.send = send"""


def notebook(directory: Path, name: str, *sources: str) -> Path:
    path = directory / "solutions" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(new_notebook(cells=[new_code_cell(source) for source in sources]), path)
    return path


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``run(path, **budgets)`` → (Result, seconds), with this venv's kernel."""
    monkeypatch.setenv("JUPYTER_PATH", os.environ.get("JUPYTER_PATH", ""))
    run_workshop.ensure_kernelspec(tmp_path / "build")

    def execute(path: Path, **budgets: float | None) -> tuple[run_workshop.Result, float]:
        started = time.monotonic()
        result = run_workshop.run_notebook(path, tmp_path / "out" / path.name, progress=False,
                                           **{"idle_timeout": IDLE, **budgets})
        return result, time.monotonic() - started

    return execute


def cell_index(result: run_workshop.Result, first_line: str) -> int:
    """Index of the cell starting with ``first_line`` in the executed copy (papermill may add cells)."""
    cells = nbformat.read(result.output, as_version=4).cells
    return next(i for i, cell in enumerate(cells) if cell.source.startswith(first_line))


@pytest.mark.timeout(90)
def test_a_cell_over_its_budget_fails_fast_naming_notebook_cell_and_first_line(tmp_path: Path, run) -> None:
    path = notebook(tmp_path, "00_slow.ipynb", "x = 1", "import time\ntime.sleep(120)", "print('after')")

    result, seconds = run(path, timeout=3)

    assert not result.ok
    assert seconds < 30, f"a 3 s cell budget took {seconds:.0f} s to fail"
    index = cell_index(result, "import time")
    assert f"solutions/00_slow.ipynb, cell {index} (import time): the cell exceeded its budget of 3 s" in result.error
    assert result.status.startswith("FAILED: NotebookHang: solutions/00_slow.ipynb, cell")


@pytest.mark.timeout(90)
def test_a_notebook_over_its_wall_budget_fails_in_the_cell_that_crossed_it(tmp_path: Path, run) -> None:
    path = notebook(tmp_path, "01_long.ipynb", "import time\ntime.sleep(1)", "time.sleep(120)  # the long one")

    result, seconds = run(path, timeout=100, notebook_timeout=10)

    assert not result.ok
    assert seconds < 35, f"a 10 s notebook budget took {seconds:.0f} s to fail"
    index = cell_index(result, "time.sleep(120)")
    assert (f"solutions/01_long.ipynb, cell {index} (time.sleep(120)  # the long one): "
            "the notebook exceeded its budget of 10 s") in result.error


@pytest.mark.timeout(90)
@pytest.mark.parametrize(("sources", "failing_line", "reason"), [
    pytest.param((LOSE_NEXT_REQUEST, "print('never read')"), "print('never read')",
                 "the kernel never started it", id="lost-request"),
    pytest.param(("DROP_IDLE = False\n" + DROP_OWN_REPLY,), "DROP_IDLE = False",
                 "the kernel finished it and has been idle for 2 s, but its execute_reply never arrived",
                 id="lost-reply"),
    pytest.param(("DROP_IDLE = True\n" + DROP_OWN_REPLY,), "DROP_IDLE = True",
                 "the kernel is idle (it answered kernel_info", id="lost-reply-and-idle-status"),
])
def test_an_idle_kernel_with_a_pending_cell_fails_the_run_at_once(tmp_path: Path, run, sources: tuple[str, ...],
                                                                   failing_line: str, reason: str) -> None:
    path = notebook(tmp_path, "02_hang.ipynb", "x = 1", *sources, "print('after')")

    result, seconds = run(path, timeout=None, notebook_timeout=None)

    assert not result.ok, "the run passed"
    assert seconds < 45, f"detected only after {seconds:.0f} s"
    index = cell_index(result, failing_line)
    assert f"solutions/02_hang.ipynb, cell {index} ({failing_line}): {reason}" in result.error, result.error


@pytest.mark.timeout(90)
def test_busy_kernels_are_not_mistaken_for_idle_ones(tmp_path: Path, run) -> None:
    """Cells running well past the idle bound — blocking, or awaiting on the kernel's loop — still pass."""
    path = notebook(tmp_path, "03_busy.ipynb", "import asyncio, time\ntime.sleep(4 * 2.0)",
                    "await asyncio.sleep(4 * 2.0)", "print('done')")

    result, _ = run(path, timeout=60)

    assert result.ok, result.error
