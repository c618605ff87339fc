"""A papermill engine whose notebook runs end: every wait has a bound, and a hung kernel is named at once.

papermill's own client (nbclient) waits for an ``execute_reply`` with no limit unless a per-cell
timeout is set, and even then it waits out the whole timeout when the kernel has silently lost the
request. ipykernel 7.0–7.3 did exactly that (ipython/ipykernel#1554, fixed by #1529 in 7.4): a
shell reply sent raw on the ROUTER socket could swallow the wake-up for the next request, which
then sat unread while the kernel stayed idle and the client waited forever. ``pyproject.toml``
excludes those releases; this engine makes the class of bug fail fast whatever the versions:

* per cell: nbclient's ``timeout`` (the cell budget), reported with the cell and its first line;
* per notebook: a wall budget; each cell's timeout is cut to what is left of it;
* the kernel idle while the client waits, detected from the kernel's own messages:
  it never started the request (no IOPub message for it), or it published ``idle`` but the reply
  never came, or it answers a ``kernel_info_request`` probe — which ipykernel serialises behind the
  running cell on the same shell — while the cell's reply is still missing.

``papermill.execute_notebook(..., engine_name=ENGINE_NAME, idle_timeout=60, notebook_timeout=3600,
notebook_name="solutions/00_setup.ipynb")`` selects it (importing this module registers it).
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from queue import Empty
from typing import Any

from jupyter_client.session import new_id
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbclient.util import run_sync
from nbformat import NotebookNode
from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine, papermill_engines
from papermill.log import logger
from traitlets import Float, Unicode

ENGINE_NAME = "workshop-watchdog"
DEFAULT_IDLE_TIMEOUT = 60.0
WATCH_INTERVAL = 0.5
FIRST_LINE_LIMIT = 80


class NotebookHang(CellTimeoutError):
    """A run that would otherwise wait: a cell over budget, or the kernel idle while the client waits.

    A ``CellTimeoutError`` so nbclient and papermill treat it as the timeout it replaces; its message
    names the notebook, the cell and the cell's first line, so a CI log says where it stopped.
    """

    def __init__(self, notebook: str, cell_index: int | None, source: str, reason: str) -> None:
        self.notebook, self.cell_index, self.first_line, self.reason = notebook, cell_index, first_line(source), reason
        where = "after the last cell" if cell_index is None else f"cell {cell_index} ({self.first_line})"
        super().__init__(f"{notebook}, {where}: {reason}")


def first_line(source: str) -> str:
    """The first non-blank line of a cell, shortened: enough to find the cell in the notebook."""
    line = next((text.strip() for text in source.splitlines() if text.strip()), "<empty cell>")
    return line if len(line) <= FIRST_LINE_LIMIT else line[: FIRST_LINE_LIMIT - 1] + "…"


@dataclass
class _Pending:
    """What the client knows about the request it is waiting for, from the kernel's IOPub messages."""

    msg_id: str
    sent: float
    started: bool = False  # any IOPub message for it: the kernel picked the request up
    idle_at: float | None = None  # the kernel published ``idle`` for it
    probe_id: str | None = None  # kernel_info_request sent while it ran
    probe_answered_at: float | None = None


class WatchdogClient(PapermillNotebookClient):
    """papermill's client, with every wait bounded and each failure naming the cell it happened in."""

    notebook_name = Unicode("notebook", help="how messages name the notebook").tag(config=True)
    idle_timeout = Float(DEFAULT_IDLE_TIMEOUT, help="seconds the kernel may be idle while a reply is pending"
                         ).tag(config=True)
    notebook_timeout = Float(None, allow_none=True, help="wall budget of the whole run, seconds").tag(config=True)
    probe_after = Float(10.0, help="seconds a cell runs before the kernel's shell is probed").tag(config=True)

    def __init__(self, nb_man: Any, km: Any = None, **kw: Any) -> None:
        super().__init__(nb_man, km=km, **kw)
        self._deadline: float | None = None
        self._cell_index: int | None = None
        self._pending: _Pending | None = None
        self._probe_kc: Any = None

    # ------------------------------------------------------------------ budgets

    def execute(self, **kwargs: Any) -> NotebookNode:
        if self.notebook_timeout:
            self._deadline = time.monotonic() + self.notebook_timeout
        return super().execute(**kwargs)

    def _get_timeout(self, cell: NotebookNode | None) -> int | None:
        """The cell budget, cut to what is left of the notebook's; a bare reply wait gets the idle bound.

        ``cell is None`` is the ``kernel_info`` papermill sends after the last cell: an idle kernel answers
        it at once, and it is the very wait that hung in nteract/papermill#705/#711.
        """
        timeout = super()._get_timeout(cell)
        if cell is None:
            timeout = min(timeout or math.inf, self.idle_timeout)
        if self._deadline is not None:
            left = max(1, math.ceil(self._deadline - time.monotonic()))
            timeout = min(timeout or math.inf, left)
        return None if timeout in (None, math.inf) else max(1, math.ceil(timeout))

    async def _async_handle_timeout(self, timeout: int, cell: NotebookNode | None = None) -> None:
        if cell is None:
            raise NotebookHang(self.notebook_name, None, "", f"the kernel did not answer kernel_info in {timeout} s")
        if self._deadline is not None and time.monotonic() >= self._deadline - 1:
            reason = f"the notebook exceeded its budget of {self.notebook_timeout:g} s"
        else:
            reason = f"the cell exceeded its budget of {timeout} s"
        raise self._hang(cell, reason)

    def _hang(self, cell: NotebookNode, reason: str) -> NotebookHang:
        return NotebookHang(self.notebook_name, self._cell_index, cell.get("source", ""), reason)

    # ------------------------------------------------------------------ cells

    async def async_execute_cell(self, cell: NotebookNode, cell_index: int, execution_count: int | None = None,
                                 store_history: bool = True) -> NotebookNode:
        self._cell_index = cell_index
        try:
            return await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        except DeadKernelError as exc:
            raise DeadKernelError(f"{self.notebook_name}, cell {cell_index} ({first_line(cell.source)}): "
                                  f"the kernel died ({exc})") from exc

    # nbclient binds its sync wrappers to its own coroutines: rebind them so papermill calls ours
    execute_cell = run_sync(async_execute_cell)

    def process_message(self, msg: dict[str, Any], cell: NotebookNode, cell_index: int) -> NotebookNode | None:
        """Note that the kernel is working on (or done with) the pending request, then record the output."""
        pending = self._pending
        if pending is not None and msg.get("parent_header", {}).get("msg_id") == pending.msg_id:
            pending.started = True
            if msg.get("msg_type") == "status" and msg["content"].get("execution_state") == "idle":
                pending.idle_at = time.monotonic()
        return super().process_message(msg, cell, cell_index)

    async def _async_poll_for_reply(self, msg_id: str, cell: NotebookNode, timeout: int | None,
                                    task_poll_output_msg: asyncio.Future[Any],
                                    task_poll_kernel_alive: asyncio.Future[Any]) -> dict[str, Any]:
        """nbclient's wait for the reply, raced against the idle-kernel watch; the first to finish wins."""
        pending = self._pending = _Pending(msg_id, time.monotonic())
        reply = asyncio.ensure_future(super()._async_poll_for_reply(
            msg_id, cell, timeout, task_poll_output_msg, task_poll_kernel_alive))
        watch = asyncio.ensure_future(self._watch(pending, cell))
        try:
            done, _ = await asyncio.wait({reply, watch}, return_when=asyncio.FIRST_COMPLETED)
            if reply in done:
                return reply.result()
            watch.result()  # raises the NotebookHang
            raise AssertionError("the idle-kernel watch ended without a verdict")
        except NotebookHang:
            task_poll_output_msg.cancel()
            task_poll_kernel_alive.cancel()
            raise
        except CellTimeoutError as exc:  # nbclient's own: the reply came, its IOPub output never finished
            raise self._hang(cell, f"the kernel replied but never published idle within {self.iopub_timeout} s"
                             ) from exc
        finally:
            reply.cancel()
            watch.cancel()
            self._pending = None

    # ------------------------------------------------------------------ the idle-kernel watch

    async def _watch(self, pending: _Pending, cell: NotebookNode) -> None:
        """Raise NotebookHang once the kernel is provably idle while ``pending`` has no reply."""
        limit = self.idle_timeout
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            now = time.monotonic()
            if not pending.started:
                if now - pending.sent > limit:
                    raise self._hang(cell, f"the kernel never started it: no message about the request in {limit:g} s "
                                     "while the client waited for its reply (a lost shell request)")
            elif pending.idle_at is not None:
                if now - pending.idle_at > limit:
                    raise self._hang(cell, f"the kernel finished it and has been idle for {limit:g} s, "
                                     "but its execute_reply never arrived")
            elif now - pending.sent > min(limit, self.probe_after):
                await self._probe(pending)
                if pending.probe_answered_at is not None and now - pending.probe_answered_at > limit:
                    raise self._hang(cell, f"the kernel is idle (it answered kernel_info {limit:g} s ago, which it "
                                     "only does once the cell is done) but the cell's reply and idle status "
                                     "never arrived")

    async def _probe(self, pending: _Pending) -> None:
        """Ask the kernel's shell, on a connection of our own, whether it is free; note when it says so."""
        if self.km is None:
            return
        if self._probe_kc is None:
            # Its own session id: a client's shell socket identity is its session id, and the kernel's ROUTER
            # would hand the notebook client's replies to a second connection that shares it.
            session = self.km.session.clone()
            session.session = new_id()
            self._probe_kc = self.km.client(session=session)
            self._probe_kc.start_channels(shell=True, iopub=False, stdin=False, hb=False, control=False)
        if pending.probe_id is None:
            pending.probe_id = self._probe_kc.kernel_info()
        while pending.probe_answered_at is None:
            try:
                msg = await self._probe_kc.shell_channel.get_msg(timeout=0)
            except Empty:
                return
            if msg.get("parent_header", {}).get("msg_id") == pending.probe_id:
                pending.probe_answered_at = time.monotonic()

    async def _async_cleanup_kernel(self) -> None:
        if self._probe_kc is not None:
            self._probe_kc.stop_channels()
            self._probe_kc = None
        await super()._async_cleanup_kernel()

    _cleanup_kernel = run_sync(_async_cleanup_kernel)


class WatchdogEngine(NBClientEngine):
    """papermill's nbclient engine with :class:`WatchdogClient` in place of its client."""

    @classmethod
    def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, log_output: bool = False,
                                 stdout_file: Any = None, stderr_file: Any = None, start_timeout: int = 60,
                                 execution_timeout: float | None = None, **kwargs: Any) -> NotebookNode:
        for unused in ("input_path", "timeout", "startup_timeout"):
            kwargs.pop(unused, None)
        timeout = math.ceil(execution_timeout) if execution_timeout else None
        client = WatchdogClient(nb_man, timeout=timeout, startup_timeout=start_timeout, kernel_name=kernel_name,
                                log=logger, log_output=log_output, stdout_file=stdout_file, stderr_file=stderr_file,
                                **kwargs)
        return client.execute()


papermill_engines.register(ENGINE_NAME, WatchdogEngine)
