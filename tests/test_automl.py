"""AutoML (Autopilot) jobs: the genuine SDK V3 ``AutoMLJobV2``/``AutoMLJob`` resources and boto3 against the emulator.

ENSEMBLING mode runs AutoGluon-Tabular in the ``autogluon-training`` image's own environment (built on
first use: the first job of a machine waits for pip). The data is a stratified 6 % slice of the raw bank
data (header, all 21 columns); the completion criteria keep each job within about a minute.
"""

from __future__ import annotations

import io
import time
import uuid
from contextlib import contextmanager

import boto3
import pandas as pd
import pytest
from botocore.exceptions import ClientError
from jobs_common import ROLE, TRAINING, JobKind, sdk_session

pytestmark = pytest.mark.slow

CRITERIA = {"MaxCandidates": 3, "MaxRuntimePerTrainingJobInSeconds": 90}
# SDK 3.27's ``AutoMLJobCompletionCriteria.max_auto_ml_job_runtime_in_seconds`` is sent as
# "MaxAutoMlJobRuntimeInSeconds", which botocore refuses: the whole-job limit is set with boto3 below.


def describe_v2(sm, name):
    return sm.describe_auto_ml_job_v2(AutoMLJobName=name)


def wait_v2(sm, name, done=None, timeout=900.0, describe=describe_v2):
    deadline = time.monotonic() + timeout
    while True:
        job = describe(sm, name)
        if (done or (lambda j: j["AutoMLJobStatus"] in ("Completed", "Failed", "Stopped")))(job):
            return job
        assert time.monotonic() < deadline, f"{name} still {job['AutoMLJobStatus']}/{job['AutoMLJobSecondaryStatus']}"
        time.sleep(0.5)


@contextmanager
def endpoint_of(sm, name, containers):
    """A model of ``containers``, its endpoint configuration and its endpoint ``InService``; all deleted after."""
    sm.create_model(ModelName=name, ExecutionRoleArn=ROLE, Containers=containers)
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": name, "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}])
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    try:
        endpoint = JobKind("Endpoint", timeout=300.0, interval=0.5).wait(
            sm, name, done=lambda e: e["EndpointStatus"] in ("InService", "Failed"))
        assert endpoint["EndpointStatus"] == "InService", endpoint.get("FailureReason")
        yield boto3.client("sagemaker-runtime")
    finally:
        sm.delete_endpoint(EndpointName=name)
        sm.delete_endpoint_config(EndpointConfigName=name)
        sm.delete_model(ModelName=name)


@pytest.fixture(scope="module")
def setup(emulator, boto_session):
    from helpers.data import load_bank_marketing

    with sdk_session(emulator) as (session, bucket):
        s3, sm = boto3.client("s3"), boto3.client("sagemaker")
        frame = load_bank_marketing(sample_fraction=0.06, seed=200)
        test = frame.sample(n=40, random_state=1)
        train = frame.drop(test.index)
        s3.put_object(Bucket=bucket, Key="automl/train/bank.csv", Body=train.to_csv(index=False).encode())
        yield {"session": session, "bucket": bucket, "sm": sm, "s3": s3, "train": train, "test": test}


@pytest.fixture(scope="module")
def v2_job(setup):
    """One ENSEMBLING job created and awaited with the SDK V3 resource, as the IDR notebook does."""
    from sagemaker.core.resources import AutoMLJobV2
    from sagemaker.core.shapes import (
        AutoMLDataSource,
        AutoMLJobChannel,
        AutoMLJobCompletionCriteria,
        AutoMLJobObjective,
        AutoMLOutputDataConfig,
        AutoMLProblemTypeConfig,
        AutoMLS3DataSource,
        ModelDeployConfig,
        TabularJobConfig,
    )

    bucket = setup["bucket"]
    name = f"automl-bank-{uuid.uuid4().hex[:6]}"
    started = time.monotonic()
    job = AutoMLJobV2.create(
        auto_ml_job_name=name,
        auto_ml_job_input_data_config=[AutoMLJobChannel(data_source=AutoMLDataSource(
            s3_data_source=AutoMLS3DataSource(s3_data_type="S3Prefix", s3_uri=f"s3://{bucket}/automl/train")))],
        output_data_config=AutoMLOutputDataConfig(s3_output_path=f"s3://{bucket}/automl/output"),
        auto_ml_problem_type_config=AutoMLProblemTypeConfig(tabular_job_config=TabularJobConfig(
            target_attribute_name="y", completion_criteria=AutoMLJobCompletionCriteria(
                max_candidates=CRITERIA["MaxCandidates"],
                max_runtime_per_training_job_in_seconds=CRITERIA["MaxRuntimePerTrainingJobInSeconds"]),
            problem_type="BinaryClassification")),
        role_arn=ROLE, auto_ml_job_objective=AutoMLJobObjective(metric_name="Accuracy"),
        model_deploy_config=ModelDeployConfig(endpoint_name=f"{name}-endpoint"),
        session=setup["session"].boto_session)
    job.wait(poll=1, timeout=900)
    job.refresh()
    yield {"name": name, "job": job, "seconds": time.monotonic() - started}
    sm = setup["sm"]
    for delete, key in ((sm.delete_endpoint, "EndpointName"), (sm.delete_endpoint_config, "EndpointConfigName"),
                        (sm.delete_model, "ModelName")):
        delete(**{key: f"{name}-endpoint"})


def test_v2_job_completes_with_candidates(setup, v2_job):
    sm, job = setup["sm"], v2_job["job"]
    assert job.auto_ml_job_status == "Completed", job.failure_reason
    raw = describe_v2(sm, v2_job["name"])
    assert raw["AutoMLJobSecondaryStatus"] == "Completed"
    assert raw["AutoMLProblemTypeConfigName"] == "Tabular"
    assert raw["ResolvedAttributes"]["AutoMLJobObjective"] == {"MetricName": "Accuracy"}
    assert raw["ResolvedAttributes"]["AutoMLProblemTypeResolvedAttributes"]["TabularResolvedAttributes"] == {
        "ProblemType": "BinaryClassification"}
    assert raw["ModelDeployConfig"] == {"EndpointName": f"{v2_job['name']}-endpoint"}
    assert raw["ModelDeployResult"] == {"EndpointName": f"{v2_job['name']}-endpoint"}
    endpoint = sm.describe_endpoint(EndpointName=f"{v2_job['name']}-endpoint")
    assert endpoint["EndpointStatus"] == "InService"
    assert sm.describe_model(ModelName=f"{v2_job['name']}-endpoint")["Containers"][0]["Environment"][
        "SAGEMAKER_AUTOML_CANDIDATE_MODEL"] == raw["BestCandidate"]["InferenceContainers"][0]["Environment"][
        "SAGEMAKER_AUTOML_CANDIDATE_MODEL"]
    notebook = raw["AutoMLJobArtifacts"]["DataExplorationNotebookLocation"]
    assert notebook.startswith(f"s3://{setup['bucket']}/automl/output/{v2_job['name']}/sagemaker-automl-candidates/")
    bucket, _, key = notebook[5:].partition("/")
    import nbformat

    parsed = nbformat.reads(setup["s3"].get_object(Bucket=bucket, Key=key)["Body"].read().decode(), as_version=4)
    nbformat.validate(parsed)
    assert "| y (target) | object |" in "".join(c.source for c in parsed.cells)
    best = job.best_candidate
    assert best.final_auto_ml_job_objective_metric.metric_name == "Accuracy"
    assert 0.85 < best.final_auto_ml_job_objective_metric.value <= 1.0
    candidates = sm.list_candidates_for_auto_ml_job(AutoMLJobName=v2_job["name"],
                                                    SortBy="FinalObjectiveMetricValue")["Candidates"]
    assert 1 <= len(candidates) <= CRITERIA["MaxCandidates"]
    values = [c["FinalAutoMLJobObjectiveMetric"]["Value"] for c in candidates]
    assert values == sorted(values)  # SortOrder defaults to Ascending
    assert candidates[-1]["CandidateName"] == best.candidate_name
    assert candidates[-1]["FinalAutoMLJobObjectiveMetric"]["Value"] == max(values)
    for candidate in candidates:
        assert candidate["CandidateStatus"] == "Completed" and candidate["ObjectiveStatus"] == "Succeeded"
        metrics = {m["MetricName"]: m["Value"] for m in candidate["CandidateProperties"]["CandidateMetrics"]}
        assert {"Accuracy", "AUC", "BalancedAccuracy", "F1", "LogLoss", "Precision", "Recall"} <= set(metrics)
        assert metrics["Accuracy"] == candidate["FinalAutoMLJobObjectiveMetric"]["Value"]
        for step in candidate["CandidateSteps"]:
            assert step["CandidateStepType"] == "AWS::SageMaker::TrainingJob"
            training = TRAINING.describe(sm, step["CandidateStepName"])
            assert training["TrainingJobStatus"] == "Completed"
            assert training["TrainingJobArn"] == step["CandidateStepArn"]
        (container,) = candidate["InferenceContainers"]
        assert "autogluon-inference" in container["Image"] and container["ModelDataUrl"].endswith("model.tar.gz")
        assert container["Environment"]["SAGEMAKER_INFERENCE_OUTPUT"] == "predicted_label"


def test_list_candidates_filters_and_pages(setup, v2_job):
    sm, name = setup["sm"], v2_job["name"]
    everything = sm.list_candidates_for_auto_ml_job(AutoMLJobName=name, SortBy="FinalObjectiveMetricValue",
                                                    SortOrder="Descending")["Candidates"]
    paged, token = [], None
    while True:
        page = sm.list_candidates_for_auto_ml_job(AutoMLJobName=name, SortBy="FinalObjectiveMetricValue",
                                                  SortOrder="Descending", MaxResults=1,
                                                  **({"NextToken": token} if token else {}))
        paged += page["Candidates"]
        token = page.get("NextToken")
        if not token:
            break
    assert [c["CandidateName"] for c in paged] == [c["CandidateName"] for c in everything]
    one = everything[-1]["CandidateName"]
    assert [c["CandidateName"] for c in sm.list_candidates_for_auto_ml_job(
        AutoMLJobName=name, CandidateNameEquals=one)["Candidates"]] == [one]
    assert sm.list_candidates_for_auto_ml_job(AutoMLJobName=name, StatusEquals="Failed")["Candidates"] == []
    jobs = sm.list_auto_ml_jobs(NameContains=name)["AutoMLJobSummaries"]
    assert [j["AutoMLJobName"] for j in jobs] == [name] and jobs[0]["AutoMLJobStatus"] == "Completed"
    names = [j["AutoMLJobName"] for j in sm.list_auto_ml_jobs(MaxResults=100)["AutoMLJobSummaries"]]
    assert names == sorted(names, reverse=True)  # SortBy Name, SortOrder Descending by default


def test_v1_describe_of_a_v2_job(setup, v2_job):
    from sagemaker.core.resources import AutoMLJob

    v1 = setup["sm"].describe_auto_ml_job(AutoMLJobName=v2_job["name"])
    assert v1["InputDataConfig"][0]["TargetAttributeName"] == "y"
    assert v1["ProblemType"] == "BinaryClassification"
    assert v1["AutoMLJobConfig"]["CompletionCriteria"]["MaxCandidates"] == CRITERIA["MaxCandidates"]
    assert v1["ResolvedAttributes"]["ProblemType"] == "BinaryClassification"
    assert v1["BestCandidate"]["CandidateName"] == v2_job["job"].best_candidate.candidate_name
    sdk = AutoMLJob.get(v2_job["name"], session=setup["session"].boto_session)
    names = [c.candidate_name for c in sdk.get_all_candidates(sort_by="FinalObjectiveMetricValue",
                                                              sort_order="Descending")]
    assert names[0] == v2_job["job"].best_candidate.candidate_name


def s3_object(setup, uri):
    bucket, _, key = uri[5:].partition("/")
    return setup["s3"].get_object(Bucket=bucket, Key=key)["Body"].read()


def check_candidate_notebook(setup, job, mode):
    """The candidate definition notebook: valid nbformat 4, every code cell compiles, and its cells run
    against the emulator (``RERUN`` stays False: describing, not re-training)."""
    import contextlib

    import nbformat

    uri = job["AutoMLJobArtifacts"]["CandidateDefinitionNotebookLocation"]
    explore = job["AutoMLJobArtifacts"]["DataExplorationNotebookLocation"]
    assert uri.rsplit("/", 1) == [explore.rsplit("/", 1)[0], "SageMakerAutopilotCandidateDefinitionNotebook.ipynb"]
    notebook = nbformat.reads(s3_object(setup, uri).decode(), as_version=4)
    nbformat.validate(notebook)
    text = "".join(c.source for c in notebook.cells)
    assert f"mode **{mode}**" in text and job["BestCandidate"]["CandidateName"] in text
    namespace: dict = {}
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        for cell in notebook.cells:
            if cell.cell_type == "code":
                exec(compile(cell.source, "candidate-notebook", "exec"), namespace)  # noqa: S102
    assert namespace["best"]["CandidateName"] == job["BestCandidate"]["CandidateName"]
    assert job["BestCandidate"]["CandidateName"] in output.getvalue()


def check_reports(setup, job, features):
    """The best candidate's explainability (Clarify's Kernel SHAP) and model insights reports, where Describe
    says; the insights' numbers equal the candidate's metrics and those computed from its predictions."""
    import json

    import numpy as np
    from sklearn import metrics as m

    best = job["BestCandidate"]
    locations = best["CandidateProperties"]["CandidateArtifactLocations"]
    prefix = f"s3://{setup['bucket']}/automl/output/{job['AutoMLJobName']}/documentation"
    assert locations == {"Explainability": f"{prefix}/explainability/output/{best['CandidateName']}",
                         "ModelInsights": f"{prefix}/model_monitor/output/{best['CandidateName']}"}
    assert "PartialFailureReasons" not in job, job.get("PartialFailureReasons")
    analysis = json.loads(s3_object(setup, f"{locations['Explainability']}/analysis.json"))
    shap_values = analysis["explanations"]["kernel_shap"]["label0"]
    assert set(shap_values["global_shap_values"]) == set(features)
    assert 0.0 <= shap_values["expected_value"] <= 1.0  # P(yes) of the baseline row
    assert max(shap_values["global_shap_values"].values()) > 0
    local = pd.read_csv(io.BytesIO(s3_object(setup, f"{locations['Explainability']}/explanations_shap/out.csv")))
    assert np.allclose(local.abs().mean().to_numpy(), [shap_values["global_shap_values"][f] for f in features])
    assert b"<html" in s3_object(setup, f"{locations['Explainability']}/report.html").lower()

    insights = json.loads(s3_object(setup, f"{locations['ModelInsights']}/model_insights.json"))
    candidate = {x["MetricName"]: x["Value"] for x in best["CandidateProperties"]["CandidateMetrics"]}
    for name in ("Accuracy", "AUC", "BalancedAccuracy", "F1", "LogLoss", "Precision", "Recall"):
        assert insights["metrics"][name] == pytest.approx(candidate[name], abs=1e-9), name
    predictions = pd.read_csv(io.BytesIO(s3_object(setup, f"{locations['ModelInsights']}/predictions.csv")))
    assert len(predictions) == insights["rows"]
    truth, predicted = predictions["label"].astype(str), predictions["predicted_label"].astype(str)
    assert insights["metrics"]["Accuracy"] == pytest.approx((truth == predicted).mean())
    assert insights["metrics"]["AUC"] == pytest.approx(m.roc_auc_score(truth == "yes", predictions["probability_yes"]))
    assert insights["confusion_matrix"]["labels"] == ["no", "yes"]
    assert insights["confusion_matrix"]["matrix"] == m.confusion_matrix(truth, predicted, labels=["no", "yes"]).tolist()
    roc = insights["roc_curve"]
    assert roc["false_positive_rate"][0] == 0 and roc["true_positive_rate"][-1] == 1
    for name in ("roc_curve.png", "precision_recall_curve.png", "confusion_matrix.png"):
        assert s3_object(setup, f"{locations['ModelInsights']}/{name}").startswith(b"\x89PNG")
    page = s3_object(setup, f"{locations['ModelInsights']}/report.html").decode()
    assert best["CandidateName"] in page and "data:image/png;base64," in page


def test_v2_job_writes_its_notebooks_and_reports(setup, v2_job):
    sm = setup["sm"]
    job = describe_v2(sm, v2_job["name"])
    assert job["AutoMLProblemTypeConfig"]["TabularJobConfig"]["Mode"] == "ENSEMBLING"  # AUTO, under 100 MB
    check_candidate_notebook(setup, job, "ENSEMBLING")
    check_reports(setup, job, [c for c in setup["train"].columns if c != "y"])
    v1 = sm.describe_auto_ml_job(AutoMLJobName=v2_job["name"])
    assert v1["AutoMLJobArtifacts"] == job["AutoMLJobArtifacts"]
    assert v1["AutoMLJobConfig"]["Mode"] == "ENSEMBLING"
    assert v1["BestCandidate"]["CandidateProperties"]["CandidateArtifactLocations"] == \
        job["BestCandidate"]["CandidateProperties"]["CandidateArtifactLocations"]


def test_auto_mode_resolves_by_the_input_size(tmp_path, monkeypatch):
    """AUTO: ENSEMBLING below 100 MB of input data, HYPERPARAMETER_TUNING from there on (the threshold
    lowered in-process: no 100 MB upload); the resolved mode replaces AUTO in the job's config."""
    from types import SimpleNamespace

    from sagemaker_emulator.runtime import automl_reports

    (tmp_path / "input" / "part").mkdir(parents=True)
    (tmp_path / "input" / "part" / "data.csv").write_bytes(b"x" * 1000)
    recorded = {}

    def fake_run():
        return SimpleNamespace(root=tmp_path, record={"AutoMLProblemTypeConfig": {"TabularJobConfig": {
            "TargetAttributeName": "y", "Mode": "AUTO"}}}, _set=lambda **fields: recorded.update(fields))

    assert automl_reports.AUTO_HPO_MIN_BYTES == 100 * 1024 * 1024
    assert automl_reports.resolve_mode(fake_run(), "AUTO") == "ENSEMBLING"
    assert recorded["AutoMLProblemTypeConfig"]["TabularJobConfig"]["Mode"] == "ENSEMBLING"
    monkeypatch.setattr(automl_reports, "AUTO_HPO_MIN_BYTES", 1000)
    assert automl_reports.resolve_mode(fake_run(), "AUTO") == "HYPERPARAMETER_TUNING"
    assert recorded["AutoMLProblemTypeConfig"]["TabularJobConfig"]["Mode"] == "HYPERPARAMETER_TUNING"
    recorded.clear()
    assert automl_reports.resolve_mode(fake_run(), "ENSEMBLING") == "ENSEMBLING" and not recorded


IN_PROCESS = """
import json, sys
import pandas as pd
from autogluon.tabular import TabularPredictor
model_dir, csv, model = sys.argv[1:]
schema = json.load(open(model_dir + "/autopilot.json"))
predictor = TabularPredictor.load(model_dir + "/autogluon", verbosity=0, require_py_version_match=False)
proba = predictor.predict_proba(pd.read_csv(csv, header=None, names=schema["features"]), model=model)
print(json.dumps({"labels": proba.idxmax(axis=1).tolist(), "p": proba.max(axis=1).tolist()}))
"""


def in_process_predictions(setup, candidate, body, tmp_path):
    """The candidate's model loaded from its ``ModelDataUrl`` by AutoGluon itself, in the image's environment."""
    import json
    import subprocess
    import tarfile

    from sagemaker_emulator.images.environments import AUTOGLUON
    from sagemaker_emulator.runtime.imageenvs import ImageEnvironments

    (container,) = candidate["InferenceContainers"]
    bucket, _, key = container["ModelDataUrl"][5:].partition("/")
    archive = tmp_path / "model.tar.gz"
    archive.write_bytes(setup["s3"].get_object(Bucket=bucket, Key=key)["Body"].read())
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "model", filter="data")
    (tmp_path / "rows.csv").write_text(body)
    python = ImageEnvironments(tmp_path / "cache").ensure(AUTOGLUON, print)
    done = subprocess.run([python, "-c", IN_PROCESS, str(tmp_path / "model"), str(tmp_path / "rows.csv"),
                           container["Environment"]["SAGEMAKER_AUTOML_CANDIDATE_MODEL"]],
                          capture_output=True, text=True, check=True, timeout=300)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_best_candidate_deploys_and_answers(setup, v2_job, tmp_path):
    sm = setup["sm"]
    best = describe_v2(sm, v2_job["name"])["BestCandidate"]
    containers = [{**c, "Environment": {**c["Environment"], "SAGEMAKER_INFERENCE_OUTPUT":
                                        "predicted_label,probability,labels"}} for c in best["InferenceContainers"]]
    name = f"automl-best-{uuid.uuid4().hex[:6]}"
    with endpoint_of(sm, name, containers) as runtime:
        test = setup["test"]
        body = test.drop(columns=["y"]).to_csv(index=False, header=False)
        answer = runtime.invoke_endpoint(EndpointName=name, ContentType="text/csv", Accept="text/csv",
                                         Body=body.encode())
        rows = pd.read_csv(io.BytesIO(answer["Body"].read()), header=None, names=["label", "p", "labels"])
        assert len(rows) == len(test)
        assert set(rows.label) <= {"yes", "no"}
        assert ((rows.p >= 0.5) & (rows.p <= 1)).all()  # the probability of the predicted label
        assert (rows.label == test.y.to_numpy()).mean() >= 0.75
        local = in_process_predictions(setup, best, body, tmp_path)
        assert rows.label.tolist() == local["labels"]
        assert rows.p.to_numpy() == pytest.approx(local["p"], abs=1e-6)
        as_json = runtime.invoke_endpoint(EndpointName=name, ContentType="text/csv", Accept="application/json",
                                          Body=body.splitlines()[0].encode())
        import json

        (prediction,) = json.loads(as_json["Body"].read())["predictions"]
        assert set(prediction) == {"predicted_label", "probability", "labels"}
        assert prediction["labels"] == ["no", "yes"]


def _v2_request(setup, name, **tabular):
    return {"AutoMLJobName": name, "RoleArn": ROLE,
            "AutoMLJobInputDataConfig": [{"DataSource": {"S3DataSource": {
                "S3DataType": "S3Prefix", "S3Uri": f"s3://{setup['bucket']}/automl/train"}}}],
            "OutputDataConfig": {"S3OutputPath": f"s3://{setup['bucket']}/automl/output"},
            "AutoMLProblemTypeConfig": {"TabularJobConfig": {"TargetAttributeName": "y", **tabular}}}


def test_v1_job_stops_with_its_training_job(setup):
    sm, bucket = setup["sm"], setup["bucket"]
    name = f"automl-v1-{uuid.uuid4().hex[:6]}"
    sm.create_auto_ml_job(
        AutoMLJobName=name, RoleArn=ROLE, ProblemType="BinaryClassification",
        AutoMLJobObjective={"MetricName": "F1"},
        InputDataConfig=[{"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix",
                                                          "S3Uri": f"s3://{bucket}/automl/train"}},
                          "TargetAttributeName": "y"}],
        OutputDataConfig={"S3OutputPath": f"s3://{bucket}/automl/output"},
        AutoMLJobConfig={"CompletionCriteria": {"MaxCandidates": 2}, "Mode": "ENSEMBLING"})
    def v1(sm, name):
        return sm.describe_auto_ml_job(AutoMLJobName=name)

    job = wait_v2(sm, name, done=lambda j: j["AutoMLJobSecondaryStatus"] == "TrainingModels"
                  or j["AutoMLJobStatus"] != "InProgress", timeout=120, describe=v1)
    assert job["AutoMLJobSecondaryStatus"] == "TrainingModels", job
    sm.stop_auto_ml_job(AutoMLJobName=name)
    job = wait_v2(sm, name, timeout=120, describe=v1)
    assert (job["AutoMLJobStatus"], job["AutoMLJobSecondaryStatus"]) == ("Stopped", "Stopped")
    assert job["AutoMLJobConfig"]["Mode"] == "ENSEMBLING" and job["ProblemType"] == "BinaryClassification"
    training = sm.list_training_jobs(NameContains=name[:20])["TrainingJobSummaries"]
    assert training and all(t["TrainingJobStatus"] == "Stopped" for t in training)


@pytest.mark.parametrize("change, message", [
    ({"TargetAttributeName": "subscribed"}, "The target attribute 'subscribed' is not in the header"),
    ({"ProblemType": "MulticlassClassification"}, "has 2 distinct values"),
])
def test_bad_data_fails_the_job(setup, change, message):
    sm = setup["sm"]
    name = f"automl-bad-{uuid.uuid4().hex[:6]}"
    sm.create_auto_ml_job_v2(**_v2_request(setup, name, **change))
    job = wait_v2(sm, name, timeout=60)
    assert (job["AutoMLJobStatus"], job["AutoMLJobSecondaryStatus"]) == ("Failed", "Failed")
    assert job["FailureReason"].startswith("ClientError: ") and message in job["FailureReason"]


def test_too_few_rows_fails_the_job(setup):
    sm, s3 = setup["sm"], setup["s3"]
    s3.put_object(Bucket=setup["bucket"], Key="automl/small/bank.csv",
                  Body=setup["train"].head(120).to_csv(index=False).encode())
    request = _v2_request(setup, f"automl-small-{uuid.uuid4().hex[:6]}")
    request["AutoMLJobInputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] = \
        f"s3://{setup['bucket']}/automl/small"
    sm.create_auto_ml_job_v2(**request)
    job = wait_v2(sm, request["AutoMLJobName"], timeout=60)
    assert job["AutoMLJobStatus"] == "Failed" and "at least 500 rows" in job["FailureReason"]


def test_bad_requests_are_refused(setup):
    sm = setup["sm"]
    name = f"automl-refused-{uuid.uuid4().hex[:6]}"
    cases = []
    request = _v2_request(setup, name)
    request["AutoMLJobInputDataConfig"][0]["ContentType"] = "application/json"
    cases.append((request, "Unsupported ContentType"))
    cases.append(({**_v2_request(setup, name), "AutoMLJobObjective": {"MetricName": "RMSE"}} | {
        "AutoMLProblemTypeConfig": {"TabularJobConfig": {"TargetAttributeName": "y",
                                                         "ProblemType": "BinaryClassification"}}},
                  "not valid for the problem type BinaryClassification"))
    for bad, message in cases:
        with pytest.raises(ClientError) as error:
            sm.create_auto_ml_job_v2(**bad)
        assert error.value.response["Error"]["Code"] == "ValidationException"
        assert message in error.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as error:
        sm.describe_auto_ml_job_v2(AutoMLJobName=name)
    assert error.value.response["Error"]["Code"] == "ResourceNotFound"


def test_duplicate_name_is_refused(setup):
    sm = setup["sm"]
    request = _v2_request(setup, f"automl-dup-{uuid.uuid4().hex[:6]}", TargetAttributeName="nope")
    sm.create_auto_ml_job_v2(**request)
    with pytest.raises(ClientError) as error:
        sm.create_auto_ml_job_v2(**request)
    assert error.value.response["Error"]["Code"] == "ResourceInUse"
    wait_v2(sm, request["AutoMLJobName"], timeout=60)


def test_best_candidate_batch_transform(setup, v2_job):
    """The IDR notebook's batch scoring: a model of the best candidate's containers, a transform job over CSV."""
    sm, s3, bucket = setup["sm"], setup["s3"], setup["bucket"]
    best = describe_v2(sm, v2_job["name"])["BestCandidate"]
    name = f"automl-batch-{uuid.uuid4().hex[:6]}"
    sm.create_model(ModelName=name, ExecutionRoleArn=ROLE, Containers=best["InferenceContainers"])
    test = setup["test"]
    s3.put_object(Bucket=bucket, Key="automl/test/test_data.csv",
                  Body=test.drop(columns=["y"]).to_csv(index=False, header=False).encode())
    try:
        sm.create_transform_job(
            TransformJobName=name, ModelName=name, MaxPayloadInMB=1, BatchStrategy="MultiRecord",
            TransformInput={"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix",
                                                            "S3Uri": f"s3://{bucket}/automl/test"}},
                            "ContentType": "text/csv", "CompressionType": "None", "SplitType": "Line"},
            TransformOutput={"S3OutputPath": f"s3://{bucket}/automl/inference-results", "AssembleWith": "Line"},
            TransformResources={"InstanceType": "ml.m5.xlarge", "InstanceCount": 1})
        job = JobKind("TransformJob", timeout=300.0, interval=0.5).wait(sm, name)
        assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
        out = s3.get_object(Bucket=bucket, Key="automl/inference-results/test_data.csv.out")["Body"].read().decode()
        labels = out.split()
        assert len(labels) == len(test) and set(labels) <= {"yes", "no"}
    finally:
        sm.delete_model(ModelName=name)


def test_daemon_restart_fails_a_running_automl_job(tmp_path):
    from sagemaker_emulator.app import Emulator

    emu = Emulator(tmp_path / "state")
    arn = "arn:aws:sagemaker:us-east-1:123456789012:automl-job/orphan"
    emu.state.insert("AutoMLJob", "orphan", arn, time.time(), {
        "AutoMLJobName": "orphan", "AutoMLJobArn": arn, "AutoMLJobStatus": "InProgress",
        "AutoMLJobSecondaryStatus": "TrainingModels"})
    emu.jobs.recover()
    record = emu.state.get("AutoMLJob", "orphan")
    assert (record["AutoMLJobStatus"], record["AutoMLJobSecondaryStatus"]) == ("Failed", "Failed")
    assert "emulator stopped" in record["FailureReason"] and record["EndTime"] > 0
    emu.state.close()


def test_runtime_limits_bound_the_training_job(setup):
    """``MaxAutoMLJobRuntimeInSeconds`` (boto3: the SDK cannot send it) bounds AutoGluon's time limit and the
    training job's ``MaxRuntimeInSeconds``; the job ends by then, ``Completed`` or failed saying which limit."""
    sm = setup["sm"]
    name = f"automl-limit-{uuid.uuid4().hex[:6]}"
    limit = 45
    started = time.monotonic()
    sm.create_auto_ml_job_v2(**_v2_request(setup, name, CompletionCriteria={
        "MaxCandidates": 2, "MaxRuntimePerTrainingJobInSeconds": 600, "MaxAutoMLJobRuntimeInSeconds": limit}))
    job = wait_v2(sm, name, timeout=limit + 60)
    elapsed = time.monotonic() - started
    assert elapsed < limit + 20, f"the job took {elapsed:.0f} s with a {limit} s limit"
    (training,) = sm.list_training_jobs(NameContains=name[:20])["TrainingJobSummaries"]
    training = TRAINING.describe(sm, training["TrainingJobName"])
    assert training["StoppingCondition"]["MaxRuntimeInSeconds"] <= limit
    assert int(training["HyperParameters"]["time_limit"]) < limit
    if job["AutoMLJobStatus"] == "Completed":
        assert job["AutoMLJobSecondaryStatus"] in ("Completed", "MaxAutoMLJobRuntimeReached")
    else:
        assert job["AutoMLJobStatus"] == "Failed" and "MaxAutoMLJobRuntimeInSeconds" in job["FailureReason"]
    resolved = job["ResolvedAttributes"]["CompletionCriteria"]
    assert resolved["MaxAutoMLJobRuntimeInSeconds"] == limit and resolved["MaxCandidates"] == 2


def test_hyperparameter_tuning_mode(setup):
    """HPO mode: a tuning job of the built-in XGBoost algorithm, each trial a candidate of three containers
    (feature transform → XGBoost → inverse label transform) that deploys as a serial inference pipeline."""
    sm = setup["sm"]
    name = f"automl-hpo-{uuid.uuid4().hex[:6]}"
    sm.create_auto_ml_job_v2(**_v2_request(setup, name, Mode="HYPERPARAMETER_TUNING",
                                           ProblemType="BinaryClassification",
                                           CompletionCriteria={"MaxCandidates": 2}),
                             AutoMLJobObjective={"MetricName": "AUC"})
    seen = []

    def done(j):
        seen.append(j["AutoMLJobSecondaryStatus"]) if not seen or seen[-1] != j["AutoMLJobSecondaryStatus"] else None
        return j["AutoMLJobStatus"] in ("Completed", "Failed", "Stopped")

    job = wait_v2(sm, name, done=done, timeout=600)
    assert job["AutoMLJobStatus"] == "Completed", job.get("FailureReason")
    assert job["AutoMLJobSecondaryStatus"] == "MaxCandidatesReached"
    reports = ["GeneratingExplainabilityReport", "GeneratingModelInsightsReport"]
    assert [s for s in seen if s in reports] == reports, seen  # each lasts seconds: the 0.5 s polls see both
    check_candidate_notebook(setup, job, "HYPERPARAMETER_TUNING")
    check_reports(setup, job, [c for c in setup["train"].columns if c != "y"])
    candidates = sm.list_candidates_for_auto_ml_job(AutoMLJobName=name, SortBy="FinalObjectiveMetricValue",
                                                    SortOrder="Descending")["Candidates"]
    assert len(candidates) == 2 and candidates[0]["CandidateName"] == job["BestCandidate"]["CandidateName"]
    tuning = sm.list_hyper_parameter_tuning_jobs(NameContains=name[:23])["HyperParameterTuningJobSummaries"]
    assert tuning and tuning[0]["HyperParameterTuningJobStatus"] == "Completed"
    for candidate in candidates:
        (step,) = candidate["CandidateSteps"]
        assert TRAINING.describe(sm, step["CandidateStepName"])["TrainingJobStatus"] == "Completed"
        metrics = {m["MetricName"]: m["Value"] for m in candidate["CandidateProperties"]["CandidateMetrics"]}
        assert metrics["AUC"] == candidate["FinalAutoMLJobObjectiveMetric"]["Value"] > 0.7
        assert [c["Environment"].get("AUTOML_TRANSFORM_MODE") for c in candidate["InferenceContainers"]] == [
            "feature-transform", None, "inverse-label-transform"]
    containers = [dict(c) for c in job["BestCandidate"]["InferenceContainers"]]
    containers[-1] = {**containers[-1], "Environment": {**containers[-1]["Environment"],
                                                        "SAGEMAKER_INFERENCE_OUTPUT": "predicted_label,probability"}}
    with endpoint_of(sm, name, containers) as runtime:
        test = setup["test"]
        answer = runtime.invoke_endpoint(
            EndpointName=name, ContentType="text/csv", Accept="text/csv",
            Body=test.drop(columns=["y"]).to_csv(index=False, header=False).encode())
        rows = pd.read_csv(io.BytesIO(answer["Body"].read()), header=None, names=["label", "p"])
        assert len(rows) == len(test) and set(rows.label) <= {"yes", "no"}
        assert ((rows.label == "yes") == (rows.p > 0.5)).all()  # probability: of the true class ("yes")
        assert (rows.label == test.y.to_numpy()).mean() >= 0.75


def test_stop_during_model_tuning_stops_the_tuning_job(setup):
    sm = setup["sm"]
    name = f"automl-hpostop-{uuid.uuid4().hex[:6]}"
    sm.create_auto_ml_job_v2(**_v2_request(setup, name, Mode="HYPERPARAMETER_TUNING",
                                           CompletionCriteria={"MaxCandidates": 6}))
    job = wait_v2(sm, name, done=lambda j: j["AutoMLJobSecondaryStatus"] == "ModelTuning"
                  or j["AutoMLJobStatus"] != "InProgress", timeout=120)
    assert job["AutoMLJobSecondaryStatus"] == "ModelTuning", job
    sm.stop_auto_ml_job(AutoMLJobName=name)
    job = wait_v2(sm, name, timeout=120)
    assert (job["AutoMLJobStatus"], job["AutoMLJobSecondaryStatus"]) == ("Stopped", "Stopped")
    (tuning,) = sm.list_hyper_parameter_tuning_jobs(NameContains=name[:23])["HyperParameterTuningJobSummaries"]
    assert tuning["HyperParameterTuningJobStatus"] == "Stopped"
