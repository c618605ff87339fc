"""A processing job: stage ``ProcessingInputs``, run the container command, upload outputs.

The command is the job's ``ContainerEntrypoint`` + ``ContainerArguments``
with ``/opt/ml`` rewritten to the instance directory, run by the local
interpreter (which stands in for the scikit-learn/XGBoost image's Python).
"""

from __future__ import annotations

import json
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ..images.registry import resolve, supported_images_text
from . import staging
from .container import Container, LogSink, container_environment, host_path, rewrite, rewrite_tree
from .records import transition

KIND = "ProcessingJob"
LOG_GROUP = "/aws/sagemaker/ProcessingJobs"
PROCESSING_ROOT = "/opt/ml/processing"


def _local(local_path: str, base: Path) -> Path:
    """A ``LocalPath`` of the job on the host; SageMaker allows only paths under ``/opt/ml/processing/``."""
    try:
        return host_path(local_path, base, PROCESSING_ROOT)
    except ValueError:
        raise staging.StagingError(f"LocalPath {local_path} must be a path under {PROCESSING_ROOT}/.") from None


def _is_code(local_path: str) -> bool:
    """Inputs the SDK uses for scripts (``…/input/code``, ``…/entrypoint``), rewritten like training code."""
    return local_path.rstrip("/").endswith(("/code", "/entrypoint")) or "/input/code/" in local_path


class ProcessingRun:
    def __init__(self, emulator: Any, name: str) -> None:
        self.emulator = emulator
        self.name = name
        self.record: dict[str, Any] = emulator.state.get(KIND, name) or {}
        self.root = emulator.paths.jobs / "processing" / name
        self.containers: list[Container] = []
        self.stop_requested = threading.Event()
        self.stop_reason = "Stopped"
        self.started_at = time.time()

    def _set(self, status: str | None = None, **fields: Any) -> None:
        record = transition(self.emulator.state, KIND, self.name, status, **fields)
        if record is not None:
            self.record = record

    @property
    def instance_count(self) -> int:
        return int(self.record["ProcessingResources"]["ClusterConfig"].get("InstanceCount", 1))

    def hosts(self) -> list[str]:
        return [f"algo-{i + 1}" for i in range(self.instance_count)]

    def run(self) -> None:
        try:
            self._set(ProcessingStartTime=time.time())
            uri = self.record["AppSpecification"]["ImageUri"]
            if resolve(uri) is None:
                raise staging.StagingError(f'The emulator cannot run the image "{uri}". {supported_images_text()}')
            bases = [self._prepare(i, host) for i, host in enumerate(self.hosts())]
            codes = self._run(bases)
            if self.stop_requested.is_set():
                if self.stop_reason.startswith("InternalServerError"):
                    self._finish("Failed", FailureReason=self.stop_reason)
                else:
                    self._finish("Stopped")
                return
            message = self._exit_message(bases)
            bad = [(i, c) for i, c in enumerate(codes) if c != 0]
            if bad:
                index, code = bad[0]
                tail = [line for line in self.containers[index].tail if line.strip()][-3:]
                detail = " | ".join(tail) if tail else "no output"
                self._finish("Failed", ExitMessage=message,
                             FailureReason=f"AlgorithmError: See job logs for more information. "
                                           f"Exit code {code}. Last output: {detail}"[:1024])
                return
            self._upload(bases)
            self._finish("Completed", ExitMessage=message)
        except staging.StagingError as exc:
            self._finish("Failed", FailureReason=f"ClientError: {exc}"[:1024])
        except Exception as exc:
            import logging

            logging.getLogger(__name__).exception("processing job %s crashed", self.name)
            self._finish("Failed", FailureReason=f"InternalServerError: {type(exc).__name__}: {exc}")
        finally:
            for container in self.containers:
                container.stop(0.5)

    def _prepare(self, index: int, host: str) -> Path:
        base = self.root / host
        if base.exists():
            shutil.rmtree(base)
        (base / "config").mkdir(parents=True)
        (base / "output").mkdir(parents=True)
        public = {k: v for k, v in self.record.items() if not k.startswith("_")}
        (base / "config" / "processingjobconfig.json").write_text(json.dumps(public, default=str))
        (base / "config" / "resourceconfig.json").write_text(
            json.dumps({"current_host": host, "hosts": self.hosts()}))
        for item in self.record.get("ProcessingInputs") or []:
            source = item.get("S3Input")
            if source is None:
                raise staging.StagingError(
                    f"Processing input {item.get('InputName')}: only S3Input is supported by the emulator.")
            dest = _local(source.get("LocalPath") or PROCESSING_ROOT, base)
            staging.stage_prefix(
                self.emulator.s3.store, source["S3Uri"], dest,
                sharded=source.get("S3DataDistributionType") == "ShardedByS3Key",
                instance=index, instances=self.instance_count,
                gzip_input=source.get("S3CompressionType") == "Gzip",
                role_arn=self.record.get("RoleArn", ""), region=self.emulator.region,
            )
            if _is_code(source.get("LocalPath") or ""):
                rewrite_tree(dest, base)
        for item in (self.record.get("ProcessingOutputConfig") or {}).get("Outputs") or []:
            if item.get("S3Output"):
                _local(item["S3Output"]["LocalPath"], base).mkdir(parents=True, exist_ok=True)
        return base

    def _run(self, bases: list[Path]) -> list[int]:
        spec = self.record["AppSpecification"]
        entry = spec.get("ContainerEntrypoint") or ["python3"]
        args = spec.get("ContainerArguments") or []
        stamp = int(self.started_at)
        pids = []
        for base, host in zip(bases, self.hosts(), strict=True):
            env = container_environment(self.emulator, base, sys.executable, self.record.get("Environment"),
                                        {"PROCESSING_JOB_NAME": self.name})
            sink = LogSink(self.emulator.logs, LOG_GROUP, f"{self.name}/{host}-{stamp}")
            command = [rewrite(part, base) for part in [*entry, *args]]
            container = Container(command, base, env, sink, None)
            self.containers.append(container)
            pids.append(container.start())
        self._set(_pids=pids)
        limit = float((self.record.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds") or 86400)
        deadline = self.started_at + limit
        codes: list[int | None] = [None] * len(self.containers)
        while any(c is None for c in codes):
            for i, container in enumerate(self.containers):
                if codes[i] is None:
                    codes[i] = container.wait(0.05)
            if self.stop_requested.is_set() or time.time() > deadline:
                self.stop_requested.set()
                for container in self.containers:
                    container.stop()
                break
        return [c if c is not None else -1 for c in codes]

    def _exit_message(self, bases: list[Path]) -> str | None:
        parts = []
        for base in bases:
            path = base / "output" / "message"
            if path.exists():
                parts.append(path.read_bytes()[:1024].decode("utf-8", "replace"))
        return "".join(parts)[:1024] or None

    def _upload(self, bases: list[Path]) -> None:
        outputs = (self.record.get("ProcessingOutputConfig") or {}).get("Outputs") or []
        for base in bases:
            for item in outputs:
                target = item.get("S3Output")
                if target:
                    staging.upload_tree(self.emulator.s3.store, _local(target["LocalPath"], base),
                                        target["S3Uri"], root=base)

    def _finish(self, status: str, **fields: Any) -> None:
        self._set(status, ProcessingEndTime=time.time(), _pids=None, **fields)

    def stop(self, reason: str = "Stopped") -> None:
        self.stop_reason = reason
        self.stop_requested.set()
