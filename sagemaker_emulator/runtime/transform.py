"""A batch transform job: model-server processes per instance, fed mini-batches of the S3 input.

How a job runs, following the service (contract section 6):

1. the input objects are listed by ``runtime.transform_io`` (``S3Prefix`` or ``ManifestFile``) and
   assigned to instances by key (instance *i* of *n* takes every *n*-th object, as ``ShardedByS3Key``);
2. each instance is the model's ``serve`` process (``runtime.model_instance``) with
   ``SAGEMAKER_BATCH=true`` and, only when the request set them, ``SAGEMAKER_MAX_PAYLOAD_IN_MB``,
   ``SAGEMAKER_BATCH_STRATEGY`` (``SINGLE_RECORD``/``MULTI_RECORD``) and
   ``SAGEMAKER_MAX_CONCURRENT_TRANSFORMS``; the job's ``Environment`` is added to the model's;
3. unset parameters come from the container's ``GET /execution-parameters``, then the defaults
   (1 concurrent transform, ``MultiRecord``, 6 MB); the values used are shown by Describe;
4. objects are read in key order, split and packed by ``runtime.transform_data``, and up to
   ``MaxConcurrentTransforms`` requests per instance are in flight; answers are consumed in order,
   so the output keeps the input's record order and a mini-batch never spans two objects;
5. an object's ``<S3OutputPath>/<path relative to S3Uri>.out`` is uploaded only if every one of its
   mini-batches succeeded; a failed object is reported on the instance's ``data-log`` stream, the
   others still complete, and the job ends ``Failed`` naming the first failed object and the
   model server's message.

Logs: group ``/aws/sagemaker/TransformJobs``, streams ``<job>/<instance id>`` (the model server's
output) and ``<job>/<instance id>/data-log`` (``[sagemaker logs]: ...`` lines), as on AWS.

Local deviations (also in the service module): instance ids are made up (``i-`` + 17 hex digits
derived from the job ARN); requests are retried (``InvocationsMaxRetries``) only when the connection
fails or times out, never on an HTTP error status; ``SplitType`` ``RecordIO``/``TFRecord``,
``MaxPayloadInMB=0`` (streaming) and ``GenerateInferenceId`` are refused when the job is created;
``DataCaptureConfig`` writes one input and one output manifest per job; a ``StopTransformJob``
keeps the ``.out`` objects already uploaded and uploads no more.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import json
import logging
import re
import shutil
import threading
import time
import zlib
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from . import staging
from .container import LogSink
from .job import JobFailure, JobRun, Outcome
from .model_instance import Instance, ModelStartFailure, model_containers, prepare_instance
from .transform_data import MIB, DataProcessing, TransformDataError, iter_records, mini_batches
from .transform_io import InputObject, list_inputs, write_capture_manifests

log = logging.getLogger(__name__)

KIND = "TransformJob"
LOG_GROUP = "/aws/sagemaker/TransformJobs"
STARTUP_TIMEOUT = 120.0
DEFAULTS = {"MaxConcurrentTransforms": 1, "BatchStrategy": "MultiRecord", "MaxPayloadInMB": 6}
STRATEGY_ENV = {"SingleRecord": "SINGLE_RECORD", "MultiRecord": "MULTI_RECORD"}
_TAGS = re.compile(r"<[^>]+>")


class JobStopped(Exception):
    """The job was stopped while a request was being prepared or retried."""


class InstanceDown(Exception):
    """The model server of an instance is gone: nothing more can be transformed on it."""


class InvocationFailed(Exception):
    """A mini-batch got no answer (timeouts or connection errors, retries exhausted)."""


@dataclass
class Worker:
    """One transform instance: its model server, its log streams and the objects assigned to it."""

    instance_id: str
    instance: Instance
    data_log: LogSink
    objects: list[InputObject]
    outputs: Path
    failures: list[str] = field(default_factory=list)
    uploaded: list[str] = field(default_factory=list)
    down: str | None = None

    def data(self, message: str) -> None:
        self.data_log.write(f"[sagemaker logs]: {message}")


@dataclass
class Pending:
    """A mini-batch in flight (``future``) or, with ``future=None``, the end marker of an object."""

    out: ObjectOutput
    originals: list[bytes]
    future: Future[tuple[int, bytes]] | None


@dataclass
class ObjectOutput:
    obj: InputObject
    path: Path
    failed: str | None = None
    _handle: BinaryIO | None = None

    def write(self, data: bytes) -> None:
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        self._handle.write(data)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        elif not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_bytes(b"")  # an input with no records still has its (empty) output


def instance_id(arn: str, index: int) -> str:
    return "i-" + hashlib.sha256(f"{arn}#{index}".encode()).hexdigest()[:17]


def model_message(status: int, body: bytes) -> str:
    """The model server's answer as one line (HTML error pages reduced to their text)."""
    text = body.decode("utf-8", "replace")
    if text.lstrip().startswith("<"):
        text = _TAGS.sub(" ", text)
    flat = " ".join(text.split())
    return f"the model server answered {status}: {flat[:700] or '(empty body)'}"


class TransformRun(JobRun):
    """Runs one batch transform job: a model server per instance, fed the input's mini-batches."""

    KIND = "TransformJob"
    START_FIELD = "TransformStartTime"
    END_FIELD = "TransformEndTime"
    WORK_FOLDER = "transform"
    RESOURCES = ("TransformResources",)

    def __init__(self, emulator: Any, name: str) -> None:
        super().__init__(emulator, name)
        self.workers: list[Worker] = []
        self.instances: list[Instance] = []

    # ------------------------------------------------------------ the job
    def execute(self) -> Outcome:
        try:
            model = self.emulator.state.get("Model", self.record["ModelName"])
            if model is None:
                raise staging.StagingError(f"Could not find model \"{self.record['ModelName']}\".")
            source = self.record["TransformInput"]["DataSource"]["S3DataSource"]
            objects = list_inputs(self.emulator.s3.store, source, self.emulator.region)
            self._check_output_bucket()
            self._start(model, objects)
            if not self.stop_requested.is_set():
                self._transform(self._parameters())
            self._check_stop()
            if self.record.get("DataCaptureConfig"):
                uploaded = sorted(u for w in self.workers for u in w.uploaded)
                write_capture_manifests(self.emulator.s3.store, self.record["DataCaptureConfig"], objects,
                                        self.record["TransformOutput"]["S3OutputPath"], uploaded)
        except (staging.StagingError, ModelStartFailure, TransformDataError) as exc:
            self._check_stop()  # a model server killed by the stop is no failure of the job
            raise JobFailure(f"ClientError: {exc}") from exc
        failures = [f for w in self.workers for f in w.failures]
        if failures:
            more = f" ({len(failures) - 1} more object(s) failed)" if len(failures) > 1 else ""
            raise JobFailure(f"ClientError: {failures[0]}{more}. See the data-log streams in {LOG_GROUP} for details.")
        return Outcome("Completed")

    def _release(self, outcome: Outcome) -> None:
        """The final status is set only once the model servers are gone and their logs flushed, so that a
        client that sees ``Completed`` (e.g. the SDK's ``wait(logs=True)``) also sees every line."""
        self._stop_instances()
        for worker in self.workers:
            worker.data_log.flush()
            worker.instance.sink.flush()
        shutil.rmtree(self.root, ignore_errors=True)

    def _on_stop(self) -> None:
        """The model servers are killed at once (in-flight requests end with them)."""
        threading.Thread(target=self._stop_instances, name=f"stop-{self.name}", daemon=True).start()

    def _stop_instances(self) -> None:
        for instance in list(self.instances):
            instance.stop()

    # ------------------------------------------------------------ inputs and outputs
    def _check_output_bucket(self) -> None:
        uri = self.record["TransformOutput"]["S3OutputPath"]
        bucket, _ = staging.parse_s3_uri(uri)
        if not self.emulator.s3.store.bucket_exists(bucket):
            raise staging.StagingError(f"The output bucket {bucket} does not exist (S3OutputPath {uri}).")

    def _output_uri(self, rel: str) -> str:
        base = self.record["TransformOutput"]["S3OutputPath"].rstrip("/")
        return f"{base}/{rel}.out"

    def _open(self, obj: InputObject) -> BinaryIO:
        try:
            path = self.emulator.s3.store.object_path(obj.bucket, obj.key)
        except Exception as exc:  # noqa: BLE001 - deleted since the listing
            raise TransformDataError(f"Could not read the object: {exc}") from None
        if self.record["TransformInput"].get("CompressionType") == "Gzip":
            return gzip.open(path, "rb")  # type: ignore[return-value]
        return open(path, "rb")  # noqa: SIM115 - the caller closes it

    # ------------------------------------------------------------ instances
    def _container_env(self) -> dict[str, str]:
        record = self.record
        env = {"SAGEMAKER_BATCH": "true"}
        if record.get("MaxPayloadInMB"):
            env["SAGEMAKER_MAX_PAYLOAD_IN_MB"] = str(record["MaxPayloadInMB"])
        if record.get("BatchStrategy"):
            env["SAGEMAKER_BATCH_STRATEGY"] = STRATEGY_ENV[record["BatchStrategy"]]
        if record.get("MaxConcurrentTransforms"):
            env["SAGEMAKER_MAX_CONCURRENT_TRANSFORMS"] = str(record["MaxConcurrentTransforms"])
        return env

    def _start(self, model: dict[str, Any], objects: list[InputObject]) -> None:
        count = self.instance_count
        extra = self.record.get("Environment") or {}  # the job's Environment reaches every container of the model
        containers = [{**c, "Environment": {**(c.get("Environment") or {}), **extra}} for c in model_containers(model)]
        model = {**{k: v for k, v in model.items() if k != "PrimaryContainer"}, "Containers": containers}
        for index in range(count):
            ident = instance_id(self.record["TransformJobArn"], index)
            instance = prepare_instance(
                self.emulator, model, self.root / ident, log_group=LOG_GROUP, stream=f"{self.name}/{ident}",
                label=f"transform instance {index + 1} of {count} ({ident}) of {self.name}",
                extra_env=self._container_env())
            data_log = LogSink(self.emulator.logs, LOG_GROUP, f"{self.name}/{ident}/data-log")
            assigned = objects[index::count]
            self.workers.append(Worker(ident, instance, data_log, assigned, self.root / "outputs" / ident))
            self.instances.append(instance)
        pids = []
        for worker in self.workers:
            worker.instance.start()
            pids.extend(worker.instance.pids())
        self._set(_pids=pids)
        deadline = time.time() + STARTUP_TIMEOUT
        pending = [w.instance for w in self.workers]
        while pending and not self.stop_requested.is_set():
            for instance in list(pending):
                if self.stop_requested.is_set():
                    return
                if not instance.alive():
                    reason = instance.failure_line() or "the model server exited during start-up"
                    raise ModelStartFailure(f"The model server of the transform job did not start: {reason}")
                if instance.ping(0.5):
                    pending.remove(instance)
            if time.time() > deadline:
                raise ModelStartFailure(f"The model server did not answer /ping within {int(STARTUP_TIMEOUT)} s.")
            if pending:
                time.sleep(0.02)

    def _parameters(self) -> dict[str, Any]:
        """Request values, else the container's ``/execution-parameters``, else the defaults; recorded."""
        wanted = ("MaxConcurrentTransforms", "BatchStrategy", "MaxPayloadInMB")
        chosen = {k: self.record[k] for k in wanted if self.record.get(k)}
        if len(chosen) < len(wanted):
            for key, value in self._execution_parameters().items():
                chosen.setdefault(key, value)
        for key in wanted:
            chosen.setdefault(key, DEFAULTS[key])
        self._set(**chosen)
        for worker in self.workers:
            worker.data(f"MaxConcurrentTransforms={chosen['MaxConcurrentTransforms']}, "
                        f"MaxPayloadInMB={chosen['MaxPayloadInMB']}, "
                        f"BatchStrategy={STRATEGY_ENV[chosen['BatchStrategy']]}")
        return chosen

    def _execution_parameters(self) -> dict[str, Any]:
        instance = self.workers[0].instance
        try:
            conn = http.client.HTTPConnection("127.0.0.1", instance.port, timeout=5)
            conn.request("GET", "/execution-parameters")
            resp = conn.getresponse()
            body = resp.read()
            conn.close()
            if resp.status != 200:
                return {}
            data = json.loads(body)
        except (OSError, http.client.HTTPException, ValueError):
            return {}
        out: dict[str, Any] = {}
        if not isinstance(data, dict):
            return out
        concurrency, payload = data.get("MaxConcurrentTransforms"), data.get("MaxPayloadInMB")
        if isinstance(concurrency, int) and concurrency > 0:
            out["MaxConcurrentTransforms"] = concurrency
        if isinstance(payload, int) and 0 < payload <= 100:
            out["MaxPayloadInMB"] = payload
        strategy = {v: k for k, v in STRATEGY_ENV.items()}.get(str(data.get("BatchStrategy", "")).upper())
        if strategy:
            out["BatchStrategy"] = strategy
        return out

    # ------------------------------------------------------------ transforming
    def _transform(self, params: dict[str, Any]) -> None:
        threads = [threading.Thread(target=self._process, args=(w, params), name=f"transform-{w.instance_id}",
                                    daemon=True) for w in self.workers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _process(self, worker: Worker, params: dict[str, Any]) -> None:
        try:
            self._process_objects(worker, params)
        except Exception as exc:  # a bug must fail the job, not leave it hanging
            log.exception("transform instance %s of %s crashed", worker.instance_id, self.name)
            worker.failures.append(f"instance {worker.instance_id}: {type(exc).__name__}: {exc}")

    def _process_objects(self, worker: Worker, params: dict[str, Any]) -> None:
        processing = DataProcessing.from_job(self.record)
        limit = int(params["MaxPayloadInMB"]) * MIB
        multi = params["BatchStrategy"] == "MultiRecord"
        concurrency = int(params["MaxConcurrentTransforms"])
        window: deque[Pending] = deque()
        with ThreadPoolExecutor(concurrency, thread_name_prefix=f"invoke-{worker.instance_id}") as pool:
            for number, obj in enumerate(worker.objects):
                if self.stop_requested.is_set() or worker.down:
                    break
                out = ObjectOutput(obj, worker.outputs / f"{number}.out")
                batches = self._batches(obj, processing, multi, limit)
                try:
                    for batch in batches:
                        if out.failed or worker.down or self.stop_requested.is_set():
                            break
                        payload = processing.payload([p for _, p in batch])
                        future = pool.submit(self._invoke, worker.instance, payload)
                        window.append(Pending(out, [o for o, _ in batch], future))
                        while len(window) >= 2 * concurrency:
                            self._consume(worker, processing, window.popleft())
                except TransformDataError as exc:
                    if not out.failed:
                        out.failed = str(exc)
                        worker.data(f"{obj.uri}: {exc}")
                finally:
                    batches.close()
                window.append(Pending(out, [], None))
            while window:
                self._consume(worker, processing, window.popleft())

    def _batches(self, obj: InputObject, processing: DataProcessing, multi: bool, limit: int,
                 ) -> Iterator[list[tuple[bytes, bytes]]]:
        split = self.record["TransformInput"].get("SplitType") or "None"
        try:
            with self._open(obj) as stream:
                records = ((r, processing.payload_record(r)) for r in iter_records(stream, split, limit))
                yield from mini_batches(records, multi, limit)
        except (OSError, EOFError, zlib.error) as exc:
            raise TransformDataError(f"Could not read the object: {exc}") from None

    def _consume(self, worker: Worker, processing: DataProcessing, item: Pending) -> None:
        out = item.out
        if item.future is None:
            self._finalize(worker, out)
            return
        try:
            status, body = item.future.result()
        except JobStopped:
            return
        except (InstanceDown, InvocationFailed) as exc:
            if isinstance(exc, InstanceDown):
                worker.down = str(exc)
            if not out.failed:
                out.failed = str(exc)
                worker.data(f"{out.obj.uri}: {exc}")
            return
        if out.failed or self.stop_requested.is_set():
            return
        if status >= 400:
            out.failed = model_message(status, body)
            worker.data(f"{out.obj.uri}: ClientError: {status}")
            worker.data(f"{out.obj.uri}: ")
            worker.data(f"{out.obj.uri}: Message:")
            for line in body.decode("utf-8", "replace").splitlines()[:50]:
                worker.data(f"{out.obj.uri}: {line}")
            return
        try:
            out.write(processing.assemble(item.originals, body))
        except TransformDataError as exc:
            out.failed = str(exc)
            worker.data(f"{out.obj.uri}: {exc}")

    def _finalize(self, worker: Worker, out: ObjectOutput) -> None:
        out.close()
        try:
            if out.failed:
                worker.failures.append(f"{out.obj.uri}: {out.failed}")
                return
            if self.stop_requested.is_set():
                return
            target = self._output_uri(out.obj.rel)
            bucket, key = staging.parse_s3_uri(target)
            content_type = self.record["TransformOutput"].get("Accept") or None
            try:
                self.emulator.s3.store.put_file(bucket, key, out.path, content_type=content_type, move=True)
            except Exception as exc:  # noqa: BLE001 - an unwritable key fails that object, not the job's thread
                worker.failures.append(f"{out.obj.uri}: could not write {target}: {exc}")
                return
            worker.uploaded.append(target)
        finally:
            with contextlib.suppress(OSError):
                out.path.unlink()

    def _invoke(self, instance: Instance, payload: bytes) -> tuple[int, bytes]:
        """POST one mini-batch; connection failures and timeouts are retried ``InvocationsMaxRetries`` times."""
        config = self.record.get("ModelClientConfig") or {}
        timeout = float(config.get("InvocationsTimeoutInSeconds") or 600)
        retries = int(config.get("InvocationsMaxRetries", 3))
        headers = {}
        if self.record["TransformInput"].get("ContentType"):
            headers["Content-Type"] = self.record["TransformInput"]["ContentType"]
        if self.record["TransformOutput"].get("Accept"):
            headers["Accept"] = self.record["TransformOutput"]["Accept"]
        problem = ""
        for attempt in range(retries + 1):
            if self.stop_requested.is_set():
                raise JobStopped()
            try:
                status, _, body = instance.post("/invocations", payload, headers, timeout)
                return status, body
            except TimeoutError:
                instance.drop_connection()
                problem = f"the model server did not answer within InvocationsTimeoutInSeconds={timeout:g}"
            except (OSError, ValueError) as exc:
                instance.drop_connection()
                if self.stop_requested.is_set():
                    raise JobStopped() from None
                if not instance.alive():
                    reason = instance.failure_line() or "no output"
                    raise InstanceDown(f"the model server exited while transforming it (last output: {reason})"
                                       ) from None
                problem = f"the request to the model server failed: {type(exc).__name__}: {exc}"
            if attempt < retries:
                time.sleep(0.1 * (attempt + 1))
        raise InvocationFailed(f"{problem} (after {retries + 1} attempt(s))")
