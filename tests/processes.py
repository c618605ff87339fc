"""Process checks shared by the job tests: is a job's process really gone after a stop or a crash?"""

from __future__ import annotations

from pathlib import Path

from sagemaker_emulator.cli import _alive


def pid_gone(pid: int) -> bool:
    """True once ``pid`` no longer runs (a zombie waiting for its new parent to reap it counts as gone)."""
    return not _alive(pid)


def job_processes(name: str, variable: str = "TRAINING_JOB_NAME") -> list[int]:
    """Live processes whose environment names this job (the runtime exports it to every job process)."""
    needle = f"\0{variable}={name}\0".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = b"\0" + (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ and not pid_gone(int(entry.name)):
            found.append(int(entry.name))
    return found
