"""What a container image URI means locally.

SageMaker runs an image; we run a local program that honours the same
contract. The mapping is by ECR repository name, for every region and
partition the SDK's ``image_uris.retrieve`` can return, so a notebook that
asks the SDK for "xgboost 1.7-1 in eu-west-1" gets a job we can run.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

_ECR = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.[a-z0-9.-]+"  # amazonaws.com, .cn, ISO partitions
    r"/(?P<repo>[a-z0-9._/-]+)(?::(?P<tag>[A-Za-z0-9._-]+))?(?:@sha256:[0-9a-f]{64})?$"
)

#: repository → (framework, description of what runs it locally)
REPOSITORIES: dict[str, tuple[str, str]] = {
    "sagemaker-xgboost": ("xgboost", "SageMaker XGBoost (built-in algorithm and script mode)"),
    "xgboost": ("xgboost", "legacy first-party XGBoost algorithm (xgboost:latest / xgboost:1)"),
    "sagemaker-scikit-learn": ("sklearn", "SageMaker scikit-learn (script mode and processing)"),
    "sagemaker-model-monitor-analyzer": ("model-monitor", "SageMaker Model Monitor analyzer (data and model quality)"),
    # the images @step/@remote functions run in: Studio's SageMaker Distribution, the SDK's base-python default
    "sagemaker-distribution-prod": ("python", "SageMaker Distribution (@step/@remote functions)"),
    "sagemaker-base-python-310": ("python", "SageMaker base Python 3.10 (@step/@remote functions)"),
    "sagemaker-base-python-38": ("python", "SageMaker base Python 3.8 (@step/@remote functions)"),
    "sagemaker-debugger-rules": ("debugger", "SageMaker Debugger rule evaluator (built-in rules)"),
    "sagemaker-clarify-processing": ("clarify", "SageMaker Clarify processing (bias metrics, Kernel SHAP)"),
    # Autopilot's ENSEMBLING mode: AutoGluon-Tabular (``images.autopilot``), trained and served
    "autogluon-training": ("autogluon", "AutoGluon-Tabular training (Autopilot ENSEMBLING mode)"),
    "autogluon-inference": ("autogluon", "AutoGluon-Tabular inference (Autopilot ENSEMBLING candidates)"),
    # Autopilot's HYPERPARAMETER_TUNING candidates: their feature and label transformation containers
    "sagemaker-sklearn-automl": ("automl-transform", "Autopilot data transformation (sklearn-automl)"),
}

#: the command an image runs when a job gives no ``ContainerEntrypoint`` (its Dockerfile's ENTRYPOINT)
DEFAULT_COMMANDS: dict[str, list[str]] = {
    "sagemaker-model-monitor-analyzer": ["-m", "sagemaker_emulator.images.model_monitor"],
}
#: the image ``sagemaker-emulator env`` names as ``SAGEMAKER_INTERNAL_IMAGE_URI`` (Studio sets it to its own)
REMOTE_FUNCTION_IMAGE = "885854791233.dkr.ecr.{region}.amazonaws.com/sagemaker-distribution-prod:4.4-cpu"


@dataclass(frozen=True)
class Image:
    uri: str
    repository: str
    tag: str
    framework: str
    region: str

    @property
    def legacy(self) -> bool:
        return self.repository == "xgboost"

    def describe_local(self) -> str:
        """What runs the image here; its library versions are in the job's first log line (``runtime.imageenvs``)."""
        label = REPOSITORIES[self.repository][1]
        if self.legacy:
            return f"{label}: XGBoost 0.72's hyperparameters, run locally (no container)"
        return f"{label}, run locally (no container)"


def resolve(uri: str) -> Image | None:
    """The local meaning of ``uri``, or None when the emulator cannot run it."""
    match = _ECR.match(uri.strip())
    if not match or match.group("repo") not in REPOSITORIES:
        return None
    repo = match.group("repo")
    return Image(uri, repo, match.group("tag") or "latest", REPOSITORIES[repo][0], match.group("region"))


def processing_command(image: Image, cache_dir: Path) -> list[str] | None:
    """The program an image runs as a processing job when the job names no ``ContainerEntrypoint``."""
    if image.repository in DEFAULT_COMMANDS:
        return [sys.executable, *DEFAULT_COMMANDS[image.repository]]
    if image.framework == "clarify":
        from .clarify import command

        return command(cache_dir)
    return None


def supported_images_text() -> str:
    names = ", ".join(f"{repo}:<tag>" for repo in REPOSITORIES)
    return (
        f"The local emulator can run these images (any region, as returned by "
        f"sagemaker.core.image_uris.retrieve): {names}."
    )
