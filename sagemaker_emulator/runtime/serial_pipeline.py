"""A model of several containers: a serial inference pipeline, or containers invoked directly by host name.

``CreateModel`` with ``Containers`` runs them all on each instance, each its own model server.
``InferenceExecutionConfig.Mode``:

* ``Serial`` (the default): a request goes to the first container; each container's answer is the
  next one's request, sent with the answer's ``Content-Type``; the request's ``Accept`` goes to every
  container; the last answer is the response. A container that answers with an error ends the chain,
  and the error names that container.
* ``Direct``: ``InvokeEndpoint`` names one container with ``TargetContainerHostname``; only it runs.

``PipelineInstance`` has the interface of one model-server ``Instance`` (start, ping, post, stop …), so
endpoints and batch transform use either without knowing which.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .container import Container, LogSink
    from .model_instance import Instance

#: the header the runtime uses to pass ``TargetContainerHostname`` down; never forwarded to a container
TARGET_HOST_HEADER = "X-Amzn-SageMaker-Target-Container-Hostname"


def hostnames(model: dict[str, Any]) -> list[str]:
    """Each container's ``ContainerHostname``; SageMaker calls one without it ``container-<n>`` (1-based)."""
    return [c.get("ContainerHostname") or f"container-{i + 1}" for i, c in enumerate(model.get("Containers") or [])]


def execution_mode(model: dict[str, Any]) -> str:
    return (model.get("InferenceExecutionConfig") or {}).get("Mode") or "Serial"


class PipelineInstance:
    """The model servers of one instance of a multi-container model."""

    def __init__(self, members: list[Instance], hosts: list[str], mode: str) -> None:
        self.members = members
        self.hosts = hosts
        self.mode = mode
        self.variant = members[0].variant
        self.index = members[0].index
        self.sink: LogSink = members[0].sink
        self.restarts = 0
        self._local = threading.local()

    # ------------------------------------------------------------ what an Instance offers
    @property
    def base(self) -> Any:
        return self.members[0].base.parent

    @property
    def port(self) -> int:
        return self.members[0].port

    @property
    def container(self) -> Container | None:
        """A stopped member's container if there is one (the instance is then down), else the first's."""
        containers = [m.container for m in self.members]
        if any(c is None for c in containers):
            return None
        dead = [c for c in containers if c.process is None or c.process.returncode is not None]
        return dead[0] if dead else containers[0]

    def start(self) -> None:
        for member in self.members:
            if not member.alive():
                member.start()

    def alive(self) -> bool:
        return all(member.alive() for member in self.members)

    def pids(self) -> list[int]:
        return [pid for member in self.members for pid in member.pids()]

    def failure_line(self) -> str | None:
        for host, member in zip(self.hosts, self.members, strict=True):
            if not member.alive():
                return f"container {host}: {member.failure_line() or 'exited'}"
        return None

    def ping(self, timeout: float = 2.0) -> bool:
        return all(member.ping(timeout) for member in self.members)

    def drop_connection(self) -> None:
        for member in self.members:
            member.drop_connection()

    def stop(self) -> None:
        for member in self.members:
            member.stop()

    def source(self) -> str:
        """The container whose answer this thread's last ``post`` returned (named in a ``ModelError``)."""
        return getattr(self._local, "source", self.hosts[-1])

    def post(self, path: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int, str, bytes]:
        headers = dict(headers)
        target = headers.pop(TARGET_HOST_HEADER, None)
        if self.mode == "Direct":
            index = self.hosts.index(target) if target in self.hosts else 0
            self._local.source = self.hosts[index]
            return self.members[index].post(path, body, headers, timeout)
        status, content_type = 200, headers.get("Content-Type", "")
        for host, member in zip(self.hosts, self.members, strict=True):
            self._local.source = host
            status, content_type, body = member.post(path, body, headers, timeout)
            if status >= 400:
                break
            headers["Content-Type"] = content_type or "application/octet-stream"
        return status, content_type, body
