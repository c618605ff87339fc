"""``python -m sagemaker_emulator.images.model_monitor``: the analyzer container's command."""

from __future__ import annotations

import sys

from .analyzer import main

if __name__ == "__main__":
    sys.exit(main())
