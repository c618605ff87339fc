"""SageMaker MLflow tracking servers (the flavour before MLflow Apps): each a real ``mlflow server``.

The same servers as MLflow Apps (``runtime.mlflow_server``), keyed ``ts-<name>``; the plugin reaches
one at ``https://<region>.experiments.sagemaker.aws`` with the server's ARN in
``x-mlflow-sm-tracking-server-arn``, signed for ``sagemaker-mlflow``. A tracking server can also be
stopped (its process ends, its data stays) and started again.
"""

from __future__ import annotations

import time
from typing import Any

from ...protocol.errors import ServiceError
from ..context import Context
from .common import tag_dict
from .mlflow import MlflowOperations, mlflow_version
from .registry import user_context

SERVER = "MlflowTrackingServer"
SUMMARY = ("TrackingServerArn", "TrackingServerName", "CreationTime", "LastModifiedTime", "TrackingServerStatus",
           "IsActive", "MlflowVersion")
UP = ("Created", "Updated", "Started")


def server_key(name: str) -> str:
    """The key of a tracking server among the running MLflow servers (app ids start with ``app-``)."""
    return f"ts-{name}"


class TrackingServerOperations(MlflowOperations):
    """MLflow tracking servers (and, inherited, MLflow Apps: both run on the same servers)."""

    def _mlflow_owner(self, key: str) -> tuple[str, str] | None:
        if not key.startswith("ts-"):
            return super()._mlflow_owner(key)
        record = self.emulator.state.get(SERVER, key[3:])
        if record is None or not record.get("AutomaticModelRegistration"):
            return None
        return record["TrackingServerArn"], f"MLflow tracking server {record['TrackingServerName']}"

    def recover_mlflow_apps(self) -> None:
        super().recover_mlflow_apps()
        self.recover_tracking_servers()

    def CreateMlflowTrackingServer(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        name = params["TrackingServerName"]
        arn = f"arn:aws:sagemaker:{ctx.region}:{ctx.account_id}:mlflow-tracking-server/{name}"
        now = time.time()
        who = user_context(ctx)
        record = {"TrackingServerArn": arn, "TrackingServerName": name, "ArtifactStoreUri": params["ArtifactStoreUri"],
                  "TrackingServerSize": params.get("TrackingServerSize") or "Small", "MlflowVersion": mlflow_version(),
                  "RoleArn": params["RoleArn"], "TrackingServerStatus": "Creating", "IsActive": "Inactive",
                  "TrackingServerUrl": f"https://{name}.{ctx.region}.experiments.sagemaker.aws",
                  "AutomaticModelRegistration": bool(params.get("AutomaticModelRegistration", False)),
                  "CreationTime": now, "CreatedBy": who, "LastModifiedTime": now, "LastModifiedBy": who}
        if params.get("WeeklyMaintenanceWindowStart"):
            record["WeeklyMaintenanceWindowStart"] = params["WeeklyMaintenanceWindowStart"]
        if not self.emulator.state.insert(SERVER, name, arn, now, record, tag_dict(params.get("Tags"))):
            raise ServiceError("ResourceInUse", f"Tracking server {name} already exists.")
        self._run_server(record, "Created", "CreateFailed")
        return {"TrackingServerArn": arn}

    def _run_server(self, record: dict[str, Any], ready: str, failed: str) -> None:
        name = record["TrackingServerName"]

        def on_ready(reason: str | None) -> None:
            changes: dict[str, Any] = {"TrackingServerStatus": failed if reason else ready,
                                       "IsActive": "Inactive" if reason else "Active", "LastModifiedTime": time.time()}
            if reason:
                changes["_failure"] = reason
            self.emulator.state.update(SERVER, name, **changes)

        self._servers().start(server_key(name), record["ArtifactStoreUri"], on_ready)

    def _tracking_server(self, name: str) -> dict[str, Any]:
        record = self.emulator.state.get(SERVER, name)
        if record is None:
            raise ServiceError("ResourceNotFound", f"Tracking server {name} does not exist.")
        return record

    def DescribeMlflowTrackingServer(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in self._tracking_server(params["TrackingServerName"]).items() if not k.startswith("_")}

    def ListMlflowTrackingServers(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        items, token = self._list_mlflow(SERVER, params, ("TrackingServerStatus", "MlflowVersion"),
                                         "TrackingServerName", "TrackingServerStatus", SUMMARY)
        return {"TrackingServerSummaries": items, "NextToken": token}

    def _transition(self, ctx: Context, name: str, allowed: tuple[str, ...], status: str, **changes: Any
                    ) -> dict[str, Any]:
        record = self._tracking_server(name)
        if record["TrackingServerStatus"] not in allowed:
            raise ServiceError("ConflictException", f"Tracking server {name} is {record['TrackingServerStatus']}.")
        return self.emulator.state.update(SERVER, name, TrackingServerStatus=status, LastModifiedTime=time.time(),
                                          LastModifiedBy=user_context(ctx), **changes) or record

    def StopMlflowTrackingServer(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        name = params["TrackingServerName"]
        record = self._transition(ctx, name, UP, "Stopping")
        self._servers().stop(server_key(name))
        self.emulator.state.update(SERVER, name, TrackingServerStatus="Stopped", IsActive="Inactive")
        return {"TrackingServerArn": record["TrackingServerArn"]}

    def StartMlflowTrackingServer(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        record = self._transition(ctx, params["TrackingServerName"], ("Stopped", "StartFailed"), "Starting")
        self._run_server(record, "Started", "StartFailed")
        return {"TrackingServerArn": record["TrackingServerArn"]}

    def UpdateMlflowTrackingServer(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        name = params["TrackingServerName"]
        changes = {k: params[k] for k in ("ArtifactStoreUri", "TrackingServerSize", "AutomaticModelRegistration",
                                          "WeeklyMaintenanceWindowStart") if params.get(k) is not None}
        record = self._transition(ctx, name, (*UP, "CreateFailed", "UpdateFailed"), "Updating", **changes)
        self._servers().stop(server_key(name))
        self._run_server(record, "Updated", "UpdateFailed")
        return {"TrackingServerArn": record["TrackingServerArn"]}

    def DeleteMlflowTrackingServer(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        name = params["TrackingServerName"]
        record = self._tracking_server(name)
        self._servers().stop(server_key(name))
        self.emulator.state.delete(SERVER, name)
        return {"TrackingServerArn": record["TrackingServerArn"]}

    def CreatePresignedMlflowTrackingServerUrl(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        from ...mlflow_proxy import presigned_url

        record = self._tracking_server(params["TrackingServerName"])
        if record["TrackingServerStatus"] not in UP:
            raise ServiceError("ValidationException", f"Tracking server {record['TrackingServerName']} is "
                                                      f"{record['TrackingServerStatus']}; it must be running.")
        return {"AuthorizedUrl": presigned_url(self.emulator, server_key(record["TrackingServerName"]),
                                               int(params.get("ExpiresInSeconds") or 300),
                                               int(params.get("SessionExpirationDurationInSeconds") or 43200))}

    def recover_tracking_servers(self) -> None:
        """After a daemon restart: start the servers that were running (their data is on disk)."""
        for record in self.emulator.state.all(SERVER):
            if record["TrackingServerStatus"] in (*UP, "Creating", "Starting", "Updating"):
                self._run_server(record, "Started", "StartFailed")
