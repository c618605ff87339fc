"""``analysis_config.json`` and the dataset, read and checked as the Clarify container needs them.

The fields are those the SDK's ``_AnalysisConfigGenerator`` writes (``dataset_type``, ``headers``,
``label``, ``label_values_or_threshold``, ``facet``, ``group_variable``, ``excluded_columns``,
``probability_threshold``, ``methods``, ``predictor``). A configuration the job cannot run with is an
``AnalysisConfigError`` whose message names the field and what was expected.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

SUPPORTED_DATASET_TYPES = ("text/csv",)
PRE_TRAINING = ("CDDL", "CI", "DPL", "JS", "KL", "KS", "LP", "TVD")
POST_TRAINING = ("AD", "CDDPL", "DAR", "DCA", "DCR", "DI", "DPPL", "DRR", "FT", "GE", "RD", "SD", "TE")
AGG_METHODS = ("mean_abs", "mean_sq", "median")


class AnalysisConfigError(ValueError):
    """The analysis configuration or the dataset does not allow the analysis; the job fails saying why."""


@dataclass
class Analysis:
    config: dict[str, Any]
    data: pd.DataFrame
    label: str | None
    features: list[str]
    facets: list[dict[str, Any]] = field(default_factory=list)

    @property
    def methods(self) -> dict[str, Any]:
        return self.config.get("methods") or {}


def metric_names(entry: dict[str, Any], known: tuple[str, ...], stage: str) -> list[str]:
    """``"all"`` or a list / comma-separated string of metric names, each one Clarify knows."""
    methods = entry.get("methods", "all")
    if methods == "all":
        return ["all"]
    names = [m.strip() for m in (methods.split(",") if isinstance(methods, str) else methods)]
    unknown = [m for m in names if m not in known]
    if unknown or not names:
        raise AnalysisConfigError(f"Invalid {stage} bias methods {unknown or names}: choose from {', '.join(known)} "
                                  f"or \"all\".")
    return names


def _column(data: pd.DataFrame, name_or_index: Any, what: str) -> str:
    if isinstance(name_or_index, int) and not isinstance(name_or_index, bool):
        if not 0 <= name_or_index < len(data.columns):
            raise AnalysisConfigError(f"The {what} index {name_or_index} is out of range: the dataset has "
                                      f"{len(data.columns)} columns.")
        return str(data.columns[name_or_index])
    if name_or_index not in data.columns:
        raise AnalysisConfigError(f"The {what} \"{name_or_index}\" is not a column of the dataset; its columns are: "
                                  f"{', '.join(map(str, data.columns))}.")
    return str(name_or_index)


def _has_header(path: Path, headers: list[str] | None) -> bool:
    """Whether the file's first line is the header row (the configured ``headers``, in order)."""
    if not headers:
        return False
    with path.open(encoding="utf-8", errors="replace") as handle:
        first = handle.readline()
    return [part.strip().strip('"') for part in first.rstrip("\r\n").split(",")] == [str(h) for h in headers]


def read_dataset(folder: Path, headers: list[str] | None) -> pd.DataFrame:
    """Every CSV file under ``folder``; a first row equal to ``headers`` is a header row and is dropped."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise AnalysisConfigError(f"No dataset file found under {folder.name}: check DataConfig.s3_data_input_path.")
    frames = [pd.read_csv(p, header=0 if _has_header(p, headers) else None, skipinitialspace=True) for p in files]
    data = pd.concat([frame.set_axis(range(frame.shape[1]), axis=1) for frame in frames], ignore_index=True)
    if headers is not None:
        if len(headers) != len(data.columns):
            raise AnalysisConfigError(f"The dataset has {len(data.columns)} columns but the headers name "
                                      f"{len(headers)}.")
        data.columns = headers
    else:
        data.columns = [f"column_{i}" for i in range(len(data.columns))]
    return data


def load(config_dir: Path, data_dir: Path) -> Analysis:
    path = config_dir / "analysis_config.json"
    if not path.exists():
        raise AnalysisConfigError("analysis_config.json was not found in the analysis_config input.")
    config = json.loads(path.read_text())
    dataset_type = config.get("dataset_type")
    if dataset_type not in SUPPORTED_DATASET_TYPES:
        raise AnalysisConfigError(f"dataset_type {dataset_type!r} is not supported by the local Clarify image; "
                                  f"use one of {', '.join(SUPPORTED_DATASET_TYPES)}.")
    methods = config.get("methods") or {}
    if not set(methods) - {"report"}:
        raise AnalysisConfigError("methods must contain at least one of pre_training_bias, post_training_bias, shap.")
    data = read_dataset(data_dir, config.get("headers"))
    label = _column(data, config["label"], "label") if config.get("label") is not None else None
    facets = []
    for facet in config.get("facet") or []:
        facets.append({"name": _column(data, facet.get("name_or_index"), "facet"),
                       "value_or_threshold": facet.get("value_or_threshold")})
    if ("pre_training_bias" in methods or "post_training_bias" in methods) and (label is None or not facets):
        raise AnalysisConfigError("Bias analysis needs a label and at least one facet (BiasConfig.facet_name).")
    if label is not None and "label_values_or_threshold" not in config and facets:
        raise AnalysisConfigError("label_values_or_threshold is required for bias analysis.")
    for stage, known in (("pre_training_bias", PRE_TRAINING), ("post_training_bias", POST_TRAINING)):
        if stage in methods:
            metric_names(methods[stage], known, stage.split("_training")[0] + "-training")
    if "shap" in methods and methods["shap"].get("agg_method", "mean_abs") not in AGG_METHODS:
        raise AnalysisConfigError(f"Invalid shap agg_method {methods['shap']['agg_method']!r}: choose from "
                                  f"{', '.join(AGG_METHODS)}.")
    if config.get("group_variable") is not None:
        config["group_variable"] = _column(data, config["group_variable"], "group_variable")
    excluded = [_column(data, c, "excluded column") for c in config.get("excluded_columns") or []]
    predicted = config.get("predicted_label")
    features = [c for c in data.columns if c != label and c not in excluded and c != predicted]
    return Analysis(config, data, label, features, facets)
