"""Serving side of the built-in XGBoost algorithm (``sagemaker-xgboost:1.7-1``, no ``SAGEMAKER_PROGRAM``).

Follows ``algorithm_mode/serve.py`` and ``serve_utils.py`` of the container, step by step and
with the same texts, because notebooks show these bodies in ``ModelError`` messages:

1. empty body → 204;
2. ``Content-Type`` → CSV / libsvm (others 415 with the container's message; no header means
   libsvm, as in the container); decoding errors → 415
   ``"Loading csv data failed with Exception, please ensure data is in csv format:\\n <type>\\n <err>"``;
3. prediction errors → 400 ``"Unable to evaluate payload provided: <err>"``;
4. ``Accept`` (params dropped, not split; empty or ``*/*`` → ``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT``
   or ``text/csv``) outside the four supported types → 406;
5. response: selectable output (``SAGEMAKER_INFERENCE_OUTPUT``) or, with ``SAGEMAKER_BATCH``, one
   prediction per line for any accept, else JSON ``{"predictions": [{"score": ...}]}`` or CSV one
   prediction per line (``str(float)``, the 1.3-1+ encoder); the legacy first-party image
   (``xgboost:latest``) answers CSV as one comma-separated line, as 0.72 did.

Feature counts: the container checks them only for *pickled* models (CSV/protobuf: ``n`` or ``n-1``
columns, libsvm ≤ ``n+1``); for models saved with ``save_model`` it lets XGBoost decide, which
accepts fewer columns (treated as missing) and rejects more. Both are reproduced; the XGBoost
rejection is reported with the container's ``Feature size of ...`` wording instead of XGBoost's
native ``Check failed`` text.

Local deviations: ``application/x-recordio-protobuf`` is not decoded or encoded (415 / 406 with a
clear message: the emulator has no RecordIO codec); ``application/jsonlines`` without selectable
output is a 406 with an explanation (the container fails with an unhandled encoder error → 500).
"""

from __future__ import annotations

import csv
import json
import logging
import os
import pickle
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xgboost as xgb
from scipy.sparse import csr_matrix

from .errors import BadRequest, HttpError, ModelLoadError, NotAcceptable, UnsupportedMediaType, library_message
from .http import Request, Response
from .invocation import InvocationService

logger = logging.getLogger("sagemaker_xgboost_container")

DEFAULT_MAX_CONTENT_LENGTH = 6 * 1024 * 1024
PKL_FORMAT = "pkl_format"
XGB_FORMAT = "xgb_format"

# get_content_type() of the container: accepted request content types, normalised
CSV, LIBSVM, PARQUET, RECORDIO_PROTOBUF = "csv", "libsvm", "parquet", "recordio-protobuf"
_CONTENT_TYPES = {
    "csv": CSV, "text/csv": CSV,
    "libsvm": LIBSVM, "text/libsvm": LIBSVM, "text/x-libsvm": LIBSVM,
    "parquet": PARQUET, "application/x-parquet": PARQUET,
    "recordio-protobuf": RECORDIO_PROTOBUF, "application/x-recordio-protobuf": RECORDIO_PROTOBUF,
}
_VALID_CONTENT_TYPES = (
    "csv, libsvm, parquet, recordio-protobuf, text/csv, text/libsvm, text/x-libsvm, application/x-parquet, "
    "application/x-recordio-protobuf"
)
JSON, JSONLINES, RECORDIO, TEXT_CSV = "application/json", "application/jsonlines", "application/x-recordio-protobuf", \
    "text/csv"
SUPPORTED_ACCEPTS = [JSON, JSONLINES, RECORDIO, TEXT_CSV]
_NOT_LOCAL = "is not supported by the local SageMaker emulator (it has no RecordIO-protobuf codec)"

# selectable inference output (serve_utils.VALID_OBJECTIVES)
PREDICTED_LABEL, LABELS, PROBABILITY, PROBABILITIES = "predicted_label", "labels", "probability", "probabilities"
RAW_SCORE, RAW_SCORES, PREDICTED_SCORE = "raw_score", "raw_scores", "predicted_score"
_CLASSIFICATION = [PREDICTED_LABEL, LABELS, RAW_SCORE, RAW_SCORES]
_WITH_PROBABILITIES = [PREDICTED_LABEL, LABELS, PROBABILITY, PROBABILITIES, RAW_SCORE, RAW_SCORES]
VALID_OBJECTIVES: dict[str, list[str]] = {
    "reg:squarederror": [PREDICTED_SCORE], "reg:logistic": [PREDICTED_SCORE], "reg:gamma": [PREDICTED_SCORE],
    "reg:absoluteerror": [PREDICTED_SCORE], "reg:tweedie": [PREDICTED_SCORE],
    "binary:logistic": _WITH_PROBABILITIES, "binary:logitraw": _CLASSIFICATION, "binary:hinge": _CLASSIFICATION,
    "multi:softmax": _CLASSIFICATION, "multi:softprob": _WITH_PROBABILITIES,
}
_NP_STR = re.compile(r"""np\.str_\(('.*?'|".*?")\)""")
#: a CSV cell the fast path parses: a plain decimal number (what Clarify, the SDK's serializers and NumPy write)
_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_KEY_ORDER = [PREDICTED_LABEL, LABELS, PROBABILITY, PROBABILITIES, RAW_SCORE, RAW_SCORES, PREDICTED_SCORE]


# --------------------------------------------------------------------------- settings

#: set to "1" by the runtime for the legacy first-party image (see ``AlgorithmSettings.legacy``)
LEGACY_ENV = "SM_EMULATOR_LEGACY_ALGORITHM"


@dataclass(frozen=True)
class AlgorithmSettings:
    """The container environment variables of algorithm-mode serving."""

    model_dir: str
    default_accept: str = TEXT_CSV
    batch: bool = False
    selected_keys: list[str] | None = None
    ensemble: bool = True
    max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH
    #: the legacy first-party image (xgboost:latest / xgboost:1), whose CSV answer is one comma-separated line
    legacy: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str], model_dir: str) -> AlgorithmSettings:
        output = environ.get("SAGEMAKER_INFERENCE_OUTPUT")  # present, even empty, enables selectable output
        return cls(
            model_dir=model_dir,
            default_accept=environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", TEXT_CSV),
            batch=bool(environ.get("SAGEMAKER_BATCH")),  # any non-empty value, as os.getenv() truthiness
            selected_keys=output.replace(" ", "").lower().split(",") if output is not None else None,
            ensemble=environ.get("SAGEMAKER_INFERENCE_ENSEMBLE", "true") == "true",
            max_content_length=int(environ.get("MAX_CONTENT_LENGTH", str(DEFAULT_MAX_CONTENT_LENGTH))),
            legacy=environ.get(LEGACY_ENV) == "1",
        )


# --------------------------------------------------------------------------- model loading


@dataclass
class LoadedModel:
    """One booster or an ensemble, with what prediction and selectable output need from its config."""

    boosters: list[xgb.Booster]
    model_format: str
    objective: str
    num_class: str
    num_features: int
    iteration_ranges: list[tuple[int, int]]
    lock: threading.Lock | None = field(default=None)  # gblinear prediction is not thread-safe


def model_files(model_dir: str) -> list[str]:
    """Non-dot regular files of the model directory, sorted (the container uses ``os.listdir`` order)."""
    if not os.path.isdir(model_dir):
        raise ModelLoadError(f"Unable to load model: model directory {model_dir} does not exist.")
    paths = []
    for name in sorted(os.listdir(model_dir)):
        path = os.path.join(model_dir, name)
        if not os.path.isfile(path):
            continue
        if name.startswith("."):
            logger.warning(f"Ignoring dotfile '{path}' found in model directory - please exclude dotfiles from "
                           "model archives")
            continue
        paths.append(path)
    return paths


def _load_one(path: str) -> tuple[xgb.Booster, str]:
    """Pickle first, then ``Booster.load_model`` (format auto-detected), as the container.

    ``load_model`` reads UBJSON and JSON; the legacy binary format that 1.x containers wrote
    only with an XGBoost older than 3.1 (newer ones explain how to convert it, and that
    message becomes the ``FAILURE`` reason).

    Only files of the model directory, which come from the user's own model archive, are ever
    unpickled; request bodies never are.
    """
    try:
        with open(path, "rb") as handle:
            booster = pickle.load(handle)
        if not isinstance(booster, xgb.Booster):
            raise TypeError(f"the pickled object is a {type(booster).__module__}.{type(booster).__name__}, "
                            "not an xgboost.Booster")
        return booster, PKL_FORMAT
    except Exception as pickle_error:
        try:
            booster = xgb.Booster()
            booster.load_model(path)
            return booster, XGB_FORMAT
        except Exception as xgb_error:
            raise ModelLoadError(
                f"Unable to load model: Model {path} cannot be loaded:\nPickle load error={pickle_error}"
                f"\nXGB load model error={library_message(xgb_error)}"
            ) from xgb_error


def _iteration_range(booster: xgb.Booster, config: dict[str, Any]) -> tuple[int, int]:
    """``ntree_limit=best_ntree_limit`` of the container, for pickles of early-stopped 1.x boosters."""
    limit = int(getattr(booster, "best_ntree_limit", 0) or 0)
    if not limit:
        return (0, 0)
    params = config["learner"].get("gradient_booster", {}).get("gbtree_model_param", {})
    parallel = max(1, int(params.get("num_parallel_tree", 1)))
    return (0, max(1, limit // parallel))


def load_model(model_dir: str, ensemble: bool = True) -> LoadedModel:
    """Every model file when ``ensemble`` (default), else ``xgboost-model`` or the first file."""
    paths = model_files(model_dir)
    if not paths:
        raise ModelLoadError(f"Unable to load model: no model file found in {model_dir} (is the model archive empty?)")
    if not ensemble:
        preferred = os.path.join(model_dir, "xgboost-model")
        paths = [preferred] if preferred in paths else paths[:1]
    boosters, formats, ranges = [], [], []
    config: dict[str, Any] = {}
    for path in paths:
        logger.info(f"Loading the model from {path}")
        booster, model_format = _load_one(path)
        booster.set_param("nthread", 1)
        booster_config = json.loads(booster.save_config())
        config = config or booster_config  # the objective of the first model, as the container
        boosters.append(booster)
        formats.append(model_format)
        ranges.append(_iteration_range(booster, booster_config))
    learner = config["learner"]
    objective = learner["objective"]["name"]
    logger.info(f"Model objective : {objective}")
    gblinear = learner.get("gradient_booster", {}).get("name") == "gblinear"
    return LoadedModel(
        boosters=boosters, model_format=formats[0], objective=objective,
        num_class=str(learner.get("learner_model_param", {}).get("num_class", "")),
        num_features=boosters[0].num_features(), iteration_ranges=ranges,
        lock=threading.Lock() if gblinear else None,
    )


# --------------------------------------------------------------------------- request decoding


def normalize_content_type(value: str | None) -> str:
    """``data_utils.get_content_type``: no header means libsvm; ``label_size`` must be 1 for CSV."""
    if value is None:
        return LIBSVM
    media, _, params = value.lower().partition(";")
    media = media.strip()
    kind = _CONTENT_TYPES.get(media)
    if kind is None:
        raise ValueError(f"{value} is not an accepted ContentType: {_VALID_CONTENT_TYPES}.")
    if kind == CSV and "label_size" in params:
        for param in params.split(";"):
            key, _, val = param.partition("=")
            if key.strip() == "label_size" and val.strip().strip('"') != "1":
                raise ValueError(f"{value} is not an accepted csv ContentType. "
                                 "Optional parameter label_size must be equal to 1")
    return kind


def csv_delimiter(first_line: str) -> str:
    """The delimiter ``csv.Sniffer`` finds on (up to 512 characters of) the first line.

    Shortcut, with the same result: on a single line without quotes every character present is a
    candidate and the sniffer prefers ``,`` among them, so a comma is the answer whenever there is
    one. The sniffer itself (≈80 µs) only runs otherwise; alphanumeric answers mean ``,``.
    """
    sample = first_line[:512]
    if "," in sample and '"' not in sample and "'" not in sample:
        return ","
    delimiter = csv.Sniffer().sniff(sample).delimiter
    return "," if delimiter.isalnum() else delimiter


def csv_to_array(text: str) -> np.ndarray:
    """``encoder.csv_to_dmatrix`` minus the DMatrix: one row per line, empty cells NaN, float64."""
    lines = text.split("\n")
    delimiter = csv_delimiter(lines[0])
    table = _decimal_table(text, lines, delimiter)
    if table is not None:
        return table
    rows = [[cell or "nan" for cell in line.split(delimiter)] for line in lines]
    try:
        return np.array(rows).astype(float)
    except ValueError as error:  # NumPy 2 says np.str_('a') where the container's NumPy 1.x said 'a'
        raise ValueError(_NP_STR.sub(r"\1", str(error))) from None


def _decimal_table(text: str, lines: list[str], delimiter: str) -> np.ndarray | None:
    """The same array as the container's ``np.array(rows).astype(float)`` when every cell is a plain decimal
    number or empty and every line has the same number of cells; else None (the container's path then runs).

    Why: that path builds a NumPy string array of every cell, 0.3-0.8 s for the 2,000 x 59 cells of one
    Kernel SHAP request of a Clarify job (which sends a hundred of them). Synthetic SHAP samples, like most
    tabular payloads, repeat few distinct cells: each distinct text is converted once (``float`` rounds
    correctly, as NumPy's conversion does, so the values are bit for bit the same), 10-20x faster.
    """
    columns = lines[0].count(delimiter) + 1
    cells = (text.replace("\n", delimiter) if delimiter != "\n" else text).split(delimiter)
    if len(cells) != columns * len(lines):
        return None
    values: dict[str, float] = {}
    for cell in set(cells):
        if cell == "":
            values[cell] = float("nan")
        elif _DECIMAL.fullmatch(cell):
            values[cell] = float(cell)
        else:
            return None
    if any(line.count(delimiter) != columns - 1 for line in lines):
        return None
    return np.fromiter(map(values.__getitem__, cells), dtype=float, count=len(cells)).reshape(len(lines), columns)


def libsvm_to_csr(text: str) -> csr_matrix:
    """``serve_utils._get_sparse_matrix_from_libsvm``: ``idx:val`` tokens, anything else (the label) ignored."""
    rows: list[int] = []
    cols: list[str] = []
    values: list[str] = []
    for row, line in enumerate(text.split("\n")):
        for item in line.split(" "):
            if ":" in item:
                parts = item.split(":")
                rows.append(row)
                cols.append(parts[0])
                values.append(parts[1])
    return csr_matrix((np.array(values).astype(float), (np.array(rows), np.array(cols).astype(int))))


def parse_payload(body: bytes, content_type: str | None) -> tuple[xgb.DMatrix, str]:
    """Decode a request body; every failure is a 415 whose text is the container's."""
    try:
        kind = normalize_content_type(content_type)
    except ValueError as error:
        raise UnsupportedMediaType(str(error)) from None
    decoders = {CSV: ("csv", csv_to_array), LIBSVM: ("libsvm", libsvm_to_csr)}
    if kind in decoders:
        label, decode = decoders[kind]
        try:
            return xgb.DMatrix(decode(body.strip().decode("utf-8")), nthread=1), kind
        except Exception as error:
            raise UnsupportedMediaType(f"Loading {label} data failed with Exception, please ensure data is in "
                                       f"{label} format:\n {type(error)}\n {library_message(error)}") from None
    if kind == RECORDIO_PROTOBUF:
        raise UnsupportedMediaType(f"Content-type {content_type} {_NOT_LOCAL}. Please send text/csv or text/libsvm.")
    raise UnsupportedMediaType(f"Content-type {content_type} is not supported.")


# --------------------------------------------------------------------------- prediction


def check_feature_count(model: LoadedModel, kind: str, columns: int) -> None:
    """The container's check for pickles; for saved models, XGBoost's (more columns than the model)."""
    expected = model.num_features
    if model.model_format == PKL_FORMAT:
        if kind == LIBSVM:
            if columns > expected + 1:
                raise ValueError(f"Feature size of libsvm inference data {columns} is larger than "
                                 f"feature size of trained model {expected}.")
        elif columns not in (expected, expected - 1):
            raise ValueError(f"Feature size of {kind} inference data {columns} is not consistent "
                             f"with feature size of trained model {expected}.")
    elif columns > expected:
        if kind == LIBSVM:
            raise ValueError(f"Feature size of libsvm inference data {columns} is larger than "
                             f"feature size of trained model {expected}.")
        raise ValueError(f"Feature size of {kind} inference data {columns} is not consistent "
                         f"with feature size of trained model {expected}.")


def predict(model: LoadedModel, dtest: xgb.DMatrix, kind: str) -> np.ndarray:
    """``serve_utils.predict``: one booster, or the mean (vote for softmax/hinge) of an ensemble."""
    check_feature_count(model, kind, dtest.num_col())
    if len(model.boosters) == 1:
        booster = model.boosters[0]
        if model.lock is None:
            return booster.predict(dtest, iteration_range=model.iteration_ranges[0], validate_features=False)
        with model.lock:
            return booster.predict(dtest, iteration_range=model.iteration_ranges[0], validate_features=False)
    outputs = []
    for booster, iteration_range in zip(model.boosters, model.iteration_ranges, strict=True):
        if model.lock is None:
            outputs.append(booster.predict(dtest, iteration_range=iteration_range, validate_features=False))
        else:
            with model.lock:
                outputs.append(booster.predict(dtest, iteration_range=iteration_range, validate_features=False))
    stacked = np.stack(outputs)
    if model.objective in ("multi:softmax", "binary:hinge"):
        from scipy import stats

        return stats.mode(stacked, axis=0, keepdims=False).mode
    return stacked.mean(axis=0)


# --------------------------------------------------------------------------- response encoding


def parse_accept(header: str | None, default: str) -> str:
    """``serve._parse_accept``: parameters dropped, a comma list is *not* split (and so rejected)."""
    accept = (header or "").split(";", 1)[0].strip()
    if not accept or accept == "*/*":
        return default
    if accept.lower() not in SUPPORTED_ACCEPTS:
        raise NotAcceptable(f"Accept type {accept} is not supported. Please use supported accept types: "
                            f"{SUPPORTED_ACCEPTS}.")
    return accept.lower()


def _selected_one(objective: str, raw: Any, keys: set[str], labels: Any) -> dict[str, Any]:
    """One row of ``serve_utils.get_selected_predictions`` (the valid keys only, in the container's order)."""
    out: dict[str, Any] = {}
    softprob = objective == "multi:softprob"
    for key in _KEY_ORDER:
        if key not in keys:
            continue
        if key == PREDICTED_LABEL:
            if objective in ("binary:hinge", "multi:softmax"):
                out[key] = raw.item()
            elif objective == "binary:logistic":
                out[key] = int(raw > 0.5)
            elif objective == "binary:logitraw":
                out[key] = int(raw > 0)
            else:  # multi:softprob
                out[key] = np.argmax(raw).item()
        elif key == LABELS:
            out[key] = labels
        elif key in (PROBABILITY, RAW_SCORE):
            out[key] = max(raw).item() if softprob else raw.item()
        elif key in (PROBABILITIES, RAW_SCORES):
            if softprob:
                out[key] = raw.tolist()
            else:
                one = raw.item()
                out[key] = [1.0 - one, one]
        elif key == PREDICTED_SCORE:
            out[key] = raw.item()
    return out


def selected_predictions(predictions: np.ndarray, keys: list[str], objective: str, num_class: str) -> list[dict]:
    """``get_selected_predictions``: the requested keys per row; keys invalid for the objective are NaN."""
    if objective not in VALID_OBJECTIVES:
        raise ValueError(f"Objective `{objective}` unsupported for selectable inference predictions.")
    valid = set(keys) & set(VALID_OBJECTIVES[objective])
    invalid = [key for key in dict.fromkeys(keys) if key not in valid]
    if invalid:
        logger.warning(f"Selected key(s) {set(invalid)} incompatible for objective '{objective}'. Please use list of "
                       f"compatible selectable inference predictions: {VALID_OBJECTIVES[objective]}")
    if "binary:" in objective:
        labels: Any = [0, 1]
    elif "multi:" in objective and num_class:
        labels = list(range(int(num_class)))
    else:
        labels = np.nan
    rows = []
    for raw in predictions:
        row = _selected_one(objective, raw, valid, labels)
        for key in invalid:
            row[key] = np.nan
        rows.append(row)
    return rows


def encode_selected(rows: list[dict], keys: list[str], accept: str, batch: bool) -> bytes:
    """``encode_selected_predictions``: JSON, JSON Lines, or CSV in key order (lists quoted)."""
    if accept == JSON:
        return json.dumps({"predictions": rows}).encode()
    if accept == JSONLINES:
        return "".join(json.dumps(row) + "\n" for row in rows).encode()
    if accept == TEXT_CSV:
        lines = []
        for row in rows:
            lines.append(",".join(f'"{row[key]}"' if isinstance(row[key], list) else str(row[key]) for key in keys))
        text = "\n".join(lines)
        return (text + "\n" if batch else text).encode()
    if accept == RECORDIO:
        raise NotAcceptable(f"Accept type {accept} {_NOT_LOCAL}. Please use application/json, "
                            "application/jsonlines or text/csv.")
    raise RuntimeError(f"Cannot encode selected predictions into accept type '{accept}'.")


def _csv_cell(value: Any) -> str:
    return ",".join(str(v) for v in value) if isinstance(value, list) else str(value)


def encode_predictions(predictions: list[Any], accept: str) -> bytes:
    """Plain predictions: JSON scores, or CSV one prediction (row) per line with a trailing newline."""
    if accept == JSON:
        return json.dumps({"predictions": [{"score": value} for value in predictions]}).encode()
    if accept == TEXT_CSV:
        return "".join(_csv_cell(value) + "\n" for value in predictions).encode()
    if accept in (JSONLINES, RECORDIO):
        raise NotAcceptable(f"Accept type {accept} is only supported with selectable inference output (set "
                            "SAGEMAKER_INFERENCE_OUTPUT, e.g. 'predicted_label,probability'). Please use "
                            "application/json or text/csv.")
    raise NotAcceptable(f"Accept type {accept} is not supported. Please use supported accept types: "
                        f"{SUPPORTED_ACCEPTS}.")


def _mimetype(accept: str) -> str:
    """Flask's ``mimetype=accept``: ``text/*`` types get ``; charset=utf-8``."""
    return f"{accept}; charset=utf-8" if accept.startswith("text/") else accept


# --------------------------------------------------------------------------- the service


class AlgorithmService(InvocationService):
    """``/invocations`` (:class:`InvocationService`) and ``/execution-parameters`` of the built-in algorithm's
    ``ScoringService``."""

    def __init__(self, settings: AlgorithmSettings) -> None:
        self.settings = settings
        self.model = load_model(settings.model_dir, settings.ensemble)

    def execution_parameters(self, request: Request) -> Response:
        parameters = {
            "MaxConcurrentTransforms": os.cpu_count() or 1,
            "BatchStrategy": "MULTI_RECORD",
            "MaxPayloadInMB": int(self.settings.max_content_length / (1024**2)),
        }
        return Response(200, json.dumps(parameters).encode(), "application/json")

    def _server_error(self, error: HttpError) -> None:
        logger.error(error.message)

    def _invoke(self, request: Request) -> Response:
        settings = self.settings
        dtest, kind = parse_payload(request.body, request.headers.get("content-type"))
        try:
            predictions = predict(self.model, dtest, kind)
        except Exception as error:
            logger.error(f"Unable to evaluate payload provided: {library_message(error)}")
            raise BadRequest(f"Unable to evaluate payload provided: {library_message(error)}") from None
        accept = parse_accept(request.headers.get("accept"), settings.default_accept)
        if settings.selected_keys is not None:
            try:
                rows = selected_predictions(predictions, settings.selected_keys, self.model.objective,
                                            self.model.num_class)
                body = encode_selected(rows, settings.selected_keys, accept, settings.batch)
            except HttpError:
                raise
            except Exception as error:
                logger.exception(error)
                raise HttpError(str(error), 500) from None
            return Response(200, body, _mimetype(accept))
        values = predictions.tolist()
        if settings.batch:
            body = ("\n".join(map(str, values)) + "\n").encode()
        elif settings.legacy and accept == TEXT_CSV:
            # 0.72 answered "0.12,0.87,...": the public notebooks parse it with np.fromstring(..., sep=",")
            body = ",".join(_csv_cell(value) for value in values).encode()
        else:
            body = encode_predictions(values, accept)
        return Response(200, body, _mimetype(accept))
