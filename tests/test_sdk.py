"""The genuine SageMaker Python SDK V3, unchanged, against the emulator (only the environment differs)."""

from __future__ import annotations

import io
import json
import logging
import tarfile
import textwrap
from pathlib import Path

import boto3
import numpy as np
import pytest
import xgboost
from artifacts import xgboost_tarball

pytestmark = pytest.mark.slow


@pytest.fixture
def sdk(emulator_env):
    from sagemaker.core.helper.session_helper import Session, get_execution_role

    session = Session()
    return session, session.default_bucket(), get_execution_role()


def _upload_csv(bucket: str, key: str, rows: int = 400, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 4))
    y = (x[:, 0] + 0.3 * rng.normal(size=rows) > 0).astype(int)
    data = np.column_stack([y, x])
    buf = io.StringIO()
    np.savetxt(buf, data, delimiter=",", fmt="%.5f")
    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=buf.getvalue().encode())
    return data


def test_first_cell_of_every_notebook_works_offline(sdk):
    session, bucket, role = sdk
    assert bucket == "sagemaker-us-east-1-123456789012"
    assert role == "arn:aws:iam::123456789012:role/service-role/AmazonSageMaker-ExecutionRole-Local"
    assert session.boto_region_name == "us-east-1"
    boto3.client("s3").head_bucket(Bucket=bucket)


def test_model_trainer_builtin_xgboost_with_live_logs(sdk, caplog):
    from sagemaker.core import image_uris
    from sagemaker.train import ModelTrainer
    from sagemaker.train.configs import Compute, InputData, OutputDataConfig

    session, bucket, role = sdk
    data = _upload_csv(bucket, "sdk/train/train.csv")
    _upload_csv(bucket, "sdk/validation/validation.csv", seed=1)
    image = image_uris.retrieve(framework="xgboost", region=session.boto_region_name, version="1.7-1")
    trainer = ModelTrainer(
        training_image=image, role=role, compute=Compute(instance_type="ml.m5.xlarge", instance_count=1),
        output_data_config=OutputDataConfig(s3_output_path=f"s3://{bucket}/sdk/output"),
        hyperparameters={"max_depth": 3, "eta": 0.2, "objective": "binary:logistic", "num_round": 15,
                         "eval_metric": "auc"},
        base_job_name="sdk-xgb", sagemaker_session=session,
    )
    with caplog.at_level(logging.INFO):
        trainer.train(input_data_config=[
            InputData(channel_name="train", data_source=f"s3://{bucket}/sdk/train", content_type="csv"),
            InputData(channel_name="validation", data_source=f"s3://{bucket}/sdk/validation", content_type="csv"),
        ], wait=True, logs=True)
    job = trainer._latest_training_job
    assert job.training_job_status == "Completed"
    assert "[14]#011train-auc:" in caplog.text, "wait(logs=True) must stream the container's metric lines"
    metrics = {m.metric_name: m.value for m in job.final_metric_data_list}
    assert metrics["validation:auc"] > 0.8
    url = job.model_artifacts.s3_model_artifacts
    assert url == f"s3://{bucket}/sdk/output/{job.training_job_name}/output/model.tar.gz"
    body = boto3.client("s3").get_object(Bucket=bucket, Key=url.split(bucket + "/", 1)[1])["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        raw = tar.extractfile("xgboost-model").read()
    booster = xgboost.Booster()
    booster.load_model(bytearray(raw))
    preds = booster.predict(xgboost.DMatrix(data[:, 1:]))
    assert ((preds > 0.5) == data[:, 0]).mean() > 0.8


def test_model_trainer_source_code_script_mode(sdk, tmp_path: Path):
    from sagemaker.core import image_uris
    from sagemaker.train import ModelTrainer
    from sagemaker.train.configs import Compute, InputData, SourceCode

    session, bucket, role = sdk
    _upload_csv(bucket, "sdk-script/train/train.csv")
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text(textwrap.dedent("""
        import argparse, glob, os
        import numpy as np
        from sklearn.linear_model import LogisticRegression
        import joblib
        parser = argparse.ArgumentParser()
        parser.add_argument("--C", type=float, default=1.0)
        args = parser.parse_args()
        data = np.loadtxt(glob.glob(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "*.csv"))[0], delimiter=",")
        model = LogisticRegression(C=args.C).fit(data[:, 1:], data[:, 0])
        print(f"train_accuracy={model.score(data[:, 1:], data[:, 0]):.4f}")
        joblib.dump(model, os.path.join(os.environ["SM_MODEL_DIR"], "model.joblib"))
    """))
    image = image_uris.retrieve(framework="sklearn", region=session.boto_region_name, version="1.2-1",
                                py_version="py3", instance_type="ml.m5.large")
    trainer = ModelTrainer(
        training_image=image, role=role, compute=Compute(instance_type="ml.m5.large", instance_count=1),
        source_code=SourceCode(source_dir=str(src), entry_script="train.py"), hyperparameters={"C": 0.5},
        base_job_name="sdk-sklearn", sagemaker_session=session,
    )
    trainer.train(input_data_config=[InputData(channel_name="train", data_source=f"s3://{bucket}/sdk-script/train")],
                  wait=True, logs=False)
    job = trainer._latest_training_job
    assert job.training_job_status == "Completed"
    logs = boto3.client("logs").filter_log_events(
        logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix=job.training_job_name,
        filterPattern="train_accuracy")["events"]
    assert logs and float(logs[0]["message"].split("=")[1]) > 0.8


def test_script_processor_runs_a_processing_job(sdk, tmp_path: Path):
    from sagemaker.core import image_uris
    from sagemaker.core.processing import ScriptProcessor
    from sagemaker.core.shapes import ProcessingInput, ProcessingOutput, ProcessingS3Input, ProcessingS3Output

    session, bucket, role = sdk
    _upload_csv(bucket, "sdk-proc/raw/data.csv", rows=100)
    script = tmp_path / "preprocessing.py"
    script.write_text(textwrap.dedent("""
        import argparse, os
        import pandas as pd
        parser = argparse.ArgumentParser()
        parser.add_argument("--filepath", default="/opt/ml/processing/input/")
        parser.add_argument("--outputpath", default="/opt/ml/processing/output/")
        args = parser.parse_args()
        df = pd.read_csv(os.path.join(args.filepath, "data.csv"), header=None)
        half = len(df) // 2
        for name, part in (("train", df[:half]), ("validation", df[half:])):
            os.makedirs(os.path.join(args.outputpath, name), exist_ok=True)
            part.to_csv(os.path.join(args.outputpath, name, f"{name}.csv"), header=False, index=False)
        print("rows", len(df))
    """))
    image = image_uris.retrieve(framework="sklearn", region=session.boto_region_name, version="1.2-1",
                                py_version="py3", instance_type="ml.m5.large")
    processor = ScriptProcessor(image_uri=image, command=["python3"], role=role, instance_type="ml.m5.large",
                                instance_count=1, base_job_name="sdk-proc", sagemaker_session=session)
    outputs = [
        ProcessingOutput(output_name=f"{n}_data", s3_output=ProcessingS3Output(
            s3_uri=f"s3://{bucket}/sdk-proc/{n}", local_path=f"/opt/ml/processing/output/{n}",
            s3_upload_mode="EndOfJob"))
        for n in ("train", "validation")
    ]
    processor.run(code=str(script), inputs=[ProcessingInput(input_name="input-1", s3_input=ProcessingS3Input(
        s3_uri=f"s3://{bucket}/sdk-proc/raw", local_path="/opt/ml/processing/input", s3_data_type="S3Prefix",
        s3_input_mode="File", s3_data_distribution_type="ShardedByS3Key"))], outputs=outputs, wait=True, logs=False)
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix="sdk-proc/")["Contents"]]
    assert "sdk-proc/train/train.csv" in keys and "sdk-proc/validation/validation.csv" in keys
    job = boto3.client("sagemaker").describe_processing_job(ProcessingJobName=processor.latest_job.processing_job_name)
    assert job["ProcessingJobStatus"] == "Completed"


def test_source_code_requirements_are_installed_once_per_content(sdk, emulator, tmp_path: Path):
    from sagemaker.core import image_uris
    from sagemaker.train import ModelTrainer
    from sagemaker.train.configs import Compute, InputData, SourceCode

    session, bucket, role = sdk
    _upload_csv(bucket, "sdk-req/train/train.csv", rows=50)
    src = tmp_path / "src"
    src.mkdir()
    (src / "requirements.txt").write_text("six>=1.10\n")
    (src / "train.py").write_text(textwrap.dedent("""
        import os, sys, six
        print("interpreter", sys.prefix)
        open(os.path.join(os.environ["SM_MODEL_DIR"], "six.txt"), "w").write(six.__version__)
    """))
    image = image_uris.retrieve(framework="xgboost", region=session.boto_region_name, version="1.7-1")
    pyenvs = emulator.paths.cache / "pyenvs"

    def cached() -> set[Path]:
        """Other tests (Clarify's image, say) share this emulator's cache: count only what this test adds."""
        return {p for p in pyenvs.iterdir() if p.is_dir() and not p.name.startswith(".")} if pyenvs.is_dir() else set()

    before = cached()
    sentinels = []
    for _ in range(2):
        trainer = ModelTrainer(
            training_image=image, role=role, compute=Compute(instance_type="ml.m5.large", instance_count=1),
            source_code=SourceCode(source_dir=str(src), entry_script="train.py"),
            base_job_name="sdk-req", sagemaker_session=session,
        )
        trainer.train(input_data_config=[InputData(channel_name="train", data_source=f"s3://{bucket}/sdk-req/train")],
                      wait=True, logs=False)
        assert trainer._latest_training_job.training_job_status == "Completed"
        envs = sorted(cached() - before)
        assert len(envs) == 1, "one cached environment per requirements content"
        sentinels.append(next(envs[0].glob(".sagemaker-emulator-complete")).stat().st_mtime)
        events = boto3.client("logs").filter_log_events(
            logGroupName="/aws/sagemaker/TrainingJobs",
            logStreamNamePrefix=trainer._latest_training_job.training_job_name, filterPattern="interpreter")
        assert str(envs[0]) in events["events"][0]["message"], "the job ran in the cached environment"
    assert sentinels[0] == sentinels[1], "the second run reused the environment instead of reinstalling"


def test_model_builder_deploys_a_real_time_endpoint(sdk):
    """``ModelBuilder(...).build()`` then ``.deploy(...)``, unchanged, then ``invoke_endpoint``."""
    from sagemaker.core import image_uris
    from sagemaker.serve.model_builder import ModelBuilder

    session, bucket, role = sdk
    data = _upload_csv(bucket, "sdk-deploy/train.csv", rows=200)
    booster = xgboost.train({"objective": "binary:logistic", "max_depth": 3},
                            xgboost.DMatrix(data[:, 1:], label=data[:, 0]), num_boost_round=5)
    boto3.client("s3").put_object(Bucket=bucket, Key="sdk-deploy/model.tar.gz", Body=xgboost_tarball(booster))
    image = image_uris.retrieve(framework="xgboost", region=session.boto_region_name, version="1.7-1")
    builder = ModelBuilder(s3_model_data_url=f"s3://{bucket}/sdk-deploy/model.tar.gz", image_uri=image,
                           role_arn=role, instance_type="ml.m5.xlarge", sagemaker_session=session)
    builder.build()
    endpoint = builder.deploy(endpoint_name="sdk-model-builder", initial_instance_count=1)
    try:
        assert endpoint.endpoint_status == "InService"
        row = ",".join(str(v) for v in data[0, 1:])
        body = boto3.client("sagemaker-runtime").invoke_endpoint(
            EndpointName="sdk-model-builder", ContentType="text/csv", Body=row)["Body"].read()
        assert abs(float(body) - float(booster.predict(xgboost.DMatrix(data[:1, 1:]))[0])) < 1e-6
    finally:
        boto3.client("sagemaker").delete_endpoint(EndpointName="sdk-model-builder")


def test_core_resources_model_endpoint_config_endpoint_with_capture(sdk):
    """``sagemaker.core.resources`` ``Model``/``EndpointConfig``/``Endpoint`` with ``wait_for_status`` and
    data capture (the V3 Model Monitor notebook's path), ``invoke``, then ``delete`` + ``wait_for_delete``."""
    from sagemaker.core import image_uris
    from sagemaker.core.resources import Endpoint, EndpointConfig, Model
    from sagemaker.core.shapes import CaptureOption, ContainerDefinition, DataCaptureConfig, ProductionVariant

    session, bucket, role = sdk
    data = _upload_csv(bucket, "sdk-resources/train.csv", rows=200)
    booster = xgboost.train({"objective": "binary:logistic", "max_depth": 3},
                            xgboost.DMatrix(data[:, 1:], label=data[:, 0]), num_boost_round=5)
    boto3.client("s3").put_object(Bucket=bucket, Key="sdk-resources/model.tar.gz", Body=xgboost_tarball(booster))
    image = image_uris.retrieve(framework="xgboost", region=session.boto_region_name, version="1.7-1")
    model = Model.create(model_name="sdk-resources-model", execution_role_arn=role, primary_container=
                         ContainerDefinition(image=image, model_data_url=f"s3://{bucket}/sdk-resources/model.tar.gz"))
    config = EndpointConfig.create(
        endpoint_config_name="sdk-resources-config",
        production_variants=[ProductionVariant(variant_name="AllTraffic", model_name=model.model_name,
                                               instance_type="ml.m5.xlarge", initial_instance_count=1)],
        data_capture_config=DataCaptureConfig(
            enable_capture=True, initial_sampling_percentage=100,
            destination_s3_uri=f"s3://{bucket}/sdk-resources/capture",
            capture_options=[CaptureOption(capture_mode="Input"), CaptureOption(capture_mode="Output")]),
    )
    endpoint = Endpoint.create(endpoint_name="sdk-resources", endpoint_config_name=config.endpoint_config_name)
    endpoint.wait_for_status("InService", poll=1)
    assert Endpoint.get(endpoint_name="sdk-resources").data_capture_config.current_sampling_percentage == 100
    row = ",".join(str(v) for v in data[0, 1:])
    body = endpoint.invoke(body=row, content_type="text/csv").body.read()
    assert abs(float(body) - float(booster.predict(xgboost.DMatrix(data[:1, 1:]))[0])) < 1e-6
    endpoint.delete()
    endpoint.wait_for_delete(poll=1)
    s3 = boto3.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="sdk-resources/capture/")["Contents"]]
    record = json.loads(s3.get_object(Bucket=bucket, Key=keys[0])["Body"].read().splitlines()[0])
    assert record["captureData"]["endpointInput"]["data"] == row
    config.delete()
    model.delete()
