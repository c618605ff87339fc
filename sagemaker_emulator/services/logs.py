"""CloudWatch Logs: job output streamed live into groups and streams, read back by any client.

The runtime appends each line a job prints (``append``), and the SDK's
``wait(logs=True)``, ``aws logs`` and boto3 read them with the real
operations. Events live in SQLite, so logs survive a daemon restart.
"""

from __future__ import annotations

import re
import time
from typing import Any

from ..protocol.errors import ServiceError
from .base import Service
from .context import Context

DEFAULT_LIMIT = 10000


def _now_ms() -> int:
    return int(time.time() * 1000)


def _not_found(what: str) -> ServiceError:
    return ServiceError("ResourceNotFoundException", f"The specified {what} does not exist.")


def _token_id(token: str | None, kind: str) -> int | None:
    if not token:
        return None
    match = re.fullmatch(rf"{kind}/(\d+)", token)
    if not match:
        raise ServiceError("InvalidParameterException", "The specified nextToken is invalid.")
    return int(match.group(1))


def _matches(pattern: str | None, message: str) -> bool:
    """Unstructured filter patterns: all terms must occur; ``"quoted phrase"`` and ``-term`` work."""
    if not pattern or not pattern.strip():
        return True
    terms = re.findall(r'-?"[^"]*"|\S+', pattern)
    for term in terms:
        negate = term.startswith("-")
        text = term.lstrip("-").strip('"')
        if (text in message) == negate:
            return False
    return True


class Logs(Service):
    name = "logs"

    # ------------------------------------------------------------ runtime API
    def ensure_stream(self, group: str, stream: str) -> None:
        now = _now_ms()
        with self.emulator.state.transaction() as conn:
            conn.execute("INSERT OR IGNORE INTO log_groups(name, created) VALUES (?,?)", (group, now))
            conn.execute(
                "INSERT OR IGNORE INTO log_streams(grp, name, created) VALUES (?,?,?)", (group, stream, now)
            )

    def append(self, group: str, stream: str, events: list[tuple[int, str]]) -> None:
        """Store ``(timestamp_ms, message)`` events at the end of a stream."""
        if not events:
            return
        now = _now_ms()
        with self.emulator.state.transaction() as conn:
            conn.executemany(
                "INSERT INTO log_events(grp, stream, ts, ingest, message) VALUES (?,?,?,?,?)",
                [(group, stream, ts, now, msg) for ts, msg in events],
            )
            conn.execute(
                "UPDATE log_streams SET first_ts=COALESCE(first_ts, ?), last_ts=?, last_ingest=? "
                "WHERE grp=? AND name=?",
                (events[0][0], events[-1][0], now, group, stream),
            )

    # ------------------------------------------------------------ operations
    def CreateLogGroup(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        with self.emulator.state.transaction() as conn:
            if conn.execute("SELECT 1 FROM log_groups WHERE name=?", (params["logGroupName"],)).fetchone():
                raise ServiceError("ResourceAlreadyExistsException", "The specified log group already exists")
            conn.execute("INSERT INTO log_groups(name, created) VALUES (?,?)", (params["logGroupName"], _now_ms()))
        return {}

    def CreateLogStream(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        group, stream = params["logGroupName"], params["logStreamName"]
        self._require_group(group)
        with self.emulator.state.transaction() as conn:
            if conn.execute("SELECT 1 FROM log_streams WHERE grp=? AND name=?", (group, stream)).fetchone():
                raise ServiceError("ResourceAlreadyExistsException", "The specified log stream already exists")
            conn.execute("INSERT INTO log_streams(grp, name, created) VALUES (?,?,?)", (group, stream, _now_ms()))
        return {}

    def PutLogEvents(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        group, stream = params["logGroupName"], params["logStreamName"]
        self._require_stream(group, stream)
        events = sorted((e["timestamp"], e["message"]) for e in params["logEvents"])
        self.append(group, stream, events)
        return {}

    def DescribeLogGroups(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        prefix = params.get("logGroupNamePrefix", "")
        rows = self.emulator.state.query("SELECT name, created FROM log_groups ORDER BY name")
        groups = [
            {"logGroupName": name, "creationTime": created, "storedBytes": 0,
             "arn": f"arn:aws:logs:{ctx.region}:{ctx.account_id}:log-group:{name}:*",
             "logGroupArn": f"arn:aws:logs:{ctx.region}:{ctx.account_id}:log-group:{name}"}
            for name, created in rows if name.startswith(prefix)
        ]
        return self._page(groups, params, "logGroups")

    def DescribeLogStreams(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        group = params.get("logGroupName") or (params.get("logGroupIdentifier") or "").split(":log-group:")[-1]
        self._require_group(group)
        prefix = params.get("logStreamNamePrefix", "")
        order = params.get("orderBy", "LogStreamName")
        if order == "LastEventTime" and prefix:
            raise ServiceError(
                "InvalidParameterException", "Cannot order by LastEventTime with a logStreamNamePrefix."
            )
        rows = self.emulator.state.query(
            "SELECT name, created, first_ts, last_ts, last_ingest FROM log_streams WHERE grp=?", (group,)
        )
        streams = []
        for name, created, first_ts, last_ts, last_ingest in rows:
            if not name.startswith(prefix):
                continue
            item = {"logStreamName": name, "creationTime": created, "storedBytes": 0,
                    "arn": f"arn:aws:logs:{ctx.region}:{ctx.account_id}:log-group:{group}:log-stream:{name}"}
            if first_ts is not None:
                item.update(firstEventTimestamp=first_ts, lastEventTimestamp=last_ts, lastIngestionTime=last_ingest)
            streams.append(item)
        key = (lambda s: s.get("lastEventTimestamp") or 0) if order == "LastEventTime" else (
            lambda s: s["logStreamName"])
        streams.sort(key=key, reverse=bool(params.get("descending")))
        return self._page(streams, params, "logStreams")

    def GetLogEvents(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        group = params.get("logGroupName") or (params.get("logGroupIdentifier") or "").split(":log-group:")[-1]
        stream = params["logStreamName"]
        self._require_stream(group, stream)
        limit = min(int(params.get("limit") or DEFAULT_LIMIT), DEFAULT_LIMIT)
        token = params.get("nextToken")
        where = "grp=? AND stream=?"
        args: list[Any] = [group, stream]
        if params.get("startTime") is not None:
            where += " AND ts>=?"
            args.append(int(params["startTime"]))
        if params.get("endTime") is not None:
            where += " AND ts<?"
            args.append(int(params["endTime"]))
        forward = token.startswith("f/") if token else bool(params.get("startFromHead"))
        if token and token.startswith("f/"):
            where += " AND id>?"
            args.append(_token_id(token, "f"))
        elif token:
            where += " AND id<?"
            args.append(_token_id(token, "b"))
        order = "ASC" if forward else "DESC"
        rows = self.emulator.state.query(
            f"SELECT id, ts, ingest, message FROM log_events WHERE {where} ORDER BY id {order} LIMIT ?",
            (*args, limit),
        )
        if not forward:
            rows = list(reversed(rows))
        events = [{"timestamp": ts, "ingestionTime": ing, "message": msg} for _, ts, ing, msg in rows]
        if rows:
            first, last = rows[0][0], rows[-1][0]
        else:
            last = _token_id(token, "f") if token and token.startswith("f/") else self._last_id(group, stream)
            first = (_token_id(token, "b") if token and token.startswith("b/") else last + 1)
        return {"events": events, "nextForwardToken": f"f/{last:020d}", "nextBackwardToken": f"b/{first:020d}"}

    def FilterLogEvents(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        group = params.get("logGroupName") or (params.get("logGroupIdentifier") or "").split(":log-group:")[-1]
        self._require_group(group)
        where = "grp=?"
        args: list[Any] = [group]
        names = params.get("logStreamNames")
        if names:
            where += f" AND stream IN ({','.join('?' * len(names))})"
            args.extend(names)
        if params.get("logStreamNamePrefix"):
            where += " AND stream LIKE ? ESCAPE '\\'"
            escaped = params["logStreamNamePrefix"].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            args.append(escaped + "%")
        if params.get("startTime") is not None:
            where += " AND ts>=?"
            args.append(int(params["startTime"]))
        if params.get("endTime") is not None:
            where += " AND ts<=?"
            args.append(int(params["endTime"]))
        after = _token_id(params.get("nextToken"), "n") or 0
        limit = min(int(params.get("limit") or DEFAULT_LIMIT), DEFAULT_LIMIT)
        events: list[dict[str, Any]] = []
        last_id = after
        while len(events) < limit:
            rows = self.emulator.state.query(
                f"SELECT id, stream, ts, ingest, message FROM log_events WHERE {where} AND id>? "
                "ORDER BY id LIMIT 1000", (*args, last_id),
            )
            if not rows:
                last_id = None
                break
            for event_id, stream, ts, ingest, message in rows:
                last_id = event_id
                if _matches(params.get("filterPattern"), message):
                    events.append({"logStreamName": stream, "timestamp": ts, "ingestionTime": ingest,
                                   "message": message, "eventId": str(event_id)})
                    if len(events) >= limit:
                        break
        out: dict[str, Any] = {"events": events, "searchedLogStreams": []}
        if last_id is not None and len(events) >= limit:
            out["nextToken"] = f"n/{last_id}"
        return out

    def DeleteLogGroup(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        group = params["logGroupName"]
        self._require_group(group)
        with self.emulator.state.transaction() as conn:
            for table, column in (("log_events", "grp"), ("log_streams", "grp"), ("log_groups", "name")):
                conn.execute(f"DELETE FROM {table} WHERE {column}=?", (group,))
        return {}

    # ------------------------------------------------------------ helpers
    def _last_id(self, group: str, stream: str) -> int:
        rows = self.emulator.state.query(
            "SELECT COALESCE(MAX(id), 0) FROM log_events WHERE grp=? AND stream=?", (group, stream)
        )
        return int(rows[0][0])

    def _require_group(self, group: str) -> None:
        if not self.emulator.state.query("SELECT 1 FROM log_groups WHERE name=?", (group,)):
            raise _not_found("log group")

    def _require_stream(self, group: str, stream: str) -> None:
        self._require_group(group)
        if not self.emulator.state.query("SELECT 1 FROM log_streams WHERE grp=? AND name=?", (group, stream)):
            raise _not_found("log stream")

    @staticmethod
    def _page(items: list[dict[str, Any]], params: dict[str, Any], key: str) -> dict[str, Any]:
        start = int(params.get("nextToken") or 0) if str(params.get("nextToken") or "0").isdigit() else 0
        limit = int(params.get("limit") or 50)
        page = items[start : start + limit]
        out: dict[str, Any] = {key: page}
        if start + limit < len(items):
            out["nextToken"] = str(start + limit)
        return out
