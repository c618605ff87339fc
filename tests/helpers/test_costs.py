"""helpers.costs: list prices, per-second estimates, Usage from describe responses, and the HTML box."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # tests/ is on sys.path and tests/helpers would shadow the package as a namespace
    sys.path.insert(0, str(ROOT))

from helpers import costs  # noqa: E402

START = datetime(2026, 2, 11, 19, 9, 36, tzinfo=UTC)


def training_describe(**overrides: object) -> dict[str, object]:
    describe: dict[str, object] = {
        "TrainingJobName": "sm-immday-xgboost-1",
        "TrainingJobStatus": "Completed",
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 2, "VolumeSizeInGB": 10},
        "TrainingStartTime": START,
        "TrainingEndTime": START + timedelta(seconds=90),
        "TrainingTimeInSeconds": 60,
        "BillableTimeInSeconds": 60,
    }
    describe.update(overrides)
    return describe


def test_prices_by_kind() -> None:
    assert costs.price("ml.m5.xlarge") == 0.23
    assert costs.price("ml.m4.xlarge") == 0.24
    assert costs.price("ml.m4.xlarge", kind="hosting") == 0.28
    assert costs.price("ml.m5.large", kind="processing") == costs.price("ml.m5.large", kind="training")
    assert costs.price("ml.t2.medium", kind="transform") == costs.price("ml.t2.medium", kind="hosting")
    for instance_type in ["ml.m5.large", "ml.m5.2xlarge", "ml.m5.4xlarge", "ml.c5.xlarge", "ml.c5.2xlarge",
                          "ml.g4dn.xlarge"]:
        assert 0 < costs.price(instance_type, "training") < 5
        assert 0 < costs.price(instance_type, "hosting") < 5


def test_unknown_instance_type_or_kind_has_a_clear_message() -> None:
    with pytest.raises(KeyError) as caught:
        costs.price("ml.m99.huge")
    message = str(caught.value)
    assert message.startswith("no training price for 'ml.m99.huge'")  # not wrapped in quotes like a bare KeyError
    assert "ml.m5.xlarge" in message and "pricing" in message
    with pytest.raises(costs.UnknownInstanceTypeError, match="hosting price"):
        costs.price("ml.t9.medium", kind="hosting")
    with pytest.raises(costs.UnknownInstanceTypeError, match="unknown kind"):
        costs.price("ml.m5.xlarge", kind="notebook")


def test_estimate_is_instance_seconds_times_hourly_price() -> None:
    usages = [
        costs.Usage("train", "ml.m5.xlarge", instance_count=2, seconds=1800),  # 1 instance-hour
        costs.Usage("prep", "ml.m5.large", seconds=36, kind="processing"),
    ]

    result = costs.estimate(usages)

    assert [item.usd for item in result.items] == pytest.approx([0.23, 0.115 * 36 / 3600])
    assert result.total_usd == pytest.approx(0.23 + 0.00115)
    assert usages[0].instance_seconds == 3600


def test_estimate_unknown_type_strict_or_not() -> None:
    odd = costs.Usage("odd", "ml.weird.large", seconds=10)
    with pytest.raises(costs.UnknownInstanceTypeError):
        costs.estimate([odd])

    result = costs.estimate([odd, costs.Usage("ok", "ml.m5.xlarge", seconds=3600)], strict=False)

    assert result.unpriced == (odd,)
    assert result.total_usd == pytest.approx(0.23)


def test_from_training_job() -> None:
    usage = costs.from_training_job(training_describe())

    assert usage == costs.Usage("sm-immday-xgboost-1", "ml.m5.xlarge", 2, 60.0, "training")
    assert costs.estimate([usage]).total_usd == pytest.approx(2 * 60 * 0.23 / 3600)


def test_from_training_job_fallbacks() -> None:
    spot = costs.from_training_job(training_describe(BillableTimeInSeconds=15))
    # BillableTimeInSeconds is per instance on AWS; a value above the training time is capped.
    overstated = costs.from_training_job(training_describe(BillableTimeInSeconds=120))
    no_billable = costs.from_training_job(training_describe(BillableTimeInSeconds=None, TrainingTimeInSeconds=42))
    from_times = costs.from_training_job(training_describe(BillableTimeInSeconds=None, TrainingTimeInSeconds=None))
    epoch = costs.from_training_job(training_describe(
        BillableTimeInSeconds=None, TrainingTimeInSeconds=None, TrainingStartTime=1000.0,
        TrainingEndTime="1970-01-01T00:17:00Z"))

    assert [u.seconds for u in (spot, overstated, no_billable, from_times, epoch)] == [15, 60, 42, 90, 20]
    running = training_describe(BillableTimeInSeconds=None, TrainingTimeInSeconds=None, TrainingEndTime=None)
    with pytest.raises(ValueError, match="not finished"):
        costs.from_training_job(running)


def test_from_processing_job() -> None:
    describe = {
        "ProcessingJobName": "sm-immday-skprocessing-1",
        "ProcessingResources": {"ClusterConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1,
                                                  "VolumeSizeInGB": 30}},
        "ProcessingStartTime": START,
        "ProcessingEndTime": START + timedelta(seconds=12.5),
    }

    usage = costs.from_processing_job(describe)

    assert usage == costs.Usage("sm-immday-skprocessing-1", "ml.m5.large", 1, 12.5, "processing")
    with pytest.raises(ValueError, match="not finished"):
        costs.from_processing_job({**describe, "ProcessingEndTime": None})


class _Table(HTMLParser):
    """The text of each table row, and the classes of the outermost element."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.outer_classes: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.outer_classes is None:
            self.outer_classes = (dict(attrs).get("class") or "").split()
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def parse(box: costs.CostBox) -> _Table:
    table = _Table()
    table.feed(box._repr_html_())
    return table


def test_aws_box_renders_an_html_table_no_front_end_typesets() -> None:
    usages = [
        costs.from_training_job(training_describe()),
        costs.Usage("endpoint", "ml.m5.xlarge", seconds=600, kind="hosting"),
        costs.Usage("mystery", "ml.unknown.xlarge", seconds=5),
    ]

    box = costs.aws_box(usages, costs.REAL_SERVICE_TIMES)

    table = parse(box)
    # MathJax 3 (JupyterLab, Studio) and 2 (the HTML export) skip the whole box: its "$" are never maths.
    assert {"mathjax_ignore", "tex2jax_ignore"} <= set(table.outer_classes or [])
    header, *rows = table.rows
    assert header[0] == "Step" and "$/h" in header[4]
    assert all(len(row) == len(header) for row in rows)
    assert rows[0][1] == "ml.m5.xlarge × 2" and rows[0][2] == "60 s"
    assert rows[0][3] == costs.REAL_SERVICE_TIMES["training"]
    assert rows[0][5].startswith("$0.0077")  # 2 × 60 s × $0.23/h
    assert "typical on AWS: $0.0051–$0.0083" in rows[0][5]  # 2 × 40–65 s billable
    assert rows[1][3] == costs.REAL_SERVICE_TIMES["hosting"] and rows[1][5] == "$0.04"  # 600 s × $0.23/h
    assert rows[2][4] == rows[2][5] == "n/a"
    assert rows[3][0] == "Total" and "excl. n/a" in rows[3][5]
    assert "us-east-1" in box._repr_html_() and "2025" in box._repr_html_()
    assert "ml.m5.xlarge × 2 | 60 s" in str(box)  # print() shows the same table as text


def test_aws_box_escapes_what_it_shows() -> None:
    box = costs.aws_box([costs.Usage("<b>job</b>", "ml.c5.xlarge", seconds=30)], {"training": "a & b"})
    assert "&lt;b&gt;job&lt;/b&gt;" in box._repr_html_() and "a &amp; b" in box._repr_html_()


def test_aws_box_step_name_beats_kind_and_single_row_has_no_total() -> None:
    usage = costs.Usage("my-step", "ml.c5.xlarge", seconds=30)

    box = costs.aws_box([usage], {"my-step": "about a minute", "training": "unused"})

    rows = parse(box).rows
    assert rows[1][3] == "about a minute" and "unused" not in str(box) and len(rows) == 2


def test_real_service_times_cover_the_labs() -> None:
    for kind in ["training", "processing", "hosting", "tuning", "transform"]:
        assert costs.REAL_SERVICE_TIMES[kind]
    assert costs.REAL_SERVICE_TIMES["training"] == "2–3.5 min wall, 40–65 s billable"
    assert "amazon-sagemaker-immersion-day" in costs.REAL_SERVICE_TIMES_SOURCE
