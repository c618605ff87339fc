"""The ``sagemaker-sklearn-automl`` containers of a HYPERPARAMETER_TUNING candidate's serial inference pipeline.

``AUTOML_TRANSFORM_MODE`` says which one:

* ``feature-transform`` (first): CSV records of raw features (no header, the target left out) → CSV of the
  encoded features the XGBoost container was trained on (``images.autopilot.transform``);
* ``inverse-label-transform`` (last, classification): the XGBoost container's selectable output
  (``predicted_label``, ``probability``, ``probabilities``, ``labels``: CSV or JSON) → the keys of
  ``SAGEMAKER_INFERENCE_OUTPUT`` (default ``predicted_label``) with the class names back in place of their
  indices; ``probability`` is the probability of the true class (the second label) for a binary target,
  as Autopilot's HPO candidates answer.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Mapping
from typing import Any

from ..autopilot import CLASSIFICATION_KEYS
from ..autopilot.transform import SPEC_FILE, encode_row, format_number
from .autopilot import AutopilotService, encode
from .errors import BadRequest, ModelLoadError, NotAcceptable, UnsupportedMediaType
from .http import Request, Response

MAX_CONTENT_LENGTH = 20 * 1024 * 1024
MODES = ("feature-transform", "inverse-label-transform")


class AutoMLTransformService(AutopilotService):
    def __init__(self, environ: Mapping[str, str], model_dir: str) -> None:
        self.mode = environ.get("AUTOML_TRANSFORM_MODE", "")
        if self.mode not in MODES:
            raise ModelLoadError(f"AUTOML_TRANSFORM_MODE must be one of {', '.join(MODES)}; got {self.mode!r}.")
        try:
            with open(os.path.join(model_dir, SPEC_FILE)) as f:
                self.spec = json.load(f)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"Could not load {SPEC_FILE} from the model data: {exc}") from None
        keys = environ.get("SAGEMAKER_INFERENCE_OUTPUT") or "predicted_label"
        self.keys = [k.strip() for k in keys.split(",") if k.strip()]
        bad = [k for k in self.keys if k not in CLASSIFICATION_KEYS]
        if bad:
            raise ModelLoadError(f"SAGEMAKER_INFERENCE_OUTPUT has unsupported keys {bad}; supported: "
                                 f"{', '.join(CLASSIFICATION_KEYS)}")

    def _invoke(self, request: Request) -> Response:
        return self._features(request) if self.mode == "feature-transform" else self._labels(request)

    def _features(self, request: Request) -> Response:
        content_type = (request.headers.get("content-type") or "text/csv").split(";")[0].strip().lower()
        if content_type != "text/csv":
            raise UnsupportedMediaType(f"Content type {content_type} is not supported; send text/csv.")
        width = len(self.spec["columns"])
        lines = []
        for cells in csv.reader(io.StringIO(request.body.decode("utf-8"))):
            if not cells:
                continue
            if len(cells) != width:
                raise BadRequest(f"Expected {width} columns (the features without the target "
                                 f"{self.spec['target']!r}), got {len(cells)}.")
            lines.append(",".join(format_number(v) for v in encode_row(cells, self.spec)))
        return Response(200, "\n".join(lines).encode(), "text/csv")  # no final newline: one record per line

    def _labels(self, request: Request) -> Response:
        labels = self.spec["labels"]
        content_type = (request.headers.get("content-type") or "text/csv").split(";")[0].strip().lower()
        text = request.body.decode("utf-8")
        if content_type == "application/json":
            rows = json.loads(text)["predictions"]
        elif content_type in ("application/jsonlines", "application/x-jsonlines"):
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            rows = [dict(zip(CLASSIFICATION_KEYS, (_cell(c) for c in cells), strict=False))
                    for cells in csv.reader(io.StringIO(text)) if cells]
        out = []
        for row in rows:
            probabilities = [float(p) for p in row.get("probabilities") or []]
            index = int(float(row["predicted_label"]))
            out.append({"predicted_label": labels[index],
                        "probability": float(row.get("probability", probabilities[index] if probabilities else 1.0)),
                        "probabilities": probabilities, "labels": list(labels)})
        accept = (request.headers.get("accept") or "text/csv").split(";")[0].strip().lower()
        if accept in ("", "*/*"):
            accept = "text/csv"
        if accept not in ("text/csv", "application/json", "application/jsonlines"):
            raise NotAcceptable(f"Accept type {accept} is not supported. Please use application/json, "
                                "application/jsonlines or text/csv.")
        return Response(200, encode(out, self.keys, accept), accept)


def _cell(cell: str) -> Any:
    return json.loads(cell) if cell.startswith("[") else cell
