"""The dataset the analyzer looks at, as one table of raw values (text, or None for missing).

Baselines read CSV, JSON Lines or Parquet; monitoring executions read the
endpoint's captured JSON Lines for their window, either through the user's
``record_preprocessor_script`` (its ``preprocess_handler`` returns the
features by name) or, without one, as CSV rows with the model's output
columns first, named after the baseline's features by position — both as
SageMaker's analyzer does. Values stay text so that types are inferred from
what was written, as Deequ infers them.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import importlib.util
import inspect
import io
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .inputs import AnalyzerInput, InputError

log = logging.getLogger("model-monitor")


def _files(source: Path, suffixes: tuple[str, ...] = ()) -> list[Path]:
    if source.is_file():
        return [source]
    if not source.exists():
        raise InputError(f"The dataset source {source.name} does not exist in the job's inputs.")
    files = sorted(p for p in source.rglob("*") if p.is_file() and not p.name.startswith("."))
    return [p for p in files if not suffixes or p.suffix.lower() in suffixes] or files


def _text(value: Any) -> str | None:
    """A parsed value as the text Deequ would type: None for null, JSON spelling for the rest."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if value != "" else None
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested JSON objects become dotted column names (``a.b``), as Spark's flattening does."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix or "_c0": value}


def _frame(rows: list[dict[str, Any]], order: list[str] | None = None) -> pd.DataFrame:
    columns: dict[str, None] = dict.fromkeys(order or [])
    for row in rows:
        columns.update(dict.fromkeys(row))
    data = {name: [_text(row.get(name)) for row in rows] for name in columns}
    return pd.DataFrame(data, columns=list(columns), dtype=object)


def read_csv(files: list[Path], header: bool, delimiter: str) -> pd.DataFrame:
    frames = []
    for path in files:
        frame = pd.read_csv(path, header=0 if header else None, dtype=str, keep_default_na=False,
                            sep=delimiter, skip_blank_lines=True)
        if not header:
            frame.columns = [f"_c{i}" for i in range(frame.shape[1])]
        frames.append(frame)
    if not frames:
        raise InputError("The dataset source holds no files.")
    table = pd.concat(frames, ignore_index=True).astype(object)
    return table.where(table != "", None)


def _first_row(path: Path, delimiter: str) -> list[str]:
    with path.open(newline="", encoding="utf-8") as handle:
        return next((row for row in csv.reader(handle, delimiter=delimiter) if row), [])


def read_csv_arrow(files: list[Path], header: bool, delimiter: str) -> Any:
    """The CSV files as one Arrow table of strings (empty fields null), or None where Arrow's reader would
    read them differently from pandas' (ragged rows, repeated or differing column names): then ``read_csv``.

    Arrow parses and factorises the texts in C++ without one Python string per field, which is most of a
    baseline's time otherwise (41,188 rows x 60 columns: 2.4 M fields)."""
    import pyarrow as pa
    from pyarrow import csv as pacsv

    tables = []
    for path in files:
        first = _first_row(path, delimiter)
        names = first if header else [f"_c{i}" for i in range(len(first))]
        if not first or len(set(names)) != len(names) or (tables and names != tables[0].column_names):
            return None
        try:
            tables.append(pacsv.read_csv(
                path, read_options=pacsv.ReadOptions(column_names=names, skip_rows=1 if header else 0),
                parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
                convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()),
                                                     null_values=[""], strings_can_be_null=True)))
        except (pa.ArrowInvalid, UnicodeDecodeError):
            return None
    return pa.concat_tables(tables) if tables else None


def read_baseline_dataset(inputs: AnalyzerInput, arrow: bool = False) -> Any:
    """The dataset of a baselining job, in its ``dataset_format``: a pandas frame of texts (None for missing),
    or with ``arrow`` an Arrow table of strings when the data is CSV that Arrow reads as pandas would."""
    fmt = inputs.dataset_format
    if fmt.kind == "csv":
        files = _files(inputs.dataset_source)
        if arrow and len(fmt.field_delimiter) == 1:
            table = read_csv_arrow(files, fmt.header, fmt.field_delimiter)
            if table is not None:
                return table
        return read_csv(files, fmt.header, fmt.field_delimiter)
    if fmt.kind == "json":
        rows = []
        for path in _files(inputs.dataset_source):
            text = path.read_text()
            items = (json.loads(line) for line in text.splitlines() if line.strip()) if fmt.lines \
                else iter(json.loads(text) if text.strip().startswith("[") else [json.loads(text)])
            rows.extend(_flatten(item) for item in items)
        return _frame(rows)
    if fmt.kind == "parquet":
        frames = [pd.read_parquet(p) for p in _files(inputs.dataset_source, (".parquet",))]
        table = pd.concat(frames, ignore_index=True)
        return _frame(table.to_dict("records"), list(table.columns))
    return read_captured(inputs, [])


# ------------------------------------------------------------------ captured data
@dataclass
class EventData:
    """``inference_record.endpoint_input`` / ``endpoint_output`` as the analyzer hands them to scripts."""

    data: str
    encoding: str
    observedContentType: str  # noqa: N815 - the attribute name scripts use
    mode: str

    @property
    def observed_content_type(self) -> str:
        return self.observedContentType


@dataclass
class EventMetadata:
    event_id: str
    event_time: str
    inference_id: str | None = None
    custom_attribute: list[str] | None = None


@dataclass
class InferenceRecord:
    """The ``inference_record`` a ``preprocess_handler`` receives (one captured request)."""

    endpoint_input: EventData | None
    endpoint_output: EventData | None
    event_metadata: EventMetadata
    event_version: str
    ground_truth: Any = None


def _event(value: dict[str, Any] | None) -> EventData | None:
    if not value:
        return None
    return EventData(str(value.get("data", "")), value.get("encoding", "CSV"),
                     value.get("observedContentType", ""), value.get("mode", ""))


def captured_records(inputs: AnalyzerInput) -> Iterator[InferenceRecord]:
    """Every captured record under the dataset source whose ``inferenceTime`` is in the job's window."""
    start, end = inputs.start_time, inputs.end_time
    # capture writes inferenceTime as 2026-12-02T07:30:00Z: such texts compare as the times they spell
    first, last = (f"{t:%Y-%m-%dT%H:%M:%SZ}" if t and not t.microsecond else None for t in (start, end))
    for path in _files(inputs.dataset_source, (".jsonl", ".json")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
            except json.JSONDecodeError:
                log.warning("Skipping %s line %d: not JSON", path.name, number)
                continue
            meta = raw.get("eventMetadata") or {}
            when = meta.get("inferenceTime")
            if when and (start or end) and len(when) == 20 and when[10] == "T" and when[19] == "Z" \
                    and (first or not start) and (last or not end):
                if (first and when < first) or (last and when >= last):
                    continue
            elif when and (start or end):
                moment = dt.datetime.fromisoformat(when.replace("Z", "+00:00"))
                if (start and moment < start) or (end and moment >= end):
                    continue
            capture = raw.get("captureData") or {}
            custom = meta.get("customAttributes")
            yield InferenceRecord(
                _event(capture.get(inputs.dataset_format.capture_index_names[0])),
                _event(capture.get(inputs.dataset_format.capture_index_names[-1])),
                EventMetadata(meta.get("eventId", ""), when or "", meta.get("inferenceId"),
                              [custom] if isinstance(custom, str) else custom),
                str(raw.get("eventVersion", "0")), raw.get("groundTruthData"))


def _decoded(event: EventData | None) -> str:
    if event is None:
        return ""
    return base64.b64decode(event.data).decode("utf-8", "replace") if event.encoding == "BASE64" else event.data


def _values(event: EventData | None) -> list[list[Any]]:
    """The rows of one side of a capture: CSV lines, or a JSON value (flattened to its leaves)."""
    text = _decoded(event)
    if not text.strip():
        return []
    if event is not None and event.encoding == "JSON":
        value = json.loads(text)
        items = value if isinstance(value, list) else [value]
        return [list(_flatten(item).values()) if isinstance(item, dict) else
                (item if isinstance(item, list) else [item]) for item in items]
    if '"' not in text and "\n" not in text and "\r" not in text:  # one unquoted CSV row: most requests
        return [text.split(",")]
    return [row for row in csv.reader(io.StringIO(text)) if row]


def load_handler(path: Path, name: str) -> Callable[..., Any]:
    """Import the user's script and return its ``name`` function (``preprocess_handler`` …)."""
    if not path.is_file():
        raise InputError(f"The script {path.name} was not found in the job's inputs.")
    spec = importlib.util.spec_from_file_location(f"user_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise InputError(f"The script {path.name} cannot be imported.")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    handler = getattr(module, name, None)
    if not callable(handler):
        raise InputError(f"The script {path.name} does not define {name}().")
    return handler


def read_captured(inputs: AnalyzerInput, baseline_names: list[str]) -> Any:
    """Captured requests of the window as a table (pandas, or Arrow strings for CSV captures of one width);
    through the preprocessor when there is one."""
    records = captured_records(inputs)
    if inputs.record_preprocessor_script is not None:
        handler = load_handler(inputs.record_preprocessor_script, "preprocess_handler")
        takes_logger = len(inspect.signature(handler).parameters) >= 2
        rows: list[dict[str, Any]] = []
        for record in records:
            result = handler(record, log) if takes_logger else handler(record)
            for item in (result if isinstance(result, list) else [result]):
                if item:
                    rows.append(_flatten(item) if isinstance(item, dict) else {"_c0": item})
        return _frame(rows, [n for n in baseline_names if any(n in r for r in rows)])
    lines: list[list[Any]] = []
    text_only = True  # CSV captures hold only text: then the table is built in one step
    for record in records:
        text_only = text_only and "JSON" not in (getattr(record.endpoint_output, "encoding", ""),
                                                 getattr(record.endpoint_input, "encoding", ""))
        outputs, features = _values(record.endpoint_output), _values(record.endpoint_input)
        for i in range(max(len(outputs), len(features))):
            output = outputs[i] if i < len(outputs) else outputs[-1] if len(outputs) == 1 else []
            feature = features[i] if i < len(features) else []
            lines.append([*output, *feature] if inputs.dataset_format.output_columns_position == "START"
                         else [*feature, *output])
    width = max((len(line) for line in lines), default=0)
    names = [baseline_names[j] if j < len(baseline_names) else f"_c{j}" for j in range(width)]
    if text_only and all(len(line) == width for line in lines):  # Arrow strings: factorised without pandas
        import pyarrow as pa

        columns = list(zip(*lines, strict=True)) if lines else [()] * width
        return pa.Table.from_arrays([pa.array([v or None for v in column], pa.string()) for column in columns],
                                    names=names)
    if text_only:
        table = pd.DataFrame(lines, columns=names, dtype=object)
        return table.where(table.notna() & (table != ""), None)
    return _frame([dict(zip(names, line, strict=False)) for line in lines], names)
