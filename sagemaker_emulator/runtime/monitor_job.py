"""The processing job of one monitoring execution, as the monitoring service builds it.

From the schedule's job definition (named or inline) and the scheduled time:
the captured data of the analysis window (one input per variant and hour
folder, laid out ``<endpoint>/<variant>/yyyy/mm/dd/hh/`` under the input's
``LocalPath``), the baseline files, the user's scripts, the report location
``<S3Uri>/<endpoint>/<schedule>/yyyy/mm/dd/hh`` (the scheduled hour) and the
analyzer's environment (``dataset_format``, ``dataset_source``,
``start_time``/``end_time`` …). A window without captured data ends the
execution ``Failed`` before any job starts, as on AWS.

The window is computed on the schedule's emulated clock and handed to the
analyzer in real time (what the captured records carry); the job's
environment states both, in ``sagemaker_emulator_clock``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import posixpath
import re
from typing import Any

from .monitor_clock import HOUR, Clock, Schedule, iso, parse_offset
from .staging import parse_s3_uri

#: seconds after a window's end before its execution starts: data capture writes its records every second
CAPTURE_DELAY = 1.5
NO_DATA = "Job inputs had no data"
CAPTURED_FORMAT = {"sagemakerCaptureJson": {"captureIndexNames": ["endpointInput", "endpointOutput"]}}
BASELINE_STATS = "/opt/ml/processing/baseline/stats"
BASELINE_CONSTRAINTS = "/opt/ml/processing/baseline/constraints"
CODE = "/opt/ml/processing/code"
GROUND_TRUTH = "/opt/ml/processing/groundtruth"
VARIANT = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")  # SageMaker's VariantName


class NoData(Exception):
    """The execution's window holds no captured data: it ends ``Failed`` with this reason."""


def definition_of(emulator: Any, schedule: dict[str, Any]) -> dict[str, Any]:
    """The schedule's job definition, in one shape whatever its kind (named or inline)."""
    config = schedule["MonitoringScheduleConfig"]
    name = config.get("MonitoringJobDefinitionName")
    if not name:
        inline = config["MonitoringJobDefinition"]
        app = inline["MonitoringAppSpecification"]
        return {"app": app, "input": inline["MonitoringInputs"][0], "outputs": inline["MonitoringOutputConfig"],
                "resources": inline["MonitoringResources"], "baseline": inline.get("BaselineConfig") or {},
                "environment": inline.get("Environment") or {}, "role": inline["RoleArn"],
                "stopping": inline.get("StoppingCondition"), "network": inline.get("NetworkConfig")}
    kind = schedule["MonitoringType"]
    record = emulator.state.get(f"{kind}JobDefinition", name)
    if record is None:
        raise ValueError(f"The job definition {name} of the schedule no longer exists.")
    app = record[f"{kind}AppSpecification"]
    return {"app": app, "input": record[f"{kind}JobInput"], "outputs": record[f"{kind}JobOutputConfig"],
            "resources": record["JobResources"], "baseline": record.get(f"{kind}BaselineConfig") or {},
            "environment": app.get("Environment") or {}, "role": record["RoleArn"],
            "stopping": record.get("StoppingCondition"), "network": record.get("NetworkConfig"), "kind": kind}


def window(schedule: dict[str, Any], source: dict[str, Any], scheduled: float) -> tuple[float, float]:
    """The emulated analysis window: the hour before the scheduled time, or the configured offsets."""
    config = schedule["MonitoringScheduleConfig"]["ScheduleConfig"]
    if Schedule.parse(config["ScheduleExpression"]).once:
        start, end = config["DataAnalysisStartTime"], config["DataAnalysisEndTime"]
    else:
        start, end = source.get("StartTimeOffset") or "-PT1H", source.get("EndTimeOffset") or "-PT0H"
    return scheduled + parse_offset(start, "StartTimeOffset"), scheduled + parse_offset(end, "EndTimeOffset")


def real_window(schedule: dict[str, Any], clock: Clock, start: float, end: float) -> tuple[float, float]:
    """The real times of captures that the emulated window ``start``..``end`` analyses.

    After the schedule's creation (its clock's anchor) emulated time runs fast; before it, it is real time.
    A periodic schedule's window that began before the schedule existed reaches back one full window
    before the creation: the first execution analyses the traffic of the hour before the schedule was
    created and what came since, wherever the real hour boundaries fall. Without that, traffic sent at
    10:59:59 to a schedule created at 11:00:01 would miss the first window (11:00 onwards) and that
    execution would fail for want of data."""
    real_start, real_end = clock.real(start), clock.real(end)
    if start < clock.anchor and not Schedule.parse(
            schedule["MonitoringScheduleConfig"]["ScheduleConfig"]["ScheduleExpression"]).once:
        real_start = min(real_start, clock.anchor - (end - start))
    return real_start, real_end


def _hours(start: float, end: float) -> list[dt.datetime]:
    first = dt.datetime.fromtimestamp(start, dt.UTC).replace(minute=0, second=0, microsecond=0)
    hours = []
    while first.timestamp() < end:
        hours.append(first)
        first += dt.timedelta(hours=1)
    return hours


def _s3_input(name: str, uri: str, local: str, source: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"InputName": name, "S3Input": {
        "S3Uri": uri, "LocalPath": local, "S3DataType": "S3Prefix",
        "S3InputMode": (source or {}).get("S3InputMode") or "File",
        "S3DataDistributionType": (source or {}).get("S3DataDistributionType") or "FullyReplicated"}}


def captured_inputs(emulator: Any, endpoint: str, local: str, start: float, end: float,
                    source: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    """One input per variant and hour folder of the real window that holds captured files; the prefix."""
    record = emulator.state.get("Endpoint", endpoint)
    if record is None:
        raise NoData(f"{NO_DATA}: the endpoint {endpoint} no longer exists.")
    config = emulator.state.get("EndpointConfig", record["EndpointConfigName"]) or {}
    destination = ((config.get("DataCaptureConfig") or {}).get("DestinationS3Uri") or "").rstrip("/")
    if not destination:
        raise NoData(f"{NO_DATA}: the endpoint {endpoint} no longer captures data.")
    bucket, prefix = parse_s3_uri(destination)
    base = "/".join(p for p in (prefix.strip("/"), endpoint) if p)
    store = emulator.s3.store
    keys = [o.key for o in store.list_objects(bucket, base + "/")] if store.bucket_exists(bucket) else []
    folders = sorted({posixpath.dirname(k) for k in keys if k.endswith(".jsonl")})
    wanted = {h.strftime("%Y/%m/%d/%H") for h in _hours(start, end)}
    inputs = []
    for folder in folders:
        variant_hour = folder[len(base) + 1:]  # <variant>/yyyy/mm/dd/hh
        variant, _, hour = variant_hour.partition("/")
        if hour in wanted and VARIANT.match(variant):  # a key's folder names a place in the job: only a variant
            inputs.append(_s3_input(f"endpoint_input_{len(inputs) + 1}", f"s3://{bucket}/{folder}/",
                                    f"{local.rstrip('/')}/{endpoint}/{variant}/{hour}", source))
    if not inputs:
        raise NoData(NO_DATA)
    return inputs, destination


def _script(uri: str | None, folder: str, env_name: str, inputs: list[dict[str, Any]], env: dict[str, str]) -> None:
    if uri:
        local = f"{CODE}/{folder}"
        inputs.append(_s3_input(f"{folder}_script", uri, local))
        env[env_name] = f"{local}/{posixpath.basename(uri)}"


def _model_quality(definition: dict[str, Any], source: dict[str, Any], inputs: list[dict[str, Any]],
                   env: dict[str, str]) -> None:
    """Model quality adds the ground truth (joined with the captures on ``inferenceId``) and its attributes."""
    truth = (definition["input"].get("GroundTruthS3Input") or {}).get("S3Uri")
    if truth:
        inputs.append(_s3_input("ground_truth_input", truth, GROUND_TRUTH))
    env.update({"analysis_type": "MODEL_QUALITY", "ground_truth_source": GROUND_TRUTH,
                "problem_type": definition["app"].get("ProblemType") or "BinaryClassification"})
    for key, name in (("InferenceAttribute", "inference_attribute"), ("ProbabilityAttribute", "probability_attribute"),
                      ("ProbabilityThresholdAttribute", "probability_threshold_attribute")):
        if source.get(key) is not None:
            env[name] = str(source[key])


def execution_request(emulator: Any, schedule: dict[str, Any], scheduled: float, clock: Clock) -> dict[str, Any]:
    """The ``CreateProcessingJob`` request of the execution scheduled at ``scheduled`` (emulated time)."""
    definition = definition_of(emulator, schedule)
    name = schedule["MonitoringScheduleName"]
    source = definition["input"]
    endpoint_input, batch_input = source.get("EndpointInput"), source.get("BatchTransformInput")
    start, end = window(schedule, endpoint_input or batch_input or {}, scheduled)
    real_start, real_end = real_window(schedule, clock, start, end)
    env: dict[str, str] = {"publish_cloudwatch_metrics": "Enabled", **definition["environment"]}
    if endpoint_input:
        local = endpoint_input["LocalPath"]
        inputs, destination = captured_inputs(emulator, endpoint_input["EndpointName"], local, real_start, real_end,
                                              endpoint_input)
        env.update({"dataset_format": json.dumps(CAPTURED_FORMAT), "sagemaker_endpoint_name":
                    endpoint_input["EndpointName"], "sagemaker_endpoint_datacapture_prefix": destination})
        report_owner = endpoint_input["EndpointName"]
    else:
        local = batch_input["LocalPath"]
        inputs = [_s3_input("batch_input_1", batch_input["DataCapturedDestinationS3Uri"], local, batch_input)]
        fmt = batch_input["DatasetFormat"]
        env["dataset_format"] = json.dumps({"csv": {"header": bool(fmt["Csv"].get("Header", False))}} if "Csv" in fmt
                                           else {"json": {"lines": bool(fmt["Json"].get("Line", True))}}
                                           if "Json" in fmt else {"parquet": {}})
        report_owner = "batch-transform"
    baseline = definition["baseline"]
    for key, local_dir, env_name, file in (("StatisticsResource", BASELINE_STATS, "baseline_statistics", "statistics"),
                                           ("ConstraintsResource", BASELINE_CONSTRAINTS, "baseline_constraints",
                                            "constraints")):
        uri = (baseline.get(key) or {}).get("S3Uri")
        if uri:
            inputs.append(_s3_input(file, uri, local_dir))
            env[env_name] = f"{local_dir}/{posixpath.basename(uri)}"
    app = definition["app"]
    if definition.get("kind") == "ModelQuality":
        _model_quality(definition, endpoint_input or batch_input or {}, inputs, env)
    _script(app.get("RecordPreprocessorSourceUri"), "preprocessing", "record_preprocessor_script", inputs, env)
    _script(app.get("PostAnalyticsProcessorSourceUri"), "postprocessing", "post_analytics_processor_script",
            inputs, env)
    when = dt.datetime.fromtimestamp(scheduled, dt.UTC)
    outputs = []
    for i, item in enumerate(definition["outputs"]["MonitoringOutputs"]):
        target = item["S3Output"]
        uri = f"{target['S3Uri'].rstrip('/')}/{report_owner}/{name}/{when:%Y/%m/%d/%H}"
        outputs.append({"OutputName": f"monitoring_output_{i + 1}" if i else "monitoring_output", "S3Output": {
            "S3Uri": uri, "LocalPath": target["LocalPath"], "S3UploadMode": "EndOfJob"}})
    env.update({
        "dataset_source": local, "output_path": outputs[0]["S3Output"]["LocalPath"],
        "start_time": iso(real_start), "end_time": iso(real_end), "sagemaker_monitoring_schedule_name": name,
        "sagemaker_emulator_clock": (
            f"{clock.describe()}; scheduled {iso(scheduled)} (emulated) analyses the window {iso(start)} to "
            f"{iso(end)} (emulated) = captures from {iso(real_start)} to {iso(real_end)} (real)")})
    digest = hashlib.sha1(f"{schedule['MonitoringScheduleArn']}@{scheduled}".encode()).hexdigest()[:24]
    request: dict[str, Any] = {
        "ProcessingJobName": f"model-monitoring-{when:%Y%m%d%H%M}-{digest}",
        "ProcessingResources": definition["resources"], "ProcessingInputs": inputs,
        "ProcessingOutputConfig": {"Outputs": outputs},
        "AppSpecification": {k: v for k, v in app.items() if k in ("ImageUri", "ContainerEntrypoint",
                                                                    "ContainerArguments")},
        "Environment": env, "RoleArn": definition["role"],
        "StoppingCondition": definition["stopping"] or {"MaxRuntimeInSeconds": int(HOUR)},
    }
    if definition["network"]:
        request["NetworkConfig"] = definition["network"]
    return request


def publish_monitor_metrics(emulator: Any, job: dict[str, Any], execution: dict[str, Any]) -> int:
    """The feature metrics the analyzer wrote (``/opt/ml/output/metrics/cloudwatch``), published as the
    monitoring service publishes them: ``/aws/sagemaker/Endpoints/data-metric`` for an endpoint's schedule,
    ``/aws/sagemaker/ModelMonitoring/data-metric`` for a batch transform's. Returns how many."""
    namespace = "/aws/sagemaker/Endpoints/data-metric" if execution.get("EndpointName") \
        else "/aws/sagemaker/ModelMonitoring/data-metric"
    root = emulator.paths.jobs / "processing" / job["ProcessingJobName"]
    count = 0
    for path in sorted(root.glob("*/output/metrics/cloudwatch/*")):
        for line in path.read_text().splitlines():
            try:
                metric = json.loads(line)
                stamp = dt.datetime.fromisoformat(metric["Timestamp"].replace("Z", "+00:00")).timestamp()
                dims = [{"Name": d["Name"], "Value": d["Value"]} for d in metric.get("Dimensions") or []]
                stats = metric.get("StatisticValues")
                if stats:
                    emulator.cloudwatch.record_set(namespace, metric["MetricName"], dims, stats, stamp)
                else:
                    emulator.cloudwatch.record(namespace, metric["MetricName"], dims, float(metric["Value"]),
                                               metric.get("Unit") or "None", stamp)
                count += 1
            except (ValueError, KeyError, TypeError):
                continue  # a line that is not a metric is skipped, as the service skips it
    return count
