"""Console output of the container: log lines and per-round metric lines.

The runtime turns every stdout/stderr line into a CloudWatch event as soon as it is printed, so
everything is written to stdout and flushed line by line.  (The AWS container logs to stderr and
prints metric lines to stdout; both streams end up in the same CloudWatch stream, and one stream
keeps their relative order stable here.)  Timestamps are UTC, as in the AWS container.
"""

from __future__ import annotations

import logging
import sys
import time
import warnings

LOG_FORMAT = "[%(asctime)s:%(levelname)s] %(message)s"
DATE_FORMAT = "%Y-%m-%d:%H:%M:%S"

logger = logging.getLogger("sagemaker_xgboost_container")


class _FlushingStdoutHandler(logging.StreamHandler):
    """A stream handler bound to the *current* ``sys.stdout`` that flushes after every record."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    def emit(self, record: logging.LogRecord) -> None:
        self.setStream(sys.stdout)
        super().emit(record)
        self.flush()


def setup_logging() -> None:
    """Configure the root logger like the container's ``integration.setup_main_logger`` (INFO, verbose)."""
    formatter = logging.Formatter(LOG_FORMAT, datefmt=DATE_FORMAT)
    formatter.converter = time.gmtime
    handler = _FlushingStdoutHandler()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    # XGBoost >= 3.1 warns that URI text loading is deprecated; the 1.7 container never printed this.
    warnings.filterwarnings("ignore", message=r".*Text file input has been deprecated.*")
    # XGBoost >= 2.1 announces the UBJSON default for extension-less names on every save.
    warnings.filterwarnings("ignore", message=r".*Saving model in the UBJSON format as default.*")
    warnings.filterwarnings("ignore", message=r".*Unknown file format.*Using UBJSON.*")


def print_line(text: str) -> None:
    """Print one raw line (e.g. ``[3]\\ttrain-auc:0.91234``) and flush it immediately."""
    sys.stdout.write(text.rstrip("\n") + "\n")
    sys.stdout.flush()
