"""Model predictions for Clarify: through the shadow endpoint the job creates and deletes, as SageMaker's does.

With ``predictor.model_name`` the job creates an endpoint configuration and an endpoint named
``<endpoint_name_prefix, default sm-clarify>-<model>-<8 hex>``, waits for ``InService``, sends the rows
in CSV batches (``content_type``/``accept_type``, default the dataset type) and deletes both at the end;
with ``predictor.endpoint_name`` it uses that endpoint as it is. The score is column ``probability``
(or ``label``) of each answer line, else its only/first column.
"""

from __future__ import annotations

import csv
import io
import os
import secrets
import time
from typing import Any

import boto3
import numpy as np

BATCH_ROWS = 4000  # a Kernel SHAP row's synthetic samples in one call; < 6 MB for ~60 numeric features
IN_SERVICE_TIMEOUT = 1200.0  # the first endpoint of an image may build its environment first


def _text(value: Any) -> str:
    """A CSV field: numbers as ``repr`` (no precision lost), anything else (a category) as its text."""
    return repr(float(value)) if isinstance(value, (int, float, np.number)) and not isinstance(value, bool) \
        else str(value)


def _fields(line: str) -> list[str]:
    """A CSV answer line's fields; a quoted list (``"[0.9, 0.1]"``, a classifier's ``probabilities``) counts as
    its values, so that ``probability`` can index the class whose score is explained."""
    out: list[str] = []
    for field in next(csv.reader([line])):
        text = field.strip()
        if text.startswith("[") and text.endswith("]"):
            out += [v.strip().strip("'\"") for v in text[1:-1].split(",")]
        else:
            out.append(text)
    return out


def csv_text(rows: np.ndarray) -> str:
    """``np.savetxt(…, delimiter=",", fmt="%.17g")`` of a float array, the same text 2-5x faster.

    Why: a Kernel SHAP request holds ``num_samples`` synthetic rows mixing the record's values with the
    baseline's, so it has few distinct values; each is formatted once and the rows are joined from them
    (``savetxt`` formats every cell: 0.1 s of the 2,000 x 59 cells of each of a hundred requests).
    """
    distinct, index = np.unique(rows, return_inverse=True)
    # mostly distinct values (a dataset's rows): nothing to share; -0.0 (unique() merges it with 0.0): savetxt's text
    if len(distinct) > rows.size // 4 or np.signbit(rows[rows == 0]).any():
        buffer = io.StringIO()
        np.savetxt(buffer, rows, delimiter=",", fmt="%.17g")
        return buffer.getvalue()
    cells = np.array([format(value, ".17g") for value in distinct.tolist()], dtype=object)[index.reshape(rows.shape)]
    return "".join([",".join(line) + "\n" for line in cells.tolist()])


class ShadowEndpoint:
    def __init__(self, predictor: dict[str, Any]) -> None:
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        self.sm = boto3.client("sagemaker", region_name=region)
        self.runtime = boto3.client("sagemaker-runtime", region_name=region)
        self.predictor = predictor
        self.created: str | None = None
        self.name = predictor.get("endpoint_name") or ""
        self.calls = 0
        self.seconds = 0.0  # spent in ``scores``: writing the requests, the endpoint answering, reading the answers

    def __enter__(self) -> ShadowEndpoint:
        if self.name:
            return self
        model = self.predictor.get("model_name")
        if not model:
            raise ValueError("predictor must name a model_name or an endpoint_name.")
        prefix = self.predictor.get("endpoint_name_prefix") or "sm-clarify"
        self.name = f"{prefix}-{model}"[:54] + f"-{secrets.token_hex(4)}"
        print(f"Creating shadow endpoint {self.name} for model {model}", flush=True)
        self.sm.create_endpoint_config(EndpointConfigName=self.name, ProductionVariants=[{
            "VariantName": "AllTraffic", "ModelName": model,
            "InitialInstanceCount": int(self.predictor.get("initial_instance_count") or 1),
            "InstanceType": self.predictor.get("instance_type") or "ml.m5.xlarge"}])
        self.created = self.name
        self.sm.create_endpoint(EndpointName=self.name, EndpointConfigName=self.name)
        deadline = time.monotonic() + IN_SERVICE_TIMEOUT
        while True:
            status = self.sm.describe_endpoint(EndpointName=self.name)
            if status["EndpointStatus"] == "InService":
                return self
            if status["EndpointStatus"] == "Failed" or time.monotonic() > deadline:
                raise RuntimeError(f"The shadow endpoint {self.name} did not come InService: "
                                   f"{status.get('FailureReason') or status['EndpointStatus']}")
            time.sleep(0.2)

    def __exit__(self, *exc: object) -> None:
        if self.created:
            print(f"Deleting shadow endpoint {self.created}", flush=True)
            for call, arg in ((self.sm.delete_endpoint, "EndpointName"),
                              (self.sm.delete_endpoint_config, "EndpointConfigName")):
                try:
                    call(**{arg: self.created})
                except Exception as error:  # noqa: BLE001 - cleanup: report, do not mask the job's outcome
                    print(f"Could not delete {self.created}: {error}", flush=True)

    def scores(self, rows: np.ndarray) -> np.ndarray:
        """One score per row: the model's output column chosen by ``probability``/``label``."""
        started = time.perf_counter()
        column = self.predictor.get("probability", self.predictor.get("label"))
        out = []
        for start in range(0, len(rows), BATCH_ROWS):
            buffer = io.StringIO()
            batch = rows[start:start + BATCH_ROWS]
            if batch.dtype.kind == "f":
                buffer.write(csv_text(batch))
            else:
                csv.writer(buffer, lineterminator="\n").writerows([_text(v) for v in row] for row in batch)
            answer = self.runtime.invoke_endpoint(
                EndpointName=self.name, Body=buffer.getvalue().encode(),
                ContentType=self.predictor.get("content_type") or "text/csv",
                Accept=self.predictor.get("accept_type") or "text/csv")
            self.calls += 1
            text = answer["Body"].read().decode().strip()
            lines = [_fields(line) for line in text.replace("\r", "").split("\n") if line.strip()]
            if len(lines) == 1 and len(rows[start:start + BATCH_ROWS]) > 1:  # one line of comma-separated scores
                lines = [[v] for v in lines[0]]
            index = int(column) if isinstance(column, int) or str(column).isdigit() else 0
            out += [float(line[index]) for line in lines]
        self.seconds += time.perf_counter() - started
        return np.asarray(out, dtype=float)
