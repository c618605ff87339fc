"""What the analyzer is asked to do, read from its environment as the real container reads it.

The names and defaults are the container's own (its ``AnalyticsInput``): a CSV
without header unless told, output columns first, captured index names
``endpointInput``/``endpointOutput``. A value the container cannot use is an
``InputError`` whose message ends the job, as a ``ClientError``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class InputError(Exception):
    """A bad job input (environment, dataset, baseline file): the job fails with this message."""


@dataclass(frozen=True)
class DatasetFormat:
    """``dataset_format``: exactly one of csv / json / parquet / captured (``sagemakerCaptureJson``)."""

    kind: str
    header: bool = False
    output_columns_position: str = "START"
    field_delimiter: str = ","
    lines: bool = True
    capture_index_names: tuple[str, ...] = ("endpointInput", "endpointOutput")

    @classmethod
    def parse(cls, text: str | None) -> DatasetFormat:
        if not text:
            raise InputError("Dataset format is missing: set the environment variable dataset_format.")
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"dataset_format is not valid JSON: {exc}") from None
        if not isinstance(value, dict) or len(value) != 1:
            raise InputError(f"dataset_format must name exactly one format (csv, json, parquet or "
                             f"sagemakerCaptureJson), got {text[:200]}")
        (kind, options), = value.items()
        options = options if isinstance(options, dict) else {}
        if kind == "csv":
            position = options.get("output_columns_position", "START")
            if position not in ("START", "END"):
                raise InputError("Invalid value for output_columns_position")
            return cls("csv", header=bool(options.get("header", False)), output_columns_position=position,
                       field_delimiter=options.get("field_delimiter", ","))
        if kind == "json":
            return cls("json", lines=bool(options.get("lines", True)))
        if kind == "parquet":
            return cls("parquet")
        if kind in ("sagemakerCaptureJson", "captured"):
            names = options.get("captureIndexNames") or options.get("captured_index_names")
            return cls("captured", capture_index_names=tuple(names or cls.capture_index_names))
        raise InputError(f"Unknown dataset format {kind!r}: expected csv, json, parquet or sagemakerCaptureJson.")


def _time(name: str, text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"{name} '{text}' is not an ISO-8601 time (e.g. 2026-12-02T09:00:00Z).") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class AnalyzerInput:
    """The container's inputs: dataset, format, baseline files, scripts, window and analysis type."""

    dataset_source: Path
    dataset_format: DatasetFormat
    output_path: Path
    base_dir: Path
    baseline_statistics: Path | None = None
    baseline_constraints: Path | None = None
    record_preprocessor_script: Path | None = None
    post_analytics_processor_script: Path | None = None
    publish_cloudwatch_metrics: bool = False
    start_time: dt.datetime | None = None
    end_time: dt.datetime | None = None
    endpoint_name: str = ""
    schedule_name: str = ""
    categorical_drift_method: str | None = None
    analysis_type: str = "DATA_QUALITY"
    model_quality: dict[str, str] = field(default_factory=dict)

    @property
    def monitoring(self) -> bool:
        """A monitoring execution compares with a baseline; a baselining job suggests one."""
        return self.baseline_constraints is not None or self.baseline_statistics is not None

    @classmethod
    def from_environment(cls, env: dict[str, str] | None = None) -> AnalyzerInput:
        env = dict(os.environ if env is None else env)
        base = Path(env.get("SAGEMAKER_BASE_DIR", "/opt/ml"))

        def path(name: str) -> Path | None:
            value = env.get(name)
            return Path(value) if value else None

        source = path("dataset_source")
        if source is None:
            raise InputError("dataset_source is missing: set it to the local path of the dataset.")
        output = path("output_path") or base / "processing" / "output"
        mq_keys = ("problem_type", "inference_attribute", "probability_attribute", "ground_truth_attribute",
                   "probability_threshold_attribute", "positive_label", "ground_truth_source")
        return cls(
            dataset_source=source, dataset_format=DatasetFormat.parse(env.get("dataset_format")),
            output_path=output, base_dir=base,
            baseline_statistics=path("baseline_statistics"), baseline_constraints=path("baseline_constraints"),
            record_preprocessor_script=path("record_preprocessor_script"),
            post_analytics_processor_script=path("post_analytics_processor_script"),
            publish_cloudwatch_metrics=env.get("publish_cloudwatch_metrics", "Disabled") == "Enabled",
            start_time=_time("start_time", env.get("start_time")), end_time=_time("end_time", env.get("end_time")),
            endpoint_name=env.get("sagemaker_endpoint_name", ""),
            schedule_name=env.get("sagemaker_monitoring_schedule_name", ""),
            categorical_drift_method=env.get("categorical_drift_method") or None,
            analysis_type=env.get("analysis_type", "DATA_QUALITY").upper(),
            model_quality={k: env[k] for k in mq_keys if env.get(k)},
        )

    def read_json(self, path: Path, what: str) -> dict[str, Any]:
        """A baseline file; missing or malformed is the job's failure, named."""
        try:
            value = json.loads(path.read_text())
        except FileNotFoundError:
            raise InputError(f"The baseline {what} file {path.name} was not found in the job's inputs.") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"The baseline {what} file {path.name} is not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise InputError(f"The baseline {what} file {path.name} must hold a JSON object.")
        return value
