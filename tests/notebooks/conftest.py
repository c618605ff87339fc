"""Notebook tests import the maintainer tools in ``tools/``, which are not an installed package.

``emulator_state`` (from ``emulator_session.py``) is the one emulator state directory of a session
that runs notebooks: the daemon their kernels start there lives no longer than the session.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from emulator_session import emulator_state  # noqa: E402, F401  (a fixture)
