"""Run the user's entry point as a child: stream its output, keep its error text, relay stops.

Three things a container gives for free have to be rebuilt for a plain subprocess:
the job's logs must show the child's output live (so stdout is inherited and
stderr is copied through line by line); the failure file needs the error text
(so stderr is also remembered, trimmed to the part that explains the failure);
and StopTrainingJob must reach the user code (so SIGTERM/SIGINT received by this
runner are forwarded to the child, and on Linux the child is told to die if the
runner itself is SIGKILLed, instead of training on as an orphan).
"""

from __future__ import annotations

import builtins
import collections
import ctypes
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import IO

from .errors import TrainingStopped

# Lines naming one of these start the "error" part of stderr, as in the toolkit.
ERROR_MARKERS: tuple[str, ...] = tuple(
    sorted(
        name
        for name, obj in vars(builtins).items()
        if isinstance(obj, type) and issubclass(obj, BaseException) and name.endswith(("Error", "Exception"))
    )
) + ("Invalid requirement", "mpirun.real", "ORTE")

_MAX_ERROR_LINES = 200
_TAIL_LINES = 40
_FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_PR_SET_PDEATHSIG = 1


class StderrCollector:
    """Keep the explanatory part of a stream: from the first error-looking line, else the tail.

    The toolkit only keeps stderr from the first line that names an exception
    (de-duplicated); a script that just prints a message and calls
    ``sys.exit(3)`` would then get an empty ErrorMessage, so without such a line
    the last lines are used instead. Memory stays bounded either way.
    """

    def __init__(self) -> None:
        self._error_lines: list[str] = []
        self._seen: set[str] = set()
        self._tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)

    def add(self, line: str) -> None:
        text = line.rstrip()
        if not text.strip():
            return
        self._tail.append(text)
        if not self._error_lines and not any(marker in text for marker in ERROR_MARKERS):
            return
        if text not in self._seen and len(self._error_lines) < _MAX_ERROR_LINES:
            self._seen.add(text)
            self._error_lines.append(text)

    def text(self) -> str:
        lines = self._error_lines or list(dict.fromkeys(self._tail))
        return "\n".join(lines).strip()


@dataclass(frozen=True)
class ProcessResult:
    """How the child ended: its return code and what its stderr said about it."""

    returncode: int
    stderr: str


class _Forwarder:
    """Signal handlers that relay stop signals to whichever child is running.

    With no child running (e.g. between steps) a stop signal raises
    :class:`TrainingStopped` in the main thread so the runner unwinds at once.
    """

    def __init__(self) -> None:
        self.child: subprocess.Popen[bytes] | None = None
        self.received: int | None = None

    def handle(self, signum: int, _frame: FrameType | None) -> None:
        self.received = signum
        child = self.child
        if child is None or child.poll() is not None:
            raise TrainingStopped(signum)
        try:
            child.send_signal(signum)
        except ProcessLookupError:
            pass


_forwarder = _Forwarder()


def install_signal_forwarding() -> None:
    """Route SIGTERM/SIGINT through the forwarder (main thread only, as Python requires)."""
    for signum in _FORWARDED_SIGNALS:
        signal.signal(signum, _forwarder.handle)


def stop_signal_received() -> int | None:
    """The stop signal forwarded to the user's process, if any (so its exit is not a failure)."""
    return _forwarder.received


def _death_signal_setter() -> Callable[[], None] | None:
    """A pre-exec hook asking Linux to SIGKILL the child when the runner dies, if available.

    libc is resolved here, in the parent: loading libraries between fork and
    exec is not safe in a process that has threads.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def set_death_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)

    return set_death_signal


def _pump(stream: IO[bytes], sink: IO[bytes], collector: StderrCollector) -> None:
    """Copy the child's stderr through unchanged, flushing per line, while remembering it."""
    for raw in iter(stream.readline, b""):
        try:
            sink.write(raw)
            sink.flush()
        except (OSError, ValueError):
            pass
        collector.add(raw.decode("utf-8", "replace"))
    stream.close()


def run(argv: Sequence[str], env: Mapping[str, str], cwd: os.PathLike[str] | str) -> ProcessResult:
    """Run ``argv`` to completion, streaming its output; never raises for a non-zero exit."""
    collector = StderrCollector()
    sys.stdout.flush()
    sys.stderr.flush()
    child = subprocess.Popen(
        list(argv),
        env=dict(env),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=_death_signal_setter(),
    )
    assert child.stderr is not None
    _forwarder.child = child
    pump = threading.Thread(target=_pump, args=(child.stderr, sys.stderr.buffer, collector), daemon=True)
    pump.start()
    try:
        while True:
            try:
                returncode = child.wait()
                break
            except TrainingStopped as stop:  # the signal beat the registration above
                _forwarder.received = stop.signum
                child.send_signal(stop.signum)
    finally:
        _forwarder.child = None
    # A grandchild that outlives the child may keep stderr open; do not wait on it forever.
    pump.join(timeout=5)
    return ProcessResult(returncode, collector.text())
