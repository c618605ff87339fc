"""Entry point: ``python -m sagemaker_emulator.images.xgboost_algorithm train [--legacy]``.

``--legacy`` runs the legacy first-party image (see :mod:`.legacy`): its hyperparameters, its failure texts.

Plays the role of the ``sagemaker_containers`` trainer around the algorithm: on success it writes
an empty ``output/success`` and exits 0; on any exception it writes ``output/failure`` as
``"framework error: \\n" + traceback + "\\n" + str(e)`` (see :mod:`.errors` for the shortened
traceback) and exits non-zero.  A host excluded from distributed training (no data) exits 0 too.
The process ends with ``os._exit`` like the AWS trainer, so lingering native threads of the
XGBoost communicator cannot keep it alive.
"""

from __future__ import annotations

import logging
import os
import sys

from ..lean_import import import_xgboost_without_sklearn
from .console import setup_logging
from .errors import exit_code_for, failure_text, legacy_failure_text

logger = logging.getLogger("sagemaker_xgboost_container")

USAGE = "usage: python -m sagemaker_emulator.images.xgboost_algorithm train [--legacy]"
#: the legacy first-party image (xgboost:latest / xgboost:1): XGBoost 0.72's hyperparameters, its failure texts
LEGACY_FLAG = "--legacy"


def _write(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(text)


def main(argv: list[str] | None = None) -> int:
    """Run the ``train`` command and return the process exit code."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] != ["train"] or args[1:] not in ([], [LEGACY_FLAG]):
        print(USAGE, file=sys.stderr)
        return 2
    legacy = args[1:] == [LEGACY_FLAG]

    setup_logging()
    import_xgboost_without_sklearn()
    from .distributed import HostExcluded  # imported late: pulls in xgboost
    from .environment import from_env
    from .job import sagemaker_train

    env = from_env()
    try:
        sagemaker_train(env, legacy=legacy)
    except HostExcluded:
        pass
    except Exception as error:  # every failure is reported through the failure file
        text = legacy_failure_text(error) if legacy else failure_text(error)
        _write(os.path.join(env.output_dir, "failure"), text)
        logger.error("Reporting training FAILURE")
        logger.error(text)
        return exit_code_for(error)
    _write(os.path.join(env.output_dir, "success"), "")
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
