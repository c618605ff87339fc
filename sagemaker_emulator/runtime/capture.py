"""Endpoint data capture: sampled request/response records written as SageMaker writes them.

With ``DataCaptureConfig`` on an endpoint configuration, roughly
``InitialSamplingPercentage`` % of successful invocations are recorded (one
Bernoulli draw per request) as JSON Lines under
``<DestinationS3Uri>/<EndpointName>/<VariantName>/yyyy/mm/dd/hh/MM-SS-mmm-<uuid>.jsonl``
— the layout Model Monitor reads. Records are buffered in memory and written
as one object per variant and hour every ``FLUSH_SECONDS`` (SageMaker takes a
couple of minutes; a learner should not have to wait) and whenever the endpoint
is updated, deleted or the emulator stops, so nothing captured is lost.

Bodies of content types listed in ``CaptureContentTypeHeader`` (defaults
``text/csv`` and ``application/json``, as the SDK sets) are stored as text with
encoding ``CSV``/``JSON``; anything else as ``BASE64``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import random
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from .staging import parse_s3_uri

log = logging.getLogger(__name__)
FLUSH_SECONDS = 1.0
DEFAULT_CSV_TYPES = ("text/csv",)
DEFAULT_JSON_TYPES = ("application/json",)


@dataclass
class Invocation:
    """What one ``InvokeEndpoint`` call sent and got back, as capture needs it."""

    variant: str
    request_body: bytes
    request_type: str
    response_body: bytes
    response_type: str
    inference_id: str | None = None
    custom_attributes: str | None = None
    time: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


class DataCapture:
    """The capture of one endpoint: sampling, record building, buffering and S3 writes."""

    def __init__(self, store: Any, endpoint: str, config: dict[str, Any], on_error: Any = None) -> None:
        self.store = store
        self.endpoint = endpoint
        self.enabled = bool(config.get("EnableCapture", True))
        self.percentage = float(config.get("InitialSamplingPercentage", 0))
        self.destination = config["DestinationS3Uri"].rstrip("/")
        self.bucket, self.prefix = parse_s3_uri(self.destination)
        self.prefix = self.prefix.strip("/")
        modes = {o["CaptureMode"] for o in config.get("CaptureOptions") or [{"CaptureMode": "InputAndOutput"}]}
        self.capture_input = bool(modes & {"Input", "InputAndOutput"})
        self.capture_output = bool(modes & {"Output", "InputAndOutput"})
        header = config.get("CaptureContentTypeHeader") or {}
        self.csv_types = {t.lower() for t in header.get("CsvContentTypes") or DEFAULT_CSV_TYPES}
        self.json_types = {t.lower() for t in header.get("JsonContentTypes") or DEFAULT_JSON_TYPES}
        self.on_error = on_error or (lambda message: log.warning("%s", message))
        self._last_error = ""
        self._buffers: dict[tuple[str, str], list[tuple[dt.datetime, str]]] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._writer = threading.Thread(target=self._run, name=f"capture-{endpoint}", daemon=True)
        self._writer.start()

    # ------------------------------------------------------------ per request
    def sampled(self) -> bool:
        return self.enabled and self.percentage > 0 and random.random() * 100 < self.percentage

    def record(self, call: Invocation) -> None:
        """Buffer the capture record of ``call`` (the caller already decided it is sampled)."""
        capture: dict[str, Any] = {}
        if self.capture_input:
            capture["endpointInput"] = self._side(call.request_type, call.request_body, "INPUT")
        if self.capture_output:
            capture["endpointOutput"] = self._side(call.response_type, call.response_body, "OUTPUT")
        metadata: dict[str, Any] = {"eventId": str(uuid.uuid4()),
                                    "inferenceTime": call.time.strftime("%Y-%m-%dT%H:%M:%SZ")}
        if call.inference_id:
            metadata["inferenceId"] = call.inference_id
        if call.custom_attributes:
            metadata["customAttributes"] = call.custom_attributes
        line = json.dumps({"captureData": capture, "eventMetadata": metadata, "eventVersion": "0"},
                          separators=(",", ":"))
        hour = call.time.strftime("%Y/%m/%d/%H")
        with self._lock:
            self._buffers.setdefault((call.variant, hour), []).append((call.time, line))
        if self._closed.is_set():  # a request that was in flight while the endpoint was updated or stopped
            self.flush()

    def _side(self, content_type: str, body: bytes, mode: str) -> dict[str, str]:
        media = _media_type(content_type)
        encoding = "CSV" if media in self.csv_types else "JSON" if media in self.json_types else "BASE64"
        if encoding != "BASE64":
            try:
                data = body.decode("utf-8")
            except UnicodeDecodeError:
                encoding = "BASE64"
        if encoding == "BASE64":
            data = base64.b64encode(body).decode("ascii")
        return {"observedContentType": content_type, "mode": mode, "data": data, "encoding": encoding}

    # ------------------------------------------------------------ writing
    def flush(self) -> int:
        """Write every buffered record to S3 now; returns how many were written."""
        with self._lock:
            buffers, self._buffers = self._buffers, {}
        written = 0
        for (variant, hour), records in buffers.items():
            first = records[0][0]
            name = f"{first:%M-%S}-{first.microsecond // 1000:03d}-{uuid.uuid4()}.jsonl"
            key = "/".join(p for p in (self.prefix, self.endpoint, variant, hour, name) if p)
            body = "".join(line + "\n" for _, line in records).encode()
            try:
                self.store.put_bytes(self.bucket, key, body, content_type="application/jsonl")
            except Exception as exc:  # noqa: BLE001 - keep the records and say why, whatever the store says
                with self._lock:
                    self._buffers.setdefault((variant, hour), [])[:0] = records
                message = f"Data capture could not write to s3://{self.bucket}/: {exc}; records kept and retried."
                if message != self._last_error:  # once per distinct problem, not once a second
                    self._last_error = message
                    self.on_error(message)
                continue
            written += len(records)
        return written

    def _run(self) -> None:
        while not self._closed.wait(FLUSH_SECONDS):
            self.flush()

    def close(self) -> None:
        """Stop the writer and write what is left: called on update, delete and emulator stop."""
        self._closed.set()
        self._writer.join(FLUSH_SECONDS + 5)
        self.flush()

    def summary(self) -> dict[str, Any]:
        """``DescribeEndpoint.DataCaptureConfig``."""
        return {"EnableCapture": self.enabled, "CaptureStatus": "Started" if self.enabled else "Stopped",
                "CurrentSamplingPercentage": int(self.percentage), "DestinationS3Uri": self.destination}
