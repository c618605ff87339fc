"""What hostile clients cost the daemon: memory, closing time, and other clients' latency.

Measured against ``sagemaker-emulator serve`` in its own process (as a notebook's daemon runs), so the
daemon's RSS is its own:

* **unauthenticated 200 MB POST**: a client without credentials POSTs to ``/endpoints/any/invocations``
  with ``Content-Length: 209715200``
  and pushes bytes as fast as the socket takes them, until the daemon answers and closes; daemon RSS
  (``VmRSS``) and peak (``VmHWM``) before and after, and how many bytes the client got to send;
* **wrong secret, 15 MB JSON**: the right access key with a wrong secret, whose body must be read to check
  the signature: spooled to disk beyond 1 MiB, so RSS should stay flat as well;
* **idle connection**: seconds until a connection that sends nothing is closed (default limits);
* **slowloris**: p50/p99 of ``ListTrainingJobs`` from one boto3 client, alone and while 100 connections
  trickle header lines (one every second) and are replaced as soon as they are closed.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_endpoints import emulator_process, percentiles, proc_status

CALLS = 400
LORIS = 100


def _post_huge(url: str, head: bytes, total: int) -> int:
    """Send ``head`` and up to ``total`` body bytes until the server stops reading; bytes sent."""
    host, port = url.split("//", 1)[1].split(":")
    sent = 0
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head)
        block = b"\0" * (1 << 20)
        try:
            while sent < total:
                sent += sock.send(block[: min(len(block), total - sent)])
        except OSError:
            pass
        try:
            sock.recv(65536)
        except OSError:
            pass
    return sent


def _rss(pid: int) -> dict[str, float]:
    status = proc_status(pid)
    return {"rss_mib": status["VmRSS"] / 1024, "peak_mib": status["VmHWM"] / 1024}


def _latencies(call: Callable[[], Any], count: int) -> list[float]:
    out = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        out.append((time.perf_counter() - started) * 1e3)
    return out


def _loris(url: str, stop: threading.Event) -> None:
    host, port = url.split("//", 1)[1].split(":")
    while not stop.is_set():
        try:
            with socket.create_connection((host, int(port)), timeout=5) as sock:
                sock.sendall(b"POST / HTTP/1.1\r\n")
                while not stop.wait(1.0):
                    sock.sendall(b"X-Slow: 1\r\n")
        except OSError:
            continue


def run(root: Path, repeats: int, log: Callable[[str], None]) -> dict[str, Any]:
    import boto3

    state = root / "hostile-state"
    state.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    with emulator_process(state) as emu:
        sm = boto3.client("sagemaker", endpoint_url=emu.endpoint_url, region_name="us-east-1",
                          aws_access_key_id=emu.access_key, aws_secret_access_key=emu.secret_key)
        sm.list_training_jobs()
        before = _rss(emu.pid)
        # SageMaker Runtime's path: the one whose body the gateway used to read whole before authenticating
        head = (b"POST /endpoints/any/invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
                b"Content-Length: 209715200\r\n\r\n")
        started = time.perf_counter()
        sent = _post_huge(emu.endpoint_url, head, 200 * 1024 * 1024)
        answered = time.perf_counter() - started
        after = _rss(emu.pid)
        results["unauthenticated_200mb"] = {"before": before, "after": after, "client_sent_bytes": sent,
                                            "seconds_to_answer": answered}
        log(f"hostile: unauthenticated 200 MB POST: RSS {before['rss_mib']:.1f} → {after['rss_mib']:.1f} MiB "
            f"(peak {before['peak_mib']:.1f} → {after['peak_mib']:.1f}); client got {sent / 1e6:.2f} MB out; "
            f"answered in {answered * 1e3:.1f} ms")

        wrong = boto3.client("sagemaker", endpoint_url=emu.endpoint_url, region_name="us-east-1",
                             aws_access_key_id=emu.access_key, aws_secret_access_key="w" * 40)
        before = _rss(emu.pid)
        try:
            wrong.list_training_jobs(NameContains="x" * 15_000_000)
        except Exception as exc:  # noqa: BLE001 - the refusal is the point
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
        after = _rss(emu.pid)
        results["wrong_secret_15mb"] = {"before": before, "after": after, "error": code}
        log(f"hostile: wrong secret, 15 MB JSON ({code}): RSS {before['rss_mib']:.1f} → {after['rss_mib']:.1f} MiB "
            f"(peak {before['peak_mib']:.1f} → {after['peak_mib']:.1f})")

        host, port = emu.endpoint_url.split("//", 1)[1].split(":")
        with socket.create_connection((host, int(port))) as sock:
            started = time.monotonic()
            sock.settimeout(60)
            try:
                sock.recv(1)
            except OSError:
                pass
            idle = time.monotonic() - started
        results["idle_close_seconds"] = idle
        log(f"hostile: an idle connection is closed after {idle:.2f} s")

        alone = _latencies(sm.list_training_jobs, CALLS)
        stop = threading.Event()
        threads = [threading.Thread(target=_loris, args=(emu.endpoint_url, stop), daemon=True) for _ in range(LORIS)]
        for thread in threads:
            thread.start()
        time.sleep(2)
        try:
            attacked = _latencies(sm.list_training_jobs, CALLS)
        finally:
            stop.set()
        results["slowloris"] = {"connections": LORIS, "calls": CALLS, "alone_ms": percentiles(alone),
                                "during_ms": percentiles(attacked)}
        a, d = results["slowloris"]["alone_ms"], results["slowloris"]["during_ms"]
        log(f"hostile: ListTrainingJobs p50/p99 alone {a['p50']:.2f}/{a['p99']:.2f} ms, during {LORIS} slowloris "
            f"connections {d['p50']:.2f}/{d['p99']:.2f} ms")
    return results


def print_results(results: dict[str, Any]) -> None:
    u, w = results["unauthenticated_200mb"], results["wrong_secret_15mb"]
    s = results["slowloris"]
    print("\nhostile clients (daemon in its own process)")
    print(f"  unauthenticated 200 MB POST   RSS {u['before']['rss_mib']:.1f} → {u['after']['rss_mib']:.1f} MiB, "
          f"peak {u['before']['peak_mib']:.1f} → {u['after']['peak_mib']:.1f} MiB, "
          f"{u['client_sent_bytes'] / 1e6:.2f} MB accepted by the socket before the refusal")
    print(f"  wrong secret, 15 MB body      RSS {w['before']['rss_mib']:.1f} → {w['after']['rss_mib']:.1f} MiB, "
          f"peak {w['before']['peak_mib']:.1f} → {w['after']['peak_mib']:.1f} MiB ({w['error']})")
    print(f"  idle connection closed after  {results['idle_close_seconds']:.2f} s")
    print(f"  ListTrainingJobs p50/p99      alone {s['alone_ms']['p50']:.2f}/{s['alone_ms']['p99']:.2f} ms, during "
          f"{s['connections']} slowloris connections {s['during_ms']['p50']:.2f}/{s['during_ms']['p99']:.2f} ms")
