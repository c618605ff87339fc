"""Every image URI the SDK can hand a learner for the images we run locally resolves; others do not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sagemaker.core

from sagemaker_emulator.images.registry import resolve, supported_images_text

CONFIG = Path(sagemaker.core.__file__).parent / "image_uri_config"


def _uris(framework: str) -> list[str]:
    from sagemaker.core import image_uris

    config = json.loads((CONFIG / f"{framework}.json").read_text())
    scopes = config.get("versions") and config or config.get("training", config)
    uris = []
    for version, spec in scopes["versions"].items():
        for region in spec.get("registries", {}):
            try:
                uris.append(image_uris.retrieve(framework, region, version, py_version="py3",
                                                instance_type="ml.m5.xlarge"))
            except ValueError:
                continue
    return uris


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["xgboost", "sklearn"])
def test_every_region_and_version_resolves(framework: str):
    uris = _uris(framework)
    assert len(uris) > 50, "the SDK's config should list many regions × versions"
    unresolved = [u for u in uris if resolve(u) is None]
    assert not unresolved, unresolved[:5]


def test_legacy_first_party_xgboost_latest():
    from sagemaker.core import image_uris

    image = resolve(image_uris.retrieve("xgboost", "us-east-1", "latest"))
    assert image is not None and image.legacy and image.framework == "xgboost"


@pytest.mark.parametrize("uri", [
    "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-own:latest",
    "docker.io/library/python:3.11",
    "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.5-cpu-py311",
])
def test_other_images_are_not_runnable(uri: str):
    assert resolve(uri) is None
    assert "sagemaker-xgboost" in supported_images_text()
