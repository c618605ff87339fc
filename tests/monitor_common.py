"""What the Model Monitor and CloudWatch tests share: the analyzer image and the SDK's environment.

Imported like ``jobs_common.py``; ``sdk_env`` is a module-scoped fixture (modules import it by name).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sagemaker_emulator.app import Emulator

ANALYZER = "156813124566.dkr.ecr.us-east-1.amazonaws.com/sagemaker-model-monitor-analyzer"


@pytest.fixture(scope="module")
def sdk_env(emulator: Emulator) -> Iterator[None]:
    """The environment ``sagemaker-emulator env`` exports, for a whole module: the SDK V3 builds its own
    clients from it (the ``emulator_env`` fixture of conftest is per test, too late for module fixtures)."""
    from sagemaker_emulator.envvars import environment

    with pytest.MonkeyPatch.context() as patch:
        for key, value in environment(emulator.paths.root, emulator.endpoint_url, "us-east-1").items():
            patch.setenv(key, value)
        for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
            patch.delenv(key, raising=False)
        yield
