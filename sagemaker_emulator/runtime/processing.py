"""A processing job: stage ``ProcessingInputs``, run the container command, upload outputs.

The command is the job's ``ContainerEntrypoint`` + ``ContainerArguments``
with ``/opt/ml`` rewritten to the instance directory, run by the local
interpreter of the image's environment (``runtime.imageenvs``: the image's own pandas, numpy …).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..images.registry import Image, processing_command, resolve, supported_images_text
from . import staging
from .container import Container, LogSink, container_environment, host_path, rewrite, rewrite_tree
from .job import JobFailure, JobRun, Outcome

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


class ProcessingRun(JobRun):
    """Runs one processing job: one container process per instance of its cluster."""

    KIND = "ProcessingJob"
    START_FIELD = "ProcessingStartTime"
    END_FIELD = "ProcessingEndTime"
    WORK_FOLDER = "processing"
    RESOURCES = ("ProcessingResources", "ClusterConfig")

    def execute(self) -> Outcome:
        uri = self.record["AppSpecification"]["ImageUri"]
        image = resolve(uri)
        if image is None:
            raise JobFailure(f'ClientError: The emulator cannot run the image "{uri}". {supported_images_text()}')
        bases = [self._prepare(i, host) for i, host in enumerate(self.hosts())]
        codes = self._run(bases, image)
        self._check_stop()
        message = self._exit_message(bases)
        bad = [(i, c) for i, c in enumerate(codes) if c != 0]
        if bad:
            index, code = bad[0]
            tail = [line for line in self.containers[index].tail if line.strip()][-3:]
            detail = " | ".join(tail) if tail else "no output"
            return Outcome.failed(f"AlgorithmError: See job logs for more information. "
                                  f"Exit code {code}. Last output: {detail}", ExitMessage=message)
        self._upload(bases)
        return Outcome("Completed", {"ExitMessage": message})

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
            self._stage(source, dest, index, gzip_input=source.get("S3CompressionType") == "Gzip")
            if _is_code(source.get("LocalPath") or ""):
                rewrite_tree(dest, base)
        for item in (self.record.get("ProcessingOutputConfig") or {}).get("Outputs") or []:
            if item.get("S3Output"):
                _local(item["S3Output"]["LocalPath"], base).mkdir(parents=True, exist_ok=True)
        return base

    def _command(self, base: Path) -> list[str]:
        """The container's command: ``ContainerEntrypoint`` + ``ContainerArguments``, ``/opt/ml`` rewritten."""
        spec = self.record["AppSpecification"]
        entry = spec.get("ContainerEntrypoint") or self._image_command() or ["python3"]
        return [rewrite(part, base) for part in [*entry, *(spec.get("ContainerArguments") or [])]]

    def _image_command(self) -> list[str] | None:
        """The image's own program (Clarify), in the image's environment, built on first use."""
        from .pyenvs import PipInstallError

        image = resolve(self.record["AppSpecification"]["ImageUri"])
        try:
            return processing_command(image, self.emulator.paths.cache) if image else None
        except PipInstallError as exc:
            raise JobFailure(f"AlgorithmError: The environment of the image {image.uri} could not be built: "
                             f"{exc}") from exc

    def _run(self, bases: list[Path], image: Image) -> list[int]:
        stamp = int(self.started_at)
        sinks = [LogSink(self.emulator.logs, LOG_GROUP, f"{self.name}/{host}-{stamp}") for host in self.hosts()]
        python = self.emulator.image_envs.python_for(image, lambda line: [s.write(line) for s in sinks])
        self._check_stop()
        containers = []
        for base, sink in zip(bases, sinks, strict=True):
            env = container_environment(self.emulator, base, python, self.record.get("Environment"),
                                        {"PROCESSING_JOB_NAME": self.name})
            command = self._command(base)
            warm = getattr(self.emulator, "warm", None)
            if image.framework == "clarify" and warm is not None and \
                    not self.record["AppSpecification"].get("ContainerEntrypoint"):
                from ..images.clarify import PRELOAD

                warm.serve(command[0], PRELOAD)  # the image's environment: its jobs fork from a warm worker
            containers.append(Container(command, base, env, sink, None))
        self._start_containers(containers)
        return self._wait_for_containers()

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
