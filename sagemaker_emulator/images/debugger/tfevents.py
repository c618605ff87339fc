"""SageMaker Debugger's tensor files, written and read without smdebug (which needs NumPy 1 and protobuf 3).

The layout and encoding are smdebug 1.0's (``core/writer.py``, ``tfevent/``, ``tfrecord/``,
``locations.py``), so a trial written here is read by ``smdebug.trials.create_trial`` and the
other way round:

* ``events/<step:012d>/<step:012d>_<worker>.tfevents`` — TFRecord framing (``uint64`` length,
  masked CRC32C of the length, the payload, then the masked CRC32C of ``b"0x12345678"``: smdebug
  only checksums payloads with ``write_checksum=True``), one ``Event`` protobuf per tensor whose
  ``Summary.Value`` holds a ``TensorProto`` and the ``mode``/``mode_step`` plugin data;
* ``index/<step // 1000:09d>/<step:012d>_<worker>.json`` — ``{"meta", "tensor_payload",
  "shape_payload"}`` giving each tensor's byte offset and length in the event file;
* ``collections/000000000/<worker>_collections.json`` — the collections and their save configs;
* ``training_job_end.ts`` — empty; SageMaker's platform writes it when the training job ends.

The protobuf messages are encoded by hand: five message types, a few fields each.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

CHECKSUM_MAGIC_BYTES = b"0x12345678"
END_OF_JOB = "training_job_end.ts"
MODES = {"TRAIN": 1, "EVAL": 2, "PREDICT": 3, "GLOBAL": 4}

#: TensorFlow's DataType numbers (smdebug ``tfevent/proto/types.proto``) ↔ NumPy
_DTYPES: dict[int, Any] = {1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 6: np.int8, 9: np.int64,
                           10: np.bool_, 19: np.float16, 17: np.uint16, 22: np.uint32, 23: np.uint64, 5: np.int16}
_NUMPY_TO_DTYPE = {np.dtype(v): k for k, v in _DTYPES.items()}
DT_STRING = 7


# ------------------------------------------------------------------ CRC32C (Castagnoli), as TFRecord masks it
def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


_MAGIC_FOOTER = struct.pack("<I", masked_crc32c(CHECKSUM_MAGIC_BYTES))


def frame(payload: bytes) -> bytes:
    """One TFRecord: length, its masked CRC, the payload, smdebug's constant footer."""
    header = struct.pack("<Q", len(payload))
    return header + struct.pack("<I", masked_crc32c(header)) + payload + _MAGIC_FOOTER


def unframe(data: bytes, offset: int = 0) -> tuple[bytes, int]:
    """The record at ``offset`` and the offset after it; a bad length checksum is a ``ValueError``."""
    header = data[offset:offset + 8]
    if len(header) < 8:
        raise ValueError(f"truncated record header at byte {offset}")
    (crc,) = struct.unpack("<I", data[offset + 8:offset + 12])
    if crc != masked_crc32c(header):
        raise ValueError(f"record length checksum mismatch at byte {offset}")
    (length,) = struct.unpack("<Q", header)
    start = offset + 12
    if start + length + 4 > len(data):
        raise ValueError(f"truncated record at byte {offset}")
    return data[start:start + length], start + length + 4


# ------------------------------------------------------------------ protobuf wire format
def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _field(number: int, wire: int) -> bytes:
    return _varint(number << 3 | wire)


def _bytes_field(number: int, value: bytes) -> bytes:
    return _field(number, 2) + _varint(len(value)) + value


def _int_field(number: int, value: int) -> bytes:
    return _field(number, 0) + _varint(value) if value else b""


def _parse(data: bytes) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) of each field of one message; value is int, bytes or float."""
    position = 0
    while position < len(data):
        key, position = _read_varint(data, position)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, position = _read_varint(data, position)
        elif wire == 1:
            (value,) = struct.unpack("<d", data[position:position + 8])
            position += 8
        elif wire == 2:
            length, position = _read_varint(data, position)
            value = data[position:position + length]
            position += length
        elif wire == 5:
            (value,) = struct.unpack("<f", data[position:position + 4])
            position += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, wire, value


def _read_varint(data: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7


# ------------------------------------------------------------------ Event ↔ (name, step, value, mode, mode_step)
def tensor_proto(value: np.ndarray, tag: str) -> bytes:
    """smdebug's ``make_tensor_proto``: dims named ``<tag>_<size>``; numbers as raw bytes, strings one by one."""
    dims = b"".join(_bytes_field(2, _int_field(1, int(size)) + _bytes_field(2, f"{tag}_{size}".encode()))
                    for size in value.shape)
    shape = _bytes_field(2, dims)
    if value.dtype.kind in "USO":
        strings = b"".join(_bytes_field(8, str(item).encode()) for item in value.reshape(-1))
        return shape + strings
    dtype = _NUMPY_TO_DTYPE.get(value.dtype)
    if dtype is None:
        raise TypeError(f"Numpy Datatype: {value.dtype} is currently not supported")
    return _int_field(1, dtype) + shape + _bytes_field(4, np.ascontiguousarray(value).tobytes())


def event(name: str, step: int, value: np.ndarray, mode: str = "GLOBAL", mode_step: int | None = None,
          wall_time: float | None = None) -> bytes:
    """An ``Event`` holding one tensor, as smdebug's ``FileWriter.write_tensor`` makes it."""
    mode_step = step if mode_step is None else mode_step
    plugins = (_bytes_field(1, _bytes_field(1, b"mode_step") + _bytes_field(2, str(mode_step).encode()))
               + _bytes_field(1, _bytes_field(1, b"mode") + _bytes_field(2, str(MODES[mode]).encode())))
    summary_value = (_bytes_field(1, name.encode()) + _bytes_field(8, tensor_proto(value, name))
                     + _bytes_field(9, plugins))  # protobuf's own order: by field number
    summary = _bytes_field(1, summary_value)
    header = _field(1, 1) + struct.pack("<d", time.time() if wall_time is None else wall_time)
    return header + _int_field(2, step) + _bytes_field(5, summary)


def _decode_tensor(data: bytes) -> np.ndarray:
    dtype, shape, content, strings = 0, [], b"", []
    for number, _, value in _parse(data):
        if number == 1:
            dtype = value
        elif number == 2:
            shape = [next((v for n, _, v in _parse(dim) if n == 1), 0)
                     for n, _, dim in _parse(value) if n == 2]
        elif number == 4:
            content = value
        elif number == 8:
            strings.append(value.decode("utf-8"))
    if strings or dtype == DT_STRING:
        return np.array(strings).reshape(shape)
    return np.frombuffer(content, dtype=_DTYPES[dtype]).copy().reshape(shape)


def decode_event(payload: bytes) -> list[tuple[str, int, np.ndarray, str, int]]:
    """The tensors of one ``Event``: (name, step, value, mode name, mode step)."""
    step, tensors = 0, []
    for number, _, value in _parse(payload):
        if number == 2:
            step = value
        elif number == 5:
            for vnum, _, summary_value in _parse(value):
                if vnum == 1:
                    tensors.append(_decode_value(summary_value))
    names = {v: k for k, v in MODES.items()}
    return [(name, step, array, names.get(mode, "GLOBAL"), step if mode_step is None else mode_step)
            for name, array, mode, mode_step in tensors]


def wall_time(payload: bytes) -> float:
    """When the ``Event`` was written (seconds since the epoch)."""
    return next((value for number, wire, value in _parse(payload) if number == 1 and wire == 1), 0.0)


def _decode_value(data: bytes) -> tuple[str, np.ndarray, int, int | None]:
    name, array, mode, mode_step = "", np.array([]), MODES["GLOBAL"], None
    for number, _, value in _parse(data):
        if number == 1:
            name = value.decode()
        elif number == 8:
            array = _decode_tensor(value)
        elif number == 9:
            for _, _, plugin in _parse(value):
                fields = {n: v.decode() for n, _, v in _parse(plugin)}
                if fields.get(1) == "mode_step":
                    mode_step = int(fields.get(2, "0"))
                elif fields.get(1) == "mode":
                    mode = int(fields.get(2, "4"))
    return name, array, mode, mode_step


# ------------------------------------------------------------------ file locations
def event_file(step: int, worker: str) -> str:
    return f"events/{step:012d}/{step:012d}_{worker}.tfevents"


def index_file(step: int, worker: str) -> str:
    return f"index/{step // 1000:09d}/{step:012d}_{worker}.json"


def collections_file(worker: str) -> str:
    return f"collections/000000000/{worker}_collections.json"


def step_of(index_key: str) -> int:
    """``…/index/000000000/000000000010_worker_0.json`` → 10."""
    return int(os.path.basename(index_key).split("_")[0])


def _atomic_write(path: Path, data: bytes) -> None:
    """Write via a rename, as smdebug's file access layer does: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".", suffix=".tmp", delete=False) as handle:
        handle.write(data)
    os.replace(handle.name, path)


def write_step(out_dir: Path, step: int, worker: str, tensors: list[tuple[str, np.ndarray]],
               mode: str = "GLOBAL") -> None:
    """One step's event file, then its index (readers find steps by their index files)."""
    if not tensors:
        return
    relative = event_file(step, worker)
    data, payload = bytearray(), []
    now = time.time()
    for name, value in tensors:
        record = frame(event(name, step, value, mode, step, now))
        payload.append({"tensorname": name, "start_idx": len(data), "length": len(record)})
        data += record
    _atomic_write(out_dir / relative, bytes(data))
    index = {"meta": {"mode": mode, "mode_step": step, "event_file_name": relative},
             "tensor_payload": payload, "shape_payload": []}
    _atomic_write(out_dir / index_file(step, worker), json.dumps(index).encode())


def write_collections(out_dir: Path, worker: str, collections: dict[str, dict[str, Any]], num_workers: int = 1) -> None:
    document = {"collections": collections, "_meta": {"num_workers": num_workers}}
    _atomic_write(out_dir / collections_file(worker), json.dumps(document).encode())


def read_records(data: bytes) -> Iterator[bytes]:
    offset = 0
    while offset < len(data):
        payload, offset = unframe(data, offset)
        yield payload
