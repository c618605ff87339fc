"""SageMaker Clarify processing jobs, driven by the genuine SDK V3 ``SageMakerClarifyProcessor``.

The job runs the ``sagemaker-clarify-processing`` image locally: smclarify for the bias metrics and
shap for Kernel SHAP, in the image's own environment (installed on first use: the first job of a
fresh state directory waits for pip). Checked: metrics against definitions computed here and against
smclarify run in that environment; SHAP's efficiency (values sum to the prediction minus the expected
value); the shadow endpoint is gone afterwards; bad configurations fail with a reason that names them.
"""

from __future__ import annotations

import io
import json
import subprocess
import uuid

import boto3
import numpy as np
import pandas as pd
import pytest
import xgboost
from artifacts import xgboost_tarball
from jobs_common import ROLE, XGBOOST_IMAGE, sdk_session

pytestmark = pytest.mark.slow

HEADERS = ["y", "age", "marital", "f1", "f2"]
FEATURES = HEADERS[1:]


def dataset(n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(11)
    age = rng.integers(18, 80, size=n)
    marital = rng.integers(0, 3, size=n)
    f1, f2 = rng.normal(size=n), rng.normal(size=n)
    y = ((f1 + 0.02 * (age - 40) + 0.3 * (marital == 1) + 0.5 * rng.normal(size=n)) > 0).astype(int)
    return pd.DataFrame({"y": y, "age": age, "marital": marital, "f1": f1, "f2": f2})


@pytest.fixture(scope="module")
def setup(emulator, boto_session):
    """Data with a header row in S3, an XGBoost model of it, and the SDK's session."""
    with sdk_session(emulator) as (session, bucket):
        yield from _setup(session, bucket, emulator)


def _setup(session, bucket, emulator):
    s3, sm = boto3.client("s3"), boto3.client("sagemaker")
    frame = dataset()
    s3.put_object(Bucket=bucket, Key="clarify/data/train.csv", Body=frame.to_csv(index=False).encode())
    booster = xgboost.train({"objective": "binary:logistic", "max_depth": 3},
                            xgboost.DMatrix(frame[FEATURES].to_numpy(float), label=frame.y), 20)
    s3.put_object(Bucket=bucket, Key="clarify/model.tar.gz", Body=xgboost_tarball(booster))
    model = f"clarify-model-{uuid.uuid4().hex[:6]}"
    sm.create_model(ModelName=model, ExecutionRoleArn=ROLE, PrimaryContainer={
        "Image": XGBOOST_IMAGE, "ModelDataUrl": f"s3://{bucket}/clarify/model.tar.gz"})
    yield {"session": session, "bucket": bucket, "frame": frame, "booster": booster, "model": model, "emu": emulator}


def processor(setup):
    from sagemaker.core.clarify import SageMakerClarifyProcessor

    return SageMakerClarifyProcessor(role=ROLE, instance_count=1, instance_type="ml.m5.xlarge",
                                     sagemaker_session=setup["session"], max_runtime_in_seconds=900)


def data_config(setup, output: str):
    from sagemaker.core.clarify import DataConfig

    return DataConfig(s3_data_input_path=f"s3://{setup['bucket']}/clarify/data/train.csv",
                      s3_output_path=f"s3://{setup['bucket']}/clarify/{output}", label="y", headers=HEADERS,
                      dataset_type="text/csv")


def analysis(setup, output: str) -> dict:
    body = boto3.client("s3").get_object(Bucket=setup["bucket"], Key=f"clarify/{output}/analysis.json")["Body"]
    return json.loads(body.read())


def metrics(part: dict, facet: str) -> dict[str, float]:
    return {m["name"]: m["value"] for m in part["facets"][facet][0]["metrics"]}


def test_pre_training_bias_equals_the_definitions_and_smclarify(setup):
    from sagemaker.core.clarify import BiasConfig

    processor(setup).run_pre_training_bias(data_config(setup, "pre"), BiasConfig([1], "age", [40]), wait=True,
                                           logs=False)
    result = analysis(setup, "pre")
    found = metrics(result["pre_training_bias_metrics"], "age")
    assert {"CI", "DPL", "JS", "KL", "KS", "LP", "TVD"} <= set(found)  # "all"; CDDL needs a group_variable
    frame = setup["frame"]
    d = frame.age > 40  # the facet: age in (40, max]
    n_a, n_d = (~d).sum(), d.sum()
    assert found["CI"] == pytest.approx((n_a - n_d) / (n_a + n_d), abs=1e-6)
    assert found["DPL"] == pytest.approx(frame.y[~d].mean() - frame.y[d].mean(), abs=1e-6)
    assert result["pre_training_bias_metrics"]["facets"]["age"][0]["value_or_threshold"] == "(40, 79]"
    # smclarify itself, in the image's environment, on the same data
    reference = _smclarify_in_process(setup, "age", [40])
    for name, value in reference.items():
        assert found[name] == pytest.approx(value, abs=1e-6), name
    log = _job_log(_latest_job())  # CDDL without a group variable: one clear line, not smclarify's traceback
    assert "ERROR: CDDL metrics failed: Group variable is empty or not provided (set group_variable" in log
    assert "Traceback" not in log


def _latest_job() -> str:
    jobs = boto3.client("sagemaker").list_processing_jobs(SortBy="CreationTime", SortOrder="Descending")
    return jobs["ProcessingJobSummaries"][0]["ProcessingJobName"]


def _job_log(name: str) -> str:
    logs = boto3.client("logs")
    group = "/aws/sagemaker/ProcessingJobs"
    streams = logs.describe_log_streams(logGroupName=group, logStreamNamePrefix=name)["logStreams"]
    return "\n".join(event["message"] for stream in streams for event in logs.get_log_events(
        logGroupName=group, logStreamName=stream["logStreamName"], startFromHead=True)["events"])


def _smclarify_in_process(setup, facet: str, values: list) -> dict[str, float]:
    from sagemaker_emulator.images.clarify import REQUIREMENTS, environment_root
    from sagemaker_emulator.runtime.pyenvs import python_for_requirements

    python = python_for_requirements(REQUIREMENTS, environment_root(setup["emu"].paths.cache))
    script = (
        "import json, sys, pandas as pd\n"
        "from smclarify.bias import report\n"
        "df = pd.read_csv(sys.stdin)\n"
        f"out = report.bias_report(df, report.FacetColumn({facet!r}, {values!r}), "
        "report.LabelColumn('y', df['y'], [1]), report.StageType.PRE_TRAINING)\n"
        "print(json.dumps({m['name']: m['value'] for m in out[0]['metrics']}))\n")
    done = subprocess.run([str(python), "-c", script], input=setup["frame"].to_csv(index=False), text=True,
                          capture_output=True, timeout=300, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_post_training_bias_uses_a_shadow_endpoint_it_deletes(setup):
    from sagemaker.core.clarify import BiasConfig, ModelConfig, ModelPredictedLabelConfig

    model = ModelConfig(model_name=setup["model"], instance_type="ml.m5.xlarge", instance_count=1,
                        accept_type="text/csv", content_type="text/csv")
    processor(setup).run_post_training_bias(data_config(setup, "post"), BiasConfig([1], "marital", [1]), model,
                                            ModelPredictedLabelConfig(probability_threshold=0.5), wait=True,
                                            logs=False)
    found = metrics(analysis(setup, "post")["post_training_bias_metrics"], "marital")
    frame = setup["frame"]
    predicted = (setup["booster"].predict(xgboost.DMatrix(frame[FEATURES].to_numpy(float))) > 0.5).astype(int)
    d = frame.marital == 1
    assert found["DPPL"] == pytest.approx(predicted[~d].mean() - predicted[d].mean(), abs=1e-6)
    assert found["DI"] == pytest.approx(predicted[d].mean() / predicted[~d].mean(), abs=1e-6)
    endpoints = boto3.client("sagemaker").list_endpoints(NameContains="sm-clarify")["Endpoints"]
    assert endpoints == []


def test_kernel_shap_values_sum_to_prediction_minus_expected_value(setup):
    from sagemaker.core.clarify import ModelConfig, SHAPConfig

    frame = setup["frame"]
    baseline = [frame[FEATURES].mean().round(3).tolist()]
    model = ModelConfig(model_name=setup["model"], instance_type="ml.m5.xlarge", instance_count=1,
                        accept_type="text/csv", content_type="text/csv")
    shap_config = SHAPConfig(baseline=baseline, num_samples=64, agg_method="mean_abs", save_local_shap_values=True)
    processor(setup).run_explainability(data_config(setup, "shap"), model, shap_config, wait=True, logs=False)
    result = analysis(setup, "shap")["explanations"]["kernel_shap"]["label0"]
    s3 = boto3.client("s3")
    local = pd.read_csv(io.BytesIO(s3.get_object(Bucket=setup["bucket"],
                                                 Key="clarify/shap/explanations_shap/out.csv")["Body"].read()))
    assert list(local.columns) == [f"{f}_label0" for f in FEATURES]
    predictions = setup["booster"].predict(xgboost.DMatrix(frame[FEATURES].to_numpy(float)))
    assert np.allclose(local.sum(axis=1) + result["expected_value"], predictions, atol=1e-4)
    base_prediction = setup["booster"].predict(xgboost.DMatrix(np.asarray(baseline, dtype=float)))[0]
    assert result["expected_value"] == pytest.approx(base_prediction, abs=1e-5)
    assert result["global_shap_values"] == pytest.approx(local.abs().mean().set_axis(FEATURES).to_dict())
    report = s3.list_objects_v2(Bucket=setup["bucket"], Prefix="clarify/shap/report")["Contents"]
    assert {o["Key"].rsplit("/", 1)[1] for o in report} >= {"report.html", "report.ipynb"}


@pytest.mark.parametrize(("facet", "methods", "label", "reason"), [
    ("nope", "all", "y", 'The facet "nope" is not a column of the dataset'),
    ("age", ["XYZ"], "y", "Invalid pre-training bias methods ['XYZ']"),
])
def test_malformed_configurations_fail_the_job_saying_why(setup, facet, methods, label, reason):
    from sagemaker.core.clarify import BiasConfig

    clarify = processor(setup)
    with pytest.raises(Exception):  # noqa: B017 - the SDK raises its own "job failed" error
        clarify.run_pre_training_bias(data_config(setup, f"bad-{facet}"), BiasConfig([1], facet, [40]),
                                      methods=methods, wait=True, logs=False)
    name = clarify.latest_job.processing_job_name
    job = boto3.client("sagemaker").describe_processing_job(ProcessingJobName=name)
    assert job["ProcessingJobStatus"] == "Failed"
    assert reason in job["FailureReason"]


def test_later_jobs_fork_from_the_clarify_environments_warm_worker(setup):
    """The first Clarify job of a daemon starts its environment's warm worker; once it is ready, jobs fork from it
    (no 3-5 s of imports each)."""
    from sagemaker.core.clarify import BiasConfig

    from sagemaker_emulator.images.clarify import REQUIREMENTS, environment_root
    from sagemaker_emulator.runtime.pyenvs import python_for_requirements

    python = str(python_for_requirements(REQUIREMENTS, environment_root(setup["emu"].paths.cache)))
    workers = [w for w in setup["emu"].warm.workers() if w.python == python]
    assert workers, "no warm worker for the Clarify environment"
    assert all(w.ready.wait(180) and w.usable for w in workers)
    before = sum(w.forks for w in workers)
    with pytest.raises(Exception):  # noqa: B017 - a quick job: it fails on its configuration
        processor(setup).run_pre_training_bias(data_config(setup, "bad-warm"), BiasConfig([1], "nope", [40]),
                                               wait=True, logs=False)
    assert sum(w.forks for w in workers) == before + 1


def test_request_text_is_savetxt_text():
    """The shadow endpoint's requests: each distinct value formatted once, the very text of ``np.savetxt``."""
    from sagemaker_emulator.images.clarify.predictor import csv_text

    rng = np.random.default_rng(3)
    for rows in ((rng.random((500, 7)) < 0.3) * rng.normal(size=7), rng.normal(size=(50, 4)),
                 np.array([[np.nan, 1.0, 0.0], [0.0, 1 / 3, np.inf]] * 30), np.array([[-0.0, 1.0], [0.0, 2.0]] * 9)):
        buffer = io.StringIO()
        np.savetxt(buffer, rows, delimiter=",", fmt="%.17g")
        assert csv_text(rows) == buffer.getvalue()
