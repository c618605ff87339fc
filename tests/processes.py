"""Process checks shared by the job tests: is a job's process really gone after a stop or a crash?"""

from __future__ import annotations

import os
from pathlib import Path

from sagemaker_emulator.cli import _alive


def pid_gone(pid: int) -> bool:
    """True once ``pid`` no longer runs (a zombie waiting for its new parent to reap it counts as gone)."""
    return not _alive(pid)


def job_processes(name: str, variable: str = "TRAINING_JOB_NAME") -> list[int]:
    """Live processes of this job: those whose environment names it (the runtime exports it to every job
    process) or whose working directory is one of its instance directories (``…/<name>/algo-N``).

    Both are needed: ``/proc/<pid>/environ`` is the environment a process was *exec*'d with, so a job
    process forked from a warm worker (``runtime.warm``) shows the worker's there, although its own
    ``os.environ`` is the job's; it starts in its instance directory instead.
    """
    needle = f"\0{variable}={name}\0".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = b"\0" + (entry / "environ").read_bytes()
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        mine = needle in environ or f"/{name}/algo-" in cwd
        if mine and not pid_gone(int(entry.name)):
            found.append(int(entry.name))
    return found
