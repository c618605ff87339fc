"""A training job from ``InProgress`` to ``Completed``/``Failed``/``Stopped``, locally.

Mirrors the platform's steps: launch instances (``Starting``), download
channels (``Downloading``), run the image's program with the container
contract remapped to a per-instance directory (``Training``), upload
``model.tar.gz`` and ``output.tar.gz`` (``Uploading``), and finish with
SageMaker's fields (``FailureReason``, ``FinalMetricDataList``,
``ModelArtifacts``, billable seconds).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
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
from .debug_output import TensorSync, write_hook_config
from .job import JobFailure, JobRun, Outcome
from .rules import recover_rule_statuses, start_rule_evaluations

LOG_GROUP = "/aws/sagemaker/TrainingJobs"
#: the entry point the SDK gives every @step/@remote job (``sagemaker.core.remote_function.job``)
REMOTE_FUNCTION_ENTRYPOINT = ["/bin/bash", "/opt/ml/input/data/sagemaker_remote_function_bootstrap/job_driver.sh"]


class TrainingRun(JobRun):
    """Runs one training job: the image's program on each instance, then its model uploaded."""

    KIND = "TrainingJob"
    START_FIELD = "TrainingStartTime"
    END_FIELD = "TrainingEndTime"
    WORK_FOLDER = "training"
    RESOURCES = ("ResourceConfig",)
    SECONDARY_STATUSES = True

    def __init__(self, emulator: Any, name: str) -> None:
        super().__init__(emulator, name)
        self.metrics = MetricParser(self._metric_definitions())
        self._trained: Path | None = None  # the first instance's directory once training ran: uploaded on a stop
        self.tensors: TensorSync | None = None  # the Debugger hook's output, uploaded while the job trains

    def _metric_definitions(self) -> list[dict[str, str]]:
        return list(self.record.get("AlgorithmSpecification", {}).get("MetricDefinitions") or [])

    # ------------------------------------------------------------ lifecycle
    def execute(self) -> Outcome:
        if self.record.get("DebugRuleConfigurations"):
            start_rule_evaluations(self.emulator, self.record)
        image = self._image()
        self._check_stop()
        self._set(secondary="Downloading")
        bases = [self._prepare_instance(i, host) for i, host in enumerate(self.hosts())]
        if self.record.get("DebugHookConfig"):
            self.tensors = TensorSync(self.emulator, self.record, bases[0])
        self._check_stop()
        self._set(secondary="Training")
        codes = self._train(image, bases)
        self._trained = bases[0]
        self._check_stop()
        failed = [(i, c) for i, c in enumerate(codes) if c != 0]
        if failed:
            raise JobFailure(self._failure_reason(bases[failed[0][0]], failed[0][1], failed[0][0], image))
        self._set(secondary="Uploading")
        self._upload(bases[0])
        return Outcome("Completed")

    def stopped(self) -> Outcome:
        """A stopped job keeps what it trained so far (its model is uploaded), as on SageMaker."""
        outcome = super().stopped()
        if outcome.status == "Stopped":
            if self._trained is not None:
                with contextlib.suppress(staging.StagingError):
                    self._upload(self._trained)
            if self.max_runtime_exceeded:
                outcome.secondary = "MaxRuntimeExceeded"
        return outcome

    @classmethod
    def recover(cls, emulator: Any) -> None:
        super().recover(emulator)
        recover_rule_statuses(emulator)

    def _release(self, outcome: Outcome) -> None:
        """Containers stopped, then the Debugger output completed: the rules learn that training has ended."""
        super()._release(outcome)
        if self.record.get("DebugHookConfig"):
            tensors = self.tensors or TensorSync(self.emulator, self.record, self.root / "algo-1")
            self.root.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(staging.StagingError):
                tensors.finish(self.root)

    def _end_fields(self, now: float) -> dict[str, Any]:
        seconds = max(1, int(round(now - (self.record.get("TrainingStartTime") or self.started_at))))
        fields: dict[str, Any] = {"TrainingTimeInSeconds": seconds, "BillableTimeInSeconds": seconds}
        final = self.metrics.final_metric_data()
        if final:
            fields["FinalMetricDataList"] = final
        return fields

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
        write_hook_config(record, config)
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
        self._stage(source, dest, index, gzip_input=channel.get("CompressionType") == "Gzip")

    def _command(self, image: Image, base: Path, python: str) -> list[str]:
        spec = self.record["AlgorithmSpecification"]
        entry = spec.get("ContainerEntrypoint")
        if entry == REMOTE_FUNCTION_ENTRYPOINT:  # @step/@remote: the SDK's job driver, run by our launcher
            return [sys.executable, "-m", "sagemaker_emulator.images.remote_function",
                    *(spec.get("ContainerArguments") or [])]
        if entry:
            return [rewrite(part, base) for part in [*entry, *(spec.get("ContainerArguments") or [])]]
        hps = self.record.get("HyperParameters") or {}
        if "sagemaker_program" in hps:
            return [python, "-m", "sagemaker_emulator.images.script_mode", "train"]
        if image.framework == "xgboost":
            legacy = ["--legacy"] if image.legacy else []
            return [python, "-m", "sagemaker_emulator.images.xgboost_algorithm", "train", *legacy]
        raise JobFailure(
            f"ClientError: The image {image.uri} runs in script mode only: set the hyperparameter "
            "sagemaker_program (the SDK's SourceCode/entry_point does this) or a ContainerEntrypoint."
        )

    def _python(self, base: Path, image_python: str) -> str:
        """The interpreter ``python3`` means inside this job's "container": the image environment's.

        The SDK V3 ``SourceCode`` drivers pip-install ``requirements.txt`` into whatever
        ``python3`` is; pointing it at a venv layered on the image environment, cached per
        requirements hash, makes that install happen once per content, not per run, and never
        touch the image's or the emulator's own environment.
        """
        from .pyenvs import PipInstallError, has_requirements, python_for_requirements

        requirements = base / "input" / "data" / "code" / "requirements.txt"
        if not self.record["AlgorithmSpecification"].get("ContainerEntrypoint") or not has_requirements(
                requirements):
            return image_python
        try:
            return str(python_for_requirements(requirements, self.emulator.paths.cache, image_python))
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
        sinks = [LogSink(self.emulator.logs, LOG_GROUP, f"{self.name}/{host}-{stamp}") for host in self.hosts()]
        image_python = self.emulator.image_envs.python_for(image, lambda line: [s.write(line) for s in sinks])
        self._check_stop()
        python = self._python(bases[0], image_python)
        containers = []
        for base, host, sink in zip(bases, self.hosts(), sinks, strict=True):
            sink.write(f"Local emulator: running {image.describe_local()} as instance {host}")
            env = self._environment(base, host, tracker_port, python)
            containers.append(Container(self._command(image, base, python), base, env, sink, self.metrics))
        self._start_containers(containers)
        codes = self._wait_for_containers(self._tick)
        self._publish_metrics()
        return codes

    def _tick(self) -> None:
        self._publish_metrics()
        if self.tensors is not None:
            self.tensors.sync()

    def _publish_metrics(self) -> None:
        final = self.metrics.final_metric_data()
        if final and final != self.record.get("FinalMetricDataList"):
            self._set(FinalMetricDataList=final)

    def _failure_reason(self, base: Path, code: int, index: int, image: Image) -> str:
        failure = base / "output" / "failure"
        text = failure.read_text(errors="replace").strip() if failure.exists() else ""
        if text and image.legacy and not self.record["AlgorithmSpecification"].get("ContainerEntrypoint"):
            return text  # a first-party algorithm categorises its own failure: "ClientError: ..."
        if not text:
            tail = [line for line in self.containers[index].tail if line.strip()][-3:]
            detail = " | ".join(tail) if tail else "no output"
            text = f"Exit code {code}. Last output: {detail}"
        return f"AlgorithmError: {text}"

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
