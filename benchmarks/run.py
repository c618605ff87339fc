"""Run the emulator's performance benchmarks in one process and report (never assert) the figures.

    .venv/bin/python benchmarks/run.py [--repeats N] [--only training|s3|tuning|endpoints|hostile|pipelines]

Starts an emulator on 127.0.0.1 with a fresh temporary state directory, runs the benchmarks,
prints a table and writes ``benchmarks/results/latest.json``. The temporary directory (state,
prepared CSV files, 50 MiB test files) is removed at the end. The endpoint benchmark starts its
own emulator as a separate process (see ``bench_endpoints``), after the shared one has stopped.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
for entry in (str(HERE), str(REPO_ROOT)):
    if entry not in sys.path:
        sys.path.insert(0, entry)

REGION = "us-east-1"
RESULTS = HERE / "results" / "latest.json"
# Jobs run in their image's environment; reuse the one the tests build (first use costs minutes: bench_imageenvs.py)
os.environ.setdefault("SAGEMAKER_EMULATOR_IMAGE_ENV_DIR", str(REPO_ROOT / "build" / "image-envs"))


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from importlib.metadata import version  # not ``import xgboost``: the first job must find it unimported

    return {"platform": platform.platform(), "cpu": model or platform.processor(), "cpus": os.cpu_count(),
            "python": platform.python_version(), "xgboost": version("xgboost"), "boto3": version("boto3")}


class CpuWitness:
    """How much of the machine's CPU *other* processes used while a section ran (noise indicator).

    System-wide busy time from ``/proc/stat`` minus this process's own CPU time and that of its
    reaped children (the training jobs, the ``python -c`` probes).
    """

    def __init__(self) -> None:
        self.start = self._snapshot()

    @staticmethod
    def _snapshot() -> tuple[float, float, float] | None:
        try:
            fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
        except (OSError, ValueError, IndexError):
            return None
        user, nice, system, _idle, _iowait, irq, softirq, steal = fields
        busy = (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
        t = os.times()
        return busy, t.user + t.system + t.children_user + t.children_system, time.monotonic()

    def others_share(self) -> float | None:
        end = self._snapshot()
        if self.start is None or end is None:
            return None
        busy, own, wall = (b - a for a, b in zip(self.start, end, strict=True))
        return max(0.0, (busy - own) / ((os.cpu_count() or 1) * wall)) if wall > 0 else None


def load_average() -> list[float] | None:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except (OSError, ValueError):
        return None


def _fmt(value: float | None, unit: str = "s", digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f} {unit}".rstrip()


def print_training(t: dict[str, Any]) -> None:
    a, b = t["in_process"], t["emulator"]
    print("\nTraining: Bank Marketing XGBoost, 100 rounds "
          f"({t['dataset']['rows']['train']} train / {t['dataset']['rows']['validation']} validation rows, "
          f"{t['dataset']['feature_columns']} features), n={a['n']}")
    print(f"  {'':44} {'median':>9} {'min':>9} {'max':>9}")
    c = t["emulator_cold"]
    rows = [("(a) in-process load + train", a), ("    of which DMatrix load", a["load"]),
            ("    of which xgb.train", a["train"]), ("(b) emulator Create → Completed seen", b),
            ("(c) the same, warm workers off (cold python)", c)]
    for label, s in rows:
        print(f"  {label:44} {s['median']:9.3f} {s['min']:9.3f} {s['max']:9.3f}")
    verdict = "met" if t["target_met"] else "MISSED"
    print(f"  b − a (median): {t['overhead_median']:.3f} s   target ≤ {t['target_overhead']:.2f} s: {verdict}"
          f"   (c − a: {t['overhead_cold_median']:.3f} s)")
    inside, inside_cold = t["outside_training"], t["outside_training_cold"]
    print(f"  Create → Completed seen minus the job's own load + train (first log line → last round), "
          f"median: {inside['median']:.3f} s (warm workers off: {inside_cold['median']:.3f} s)")
    first = b["warm_up_breakdown"].get("Training_to_first_log_line")
    print(f"  first job after the emulator started (warm-up, not counted): {b['warm_up']:.3f} s"
          f" (Training → first log line {_fmt(first)})")
    print(f"  CPU seconds: in-process {a['cpu_seconds']['median']:.3f}, "
          f"job process {b['job_process_cpu_seconds']['median']:.3f}, "
          f"cold job process {c['job_process_cpu_seconds']['median']:.3f} (medians)")
    print(f"  TrainingTimeInSeconds: {b['training_time_in_seconds']}   "
          f"DescribeTrainingJob call: {b['describe_call_median'] * 1000:.1f} ms median, "
          f"{b['describe_calls_median']:.0f} calls per job")
    auc = t["validation_auc"]
    print(f"  validation AUC: in-process {auc['in_process']:.5f}, job FinalMetricDataList {auc['emulator']}"
          f" → {'match' if auc['match'] else 'DIFFER'}")
    print(f"  where the emulator job's wall time goes (median of runs):  {'warm':>9} {'cold':>9}")
    for key, s in b["breakdown"].items():
        if key == "Training_to_Uploading":
            continue
        cold = c["breakdown"].get(key)
        print(f"    {key:44} {_fmt(s['median'] if s else None):>9} {_fmt(cold['median'] if cold else None):>9}")
    print("  fresh-interpreter cost a job pays (median):")
    for label, s in t["interpreter_startup"].items():
        print(f"    {label:44} {_fmt(s['median'])}")


def print_s3(s: dict[str, Any]) -> None:
    print(f"\nS3: {s['object_bytes'] // 2**20} MiB of random bytes via boto3 (MiB/s; ratio to the plain copy)")
    print(f"  {'':30} {'median':>7} {'min':>7} {'max':>7} {'ratio':>6} {'CPU s':>6}  target")
    names = ("plain_copy", "put_object", "get_object", "upload_file", "download_file",
             "put_object_discard_server", "get_object_memory_server")
    for name in names:
        if name not in s:
            continue
        e = s[name]
        verdict = "met" if e.get("target_met") else ("MISSED" if "target_met" in e else "")
        label = name if "server" not in name else f"(ref) {name}"
        print(f"  {label:30} {e['mib_per_s_median']:7.0f} {e['mib_per_s_min']:7.0f} {e['mib_per_s_max']:7.0f} "
              f"{e['ratio_to_plain_copy']:6.2f} {e['cpu_seconds_median']:6.3f}  {verdict}")
    t = s["targets"]
    print(f"  targets: ≥ {t['mib_per_s']:.0f} MiB/s and ≥ {t['ratio_to_plain_copy']:.2f} × plain copy")


def print_tuning(t: dict[str, Any]) -> None:
    wall, auc = t["wall"], t["best_validation_auc"]
    verdict = "met" if t["target_met"] else "MISSED"
    print(f"\nTuning: {t['trials']} {t['strategy']} trials, {t['parallel']} in parallel, n={wall['n']}")
    print(f"  wall median {wall['median']:.1f} s (min {wall['min']:.1f}, max {wall['max']:.1f})   "
          f"target < {t['target_seconds']:.0f} s: {verdict}")
    print(f"  best validation AUC median {auc['median']:.5f}; trial median {t['trial_seconds_median']:.2f} s; "
          f"slot utilisation {t['slot_utilisation_median']:.0%}")
    cold = t["wall_cold"]
    print(f"  warm workers off (a cold python per trial): wall median {cold['median']:.1f} s "
          f"(min {cold['min']:.1f}, max {cold['max']:.1f}); trial median {t['trial_seconds_cold_median']:.2f} s")


def print_endpoints(e: dict[str, Any]) -> None:
    layout, met, targets = e["layout"], e["target_met"], e["targets"]
    print(f"\nEndpoints: bank XGBoost model, {e['calls']} single-row InvokeEndpoint calls from {e['clients']} boto3 "
          f"clients ({layout['clients']}; emulator {layout['emulator']}); {e['test_rows']} test rows, "
          f"{e['feature_columns']} features, ~{e['row_bytes_median']:.0f} bytes per row")
    d = e["deploy"]["in_service_seconds"]
    print(f"  CreateEndpoint → InService: median {d['median']:.3f} s (min {d['min']:.3f}, max {d['max']:.3f}, "
          f"n={d['n']})   target ≤ {targets['in_service_seconds']:.0f} s: {'met' if met['in_service'] else 'MISSED'}")
    print(f"  {'latency, ms':52} {'p50':>7} {'p90':>7} {'p99':>7} {'max':>7} {'mean':>7} {'calls/s':>8} {'errors':>6}")

    def row(label: str, lat: dict[str, Any] | None, load: dict[str, Any] | None = None) -> None:
        if not lat or lat.get("p50") is None:
            print(f"  {label:52} n/a")
            return
        tail = f" {load['throughput_per_s']:8.0f} {load['errors']:6d}" if load else ""
        print(f"  {label:52} {lat['p50']:7.3f} {lat['p90']:7.3f} {lat['p99']:7.3f} {lat['max']:7.2f} "
              f"{lat['mean']:7.3f}{tail}")

    for key, kind in (("load", layout["clients"]), ("load_threads", "threads"), ("load_processes", "processes")):
        if key in e:
            row(f"gateway, request in → response out ({kind})", e[key].get("server_ms"))
            row(f"  boto3 client, invoke_endpoint + read ({kind})", e[key]["client_ms"], e[key])
    row("gateway, one client, no concurrency", e["sequential"].get("server_ms"))
    row("  boto3 client, one client, no concurrency", e["sequential"]["client_ms"], e["sequential"])
    row("model server alone, POST /invocations, client side", e["model_server_direct"]["client_ms"],
        e["model_server_direct"])
    row("floor: plain ThreadingHTTPServer, server side", e["floor"].get("server_ms"))
    row("  floor: boto3 client side", e["floor"]["client_ms"], e["floor"])
    row("in-process booster.predict(DMatrix(row)), nthread=1", e["in_process"]["predict_dmatrix"])
    row("in-process booster.inplace_predict(row), nthread=1", e["in_process"]["inplace_predict"])
    load = e["load"]
    verdict = {k: "met" if v else "MISSED" for k, v in met.items()}
    print(f"  targets: gateway p50 ≤ {targets['gateway_p50_ms']} ms {verdict['gateway_p50']}, p99 ≤ "
          f"{targets['gateway_p99_ms']} ms {verdict['gateway_p99']}; zero errors {verdict['zero_errors']} "
          f"({load['errors']} errors, {load['wrong_answers']} answers differing from in-process)")

    def ms(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    print(f"  CPU ms per call: boto3 clients {ms(load['client_cpu_ms_per_call'])}, gateway "
          f"{ms(load['server_cpu_ms_per_call'])}, model server {ms(load['model_server_cpu_ms_per_call'])}; "
          f"floor server {ms(e['floor']['server_cpu_ms_per_call'])}")
    for pid in map(str, e["model_server_pids"]):
        before, after = e["rss_kib_before"].get(pid, {}), e["rss_kib_after"].get(pid, {})
        print(f"  model server (pid {pid}) RSS: before the load {before.get('VmRSS', 0) / 1024:.1f} MiB, after "
              f"{after.get('VmRSS', 0) / 1024:.1f} MiB (peak {after.get('VmHWM', 0) / 1024:.1f} MiB)")
    if e.get("gateway_rss_kib"):
        print(f"  emulator process RSS after the load: {e['gateway_rss_kib'].get('VmRSS', 0) / 1024:.1f} MiB")
    shares = ", ".join(f"{k} {e[k]['noise']['others_share']:.0%}" for k in
                       ("load", "load_threads", "load_processes", "sequential", "model_server_direct", "floor")
                       if k in e and e[k]["noise"]["others_share"] is not None)
    print(f"  other processes' share of the CPUs during each load: {shares}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="measured repeats per benchmark (default 5)")
    parser.add_argument("--only", choices=("training", "s3", "tuning", "endpoints", "hostile", "pipelines"),
                        help="run only this benchmark")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"JSON results (default {RESULTS})")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")

    data = None
    root = Path(tempfile.mkdtemp(prefix="sagemaker-emulator-bench-"))
    try:
        if args.only in (None, "training", "endpoints"):
            import bank_data

            data = bank_data.prepare(root / "data")  # exits with a clear message when the zip is missing

        import boto3

        from sagemaker_emulator.app import Emulator

        began = time.perf_counter()
        emu = Emulator(root / "state")
        emu.start("127.0.0.1", 0)
        emu.warm_up()  # as the daemon does (sagemaker-emulator serve/start)
        session = boto3.Session(aws_access_key_id=emu.credentials.access_key,
                                aws_secret_access_key=emu.credentials.secret_key, region_name=REGION)

        def make_client(name: str, **kwargs: Any) -> Any:
            return session.client(name, **{"endpoint_url": emu.endpoint_url, **kwargs})

        def log(message: str) -> None:
            print(message, flush=True)

        results: dict[str, Any] = {
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "machine": machine(),
            "repeats": args.repeats, "load_average_at_start": load_average(),
        }
        results["other_processes_cpu_share"] = {}
        try:
            if data is not None and args.only in (None, "training"):
                import bench_training

                witness = CpuWitness()
                results["training"] = bench_training.run(emu, make_client, data, args.repeats, log)
                results["other_processes_cpu_share"]["training"] = witness.others_share()
            if args.only in (None, "s3"):
                import bench_s3

                witness = CpuWitness()
                results["s3"] = bench_s3.run(emu, make_client, root / "s3-files", args.repeats, log)
                results["other_processes_cpu_share"]["s3"] = witness.others_share()
            if args.only in (None, "tuning"):
                import bench_tuning

                witness = CpuWitness()
                results["tuning"] = bench_tuning.run(emu, max(1, args.repeats // 2), log)
                results["other_processes_cpu_share"]["tuning"] = witness.others_share()
            if args.only in (None, "pipelines"):
                import bench_pipelines

                results["pipelines"] = bench_pipelines.run(emu, args.repeats, log)
        finally:
            emu.stop()
        if args.only in (None, "endpoints"):
            import bench_endpoints

            witness = CpuWitness()
            results["endpoints"] = bench_endpoints.run(root, data, args.repeats, log)
            results["other_processes_cpu_share"]["endpoints"] = witness.others_share()
        if args.only in (None, "hostile"):
            import bench_hostile

            witness = CpuWitness()
            results["hostile"] = bench_hostile.run(root, args.repeats, log)
            results["other_processes_cpu_share"]["hostile"] = witness.others_share()
        results["total_seconds"] = time.perf_counter() - began
        results["load_average_at_end"] = load_average()
    finally:
        shutil.rmtree(root, ignore_errors=True)

    m = results["machine"]
    print(f"\n{results['date']}  {m['cpus']} × {m['cpu']}  Python {m['python']}  XGBoost {m['xgboost']}  "
          f"boto3 {m['boto3']}  load average at start {results['load_average_at_start']}")
    if "training" in results:
        print_training(results["training"])
    if "s3" in results:
        print_s3(results["s3"])
    if "pipelines" in results:
        print(bench_pipelines.summary_line(results["pipelines"], args.repeats))
    if "tuning" in results:
        print_tuning(results["tuning"])
    if "endpoints" in results:
        print_endpoints(results["endpoints"])
    if "hostile" in results:
        import bench_hostile

        bench_hostile.print_results(results["hostile"])
    shares = {k: v for k, v in results["other_processes_cpu_share"].items() if v is not None}
    if shares:
        text = ", ".join(f"{k} {v:.0%}" for k, v in shares.items())
        print(f"\nother processes used this share of the CPUs meanwhile: {text}")
        if max(shares.values()) > 0.10:
            print("  WARNING: the machine was busy; the figures above are disturbed (XGBoost's OpenMP threads "
                  "in particular slow down badly when the cores are shared). Run again on a quiet machine.")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"\ntotal {results['total_seconds']:.1f} s; results written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
