"""Model Monitor: a baseline of the full bank data and one monitoring run over 10,000 captured records.

Each is timed three ways: as a processing job of the analyzer image through
the emulator (``CreateProcessingJob`` until ``Completed``: staging from S3,
the analyzer process, upload of the results); the analyzer's code in-process
on local files (no job); and the **reference**: the same statistics computed
in-process the plain way (``pd.read_csv`` with its own type inference,
``mean``/``std``/``np.histogram``/sorted sketch/``value_counts`` per column,
and for monitoring the JSON Lines parsed and the L-infinity drift distances
against the baseline). The issue's target is job <= reference + 1 s; job -
analyzer is what the job machinery costs, analyzer - reference what the
analyzer's own way of computing costs. A third run, ``baseline-wide``, is the
shape lab 06 baselines: the Immersion Day features (41,188 x 60, all numbers).
Figures are reported, never asserted.

    .venv/bin/python benchmarks/bench_model_monitor.py [--repeats N]

Needs the bank zip as ``bank_data.locate_zip`` finds it (``$WORKSHOP_DATA_MIRROR``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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


def _numeric_stats(values: Any) -> dict[str, Any]:
    import numpy as np

    present = values.dropna().to_numpy(dtype=float)
    ordered = np.sort(present)
    ranks = np.ceil((np.arange(2048) + 0.5) / 2048 * ordered.size).astype(int) - 1 if ordered.size > 2048 else None
    return {"num_present": int(present.size), "num_missing": int(values.isna().sum()), "mean": float(present.mean()),
            "sum": float(present.sum()), "std_dev": float(present.std()), "min": float(ordered[0]),
            "max": float(ordered[-1]), "buckets": np.histogram(present, bins=10)[0].tolist(),
            "sketch": ordered[ranks] if ranks is not None else ordered}


def _stats(frame: Any) -> dict[str, dict[str, Any]]:
    """The statistics of statistics.json, per column, the plain pandas way."""
    out: dict[str, dict[str, Any]] = {}
    for name in frame.columns:
        column = frame[name]
        if column.dtype.kind in "if":
            out[name] = _numeric_stats(column)
        else:
            counts = column.value_counts()
            out[name] = {"num_present": int(counts.sum()), "num_missing": int(column.isna().sum()),
                         "distinct_count": int(counts.size), "counts": counts}
    return out


def reference_baseline(csv_path: Path) -> tuple[float, float]:
    """The baseline's statistics in-process, the plain way: what a job's figure is compared with."""
    import pandas as pd

    started, cpu = time.perf_counter(), time.process_time()
    _stats(pd.read_csv(csv_path))
    return time.perf_counter() - started, time.process_time() - cpu


def reference_monitoring(jsonl: Path, names: list[str], baseline: dict[str, dict[str, Any]]) -> tuple[float, float]:
    """One monitoring execution's work in-process, the plain way: parse the window's captured JSON Lines,
    the model's output then the request's CSV as one row, its statistics and the L-infinity distance of
    each feature's distribution from the baseline's."""
    import io

    import numpy as np
    import pandas as pd

    started, cpu = time.perf_counter(), time.process_time()
    rows = []
    for line in jsonl.read_text().splitlines():
        record = json.loads(line)
        if "2026-12-02T07:00:00Z" <= record["eventMetadata"]["inferenceTime"] < "2026-12-02T08:00:00Z":
            capture = record["captureData"]
            rows.append(capture["endpointOutput"]["data"] + "," + capture["endpointInput"]["data"])
    current = _stats(pd.read_csv(io.StringIO("\n".join(rows)), header=None, names=names))
    for name, stats in current.items():
        base = baseline[name]
        if "sketch" in stats and "sketch" in base:
            grid = np.union1d(base["sketch"], stats["sketch"])
            np.max(np.abs(np.searchsorted(base["sketch"], grid, "right") / base["sketch"].size
                          - np.searchsorted(stats["sketch"], grid, "right") / stats["sketch"].size))
        elif "counts" in stats and "counts" in base:
            both = base["counts"].index.union(stats["counts"].index)
            (base["counts"].reindex(both, fill_value=0) / base["num_present"]
             - stats["counts"].reindex(both, fill_value=0) / stats["num_present"]).abs().max()
    return time.perf_counter() - started, time.process_time() - cpu


def in_process(env: dict[str, str], base: Path) -> tuple[float, float]:
    """The analyzer's own work on local files, in this process (pandas, numpy, scipy already imported):
    (wall, CPU) seconds. CPU time of the main thread's process, which a busy machine inflates far less."""
    from sagemaker_emulator.images.model_monitor import analyzer
    from sagemaker_emulator.images.model_monitor.inputs import AnalyzerInput

    started, cpu = time.perf_counter(), time.process_time()
    inputs = AnalyzerInput.from_environment({**env, "SAGEMAKER_BASE_DIR": str(base)})
    os.environ["SAGEMAKER_BASE_DIR"] = str(base)
    analyzer.run(inputs)
    return time.perf_counter() - started, time.process_time() - cpu


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
    for folder, data in (("data", frame), ("wide", bank_data.features(frame))):
        (root / folder).mkdir()
        (root / folder / "train.csv").write_text(data.to_csv(index=False))
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
        for folder in ("data", "wide"):
            s3.upload_file(str(root / folder / "train.csv"), BUCKET, f"{folder}/train.csv")
        s3.upload_file(str(capture_dir / "00-00-000-bench.jsonl"), BUCKET,
                       "capture/ep/AllTraffic/2026/12/02/07/00-00-000-bench.jsonl")
        kinds = ("baseline", "baseline-wide", "monitoring")
        figures: dict[str, dict[str, list[float]]] = {
            k: {"job": [], "analyzer": [], "reference": [], "analyzer_cpu": [], "reference_cpu": []} for k in kinds}

        def record(kind: str, side: str, wall_cpu: tuple[float, float]) -> None:
            figures[kind][side].append(wall_cpu[0])
            figures[kind][f"{side}_cpu"].append(wall_cpu[1])

        local_out = root / "local"
        envs = {"baseline": environment(str(root / "data"), str(local_out / "baseline"), None),
                "baseline-wide": environment(str(root / "wide"), str(local_out / "wide"), None),
                "monitoring": environment(str(root / "capture"), str(local_out / "monitoring"),
                                          str(local_out / "baseline"))}
        in_process(envs["baseline"], local_out)  # warm-up: imports
        import pandas as pd

        base_stats = _stats(pd.read_csv(root / "data" / "train.csv"))
        staged = "/opt/ml/processing/input/baseline_dataset_input"
        baseline_jobs = {kind: ([("baseline_dataset_input", f"s3://{BUCKET}/{folder}/train.csv", staged)],
                                environment(staged, "/opt/ml/processing/output", None))
                         for kind, folder in (("baseline", "data"), ("baseline-wide", "wide"))}
        first = as_job(sm, "bench-first", *baseline_jobs["baseline"])  # waits for the warm worker the daemon starts
        for i in range(args.repeats):
            for kind in kinds:
                record(kind, "analyzer", in_process(envs[kind], local_out))
            record("baseline", "reference", reference_baseline(root / "data" / "train.csv"))
            record("baseline-wide", "reference", reference_baseline(root / "wide" / "train.csv"))
            record("monitoring", "reference", reference_monitoring(
                capture_dir / "00-00-000-bench.jsonl", list(frame.columns), base_stats))
            for kind in ("baseline", "baseline-wide"):
                figures[kind]["job"].append(as_job(sm, f"bench-{kind}-{i}", *baseline_jobs[kind]))
            figures["monitoring"]["job"].append(as_job(
                sm, f"bench-monitoring-{i}",
                [("input_1", f"s3://{BUCKET}/capture", "/opt/ml/processing/input/endpoint"),
                 ("baseline", f"s3://{BUCKET}/bench-baseline-{i}", "/opt/ml/processing/baseline")],
                environment("/opt/ml/processing/input/endpoint", "/opt/ml/processing/output",
                            "/opt/ml/processing/baseline")))
        print(f"Model Monitor analyzer, {len(frame)} baseline rows, {RECORDS} captured records, "
              f"{args.repeats} repeats (median s; load average {os.getloadavg()[0]:.1f}):")
        for kind, three in figures.items():
            job, mine, ref = (statistics.median(three[k]) for k in ("job", "analyzer", "reference"))
            cpu_mine, cpu_ref = (statistics.median(three[k]) for k in ("analyzer_cpu", "reference_cpu"))
            print(f"  {kind:<13} job {job:7.3f}   analyzer {mine:7.3f}   reference {ref:7.3f}   "
                  f"job - reference {job - ref:+7.3f}  (machinery {job - mine:+.3f}, analyzer {mine - ref:+.3f}); "
                  f"CPU analyzer {cpu_mine:.3f} reference {cpu_ref:.3f}")
        print(f"  first job after the daemon started (includes the warm worker's start): {first:.3f}")
        print(json.dumps({**figures, "first_job": first}))
    finally:
        emu.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
