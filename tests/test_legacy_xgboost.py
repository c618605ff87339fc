"""The legacy first-party XGBoost image (``xgboost:latest``), driven as the public Immersion Day V3 notebooks drive it.

``image_uris.retrieve("xgboost", region, "latest")``, ``silent=0``, ``ModelTrainer.train``, a serverless endpoint
made with boto3, and ``HyperparameterTuner`` on ``validation:auc``; plus the legacy algorithm's own refusals.
"""

from __future__ import annotations

import io
import time

import boto3
import numpy as np
import pytest

from sagemaker_emulator.images.xgboost_algorithm import legacy
from sagemaker_emulator.images.xgboost_algorithm.errors import UserError
from sagemaker_emulator.runtime import imageenvs

#: the public notebook's hyperparameters (numpy_xgboost_direct_marketing_sagemaker.ipynb, cell 17)
NOTEBOOK_HPS = {"max_depth": 5, "eta": 0.2, "gamma": 4, "min_child_weight": 6, "subsample": 0.8, "silent": 0,
                "objective": "binary:logistic", "num_round": 20}
LOG_GROUP = "/aws/sagemaker/TrainingJobs"


# --------------------------------------------------------------------------- the 0.72 table, without a job

def test_the_notebooks_hyperparameters_are_valid_and_silent_becomes_xgboosts_default_verbosity():
    config = legacy.translate(legacy.validate({k: str(v) for k, v in NOTEBOOK_HPS.items()}), lambda _: None)
    assert "silent" not in config and "verbosity" not in config
    assert config["eval_metric"] == ["error"], "0.72's default metric for binary:logistic"
    assert config["num_round"] == 20 and config["subsample"] == 0.8


def test_translation_for_the_installed_xgboost_is_said():
    said: list[str] = []
    config = legacy.translate(legacy.validate({"num_round": "5", "silent": "1", "objective": "reg:linear",
                                               "sketch_eps": "0.1"}), said.append)
    assert config["verbosity"] == 0 and config["objective"] == "reg:squarederror" and "sketch_eps" not in config
    assert len(said) == 3 and "sketch_eps" in said[2]


@pytest.mark.parametrize(("hps", "text"), [
    ({"num_round": "5", "colsample_bynode": "0.5"}, "Additional hyperparameters are not allowed ('colsample_bynode' "
                                                    "was unexpected)"),
    ({"num_round": "5", "subsample": "0"}, "Parameter 'subsample' should be in range (0,1]."),
    ({"num_round": "5", "silent": "2"}, "Parameter 'silent' should be either '0' or '1'."),
    ({"num_round": "5", "tree_method": "gpu_hist"}, "GPU training is not supported yet."),
    ({"num_round": "5", "objective": "reg:squarederror"}, "Parameter 'objective' should be one of these options"),
    ({"num_round": "5", "objective": "multi:softmax"}, "Require input for parameter 'num_class' for multi"),
    ({"num_round": "5", "eval_metric": "auc"}, "Metric 'auc' can only be applied for classification"),
    ({"num_round": "ten"}, "Parameter num_round expects integer input."),
    ({"eta": "0.1"}, "Require input for parameter num_round"),
    ({"num_round": "5", "_tuning_objective_metric": "validation:aucpr"}, "Tuning objective metric 'validation:aucpr'"),
])
def test_refusals_use_the_legacy_algorithms_texts(hps: dict[str, str], text: str):
    with pytest.raises(UserError, match=None) as caught:
        legacy.validate(hps)
    assert str(caught.value).startswith(text)


# --------------------------------------------------------------------------- as the public notebooks run it

@pytest.fixture
def notebook(emulator_env):
    """The public notebook's set-up cells: Session, bucket, role, region, the ``latest`` image, csv channels."""
    from sagemaker.core import image_uris
    from sagemaker.core.helper.session_helper import Session, get_execution_role

    session = Session()
    bucket, region = session.default_bucket(), session.boto_region_name
    rng = np.random.default_rng(7)
    x = rng.normal(size=(600, 5))
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.5, size=600) > 0).astype(int)
    for name, rows in (("train", slice(0, 400)), ("validation", slice(400, 600))):
        buf = io.StringIO()
        np.savetxt(buf, np.column_stack([y[rows], x[rows]]), delimiter=",", fmt="%.5f")
        boto3.client("s3").put_object(Bucket=bucket, Key=f"legacy/{name}/{name}.csv", Body=buf.getvalue().encode())
    container = image_uris.retrieve(region=region, framework="xgboost", version="latest")
    assert container.endswith("/xgboost:latest"), container
    return {"session": session, "bucket": bucket, "role": get_execution_role(), "container": container, "x": x}


def _trainer(nb, hps: dict) -> object:
    from sagemaker.core.shapes import OutputDataConfig
    from sagemaker.core.training.configs import Compute
    from sagemaker.train import ModelTrainer

    return ModelTrainer(
        training_image=nb["container"], role=nb["role"],
        compute=Compute(instance_type="ml.m4.xlarge", instance_count=1),
        output_data_config=OutputDataConfig(s3_output_path=f"s3://{nb['bucket']}/legacy/output"),
        hyperparameters=hps, sagemaker_session=nb["session"], base_job_name="sm-immday-xgboost",
    )


def _inputs(nb) -> list:
    from sagemaker.core.training.configs import InputData

    return [InputData(channel_name=name, data_source=f"s3://{nb['bucket']}/legacy/{name}/", content_type="csv")
            for name in ("train", "validation")]


def _first_log_lines(job_name: str, count: int) -> list[str]:
    logs = boto3.client("logs")
    stream = logs.describe_log_streams(logGroupName=LOG_GROUP, logStreamNamePrefix=job_name)["logStreams"][0]
    events = logs.get_log_events(logGroupName=LOG_GROUP, logStreamName=stream["logStreamName"],
                                 startFromHead=True)["events"]
    return [event["message"] for event in events[:count]]


@pytest.mark.slow
def test_model_trainer_with_silent_0_completes_and_deploys_serverless(notebook):
    """Cells 15-17 and the serverless section of the public notebook, unchanged in substance."""
    trainer = _trainer(notebook, NOTEBOOK_HPS)
    trainer.train(input_data_config=_inputs(notebook), wait=True, logs=False)
    job = trainer._latest_training_job
    assert job.training_job_status == "Completed", job.failure_reason
    metrics = {m.metric_name: m.value for m in job.final_metric_data_list}
    assert metrics["validation:error"] < 0.3, "0.72's default metric for binary:logistic is error"
    first, second = _first_log_lines(job.training_job_name, 2)
    assert first.startswith("xgboost:latest — "), "the image and the library versions it runs with"
    assert ("xgboost 1.7.4, " if imageenvs.enabled() else "image environments are off") in first
    assert "XGBoost 0.72's hyperparameters" in second

    client, runtime = boto3.client("sagemaker"), boto3.client("sagemaker-runtime")
    name = "legacy-serverless"
    client.create_model(ModelName=name, ExecutionRoleArn=notebook["role"], Containers=[{
        "Image": notebook["container"], "Mode": "SingleModel",
        "ModelDataUrl": job.model_artifacts.s3_model_artifacts,
        "Environment": {"SAGEMAKER_CONTAINER_LOG_LEVEL": "20", "SOME_ENV_VAR": "myEnvVar"}}])
    client.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[{
        "VariantName": "byoVariant", "ModelName": name,
        "ServerlessConfig": {"MemorySizeInMB": 4096, "MaxConcurrency": 1}}])
    client.create_endpoint(EndpointName=name, EndpointConfigName=name)
    try:
        client.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig={"Delay": 1})
        rows = notebook["x"][:3]
        body = "\n".join(",".join(f"{v:.5f}" for v in row) for row in rows)
        answer = runtime.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=body)["Body"].read()
        scores = np.fromstring(answer.decode(), sep=",")  # noqa: NPY201 - the public notebook's own parsing
        assert scores.shape == (3,) and ((scores >= 0) & (scores <= 1)).all()
    finally:
        client.delete_endpoint(EndpointName=name)
        client.delete_endpoint_config(EndpointConfigName=name)
        client.delete_model(ModelName=name)


@pytest.mark.slow
def test_a_hyperparameter_072_did_not_have_fails_with_its_wording(notebook):
    from sagemaker.core.utils.exceptions import FailedStatusError

    trainer = _trainer(notebook, {**NOTEBOOK_HPS, "colsample_bynode": 0.5})
    with pytest.raises(FailedStatusError, match="colsample_bynode"):
        trainer.train(input_data_config=_inputs(notebook), wait=True, logs=False)
    job = boto3.client("sagemaker").describe_training_job(
        TrainingJobName=trainer._latest_training_job.training_job_name)
    assert job["TrainingJobStatus"] == "Failed"
    assert job["FailureReason"] == ("ClientError: Additional hyperparameters are not allowed ('colsample_bynode' "
                                    "was unexpected)")


@pytest.mark.slow
def test_hyperparameter_tuner_on_validation_auc(notebook):
    """Cells 22-27: the tuner over the same ModelTrainer, objective ``validation:auc``."""
    from sagemaker.core.parameter import ContinuousParameter, IntegerParameter
    from sagemaker.core.shapes import Channel, DataSource, S3DataSource
    from sagemaker.train.tuner import HyperparameterTuner

    tuner = HyperparameterTuner(
        model_trainer=_trainer(notebook, NOTEBOOK_HPS), objective_metric_name="validation:auc",
        hyperparameter_ranges={"eta": ContinuousParameter(0, 1), "min_child_weight": ContinuousParameter(1, 10),
                               "alpha": ContinuousParameter(0, 2), "max_depth": IntegerParameter(1, 10)},
        max_jobs=2, max_parallel_jobs=2, objective_type="Maximize",
    )
    channels = [Channel(channel_name=name, content_type="csv", data_source=DataSource(s3_data_source=S3DataSource(
        s3_data_type="S3Prefix", s3_uri=f"s3://{notebook['bucket']}/legacy/{name}/",
        s3_data_distribution_type="FullyReplicated"))) for name in ("train", "validation")]
    tuner.tune(inputs=channels, wait=False)
    sm = boto3.client("sagemaker")
    name = tuner.latest_tuning_job.hyper_parameter_tuning_job_name
    deadline = time.monotonic() + 120
    while (job := sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name))[
            "HyperParameterTuningJobStatus"] == "InProgress":
        assert time.monotonic() < deadline, job
        time.sleep(0.5)
    assert job["HyperParameterTuningJobStatus"] == "Completed", job.get("FailureReason")
    assert job["TrainingJobStatusCounters"]["Completed"] == 2
    best = job["BestTrainingJob"]
    assert best["FinalHyperParameterTuningJobObjectiveMetric"]["MetricName"] == "validation:auc"
    assert tuner.best_training_job() == best["TrainingJobName"]
