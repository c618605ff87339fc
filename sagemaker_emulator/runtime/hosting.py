"""Owns the live endpoints: deploys them in the background, updates, deletes, restores after a restart."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from .endpoints import EndpointFailure, LiveEndpoint
from .records import failure_reason

log = logging.getLogger(__name__)
KIND = "Endpoint"


class EndpointManager:
    def __init__(self, emulator: Any) -> None:
        self.emulator = emulator
        self.live: dict[str, LiveEndpoint] = {}
        self._lock = threading.Lock()

    def _set(self, name: str, **fields: Any) -> dict[str, Any] | None:
        if fields.get("FailureReason"):
            fields["FailureReason"] = failure_reason(fields["FailureReason"])
        return self.emulator.state.update(KIND, name, LastModifiedTime=time.time(), **fields)

    def deploy(self, name: str, config: dict[str, Any], final_status: str = "InService") -> None:
        """Start (or replace) the processes of ``name`` for ``config`` on a background thread.

        If the thread cannot even start, the endpoint leaves ``Creating``/``Updating`` at once (``Failed``,
        or back to ``InService`` for an update) with the reason: never a status nothing will ever change.
        """
        try:
            threading.Thread(target=self._deploy, args=(name, config, final_status), name=f"deploy-{name}",
                             daemon=True).start()
        except Exception as exc:  # noqa: BLE001 - "can't start new thread"
            log.exception("deploying endpoint %s could not start", name)
            status = "InService" if self.live.get(name) is not None and self.live[name].variants else "Failed"
            self._set(name, EndpointStatus=status, FailureReason=f"InternalServerError: {exc}")

    def _deploy(self, name: str, config: dict[str, Any], final_status: str) -> None:
        with self._lock:
            live = self.live.get(name) or LiveEndpoint(self.emulator, name)
            self.live[name] = live
        # A failed update leaves the previous variants serving: back to InService with the reason, as
        # SageMaker rolls back; a failed creation ends Failed.
        failed = "InService" if live.variants else "Failed"
        try:
            live.deploy(config)
        except EndpointFailure as exc:
            self._set(name, EndpointStatus=failed, FailureReason=str(exc))
            return
        except Exception as exc:  # an emulator bug still ends with a readable reason
            log.exception("deploying endpoint %s failed", name)
            self._set(name, EndpointStatus=failed, FailureReason=f"InternalServerError: {exc}")
            return
        self._set(name, EndpointStatus=final_status, EndpointConfigName=config["EndpointConfigName"],
                  FailureReason=None)

    def scale(self, name: str, counts: dict[str, int]) -> None:
        """Change variants' instance counts in the background: ``Updating`` until the new ones answer."""
        self._set(name, EndpointStatus="Updating")
        threading.Thread(target=self._scale, args=(name, counts), name=f"scale-{name}", daemon=True).start()

    def _scale(self, name: str, counts: dict[str, int]) -> None:
        live = self.live.get(name)
        try:
            if live is not None:
                live.scale(counts)
        except Exception as exc:  # the endpoint keeps serving with the instances it had, as SageMaker rolls back
            log.warning("scaling endpoint %s failed: %s", name, exc)
            self._set(name, EndpointStatus="InService", FailureReason=f"Scaling failed: {exc}")
            return
        self._set(name, EndpointStatus="InService", FailureReason=None)

    def get(self, name: str) -> LiveEndpoint | None:
        return self.live.get(name)

    def delete(self, name: str) -> None:
        with self._lock:
            live = self.live.pop(name, None)
        if live is not None:
            live.stop()

    def recover(self) -> None:
        """Endpoints that were ``InService`` (or being created) come back up after a daemon restart."""
        for record in self.emulator.state.all(KIND):
            if record.get("EndpointStatus") in ("InService", "Creating", "Updating"):
                config = self.emulator.state.get("EndpointConfig", record["EndpointConfigName"])
                if config is None:
                    self._set(record["EndpointName"], EndpointStatus="Failed",
                              FailureReason="The endpoint configuration no longer exists.")
                    continue
                self._set(record["EndpointName"], EndpointStatus="Creating")
                self.deploy(record["EndpointName"], config)
            elif record.get("EndpointStatus") == "Deleting":
                self.emulator.state.delete(KIND, record["EndpointName"])

    def shutdown(self) -> None:
        with self._lock:
            live = list(self.live.values())
            self.live.clear()
        for endpoint in live:
            endpoint.stop()
