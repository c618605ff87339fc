"""The ``emulator_state`` fixture: one emulator state directory per session, and nothing left running after it.

A module of its own (re-exported by this folder's conftest.py) so that a pytest session run in a
subprocess can load it with ``-p emulator_session``: ``test_session_cleanup.py`` kills such a session.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools import run_workshop  # noqa: E402

STATE_ENV = "SAGEMAKER_EMULATOR_STATE_DIR"


@pytest.fixture(scope="session")
def emulator_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """``$SAGEMAKER_EMULATOR_STATE_DIR`` (default: a fresh tmp dir), exported to every kernel of the session.

    The daemon a notebook starts there is stopped at the end of the session — also when it ends by
    SIGTERM/SIGHUP (CI's time limit: turned into an interrupt, so pytest runs this teardown) or Ctrl-C,
    and even by SIGKILL (the daemon watches this process's pid). A daemon that was already running for
    that state dir belongs to the user (e.g. ``make lab`` in another terminal) and is left running.
    """
    with pytest.MonkeyPatch.context() as patch:
        state = Path(os.environ.get(STATE_ENV) or tmp_path_factory.mktemp("emulator-state")).expanduser().resolve()
        patch.setenv(STATE_ENV, str(state))
        with run_workshop.terminate_as_interrupt(), run_workshop.emulator_for_run(state):
            yield state
