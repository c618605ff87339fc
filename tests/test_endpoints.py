"""Real-time endpoints with plain boto3: models, configs, endpoints, InvokeEndpoint, A/B weights, errors."""

from __future__ import annotations

import os
import signal
import time
import uuid

import numpy as np
import pytest
import xgboost
from artifacts import BROKEN_MODEL, xgboost_tarball
from botocore.exceptions import ClientError, WaiterError
from jobs_common import ROLE, WAITER, XGBOOST_IMAGE

pytestmark = pytest.mark.slow

BUCKET = "endpoint-tests"


def _model(seed: int) -> tuple[xgboost.Booster, bytes, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(300, 4))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
    booster = xgboost.train({"objective": "binary:logistic", "max_depth": 3, "seed": seed},
                            xgboost.DMatrix(x, label=y), num_boost_round=10)
    return booster, xgboost_tarball(booster), x


@pytest.fixture(scope="module")
def deployed(client):
    s3, sm = client("s3"), client("sagemaker")
    try:
        s3.create_bucket(Bucket=BUCKET)
    except ClientError:
        pass
    suffix = uuid.uuid4().hex[:8]
    boosters, x = {}, None
    for variant, seed in (("A", 1), ("B", 2)):
        booster, archive, x = _model(seed)
        key = f"models/{suffix}/{variant}/model.tar.gz"
        s3.put_object(Bucket=BUCKET, Key=key, Body=archive)
        sm.create_model(ModelName=f"m{variant}-{suffix}", ExecutionRoleArn=ROLE,
                        PrimaryContainer={"Image": XGBOOST_IMAGE, "ModelDataUrl": f"s3://{BUCKET}/{key}"})
        boosters[variant] = booster
    config = f"cfg-{suffix}"
    sm.create_endpoint_config(EndpointConfigName=config, ProductionVariants=[
        {"VariantName": v, "ModelName": f"m{v}-{suffix}", "InitialInstanceCount": 1,
         "InstanceType": "ml.m5.large", "InitialVariantWeight": 1.0} for v in ("A", "B")])
    name = f"ep-{suffix}"
    started = time.time()
    sm.create_endpoint(EndpointName=name, EndpointConfigName=config)
    assert sm.describe_endpoint(EndpointName=name)["EndpointStatus"] == "Creating"
    sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=WAITER)
    print(f"CreateEndpoint → InService in {time.time() - started:.2f} s")
    yield {"name": name, "suffix": suffix, "boosters": boosters, "x": x, "config": config}
    sm.delete_endpoint(EndpointName=name)


def _csv(rows: np.ndarray) -> str:
    return "\n".join(",".join(repr(float(v)) for v in row) for row in rows)


def test_describe_shows_variants_in_service(client, deployed):
    desc = client("sagemaker").describe_endpoint(EndpointName=deployed["name"])
    assert desc["EndpointStatus"] == "InService"
    variants = {v["VariantName"]: v for v in desc["ProductionVariants"]}
    assert set(variants) == {"A", "B"}
    assert variants["A"]["CurrentWeight"] == 1.0 and variants["A"]["CurrentInstanceCount"] == 1
    assert variants["A"]["DeployedImages"][0]["SpecifiedImage"] == XGBOOST_IMAGE
    names = [e["EndpointName"] for e in client("sagemaker").list_endpoints()["Endpoints"]]
    assert deployed["name"] in names


def test_predictions_equal_in_process_predictions(client, deployed):
    runtime = client("sagemaker-runtime")
    rows = deployed["x"][:5]
    for variant in ("A", "B"):
        resp = runtime.invoke_endpoint(EndpointName=deployed["name"], ContentType="text/csv", Body=_csv(rows),
                                       TargetVariant=variant)
        assert resp["InvokedProductionVariant"] == variant
        served = np.array([float(v) for v in resp["Body"].read().decode().split()])
        expected = deployed["boosters"][variant].predict(xgboost.DMatrix(rows))
        np.testing.assert_allclose(served, expected, rtol=1e-6)


def test_weights_are_respected_and_can_shift(client, deployed):
    runtime, sm = client("sagemaker-runtime"), client("sagemaker")
    body = _csv(deployed["x"][:1])

    def share_of_a(calls: int) -> float:
        hits = [runtime.invoke_endpoint(EndpointName=deployed["name"], ContentType="text/csv",
                                        Body=body)["InvokedProductionVariant"] for _ in range(calls)]
        return hits.count("A") / calls

    assert abs(share_of_a(1000) - 0.5) < 0.06, "50/50 within statistical tolerance over 1,000 calls"
    sm.update_endpoint_weights_and_capacities(EndpointName=deployed["name"], DesiredWeightsAndCapacities=[
        {"VariantName": "A", "DesiredWeight": 9.0}, {"VariantName": "B", "DesiredWeight": 1.0}])
    assert abs(share_of_a(500) - 0.9) < 0.06
    weights = {v["VariantName"]: v["CurrentWeight"]
               for v in sm.describe_endpoint(EndpointName=deployed["name"])["ProductionVariants"]}
    assert weights == {"A": 9.0, "B": 1.0}
    sm.update_endpoint_weights_and_capacities(EndpointName=deployed["name"], DesiredWeightsAndCapacities=[
        {"VariantName": "A", "DesiredWeight": 1.0}, {"VariantName": "B", "DesiredWeight": 1.0}])


@pytest.mark.parametrize("body, content_type, status", [
    ("1,2,abc\n", "text/csv", 415),
    ("1,2,3,4,5,6\n", "text/csv", 400),
    ("1,2,3,4", "application/x-unknown", 415),
])
def test_bad_payloads_are_model_errors_and_the_endpoint_keeps_serving(client, deployed, body, content_type, status):
    runtime = client("sagemaker-runtime")
    with pytest.raises(ClientError) as exc:
        runtime.invoke_endpoint(EndpointName=deployed["name"], ContentType=content_type, Body=body,
                                TargetVariant="A")
    err = exc.value.response
    assert err["Error"]["Code"] == "ModelError"
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert err["OriginalStatusCode"] == status
    ok = runtime.invoke_endpoint(EndpointName=deployed["name"], ContentType="text/csv",
                                 Body=_csv(deployed["x"][:1]), TargetVariant="A")
    assert ok["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_oversized_body_and_unknown_endpoint_are_validation_errors(client, deployed):
    runtime = client("sagemaker-runtime")
    with pytest.raises(ClientError) as exc:
        runtime.invoke_endpoint(EndpointName=deployed["name"], ContentType="text/csv", Body=b"1" * (7 * 1024 * 1024))
    assert exc.value.response["Error"]["Code"] == "ValidationError"
    with pytest.raises(ClientError) as exc:
        runtime.invoke_endpoint(EndpointName="no-such-endpoint", ContentType="text/csv", Body="1,2,3,4")
    assert exc.value.response["Error"]["Code"] == "ValidationError"
    assert "no-such-endpoint" in exc.value.response["Error"]["Message"]


def test_a_killed_model_server_comes_back(client, deployed, emulator):
    live = emulator.endpoints.get(deployed["name"])
    instance = live.variants["A"].instances[0]
    os.kill(instance.container.process.pid, signal.SIGKILL)
    runtime = client("sagemaker-runtime")
    deadline = time.time() + 30
    while True:
        try:
            resp = runtime.invoke_endpoint(EndpointName=deployed["name"], ContentType="text/csv",
                                           Body=_csv(deployed["x"][:1]), TargetVariant="A")
            if resp["ResponseMetadata"]["HTTPStatusCode"] == 200 and instance.restarts >= 1:
                break
        except ClientError:
            pass
        assert time.time() < deadline, "the model server was not restarted"
        time.sleep(0.2)


def test_model_and_config_errors(client, deployed):
    sm = client("sagemaker")
    with pytest.raises(ClientError) as exc:
        sm.create_model(ModelName=f"bad-{deployed['suffix']}", ExecutionRoleArn=ROLE,
                        PrimaryContainer={"Image": XGBOOST_IMAGE, "ModelDataUrl": f"s3://{BUCKET}/missing/model.tar.gz"})
    assert exc.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as exc:
        sm.create_endpoint_config(EndpointConfigName=f"bad-{deployed['suffix']}", ProductionVariants=[
            {"VariantName": "A", "ModelName": "no-such-model", "InitialInstanceCount": 1,
             "InstanceType": "ml.m5.large"}])
    assert "Could not find model" in exc.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as exc:
        sm.describe_endpoint(EndpointName="no-such-endpoint")
    assert exc.value.response["Error"]["Code"] == "ValidationException"


def test_failed_model_server_fails_the_endpoint(client):
    s3, sm = client("s3"), client("sagemaker")
    suffix = uuid.uuid4().hex[:8]
    s3.put_object(Bucket=BUCKET, Key=f"broken/{suffix}/model.tar.gz", Body=BROKEN_MODEL)
    sm.create_model(ModelName=f"broken-{suffix}", ExecutionRoleArn=ROLE, PrimaryContainer={
        "Image": XGBOOST_IMAGE, "ModelDataUrl": f"s3://{BUCKET}/broken/{suffix}/model.tar.gz"})
    sm.create_endpoint_config(EndpointConfigName=f"broken-{suffix}", ProductionVariants=[
        {"VariantName": "AllTraffic", "ModelName": f"broken-{suffix}", "InitialInstanceCount": 1,
         "InstanceType": "ml.m5.large"}])
    sm.create_endpoint(EndpointName=f"broken-{suffix}", EndpointConfigName=f"broken-{suffix}")
    with pytest.raises(WaiterError):
        sm.get_waiter("endpoint_in_service").wait(EndpointName=f"broken-{suffix}", WaiterConfig=WAITER)
    desc = sm.describe_endpoint(EndpointName=f"broken-{suffix}")
    assert desc["EndpointStatus"] == "Failed"
    assert desc["FailureReason"]
    sm.delete_endpoint(EndpointName=f"broken-{suffix}")
    sm.get_waiter("endpoint_deleted").wait(EndpointName=f"broken-{suffix}", WaiterConfig=WAITER)


def test_instance_count_changes_without_redeploying(client, deployed, emulator):
    sm, runtime = client("sagemaker"), client("sagemaker-runtime")
    name = deployed["name"]
    sm.update_endpoint_weights_and_capacities(EndpointName=name, DesiredWeightsAndCapacities=[
        {"VariantName": "A", "DesiredInstanceCount": 2}])
    assert sm.describe_endpoint(EndpointName=name)["EndpointStatus"] == "Updating"
    sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=WAITER)
    variant = {v["VariantName"]: v for v in sm.describe_endpoint(EndpointName=name)["ProductionVariants"]}["A"]
    assert (variant["CurrentInstanceCount"], variant["DesiredInstanceCount"]) == (2, 2)
    instances = emulator.endpoints.get(name).variants["A"].instances
    assert len({i.container.process.pid for i in instances}) == 2, "two model-server processes"
    for _ in range(10):  # round-robin over both
        runtime.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=_csv(deployed["x"][:1]),
                                TargetVariant="A")
    sm.update_endpoint_weights_and_capacities(EndpointName=name, DesiredWeightsAndCapacities=[
        {"VariantName": "A", "DesiredInstanceCount": 1}])
    sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=WAITER)
    assert instances[1].container.process.poll() is not None, "the extra instance was stopped"
    with pytest.raises(ClientError) as exc:
        sm.update_endpoint_weights_and_capacities(EndpointName=name, DesiredWeightsAndCapacities=[
            {"VariantName": "C", "DesiredWeight": 1.0}])
    assert "[C]" in exc.value.response["Error"]["Message"]


def test_failed_update_rolls_back_and_keeps_serving(client, deployed):
    s3, sm, runtime = client("s3"), client("sagemaker"), client("sagemaker-runtime")
    suffix, name = uuid.uuid4().hex[:8], deployed["name"]
    s3.put_object(Bucket=BUCKET, Key=f"broken/{suffix}/model.tar.gz", Body=BROKEN_MODEL)
    sm.create_model(ModelName=f"rollback-{suffix}", ExecutionRoleArn=ROLE, PrimaryContainer={
        "Image": XGBOOST_IMAGE, "ModelDataUrl": f"s3://{BUCKET}/broken/{suffix}/model.tar.gz"})
    sm.create_endpoint_config(EndpointConfigName=f"rollback-{suffix}", ProductionVariants=[
        {"VariantName": "AllTraffic", "ModelName": f"rollback-{suffix}", "InitialInstanceCount": 1,
         "InstanceType": "ml.m5.large"}])
    sm.update_endpoint(EndpointName=name, EndpointConfigName=f"rollback-{suffix}")
    assert sm.describe_endpoint(EndpointName=name)["EndpointStatus"] == "Updating"
    sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=WAITER)
    desc = sm.describe_endpoint(EndpointName=name)
    assert desc["EndpointConfigName"] == deployed["config"], "the previous configuration still serves"
    assert "did not pass the ping health check" in desc["FailureReason"]
    resp = runtime.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=_csv(deployed["x"][:1]),
                                   TargetVariant="A")
    assert resp["InvokedProductionVariant"] == "A"


def test_models_and_configs_describe_list_delete(client, deployed):
    sm = client("sagemaker")
    suffix = uuid.uuid4().hex[:8]
    url = f"s3://{BUCKET}/models/{deployed['suffix']}/A/model.tar.gz"
    for i in range(3):
        sm.create_model(ModelName=f"listing-{suffix}-{i}", ExecutionRoleArn=ROLE,
                        PrimaryContainer={"Image": XGBOOST_IMAGE, "ModelDataUrl": url, "Environment": {"K": str(i)}},
                        Tags=[{"Key": "lab", "Value": "04"}])
        sm.create_endpoint_config(EndpointConfigName=f"listing-{suffix}-{i}", ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": f"listing-{suffix}-{i}", "InitialInstanceCount": 1,
             "InstanceType": "ml.m5.large"}])
    model = sm.describe_model(ModelName=f"listing-{suffix}-1")
    assert model["ModelArn"].endswith(f":model/listing-{suffix}-1")
    assert model["PrimaryContainer"] == {"Image": XGBOOST_IMAGE, "ModelDataUrl": url, "Environment": {"K": "1"}}
    assert model["ExecutionRoleArn"] == ROLE and model["CreationTime"]
    assert sm.list_tags(ResourceArn=model["ModelArn"])["Tags"] == [{"Key": "lab", "Value": "04"}]
    config = sm.describe_endpoint_config(EndpointConfigName=f"listing-{suffix}-2")
    assert config["ProductionVariants"][0]["InitialVariantWeight"] == 1.0
    assert config["EndpointConfigArn"].endswith(f":endpoint-config/listing-{suffix}-2")

    first = sm.list_models(NameContains=f"listing-{suffix}", SortBy="Name", SortOrder="Ascending", MaxResults=2)
    assert [m["ModelName"] for m in first["Models"]] == [f"listing-{suffix}-0", f"listing-{suffix}-1"]
    rest = sm.list_models(NameContains=f"listing-{suffix}", SortBy="Name", SortOrder="Ascending",
                          NextToken=first["NextToken"])
    assert [m["ModelName"] for m in rest["Models"]] == [f"listing-{suffix}-2"] and "NextToken" not in rest
    configs = sm.list_endpoint_configs(NameContains=f"listing-{suffix}")["EndpointConfigs"]
    assert len(configs) == 3
    assert {e["EndpointName"] for e in sm.list_endpoints(StatusEquals="InService")["Endpoints"]} >= {deployed["name"]}
    assert sm.list_endpoints(NameContains=f"listing-{suffix}")["Endpoints"] == []

    for i in range(3):
        sm.delete_endpoint_config(EndpointConfigName=f"listing-{suffix}-{i}")
        sm.delete_model(ModelName=f"listing-{suffix}-{i}")
    for call, kwargs, what in ((sm.describe_model, {"ModelName": f"listing-{suffix}-0"}, "model"),
                               (sm.delete_model, {"ModelName": f"listing-{suffix}-0"}, "model"),
                               (sm.describe_endpoint_config, {"EndpointConfigName": f"listing-{suffix}-0"},
                                "endpoint configuration")):
        with pytest.raises(ClientError) as exc:
            call(**kwargs)
        assert exc.value.response["Error"]["Code"] == "ValidationException"
        assert exc.value.response["Error"]["Message"].startswith(f"Could not find {what}")
    assert sm.list_models(NameContains=f"listing-{suffix}")["Models"] == []
