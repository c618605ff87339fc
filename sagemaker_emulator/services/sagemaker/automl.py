"""AutoML (Autopilot) jobs: create, describe, list, list candidates, stop — V2 and V1 (the runtime is
``runtime.automl``).

V1 (``CreateAutoMLJob``) and V2 (``CreateAutoMLJobV2``) name one resource: a job created with either is
described by both (a tabular one; as on SageMaker). It is stored in V2's shape; V1's view is derived.
Only the tabular problem type (``TabularJobConfig``) runs locally, in ENSEMBLING or HYPERPARAMETER_TUNING
mode (``AUTO`` resolves to the first below 100 MB of input data, to the second above, as SageMaker does).
"""

from __future__ import annotations

import time
from typing import Any

from ...protocol.errors import ServiceError, invalid
from ..context import Context
from ..listing import decode_token, encode_token, list_records
from .common import SageMakerBase, resource_arn, tag_dict

KIND = "AutoMLJob"
#: the objective metrics SageMaker accepts per problem type
OBJECTIVES = {
    "BinaryClassification": ("Accuracy", "AUC", "BalancedAccuracy", "F1", "Precision", "Recall"),
    "MulticlassClassification": ("Accuracy", "BalancedAccuracy", "F1macro", "PrecisionMacro", "RecallMacro"),
    "Regression": ("MAE", "MSE", "R2", "RMSE"),
}
CONTENT_TYPES = ("text/csv;header=present", "x-application/vnd.amazon+parquet")
#: the V2 record's fields DescribeAutoMLJobV2 returns (the rest is the runtime's)
V2_FIELDS = ("AutoMLJobName", "AutoMLJobArn", "AutoMLJobInputDataConfig", "OutputDataConfig", "RoleArn",
             "AutoMLJobObjective", "AutoMLProblemTypeConfig", "AutoMLProblemTypeConfigName", "CreationTime",
             "EndTime", "LastModifiedTime", "FailureReason", "PartialFailureReasons", "BestCandidate",
             "AutoMLJobStatus", "AutoMLJobSecondaryStatus", "AutoMLJobArtifacts", "ResolvedAttributes",
             "ModelDeployConfig", "ModelDeployResult", "DataSplitConfig", "SecurityConfig", "AutoMLComputeConfig")
SUMMARY_FIELDS = ("AutoMLJobName", "AutoMLJobArn", "AutoMLJobStatus", "AutoMLJobSecondaryStatus", "CreationTime",
                  "EndTime", "LastModifiedTime", "FailureReason", "PartialFailureReasons")


def check_objective(problem_type: str | None, metric: str | None) -> None:
    if problem_type and metric and metric not in OBJECTIVES[problem_type]:
        raise invalid(f"The objective metric {metric} is not valid for the problem type {problem_type}. Valid "
                      f"metrics: {', '.join(OBJECTIVES[problem_type])}.")


def check_channels(channels: list[dict[str, Any]]) -> None:
    types = [c.get("ChannelType") or "training" for c in channels]
    if len(set(types)) != len(types) or "training" not in types:
        raise invalid("The input data config must have exactly one channel of type 'training' and at most one "
                      "of type 'validation'.")
    for channel in channels:
        content_type = (channel.get("ContentType") or "text/csv;header=present").replace(" ", "")
        if content_type not in CONTENT_TYPES:
            raise invalid(f"Unsupported ContentType '{channel.get('ContentType')}'. Supported content types: "
                          f"{', '.join(CONTENT_TYPES)}.")
        if content_type != "text/csv;header=present":
            raise invalid("Parquet input is not supported by the local emulator; use text/csv;header=present.")
        source = channel["DataSource"]["S3DataSource"]
        if source.get("S3DataType", "S3Prefix") != "S3Prefix":
            raise invalid(f"S3DataType {source['S3DataType']} is not supported by the local emulator; use "
                          "S3Prefix.")


def check_tabular(config: dict[str, Any], objective: dict[str, Any] | None,
                  deploy: dict[str, Any] | None) -> None:
    check_objective(config.get("ProblemType"), (objective or {}).get("MetricName"))
    if deploy and deploy.get("AutoGenerateEndpointName") and deploy.get("EndpointName"):
        raise invalid("EndpointName cannot be specified when AutoGenerateEndpointName is true.")


def v1_view(record: dict[str, Any]) -> dict[str, Any]:
    """``DescribeAutoMLJob``'s shape of a stored job."""
    config = (record.get("AutoMLProblemTypeConfig") or {}).get("TabularJobConfig") or {}
    channels = [{**c, "TargetAttributeName": config.get("TargetAttributeName"),
                 **({"SampleWeightAttributeName": config["SampleWeightAttributeName"]}
                    if config.get("SampleWeightAttributeName") else {})}
                for c in record.get("AutoMLJobInputDataConfig") or []]
    job_config = {k: v for k, v in (("CompletionCriteria", config.get("CompletionCriteria")),
                                    ("Mode", config.get("Mode")),
                                    ("CandidateGenerationConfig", config.get("CandidateGenerationConfig")),
                                    ("DataSplitConfig", record.get("DataSplitConfig")),
                                    ("SecurityConfig", record.get("SecurityConfig"))) if v}
    out = {k: record[k] for k in V2_FIELDS if k in record and k not in (
        "AutoMLJobInputDataConfig", "AutoMLProblemTypeConfig", "AutoMLProblemTypeConfigName", "ResolvedAttributes",
        "DataSplitConfig", "SecurityConfig", "AutoMLComputeConfig")}
    out.update(InputDataConfig=channels, AutoMLJobConfig=job_config,
               GenerateCandidateDefinitionsOnly=bool(config.get("GenerateCandidateDefinitionsOnly")))
    resolved = record.get("ResolvedAttributes")
    problem_type = config.get("ProblemType")
    if resolved:
        problem_type = problem_type or resolved["AutoMLProblemTypeResolvedAttributes"][
            "TabularResolvedAttributes"]["ProblemType"]
        out["ResolvedAttributes"] = {"AutoMLJobObjective": resolved["AutoMLJobObjective"],
                                     "ProblemType": problem_type,
                                     "CompletionCriteria": resolved["CompletionCriteria"]}
    if problem_type:
        out["ProblemType"] = problem_type
    return out


class AutoMLOperations(SageMakerBase):
    def CreateAutoMLJobV2(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        problem = params["AutoMLProblemTypeConfig"]
        if "TabularJobConfig" not in problem:
            kinds = ", ".join(problem) or "none"
            raise invalid(f"The local emulator runs only tabular AutoML jobs (TabularJobConfig); got {kinds}.")
        check_channels(params["AutoMLJobInputDataConfig"])
        check_tabular(problem["TabularJobConfig"], params.get("AutoMLJobObjective"), params.get("ModelDeployConfig"))
        record = {k: v for k, v in params.items() if k != "Tags"}
        record["AutoMLProblemTypeConfigName"] = "Tabular"
        return self._create_automl(ctx, record, params.get("Tags"), "V2")

    def CreateAutoMLJob(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        channels = params["InputDataConfig"]
        check_channels(channels)
        targets = {c["TargetAttributeName"] for c in channels}
        if len(targets) != 1:
            raise invalid("All channels must have the same TargetAttributeName.")
        job_config = params.get("AutoMLJobConfig") or {}
        tabular = {k: v for k, v in (
            ("TargetAttributeName", channels[0]["TargetAttributeName"]),
            ("SampleWeightAttributeName", channels[0].get("SampleWeightAttributeName")),
            ("ProblemType", params.get("ProblemType")), ("CompletionCriteria", job_config.get("CompletionCriteria")),
            ("Mode", job_config.get("Mode")),
            ("CandidateGenerationConfig", job_config.get("CandidateGenerationConfig")),
            ("GenerateCandidateDefinitionsOnly", params.get("GenerateCandidateDefinitionsOnly"))) if v is not None}
        check_tabular(tabular, params.get("AutoMLJobObjective"), params.get("ModelDeployConfig"))
        record = {
            "AutoMLJobName": params["AutoMLJobName"],
            "AutoMLJobInputDataConfig": [{k: v for k, v in c.items()
                                          if k not in ("TargetAttributeName", "SampleWeightAttributeName")}
                                         for c in channels],
            "OutputDataConfig": params["OutputDataConfig"], "RoleArn": params["RoleArn"],
            "AutoMLProblemTypeConfig": {"TabularJobConfig": tabular}, "AutoMLProblemTypeConfigName": "Tabular",
            **{k: v for k, v in (("AutoMLJobObjective", params.get("AutoMLJobObjective")),
                                 ("ModelDeployConfig", params.get("ModelDeployConfig")),
                                 ("DataSplitConfig", job_config.get("DataSplitConfig")),
                                 ("SecurityConfig", job_config.get("SecurityConfig"))) if v},
        }
        return self._create_automl(ctx, record, params.get("Tags"), "V1")

    def _create_automl(self, ctx: Context, record: dict[str, Any], tags: list[dict[str, str]] | None,
                       api: str) -> dict[str, Any]:
        name = record["AutoMLJobName"]
        now = time.time()
        arn = resource_arn(ctx, "automl-job", name)
        record.update(AutoMLJobArn=arn, AutoMLJobStatus="InProgress", AutoMLJobSecondaryStatus="Starting",
                      CreationTime=now, LastModifiedTime=now, _api=api)
        if self._find(KIND, name) is not None or not self.emulator.state.insert(KIND, name, arn, now, record,
                                                                                tag_dict(tags)):
            raise ServiceError("ResourceInUse", f"Job name {name} already exists; AutoML job names must be unique "
                                                "within an AWS account and region.")
        self.emulator.jobs.start(KIND, name)
        return {"AutoMLJobArn": arn}

    def _automl(self, name: str) -> dict[str, Any]:
        record = self._find(KIND, name)
        if record is None:
            raise ServiceError("ResourceNotFound", f"Could not find AutoML job with name {name}.")
        return record

    def DescribeAutoMLJobV2(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        record = self._automl(params["AutoMLJobName"])
        return {k: record[k] for k in V2_FIELDS if k in record}

    def DescribeAutoMLJob(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        return v1_view(self._automl(params["AutoMLJobName"]))

    def ListAutoMLJobs(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        items, token = list_records(  # SortBy defaults to Name here (CreationTime for most lists)
            self.emulator.state.all(KIND), params, name_field="AutoMLJobName", status_field="AutoMLJobStatus",
            summary=lambda r: {k: r[k] for k in SUMMARY_FIELDS if k in r}, default_sort="Name")
        return {"AutoMLJobSummaries": items, "NextToken": token}

    def ListCandidatesForAutoMLJob(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        record = self._automl(params["AutoMLJobName"])
        candidates = list(record.get("_candidates") or [])
        if params.get("StatusEquals"):
            candidates = [c for c in candidates if c["CandidateStatus"] == params["StatusEquals"]]
        if params.get("CandidateNameEquals"):
            candidates = [c for c in candidates if c["CandidateName"] == params["CandidateNameEquals"]]
        sort_by = params.get("SortBy")
        descending = params.get("SortOrder") == "Descending"
        if sort_by == "FinalObjectiveMetricValue":
            candidates.sort(key=lambda c: c["FinalAutoMLJobObjectiveMetric"]["Value"], reverse=descending)
        elif sort_by == "Status":
            candidates.sort(key=lambda c: c["CandidateStatus"], reverse=descending)
        elif sort_by == "CreationTime" or descending:
            candidates.sort(key=lambda c: c["CreationTime"], reverse=descending)
        start = decode_token(params.get("NextToken"))
        size = int(params.get("MaxResults") or 10)
        page = candidates[start:start + size]
        token = encode_token(start + size) if start + size < len(candidates) else None
        return {"Candidates": page, "NextToken": token}

    def StopAutoMLJob(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        from ...runtime.records import TERMINAL, transition

        record = self._automl(params["AutoMLJobName"])
        name = record["AutoMLJobName"]
        if record["AutoMLJobStatus"] in TERMINAL or record["AutoMLJobStatus"] == "Stopping":
            return {}
        transition(self.emulator.state, KIND, name, "Stopping", AutoMLJobSecondaryStatus="Stopping")
        if not self.emulator.jobs.stop(KIND, name):
            from ...runtime.automl import AutoMLRun

            AutoMLRun.end_record(self.emulator.state, name, "Stopped")
        return {}
