"""What a step would cost and take on real SageMaker, as a small HTML box under the cell that ran it locally.

Why: the emulator makes jobs free and fast, which hides two things a learner must know before using AWS — every
instance-second is billed, and each job waits minutes for instances. The box prices this run's seconds at AWS list
prices and quotes how long the same step typically takes on the real service.

Prices: public SageMaker AI on-demand price list, region us-east-1, as of 2025, from memory of the published
pricing page (https://aws.amazon.com/sagemaker-ai/pricing/). They are APPROXIMATE, exclude tax, storage (EBS/S3),
data transfer and Savings Plans / free tier, and change over time: check the pricing page before budgeting.

Sources checked (2026-12-02, session 6): no stored copy of AWS's pricing page carries the price figures (its
tables are rendered by script; the one stored copy, https://aws.amazon.com/de/sagemaker/pricing/, undated, holds
the free-tier table only), so NO PRICE BELOW IS CONFIRMED BY AN AWS PAGE. One figure is confirmed by an AWS
document: ml.c5.xlarge hosting, 0.204 USD/h, is the ``CostPerHour`` (0.20399999618530273) of the example
``DescribeInferenceRecommendationsJob`` answer in the SageMaker Developer Guide
(https://docs.aws.amazon.com/sagemaker/latest/dg/instance-recommendation-results.html, job dated 2021-10-26).
Third-party pages agree on some: ml.t3.medium 0.05 and ml.p4d.24xlarge 37.69
(https://www.wring.co/blog/aws-sagemaker-inference-guide, 2026-03-15), ml.g5.xlarge hosting ≈ 1.41
(https://zircon.tech/blog/the-real-cost-of-running-ai-models-on-aws-sagemaker-inference-deep-dive, "us-east-1 as
of October 2025"). They disagree on others, which were left unchanged for lack of an AWS source: the same zircon
page gives ml.m5.xlarge hosting as 0.269; wring gives ml.g5.xlarge 1.21 and ml.inf2.xlarge 0.76 (0.7582 is EC2's
inf2.xlarge price, not SageMaker's). The Trainium/Inferentia prices (ml.trn1.*, ml.inf2.xlarge) have no stored
source of any kind beyond a public code table that uses the same 1.54 / 24.73 / 0.99.

Billing assumption: instance time is billed per second with no minimum, per instance (so seconds × instance count).
For training jobs AWS reports ``BillableTimeInSeconds`` per instance ("multiply by InstanceCount", API reference);
it excludes the minutes spent provisioning instances and pulling images, which is why wall time is much longer.
Real-time endpoints bill every second they are ``InService``, whether or not they receive requests, until deleted.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

PRICES_AS_OF = "us-east-1, as of 2025"

ON_DEMAND_USD_PER_HOUR: dict[str, dict[str, float]] = {
    # Training jobs; processing jobs (and each tuning job) are billed at the same instance prices.
    "training": {
        "ml.m4.xlarge": 0.24,
        "ml.m4.2xlarge": 0.48,
        "ml.m5.large": 0.115,
        "ml.m5.xlarge": 0.23,
        "ml.m5.2xlarge": 0.461,
        "ml.m5.4xlarge": 0.922,
        "ml.c4.xlarge": 0.239,
        "ml.c4.2xlarge": 0.477,
        "ml.c5.xlarge": 0.204,
        "ml.c5.2xlarge": 0.408,
        "ml.c5.4xlarge": 0.816,
        "ml.t3.medium": 0.05,  # agrees with wring.co, 2026-03-15 (third party)
        "ml.g4dn.xlarge": 0.736,
        "ml.g5.xlarge": 1.408,
        "ml.p3.2xlarge": 3.825,
        "ml.p4d.24xlarge": 37.688,  # agrees with wring.co, 2026-03-15 (third party)
        # AWS Trainium (lab 08's "where to go next"): no stored source (see the module docstring)
        "ml.trn1.2xlarge": 1.5484,
        "ml.trn1.32xlarge": 24.7726,
    },
    # Real-time endpoints; batch transform is billed at the same instance prices.
    "hosting": {
        "ml.t2.medium": 0.056,
        "ml.t2.large": 0.111,
        "ml.m4.xlarge": 0.28,
        "ml.m5.large": 0.115,
        "ml.m5.xlarge": 0.23,
        "ml.m5.2xlarge": 0.461,
        "ml.m5.4xlarge": 0.922,
        "ml.c4.xlarge": 0.279,
        "ml.c4.2xlarge": 0.557,
        "ml.c5.large": 0.102,
        "ml.c5.xlarge": 0.204,  # AWS Developer Guide, Inference Recommender example (see above)
        "ml.c5.2xlarge": 0.408,
        "ml.g4dn.xlarge": 0.736,
        "ml.g5.xlarge": 1.408,  # agrees with zircon.tech, October 2025 (third party)
        # AWS Inferentia2 (lab 08's "where to go next"): no stored source (see the module docstring)
        "ml.inf2.xlarge": 0.99,
    },
}
"""USD per instance-hour, by price list (``training`` or ``hosting``) then instance type. Approximate; a price with no
comment has no stored source (2026-12-02): see the module docstring."""

PRICE_LIST_OF_KIND = {
    "training": "training",
    "processing": "training",
    "tuning": "training",
    "hosting": "hosting",
    "endpoint": "hosting",
    "transform": "hosting",
}
"""Which price list each kind of step is billed from."""

REAL_SERVICE_TIMES_SOURCE = (
    "timestamps in the stored outputs of the public aws-samples/amazon-sagemaker-immersion-day notebooks "
    "(2020–2026) and the workshop's own text"
)
REAL_SERVICE_TIMES: dict[str, str] = {
    "training": "2–3.5 min wall, 40–65 s billable",
    "processing": "~2.5 min wall",
    "hosting": "2.5–8 min until InService (~4 min in 2026)",
    "endpoint": "2.5–8 min until InService (~4 min in 2026)",
    "serverless": "up to ~10 min until InService",
    "tuning": "10–30 min (6–20 jobs, 3–4 in parallel)",
    "transform": "4–5 min (4k rows)",
    "autopilot": "19–23 min with 5 candidates (~4 h with defaults)",
    "clarify_shap": "~5 min",
    "clarify_bias": "~10 min",
    "model_monitor_baseline": "4–6 min; schedules start after the next hour + up to 20 min",
    "pipeline": "~17 min (4 steps)",
}
"""Typical real-SageMaker durations for the workshop's small steps, keyed by step kind. Source: see above."""


class UnknownInstanceTypeError(KeyError):
    """No price is known for this instance type (or kind); the message lists the ones that are."""

    def __str__(self) -> str:  # KeyError would show the message in quotes
        return str(self.args[0]) if self.args else ""


def price(instance_type: str, kind: str = "training") -> float:
    """On-demand USD per instance-hour, us-east-1, approximate (2025), for ``kind`` (training, processing, hosting…)."""
    price_list = PRICE_LIST_OF_KIND.get(kind)
    if price_list is None:
        raise UnknownInstanceTypeError(f"unknown kind {kind!r}; use one of {sorted(PRICE_LIST_OF_KIND)}")
    table = ON_DEMAND_USD_PER_HOUR[price_list]
    if instance_type not in table:
        raise UnknownInstanceTypeError(
            f"no {price_list} price for {instance_type!r} in this table (known: {', '.join(sorted(table))}). "
            f"Look it up on https://aws.amazon.com/sagemaker-ai/pricing/ and add it to ON_DEMAND_USD_PER_HOUR."
        )
    return table[instance_type]


@dataclass(frozen=True)
class Usage:
    """One step's instance time: ``seconds`` per instance (this run's), on ``instance_count`` instances."""

    step: str
    instance_type: str
    instance_count: int = 1
    seconds: float = 0.0
    kind: str = "training"

    @property
    def instance_seconds(self) -> float:
        """What is billed: seconds × instances."""
        return self.seconds * self.instance_count


@dataclass(frozen=True)
class LineItem:
    """A priced usage; ``usd`` is None when the instance type has no known price."""

    usage: Usage
    usd_per_hour: float | None
    usd: float | None


@dataclass(frozen=True)
class CostEstimate:
    """Priced usages and their total (unpriced items excluded, listed in ``unpriced``)."""

    items: tuple[LineItem, ...]

    @property
    def total_usd(self) -> float:
        return sum(item.usd for item in self.items if item.usd is not None)

    @property
    def unpriced(self) -> tuple[Usage, ...]:
        return tuple(item.usage for item in self.items if item.usd is None)


def estimate(usages: Iterable[Usage], strict: bool = True) -> CostEstimate:
    """Price each usage as instance-seconds × hourly price / 3600 (per-second billing, no minimum).

    ``strict=False`` records unknown instance types as unpriced instead of raising, so a display never fails.
    """
    items = []
    for usage in usages:
        try:
            hourly: float | None = price(usage.instance_type, usage.kind)
        except UnknownInstanceTypeError:
            if strict:
                raise
            hourly = None
        usd = None if hourly is None else usage.instance_seconds * hourly / 3600
        items.append(LineItem(usage, hourly, usd))
    return CostEstimate(tuple(items))


# --------------------------------------------------------------------------------------------------------------------
# From boto3 describe responses


def _timestamp(value: Any) -> float:
    """Seconds since the epoch from a boto3 datetime, an epoch number or an ISO-8601 string."""
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, int | float):
        return float(value)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def _elapsed(describe: Mapping[str, Any], start_key: str, end_key: str) -> float | None:
    """``end − start`` in seconds, or None if either is missing (e.g. the job is still running)."""
    if describe.get(start_key) is None or describe.get(end_key) is None:
        return None
    return max(0.0, _timestamp(describe[end_key]) - _timestamp(describe[start_key]))


def from_training_job(describe: Mapping[str, Any]) -> Usage:
    """A ``Usage`` from a ``DescribeTrainingJob`` response.

    Seconds per instance: ``BillableTimeInSeconds`` (capped at ``TrainingTimeInSeconds``: on AWS billable time never
    exceeds training time, spot training makes it smaller), else ``TrainingTimeInSeconds``, else end − start.
    """
    resources = describe.get("ResourceConfig") or {}
    if "InstanceType" not in resources:
        raise ValueError("ResourceConfig has no InstanceType (heterogeneous clusters are not supported here)")
    billable, training = describe.get("BillableTimeInSeconds"), describe.get("TrainingTimeInSeconds")
    if billable is not None:
        seconds = float(billable) if training is None else min(float(billable), float(training))
    elif training is not None:
        seconds = float(training)
    else:
        seconds = _elapsed(describe, "TrainingStartTime", "TrainingEndTime")
        if seconds is None:
            raise ValueError(f"training job {describe.get('TrainingJobName')!r} has not finished: no duration yet")
    return Usage(
        step=str(describe.get("TrainingJobName", "training job")),
        instance_type=resources["InstanceType"],
        instance_count=int(resources.get("InstanceCount", 1)),
        seconds=seconds,
        kind="training",
    )


def from_processing_job(describe: Mapping[str, Any]) -> Usage:
    """A ``Usage`` from a ``DescribeProcessingJob`` response (seconds = ProcessingEndTime − ProcessingStartTime)."""
    cluster = (describe.get("ProcessingResources") or {}).get("ClusterConfig") or {}
    if "InstanceType" not in cluster:
        raise ValueError("ProcessingResources.ClusterConfig has no InstanceType")
    seconds = _elapsed(describe, "ProcessingStartTime", "ProcessingEndTime")
    if seconds is None:
        raise ValueError(f"processing job {describe.get('ProcessingJobName')!r} has not finished: no duration yet")
    return Usage(
        step=str(describe.get("ProcessingJobName", "processing job")),
        instance_type=cluster["InstanceType"],
        instance_count=int(cluster.get("InstanceCount", 1)),
        seconds=seconds,
        kind="processing",
    )


# --------------------------------------------------------------------------------------------------------------------
# The box: HTML, so every front end shows the same table
#
# Why not Markdown: JupyterLab, Studio and VS Code read "$/h … $0.23" in Markdown as LaTeX and turn the table into
# italic formula text (the HTML export only looked right because MathJax could not load there). The box is HTML in
# a container marked ``mathjax_ignore tex2jax_ignore`` (MathJax 3's and 2's "do not typeset" classes), so no front
# end typesets it, whatever it does with Markdown.

MATH_IGNORE_CLASSES = "mathjax_ignore tex2jax_ignore"
"""The classes that stop MathJax 3 (JupyterLab 4, Studio) and MathJax 2 (nbconvert's HTML) from typesetting."""

_BILLABLE_RANGE = re.compile(r"(\d+(?:\.\d+)?)\s*[–-]\s*(\d+(?:\.\d+)?)\s*s billable")
_HEAD = ("Step", "Instance × count", "This run", "Typical on real SageMaker", "On-demand $/h each",
         "Est. cost, this run")
_NUMERIC = (False, False, True, False, True, True)


def _usd(value: float) -> str:
    """Dollars with enough digits that a fraction of a cent still shows."""
    return f"${value:.4f}" if value < 0.01 else f"${value:.2f}"


def _typical_cost(item: LineItem, typical: str) -> str:
    """The cost of a typical real run, when the typical figure states billable seconds (e.g. "40–65 s billable")."""
    match = _BILLABLE_RANGE.search(typical)
    if match is None or item.usd_per_hour is None:
        return ""
    low, high = (float(g) * item.usage.instance_count * item.usd_per_hour / 3600 for g in match.groups())
    return f" (typical on AWS: {_usd(low)}–{_usd(high)})"


def _cells(item: LineItem, real_service_wall: Mapping[str, str]) -> list[str]:
    """One row's cells as plain text (escaped when the HTML is built)."""
    usage = item.usage
    typical = real_service_wall.get(usage.step) or real_service_wall.get(usage.kind) or "—"
    hourly = "n/a" if item.usd_per_hour is None else f"${item.usd_per_hour:g}"
    cost = "n/a" if item.usd is None else _usd(item.usd) + _typical_cost(item, typical)
    return [usage.step, f"{usage.instance_type} × {usage.instance_count}", f"{usage.seconds:.0f} s", typical, hourly,
            cost]


def _tr(cells: Sequence[str], tag: str = "td", bold: bool = False) -> str:
    parts = []
    for index, text in enumerate(cells):
        align = "right" if _NUMERIC[index] else "left"
        content = html.escape(text)
        if index == 0 and tag == "td" and not bold:
            content = f"<code>{content}</code>"
        if bold and text:
            content = f"<b>{content}</b>"
        parts.append(f'<{tag} style="text-align:{align};padding:2px 8px">{content}</{tag}>')
    return "<tr>" + "".join(parts) + "</tr>"


@dataclass(frozen=True)
class CostBox:
    """The box a lab displays: HTML for notebooks (``_repr_html_``), the same table as plain text for ``print``."""

    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    total: tuple[str, ...] | None
    note: str

    def _repr_html_(self) -> str:
        body = "".join(_tr(row) for row in self.rows)
        if self.total is not None:
            body += _tr(self.total, bold=True)
        return (f'<div class="{MATH_IGNORE_CLASSES} workshop-cost-box">'
                f"<p><b>{html.escape(self.title)}</b></p>"
                f'<table style="border-collapse:collapse"><thead>{_tr(self.header, "th")}</thead>'
                f"<tbody>{body}</tbody></table>"
                f'<p style="font-size:smaller;color:#555">{html.escape(self.note)}</p></div>')

    def __str__(self) -> str:
        lines = [self.title, " | ".join(self.header), *(" | ".join(row) for row in self.rows)]
        if self.total is not None:
            lines.append(" | ".join(self.total))
        return "\n".join([*lines, self.note])


def aws_box(
    usages: Iterable[Usage],
    real_service_wall: Mapping[str, str] | None = None,
    title: str = "What this would cost and take on AWS",
) -> CostBox:
    """The box to ``display``: one row per step, priced at us-east-1 on-demand list prices.

    ``real_service_wall`` maps a step name or kind (e.g. ``REAL_SERVICE_TIMES``) to a typical real-service duration
    shown beside this run's seconds. Unknown instance types show "n/a" rather than failing the notebook.
    """
    result = estimate(usages, strict=False)
    wall = REAL_SERVICE_TIMES if real_service_wall is None else real_service_wall
    total = None
    if len(result.items) > 1:
        unpriced = " (excl. n/a)" if result.unpriced else ""
        total = ("Total", "", "", "", "", _usd(result.total_usd) + unpriced)
    note = (f"Prices: approximate public SageMaker on-demand list prices ({PRICES_AS_OF}); billed per second per "
            "instance, excluding storage and data transfer. Real jobs also wait minutes for instances and images (not "
            "billed). Endpoints bill every second while InService — delete them when done. Typical times: "
            f"{REAL_SERVICE_TIMES_SOURCE}.")
    return CostBox(title, _HEAD, tuple(tuple(_cells(item, wall)) for item in result.items), total, note)


__all__ = [
    "ON_DEMAND_USD_PER_HOUR",
    "REAL_SERVICE_TIMES",
    "CostBox",
    "CostEstimate",
    "LineItem",
    "UnknownInstanceTypeError",
    "Usage",
    "aws_box",
    "estimate",
    "from_processing_job",
    "from_training_job",
    "price",
]
