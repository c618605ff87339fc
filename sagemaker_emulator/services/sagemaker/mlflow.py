"""SageMaker-managed MLflow Apps: each one a real ``mlflow server`` (``runtime.mlflow_server``).

``CreateMlflowApp`` records the app ``Creating`` and starts its server; the app is ``Created`` when
the server answers. Clients reach it as the ``sagemaker-mlflow`` plugin does on AWS — HTTPS to
``mlflow.sagemaker.<region>.app.aws`` (the emulator's proxy), SigV4 for ``sagemaker``, the app's
ARN in ``x-sm-mlflow-app-arn`` — and the gateway forwards to the server (``mlflow_proxy``).
``CreatePresignedMlflowAppUrl`` gives ``<ui>/auth?authToken=…``: opened in a browser it sets a
session cookie and shows the MLflow UI, as SageMaker's presigned URL does.
"""

from __future__ import annotations

import logging
import random
import string
import time
from typing import Any

from ...protocol.errors import ServiceError, invalid
from ..context import Context
from ..listing import list_records
from .common import SageMakerBase, tag_dict
from .registry import user_context

log = logging.getLogger(__name__)

APP = "MlflowApp"
SUMMARY = ("Arn", "Name", "Status", "CreationTime", "LastModifiedTime", "MlflowVersion")
UP = ("Created", "Updated")


def mlflow_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mlflow")
    except PackageNotFoundError:
        return "unknown"


def app_id_of(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


class MlflowOperations(SageMakerBase):
    """MLflow Apps (the managed MLflow flavour the Immersion Day uses)."""

    def _servers(self) -> Any:
        from ...runtime.mlflow_server import MlflowServers

        servers = getattr(self.emulator, "mlflow", None)
        if servers is None:
            servers = self.emulator.mlflow = MlflowServers(self.emulator)
        return servers

    def CreateMlflowApp(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        if any(r["Name"] == params["Name"] and r["Status"] != "Deleting" for r in self.emulator.state.all(APP)):
            raise invalid(f"An MLflow App named {params['Name']} already exists.")
        app_id = "app-" + "".join(random.choices(string.ascii_uppercase + string.digits, k=12))
        arn = f"arn:aws:sagemaker:{ctx.region}:{ctx.account_id}:mlflow-app/{app_id}"
        now = time.time()
        who = user_context(ctx)
        record = {"Arn": arn, "Name": params["Name"], "ArtifactStoreUri": params["ArtifactStoreUri"],
                  "MlflowVersion": mlflow_version(), "RoleArn": params["RoleArn"], "Status": "Creating",
                  "ModelRegistrationMode": params.get("ModelRegistrationMode") or "AutoModelRegistrationDisabled",
                  "AccountDefaultStatus": params.get("AccountDefaultStatus") or "DISABLED",
                  "CreationTime": now, "CreatedBy": who, "LastModifiedTime": now, "LastModifiedBy": who}
        for key in ("KmsKeyId", "WeeklyMaintenanceWindowStart", "DefaultDomainIdList"):
            if params.get(key) is not None:
                record[key] = params[key]
        self.emulator.state.insert(APP, app_id, arn, now, record, tag_dict(params.get("Tags")))
        try:
            self._start(app_id, record, "Created", "CreateFailed")
        except OSError as exc:  # no process at all (no interpreter, no port): the create changes nothing
            self.emulator.state.delete(APP, app_id)
            raise ServiceError("InternalFailure", f"The MLflow server could not be started: {exc}", 500) from None
        return {"Arn": arn}

    def _start(self, app_id: str, record: dict[str, Any], ready: str, failed: str) -> None:
        def on_ready(reason: str | None) -> None:
            changes: dict[str, Any] = {"Status": failed if reason else ready, "LastModifiedTime": time.time()}
            if reason:
                changes["_failure"] = reason
            self.emulator.state.update(APP, app_id, **changes)

        self._servers().start(app_id, record["ArtifactStoreUri"], on_ready)

    def _app(self, arn: str) -> dict[str, Any]:
        record = self.emulator.state.get(APP, app_id_of(arn))
        if record is None or record["Arn"].lower() != arn.lower():
            raise ServiceError("ResourceNotFound", f"MLflow App {arn} does not exist.")
        return record

    def DescribeMlflowApp(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in self._app(params["Arn"]).items() if not k.startswith("_")}

    def ListMlflowApps(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        items, token = self._list_mlflow(APP, params, ("Status", "MlflowVersion", "AccountDefaultStatus"), "Name",
                                         "Status", SUMMARY)
        return {"Summaries": items, "NextToken": token}

    def _list_mlflow(self, kind: str, params: dict[str, Any], filters: tuple[str, ...], name_field: str,
                     status_field: str, fields: tuple[str, ...]) -> tuple[list[dict[str, Any]], str | None]:
        """A List call of MLflow resources: equality ``filters``, then SageMaker's time window, sort and pages."""
        records = self.emulator.state.all(kind)
        for key in filters:
            if params.get(key):
                records = [r for r in records if r.get(key) == params[key]]
        window = {"CreationTimeAfter": params.get("CreatedAfter"), "CreationTimeBefore": params.get("CreatedBefore")}
        return list_records(records, {**params, **{k: v for k, v in window.items() if v is not None}},
                            name_field=name_field, status_field=status_field,
                            summary=lambda r: {k: r[k] for k in fields if k in r})

    def UpdateMlflowApp(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        record = self._app(params["Arn"])
        if record["Status"] not in (*UP, "CreateFailed", "UpdateFailed"):
            raise ServiceError("ConflictException", f"MLflow App {record['Arn']} is {record['Status']}; wait for it "
                                                    "to be Created before updating it.")
        changes = {k: params[k] for k in ("Name", "ArtifactStoreUri", "ModelRegistrationMode",
                                          "WeeklyMaintenanceWindowStart", "DefaultDomainIdList",
                                          "AccountDefaultStatus") if params.get(k) is not None}
        app_id = app_id_of(record["Arn"])
        record = self.emulator.state.update(APP, app_id, **changes, Status="Updating", LastModifiedTime=time.time(),
                                            LastModifiedBy=user_context(ctx)) or record
        self._servers().stop(app_id)  # a new artifact store means a new server command line
        self._start(app_id, record, "Updated", "UpdateFailed")
        return {"Arn": record["Arn"]}

    def DeleteMlflowApp(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        record = self._app(params["Arn"])
        app_id = app_id_of(record["Arn"])
        self.emulator.state.update(APP, app_id, Status="Deleting")
        self._servers().stop(app_id)
        self.emulator.state.delete(APP, app_id)
        return {"Arn": record["Arn"]}

    def CreatePresignedMlflowAppUrl(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        from ...mlflow_proxy import presigned_url

        record = self._app(params["Arn"])
        if record["Status"] not in UP:
            raise invalid(f"MLflow App {record['Arn']} is {record['Status']}; a URL can be made once it is Created.")
        expires = int(params.get("ExpiresInSeconds") or 300)
        session = int(params.get("SessionExpirationDurationInSeconds") or 43200)
        return {"AuthorizedUrl": presigned_url(self.emulator, app_id_of(record["Arn"]), expires, session)}

    def register_mlflow_model_version(self, app_id: str, version: dict[str, Any]) -> None:
        """``AutoModelRegistrationEnabled``: a model version registered in the app's MLflow becomes a version of
        the SageMaker model package group named like the MLflow model (created when missing), its ``SourceUri``
        ``models:/<name>/<version>``. Which fields SageMaker fills beyond these is not documented."""
        from ..context import Context, call

        owner = self._mlflow_owner(app_id)
        if owner is None:
            return
        arn, label = owner
        ctx = Context.internal(arn)
        name = version["name"]
        try:
            if self.emulator.state.get("ModelPackageGroup", name.lower()) is None:
                call(self, "CreateModelPackageGroup", ctx, {
                    "ModelPackageGroupName": name,
                    "ModelPackageGroupDescription": f"Registered in {label}"})
            metadata = {"mlflow_model_name": name, "mlflow_model_version": str(version["version"]),
                        "mlflow_tracking_arn": arn}
            for key in ("run_id", "source"):
                if version.get(key):
                    metadata[f"mlflow_{key}"] = str(version[key])[:256]
            call(self, "CreateModelPackage", ctx, {
                "ModelPackageGroupName": name, "SourceUri": f"models:/{name}/{version['version']}",
                "ModelApprovalStatus": "PendingManualApproval", "CustomerMetadataProperties": metadata,
                "ModelPackageRegistrationType": "Registered"})
        except ServiceError as exc:  # e.g. an MLflow name SageMaker's group names do not allow: MLflow still has it
            log.warning("MLflow model %s v%s was not registered in SageMaker: %s", name, version.get("version"),
                        exc.message)

    def _mlflow_owner(self, key: str) -> tuple[str, str] | None:
        """``(ARN, label)`` of the app behind a running MLflow server, if it registers models automatically."""
        record = self.emulator.state.get(APP, key)
        if record is None or record.get("ModelRegistrationMode") != "AutoModelRegistrationEnabled":
            return None
        return record["Arn"], f"MLflow App {record['Name']}"

    def recover_mlflow_apps(self) -> None:
        """After a daemon restart: start the servers of the apps that were up (their data is on disk)."""
        for record in self.emulator.state.all(APP):
            app_id = app_id_of(record["Arn"])
            if record["Status"] == "Deleting":
                self.emulator.state.delete(APP, app_id)
            elif record["Status"] in (*UP, "Creating", "Updating"):
                self._start(app_id, record, record["Status"] if record["Status"] in UP else "Created",
                            "CreateFailed")
