"""Where the container finds its configuration and data: a local stand-in for ``/opt/ml``.

The runtime sets ``SAGEMAKER_BASE_DIR`` to the instance directory; every path the AWS container
reads below ``/opt/ml`` is resolved below that directory instead.  Paths inside configuration
files that still say ``/opt/ml/...`` (e.g. the checkpoint ``LocalPath``) are re-rooted likewise.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

BASE_DIR_ENV = "SAGEMAKER_BASE_DIR"
DEFAULT_BASE_DIR = "/opt/ml"


@dataclass(frozen=True)
class Environment:
    """Resolved paths of one training instance."""

    base_dir: str

    def path(self, *parts: str) -> str:
        return os.path.join(self.base_dir, *parts)

    @property
    def config_dir(self) -> str:
        return self.path("input", "config")

    @property
    def model_dir(self) -> str:
        return self.path("model")

    @property
    def output_dir(self) -> str:
        return self.path("output")

    @property
    def output_data_dir(self) -> str:
        return self.path("output", "data")

    def channel_path(self, channel: str) -> str:
        return self.path("input", "data", channel)

    def rebase(self, path: str) -> str:
        """Map an absolute ``/opt/ml/...`` path into this instance directory."""
        if self.base_dir != DEFAULT_BASE_DIR and (
            path == DEFAULT_BASE_DIR or path.startswith(DEFAULT_BASE_DIR + "/")
        ):
            return os.path.join(self.base_dir, os.path.relpath(path, DEFAULT_BASE_DIR))
        return path

    def read_config(self, name: str, default: Any = None) -> Any:
        """Load ``input/config/<name>``; ``default`` when the file does not exist."""
        file_path = os.path.join(self.config_dir, name)
        if not os.path.exists(file_path):
            return default
        with open(file_path) as handle:
            return json.load(handle)


def from_env() -> Environment:
    return Environment(os.path.abspath(os.environ.get(BASE_DIR_ENV) or DEFAULT_BASE_DIR))
