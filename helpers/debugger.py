"""Read SageMaker Debugger tensors in a notebook, without smdebug.

smdebug (``smdebug.trials.create_trial``) is the official reader, but its last release needs NumPy 1
and protobuf 3, which a current Studio kernel does not have. This reader understands the same files
— the ones SageMaker's hook writes to ``<DebugHookConfig.S3OutputPath>/<job>/debug-output/`` on AWS,
and the local emulator writes likewise — with a small part of smdebug's API::

    trial = create_trial(f"{hook_s3_output_path}/{job_name}/debug-output")
    trial.tensor_names(collection="metrics")         # ['train-logloss', 'validation-logloss']
    trial.tensor("validation-logloss").values()      # {0: array([0.61]), 5: array([0.42]), ...}

The format: ``index/<n>/<step>_<worker>.json`` lists each tensor's byte range in
``events/<step>/<step>_<worker>.tfevents``; each range is a TFRecord (length, masked CRC32C of the
length, payload, footer) holding a TensorBoard ``Event`` protobuf with one tensor.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import Any

import numpy as np

#: TensorFlow DataType → NumPy (the types smdebug writes)
_DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 5: np.int16, 6: np.int8, 9: np.int64,
           10: np.bool_, 17: np.uint16, 19: np.float16, 22: np.uint32, 23: np.uint64}


def _fields(data: bytes) -> list[tuple[int, Any]]:
    """(field number, value) of a protobuf message: varints as int, length-delimited as bytes."""
    out, i = [], 0
    while i < len(data):
        key, i = _varint(data, i)
        kind = key & 7
        if kind == 0:
            value, i = _varint(data, i)
        elif kind == 2:
            size, i = _varint(data, i)
            value, i = data[i:i + size], i + size
        else:  # 64-bit (1) or 32-bit (5) fixed values
            width = 8 if kind == 1 else 4
            value, i = data[i:i + width], i + width
        out.append((key >> 3, value))
    return out


def _varint(data: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        byte = data[i]
        i += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, i


def _tensor(record: bytes) -> tuple[str, np.ndarray]:
    """The (name, value) of one TFRecord holding an ``Event`` → ``Summary`` → ``Value`` → ``TensorProto``."""
    (length,) = struct.unpack("<Q", record[:8])
    event = dict(_fields(record[12:12 + length]))
    value = dict(_fields(dict(_fields(event[5]))[1]))
    proto = _fields(value[8])
    shape = [dict(_fields(dim)).get(1, 0) for number, raw in proto if number == 2
             for n, dim in _fields(raw) if n == 2]
    strings = [raw.decode() for number, raw in proto if number == 8]
    fields = dict(proto)
    if strings or fields.get(1, 0) in (0, 7):
        return value[1].decode(), np.array(strings).reshape(shape)
    return value[1].decode(), np.frombuffer(fields.get(4, b""), dtype=_DTYPES[fields[1]]).copy().reshape(shape)


class Tensor:
    def __init__(self, trial: Trial, name: str) -> None:
        self.trial, self.name = trial, name

    def steps(self) -> list[int]:
        return sorted(self.trial._where[self.name])

    def value(self, step: int) -> np.ndarray:
        file, start, length = self.trial._where[self.name][step]
        return _tensor(self.trial._read(file)[start:start + length])[1]

    def values(self) -> dict[int, np.ndarray]:
        return {step: self.value(step) for step in self.steps()}


class Trial:
    """The tensors of one training job; ``refresh()`` picks up steps saved since it was created."""

    def __init__(self, path: str, s3_client: Any = None) -> None:
        self.path = path.rstrip("/")
        self._s3 = s3_client
        self._where: dict[str, dict[int, tuple[str, int, int]]] = {}
        self._cache: dict[str, bytes] = {}
        self._collections: dict[str, Any] = {}
        self.refresh()

    # ---------------------------------------------------------------- storage: S3 or a local directory
    def _client(self) -> Any:
        if self._s3 is None:
            import boto3

            self._s3 = boto3.client("s3")
        return self._s3

    def _list(self, prefix: str) -> list[str]:
        if not self.path.startswith("s3://"):
            root = Path(self.path)
            if (root / prefix).is_file():
                return [prefix]
            return sorted(str(p.relative_to(root)) for p in (root / prefix).rglob("*") if p.is_file())
        bucket, _, key = self.path[5:].partition("/")
        pages = self._client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{key}/{prefix}")
        return sorted(o["Key"][len(key) + 1:] for page in pages for o in page.get("Contents", []))

    def _read(self, relative: str) -> bytes:
        if relative not in self._cache:
            if self.path.startswith("s3://"):
                bucket, _, key = self.path[5:].partition("/")
                self._cache[relative] = self._client().get_object(Bucket=bucket, Key=f"{key}/{relative}")["Body"].read()
            else:
                self._cache[relative] = (Path(self.path) / relative).read_bytes()
        return self._cache[relative]

    # ---------------------------------------------------------------- smdebug's trial API (a part of it)
    def refresh(self) -> None:
        for key in self._list("index/"):
            if key.endswith(".json") and key not in self._cache:
                index = json.loads(self._read(key))
                step = int(Path(key).name.split("_")[0])
                for entry in index["tensor_payload"]:
                    self._where.setdefault(entry["tensorname"], {})[step] = (
                        index["meta"]["event_file_name"], entry["start_idx"], entry["length"])
        for key in self._list("collections/"):
            self._cache.pop(key, None)
            self._collections.update(json.loads(self._read(key)).get("collections", {}))

    def steps(self) -> list[int]:
        return sorted({step for steps in self._where.values() for step in steps})

    def collections(self) -> dict[str, Any]:
        return dict(self._collections)

    def tensor_names(self, regex: str | None = None, collection: str | None = None) -> list[str]:
        names = sorted(self._where)
        if collection is not None:
            members = set(self._collections.get(collection, {}).get("tensor_names", []))
            names = [name for name in names if name in members]
        return [name for name in names if regex is None or re.match(regex, name)]

    def tensor(self, name: str) -> Tensor:
        if name not in self._where:
            raise KeyError(f"No tensor named {name!r}; this trial has {', '.join(sorted(self._where)) or 'none'}.")
        return Tensor(self, name)

    def has_ended(self) -> bool:
        return bool(self._list("training_job_end.ts"))


def create_trial(path: str, s3_client: Any = None) -> Trial:
    """A trial from an ``s3://…/debug-output`` URI or a local directory, like ``smdebug.trials.create_trial``."""
    return Trial(path, s3_client)
