"""The model registry with boto3 and the SDK V3: groups, versions, approval, metadata, listing, deployment."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
import xgboost
from artifacts import ensure_bucket, xgboost_tarball
from botocore.exceptions import ClientError
from jobs_common import ROLE, WAITER, XGBOOST_IMAGE

BUCKET = "registry-tests"


def _error(call, *args, **kwargs) -> tuple[str, str]:
    with pytest.raises(ClientError) as info:
        call(*args, **kwargs)
    return info.value.response["Error"]["Code"], info.value.response["Error"]["Message"]


@pytest.fixture(scope="module")
def model_url(client) -> str:
    s3 = client("s3")
    ensure_bucket(s3, BUCKET)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    booster = xgboost.train({"objective": "binary:logistic", "max_depth": 2}, xgboost.DMatrix(x, label=x[:, 0] > 0),
                            num_boost_round=5)
    s3.put_object(Bucket=BUCKET, Key="model/model.tar.gz", Body=xgboost_tarball(booster))
    return f"s3://{BUCKET}/model/model.tar.gz"


def _spec(url: str) -> dict:
    return {"Containers": [{"Image": XGBOOST_IMAGE, "ModelDataUrl": url, "Environment": {"A": "1"}}],
            "SupportedContentTypes": ["text/csv"], "SupportedResponseMIMETypes": ["text/csv"]}


def test_versions_number_per_group_and_describe_as_sagemaker(sm, model_url):
    group = f"Grp-{uuid.uuid4().hex[:6]}"
    arn = sm.create_model_package_group(ModelPackageGroupName=group,
                                        ModelPackageGroupDescription="d")["ModelPackageGroupArn"]
    assert arn.endswith(f":model-package-group/{group.lower()}")
    described = sm.describe_model_package_group(ModelPackageGroupName=group)
    assert described["ModelPackageGroupStatus"] == "Completed" and "IamIdentity" in described["CreatedBy"]
    assert sm.describe_model_package_group(ModelPackageGroupName=arn)["ModelPackageGroupName"] == group
    code, message = _error(sm.create_model_package_group, ModelPackageGroupName=group)
    assert code == "ValidationException" and "already exists" in message
    arns = [sm.create_model_package(ModelPackageGroupName=group, InferenceSpecification=_spec(model_url),
                                    ModelMetrics={"ModelQuality": {"Statistics": {
                                        "ContentType": "application/json", "S3Uri": f"s3://{BUCKET}/m.json"}},
                                        "Bias": {}, "Explainability": {}},
                                    CustomerMetadataProperties={"auc": str(0.9 + i / 100)})["ModelPackageArn"]
            for i in range(3)]
    assert [a.rsplit("/", 1)[1] for a in arns] == ["1", "2", "3"]
    package = sm.describe_model_package(ModelPackageName=arns[1])
    assert package["ModelPackageVersion"] == 2 and package["ModelPackageGroupName"] == group
    assert package["ModelApprovalStatus"] == "PendingManualApproval"
    assert package["ModelPackageStatus"] == "Completed"
    assert package["ModelPackageStatusDetails"]["ValidationStatuses"] == []
    assert package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"] == f"s3://{BUCKET}/m.json"
    assert package["CustomerMetadataProperties"] == {"auc": "0.91"}
    # mixed-case ARNs (a client that kept the group's spelling) find the same version
    assert sm.describe_model_package(ModelPackageName=arns[1].replace(group.lower(), group))["ModelPackageVersion"] == 2
    # a deleted version's number is never given again
    sm.delete_model_package(ModelPackageName=arns[2])
    fourth = sm.create_model_package(ModelPackageGroupName=arn, InferenceSpecification=_spec(model_url))
    assert fourth["ModelPackageArn"].endswith("/4")
    code, message = _error(sm.delete_model_package_group, ModelPackageGroupName=group)
    assert code == "ValidationException" and "DeleteModelPackage" in message
    for item in (arns[0], arns[1], fourth["ModelPackageArn"]):
        sm.delete_model_package(ModelPackageName=item)
    sm.delete_model_package_group(ModelPackageGroupName=group)
    assert _error(sm.describe_model_package_group, ModelPackageGroupName=group)[0] == "ValidationException"


def test_approval_changes_metadata_and_listing(sm, model_url, emulator):
    group = f"list-{uuid.uuid4().hex[:6]}"
    sm.create_model_package_group(ModelPackageGroupName=group)
    arns = [sm.create_model_package(ModelPackageGroupName=group, InferenceSpecification=_spec(model_url),
                                    ModelApprovalStatus=status)["ModelPackageArn"]
            for status in ("PendingManualApproval", "Approved", "Rejected")]
    sm.update_model_package(ModelPackageArn=arns[0], ModelApprovalStatus="Approved", ApprovalDescription="AUC ok",
                            CustomerMetadataProperties={"k": "v", "gone": "x"})
    sm.update_model_package(ModelPackageArn=arns[0], CustomerMetadataPropertiesToRemove=["gone"])
    sm.update_model_package(ModelPackageArn=arns[0], ModelApprovalStatus="Rejected")
    described = sm.describe_model_package(ModelPackageName=arns[0])
    assert described["ModelApprovalStatus"] == "Rejected" and described["ApprovalDescription"] == "AUC ok"
    assert described["CustomerMetadataProperties"] == {"k": "v"}
    assert described["LastModifiedTime"] > described["CreationTime"]
    history = emulator.state.get("ModelPackage", f"{group}/1")["_approval_history"]
    assert [h["ModelApprovalStatus"] for h in history] == ["PendingManualApproval", "Approved", "Rejected"]

    listed = sm.list_model_packages(ModelPackageGroupName=group, SortBy="CreationTime", SortOrder="Descending",
                                    MaxResults=1)
    assert [s["ModelPackageArn"] for s in listed["ModelPackageSummaryList"]] == [arns[2]] and listed["NextToken"]
    summary = listed["ModelPackageSummaryList"][0]
    assert summary["ModelPackageVersion"] == 3 and "ModelPackageName" not in summary
    ascending = sm.list_model_packages(ModelPackageGroupName=group, SortOrder="Ascending")["ModelPackageSummaryList"]
    assert [s["ModelPackageVersion"] for s in ascending] == [1, 2, 3]
    approved = sm.list_model_packages(ModelPackageGroupName=group, ModelApprovalStatus="Approved")
    assert [s["ModelPackageArn"] for s in approved["ModelPackageSummaryList"]] == [arns[1]]
    # without a group, SageMaker lists unversioned packages unless ModelPackageType says otherwise
    assert all("ModelPackageVersion" not in s for s in sm.list_model_packages()["ModelPackageSummaryList"])
    both = sm.list_model_packages(ModelPackageType="Versioned", NameContains=group, MaxResults=100)
    assert {s["ModelPackageArn"] for s in both["ModelPackageSummaryList"]} == set(arns)
    groups = sm.list_model_package_groups(NameContains=group[5:], SortBy="Name")["ModelPackageGroupSummaryList"]
    assert [g["ModelPackageGroupName"] for g in groups] == [group]


def test_bad_requests_change_nothing(sm, model_url):
    group = f"bad-{uuid.uuid4().hex[:6]}"
    code, message = _error(sm.create_model_package, ModelPackageGroupName=group,
                           InferenceSpecification=_spec(model_url))
    assert code == "ValidationException" and group in message
    sm.create_model_package_group(ModelPackageGroupName=group)
    code, message = _error(sm.create_model_package, ModelPackageGroupName=group, ModelPackageName="x",
                           InferenceSpecification=_spec(model_url))
    assert "Both ModelPackageName and ModelPackageGroupName" in message
    assert _error(sm.create_model_package, ModelPackageGroupName=group)[0] == "ValidationException"
    assert _error(sm.create_model_package, ModelPackageGroupName=group, ModelApprovalStatus="Maybe",
                  InferenceSpecification=_spec(model_url))[0] == "ValidationException"
    assert sm.list_model_packages(ModelPackageGroupName=group)["ModelPackageSummaryList"] == []
    arn = sm.create_model_package(ModelPackageGroupName=group, InferenceSpecification=_spec(model_url),
                                  ClientToken="tok-1")["ModelPackageArn"]
    again = sm.create_model_package(ModelPackageGroupName=group, InferenceSpecification=_spec(model_url),
                                    ClientToken="tok-1")["ModelPackageArn"]
    assert again == arn and arn.endswith("/1"), "the same ClientToken is the same request"
    missing = arn[:-1] + "9"
    assert _error(sm.describe_model_package, ModelPackageName=missing)[0] == "ValidationException"
    assert _error(sm.update_model_package, ModelPackageArn=missing, ModelApprovalStatus="Approved")[0] \
        == "ValidationException"


def test_only_an_approved_version_deploys_and_serves_the_registered_model(sm, client, model_url):
    group = f"deploy-{uuid.uuid4().hex[:6]}"
    sm.create_model_package_group(ModelPackageGroupName=group)
    arn = sm.create_model_package(ModelPackageGroupName=group, InferenceSpecification=_spec(model_url))[
        "ModelPackageArn"]
    code, message = _error(sm.create_model, ModelName=f"{group}-m", ExecutionRoleArn=ROLE,
                           Containers=[{"ModelPackageName": arn}])
    assert code == "ValidationException" and "PendingManualApproval" in message
    assert _error(sm.describe_model, ModelName=f"{group}-m")[0] == "ValidationException"
    sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved")
    sm.create_model(ModelName=f"{group}-m", ExecutionRoleArn=ROLE,
                    Containers=[{"ModelPackageName": arn, "Environment": {"B": "2"}}])
    container = sm.describe_model(ModelName=f"{group}-m")["Containers"][0]
    assert container["ModelPackageName"] == arn and container["Image"] == XGBOOST_IMAGE
    assert container["ModelDataUrl"] == model_url and container["Environment"] == {"A": "1", "B": "2"}
    sm.create_endpoint_config(EndpointConfigName=f"{group}-c", ProductionVariants=[
        {"VariantName": "v", "ModelName": f"{group}-m", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
    sm.create_endpoint(EndpointName=f"{group}-e", EndpointConfigName=f"{group}-c")
    try:
        sm.get_waiter("endpoint_in_service").wait(EndpointName=f"{group}-e", WaiterConfig=WAITER)
        body = client("sagemaker-runtime").invoke_endpoint(EndpointName=f"{group}-e", ContentType="text/csv",
                                                           Body="1.0,0.0,0.0\n-1.0,0.0,0.0")["Body"].read()
        scores = [float(v) for v in body.decode().replace("\n", ",").split(",") if v]
        assert len(scores) == 2 and scores[0] > 0.5 > scores[1]
    finally:
        sm.delete_endpoint(EndpointName=f"{group}-e")


@pytest.mark.slow
def test_sdk_v3_registers_versions_and_resources_read_them(emulator_env, model_url):
    from sagemaker.core.helper.session_helper import Session
    from sagemaker.core.model_registry import create_model_package_from_containers
    from sagemaker.core.resources import ModelPackage, ModelPackageGroup

    session = Session()
    group = f"sdk-{uuid.uuid4().hex[:6]}"
    for _ in range(2):  # the first call creates the group, the second finds it
        create_model_package_from_containers(
            session, containers=[{"Image": XGBOOST_IMAGE, "ModelDataUrl": model_url}], content_types=["text/csv"],
            response_types=["text/csv"], inference_instances=["ml.m5.xlarge"],
            transform_instances=["ml.m5.xlarge"], model_package_group_name=group,
            model_metrics={"ModelQuality": {"Statistics": {"ContentType": "application/json",
                                                            "S3Uri": f"s3://{BUCKET}/eval.json"}},
                           "Bias": {}, "Explainability": {}},
            customer_metadata_properties={"source": "test"})
    assert ModelPackageGroup.get(group).model_package_group_status == "Completed"
    version = ModelPackage.get(f"arn:aws:sagemaker:us-east-1:123456789012:model-package/{group}/2")
    assert version.model_package_version == 2 and version.model_approval_status == "PendingManualApproval"
    # (``ModelPackage.update`` re-reads the version by its ModelPackageName, the group's name: not a version)
    session.sagemaker_client.update_model_package(ModelPackageArn=version.model_package_arn,
                                                  ModelApprovalStatus="Approved")
    assert ModelPackage.get(version.model_package_arn).model_approval_status == "Approved"
