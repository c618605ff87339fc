"""A training job from ``InProgress`` to ``Completed``/``Failed``/``Stopped``, locally.

Mirrors the platform's steps: launch instances (``Starting``), download
channels (``Downloading``), run the image's program with the container
contract remapped to a per-instance directory (``Training``), upload
``model.tar.gz`` and ``output.tar.gz`` (``Uploading``), and finish with
SageMaker's fields (``FailureReason``, ``FinalMetricDataList``,
``ModelArtifacts``, billable seconds).
"""

from __future__ import annotations

import json
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ..images.registry import Image, resolve, supported_images_text
from . import staging
from .container import (
    Container,
    LogSink,
    MetricParser,
    container_environment,
    free_port,
    host_path,
    rewrite,
    rewrite_tree,
)
from .records import transition

KIND = "TrainingJob"
LOG_GROUP = "/aws/sagemaker/TrainingJobs"
FAILURE_LIMIT = 1024


class JobFailure(Exception):
    """Ends the job ``Failed`` with this reason (already in SageMaker's wording)."""



class TrainingRun:
    """Runs one training job; ``stop()`` may be called from any thread."""

    def __init__(self, emulator: Any, name: str) -> None:
        self.emulator = emulator
        self.name = name
        self.record: dict[str, Any] = emulator.state.get(KIND, name) or {}
        self.root = emulator.paths.jobs / "training" / name
        self.containers: list[Container] = []
        self.stop_requested = threading.Event()
        self.stop_reason = "Stopped"
        self.metrics = MetricParser(self._metric_definitions())
        self.started_at = time.time()

    # ------------------------------------------------------------ helpers
    def _metric_definitions(self) -> list[dict[str, str]]:
        return list(self.record.get("AlgorithmSpecification", {}).get("MetricDefinitions") or [])

    def _set(self, status: str | None = None, secondary: str | None = None, **fields: Any) -> None:
        record = transition(self.emulator.state, KIND, self.name, status, secondary, **fields)
        if record is not None:
            self.record = record

    @property
    def instance_count(self) -> int:
        return int(self.record["ResourceConfig"].get("InstanceCount", 1))

    def hosts(self) -> list[str]:
        return [f"algo-{i + 1}" for i in range(self.instance_count)]

    # ------------------------------------------------------------ lifecycle
    def run(self) -> None:
        try:
            self._set(secondary="Starting", TrainingStartTime=time.time())
            image = self._image()
            self._check_stop()
            self._set(secondary="Downloading")
            bases = [self._prepare_instance(i, host) for i, host in enumerate(self.hosts())]
            self._check_stop()
            self._set(secondary="Training")
            codes = self._train(image, bases)
            if self.stop_requested.is_set():
                self._finish_stopped(bases[0])
                return
            failed = [(i, c) for i, c in enumerate(codes) if c != 0]
            if failed:
                raise JobFailure(self._failure_reason(bases[failed[0][0]], failed[0][1], failed[0][0]))
            self._set(secondary="Uploading")
            self._upload(bases[0])
            self._finish("Completed", "Completed")
        except JobFailure as failure:
            self._finish("Failed", "Failed", FailureReason=str(failure)[:FAILURE_LIMIT])
        except staging.StagingError as exc:
            self._finish("Failed", "Failed", FailureReason=f"ClientError: {exc}"[:FAILURE_LIMIT])
        except _Stopped:
            self._finish_stopped(None)
        except Exception as exc:  # an emulator bug still ends the job with a readable reason
            import logging

            logging.getLogger(__name__).exception("training job %s crashed", self.name)
            self._finish("Failed", "Failed", FailureReason=f"InternalServerError: {type(exc).__name__}: {exc}")
        finally:
            for container in self.containers:
                container.stop(0.5)

    def _check_stop(self) -> None:
        if self.stop_requested.is_set():
            raise _Stopped()

    def _image(self) -> Image:
        spec = self.record["AlgorithmSpecification"]
        uri = spec.get("TrainingImage") or ""
        image = resolve(uri)
        if image is None:
            what = f'image "{uri}"' if uri else f'algorithm "{spec.get("AlgorithmName")}"'
            raise JobFailure(f"ClientError: The emulator cannot run the {what}. {supported_images_text()}")
        return image

    def _prepare_instance(self, index: int, host: str) -> Path:
        base = self.root / host
        if base.exists():
            shutil.rmtree(base)
        for sub in ("input/config", "input/data", "model", "output/data", "code", "checkpoints"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        record = self.record
        hps = dict(record.get("HyperParameters") or {})
        config = base / "input" / "config"
        (config / "hyperparameters.json").write_text(json.dumps(hps))
        data_config = {}
        for channel in record.get("InputDataConfig") or []:
            entry = {
                "TrainingInputMode": channel.get("InputMode") or record["AlgorithmSpecification"].get(
                    "TrainingInputMode", "File"),
                "S3DistributionType": channel["DataSource"].get("S3DataSource", {}).get(
                    "S3DataDistributionType", "FullyReplicated"),
                "RecordWrapperType": channel.get("RecordWrapperType", "None"),
            }
            if channel.get("ContentType"):
                entry["ContentType"] = channel["ContentType"]
            data_config[channel["ChannelName"]] = entry
            self._stage_channel(channel, self._channel_dir(base, channel["ChannelName"]), index)
        (config / "inputdataconfig.json").write_text(json.dumps(data_config))
        resource = {
            "current_host": host, "current_instance_type": record["ResourceConfig"].get("InstanceType"),
            "current_group_name": "homogeneousCluster", "hosts": self.hosts(), "network_interface_name": "eth0",
            "instance_groups": [{"instance_group_name": "homogeneousCluster",
                                 "instance_type": record["ResourceConfig"].get("InstanceType"),
                                 "hosts": self.hosts()}],
        }
        (config / "resourceconfig.json").write_text(json.dumps(resource))
        checkpoint = record.get("CheckpointConfig")
        if checkpoint:
            local = checkpoint.get("LocalPath") or "/opt/ml/checkpoints"
            try:
                checkpoint_dir = host_path(local, base)
            except ValueError:
                raise staging.StagingError(
                    f"CheckpointConfig.LocalPath {local} must be a path under /opt/ml/.") from None
            (config / "checkpointconfig.json").write_text(json.dumps({
                "LocalPath": str(checkpoint_dir), "S3Uri": checkpoint["S3Uri"]}))
        submit = hps.get("sagemaker_submit_directory", "").strip('"')
        staging.check_code_location(submit, "The hyperparameter sagemaker_submit_directory")
        if submit.startswith("s3://"):
            staging.extract_tarball(self.emulator.s3.store, submit, base / "code")
        for code_dir in (base / "code", base / "input" / "data" / "code", base / "input" / "data" / "sm_drivers"):
            if code_dir.exists():
                rewrite_tree(code_dir, base)  # a staged copy: scripts that hard-code /opt/ml run unchanged
        return base

    @staticmethod
    def _channel_dir(base: Path, name: str) -> Path:
        """``/opt/ml/input/data/<channel>``; a name that is no directory name (``..``) never leaves it."""
        if name in ("", ".", "..") or "/" in name or "\x00" in name:
            raise staging.StagingError(f"Channel name {name!r} cannot be used as a directory name.")
        return base / "input" / "data" / name

    def _stage_channel(self, channel: dict[str, Any], dest: Path, index: int) -> None:
        source = channel["DataSource"].get("S3DataSource")
        if source is None:
            raise staging.StagingError(
                f"Channel {channel['ChannelName']}: only S3 data sources are supported by the emulator."
            )
        if source.get("S3DataType", "S3Prefix") != "S3Prefix":
            raise staging.StagingError(
                f"Channel {channel['ChannelName']}: S3DataType {source['S3DataType']} is not supported locally; "
                "use S3Prefix."
            )
        staging.stage_prefix(
            self.emulator.s3.store, source["S3Uri"], dest,
            sharded=source.get("S3DataDistributionType") == "ShardedByS3Key",
            instance=index, instances=self.instance_count,
            gzip_input=channel.get("CompressionType") == "Gzip",
            role_arn=self.record.get("RoleArn", ""), region=self.emulator.region,
        )

    def _command(self, image: Image, base: Path) -> list[str]:
        spec = self.record["AlgorithmSpecification"]
        entry = spec.get("ContainerEntrypoint")
        if entry:
            return [rewrite(part, base) for part in [*entry, *(spec.get("ContainerArguments") or [])]]
        hps = self.record.get("HyperParameters") or {}
        if "sagemaker_program" in hps:
            return [sys.executable, "-m", "sagemaker_emulator.images.script_mode", "train"]
        if image.framework == "xgboost":
            return [sys.executable, "-m", "sagemaker_emulator.images.xgboost_algorithm", "train"]
        raise JobFailure(
            f"ClientError: The image {image.uri} runs in script mode only: set the hyperparameter "
            "sagemaker_program (the SDK's SourceCode/entry_point does this) or a ContainerEntrypoint."
        )

    def _python(self, base: Path) -> str:
        """The interpreter ``python3`` means inside this job's "container".

        The SDK V3 ``SourceCode`` drivers pip-install ``requirements.txt`` into whatever
        ``python3`` is; pointing it at a venv cached per requirements hash makes that install
        happen once per content, not per run, and never touch the emulator's own environment.
        """
        from .pyenvs import PipInstallError, has_requirements, python_for_requirements

        requirements = base / "input" / "data" / "code" / "requirements.txt"
        if not self.record["AlgorithmSpecification"].get("ContainerEntrypoint") or not has_requirements(
                requirements):
            return sys.executable
        try:
            return str(python_for_requirements(requirements, self.emulator.paths.cache))
        except PipInstallError as exc:
            raise JobFailure(f"AlgorithmError: InstallRequirementsError: {exc}") from exc

    def _environment(self, base: Path, host: str, tracker_port: int, python: str) -> dict[str, str]:
        return container_environment(self.emulator, base, python, self.record.get("Environment"), {
            "TRAINING_JOB_NAME": self.name,
            "TRAINING_JOB_ARN": self.record["TrainingJobArn"],
            "SM_EMULATOR_TRACKER_PORT": str(tracker_port),
            "SM_EMULATOR_CACHE_DIR": str(self.emulator.paths.cache),
            "SM_CURRENT_HOST": host,
            "PYTHONDONTWRITEBYTECODE": "1",
        })

    def _train(self, image: Image, bases: list[Path]) -> list[int]:
        tracker_port = free_port()
        stamp = int(self.started_at)
        python = self._python(bases[0])
        pids = []
        for base, host in zip(bases, self.hosts(), strict=True):
            sink = LogSink(self.emulator.logs, LOG_GROUP, f"{self.name}/{host}-{stamp}")
            sink.write(f"Local emulator: running {image.describe_local()} as instance {host}")
            env = self._environment(base, host, tracker_port, python)
            container = Container(self._command(image, base), base, env, sink, self.metrics)
            self.containers.append(container)
            pids.append(container.start())
        self._set(_pids=pids)
        limit = float(self.record.get("StoppingCondition", {}).get("MaxRuntimeInSeconds") or 86400)
        deadline = self.started_at + limit
        codes: list[int | None] = [None] * len(self.containers)
        while any(c is None for c in codes):
            for i, container in enumerate(self.containers):
                if codes[i] is None:
                    codes[i] = container.wait(0.05)
            if self.stop_requested.is_set():
                break
            if time.time() > deadline:
                self.stop_reason = "MaxRuntimeExceeded"
                self.stop_requested.set()
                break
            self._publish_metrics()
        if self.stop_requested.is_set():
            for container in self.containers:
                container.stop()
            return [c.wait(5) or 0 for c in self.containers]
        self._publish_metrics()
        return [int(c) for c in codes if c is not None]

    def _publish_metrics(self) -> None:
        final = self.metrics.final_metric_data()
        if final and final != self.record.get("FinalMetricDataList"):
            self._set(FinalMetricDataList=final)

    def _failure_reason(self, base: Path, code: int, index: int) -> str:
        failure = base / "output" / "failure"
        text = failure.read_text(errors="replace").strip() if failure.exists() else ""
        if not text:
            tail = [line for line in self.containers[index].tail if line.strip()][-3:]
            detail = " | ".join(tail) if tail else "no output"
            text = f"Exit code {code}. Last output: {detail}"
        return f"AlgorithmError: {text}"[:FAILURE_LIMIT]

    def _upload(self, base: Path) -> None:
        store = self.emulator.s3.store
        output = self.record["OutputDataConfig"]["S3OutputPath"].rstrip("/")
        prefix = f"{output}/{self.name}/output"
        archive = self.root / "model.tar.gz"
        if staging.tar_directory(base / "model", archive):
            staging.upload_file(store, archive, f"{prefix}/model.tar.gz")
            self._set(ModelArtifacts={"S3ModelArtifacts": f"{prefix}/model.tar.gz"})
        data = self.root / "output.tar.gz"
        if staging.tar_directory(base / "output" / "data", data):
            staging.upload_file(store, data, f"{prefix}/output.tar.gz")

    def _finish_stopped(self, base: Path | None) -> None:
        if self.stop_reason.startswith("InternalServerError"):  # the emulator itself is shutting down
            self._finish("Failed", "Failed", FailureReason=self.stop_reason)
            return
        if base is not None:
            try:
                self._upload(base)
            except staging.StagingError:
                pass
        secondary = "MaxRuntimeExceeded" if self.stop_reason == "MaxRuntimeExceeded" else "Stopped"
        self._finish("Stopped", secondary)

    def _finish(self, status: str, secondary: str, **fields: Any) -> None:
        end = time.time()
        start = self.record.get("TrainingStartTime") or self.started_at
        seconds = max(1, int(round(end - start)))
        self._publish_metrics()
        self._set(status, secondary, TrainingEndTime=end, TrainingTimeInSeconds=seconds,
                  BillableTimeInSeconds=seconds, _pids=None, **fields)

    def stop(self, reason: str = "Stopped") -> None:
        self.stop_reason = reason
        self.stop_requested.set()


class _Stopped(Exception):
    pass
