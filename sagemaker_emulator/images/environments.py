"""The Python environment each image tag runs in: the image's own framework versions.

A job "in" ``sagemaker-scikit-learn:1.2-1`` must see that image's scikit-learn, pandas and numpy,
not the emulator's (pandas 2.3 vs the image's 1.x is the difference between a script that works on
AWS and one that only works here). Each row below names what the image's public container repository
pins and what we install locally on Python 3.11, which the images (Python 3.9/3.10) do not run.
Where the pinned release has no wheel for Python 3.11 we take the nearest release that has one; pip
never builds from source (``--only-binary``), so a build either matches this table exactly or fails
(and the job falls back to the emulator's environment, saying so).

One table, one row per image tag: what its public repository pins (branch of
``aws/sagemaker-scikit-learn-container`` / ``aws/sagemaker-xgboost-container``: requirements.txt and the
base Dockerfile), what we install, and why they differ.

============================ ============================================ ==========================================
image tag                    the image pins                               installed here (Python 3.11), and why
============================ ============================================ ==========================================
sagemaker-scikit-learn:1.0-1 scikit-learn 1.0.2, pandas 1.1.3,            scikit-learn 1.1.3, pandas 1.5.3,
                             numpy 1.24.1, scipy 1.8.0 (branch 1.0-1)     scipy 1.9.3: the pinned ones have no cp311
                                                                          wheel; these are the oldest that do
sagemaker-scikit-learn:1.2-1 scikit-learn 1.2.1, pandas 1.1.3,            as pinned, but pandas 1.5.3 (the last 1.x,
                             numpy 1.24.1, scipy 1.8.0, pyarrow 14.0.1,   the first with a cp311 wheel) and scipy
                             boto3 1.28.57 (branch 1.2-1)                 1.9.3 (likewise)
sagemaker-scikit-learn:1.4-2 scikit-learn 1.4.2, pandas 2.3.2,            as pinned; scipy 1.14.1 (a range there:
                             numpy 2.1.0, pyarrow 17.0.0, scipy>=1.9.0,   the newest built for numpy 2.1 then)
                             boto3 1.28.57 (branch v1.4-2)
sagemaker-xgboost:1.7-1      xgboost 1.7.4, pandas 1.2.4, numpy 1.24.1,   as pinned, but pandas 1.5.3, scikit-learn
                             scikit-learn 0.24.1, scipy 1.8.0, pyarrow    1.1.3, scipy 1.9.3 (no cp311 wheel for the
                             14.0.1, boto3 1.17.52 (branch 1.7-1)         pinned ones); boto3 1.28.57, the
                                                                          scikit-learn images' (one download)
sagemaker-xgboost:3.0-5      xgboost 3.0.5, pandas 2.2.3, numpy 2.1.0,    as pinned
                             scikit-learn 1.5.2, scipy 1.15.0, pyarrow
                             22.0.0, boto3 1.38.0 (branch release-3.0.5)
autogluon-training:1.6.3,    Autopilot's ENSEMBLING mode runs             autogluon.tabular 1.6.3 with its LightGBM
autogluon-inference:1.6.3    AutoGluon-Tabular in AWS's AutoGluon         and XGBoost extras (lightgbm 4.7.0,
                             containers (DLC ``autogluon-*``)             xgboost-cpu 3.2.0) and pip's resolution of
                                                                          the rest; CatBoost and the neural networks
                                                                          (torch, fastai) are left out: too heavy for
                                                                          a laptop's two cores and its disk
xgboost:1, xgboost:latest    XGBoost 0.72 (closed-source first-party      the 1.7-1 row, one shared build: 0.72.1
                             image; the algorithm's documented version)   installs (a py2.py3 wheel) but lacks the
                                                                          callback API (1.3) and the collective
                                                                          (1.7) our algorithm runner is built on;
                                                                          1.7.4 is the oldest that runs it, writes
                                                                          the legacy binary model format, and
                                                                          ignores ``silent`` as ``legacy.py``
                                                                          expects
============================ ============================================ ==========================================

Other tags of these repositories run in the emulator's own environment and say so in their log; for
XGBoost that includes 1.5-1 and older, whose XGBoost lacks the collective (1.7) the algorithm runner uses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .registry import Image


@dataclass(frozen=True)
class ImageEnvironment:
    """One image tag's local environment: what pip installs, and which packages the job's log names."""

    #: the image tag whose public repository the pins come from (``sagemaker-xgboost:1.7-1``)
    name: str
    #: exact pins (``name==version``) installed with ``--only-binary``; nothing else is pinned
    requirements: tuple[str, ...]
    #: the distributions named in the job's first log line, in that order
    shown: tuple[str, ...]

    def version_of(self, distribution: str) -> str:
        for requirement in self.requirements:
            name, _, version = requirement.partition("==")
            if name.split("[")[0].lower() == distribution.lower():  # ``autogluon.tabular[lightgbm]==…``
                return version
        raise KeyError(distribution)

    def summary(self) -> str:
        """``scikit-learn 1.2.1, pandas 1.5.3, numpy 1.24.1``."""
        return ", ".join(f"{name} {self.version_of(name)}" for name in self.shown)


_SCIPY_311 = "scipy==1.9.3"  # the oldest scipy with a cp311 wheel that accepts numpy 1.24
_PANDAS_1X_311 = "pandas==1.5.3"  # the last pandas 1.x, the first with cp311 wheels
_SKLEARN_OLD_311 = "scikit-learn==1.1.3"  # the oldest scikit-learn with cp311 wheels

#: (repository, tag family) → environment; a tag family is the ``<major>.<minor>-<build>`` a tag starts with
ENVIRONMENTS: dict[tuple[str, str], ImageEnvironment] = {
    ("sagemaker-scikit-learn", "1.0-1"): ImageEnvironment(
        "sagemaker-scikit-learn:1.0-1",
        (_SKLEARN_OLD_311, _PANDAS_1X_311, "numpy==1.24.1", _SCIPY_311, "python-dateutil==2.8.2",
         "boto3==1.28.57"),
        ("scikit-learn", "pandas", "numpy")),
    ("sagemaker-scikit-learn", "1.2-1"): ImageEnvironment(
        "sagemaker-scikit-learn:1.2-1",
        ("scikit-learn==1.2.1", _PANDAS_1X_311, "numpy==1.24.1", _SCIPY_311, "pyarrow==14.0.1",
         "python-dateutil==2.8.2", "boto3==1.28.57"),
        ("scikit-learn", "pandas", "numpy")),
    ("sagemaker-scikit-learn", "1.4-2"): ImageEnvironment(
        "sagemaker-scikit-learn:1.4-2",
        ("scikit-learn==1.4.2", "pandas==2.3.2", "numpy==2.1.0", "scipy==1.14.1", "pyarrow==17.0.0",
         "boto3==1.28.57"),
        ("scikit-learn", "pandas", "numpy")),
    ("sagemaker-xgboost", "1.7-1"): ImageEnvironment(
        "sagemaker-xgboost:1.7-1",
        ("xgboost==1.7.4", _PANDAS_1X_311, "numpy==1.24.1", _SKLEARN_OLD_311, _SCIPY_311, "pyarrow==14.0.1",
         "python-dateutil==2.8.2", "boto3==1.28.57"),
        ("xgboost", "pandas", "numpy", "scikit-learn")),
    ("sagemaker-xgboost", "3.0-5"): ImageEnvironment(
        "sagemaker-xgboost:3.0-5",
        ("xgboost==3.0.5", "pandas==2.2.3", "numpy==2.1.0", "scikit-learn==1.5.2", "scipy==1.15.0",
         "pyarrow==22.0.0", "boto3==1.38.0"),
        ("xgboost", "pandas", "numpy", "scikit-learn")),
}
ENVIRONMENTS[("xgboost", "1")] = ENVIRONMENTS[("sagemaker-xgboost", "1.7-1")]
#: Autopilot's ENSEMBLING mode (``images.autopilot``): one environment for its training and inference images
AUTOGLUON = ImageEnvironment(
    "autogluon:1.6.3",
    ("autogluon.tabular==1.6.3", "lightgbm==4.7.0", "xgboost-cpu==3.2.0", "pandas==2.3.3",
     "numpy==2.4.6", "scikit-learn==1.9.1"),
    ("autogluon.tabular", "lightgbm", "xgboost-cpu", "pandas"))
ENVIRONMENTS[("autogluon-training", "1.6.3")] = AUTOGLUON
ENVIRONMENTS[("autogluon-inference", "1.6.3")] = AUTOGLUON

_FAMILY = re.compile(r"^\d+\.\d+-\d+")
_VERSION = re.compile(r"^\d+\.\d+\.\d+")  # the AutoGluon containers' tags: ``1.6.3-cpu-py311``


def tag_family(image: Image) -> str:
    """``1.2-1-cpu-py3`` → ``1.2-1``; the legacy image's ``latest`` is ``1`` (the SDK's own alias)."""
    if image.legacy:
        return "1" if image.tag in ("1", "latest") else image.tag
    match = _FAMILY.match(image.tag) or _VERSION.match(image.tag)
    return match.group(0) if match else image.tag


def environment_for(image: Image) -> ImageEnvironment | None:
    """The pinned environment of ``image``'s tag, or None: that tag runs in the emulator's environment."""
    return ENVIRONMENTS.get((image.repository, tag_family(image)))
