"""Real-time endpoints: one local model-server process per variant instance, and request routing.

An endpoint goes ``Creating`` → ``InService`` once every instance answers
``/ping``; each instance is its own process (a crash in model code cannot take
the gateway down) and a supervisor restarts an instance whose process died.
``invoke`` picks a variant by weight (or ``TargetVariant``), an instance
round-robin, and forwards the request over a kept-alive loopback connection.
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .capture import DataCapture
from .container import LogSink
from .model_instance import Instance, ModelStartFailure, model_containers, prepare_instance

log = logging.getLogger(__name__)
LOG_GROUP = "/aws/sagemaker/Endpoints"
STARTUP_TIMEOUT = 120.0
SUPERVISE_EVERY = 0.5


class EndpointFailure(Exception):
    """Ends endpoint creation ``Failed`` with this reason."""


class Throttled(Exception):
    """A serverless variant already serves ``MaxConcurrency`` requests."""


@dataclass
class Variant:
    name: str
    weight: float
    instances: list[Instance]
    counter: itertools.count = field(default_factory=itertools.count)
    #: serverless variants admit at most ``MaxConcurrency`` requests at once
    slots: threading.BoundedSemaphore | None = None
    model: dict[str, Any] = field(default_factory=dict)
    desired: int | None = None  # while scaling: the instance count asked for

    def pick(self) -> Instance:
        # ``returncode`` as the supervisor's last poll left it: no waitpid system call per request
        live = [i for i in self.instances if i.container is not None and i.container.process is not None
                and i.container.process.returncode is None] or self.instances
        return live[next(self.counter) % len(live)]


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str
    variant: str
    source: str = "primary"  # the container that answered: a pipeline's names the one that failed


class LiveEndpoint:
    """The processes behind one endpoint, and the routing between its variants."""

    def __init__(self, emulator: Any, name: str) -> None:
        self.emulator = emulator
        self.name = name
        self.root = emulator.paths.root / "endpoints" / name
        self.variants: dict[str, Variant] = {}
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None
        self.capture: DataCapture | None = None

    def _capture(self, config: dict[str, Any]) -> DataCapture | None:
        settings = config.get("DataCaptureConfig")
        if not settings:
            return None

        def report(message: str) -> None:  # a stream appears only when capture has something to say
            sink = LogSink(self.emulator.logs, f"{LOG_GROUP}/{self.name}", "data-capture")
            sink.write(message)
            sink.flush()

        return DataCapture(self.emulator.s3.store, self.name, settings, on_error=report)

    # ------------------------------------------------------------ lifecycle
    def deploy(self, config: dict[str, Any]) -> None:
        """Start every instance of every variant and wait until all answer ``/ping``."""
        variants = {}
        for spec in config["ProductionVariants"]:
            model = self.emulator.state.get("Model", spec["ModelName"])
            if model is None:
                raise EndpointFailure(f"Could not find model \"{spec['ModelName']}\".")
            serverless = spec.get("ServerlessConfig")
            count = 1 if serverless else int(spec.get("InitialInstanceCount") or 1)
            instances = [self._instance(spec["VariantName"], i, model) for i in range(count)]
            slots = None
            if serverless:
                limit = int(serverless.get("MaxConcurrency") or 1)
                slots = threading.BoundedSemaphore(limit)
                instances[0].sink.write(
                    f"Local emulator: serverless variant {spec['VariantName']} runs as one warm local process "
                    f"(no cold starts; MemorySizeInMB {serverless.get('MemorySizeInMB')} is not enforced); "
                    f"MaxConcurrency {limit} is: requests beyond it get ThrottlingException.")
            variants[spec["VariantName"]] = Variant(spec["VariantName"], float(spec.get("InitialVariantWeight", 1.0)),
                                                    instances, slots=slots, model=model)
        self._start([i for v in variants.values() for i in v.instances])
        old, old_capture = self.variants, self.capture
        self.capture = self._capture(config)
        self.variants = variants
        if old_capture is not None:
            old_capture.close()
        self._stop_all(old)
        if self._supervisor is None:
            self._supervisor = threading.Thread(target=self._supervise, name=f"endpoint-{self.name}", daemon=True)
            self._supervisor.start()

    def _start(self, instances: list[Instance]) -> None:
        """Start ``instances`` and wait until each answers ``/ping``; on failure stop them all and say why."""
        for instance in instances:
            instance.start()
        deadline = time.time() + STARTUP_TIMEOUT
        pending = list(instances)
        while pending:
            for instance in list(pending):
                if not instance.alive():
                    reason = instance.failure_line() or "the model server exited during start-up"
                    for started in instances:
                        started.stop()
                    raise EndpointFailure(
                        f"The primary container for production variant {instance.variant} did not pass the "
                        f"ping health check: {reason}"
                    )
                if instance.ping(0.5):
                    pending.remove(instance)
            if time.time() > deadline:
                for started in instances:
                    started.stop()
                raise EndpointFailure("The model server did not answer /ping within "
                                      f"{int(STARTUP_TIMEOUT)} seconds.")
            if pending:
                time.sleep(0.02)

    def scale(self, counts: dict[str, int]) -> None:
        """Bring variants to the given instance counts: new instances serve once healthy, extras are stopped."""
        for name, count in counts.items():
            self.variants[name].desired = count
        try:
            for name, count in counts.items():
                variant = self.variants[name]
                current = list(variant.instances)
                if count > len(current):
                    added = [self._instance(name, i, variant.model) for i in range(len(current), count)]
                    self._start(added)
                    variant.instances = current + added
                elif count < len(current):
                    variant.instances = current[:count]
                    for instance in current[count:]:
                        instance.stop()
        finally:
            for name in counts:
                self.variants[name].desired = None

    def _instance(self, variant: str, index: int, model: dict[str, Any]) -> Instance:
        base = self.root / f"{variant}-{index + 1}-{int(time.time() * 1000)}"
        try:
            return prepare_instance(self.emulator, model, base, log_group=f"{LOG_GROUP}/{self.name}",
                                    stream=f"{variant}/instance-{index + 1}",
                                    label=f"{variant} instance {index + 1}", variant=variant, index=index)
        except ModelStartFailure as exc:
            raise EndpointFailure(str(exc)) from exc

    def _supervise(self) -> None:
        """Restart instances whose process died: a crash in model code costs requests, not the endpoint."""
        while not self._stopping.wait(SUPERVISE_EVERY):
            for variant in list(self.variants.values()):
                for instance in variant.instances:
                    if instance.container is not None and not instance.alive() and not self._stopping.is_set():
                        instance.restarts += 1
                        instance.sink.write(f"Local emulator: model server exited; restarting "
                                            f"(restart {instance.restarts})")
                        instance.start()

    def _stop_all(self, variants: dict[str, Variant]) -> None:
        for variant in variants.values():
            for instance in variant.instances:
                instance.stop()

    def stop(self) -> None:
        self._stopping.set()
        if self.capture is not None:
            self.capture.close()
        self._stop_all(self.variants)
        self.variants = {}

    # ------------------------------------------------------------ routing
    def set_weights(self, weights: dict[str, float]) -> None:
        for name, weight in weights.items():
            if name in self.variants:
                self.variants[name].weight = weight

    def choose(self, target: str | None) -> Variant:
        if target:
            return self.variants[target]
        variants = list(self.variants.values())
        weights = [v.weight for v in variants]
        if sum(weights) <= 0:
            weights = [1.0] * len(variants)
        return random.choices(variants, weights)[0]

    def invoke(self, variant: Variant, body: bytes, headers: dict[str, str], timeout: float) -> Response:
        if variant.slots is None:
            return self._forward(variant, body, headers, timeout)
        if not variant.slots.acquire(blocking=False):
            raise Throttled(variant.name)
        try:
            return self._forward(variant, body, headers, timeout)
        finally:
            variant.slots.release()

    def _forward(self, variant: Variant, body: bytes, headers: dict[str, str], timeout: float) -> Response:
        instance = variant.pick()
        for attempt in range(2):
            try:
                status, content_type, data = instance.post("/invocations", body, headers, timeout)
                return Response(status, data, content_type, variant.name, instance.source())
            except TimeoutError:  # a hung model: that request fails, and is not sent again
                instance.drop_connection()
                raise
            except (ConnectionError, OSError, ValueError):  # a stale keep-alive socket or a restarted server
                instance.drop_connection()
                if attempt:
                    raise
                time.sleep(0.05)
        raise ConnectionError("unreachable")


def describe_capture(config: dict[str, Any], live: LiveEndpoint | None) -> dict[str, Any] | None:
    """``DescribeEndpoint.DataCaptureConfig``: what runs, else what the configuration asks for."""
    if live is not None and live.capture is not None:
        return live.capture.summary()
    settings = config.get("DataCaptureConfig")
    if not settings:
        return None
    enabled = bool(settings.get("EnableCapture", True))
    return {"EnableCapture": enabled, "CaptureStatus": "Started" if enabled else "Stopped",
            "CurrentSamplingPercentage": int(settings.get("InitialSamplingPercentage", 0)),
            "DestinationS3Uri": settings["DestinationS3Uri"]}


def describe_variants(config: dict[str, Any], live: LiveEndpoint | None, models: dict[str, dict]) -> list[dict]:
    """``ProductionVariants`` of ``DescribeEndpoint`` from the config and what actually runs."""
    out = []
    for spec in config["ProductionVariants"]:
        model = models.get(spec["ModelName"], {})
        variant = live.variants.get(spec["VariantName"]) if live else None
        weight = variant.weight if variant else float(spec.get("InitialVariantWeight", 1.0))
        count = len(variant.instances) if variant else int(spec.get("InitialInstanceCount") or 1)
        item: dict[str, Any] = {
            "VariantName": spec["VariantName"],
            "DeployedImages": [{"SpecifiedImage": c.get("Image", ""), "ResolvedImage": c.get("Image", ""),
                                "ResolutionTime": time.time()} for c in model_containers(model)],
            "CurrentWeight": weight, "DesiredWeight": weight,
            "CurrentInstanceCount": count,
            "DesiredInstanceCount": variant.desired if variant and variant.desired is not None else count,
        }
        if spec.get("ServerlessConfig"):
            item["CurrentServerlessConfig"] = spec["ServerlessConfig"]
            item["DesiredServerlessConfig"] = spec["ServerlessConfig"]
            item.pop("CurrentInstanceCount")
            item.pop("DesiredInstanceCount")
        out.append(item)
    return out
