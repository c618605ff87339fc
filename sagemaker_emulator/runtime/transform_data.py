"""Batch transform's data path: records out of an object, mini-batches, filters, joins, assembly.

Kept apart from the job runner (``runtime.transform``) because it is pure data handling: no
processes, no S3, no threads, so each rule of the service is a small function that can be read
next to the documentation it follows.

* ``SplitType=None``: the whole object is one record; ``Line``: one record per line (the newline
  and a trailing ``\\r`` are not part of the record; blank lines are skipped, as the containers
  would reject an empty CSV row).
* ``BatchStrategy=SingleRecord``: one record per request; ``MultiRecord``: as many records as fit
  in ``MaxPayloadInMB`` (MiB, joined by ``\\n``, no trailing newline); a mini-batch never spans two
  objects. A record larger than the limit fails its object ("Too much data for max payload size").
* ``DataProcessing``: CSV rows are JSON arrays of strings (cells are never re-formatted), JSON
  Lines records are JSON values. ``InputFilter`` selects what is sent, the response is split back
  into one output record per input record, ``JoinSource=Input`` appends it (CSV: the output cells
  after the input cells; JSON object: a ``SageMakerOutput`` member; anything else:
  ``{"SageMakerInput": ..., "SageMakerOutput": ...}``) and ``OutputFilter`` selects what is kept.
* ``AssembleWith=None`` concatenates the responses' bytes as they are; ``Line`` ends every output
  record (or, without record-level processing, every response) with exactly one newline.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from .jsonpath import JsonPath, JsonPathError, compile_path

MIB = 1024 * 1024
CSV_TYPES = ("text/csv", "csv")
JSON_TYPES = ("application/json", "application/jsonlines", "application/x-jsonlines", "application/jsonl")
PROCESSING_TYPES = ("text/csv", "application/json", "application/jsonlines")


class TransformDataError(Exception):
    """An object cannot be transformed; the message is what the job's data log and reason show."""


def media_type(value: str | None) -> str:
    """``text/csv; charset=utf-8`` → ``text/csv``."""
    return (value or "").split(";", 1)[0].strip().lower()


# --------------------------------------------------------------------------- records and mini-batches


def iter_records(stream: BinaryIO, split_type: str, limit: int) -> Iterator[bytes]:
    """The records of one object, read lazily; with ``SplitType=None`` at most ``limit`` + 1 bytes are read."""
    if split_type in ("None", "", None):
        data = stream.read(limit + 1)
        if len(data) > limit:
            raise TransformDataError(too_large(limit, None))
        if data:
            yield data
        return
    for line in stream:
        record = line.rstrip(b"\n").rstrip(b"\r")
        if record.strip():
            yield record


def too_large(limit: int, size: int | None) -> str:
    what = f"a record of {size / MIB:.2f} MB" if size is not None else "the object (SplitType=None)"
    return (f"Too much data for max payload size: {what} does not fit in MaxPayloadInMB={limit // MIB}. "
            "Use SplitType=Line or raise MaxPayloadInMB.")


def mini_batches(records: Iterable[tuple[bytes, bytes]], multi: bool, limit: int,
                 ) -> Iterator[list[tuple[bytes, bytes]]]:
    """Group ``(original, payload)`` records into requests whose payloads (newline-joined) fit ``limit`` bytes."""
    batch: list[tuple[bytes, bytes]] = []
    size = 0
    for original, payload in records:
        if len(payload) > limit:
            raise TransformDataError(too_large(limit, len(payload)))
        if not multi:
            yield [(original, payload)]
            continue
        added = len(payload) + (1 if batch else 0)
        if batch and size + added > limit:
            yield batch
            batch, size, added = [], 0, len(payload)
        batch.append((original, payload))
        size += added
    if batch:
        yield batch


# --------------------------------------------------------------------------- data processing


def _csv_row(record: bytes) -> list[str]:
    try:
        rows = list(csv.reader(io.StringIO(record.decode("utf-8"))))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise TransformDataError(f"A record is not valid UTF-8 CSV: {exc}") from None
    return rows[0] if rows else []


def _csv_text(value: Any) -> str:
    """A JSONPath result (CSV cells) back into one CSV line."""
    cells = value if isinstance(value, list) else [value]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="")
    writer.writerow([json.dumps(c, separators=(",", ":")) if isinstance(c, (dict, list)) else c for c in cells])
    return out.getvalue()


def _json_value(record: bytes) -> Any:
    try:
        return json.loads(record)
    except (UnicodeDecodeError, ValueError) as exc:
        raise TransformDataError(f"A record is not valid JSON: {exc}") from None


def _json_text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _output_value(text: str, csv_join: bool) -> Any:
    """One output record of the model as a value: CSV cells when joining to CSV, else JSON if it parses."""
    if csv_join:
        return _csv_row(text.encode())
    try:
        return json.loads(text)
    except ValueError:
        cells = _csv_row(text.encode())
        return cells[0] if len(cells) == 1 else cells


@dataclass
class DataProcessing:
    """``DataProcessing`` of a job, compiled: what to send for a record and how to write the answers."""

    input_filter: JsonPath
    output_filter: JsonPath
    join: bool
    csv_input: bool
    csv_output: bool
    line_assembly: bool
    split: bool

    @classmethod
    def from_job(cls, record: dict[str, Any]) -> DataProcessing:
        spec = record.get("DataProcessing") or {}
        content_type = media_type(record["TransformInput"].get("ContentType"))
        accept = media_type(record["TransformOutput"].get("Accept")) or content_type
        return cls(
            input_filter=compile_path(spec.get("InputFilter")),
            output_filter=compile_path(spec.get("OutputFilter")),
            join=spec.get("JoinSource") == "Input",
            csv_input=content_type in CSV_TYPES,
            csv_output=accept in CSV_TYPES,
            line_assembly=record["TransformOutput"].get("AssembleWith") == "Line",
            split=record["TransformInput"].get("SplitType") not in (None, "None"),
        )

    @property
    def filters_input(self) -> bool:
        return not self.input_filter.is_root

    @property
    def per_record_output(self) -> bool:
        """Whether responses must be split into output records (join or output filter)."""
        return self.join or not self.output_filter.is_root

    # ------------------------------------------------------------ request side
    def payload_record(self, record: bytes) -> bytes:
        """The record as sent: ``InputFilter`` applied (CSV rows as arrays of cells)."""
        if not self.filters_input:
            return record
        value = _csv_row(record) if self.csv_input else _json_value(record)
        try:
            selected = self.input_filter.apply(value)
        except JsonPathError as exc:
            raise TransformDataError(f"InputFilter {exc}") from None
        return (_csv_text(selected) if self.csv_input else _json_text(selected)).encode()

    @staticmethod
    def payload(records: list[bytes]) -> bytes:
        return b"\n".join(records)

    # ------------------------------------------------------------ response side
    def assemble(self, originals: list[bytes], body: bytes) -> bytes:
        """The bytes a response contributes to the ``.out`` object."""
        if not self.per_record_output:
            if self.line_assembly and not body.endswith(b"\n"):
                return body + b"\n"
            return body
        outputs = self._split_response(body, len(originals))
        pieces = []
        for original, output in zip(originals, outputs, strict=True):
            text = self._joined(original, output)
            pieces.append(text + "\n" if self.line_assembly else text)
        return "".join(pieces).encode()

    def _split_response(self, body: bytes, expected: int) -> list[str]:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise TransformDataError("The model's response is not UTF-8 text, so it cannot be joined with the input "
                                     "or filtered (JoinSource/OutputFilter).") from None
        if expected == 1 and not self.split:
            return [text.rstrip("\r\n")]
        lines = [line.rstrip("\r") for line in text.split("\n")]
        if lines and lines[-1] == "":
            lines.pop()
        if len(lines) != expected and expected == 1:
            return [text.rstrip("\r\n")]
        if len(lines) != expected:
            raise TransformDataError(
                f"The model returned {len(lines)} line(s) for a mini-batch of {expected} record(s); joining outputs "
                "with inputs (JoinSource/OutputFilter) needs one output line per input record.")
        return lines

    def _joined(self, original: bytes, output: str) -> str:
        csv_join = self.csv_input if self.join else self.csv_output
        value = _output_value(output, csv_join)
        if self.join:
            if self.csv_input:
                cells = value if isinstance(value, list) else [value]
                value = _csv_row(original) + cells
            else:
                source = _json_value(original)
                if isinstance(source, dict):
                    value = {**source, "SageMakerOutput": value}
                else:
                    value = {"SageMakerInput": source, "SageMakerOutput": value}
        try:
            selected = self.output_filter.apply(value)
        except JsonPathError as exc:
            raise TransformDataError(f"OutputFilter {exc}") from None
        return _csv_text(selected) if csv_join else _json_text(selected)
