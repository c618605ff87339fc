"""Model Monitor: a baseline of the full bank data and one monitoring run over 10,000 captured records.

Each is timed twice: as a processing job of the analyzer image through the
emulator (``CreateProcessingJob`` until ``Completed``: staging from S3, the
analyzer process, upload of the results) and in-process (the same analyzer
code on local files, no job). The difference is what the job machinery costs;
the issue's target is at most 1 s. Figures are reported, never asserted.

    .venv/bin/python benchmarks/bench_model_monitor.py [--repeats N]

Needs the bank zip as ``bank_data.locate_zip`` finds it (``$WORKSHOP_DATA_MIRROR``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(Path(__file__).resolve().parent)]

ANALYZER = "156813124566.dkr.ecr.us-east-1.amazonaws.com/sagemaker-model-monitor-analyzer"
BUCKET = "bench-model-monitor"
RECORDS = 10_000
ROLE_ARN = "arn:aws:iam::123456789012:role/service-role/AmazonSageMaker-ExecutionRole-Local"


def capture_lines(frame: Any, records: int) -> str:
    """Captured JSON Lines: features in (CSV), a score out, as an endpoint's data capture writes them."""
    rows = frame.drop(columns="y").head(records).astype(str).agg(",".join, axis=1)
    return "".join(json.dumps({
        "captureData": {"endpointInput": {"observedContentType": "text/csv", "mode": "INPUT", "data": row,
                                          "encoding": "CSV"},
                        "endpointOutput": {"observedContentType": "text/csv", "mode": "OUTPUT",
                                           "data": f"{(i % 97) / 97:.6f}", "encoding": "CSV"}},
        "eventMetadata": {"eventId": str(uuid.uuid4()), "inferenceTime": "2026-12-02T07:30:00Z"},
        "eventVersion": "0"}) + "\n" for i, row in enumerate(rows))


def environment(dataset: str, output: str, baseline: str | None) -> dict[str, str]:
    if baseline is None:
        return {"dataset_source": dataset, "output_path": output, "publish_cloudwatch_metrics": "Disabled",
                "dataset_format": json.dumps({"csv": {"header": True, "output_columns_position": "START"}})}
    return {"dataset_source": dataset, "output_path": output, "publish_cloudwatch_metrics": "Disabled",
            "dataset_format": json.dumps({"sagemakerCaptureJson": {
                "captureIndexNames": ["endpointInput", "endpointOutput"]}}),
            "baseline_statistics": f"{baseline}/statistics.json",
            "baseline_constraints": f"{baseline}/constraints.json",
            "start_time": "2026-12-02T07:00:00Z", "end_time": "2026-12-02T08:00:00Z"}


def in_process(env: dict[str, str], base: Path) -> float:
    """The analyzer's own work on local files, in this process (pandas, numpy, scipy already imported)."""
    from sagemaker_emulator.images.model_monitor import analyzer
    from sagemaker_emulator.images.model_monitor.inputs import AnalyzerInput

    started = time.perf_counter()
    inputs = AnalyzerInput.from_environment({**env, "SAGEMAKER_BASE_DIR": str(base)})
    os.environ["SAGEMAKER_BASE_DIR"] = str(base)
    analyzer.run(inputs)
    return time.perf_counter() - started


def as_job(sm: Any, name: str, inputs: list[tuple[str, str, str]], env: dict[str, str]) -> float:
    started = time.perf_counter()
    sm.create_processing_job(
        ProcessingJobName=name, RoleArn=ROLE_ARN,
        AppSpecification={"ImageUri": ANALYZER}, Environment=env,
        ProcessingResources={"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge",
                                               "VolumeSizeInGB": 20}},
        ProcessingInputs=[{"InputName": n, "S3Input": {"S3Uri": uri, "LocalPath": local, "S3DataType": "S3Prefix",
                                                       "S3InputMode": "File"}} for n, uri, local in inputs],
        ProcessingOutputConfig={"Outputs": [{"OutputName": "result", "S3Output": {
            "S3Uri": f"s3://{BUCKET}/{name}", "LocalPath": "/opt/ml/processing/output", "S3UploadMode": "EndOfJob"}}]},
        StoppingCondition={"MaxRuntimeInSeconds": 900})
    deadline = time.monotonic() + 900
    while True:
        job = sm.describe_processing_job(ProcessingJobName=name)
        if job["ProcessingJobStatus"] in ("Completed", "Failed", "Stopped"):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} still {job['ProcessingJobStatus']} after 900 s")
        time.sleep(0.05)
    if job["ProcessingJobStatus"] != "Completed":
        raise RuntimeError(f"{name} ended {job['ProcessingJobStatus']}: {job.get('FailureReason')}")
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    import bank_data
    import boto3

    from sagemaker_emulator.app import Emulator

    frame = bank_data.load_frame(bank_data.locate_zip())
    frame = frame[["y", *[c for c in frame.columns if c != "y"]]]  # the label first, as training data is
    root = Path(tempfile.mkdtemp(prefix="bench-model-monitor-"))
    (root / "data").mkdir()
    (root / "data" / "train.csv").write_text(frame.to_csv(index=False))
    capture_dir = root / "capture" / "ep" / "AllTraffic" / "2026" / "12" / "02" / "07"
    capture_dir.mkdir(parents=True)
    (capture_dir / "00-00-000-bench.jsonl").write_text(capture_lines(frame, RECORDS))

    emu = Emulator(root / "state")
    emu.start("127.0.0.1", 0)
    emu.warm_up()
    try:
        session = boto3.Session(aws_access_key_id=emu.credentials.access_key,
                                aws_secret_access_key=emu.credentials.secret_key, region_name="us-east-1")
        sm, s3 = (session.client(n, endpoint_url=emu.endpoint_url) for n in ("sagemaker", "s3"))
        s3.create_bucket(Bucket=BUCKET)
        s3.upload_file(str(root / "data" / "train.csv"), BUCKET, "data/train.csv")
        s3.upload_file(str(capture_dir / "00-00-000-bench.jsonl"), BUCKET,
                       "capture/ep/AllTraffic/2026/12/02/07/00-00-000-bench.jsonl")
        figures: dict[str, dict[str, list[float]]] = {"baseline": {"job": [], "in_process": []},
                                                      "monitoring": {"job": [], "in_process": []}}
        local_out = root / "local"
        base_env = environment(str(root / "data"), str(local_out / "baseline"), None)
        mon_env = environment(str(root / "capture"), str(local_out / "monitoring"), str(local_out / "baseline"))
        in_process(base_env, local_out)  # warm-up: imports
        baseline_job = ([("baseline_dataset_input", f"s3://{BUCKET}/data/train.csv",
                          "/opt/ml/processing/input/baseline_dataset_input")],
                        environment("/opt/ml/processing/input/baseline_dataset_input", "/opt/ml/processing/output",
                                    None))
        first = as_job(sm, "bench-first", *baseline_job)  # waits for the warm worker the daemon starts
        for i in range(args.repeats):
            figures["baseline"]["in_process"].append(in_process(base_env, local_out))
            figures["monitoring"]["in_process"].append(in_process(mon_env, local_out))
            figures["baseline"]["job"].append(as_job(sm, f"bench-baseline-{i}", *baseline_job))
            figures["monitoring"]["job"].append(as_job(
                sm, f"bench-monitoring-{i}",
                [("input_1", f"s3://{BUCKET}/capture", "/opt/ml/processing/input/endpoint"),
                 ("baseline", f"s3://{BUCKET}/bench-baseline-{i}", "/opt/ml/processing/baseline")],
                environment("/opt/ml/processing/input/endpoint", "/opt/ml/processing/output",
                            "/opt/ml/processing/baseline")))
        print(f"Model Monitor analyzer, {len(frame)} baseline rows, {RECORDS} captured records, "
              f"{args.repeats} repeats (median s):")
        for kind, pair in figures.items():
            job, local = statistics.median(pair["job"]), statistics.median(pair["in_process"])
            print(f"  {kind:<10} job {job:7.3f}   in-process {local:7.3f}   overhead {job - local:+7.3f}")
        print(f"  first job after the daemon started (includes the warm worker's start): {first:.3f}")
        print(json.dumps({**figures, "first_job": first}))
    finally:
        emu.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
