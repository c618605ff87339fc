"""SageMaker Pipelines: pipelines (with versions) and their executions.

A pipeline is its definition (checked when created or updated, see
``runtime.pipeline_definition``) plus metadata; every ``UpdatePipeline``
with a definition makes a new ``PipelineVersionId``. An execution snapshots
the definition and the resolved parameters and is run by
``runtime.pipeline.PipelineRun`` on its own thread; its steps are kept with
its record and read back by ``ListPipelineExecutionSteps``.
"""

from __future__ import annotations

import random
import string
import time
from typing import Any

from ...protocol.errors import ServiceError, invalid
from ...runtime.pipeline import KIND as EXECUTION
from ...runtime.pipeline_definition import DefinitionError, parse
from ...runtime.pipeline_expressions import coerce_parameter
from ..context import Context
from ..listing import decode_token, encode_token, list_records
from .common import SageMakerBase, resource_arn, tag_dict
from .registry import user_context

PIPELINE = "Pipeline"
RUNNING = ("Executing", "Stopping")
SUMMARY = ("PipelineArn", "PipelineName", "PipelineDisplayName", "PipelineDescription", "RoleArn", "CreationTime",
           "LastModifiedTime", "LastExecutionTime")


def not_found(what: str) -> ServiceError:
    return ServiceError("ResourceNotFound", f"{what} does not exist.")


class PipelineOperations(SageMakerBase):
    """Pipelines and pipeline executions."""

    # ------------------------------------------------------------ pipelines
    def _definition_text(self, params: dict[str, Any]) -> str:
        """The definition, inline or from ``PipelineDefinitionS3Location`` (the SDK uploads large ones)."""
        if params.get("PipelineDefinition"):
            text = params["PipelineDefinition"]
        elif params.get("PipelineDefinitionS3Location"):
            location = params["PipelineDefinitionS3Location"]
            try:
                text = self.emulator.s3.store.get_bytes(location["Bucket"], location["ObjectKey"]).decode()
            except Exception:  # noqa: BLE001 - NoSuchKey/NoSuchBucket/UnicodeDecodeError
                raise invalid(f"Could not read the pipeline definition at s3://{location['Bucket']}/"
                              f"{location['ObjectKey']}.") from None
        else:
            raise invalid("Either PipelineDefinition or PipelineDefinitionS3Location must be specified.")
        try:
            parse(text)
        except DefinitionError as exc:
            raise invalid(str(exc)) from None
        return text

    def CreatePipeline(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        name = params["PipelineName"]
        text = self._definition_text(params)
        arn = resource_arn(ctx, "pipeline", name)
        now = time.time()
        who = user_context(ctx)
        record = {"PipelineArn": arn, "PipelineName": name,
                  "PipelineDisplayName": params.get("PipelineDisplayName") or name, "PipelineDefinition": text,
                  "RoleArn": params["RoleArn"], "PipelineStatus": "Active", "CreationTime": now,
                  "LastModifiedTime": now, "CreatedBy": who, "LastModifiedBy": who,
                  "_versions": [{"PipelineVersionId": 1, "CreationTime": now, "PipelineDefinition": text}]}
        for key in ("PipelineDescription", "ParallelismConfiguration"):
            if params.get(key) is not None:
                record[key] = params[key]
        if not self.emulator.state.insert(PIPELINE, name.lower(), arn, now, record, tag_dict(params.get("Tags"))):
            raise invalid(f"Pipeline names must be unique within an AWS account and region. Pipeline with name "
                          f"({name}) already exists.")
        return {"PipelineArn": arn}

    def _pipeline(self, name_or_arn: str) -> dict[str, Any]:
        name = name_or_arn.split(":pipeline/", 1)[1] if name_or_arn.startswith("arn:") else name_or_arn
        record = self.emulator.state.get(PIPELINE, name.split("/", 1)[0].lower())
        if record is None:
            raise not_found(f"Pipeline '{name_or_arn}'")
        return record

    def DescribePipeline(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        record = self._pipeline(params["PipelineName"])
        out = {k: v for k, v in record.items() if not k.startswith("_")}
        wanted = params.get("PipelineVersionId")
        if wanted is not None:
            version = self._version(record, int(wanted))
            out["PipelineDefinition"] = version["PipelineDefinition"]
        return out

    @staticmethod
    def _version(record: dict[str, Any], version_id: int) -> dict[str, Any]:
        for version in record["_versions"]:
            if version["PipelineVersionId"] == version_id:
                return version
        raise not_found(f"Pipeline version {version_id} of pipeline '{record['PipelineArn']}'")

    def UpdatePipeline(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        record = self._pipeline(params["PipelineName"])
        text = self._definition_text(params) if (params.get("PipelineDefinition")
                                                  or params.get("PipelineDefinitionS3Location")) else None
        now = time.time()
        who = user_context(ctx)

        def change(data: dict[str, Any]) -> None:
            for key in ("PipelineDisplayName", "PipelineDescription", "RoleArn", "ParallelismConfiguration"):
                if params.get(key) is not None:
                    data[key] = params[key]
            if text is not None:
                data["PipelineDefinition"] = text
                data["_versions"].append({"PipelineVersionId": data["_versions"][-1]["PipelineVersionId"] + 1,
                                          "CreationTime": now, "PipelineDefinition": text})
            data.update(LastModifiedTime=now, LastModifiedBy=who)

        data = self.emulator.state.modify(PIPELINE, record["PipelineName"].lower(), change) or record
        return {"PipelineArn": record["PipelineArn"], "PipelineVersionId": data["_versions"][-1]["PipelineVersionId"]}

    def DeletePipeline(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        record = self._pipeline(params["PipelineName"])
        for execution in self._pipeline_executions(record):
            if execution["PipelineExecutionStatus"] in RUNNING:
                self.emulator.jobs.stop(EXECUTION, self._key(execution))
        self.emulator.state.delete(PIPELINE, record["PipelineName"].lower())
        return {"PipelineArn": record["PipelineArn"]}

    def ListPipelines(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        records = self.emulator.state.all(PIPELINE)
        prefix = params.get("PipelineNamePrefix")
        if prefix:
            records = [r for r in records if r["PipelineName"].startswith(prefix)]
        window = {"CreationTimeAfter": params.get("CreatedAfter"), "CreationTimeBefore": params.get("CreatedBefore")}
        items, token = list_records(
            records, {**params, **{k: v for k, v in window.items() if v is not None}}, name_field="PipelineName",
            status_field="", summary=lambda r: {k: r[k] for k in SUMMARY if k in r}, default_max=50)
        return {"PipelineSummaries": items, "NextToken": token}

    def ListPipelineVersions(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        record = self._pipeline(params["PipelineName"])
        last: dict[int, str] = {}
        for execution in self._pipeline_executions(record):
            last.setdefault(execution.get("PipelineVersionId", 1), execution["PipelineExecutionArn"])
        versions = [{"PipelineArn": record["PipelineArn"], "PipelineVersionId": v["PipelineVersionId"],
                     "CreationTime": v["CreationTime"],
                     **({"LastExecutionPipelineExecutionArn": last[v["PipelineVersionId"]]}
                        if v["PipelineVersionId"] in last else {})} for v in record["_versions"]]
        window = {"CreationTimeAfter": params.get("CreatedAfter"), "CreationTimeBefore": params.get("CreatedBefore")}
        items, token = list_records(versions, {**params, **{k: v for k, v in window.items() if v is not None}},
                                    name_field="PipelineArn", status_field="", summary=dict)
        return {"PipelineVersionSummaries": items, "NextToken": token}

    # ------------------------------------------------------------ executions
    def StartPipelineExecution(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        pipeline = self._pipeline(params["PipelineName"])
        if params.get("SelectiveExecutionConfig"):
            raise invalid("SelectiveExecutionConfig is not supported by the local emulator; start the whole "
                          "pipeline (cached steps are reused when CacheConfig is enabled).")
        version = pipeline["_versions"][-1]
        if params.get("PipelineVersionId") is not None:
            version = self._version(pipeline, int(params["PipelineVersionId"]))
        definition = parse(version["PipelineDefinition"])
        values = self._parameters(definition.parameters, params.get("PipelineParameters") or [])
        execution_id = "".join(random.choices(string.ascii_lowercase + string.digits, k=12))
        arn = f"{pipeline['PipelineArn']}/execution/{execution_id}"
        now = time.time()
        who = user_context(ctx)
        record: dict[str, Any] = {
            "PipelineArn": pipeline["PipelineArn"], "PipelineExecutionArn": arn,
            "PipelineExecutionDisplayName": params.get("PipelineExecutionDisplayName")
            or f"execution-{int(now * 1000)}",
            "PipelineExecutionStatus": "Executing", "CreationTime": now, "LastModifiedTime": now,
            "CreatedBy": who, "LastModifiedBy": who, "PipelineVersionId": version["PipelineVersionId"],
            "PipelineExperimentConfig": {"ExperimentName": pipeline["PipelineName"], "TrialName": execution_id},
            "_pipeline": pipeline["PipelineName"], "_definition": version["PipelineDefinition"],
            "_parameters": values, "_steps": []}
        parallelism = params.get("ParallelismConfiguration") or pipeline.get("ParallelismConfiguration")
        if parallelism:
            record["ParallelismConfiguration"] = parallelism
        if params.get("PipelineExecutionDescription"):
            record["PipelineExecutionDescription"] = params["PipelineExecutionDescription"]
        key = self._key(record)
        self.emulator.state.insert(EXECUTION, key, arn, now, record)
        self.emulator.state.update(PIPELINE, pipeline["PipelineName"].lower(), LastExecutionTime=now,
                                   LastRunTime=now)
        self.emulator.jobs.start(EXECUTION, key)
        return {"PipelineExecutionArn": arn}

    @staticmethod
    def _parameters(declared: dict[str, dict[str, Any]], given: list[dict[str, str]]) -> list[dict[str, str]]:
        """Every declared parameter with its value for this execution (given, else default), checked."""
        values: dict[str, str] = {}
        for item in given:
            if item["Name"] not in declared:
                raise invalid(f"Parameter {item['Name']} is not defined in the pipeline definition.")
            values[item["Name"]] = item["Value"]
        out = []
        for name, spec in declared.items():
            if name not in values and spec.get("DefaultValue") is None:
                raise invalid(f"Parameter {name} has no default value and was not given.")
            value = values.get(name, spec.get("DefaultValue"))
            try:
                coerce_parameter(spec, value)
            except ValueError as exc:
                raise invalid(str(exc)) from None
            text = ("true" if value else "false") if isinstance(value, bool) else str(value)
            out.append({"Name": name, "Value": text})
        return out

    @staticmethod
    def _key(execution: dict[str, Any]) -> str:
        return f"{execution['_pipeline'].lower()}/{execution['PipelineExecutionArn'].rsplit('/', 1)[-1]}"

    def _pipeline_executions(self, pipeline: dict[str, Any]) -> list[dict[str, Any]]:
        return [r for r in reversed(self.emulator.state.all(EXECUTION)) if r["PipelineArn"] == pipeline["PipelineArn"]]

    def _execution(self, arn: str) -> dict[str, Any]:
        found = self.emulator.state.kind_of_arn(arn.lower())
        record = self.emulator.state.get(EXECUTION, found[1]) if found and found[0] == EXECUTION else None
        if record is None:
            raise not_found(f"Pipeline execution '{arn}'")
        return record

    def DescribePipelineExecution(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        record = self._execution(params["PipelineExecutionArn"])
        return {k: v for k, v in record.items() if not k.startswith("_")}

    def ListPipelineExecutions(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        pipeline = self._pipeline(params["PipelineName"])
        window = {"CreationTimeAfter": params.get("CreatedAfter"), "CreationTimeBefore": params.get("CreatedBefore")}
        items, token = list_records(
            self._pipeline_executions(pipeline), {**params, **{k: v for k, v in window.items() if v is not None}},
            name_field="PipelineExecutionArn", status_field="PipelineExecutionStatus",
            sort_fields={"PipelineExecutionArn": "PipelineExecutionArn"}, summary=self._execution_summary)
        return {"PipelineExecutionSummaries": items, "NextToken": token}

    @staticmethod
    def _execution_summary(record: dict[str, Any]) -> dict[str, Any]:
        out = {"PipelineExecutionArn": record["PipelineExecutionArn"], "StartTime": record["CreationTime"],
               "PipelineExecutionStatus": record["PipelineExecutionStatus"],
               "PipelineExecutionDisplayName": record["PipelineExecutionDisplayName"]}
        if record.get("PipelineExecutionDescription"):
            out["PipelineExecutionDescription"] = record["PipelineExecutionDescription"]
        if record.get("FailureReason"):
            out["PipelineExecutionFailureReason"] = record["FailureReason"]
        return out

    def ListPipelineExecutionSteps(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        """The steps that ran (newest first unless ``SortOrder=Ascending``), as SageMaker lists them."""
        if not params.get("PipelineExecutionArn"):
            raise invalid("PipelineExecutionArn must be specified.")
        record = self._execution(params["PipelineExecutionArn"])
        steps = [{k: v for k, v in e.items() if not k.startswith("_")} for e in record.get("_steps") or []]
        steps.sort(key=lambda e: e["StartTime"], reverse=(params.get("SortOrder") or "Descending") == "Descending")
        page, token = self._page(steps, params)
        return {"PipelineExecutionSteps": page, "NextToken": token}

    @staticmethod
    def _page(items: list[Any], params: dict[str, Any]) -> tuple[list[Any], str | None]:
        start = decode_token(params.get("NextToken"))
        size = int(params.get("MaxResults") or 50)
        return items[start:start + size], encode_token(start + size) if start + size < len(items) else None

    def DescribePipelineDefinitionForExecution(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        record = self._execution(params["PipelineExecutionArn"])
        return {"PipelineDefinition": record["_definition"], "CreationTime": record["CreationTime"]}

    def ListPipelineParametersForExecution(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        record = self._execution(params["PipelineExecutionArn"])
        page, token = self._page(list(record["_parameters"]), params)
        return {"PipelineParameters": page, "NextToken": token}

    def StopPipelineExecution(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        record = self._execution(params["PipelineExecutionArn"])
        if record["PipelineExecutionStatus"] != "Executing":
            raise invalid(f"Pipeline execution {record['PipelineExecutionArn']} is "
                          f"{record['PipelineExecutionStatus']}; only an Executing execution can be stopped.")
        from ...runtime.pipeline import PipelineRun
        from ...runtime.records import transition

        key = self._key(record)
        transition(self.emulator.state, EXECUTION, key, "Stopping")
        if not self.emulator.jobs.stop(EXECUTION, key):
            PipelineRun.end_record(self.emulator.state, key, "Stopped")
        return {"PipelineExecutionArn": record["PipelineExecutionArn"]}

    def RetryPipelineExecution(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        """Run a failed or stopped execution again from the steps that did not succeed."""
        record = self._execution(params["PipelineExecutionArn"])
        if record["PipelineExecutionStatus"] not in ("Failed", "Stopped"):
            raise invalid(f"Pipeline execution {record['PipelineExecutionArn']} is "
                          f"{record['PipelineExecutionStatus']}; only a Failed or Stopped execution can be retried.")
        key = self._key(record)

        def restart(data: dict[str, Any]) -> None:
            data.update(PipelineExecutionStatus="Executing", LastModifiedTime=time.time(),
                        LastModifiedBy=user_context(ctx))
            data.pop("FailureReason", None)
            if params.get("ParallelismConfiguration"):
                data["ParallelismConfiguration"] = params["ParallelismConfiguration"]

        self.emulator.state.modify(EXECUTION, key, restart)
        self.emulator.jobs.start(EXECUTION, key)
        return {"PipelineExecutionArn": record["PipelineExecutionArn"]}
