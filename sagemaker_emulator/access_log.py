"""The daemon's access log: one line per request (time, service, operation, status, error code, ms).

Why: a learner or instructor whose notebook fails wants to know what it asked
for, in what order, and what the emulator answered; ``sagemaker-emulator logs``
shows this file. Lines are queued by the request threads and written by one
background thread every quarter second, so the hot path pays a tuple append,
not a disk write. The file is rotated at 10 MiB (one ``.1`` kept).
"""

from __future__ import annotations

import collections
import datetime as dt
import threading
import time
from pathlib import Path

MAX_BYTES = 10 * 1024 * 1024
FLUSH_SECONDS = 0.25
HEADER = (f"{'time':<24} {'service':<18} {'operation':<34} {'status':>6} {'error':<24} {'ms':>8}")


class AccessLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._queue: collections.deque[tuple[float, str, str, int, str, float]] = collections.deque(maxlen=100_000)
        self._wake = threading.Event()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="access-log", daemon=True)
        self._thread.start()

    def add(self, service: str, operation: str, status: int, error: str | None, seconds: float) -> None:
        self._queue.append((time.time(), service, operation, status, error or "-", seconds * 1e3))

    def close(self) -> None:
        self._stopped = True
        self._wake.set()
        self._thread.join(timeout=5)
        self._write()

    def _run(self) -> None:
        while not self._stopped:
            self._wake.wait(FLUSH_SECONDS)
            self._write()

    def _write(self) -> None:
        lines = []
        while self._queue:
            stamp, service, operation, status, error, ms = self._queue.popleft()
            when = dt.datetime.fromtimestamp(stamp, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
            lines.append(f"{when} {service:<18} {operation:<34} {status:>6} {error:<24} {ms:8.1f}\n")
        if not lines:
            return
        try:
            if self.path.exists() and self.path.stat().st_size > MAX_BYTES:
                self.path.replace(self.path.with_suffix(self.path.suffix + ".1"))
            with self.path.open("a", encoding="utf-8") as out:
                out.writelines(lines)
        except OSError:
            pass  # a full disk must not stop the gateway; the log is a convenience


def tail(path: Path, count: int) -> list[str]:
    """The last ``count`` lines of the log (the rotated file first, when needed)."""
    lines: list[str] = []
    for part in (path.with_suffix(path.suffix + ".1"), path):
        if part.exists():
            lines.extend(part.read_text(encoding="utf-8", errors="replace").splitlines())
    return lines[-count:] if count > 0 else lines
