"""``/invocations`` of an Autopilot ENSEMBLING candidate: an AutoGluon-Tabular predictor behind Autopilot's contract.

The request is CSV without a header, the features in the training data's order (the target left out),
one record per line. The answer holds, per record, the keys of ``SAGEMAKER_INFERENCE_OUTPUT`` (default
``predicted_label``) among ``predicted_label``, ``probability`` (the probability of the predicted label,
as ensembling candidates answer), ``probabilities`` and ``labels`` (lists in the labels' order); a
regression candidate answers the predicted value. ``text/csv`` (default) is one line per record with the
keys in order (a list quoted: ``"['no', 'yes']"``, as the algorithm containers do),
``application/json`` is ``{"predictions": [{key: value}]}``,
``application/jsonlines`` one such object per line.
"""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Mapping
from typing import Any

from ..autopilot import CANDIDATE_MODEL_ENV, CLASSIFICATION_KEYS, PREDICTOR_DIR, SCHEMA_FILE
from .autopilot import AutopilotService, encode
from .errors import BadRequest, HttpError, ModelLoadError, NotAcceptable, UnsupportedMediaType
from .http import Request, Response

logger = logging.getLogger("sagemaker_emulator.model_server")

ACCEPTS = ("text/csv", "application/json", "application/jsonlines", "application/x-jsonlines")
MAX_CONTENT_LENGTH = 6 * 1024 * 1024


class AutoGluonService(AutopilotService):
    def __init__(self, environ: Mapping[str, str], model_dir: str) -> None:
        try:
            from autogluon.tabular import TabularPredictor
        except ImportError as exc:
            raise ModelLoadError(f"AutoGluon is not installed in this image's environment: {exc}") from None
        try:
            with open(os.path.join(model_dir, SCHEMA_FILE)) as f:
                self.schema = json.load(f)
            self.predictor = TabularPredictor.load(os.path.join(model_dir, PREDICTOR_DIR), verbosity=0,
                                                   require_py_version_match=False, require_version_match=False)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"Could not load the AutoGluon model from {model_dir}: {exc}") from None
        self.model = environ.get(CANDIDATE_MODEL_ENV) or None
        if self.model is not None and self.model not in self.predictor.model_names():
            raise ModelLoadError(f"{CANDIDATE_MODEL_ENV}={self.model} is not a model of this predictor "
                                 f"({', '.join(self.predictor.model_names())})")
        self.classification = self.schema["problem_type"] != "Regression"
        keys = environ.get("SAGEMAKER_INFERENCE_OUTPUT") or ("predicted_label" if self.classification else "")
        self.keys = [k.strip() for k in keys.split(",") if k.strip()]
        bad = [k for k in self.keys if k not in CLASSIFICATION_KEYS]
        if self.classification and bad:
            raise ModelLoadError(f"SAGEMAKER_INFERENCE_OUTPUT has unsupported keys {bad}; supported: "
                                 f"{', '.join(CLASSIFICATION_KEYS)}")
        self.default_accept = environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "text/csv")
        logger.info(f"Loaded AutoGluon predictor, model {self.model or self.predictor.model_best}, "
                    f"output {self.keys or ['prediction']}")

    def _frame(self, request: Request) -> Any:
        import pandas as pd

        content_type = (request.headers.get("content-type") or "text/csv").split(";")[0].strip().lower()
        if content_type != "text/csv":
            raise UnsupportedMediaType(f"Content type {content_type} is not supported: send text/csv records "
                                       "without a header, the features in the training data's order.")
        features = self.schema["features"]
        try:
            frame = pd.read_csv(io.BytesIO(request.body), header=None, low_memory=False)
        except Exception as exc:
            raise UnsupportedMediaType(f"Could not parse the CSV payload: {exc}") from None
        if frame.shape[1] != len(features):
            raise BadRequest(f"Expected {len(features)} columns (the features without the target "
                             f"{self.schema['target']!r}), got {frame.shape[1]}.")
        frame.columns = features
        return frame

    def _invoke(self, request: Request) -> Response:
        accept = (request.headers.get("accept") or "").split(";")[0].strip().lower()
        accept = self.default_accept if accept in ("", "*/*") else accept
        if accept not in ACCEPTS:
            raise NotAcceptable(f"Accept type {accept} is not supported. Please use one of {', '.join(ACCEPTS)}.")
        frame = self._frame(request)
        try:
            if self.classification:
                proba = self.predictor.predict_proba(frame, model=self.model)
                rows = self._classification_rows(proba)
            else:
                values = self.predictor.predict(frame, model=self.model)
                rows = [{"predicted_label": float(v)} for v in values]
        except HttpError:
            raise
        except Exception as exc:
            raise BadRequest(f"Unable to evaluate payload provided: {exc}") from None
        keys = self.keys if self.classification else ["predicted_label"]
        return Response(200, encode(rows, keys, accept), accept)

    def _classification_rows(self, proba: Any) -> list[dict[str, Any]]:
        labels = list(proba.columns)
        shown = [str(label) for label in labels]
        rows = []
        for values in proba.to_numpy().tolist():
            best = max(range(len(values)), key=values.__getitem__)
            rows.append({"predicted_label": shown[best], "probability": float(values[best]),
                         "probabilities": [float(v) for v in values], "labels": shown})
        return rows
