"""Amazon CloudWatch metrics: PutMetricData, GetMetricData, GetMetricStatistics, ListMetrics.

Spoken in Smithy RPC v2 CBOR, the protocol current botocore uses for
CloudWatch (``protocol.cbor``). Data points are kept as statistic sets
(sample count, sum, minimum, maximum) in the state database, so metrics
survive a daemon restart and every standard statistic (``SampleCount``,
``Average``, ``Sum``, ``Minimum``, ``Maximum``) can be computed for any
period; percentiles (``p99``) are not kept and are refused, naming the
statistics the emulator provides.

The emulator publishes the metrics SageMaker publishes: endpoints' per-variant
``Invocations``, ``ModelLatency``, ``OverheadLatency``, ``Invocation4XXErrors``,
``Invocation5XXErrors`` and ``InvocationsPerInstance`` in ``AWS/SageMaker``
(``record`` buffers them off the request path; a writer thread stores them
every second and every read stores them first), and Model Monitor's feature
metrics when a schedule asks for them.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import defaultdict
from typing import Any

from ..protocol.errors import ServiceError
from ..protocol.values import parse_timestamp
from .base import Service
from .context import Context
from .listing import decode_token, encode_token

SCHEMA = """
CREATE TABLE IF NOT EXISTS metric_data (
    namespace TEXT NOT NULL, name TEXT NOT NULL, dims TEXT NOT NULL, ts REAL NOT NULL, unit TEXT NOT NULL,
    count REAL NOT NULL, sum REAL NOT NULL, min REAL NOT NULL, max REAL NOT NULL);
CREATE INDEX IF NOT EXISTS metric_data_metric ON metric_data(namespace, name, dims, ts);
"""
STATISTICS = ("SampleCount", "Average", "Sum", "Minimum", "Maximum")
FLUSH_SECONDS = 1.0
LIST_PAGE = 500


def invalid_value(message: str) -> ServiceError:
    return ServiceError("InvalidParameterValueException", message)


def combination(message: str) -> ServiceError:
    return ServiceError("InvalidParameterCombinationException", message)


def dims_key(dimensions: list[dict[str, str]] | None) -> str:
    """A metric's dimensions as one canonical text (a metric is namespace + name + exactly these)."""
    return json.dumps(sorted((d["Name"], d["Value"]) for d in dimensions or []))


def _stat(name: str, count: float, total: float, low: float, high: float) -> float:
    return {"SampleCount": count, "Sum": total, "Minimum": low, "Maximum": high,
            "Average": total / count if count else 0.0}[name]


class CloudWatch(Service):
    name = "cloudwatch"

    def __init__(self, emulator: Any) -> None:
        super().__init__(emulator)
        with emulator.state.transaction() as conn:
            for statement in SCHEMA.strip().split(";"):
                if statement.strip():
                    conn.execute(statement)
        self._buffer: dict[tuple[str, str, str, str, float], list[float]] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._writer = threading.Thread(target=self._run, name="cloudwatch-writer", daemon=True)
        self._writer.start()

    # ------------------------------------------------------------ publishing (the emulator's own metrics)
    def record(self, namespace: str, name: str, dimensions: list[dict[str, str]], value: float, unit: str = "None",
               timestamp: float | None = None) -> None:
        """Add one value to the metric's statistic set of its second; stored by the writer thread."""
        second = math.floor(timestamp if timestamp is not None else time.time())
        key = (namespace, name, dims_key(dimensions), unit, float(second))
        with self._lock:
            current = self._buffer.get(key)
            if current is None:
                self._buffer[key] = [1.0, value, value, value]
            else:
                current[0] += 1
                current[1] += value
                current[2] = min(current[2], value)
                current[3] = max(current[3], value)

    def record_set(self, namespace: str, name: str, dimensions: list[dict[str, str]], stats: dict[str, float],
                   timestamp: float, unit: str = "None") -> None:
        """Store a statistic set (``SampleCount``, ``Sum``, ``Minimum``, ``Maximum``) as one data point."""
        self.flush()
        with self.emulator.state.transaction() as conn:
            conn.execute("INSERT INTO metric_data VALUES (?,?,?,?,?,?,?,?,?)",
                         (namespace, name, dims_key(dimensions), timestamp, unit, float(stats["SampleCount"]),
                          float(stats["Sum"]), float(stats["Minimum"]), float(stats["Maximum"])))

    def flush(self) -> None:
        with self._lock:
            buffer, self._buffer = self._buffer, {}
        if buffer:
            rows = [(ns, name, dims, ts, unit, *stats) for (ns, name, dims, unit, ts), stats in buffer.items()]
            with self.emulator.state.transaction() as conn:
                conn.executemany("INSERT INTO metric_data VALUES (?,?,?,?,?,?,?,?,?)", rows)

    def _run(self) -> None:
        while not self._closed.wait(FLUSH_SECONDS):
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - the database closing under it at shutdown
                return

    def close(self) -> None:
        self._closed.set()
        self.flush()

    # ------------------------------------------------------------ operations
    def PutMetricData(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        namespace = params["Namespace"]
        if namespace.startswith("AWS/"):
            raise invalid_value(f"The value {namespace} for parameter Namespace is invalid: the AWS/ prefix is "
                                "reserved for AWS services' metrics.")
        data = params.get("MetricData") or []
        if not data:
            raise ServiceError("MissingRequiredParameterException", "The parameter MetricData is required.")
        if len(data) > 1000:
            raise invalid_value("The collection MetricData must not have a size greater than 1000.")
        rows = []
        for i, datum in enumerate(data, 1):
            sets = self._datum_sets(datum, i)
            stamp = parse_timestamp(datum["Timestamp"]).timestamp() if datum.get("Timestamp") else time.time()
            if len(datum.get("Dimensions") or []) > 30:
                raise invalid_value(f"The collection MetricData.member.{i}.Dimensions must not have a size greater "
                                    "than 30.")
            rows += [(namespace, datum["MetricName"], dims_key(datum.get("Dimensions")), stamp,
                      datum.get("Unit") or "None", *s) for s in sets]
        self.flush()
        with self.emulator.state.transaction() as conn:
            conn.executemany("INSERT INTO metric_data VALUES (?,?,?,?,?,?,?,?,?)", rows)
        return {}

    @staticmethod
    def _datum_sets(datum: dict[str, Any], index: int) -> list[tuple[float, float, float, float]]:
        given = [k for k in ("Value", "StatisticValues", "Values") if datum.get(k) is not None]
        if len(given) != 1:
            raise combination(f"The parameters MetricData.member.{index}.Value, MetricData.member.{index}."
                              "StatisticValues and MetricData.member.{index}.Values are mutually exclusive and "
                              "one of them is required.".replace("{index}", str(index)))
        if "Value" in given:
            value = float(datum["Value"])
            return [(1.0, value, value, value)]
        if "StatisticValues" in given:
            s = datum["StatisticValues"]
            if s["SampleCount"] <= 0 or s["Minimum"] > s["Maximum"]:
                raise invalid_value(f"The values of MetricData.member.{index}.StatisticValues are inconsistent.")
            return [(float(s["SampleCount"]), float(s["Sum"]), float(s["Minimum"]), float(s["Maximum"]))]
        values, counts = datum["Values"], datum.get("Counts") or [1.0] * len(datum["Values"])
        if len(counts) != len(values):
            raise invalid_value(f"MetricData.member.{index}.Counts must have as many items as Values.")
        return [(float(c), float(v) * c, float(v), float(v)) for v, c in zip(values, counts, strict=True) if c > 0]

    def _points(self, namespace: str, name: str, dimensions: list[dict[str, str]] | None, start: float, end: float,
                unit: str | None) -> list[tuple[float, str, float, float, float, float]]:
        self.flush()
        sql = ("SELECT ts, unit, count, sum, min, max FROM metric_data WHERE namespace=? AND name=? AND dims=? "
               "AND ts>=? AND ts<?")
        args: list[Any] = [namespace, name, dims_key(dimensions), start, end]
        if unit:
            sql += " AND unit=?"
            args.append(unit)
        return [tuple(row) for row in self.emulator.state.query(sql, tuple(args))]  # type: ignore[misc]

    @staticmethod
    def _period(period: int, where: str = "Period") -> int:
        if period < 1 or (period >= 60 and period % 60) or (period < 60 and period not in (1, 5, 10, 30)):
            raise invalid_value(f"The parameter {where} must be 1, 5, 10, 30 or a multiple of 60.")
        return period

    @staticmethod
    def _buckets(points: list[tuple[float, str, float, float, float, float]], period: int) -> dict[float, list[float]]:
        """Statistic sets merged per period (periods start at multiples of ``period`` since the epoch)."""
        merged: dict[float, list[float]] = defaultdict(lambda: [0.0, 0.0, math.inf, -math.inf])
        for ts, _, count, total, low, high in points:
            bucket = merged[math.floor(ts / period) * period]
            bucket[0] += count
            bucket[1] += total
            bucket[2] = min(bucket[2], low)
            bucket[3] = max(bucket[3], high)
        return merged

    def GetMetricStatistics(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        statistics = params.get("Statistics") or []
        if params.get("ExtendedStatistics"):
            raise invalid_value("ExtendedStatistics (percentiles) are not kept by the local emulator; request "
                                f"Statistics from {', '.join(STATISTICS)}.")
        if not statistics:
            raise ServiceError("MissingRequiredParameterException",
                               "Must specify either the Statistics or the ExtendedStatistics parameter.")
        start, end = (parse_timestamp(params[k]).timestamp() for k in ("StartTime", "EndTime"))
        if start >= end:
            raise invalid_value("The parameter StartTime must be less than the parameter EndTime.")
        period = self._period(params["Period"])
        points = self._points(params["Namespace"], params["MetricName"], params.get("Dimensions"), start, end,
                              params.get("Unit"))
        units = {p[1] for p in points}
        unit = params.get("Unit") or (next(iter(units)) if len(units) == 1 else "None")
        datapoints = []
        for stamp, sets in sorted(self._buckets(points, period).items()):
            datapoints.append({"Timestamp": stamp, "Unit": unit, **{n: _stat(n, *sets) for n in statistics}})
        return {"Label": params["MetricName"], "Datapoints": datapoints}

    def GetMetricData(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        start, end = (parse_timestamp(params[k]).timestamp() for k in ("StartTime", "EndTime"))
        if start >= end:
            raise invalid_value("The parameter StartTime must be less than the parameter EndTime.")
        queries = params["MetricDataQueries"]
        if len({q["Id"] for q in queries}) != len(queries):
            raise invalid_value("The Id of each MetricDataQuery must be unique.")
        descending = (params.get("ScanBy") or "TimestampDescending") == "TimestampDescending"
        results = []
        for query in queries:
            if query.get("Expression") or not query.get("MetricStat"):
                raise invalid_value(f"MetricDataQuery {query['Id']}: metric math expressions are not provided by "
                                    "the local emulator; use MetricStat.")
            stat = query["MetricStat"]
            if stat["Stat"] not in STATISTICS:
                raise invalid_value(f"MetricDataQuery {query['Id']}: the statistic {stat['Stat']} is not kept by "
                                    f"the local emulator; use one of {', '.join(STATISTICS)}.")
            metric = stat["Metric"]
            period = self._period(stat["Period"], f"MetricDataQuery {query['Id']} Period")
            points = self._points(metric.get("Namespace", ""), metric.get("MetricName", ""), metric.get("Dimensions"),
                                  start, end, stat.get("Unit"))
            series = sorted(self._buckets(points, period).items(), reverse=descending)
            if query.get("ReturnData", True):
                results.append({"Id": query["Id"], "Label": query.get("Label") or metric.get("MetricName", ""),
                                "Timestamps": [t for t, _ in series],
                                "Values": [_stat(stat["Stat"], *s) for _, s in series], "StatusCode": "Complete"})
        return {"MetricDataResults": results, "Messages": []}

    def ListMetrics(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        self.flush()
        sql, args = "SELECT namespace, name, dims, MAX(ts) FROM metric_data", []
        where = []
        for key, column in (("Namespace", "namespace"), ("MetricName", "name")):
            if params.get(key):
                where.append(f"{column}=?")
                args.append(params[key])
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self.emulator.state.query(sql + " GROUP BY namespace, name, dims ORDER BY namespace, name, dims",
                                         tuple(args))
        wanted = params.get("Dimensions") or []
        recent = time.time() - 3 * 3600 if params.get("RecentlyActive") == "PT3H" else None
        metrics = []
        for namespace, name, dims, latest in rows:
            pairs = dict(json.loads(dims))
            if any(f["Name"] not in pairs or ("Value" in f and pairs[f["Name"]] != f["Value"]) for f in wanted):
                continue
            if recent is not None and latest < recent:
                continue
            metrics.append({"Namespace": namespace, "MetricName": name,
                            "Dimensions": [{"Name": k, "Value": v} for k, v in json.loads(dims)]})
        start = decode_token(params.get("NextToken"))
        page = metrics[start:start + LIST_PAGE]
        token = encode_token(start + LIST_PAGE) if start + LIST_PAGE < len(metrics) else None
        return {"Metrics": page, **({"NextToken": token} if token else {})}
