"""S3: moving a 50 MiB object of random bytes through boto3 and the emulator, vs. a plain file copy.

* ``put_object`` (the body as ``bytes``) and ``get_object`` (reading the whole body);
* ``upload_file`` / ``download_file`` (boto3's transfer manager: 8 MiB multipart parts,
  10 threads, ranged GETs on the way back);
* the baseline: ``shutil.copyfile`` of a 50 MiB file to a new file on the same disk (the emulator's
  store lives in the same temporary directory; the copy is deleted after each timing, untimed);
* for reference, ``put_object`` / ``get_object`` against a minimal HTTP server that discards what it
  receives and serves the body from memory: what boto3 itself costs (SigV4 payload SHA-256 and the
  CRC32 checksum on the way up, the CRC32 check on the way down), i.e. the best the emulator could do.

All are interleaved per repeat. Throughput is MiB/s (1 MiB = 2**20 bytes). ``cpu_seconds`` is the
CPU time of this whole process (client and emulator threads) per operation.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import statistics
import threading
import time
import zlib
from pathlib import Path
from typing import Any

SIZE = 50 * 2**20
MIB = 2**20
BUCKET = "bench-s3"
TARGET_MIBS = 200.0
TARGET_RATIO = 1 / 3
OPERATIONS = ("plain_copy", "put_object", "get_object", "upload_file", "download_file")
REFERENCE = ("put_object_discard_server", "get_object_memory_server")


class ReferenceServer:
    """HTTP/1.1 on 127.0.0.1 that reads and drops request bodies and answers GETs with ``payload``.

    No signature check, no hashing, no disk: the time boto3 spends against it is boto3's own.
    """

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        crc = zlib.crc32(payload).to_bytes(4, "big")
        self.crc32 = base64.b64encode(crc).decode()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.endpoint_url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._accept, name="reference-server", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        rfile = conn.makefile("rb")
        buffer = memoryview(bytearray(MIB))
        with conn, rfile:
            while True:
                request_line = rfile.readline()
                if not request_line:
                    return
                headers: dict[str, str] = {}
                while (line := rfile.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                if headers.get("expect", "").lower() == "100-continue":
                    conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                remaining = int(headers.get("content-length") or 0)
                while remaining:
                    got = rfile.readinto(buffer[: min(remaining, MIB)])
                    if not got:
                        return
                    remaining -= got
                if request_line.startswith(b"GET"):
                    head = (f"HTTP/1.1 200 OK\r\nContent-Length: {len(self.payload)}\r\n"
                            f"Content-Type: binary/octet-stream\r\nETag: \"reference\"\r\n"
                            f"x-amz-checksum-crc32: {self.crc32}\r\n\r\n")
                    conn.sendall(head.encode())
                    conn.sendall(self.payload)
                else:
                    conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 0\r\nETag: "reference"\r\n\r\n')

    def close(self) -> None:
        self.sock.close()


def _timed(fn: Any) -> tuple[float, float]:
    cpu, start = time.process_time(), time.perf_counter()
    fn()
    return time.perf_counter() - start, time.process_time() - cpu


def run(emu: Any, make_client: Any, work: Path, repeats: int, log: Any = print) -> dict[str, Any]:
    s3 = make_client("s3")
    s3.create_bucket(Bucket=BUCKET)
    work.mkdir(parents=True, exist_ok=True)
    payload = os.urandom(SIZE)
    source = work / "random-50MiB.bin"
    source.write_bytes(payload)
    copy_target, download_target = work / "copy.bin", work / "download.bin"
    reference = ReferenceServer(payload)
    ref_s3 = make_client("s3", endpoint_url=reference.endpoint_url)

    def plain_copy() -> None:
        shutil.copyfile(source, copy_target)

    def put_object() -> None:
        s3.put_object(Bucket=BUCKET, Key="put/random.bin", Body=payload)

    def get_object() -> None:
        body = s3.get_object(Bucket=BUCKET, Key="put/random.bin")["Body"].read()
        if len(body) != SIZE:
            raise RuntimeError(f"get_object returned {len(body)} bytes, expected {SIZE}")

    def upload_file() -> None:
        s3.upload_file(str(source), BUCKET, "upload/random.bin")

    def download_file() -> None:
        s3.download_file(BUCKET, "upload/random.bin", str(download_target))

    def put_object_discard_server() -> None:
        ref_s3.put_object(Bucket=BUCKET, Key="put/random.bin", Body=payload)

    def get_object_memory_server() -> None:
        body = ref_s3.get_object(Bucket=BUCKET, Key="put/random.bin")["Body"].read()
        if len(body) != SIZE:
            raise RuntimeError(f"reference get_object returned {len(body)} bytes, expected {SIZE}")

    steps = {"plain_copy": plain_copy, "put_object": put_object, "get_object": get_object,
             "upload_file": upload_file, "download_file": download_file,
             "put_object_discard_server": put_object_discard_server,
             "get_object_memory_server": get_object_memory_server}
    log("s3: warm-up (not counted) ...")
    for fn in steps.values():
        fn()
    copy_target.unlink()
    if download_target.read_bytes() != payload:
        raise RuntimeError("download_file returned different bytes")
    seconds: dict[str, list[float]] = {name: [] for name in steps}
    cpu: dict[str, list[float]] = {name: [] for name in steps}
    for i in range(repeats):
        for name, fn in steps.items():
            wall, used = _timed(fn)
            seconds[name].append(wall)
            cpu[name].append(used)
            if name == "plain_copy":
                copy_target.unlink()  # every copy creates its file, as a PutObject does
        log(f"s3: repeat {i + 1}/{repeats}: " + ", ".join(
            f"{name} {SIZE / MIB / seconds[name][-1]:.0f}" for name in steps) + " MiB/s")
    reference.close()

    rates = {name: [SIZE / MIB / s for s in seconds[name]] for name in steps}
    copy_rate = statistics.median(rates["plain_copy"])
    results: dict[str, Any] = {"object_bytes": SIZE}
    for name in steps:
        median_rate = statistics.median(rates[name])
        entry: dict[str, Any] = {
            "seconds_median": statistics.median(seconds[name]), "cpu_seconds_median": statistics.median(cpu[name]),
            "mib_per_s_median": median_rate, "mib_per_s_min": min(rates[name]), "mib_per_s_max": max(rates[name]),
            "ratio_to_plain_copy": median_rate / copy_rate, "mib_per_s_all": rates[name],
        }
        if name in OPERATIONS and name != "plain_copy":
            entry["target_met"] = median_rate >= TARGET_MIBS and median_rate / copy_rate >= TARGET_RATIO
        results[name] = entry
    results["targets"] = {"mib_per_s": TARGET_MIBS, "ratio_to_plain_copy": TARGET_RATIO}
    for path in (source, copy_target, download_target):
        path.unlink(missing_ok=True)
    return results
