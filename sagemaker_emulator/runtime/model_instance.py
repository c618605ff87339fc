"""One model-server process for a SageMaker model: staging its artifacts and code, starting, pinging.

Shared by real-time endpoints (one per variant instance) and batch transform
(one per transform instance): both run the image's ``serve`` command with the
model extracted under ``<base>/model`` and speak the inference contract over
loopback HTTP.
"""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import tarfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..images.registry import resolve, supported_images_text
from . import staging
from .container import Container, LogSink, container_environment, free_port

_MAX_LINE = 65537


class ModelStartFailure(Exception):
    """The model could not be staged or its server could not start; the message says why."""


@dataclass
class Instance:
    """One model-server process for one variant instance."""

    variant: str
    index: int
    base: Path
    command: list[str]
    env: dict[str, str]
    sink: LogSink
    port: int = 0
    container: Container | None = None
    restarts: int = 0
    warm: Any = None  # the emulator's WarmPool: model servers fork from a warm worker too
    _local: threading.local = field(default_factory=threading.local)

    def start(self) -> None:
        self.port = free_port()
        env = {**self.env, "SAGEMAKER_BIND_TO_PORT": str(self.port)}
        self.container = Container(self.command, self.base, env, self.sink, None)
        self.container.warm = self.warm
        self.container.start()
        self._local = threading.local()

    def alive(self) -> bool:
        return self.container is not None and self.container.process is not None and \
            self.container.process.poll() is None

    def failure_line(self) -> str | None:
        tail = self.container.tail if self.container else []
        for line in reversed(tail):
            if line.startswith("FAILURE:"):
                return line[len("FAILURE:"):].strip()
        meaningful = [line for line in tail if line.strip()]
        return meaningful[-1] if meaningful else None

    def ping(self, timeout: float = 2.0) -> bool:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
            conn.request("GET", "/ping")
            ok = conn.getresponse().status == 200
            conn.close()
            return ok
        except OSError:
            return False

    def connection(self, timeout: float) -> http.client.HTTPConnection:
        """A keep-alive connection per calling thread, so concurrent requests never share one."""
        conn = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "port", None) != self.port:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
            self._local.conn, self._local.port = conn, self.port
        return conn

    def drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
        self._local.conn = None
        channel = getattr(self._local, "channel", None)
        if channel is not None:
            channel[0].close()
        self._local.channel = None

    def post(self, path: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int, str, bytes]:
        """``POST path`` on this thread's keep-alive socket: (status, content type, body).

        Why not ``http.client``: it writes the head and the body separately (two wake-ups of the model
        server, two GIL hand-offs here) and parses every response head with the ``email`` package; this
        is the endpoint hot path, and the peer is our own model server, which always answers with
        ``Content-Length`` (chunked answers are read too, for safety).
        """
        channel = getattr(self._local, "channel", None)
        if channel is None or channel[2] != self.port:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            channel = (sock, sock.makefile("rb"), self.port)
            self._local.channel = channel
        sock, rfile, _ = channel
        sock.settimeout(timeout)
        head = [f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nContent-Length: {len(body)}\r\n"]
        head.extend(f"{name}: {value}\r\n" for name, value in headers.items())
        head.append("\r\n")
        sock.sendall("".join(head).encode("latin-1") + body)
        status_line = rfile.readline(_MAX_LINE)
        if not status_line:
            raise ConnectionResetError("the model server closed the connection")
        status = int(status_line.split(None, 2)[1])
        length, content_type, close, chunked = -1, "", False, False
        while True:
            line = rfile.readline(_MAX_LINE)
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.strip().lower(), value.strip()
            if name == "content-length":
                length = int(value)
            elif name == "content-type":
                content_type = value
            elif name == "connection":
                close = value.lower() == "close"
            elif name == "transfer-encoding":
                chunked = "chunked" in value.lower()
        if chunked:
            data = _read_chunked(rfile)
        elif length >= 0:
            data = rfile.read(length)
            if len(data) < length:
                raise ConnectionResetError("the model server closed the connection mid-response")
        else:
            data, close = rfile.read(), True
        if close:
            self.drop_connection()
        return status, content_type, data

    def stop(self) -> None:
        if self.container is not None:
            self.container.stop(2.0)

    def pids(self) -> list[int]:
        """The process (group) ids to kill if the emulator dies under this instance."""
        process = self.container.process if self.container else None
        return [process.pid] if process is not None else []

    def source(self) -> str:
        """Who answered, as ``ModelError`` names it: a single-container model's container is the primary."""
        return "primary"


def _read_chunked(rfile: Any) -> bytes:
    parts = []
    while True:
        size = int(rfile.readline(_MAX_LINE).split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while rfile.readline(_MAX_LINE) not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(parts)
        parts.append(rfile.read(size))
        rfile.readline(_MAX_LINE)


def model_containers(model: dict[str, Any]) -> list[dict[str, Any]]:
    """A model's containers: its ``PrimaryContainer``, or its ``Containers`` in order (a pipeline)."""
    return [model["PrimaryContainer"]] if model.get("PrimaryContainer") else list(model.get("Containers") or [{}])


def prepare_instance(emulator: Any, model: dict[str, Any], base: Path, *, log_group: str, stream: str,
                     label: str, variant: str = "", index: int = 0,
                     extra_env: dict[str, str] | None = None) -> Instance:
    """Stage ``model`` under ``base`` and return its (not yet started) model-server instance.

    A model of several ``Containers`` gets one model server per container, staged under
    ``base/<ContainerHostname>`` and run together as a :class:`.pipeline.PipelineInstance`.
    """
    containers = model_containers(model)
    if len(containers) == 1:
        return _prepare_container(emulator, containers[0], base, log_group=log_group, stream=stream, label=label,
                                  variant=variant, index=index, extra_env=extra_env)
    from .serial_pipeline import PipelineInstance, execution_mode, hostnames

    hosts = hostnames(model)
    members = [_prepare_container(emulator, container, base / host, log_group=log_group, stream=f"{stream}/{host}",
                                  label=f"container {host} of {label}", variant=variant, index=index,
                                  extra_env=extra_env)
               for host, container in zip(hosts, containers, strict=True)]
    return PipelineInstance(members, hosts, execution_mode(model))  # type: ignore[return-value]


def _prepare_container(emulator: Any, container: dict[str, Any], base: Path, *, log_group: str, stream: str,
                       label: str, variant: str, index: int, extra_env: dict[str, str] | None) -> Instance:
    """One container's model server: its model data and code staged under ``base``."""
    image = resolve(container.get("Image", ""))
    if image is None:
        raise ModelStartFailure(f'The emulator cannot serve the image "{container.get("Image")}". '
                                f"{supported_images_text()}")
    (base / "model").mkdir(parents=True)
    (base / "code").mkdir()
    if container.get("ModelDataUrl"):
        _extract(emulator, container["ModelDataUrl"], base / "model")
    environment = dict(container.get("Environment") or {})
    submit = environment.get("SAGEMAKER_SUBMIT_DIRECTORY", "")
    try:
        staging.check_code_location(submit, "SAGEMAKER_SUBMIT_DIRECTORY")
        if submit.startswith("s3://"):
            staging.extract_tarball(emulator.s3.store, submit, base / "code")
    except staging.StagingError as exc:
        raise ModelStartFailure(str(exc)) from None
    sink = LogSink(emulator.logs, log_group, stream)
    python = _python(emulator, base, emulator.image_envs.python_for(image, sink.write))
    env = container_environment(emulator, base, python, environment, {
        "SM_EMULATOR_FRAMEWORK": image.framework, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
        **({"SM_EMULATOR_LEGACY_ALGORITHM": "1"} if image.legacy else {}), **(extra_env or {})})
    sink.write(f"Local emulator: serving {image.describe_local()} as {label}")
    command = [python, "-m", "sagemaker_emulator.images.model_server", "serve"]
    return Instance(variant, index, base, command, env, sink, warm=getattr(emulator, "warm", None))


def _extract(emulator: Any, url: str, dest: Path) -> None:
    bucket, key = staging.parse_s3_uri(url)
    try:
        path = emulator.s3.store.object_path(bucket, key)
    except Exception as exc:
        raise ModelStartFailure(f"Could not access model data at {url}.") from exc
    if not key.endswith((".tar.gz", ".tgz", ".tar")):
        name = key.rsplit("/", 1)[-1]
        if name in ("", ".", ".."):
            raise ModelStartFailure(f"Model data at {url} does not name a file.")
        shutil.copyfile(path, dest / name)
        return
    try:
        staging.safe_extract(path, dest)  # members outside ``dest`` (absolute, "..", links out) are refused
    except (tarfile.TarError, OSError) as exc:
        raise ModelStartFailure(f"Could not extract model data at {url}: {exc}") from exc


def _python(emulator: Any, base: Path, image_python: str) -> str:
    """The image environment's interpreter, or a venv layered on it with the model code's requirements."""
    from .pyenvs import PipInstallError, has_requirements, python_for_requirements

    for candidate in (base / "model" / "code" / "requirements.txt", base / "code" / "requirements.txt"):
        if has_requirements(candidate):
            try:
                return str(python_for_requirements(candidate, emulator.paths.cache, image_python))
            except PipInstallError as exc:
                raise ModelStartFailure(f"Installing requirements.txt failed: {exc}") from exc
    return image_python
