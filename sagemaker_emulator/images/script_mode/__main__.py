"""``python -m sagemaker_emulator.images.script_mode train``: the container's ``train`` command."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from .process import install_signal_forwarding
from .trainer import train


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch the container command; only ``train`` exists for script-mode training images."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args not in ([], ["train"]):
        print(f"usage: python -m sagemaker_emulator.images.script_mode train (got {args!r})", file=sys.stderr)
        return 2
    install_signal_forwarding()
    return train()


if __name__ == "__main__":
    sys.exit(main())
