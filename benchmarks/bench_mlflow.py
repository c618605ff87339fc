"""MLflow: ``log_metric`` latency to an MLflow App through the emulator vs straight to its server.

Four ways to the same ``mlflow server`` of one MLflow App, each timed over the same number of
``mlflow.log_metric`` calls on one run (after a few warm-up calls), **interleaved** call by call
(a, b, c, d, a, b, c, d, …) so that the load of a shared machine falls on every way alike:

* **ARN via proxy** — ``mlflow.set_tracking_uri(<app ARN>)`` with the ``sagemaker-mlflow`` plugin, as a
  notebook does: HTTPS to ``mlflow.sagemaker.<region>.app.aws`` through the emulator's proxy (TLS
  terminated with the local CA), SigV4 checked by the gateway, forwarded to the server;
* **ARN via gateway** — the same plugin with ``SAGEMAKER_MLFLOW_CUSTOM_ENDPOINT`` set to the
  gateway's plain HTTP address (no proxy, no TLS): what the gateway's checks and forwarding cost;
* **ARN to the server** — the same plugin (signing, its headers) with the custom endpoint set to the
  server's own address: the plugin's client-side cost without any of ours;
* **plain to the server** — plain MLflow to the server's loopback port (no plugin): the baseline.

So b − c is the gateway (SigV4 check, app lookup, forwarding), a − b the proxy and TLS, c − d the
plugin's own signing on the client. Each ``log_metric`` is two requests (``runs/get``, then
``runs/log-metric``).

    .venv/bin/python benchmarks/bench_mlflow.py [--calls N]     # standalone, with its own emulator
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

WARM_UP = 3


def _interleaved(run_id: str, calls: int, ways: dict[str, tuple[str, str | None]]) -> dict[str, list[float]]:
    """``log_metric`` latencies per way; a way is (tracking URI, ``SAGEMAKER_MLFLOW_CUSTOM_ENDPOINT`` or None)."""
    import mlflow

    out: dict[str, list[float]] = {name: [] for name in ways}
    for i in range(WARM_UP + calls):
        for name, (uri, endpoint) in ways.items():
            mlflow.set_tracking_uri(uri)
            if endpoint is None:
                os.environ.pop("SAGEMAKER_MLFLOW_CUSTOM_ENDPOINT", None)
            else:
                os.environ["SAGEMAKER_MLFLOW_CUSTOM_ENDPOINT"] = endpoint
            began = time.perf_counter()
            mlflow.log_metric("x", float(i), step=i, run_id=run_id)
            if i >= WARM_UP:
                out[name].append(time.perf_counter() - began)
    os.environ.pop("SAGEMAKER_MLFLOW_CUSTOM_ENDPOINT", None)
    return out


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"median_ms": statistics.median(ordered) * 1000, "p90_ms": ordered[int(len(ordered) * 0.9)] * 1000,
            "n": len(ordered)}


def run(emulator: Any, calls: int, log: Any = print) -> dict[str, Any]:
    import boto3
    import mlflow

    from sagemaker_emulator.config import ROLE_ARN
    from sagemaker_emulator.envvars import environment
    from sagemaker_emulator.runtime.mlflow_server import route_prefix

    os.environ.update(environment(emulator.paths.root, emulator.endpoint_url, emulator.region))
    sm, s3 = boto3.client("sagemaker"), boto3.client("s3")
    s3.create_bucket(Bucket="bench-mlflow")
    began = time.perf_counter()
    arn = sm.create_mlflow_app(Name="bench", ArtifactStoreUri="s3://bench-mlflow/artifacts", RoleArn=ROLE_ARN)["Arn"]
    while (status := sm.describe_mlflow_app(Arn=arn)["Status"]) == "Creating":
        time.sleep(0.5)
    if status != "Created":
        raise RuntimeError(f"the MLflow App ended {status}")
    startup = time.perf_counter() - began
    log(f"mlflow: app Created in {startup:.1f} s; timing {calls} log_metric calls four ways, interleaved ...")
    mlflow.set_tracking_uri(arn)
    run_id = mlflow.start_run().info.run_id
    mlflow.end_run()
    results: dict[str, Any] = {"app_startup_seconds": startup}
    app_id = arn.rsplit("/", 1)[1]
    server = f"http://127.0.0.1:{emulator.mlflow.port(app_id)}{route_prefix(app_id)}"
    ways = {"arn_through_proxy": (arn, None), "arn_custom_endpoint": (arn, emulator.endpoint_url),
            "arn_to_server": (arn, server), "direct": (server, None)}
    latencies = _interleaved(run_id, calls, ways)
    for name, values in latencies.items():
        results[name] = _summary(values)
    paired = {"gateway": ("arn_custom_endpoint", "arn_to_server"), "proxy_tls": ("arn_through_proxy",
                                                                                  "arn_custom_endpoint"),
              "plugin_client": ("arn_to_server", "direct")}
    results["overheads_ms"] = {name: statistics.median(x - y for x, y in zip(latencies[a], latencies[b],
                                                                              strict=True)) * 1000
                               for name, (a, b) in paired.items()}
    sm.delete_mlflow_app(Arn=arn)
    return results


def summary_line(result: dict[str, Any]) -> str:
    parts = [f"{label} {result[key]['median_ms']:.0f} ms median / {result[key]['p90_ms']:.0f} ms p90"
             for key, label in (("arn_through_proxy", "ARN via proxy+TLS"), ("arn_custom_endpoint", "ARN via gateway"),
                                ("arn_to_server", "ARN to the server"), ("direct", "plain to the server"))]
    extra = result["overheads_ms"]
    return (f"MLflow log_metric: {'; '.join(parts)}; paired medians: gateway {extra['gateway']:.0f} ms, proxy+TLS "
            f"{extra['proxy_tls']:.0f} ms, plugin client {extra['plugin_client']:.0f} ms "
            f"(app start {result['app_startup_seconds']:.0f} s)")


def main(argv: list[str] | None = None) -> int:
    from standalone import with_emulator

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50)
    args = parser.parse_args(argv)
    result = with_emulator(lambda emulator: run(emulator, args.calls), "bench-mlflow-", warm=False)
    print(summary_line(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
