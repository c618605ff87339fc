"""``python -m sagemaker_emulator.images.autopilot train``: the ``autogluon-training`` image's program."""

from __future__ import annotations

import sys

if __name__ == "__main__":
    if sys.argv[1:] != ["train"]:
        print("usage: python -m sagemaker_emulator.images.autopilot train", file=sys.stderr)
        sys.exit(2)
    from .train import main

    sys.exit(main())
