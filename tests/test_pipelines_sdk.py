"""SageMaker Pipelines through the genuine SDK V3: the Immersion Day pipeline built with ``ProcessingStep``,
``TrainingStep``, ``ConditionStep`` (``JsonGet`` over a ``PropertyFile``), ``ModelStep`` (register and
create), ``FailStep``; ``Pipeline.upsert`` twice (create, then update), ``start`` and ``wait``."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from botocore.exceptions import WaiterError
from jobs_common import SKLEARN_IMAGE, XGBOOST_IMAGE
from test_pipelines import EVALUATE, PREPARE

pytestmark = pytest.mark.slow


def build_pipeline(tmp_path: Path, name: str, group: str):
    """The pipeline, its steps' arguments captured under a ``PipelineSession`` (no job starts here)."""
    from sagemaker.core.helper.session_helper import Session, get_execution_role
    from sagemaker.core.processing import ScriptProcessor
    from sagemaker.core.shapes import ProcessingInput, ProcessingOutput, ProcessingS3Input, ProcessingS3Output
    from sagemaker.core.workflow.conditions import ConditionGreaterThanOrEqualTo
    from sagemaker.core.workflow.functions import Join, JsonGet
    from sagemaker.core.workflow.parameters import ParameterFloat, ParameterInteger
    from sagemaker.core.workflow.pipeline_context import PipelineSession
    from sagemaker.core.workflow.properties import PropertyFile
    from sagemaker.mlops.workflow import ConditionStep, FailStep, ModelStep, Pipeline, ProcessingStep, TrainingStep
    from sagemaker.serve.model_builder import ModelBuilder
    from sagemaker.train import ModelTrainer
    from sagemaker.train.configs import Compute, InputData, OutputDataConfig

    bucket, role = Session().default_bucket(), get_execution_role()
    base = f"s3://{bucket}/{name}"
    boto3.client("s3").put_object(Bucket=bucket, Key=f"{name}/flags/ok", Body=b"ok")
    (tmp_path / "prepare.py").write_text(PREPARE)
    (tmp_path / "evaluate.py").write_text(EVALUATE)
    session = PipelineSession()
    auc = ParameterFloat(name="ReportedAuc", default_value=0.9)
    threshold = ParameterFloat(name="AucThreshold", default_value=0.7)
    rounds = ParameterInteger(name="NumRound", default_value=5)
    processor = ScriptProcessor(role=role, image_uri=SKLEARN_IMAGE, command=["python3"], instance_type="ml.m5.large",
                                instance_count=1, sagemaker_session=session)

    def output(name_: str, local: str) -> ProcessingOutput:
        return ProcessingOutput(output_name=name_, s3_output=ProcessingS3Output(
            s3_uri=f"{base}/{name_}", local_path=local, s3_upload_mode="EndOfJob"))

    def input_(name_: str, uri, local: str) -> ProcessingInput:
        return ProcessingInput(input_name=name_, s3_input=ProcessingS3Input(
            s3_uri=uri, local_path=local, s3_data_type="S3Prefix", s3_input_mode="File"))

    prepare = ProcessingStep(name="Prepare", step_args=processor.run(
        code=str(tmp_path / "prepare.py"), outputs=[output("train", "/opt/ml/processing/train")]))
    trainer = ModelTrainer(
        training_image=XGBOOST_IMAGE, role=role, compute=Compute(instance_type="ml.m5.large", instance_count=1),
        output_data_config=OutputDataConfig(s3_output_path=f"{base}/model"), sagemaker_session=session,
        hyperparameters={"objective": "binary:logistic", "num_round": rounds, "max_depth": 3}, base_job_name=name)
    train = TrainingStep(name="Train", step_args=trainer.train(input_data_config=[InputData(
        channel_name="train", data_source=prepare.properties.ProcessingOutputConfig.Outputs["train"].S3Output.S3Uri,
        content_type="text/csv")]))
    model_url = train.properties.ModelArtifacts.S3ModelArtifacts
    report = PropertyFile(name="EvaluationReport", output_name="evaluation", path="evaluation.json")
    evaluate = ProcessingStep(name="Evaluate", property_files=[report], step_args=processor.run(
        code=str(tmp_path / "evaluate.py"), arguments=["--auc", auc.to_string()],
        inputs=[input_("model", model_url, "/opt/ml/processing/model"),
                input_("flags", f"{base}/flags", "/opt/ml/processing/flags")],
        outputs=[output("evaluation", "/opt/ml/processing/evaluation")]))
    register = ModelStep(name="Register", step_args=ModelBuilder(
        image_uri=XGBOOST_IMAGE, s3_model_data_url=model_url, role_arn=role, sagemaker_session=session).register(
        model_package_group_name=group, content_types=["text/csv"], response_types=["text/csv"],
        inference_instances=["ml.m5.large"], transform_instances=["ml.m5.large"],
        approval_status="PendingManualApproval"))
    create = ModelStep(name="CreateModel", step_args=ModelBuilder(
        image_uri=XGBOOST_IMAGE, s3_model_data_url=model_url, role_arn=role, sagemaker_session=session).build())
    check = ConditionStep(
        name="CheckAuc", if_steps=[register, create],
        else_steps=[FailStep(name="TooWeak", error_message=Join(on=" ", values=["AUC below", threshold]))],
        conditions=[ConditionGreaterThanOrEqualTo(
            left=JsonGet(step_name=evaluate.name, property_file=report, json_path="metrics.auc.value"),
            right=threshold)])
    return Pipeline(name=name, parameters=[auc, threshold, rounds], steps=[prepare, train, evaluate, check],
                    sagemaker_session=session), role


def test_sdk_pipeline_upsert_start_wait_branches(emulator_env, tmp_path):
    pipeline, role = build_pipeline(tmp_path, "SdkImmersionDay", "sdk-pipeline-models")
    assert "PipelineArn" in pipeline.upsert(role_arn=role, description="Immersion Day")
    updated = pipeline.upsert(role_arn=role, description="Immersion Day, again")
    assert updated["PipelineVersionId"] == 2, "the second upsert is an UpdatePipeline"
    assert pipeline.describe()["PipelineDescription"] == "Immersion Day, again"

    execution = pipeline.start(parameters={"ReportedAuc": 0.95})
    execution.wait(delay=1, max_attempts=180)
    steps = {s["StepName"]: s for s in execution.list_steps()}
    order = sorted(steps, key=lambda n: steps[n]["StartTime"])
    assert order[:4] == ["Prepare", "Train", "Evaluate", "CheckAuc"] and set(order[4:]) == {"Register", "CreateModel"}
    assert steps["CheckAuc"]["Metadata"]["Condition"]["Outcome"] == "True"
    package = steps["Register"]["Metadata"]["RegisterModel"]["Arn"]
    assert package.endswith(":model-package/sdk-pipeline-models/1"), "the group was created by the step"
    sm = boto3.client("sagemaker")
    described = sm.describe_model_package(ModelPackageName=package)
    assert described["ModelApprovalStatus"] == "PendingManualApproval"
    job = steps["Train"]["Metadata"]["TrainingJob"]["Arn"].rsplit("/", 1)[1]
    assert described["InferenceSpecification"]["Containers"][0]["ModelDataUrl"] == \
        sm.describe_training_job(TrainingJobName=job)["ModelArtifacts"]["S3ModelArtifacts"]
    assert {p["Name"]: p["Value"] for p in execution.list_parameters()["PipelineParameters"]}["ReportedAuc"] == "0.95"

    weak = pipeline.start(parameters={"ReportedAuc": 0.5})
    with pytest.raises(WaiterError, match="terminal failure state"):
        weak.wait(delay=1, max_attempts=180)
    failed = {s["StepName"]: s for s in weak.list_steps()}
    assert failed["TooWeak"]["Metadata"]["Fail"]["ErrorMessage"] == "AUC below 0.7"
    assert "Register" not in failed
    assert weak.describe()["FailureReason"] == "Step failure: One or multiple steps failed."
