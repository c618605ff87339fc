"""The analyzer's run: read the inputs, suggest a baseline or check against one, write the result files.

A baselining job writes ``statistics.json`` and ``constraints.json``; a
monitoring execution writes ``statistics.json`` and
``constraint_violations.json`` (plus feature metrics for CloudWatch when
``publish_cloudwatch_metrics`` is ``Enabled``) and leaves its verdict in
``/opt/ml/output/message``, which becomes the processing job's
``ExitMessage`` (``CompletedWithViolations: Job completed successfully with 3
violations.``). Input errors end the job with exit code 1 and the reason.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

from . import model_quality
from .constraints import suggest
from .dataset import load_handler, read_baseline_dataset, read_captured
from .inputs import AnalyzerInput, InputError
from .statistics import SKETCH_SIZE, Column, columns_of, statistics
from .violations import Report, check

log = logging.getLogger("model-monitor")


def jackson(value: Any, indent: str = "") -> str:
    """JSON as the real container's Jackson pretty printer lays it out: objects one member a line with
    ``" : "``, arrays inline (``[ 1.0, 2.0 ]``), objects in arrays opened on the same line."""
    if isinstance(value, dict):
        if not value:
            return "{ }"
        inner = indent + "  "
        members = ",\n".join(f"{inner}{json.dumps(k)} : {jackson(v, inner)}" for k, v in value.items())
        return "{\n" + members + "\n" + indent + "}"
    if isinstance(value, list):
        if not value:
            return "[ ]"
        if not any(isinstance(v, dict | list) for v in value):  # scalars (sketches): one dumps, same text
            return "[ " + json.dumps(value)[1:-1] + " ]"
        return "[ " + ", ".join(jackson(v, indent) for v in value) + " ]"
    return json.dumps(value)


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(jackson(document) + "\n")


def _message(text: str) -> None:
    """``/opt/ml/output/message``: the processing job's ``ExitMessage``."""
    path = Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml")) / "output" / "message"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def baseline(inputs: AnalyzerInput) -> None:
    table = read_baseline_dataset(inputs, arrow=True)
    if len(table) == 0 or not table.shape[1]:
        raise InputError("The baseline dataset has no records.")
    log.info("Baseline dataset: %d records, %d columns", len(table), table.shape[1])
    columns = columns_of(table)
    write_json(inputs.output_path / "statistics.json", statistics(columns, len(table)))
    write_json(inputs.output_path / "constraints.json",
               suggest(columns, len(table), inputs.categorical_drift_method))
    log.info("Wrote statistics.json and constraints.json to %s", inputs.output_path)


def monitor(inputs: AnalyzerInput) -> Report:
    constraints = inputs.read_json(inputs.baseline_constraints, "constraints") if inputs.baseline_constraints \
        else {"features": []}
    base_stats = inputs.read_json(inputs.baseline_statistics, "statistics") if inputs.baseline_statistics else None
    names = [f.get("name") for f in constraints.get("features") or [] if isinstance(f, dict)]
    table = read_captured(inputs, [n for n in names if isinstance(n, str)]) \
        if inputs.dataset_format.kind == "captured" else read_baseline_dataset(inputs, arrow=True)
    window = f" between {inputs.start_time:%Y-%m-%dT%H:%M:%SZ} and {inputs.end_time:%Y-%m-%dT%H:%M:%SZ}" \
        if inputs.start_time and inputs.end_time else ""
    if len(table) == 0 or not table.shape[1]:
        raise InputError(f"No data to analyze: the dataset has no records{window}.")
    log.info("Analyzing %d records%s, %d columns", len(table), window, table.shape[1])
    columns = columns_of(table)
    write_json(inputs.output_path / "statistics.json", statistics(columns, len(table)))
    report = check(constraints, base_stats, columns, len(table))
    write_json(inputs.output_path / "constraint_violations.json", {"violations": report.violations})
    if inputs.publish_cloudwatch_metrics and (constraints.get("monitoring_config") or {}).get(
            "emit_metrics", "Enabled") == "Enabled":
        _write_metrics(inputs, columns, len(table), report)
    return report


def _write_metrics(inputs: AnalyzerInput, columns: list[Column], item_count: int, report: Report) -> None:
    """Feature metrics as JSON lines in ``/opt/ml/output/metrics/cloudwatch`` (the BYOC contract);
    the monitoring service publishes them."""
    when = (inputs.end_time or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    dims = [{"Name": "Endpoint", "Value": inputs.endpoint_name},
            {"Name": "MonitoringSchedule", "Value": inputs.schedule_name}]
    lines = []
    for column in columns:
        metric = {"Timestamp": when, "Dimensions": dims}
        non_null = column.count / item_count if item_count else 0.0
        lines.append({**metric, "MetricName": f"feature_non_null_{column.name}", "Value": non_null})
        if column.inferred_type in ("Integral", "Fractional"):
            values = column.numbers()
            lines.append({**metric, "MetricName": f"feature_data_{column.name}", "StatisticValues": {
                "SampleCount": float(values.size), "Sum": float(values.sum()),
                "Minimum": float(values.min()), "Maximum": float(values.max())}})
        if column.name in report.drift:
            lines.append({**metric, "MetricName": f"feature_baseline_drift_{column.name}",
                          "Value": report.drift[column.name]})
    path = inputs.base_dir / "output" / "metrics" / "cloudwatch" / "data-metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    log.info("Wrote %d CloudWatch metrics", len(lines))


def model_quality_run(inputs: AnalyzerInput) -> None:
    source = inputs.model_quality.get("ground_truth_source")
    stats, found = model_quality.run(inputs, Path(source) if source else None)
    write_json(inputs.output_path / "statistics.json", stats)
    if found is None:
        section = next(k for k in stats if k.endswith("_metrics"))
        write_json(inputs.output_path / "constraints.json", model_quality.suggest(section, stats[section]))
        log.info("Model quality baseline of %d records written", stats["dataset"]["item_count"])
        return
    write_json(inputs.output_path / "constraint_violations.json", {"violations": found})
    for violation in found:
        log.info("Violation: %s", violation["description"])
    _message(f"CompletedWithViolations: Job completed successfully with {len(found)} violations."
             if found else "Completed: Job completed successfully with no violations.")


def run(inputs: AnalyzerInput) -> int:
    started = time.monotonic()
    if inputs.analysis_type not in ("DATA_QUALITY", "MODEL_QUALITY", ""):
        raise InputError(f"analysis_type {inputs.analysis_type} is not provided by the local analyzer "
                         f"(it provides DATA_QUALITY and MODEL_QUALITY).")
    if inputs.analysis_type == "MODEL_QUALITY":
        model_quality_run(inputs)
    elif inputs.monitoring:
        report = monitor(inputs)
        count = len(report.violations)
        for violation in report.violations:
            log.info("Violation: %s %s: %s", violation["feature_name"], violation["constraint_check_type"],
                     violation["description"])
        _message(f"CompletedWithViolations: Job completed successfully with {count} violations."
                 if count else "Completed: Job completed successfully with no violations.")
    else:
        baseline(inputs)
    if inputs.post_analytics_processor_script is not None:
        log.info("Running postprocess_handler() of %s", inputs.post_analytics_processor_script.name)
        load_handler(inputs.post_analytics_processor_script, "postprocess_handler")()
    log.info("Analysis finished in %.2f s", time.monotonic() - started)
    return 0


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s - %(message)s")
    log.info("Model Monitor analyzer (local emulator): pandas %s, numpy %s, scipy %s. Statistics, quantiles and "
             "drift distances are exact (no KLL sketching error); the sketch in statistics.json holds the values "
             "or %d evenly spaced quantiles of them.", version("pandas"), version("numpy"), version("scipy"),
             SKETCH_SIZE)
    try:
        inputs = AnalyzerInput.from_environment()
        log.info("Mode: %s; dataset %s (%s)", "monitoring" if inputs.monitoring else "baselining",
                 inputs.dataset_source, inputs.dataset_format.kind)
        return run(inputs)
    except InputError as exc:
        log.error("Error: %s", exc)
        _message(f"ClientError: {exc}")
        return 1
