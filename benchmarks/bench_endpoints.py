"""Endpoints: the Immersion Day XGBoost model behind a real-time endpoint, under load from 4 boto3 clients.

What is measured, in this order:

1. ``CreateEndpoint`` → ``InService``: a model trained in-process on the bank data with the lab's
   hyperparameters is packed as ``model.tar.gz`` (``xgboost-model`` inside), uploaded, and deployed
   with boto3 on the built-in XGBoost image; ``DescribeEndpoint`` is polled every 20 ms. Several
   endpoints are created one after another; the median counts.
2. The load: 10,000 single-row ``text/csv`` ``InvokeEndpoint`` calls (the held-out test rows, cycled)
   from 4 concurrent boto3 clients, 2,500 each, after 50 uncounted warm-up calls per client. Every
   answer is checked against the in-process prediction of the same row; boto3 retries are off, so
   an error is counted, never hidden. Reported: client-side latency (``invoke_endpoint`` + reading
   the body), gateway-side latency (request line in → response written, from the gateway's own
   ``/_emulator/stats`` ring), throughput, errors, the CPU each process spent per call, and the
   model server's RSS before and after.
3. Baselines, measured the same way:

   * one client, 1,000 calls one after another: the latency without any queueing;
   * the *floor*: a plain ``http.server.ThreadingHTTPServer`` (the gateway's own stack) in its own
     process that answers every ``InvokeEndpoint`` with a constant body: no SigV4, no routing, no
     model. No gateway built on this stack can answer boto3 faster;
   * the model server alone: the same rows POSTed to the endpoint's model-server process over 4
     kept-alive ``http.client`` connections (what the gateway itself does per call), unthrottled:
     its capacity;
   * in-process prediction of the same rows, one row per call: ``booster.predict(DMatrix(row))``
     and ``booster.inplace_predict(row)``, with ``nthread=1`` as the model server runs it.

Process layout (``--emulator``, ``--clients``): by default the emulator runs as its own
``sagemaker-emulator serve`` process (as ``sagemaker-emulator start`` runs it for a notebook) and
the clients are 4 threads of this process (as 4 threads of a notebook would be). With the emulator
in this process, its request threads queue for the same GIL as the clients' signing and parsing,
and "request in to response out" then measures the clients as much as the gateway; README.md shows
the three layouts side by side.

    .venv/bin/python benchmarks/bench_endpoints.py [--calls N] [--repeats N] [--output FILE]
        [--emulator subprocess|in-process] [--clients threads|processes] [--both-client-layouts]

``run(root, data, repeats, log)`` is the entry point for ``benchmarks/run.py --only endpoints``.
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import io
import json
import math
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tarfile
import threading
import time
import urllib.request
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
for entry in (str(HERE), str(REPO_ROOT)):
    if entry not in sys.path:
        sys.path.insert(0, entry)

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
REGION = "us-east-1"
BUCKET = "bench-endpoints"
CALLS = 10_000
CLIENTS = 4
WARM_UP_CALLS = 50  # per client, not counted: connections, boto3's lazy loaders, the model's first predict
POLL_SECONDS = 0.02
BARRIER_TIMEOUT = 300.0  # a client that died must not hang the benchmark
STATS_PATH = "/_emulator/stats"
TARGETS = {"gateway_p50_ms": 2.0, "gateway_p99_ms": 10.0, "in_service_seconds": 3.0}
FLOOR_BODY = b"0.0873265489935875"  # what the model answers for a typical row: same size on the wire


# ---------------------------------------------------------------- small helpers
def percentiles(values: list[float]) -> dict[str, float | None]:
    """Nearest-rank p50/p90/p99/max and the mean, in the unit of ``values``."""
    if not values:
        return {"p50": None, "p90": None, "p99": None, "max": None, "mean": None, "n": 0}
    ordered = sorted(values)

    def rank(q: float) -> float:
        return ordered[min(len(ordered), max(1, math.ceil(q * len(ordered) - 1e-9))) - 1]

    return {"p50": rank(0.50), "p90": rank(0.90), "p99": rank(0.99), "max": ordered[-1],
            "mean": statistics.fmean(ordered), "n": len(ordered)}


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM (peak RSS) of ``pid`` in KiB, from ``/proc/<pid>/status``."""
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    except (OSError, ValueError):
        pass
    return out


def proc_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` itself (all its threads), from ``/proc/<pid>/stat``."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def model_server_pids(state_dir: Path, endpoint: str) -> list[int]:
    """The model-server processes of ``endpoint``: their working directory is an instance directory."""
    marker = str(state_dir / "endpoints" / endpoint) + "/"
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if b"sagemaker_emulator.images.model_server" not in (entry / "cmdline").read_bytes():
                continue
            if (os.readlink(entry / "cwd") + "/").startswith(marker):
                pids.append(int(entry.name))
        except OSError:
            continue
    return sorted(pids)


def model_server_port(pid: int) -> int:
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    for item in environ:
        if item.startswith(b"SAGEMAKER_BIND_TO_PORT="):
            return int(item.split(b"=", 1)[1])
    raise RuntimeError(f"model server {pid} has no SAGEMAKER_BIND_TO_PORT")


class MachineWitness:
    """Share of the CPUs that processes *outside* the benchmark used during one phase (noise).

    ``run.py``'s ``CpuWitness`` counts this process and its reaped children; here the emulator,
    its model servers and client processes are alive during the phase, so their CPU is read from
    ``/proc`` instead.
    """

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.start = self._snapshot()

    def _snapshot(self) -> tuple[float, float, float, dict[int, float]]:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
        user, nice, system, _idle, _iowait, irq, softirq, steal = fields
        busy = (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
        t = os.times()
        per_pid = {pid: proc_cpu_seconds(pid) or 0.0 for pid in self.pids}
        return busy, t.user + t.system + t.children_user + t.children_system, time.monotonic(), per_pid

    def finish(self) -> dict[str, Any]:
        end = self._snapshot()
        busy, own, wall = (b - a for a, b in zip(self.start[:3], end[:3], strict=True))
        per_pid = {pid: end[3][pid] - self.start[3].get(pid, 0.0) for pid in self.pids}
        others = busy - own - sum(per_pid.values())
        return {"others_share": max(0.0, others / ((os.cpu_count() or 1) * wall)) if wall > 0 else None,
                "wall": wall, "self_cpu_seconds": own, "cpu_seconds_by_pid": per_pid}


# ---------------------------------------------------------------- the model and the rows
@dataclass
class Model:
    booster: Any
    archive: bytes
    rows: list[bytes]  # one CSV line per test row, label removed: what a notebook's CSVSerializer sends
    matrix: Any  # the same rows as float64, for in-process prediction
    expected: list[float]  # the in-process prediction of each row
    train_seconds: float


def train_model(data: Any) -> Model:
    """The lab's model, trained in-process (same hyperparameters as the training benchmark)."""
    import numpy as np
    import xgboost as xgb
    from bench_training import HYPERPARAMETERS, xgb_params

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # XGBoost >= 3.1: "Text file input has been deprecated"
        start = time.perf_counter()
        train = xgb.DMatrix(f"{data.train_csv}?format=csv&label_column=0")
        booster = xgb.train(xgb_params(), train, num_boost_round=int(HYPERPARAMETERS["num_round"]))
        seconds = time.perf_counter() - start
    raw = bytes(booster.save_raw("ubj"))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("xgboost-model")
        info.size = len(raw)
        tar.addfile(info, io.BytesIO(raw))
    lines = [line.split(",", 1)[1] for line in Path(data.test_csv).read_text().splitlines() if line]
    matrix = np.array([[float(v) for v in line.split(",")] for line in lines])
    booster.set_param("nthread", 1)  # as the model server runs it (OMP_NUM_THREADS=1, nthread=1)
    expected = [float(v) for v in booster.inplace_predict(matrix)]
    return Model(booster, buf.getvalue(), [line.encode() for line in lines], matrix, expected, seconds)


def in_process_predictions(model: Model, calls: int) -> dict[str, Any]:
    """Per-row prediction in this process: the cost of the model itself, with no HTTP at all."""
    import xgboost as xgb

    n = len(model.rows)
    out: dict[str, Any] = {}
    for label, predict in (
        ("predict_dmatrix", lambda i: model.booster.predict(xgb.DMatrix(model.matrix[i:i + 1]))),
        ("inplace_predict", lambda i: model.booster.inplace_predict(model.matrix[i:i + 1])),
    ):
        for i in range(200):  # warm-up
            predict(i % n)
        times = []
        for i in range(calls):
            start = time.perf_counter()
            predict(i % n)
            times.append((time.perf_counter() - start) * 1e3)
        out[label] = percentiles(times)
    return out


# ---------------------------------------------------------------- the emulator, as a process or in-process
@dataclass
class Running:
    endpoint_url: str
    access_key: str
    secret_key: str
    state_dir: Path
    pid: int


@contextmanager
def emulator_process(state_dir: Path) -> Iterator[Running]:
    """``sagemaker-emulator serve`` in its own process, as ``sagemaker-emulator start`` runs it."""
    from sagemaker_emulator.config import StatePaths, load_credentials

    paths = StatePaths(state_dir).ensure()
    log_file = open(state_dir / "bench-daemon.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-m", "sagemaker_emulator.cli", "serve", "--state-dir", str(state_dir),
                             "--port", "0"], stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                            cwd=state_dir)
    try:
        deadline = time.time() + 60
        info: dict[str, Any] = {}
        while time.time() < deadline and proc.poll() is None:
            try:
                info = json.loads(paths.server_info.read_text())
                if info.get("pid") == proc.pid:
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        if info.get("pid") != proc.pid:
            raise RuntimeError("the emulator did not start:\n" + (state_dir / "bench-daemon.log").read_text())
        creds = load_credentials(paths)
        yield Running(info["endpoint_url"], creds.access_key, creds.secret_key, state_dir, proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log_file.close()


@contextmanager
def emulator_in_process(state_dir: Path) -> Iterator[Running]:
    """The emulator's gateway as threads of this process (how the tests and ``run.py`` start it)."""
    from sagemaker_emulator.app import Emulator

    emu = Emulator(state_dir)
    emu.start("127.0.0.1", 0)
    try:
        yield Running(emu.endpoint_url, emu.credentials.access_key, emu.credentials.secret_key, emu.paths.root,
                      os.getpid())
    finally:
        emu.stop()


def gateway_stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + STATS_PATH, timeout=10) as resp:
        return json.loads(resp.read())["sagemaker-runtime"]


# ---------------------------------------------------------------- deployment
def deploy(emu: Running, model: Model, count: int, log: Callable[[str], None]) -> dict[str, Any]:
    """Create ``count`` endpoints one after another, timing ``CreateEndpoint`` → ``InService`` each.

    All but the last are deleted again; the last one serves the load.
    """
    import boto3

    from sagemaker_emulator.config import ROLE_ARN

    session = boto3.Session(aws_access_key_id=emu.access_key, aws_secret_access_key=emu.secret_key,
                            region_name=REGION)
    s3 = session.client("s3", endpoint_url=emu.endpoint_url)
    sm = session.client("sagemaker", endpoint_url=emu.endpoint_url)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="bank-xgboost/model.tar.gz", Body=model.archive)
    suffix = uuid.uuid4().hex[:8]
    sm.create_model(ModelName=f"bench-{suffix}", ExecutionRoleArn=ROLE_ARN,
                    PrimaryContainer={"Image": IMAGE, "ModelDataUrl": f"s3://{BUCKET}/bank-xgboost/model.tar.gz"})
    sm.create_endpoint_config(EndpointConfigName=f"bench-{suffix}", ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": f"bench-{suffix}", "InitialInstanceCount": 1,
        "InstanceType": "ml.m5.xlarge", "InitialVariantWeight": 1.0}])
    times, describe_calls, name = [], [], ""
    for i in range(count):
        if name:
            sm.delete_endpoint(EndpointName=name)
        name = f"bench-{suffix}-{i + 1}"
        start = time.perf_counter()
        sm.create_endpoint(EndpointName=name, EndpointConfigName=f"bench-{suffix}")
        calls = 0
        while True:
            status = sm.describe_endpoint(EndpointName=name)["EndpointStatus"]
            calls += 1
            if status != "Creating":
                break
            time.sleep(POLL_SECONDS)
        times.append(time.perf_counter() - start)
        describe_calls.append(calls)
        if status != "InService":
            reason = sm.describe_endpoint(EndpointName=name).get("FailureReason")
            raise RuntimeError(f"endpoint {name} ended {status}: {reason}")
        log(f"endpoints: CreateEndpoint → InService {i + 1}/{count}: {times[-1]:.3f} s")
    return {"endpoint": name, "in_service_seconds": summary(times), "runs": times,
            "describe_calls": describe_calls, "first": times[0]}


# ---------------------------------------------------------------- the load
@dataclass
class ClientSpec:
    """What one load client needs; plain data so that it can be sent to a client process."""

    mode: str  # "boto3" (SageMaker Runtime API) or "http" (POST /invocations straight to a model server)
    url: str
    access_key: str
    secret_key: str
    endpoint: str
    rows: list[bytes]
    expected: list[float] | None  # None: do not check the answers (the floor server's are constant)
    warm_up: int


def _client_calls(spec: ClientSpec) -> Callable[[bytes], bytes]:
    if spec.mode == "http":
        host, port = spec.url.removeprefix("http://").rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=65)
        headers = {"Content-Type": "text/csv", "Accept": "text/csv"}

        def post(body: bytes) -> bytes:
            conn.request("POST", "/invocations", body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status}: {data[:200]!r}")
            return data

        return post

    import boto3
    import botocore.config

    # No retries: an error must be counted, not silently repeated. 65 s is SageMaker's own limit.
    config = botocore.config.Config(retries={"total_max_attempts": 1}, read_timeout=65)
    client = boto3.Session(aws_access_key_id=spec.access_key, aws_secret_access_key=spec.secret_key,
                           region_name=REGION).client("sagemaker-runtime", endpoint_url=spec.url, config=config)

    def invoke(body: bytes) -> bytes:
        resp = client.invoke_endpoint(EndpointName=spec.endpoint, ContentType="text/csv", Accept="text/csv",
                                      Body=body)
        return resp["Body"].read()

    return invoke


def run_client(spec: ClientSpec, ready: Any, go: Any) -> dict[str, Any]:
    """Warm up, wait for the others, then send every row once; per-call latency in milliseconds."""
    call = _client_calls(spec)
    warm_up_errors = 0
    for i in range(spec.warm_up):
        try:
            call(spec.rows[i % len(spec.rows)])
        except Exception:  # reported, but a client that cannot warm up must still reach the barrier
            warm_up_errors += 1
    ready.wait(BARRIER_TIMEOUT)
    go.wait(BARRIER_TIMEOUT)
    latencies: list[float] = []
    errors: list[str] = []
    wrong = 0
    cpu, start = time.process_time(), time.perf_counter()
    for i, body in enumerate(spec.rows):
        before = time.perf_counter()
        try:
            answer = call(body)
        except Exception as exc:  # counted and reported, never retried
            errors.append(f"{type(exc).__name__}: {exc}"[:300])
            continue
        latencies.append((time.perf_counter() - before) * 1e3)
        if spec.expected is not None and not _same_prediction(answer, spec.expected[i]):
            wrong += 1
    end = time.perf_counter()
    return {"latencies_ms": latencies, "errors": errors, "wrong_answers": wrong, "start": start, "end": end,
            "cpu_seconds": time.process_time() - cpu, "warm_up_errors": warm_up_errors}


def _same_prediction(answer: bytes, expected: float) -> bool:
    try:
        return abs(float(answer) - expected) <= 1e-6
    except ValueError:
        return False


def _client_process(spec: ClientSpec, ready: Any, go: Any, results: Any) -> None:
    results.put(run_client(spec, ready, go))


def _collect(queue: Any, procs: list[Any]) -> list[dict[str, Any]]:
    """Every client process's result; a client that died (and so never reports) fails the run instead of hanging it."""
    import queue as queues

    outcomes: list[dict[str, Any]] = []
    while len(outcomes) < len(procs):
        try:
            outcomes.append(queue.get(timeout=1.0))
        except queues.Empty:
            dead = [p for p in procs if p.exitcode not in (None, 0)]
            if dead:
                raise RuntimeError(f"{len(dead)} client process(es) died (exit code {dead[0].exitcode})") from None
    return outcomes


def load(specs: list[ClientSpec], kind: str, on_ready: Callable[[], Any], watch_pids: list[int]) -> dict[str, Any]:
    """Run the clients concurrently (threads of this process, or processes); merge their figures.

    ``on_ready`` runs once every client has warmed up and before any counted call starts (it reads
    the gateway's request count, so that exactly the counted calls are taken from its ring).
    """
    outcomes: list[dict[str, Any]] = []
    client_pids: list[int] = []
    if kind == "threads":
        ready, go = threading.Barrier(len(specs) + 1), threading.Barrier(len(specs) + 1)
        threads = [threading.Thread(target=lambda s=s: outcomes.append(run_client(s, ready, go)), daemon=True)
                   for s in specs]
        for t in threads:
            t.start()
    else:
        ctx = multiprocessing.get_context("spawn")
        ready, go, queue = ctx.Barrier(len(specs) + 1), ctx.Barrier(len(specs) + 1), ctx.Queue()
        procs = [ctx.Process(target=_client_process, args=(s, ready, go, queue), daemon=True) for s in specs]
        for p in procs:
            p.start()
        client_pids = [p.pid for p in procs if p.pid is not None]
    ready.wait(BARRIER_TIMEOUT)
    marker = on_ready()
    witness = MachineWitness([pid for pid in watch_pids + client_pids if pid != os.getpid()])
    go.wait(BARRIER_TIMEOUT)
    if kind == "threads":
        for t in threads:
            t.join()
    else:
        outcomes = _collect(queue, procs)
    noise = witness.finish()
    if kind != "threads":
        for p in procs:
            p.join()
    latencies = [x for o in outcomes for x in o["latencies_ms"]]
    errors = [e for o in outcomes for e in o["errors"]]
    wall = max(o["end"] for o in outcomes) - min(o["start"] for o in outcomes)
    calls = len(latencies) + len(errors)
    return {
        "calls": calls, "errors": len(errors), "error_samples": errors[:5],
        "wrong_answers": sum(o["wrong_answers"] for o in outcomes),
        "warm_up_errors": sum(o["warm_up_errors"] for o in outcomes),
        "client_ms": percentiles(latencies), "wall_seconds": wall, "throughput_per_s": calls / wall,
        "client_cpu_ms_per_call": 1e3 * sum(o["cpu_seconds"] for o in outcomes) / calls
        if kind != "threads" else 1e3 * noise["self_cpu_seconds"] / calls,
        "noise": noise, "marker": marker,
    }


def split_rows(model: Model, calls: int, clients: int) -> list[tuple[list[bytes], list[float]]]:
    """Client ``k`` sends rows ``k·calls/clients …`` of the test set, cycling through it."""
    per = calls // clients
    n = len(model.rows)
    out = []
    for k in range(clients):
        idx = [(k * per + i) % n for i in range(per)]
        out.append(([model.rows[i] for i in idx], [model.expected[i] for i in idx]))
    return out


# ---------------------------------------------------------------- the floor: a plain http.server that answers
class FloorTimes:
    """Server-side durations (request line read → response written), as the gateway records them."""

    def __init__(self) -> None:
        self.durations: list[float] = []
        self.lock = threading.Lock()


class FloorHandler(http.server.BaseHTTPRequestHandler):
    """Answers any POST as ``InvokeEndpoint`` would, with a constant body: the gateway's stack, no logic."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    times: FloorTimes

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def parse_request(self) -> bool:
        self._started = time.perf_counter()
        return super().parse_request()

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        before = time.perf_counter()
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._started += time.perf_counter() - before  # the wait for the body is off the clock, as in the gateway
        self.send_response(200)
        self.send_header("Content-Type", "text/csv; charset=utf-8")
        self.send_header("x-Amzn-Invoked-Production-Variant", "AllTraffic")
        self.send_header("x-amzn-RequestId", "00000000-0000-0000-0000-000000000000")
        self.send_header("Content-Length", str(len(FLOOR_BODY)))
        self._headers_buffer.append(b"\r\n" + FLOOR_BODY)  # head and body in one sendall, as the gateway does
        self.flush_headers()
        elapsed = time.perf_counter() - self._started
        with self.times.lock:
            self.times.durations.append(elapsed)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        with self.times.lock:
            body = json.dumps({"sagemaker-runtime": {"count": len(self.times.durations), "durations_us": [
                round(d * 1e6, 1) for d in self.times.durations[-16384:]]}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def serve_floor(port_queue: Any) -> None:
    """Entry point of the floor-server process."""
    handler = type("Floor", (FloorHandler,), {"times": FloorTimes()})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    port_queue.put(server.server_address[1])
    server.serve_forever()


@contextmanager
def floor_server() -> Iterator[tuple[str, int]]:
    ctx = multiprocessing.get_context("spawn")
    port_queue = ctx.Queue()
    proc = ctx.Process(target=serve_floor, args=(port_queue,), daemon=True)
    proc.start()
    try:
        yield f"http://127.0.0.1:{port_queue.get(timeout=30)}", proc.pid or 0
    finally:
        proc.terminate()
        proc.join(10)


# ---------------------------------------------------------------- one measured load, with the server-side figures
def measured_load(url: str, specs: list[ClientSpec], kind: str, server_pid: int | None,
                  model_pids: list[int]) -> dict[str, Any]:
    """The load, what the server recorded for exactly these calls, and the CPU per call of each process.

    ``server_pid``: the process that answers ``url`` (gateway or floor server; None when it is this
    process); ``model_pids``: the model servers behind it.
    """
    boto = specs[0].mode == "boto3"
    pids = [p for p in [server_pid, *model_pids] if p is not None]
    result = load(specs, kind, (lambda: gateway_stats(url)["count"]) if boto else (lambda: None), pids)
    marker = result.pop("marker")
    if boto:
        stats = gateway_stats(url)
        new = stats["count"] - marker
        samples = stats["durations_us"][-new:] if 0 < new <= len(stats["durations_us"]) else []
        result["server_ms"] = percentiles([d / 1e3 for d in samples])
        result["server_errors"] = stats.get("errors")
    cpu = result["noise"]["cpu_seconds_by_pid"]
    calls = result["calls"]
    result["server_cpu_ms_per_call"] = 1e3 * cpu[server_pid] / calls if server_pid in cpu else None
    result["model_server_cpu_ms_per_call"] = 1e3 * sum(cpu.get(p, 0.0) for p in model_pids) / calls \
        if model_pids else None
    return result


def run(root: Path, data: Any, repeats: int, log: Callable[[str], None] = print, *, calls: int = CALLS,
        emulator: str = "subprocess", clients: str = "threads", extra_layouts: bool = False) -> dict[str, Any]:
    """Everything above, in one emulator; see the module docstring."""
    log("endpoints: training the model in-process ...")
    model = train_model(data)
    start_emulator = emulator_process if emulator == "subprocess" else emulator_in_process
    parts = split_rows(model, calls, CLIENTS)
    results: dict[str, Any] = {
        "calls": calls, "clients": CLIENTS, "warm_up_calls_per_client": WARM_UP_CALLS,
        "layout": {"emulator": emulator, "clients": clients}, "test_rows": len(model.rows),
        "feature_columns": int(model.matrix.shape[1]),
        "row_bytes_median": statistics.median(len(r) for r in model.rows),
        "train_seconds": model.train_seconds, "targets": TARGETS,
    }
    with start_emulator(root / f"endpoints-state-{uuid.uuid4().hex[:6]}") as emu:
        deployed = deploy(emu, model, max(3, repeats), log)
        results["deploy"] = deployed
        name = deployed["endpoint"]
        servers = model_server_pids(emu.state_dir, name)
        gateway_pid = emu.pid if emu.pid != os.getpid() else None
        results["model_server_pids"] = servers
        results["rss_kib_before"] = {str(pid): proc_status(pid) for pid in servers}

        def specs(mode: str, url: str, check: bool = True, count: int = CLIENTS) -> list[ClientSpec]:
            chosen = parts if count == CLIENTS else split_rows(model, calls // 10, count)
            return [ClientSpec(mode, url, emu.access_key, emu.secret_key, name, rows, exp if check else None,
                               WARM_UP_CALLS) for rows, exp in chosen]

        layouts = [clients] + ([k for k in ("threads", "processes") if k != clients] if extra_layouts else [])
        for kind in layouts:
            log(f"endpoints: {calls} InvokeEndpoint calls from {CLIENTS} boto3 clients ({kind}) ...")
            key = "load" if kind == clients else f"load_{kind}"
            results[key] = r = measured_load(emu.endpoint_url, specs("boto3", emu.endpoint_url), kind, gateway_pid,
                                             servers)
            log(f"endpoints: gateway p50 {r['server_ms']['p50']:.2f} ms p99 {r['server_ms']['p99']:.2f} ms, "
                f"client p50 {r['client_ms']['p50']:.2f} ms p99 {r['client_ms']['p99']:.2f} ms, "
                f"{r['throughput_per_s']:.0f}/s, errors {r['errors']}")
        results["rss_kib_after"] = {str(pid): proc_status(pid) for pid in servers}
        results["gateway_rss_kib"] = proc_status(gateway_pid) if gateway_pid else None

        log(f"endpoints: {calls // 10} calls from one client, one after another (no concurrency) ...")
        results["sequential"] = measured_load(emu.endpoint_url, specs("boto3", emu.endpoint_url, count=1), "threads",
                                              gateway_pid, servers)
        log(f"endpoints: the same rows straight to the model server ({CLIENTS} http.client connections) ...")
        port_url = f"http://127.0.0.1:{model_server_port(servers[0])}"
        results["model_server_direct"] = measured_load(port_url, specs("http", port_url), clients, None, servers)

    log(f"endpoints: floor — the same boto3 calls against a plain ThreadingHTTPServer ({clients}) ...")
    with floor_server() as (floor_url, floor_pid):
        results["floor"] = measured_load(floor_url, specs("boto3", floor_url, check=False), clients, floor_pid, [])

    log("endpoints: in-process prediction of the same rows ...")
    results["in_process"] = in_process_predictions(model, calls)
    main_load = results["load"]
    results["target_met"] = {
        "gateway_p50": main_load["server_ms"]["p50"] <= TARGETS["gateway_p50_ms"],
        "gateway_p99": main_load["server_ms"]["p99"] <= TARGETS["gateway_p99_ms"],
        "in_service": deployed["in_service_seconds"]["median"] <= TARGETS["in_service_seconds"],
        "zero_errors": main_load["errors"] == 0 and main_load["wrong_answers"] == 0,
    }
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=CALLS)
    parser.add_argument("--repeats", type=int, default=3, help="endpoints created for the InService timing")
    parser.add_argument("--emulator", choices=("subprocess", "in-process"), default="subprocess")
    parser.add_argument("--clients", choices=("threads", "processes"), default="threads")
    parser.add_argument("--both-client-layouts", action="store_true",
                        help="also run the load with the other client layout")
    parser.add_argument("--output", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    import shutil
    import tempfile

    import bank_data
    from run import print_endpoints

    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    root = Path(tempfile.mkdtemp(prefix="sagemaker-emulator-bench-"))
    try:
        data = bank_data.prepare(root / "data")
        results = run(root, data, args.repeats, lambda m: print(m, flush=True), calls=args.calls,
                      emulator=args.emulator, clients=args.clients, extra_layouts=args.both_client_layouts)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print_endpoints(results)
    if args.output:
        args.output.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
