"""Clarify: a processing job of the ``sagemaker-clarify-processing`` image vs. the same computation in-process.

On the bank data (``bank_data``: the lab's feature engineering, 41,188 rows, 59 features) and an XGBoost
model of it:
(a) pre-training bias (all metrics, facet ``age`` > 40) on all rows: ``CreateProcessingJob`` →
    ``Completed`` vs. ``smclarify.bias.report.bias_report`` in-process (CSV read included);
(b) Kernel SHAP of 100 rows (one baseline row, ``num_samples`` 2000) through the shadow endpoint the job
    creates and deletes vs. ``shap.KernelExplainer`` over ``Booster.predict`` in-process.
The in-process side runs in the Clarify image's environment (where smclarify and shap are); the first
job builds that environment, so a warm-up job runs before the timings. Target (issue 14): job ≤
in-process + 2 s.

    .venv/bin/python benchmarks/bench_clarify.py [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import bank_data  # noqa: E402

IMAGE = "205585389593.dkr.ecr.us-east-1.amazonaws.com/sagemaker-clarify-processing:1.0"
XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
BUCKET = "bench-clarify"
SHAP_ROWS, SHAP_SAMPLES = 100, 2000

IN_PROCESS = r'''
import json, sys, time
import numpy as np, pandas as pd
kind, csv_path, extra = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
if kind == "bias":
    from smclarify.bias import report
    start = time.perf_counter()
    df = pd.read_csv(csv_path)
    report.bias_report(df, report.FacetColumn("age", [40]), report.LabelColumn("y", df["y"], [1]),
                       report.StageType.PRE_TRAINING)
else:
    import shap, xgboost
    booster = xgboost.Booster(); booster.load_model(extra["model"])
    start = time.perf_counter()
    df = pd.read_csv(csv_path)
    x = df.drop(columns=["y"]).to_numpy(float)
    explainer = shap.KernelExplainer(lambda rows: booster.predict(xgboost.DMatrix(rows)), np.asarray(extra["baseline"]))
    explainer.shap_values(x, nsamples=extra["samples"], silent=True)
print(time.perf_counter() - start)
'''


def job(sm: Any, s3: Any, name: str, data_key: str, config: dict[str, Any]) -> float:
    s3.put_object(Bucket=BUCKET, Key=f"{name}/analysis_config.json", Body=json.dumps(config).encode())
    start = time.perf_counter()
    sm.create_processing_job(
        ProcessingJobName=name, RoleArn=ROLE, AppSpecification={"ImageUri": IMAGE},
        ProcessingResources={"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge",
                                               "VolumeSizeInGB": 30}},
        ProcessingInputs=[
            {"InputName": "dataset", "S3Input": {"S3Uri": f"s3://{BUCKET}/{data_key}",
                                                 "LocalPath": "/opt/ml/processing/input/data",
                                                 "S3DataType": "S3Prefix", "S3InputMode": "File"}},
            {"InputName": "analysis_config", "S3Input": {"S3Uri": f"s3://{BUCKET}/{name}/analysis_config.json",
                                                         "LocalPath": "/opt/ml/processing/input/config",
                                                         "S3DataType": "S3Prefix", "S3InputMode": "File"}}],
        ProcessingOutputConfig={"Outputs": [{"OutputName": "analysis_result", "S3Output": {
            "S3Uri": f"s3://{BUCKET}/{name}/out", "LocalPath": "/opt/ml/processing/output",
            "S3UploadMode": "EndOfJob"}}]})
    while True:
        status = sm.describe_processing_job(ProcessingJobName=name)
        if status["ProcessingJobStatus"] in ("Completed", "Failed", "Stopped"):
            assert status["ProcessingJobStatus"] == "Completed", status.get("FailureReason")
            return time.perf_counter() - start
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    import boto3
    import xgboost

    from sagemaker_emulator.app import Emulator
    from sagemaker_emulator.images.clarify import REQUIREMENTS, environment_root
    from sagemaker_emulator.runtime.pyenvs import python_for_requirements

    root = Path(tempfile.mkdtemp(prefix="bench-clarify-"))
    try:
        frame = bank_data.features(bank_data.load_frame(bank_data.locate_zip()))
        frame = frame.rename(columns={"y_yes": "y"})
        full, sample = root / "full.csv", root / "sample.csv"
        frame.to_csv(full, index=False)
        frame.head(SHAP_ROWS).to_csv(sample, index=False)
        features = [c for c in frame.columns if c != "y"]
        booster = xgboost.train({"objective": "binary:logistic", "max_depth": 5, "eta": 0.2},
                                xgboost.DMatrix(frame[features].to_numpy(float), label=frame.y), 100)
        model_path = root / "xgboost-model"
        booster.save_model(str(model_path))
        baseline = [frame[features].mean().round(4).tolist()]

        emu = Emulator(root / "state")
        emu.start("127.0.0.1", 0)
        emu.warm_up()
        session = boto3.Session(aws_access_key_id=emu.credentials.access_key,
                                aws_secret_access_key=emu.credentials.secret_key, region_name="us-east-1")
        sm, s3 = (session.client(n, endpoint_url=emu.endpoint_url) for n in ("sagemaker", "s3"))
        s3.create_bucket(Bucket=BUCKET)
        s3.upload_file(str(full), BUCKET, "full/data.csv")
        s3.upload_file(str(sample), BUCKET, "sample/data.csv")
        import io
        import tarfile

        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w:gz") as tar:
            tar.add(model_path, arcname="xgboost-model")
        s3.put_object(Bucket=BUCKET, Key="model.tar.gz", Body=archive.getvalue())
        sm.create_model(ModelName="bench-clarify", ExecutionRoleArn=ROLE, PrimaryContainer={
            "Image": XGBOOST_IMAGE, "ModelDataUrl": f"s3://{BUCKET}/model.tar.gz"})
        headers = list(frame.columns)
        bias_config = {"dataset_type": "text/csv", "headers": headers, "label": "y", "label_values_or_threshold": [1],
                       "facet": [{"name_or_index": "age", "value_or_threshold": [40]}],
                       "methods": {"pre_training_bias": {"methods": "all"}}}
        shap_config = {"dataset_type": "text/csv", "headers": headers, "label": "y",
                       "predictor": {"model_name": "bench-clarify", "instance_type": "ml.m5.xlarge",
                                     "initial_instance_count": 1, "accept_type": "text/csv"},
                       "methods": {"shap": {"baseline": baseline, "num_samples": SHAP_SAMPLES,
                                            "agg_method": "mean_abs", "save_local_shap_values": True}}}
        started = time.perf_counter()
        python = python_for_requirements(REQUIREMENTS, environment_root(emu.paths.cache))
        print(f"Clarify image environment built in {time.perf_counter() - started:.1f} s", flush=True)
        job(sm, s3, f"warm-{uuid.uuid4().hex[:6]}", "sample/", bias_config)  # imports, pyc files, the warm worker
        job(sm, s3, f"warm-{uuid.uuid4().hex[:6]}", "sample/", shap_config)  # the model server's environment
        logs = session.client("logs", endpoint_url=emu.endpoint_url)

        def breakdown(name: str) -> str:
            """The job's own timings (its log lines saying "computed in"), for where the time goes."""
            group = "/aws/sagemaker/ProcessingJobs"
            lines = [e["message"] for st in logs.describe_log_streams(logGroupName=group, logStreamNamePrefix=name)[
                "logStreams"] for e in logs.get_log_events(logGroupName=group, logStreamName=st["logStreamName"],
                                                           startFromHead=True)["events"]]
            return "; ".join(line.strip() for line in lines if "computed in" in line)

        def in_process(kind: str, path: Path) -> float:
            extra = {"model": str(model_path), "baseline": baseline, "samples": SHAP_SAMPLES}
            done = subprocess.run([str(python), "-c", IN_PROCESS, kind, str(path), json.dumps(extra)],
                                  capture_output=True, text=True, check=True)
            return float(done.stdout.strip().splitlines()[-1])

        figures: dict[str, list[tuple[float, float]]] = {"bias, 41,188 rows": [], "SHAP, 100 rows": []}
        for _ in range(args.repeats):
            for label, kind, prefix, config, path in (("bias, 41,188 rows", "bias", "full/", bias_config, full),
                                                      ("SHAP, 100 rows", "shap", "sample/", shap_config, sample)):
                name = f"{kind}-{uuid.uuid4().hex[:6]}"
                figures[label].append((job(sm, s3, name, prefix, config), in_process(kind, path)))
                print(f"  {label}: job {figures[label][-1][0]:.2f} s, in-process {figures[label][-1][1]:.2f} s; "
                      f"job's log: {breakdown(name)}", flush=True)
        for name, runs in figures.items():
            jobs, local = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
            print(f"{name}: Clarify job {jobs:.2f} s, in-process {local:.2f} s, difference {jobs - local:+.2f} s "
                  f"(target ≤ +2 s); runs {[(round(a, 2), round(b, 2)) for a, b in runs]}", flush=True)
        emu.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
