"""The ``sagemaker-clarify-processing`` image: bias metrics and Kernel SHAP for a Clarify processing job.

The SDK V3 ``SageMakerClarifyProcessor`` uploads ``analysis_config.json`` and starts a processing job
of this image with no entrypoint; the job reads the config and the dataset from
``/opt/ml/processing/input/{config,data}`` and writes ``/opt/ml/processing/output``. Its packages
(``smclarify``, ``shap``) are declared in ``requirements.txt`` beside this file and live in their own
cached environment, never in the emulator's.
"""

from __future__ import annotations

import os
from pathlib import Path

REPOSITORY = "sagemaker-clarify-processing"
REQUIREMENTS = Path(__file__).with_name("requirements.txt")
#: what a warm worker of the image's environment imports before it forks a job (``runtime.warm``): a cold start
#: spends 3-5 s of a 2-core machine importing these (shap and smclarify pull in scikit-learn, numba, pandas)
PRELOAD = (
    "numpy", "pandas", "boto3", "shap", "smclarify.bias.report",
    "sagemaker_emulator.images.clarify.config", "sagemaker_emulator.images.clarify.analyses",
    "sagemaker_emulator.images.clarify.predictor", "sagemaker_emulator.images.clarify.report",
)


def environment_root(cache_dir: Path) -> Path:
    """Where the image's environment is cached: the shared image-environment folder when one is configured.

    Why: like the framework images' environments (``runtime.imageenvs``), it is the same for every emulator of
    a machine, and a CI run starts several emulators; built under ``cache_dir`` it would be built (about a
    minute) once per emulator state instead of once per run. Builds are locked, so sharing is safe.
    """
    from ...runtime.imageenvs import DIR_ENV

    shared = os.environ.get(DIR_ENV)
    return Path(shared).expanduser().resolve() if shared else cache_dir


def command(cache_dir: Path) -> list[str]:
    """The image's entrypoint: this package run by the interpreter of its environment (built on first use)."""
    from ...runtime.pyenvs import python_for_requirements

    return [str(python_for_requirements(REQUIREMENTS, environment_root(cache_dir))), "-m", __name__]
