"""Running one benchmark on its own: a fresh emulator in a temporary state directory, stopped afterwards."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def with_emulator(measure: Callable[[Any], dict[str, Any]], prefix: str, warm: bool = True) -> dict[str, Any]:
    """``measure(emulator)`` against an emulator of its own (warm workers started as the daemon does)."""
    from sagemaker_emulator.app import Emulator

    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        emulator = Emulator(Path(tmp))
        emulator.start("127.0.0.1", 0)
        if warm:
            emulator.warm_up()
        try:
            return measure(emulator)
        finally:
            emulator.stop()
