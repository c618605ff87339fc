"""Where the user's code is, what kind of entry point it is, and the command that runs it.

The toolkit distinguishes three kinds of ``sagemaker_program``: a shell
command (``*.sh`` or anything that is not Python), a Python package (the code
directory has a ``setup.py``; run as ``python -m``), and a Python script.
The kind decides both how dependencies are installed and how it is invoked.
"""

from __future__ import annotations

import enum
import logging
import os
import shlex
import shutil
import stat
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .environment import Paths

logger = logging.getLogger("sagemaker-training-toolkit")


class EntryPointKind(enum.Enum):
    PYTHON_PACKAGE = "PYTHON_PACKAGE"
    PYTHON_PROGRAM = "PYTHON_PROGRAM"
    COMMAND = "COMMAND"


def kind_of(code_dir: Path, entry_point: str) -> EntryPointKind:
    """Classify the entry point with the toolkit's precedence: .sh, then setup.py, then .py."""
    if entry_point.endswith(".sh"):
        return EntryPointKind.COMMAND
    if (code_dir / "setup.py").exists():
        return EntryPointKind.PYTHON_PACKAGE
    if entry_point.endswith(".py"):
        return EntryPointKind.PYTHON_PROGRAM
    return EntryPointKind.COMMAND


def _is_empty(directory: Path) -> bool:
    return not directory.is_dir() or not any(directory.iterdir())


def _extract_or_copy(source: Path, destination: Path) -> None:
    """Fill ``destination`` from a directory, a tarball or a single file, like the toolkit does."""
    destination.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, destination, dirs_exist_ok=True)
    elif tarfile.is_tarfile(source):
        with tarfile.open(source) as archive:
            if hasattr(tarfile, "data_filter"):  # refuses absolute paths and ../ escapes
                archive.extractall(destination, filter="data")
            else:  # pragma: no cover - Python < 3.11.4
                archive.extractall(destination)
    else:
        shutil.copy2(source, destination)


def prepare_code_dir(paths: Paths, submit_directory: str | None) -> Path:
    """Make sure ``<base>/code`` holds the user's code and return it.

    The runtime normally extracts an ``s3://`` submit directory before launch.
    Otherwise the code may be a local path (``file://`` or plain, as local mode
    passes it) or a ``code`` input channel (as ModelTrainer stages
    ``source_code``), possibly holding a ``sourcedir.tar.gz``.
    """
    code_dir = paths.code
    code_dir.mkdir(parents=True, exist_ok=True)
    if not _is_empty(code_dir):
        return code_dir
    if submit_directory and not submit_directory.startswith("s3://"):
        local = Path(submit_directory.removeprefix("file://"))
        if local.exists():
            logger.info("Copying user code from %s", local)
            _extract_or_copy(local, code_dir)
            return code_dir
    channel = paths.channel("code")
    if not _is_empty(channel):
        entries = list(channel.iterdir())
        if len(entries) == 1 and entries[0].is_file() and tarfile.is_tarfile(entries[0]):
            _extract_or_copy(entries[0], code_dir)
        else:
            _extract_or_copy(channel, code_dir)
    return code_dir


@dataclass(frozen=True)
class Command:
    """argv to execute, and the string the toolkit would log and report for it."""

    argv: list[str]
    display: str


def build_command(kind: EntryPointKind, python: Path, entry_point: str, args: Sequence[str]) -> Command:
    """The toolkit's command line for each kind, as an argv (no shell for Python kinds).

    The toolkit joins the Python command with spaces and runs it through a
    shell; passing an argv instead keeps hyperparameter values containing
    spaces or shell characters intact.
    """
    if kind is EntryPointKind.PYTHON_PACKAGE:
        module = entry_point[:-3] if entry_point.endswith(".py") else entry_point
        argv = [str(python), "-m", module, *args]
        return Command(argv, " ".join(argv))
    if kind is EntryPointKind.PYTHON_PROGRAM:
        argv = [str(python), entry_point, *args]
        return Command(argv, " ".join(argv))
    script = f"./{entry_point} {' '.join(shlex.quote(a) for a in args)}"
    return Command(["/bin/sh", "-c", script.rstrip()], f'/bin/sh -c "{script}"')


def make_executable(code_dir: Path, entry_point: str) -> None:
    """Shell entry points are chmod-ed by the toolkit; tarballs often lose the x bit."""
    path = code_dir / entry_point
    if path.is_file():
        os.chmod(path, path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
