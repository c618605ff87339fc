"""Script-mode serving: the user's inference module (``SAGEMAKER_PROGRAM``) and the framework defaults.

The XGBoost and scikit-learn images serve a single model through ``sagemaker_containers``'
``Transformer``: ``model_fn`` once at start-up, then per request either ``transform_fn`` or
``input_fn`` → ``predict_fn`` → ``output_fn``, each falling back to the image's default:

==============  ===========================================  ==========================================
hook            XGBoost image                                scikit-learn image
==============  ===========================================  ==========================================
``model_fn``    required (``NotImplementedError``)           ``model.joblib`` if present (see below)
``input_fn``    CSV / libsvm → ``DMatrix``                   JSON / CSV / NPY → numpy (float32 for text)
``predict_fn``  ``model.predict(d, validate_features=False)``  ``model.predict(data)``
``output_fn``   JSON / CSV / NPY, default accept JSON        same
==============  ===========================================  ==========================================

A default decoder without a codec for the content type answers 415, a default encoder 406 (JSON
body ``{"error", "error-message", "stack-trace"}`` as the toolkit); any other exception, including
anything raised by user code, is a 500 whose body is ``"<message>\\n<traceback>"`` (the inference
toolkit's format; the Flask-based containers send a generic HTML page and log the traceback, which
is less useful in a notebook). An exception carrying an integer ``status_code`` (the toolkit's
``BaseInferenceToolkitError``) uses that status.

A hook with one parameter more than the contract receives a context object (model directory,
system properties, request headers), as the inference toolkit detects it.

Where the code is: ``SAGEMAKER_PROGRAM`` is looked up in ``<model>/code`` (where the SDK repacks it),
``<base>/code`` (where the runtime extracts ``SAGEMAKER_SUBMIT_DIRECTORY``) and a local
``SAGEMAKER_SUBMIT_DIRECTORY``. A ``requirements.txt`` there is *not* installed by this process: the
runtime starts the server with the interpreter of ``runtime.pyenvs.python_for_requirements``.

Local deviations: the scikit-learn default ``model_fn`` loads ``model.joblib`` (the container has no
default); ``Accept`` may be a list and may carry parameters (the first supported type wins, as in the
inference toolkit); NPY request bodies are loaded with ``allow_pickle=False`` (a request must never
unpickle); recordio-protobuf is not decoded (415 with an explanation).
"""

from __future__ import annotations

import csv
import importlib
import importlib.util
import inspect
import io
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import ModelLoadError, UnsupportedFormatError
from .http import Request, Response

logger = logging.getLogger("sagemaker_emulator.model_server.script_mode")

JSON, CSV, NPY = "application/json", "text/csv", "application/x-npy"
UTF8_TYPES = (JSON, CSV)
SAFETY_MAX_CONTENT_LENGTH = 100 * 1024 * 1024  # the containers set no limit; batch payloads stop at 100 MB
MODEL_FN_MISSING = (
    "\nPlease provide a model_fn implementation.\nSee documentation for model_fn at "
    "https://github.com/aws/sagemaker-python-sdk\n"
)
_PACKAGE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "")
_HOOKS = {"model_fn": 1, "input_fn": 2, "predict_fn": 2, "output_fn": 2, "transform_fn": 4,
          "execution_parameters_fn": 0}


# --------------------------------------------------------------------------- settings and context


@dataclass(frozen=True)
class ScriptSettings:
    """Where the model and the user's code are, and which image's defaults apply."""

    framework: str
    program: str
    model_dir: str
    code_dirs: tuple[str, ...]
    default_accept: str = JSON

    @classmethod
    def from_env(cls, environ: Mapping[str, str], base_dir: str, model_dir: str) -> ScriptSettings:
        dirs = [os.path.join(model_dir, "code"), os.path.join(base_dir, "code")]
        submit = environ.get("SAGEMAKER_SUBMIT_DIRECTORY", "")
        if submit and "://" not in submit.removeprefix("file://"):
            dirs.append(submit.removeprefix("file://"))
        return cls(
            framework=environ.get("SM_EMULATOR_FRAMEWORK", "xgboost").strip().lower(),
            program=environ["SAGEMAKER_PROGRAM"],
            model_dir=model_dir,
            code_dirs=tuple(dict.fromkeys(dirs)),
            default_accept=environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", JSON),
        )


@dataclass
class InferenceContext:
    """What a hook that asks for a context gets (a subset of the model server's ``Context``)."""

    model_dir: str
    request_headers: dict[str, str] = field(default_factory=dict)

    @property
    def system_properties(self) -> dict[str, Any]:
        return {"model_dir": self.model_dir, "gpu_id": None, "batch_size": 1}

    def get_request_header(self, idx: int, key: str) -> str | None:
        return self.request_headers.get(key.lower())


@dataclass(frozen=True)
class Hook:
    """A handler function, whether it takes the context, and whether it is the user's."""

    fn: Callable[..., Any]
    takes_context: bool = False
    user: bool = False

    def __call__(self, context: InferenceContext, *args: Any) -> Any:
        return self.fn(*args, context) if self.takes_context else self.fn(*args)


def _takes_context(fn: Callable[..., Any], arity: int) -> bool:
    """The inference toolkit's rule: exactly one parameter more than the contract means "context"."""
    try:
        return len(inspect.signature(fn).parameters) == arity + 1
    except (TypeError, ValueError):
        return False


# --------------------------------------------------------------------------- default codecs


def _media(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _text(data: str | bytes) -> str:
    return data if isinstance(data, str) else bytes(data).decode("utf-8")


def xgboost_input_fn(data: str | bytes, content_type: str) -> Any:
    """``sagemaker_xgboost_container.encoder.decode``: CSV (not stripped) or libsvm → ``DMatrix``."""
    import xgboost as xgb

    from .xgboost_algorithm import csv_to_array, libsvm_to_csr

    media = _media(content_type)
    if media == CSV:
        return xgb.DMatrix(csv_to_array(_text(data)), nthread=1)
    if media in ("text/libsvm", "text/x-libsvm"):
        return xgb.DMatrix(libsvm_to_csr(_text(data).strip()), nthread=1)
    if media == "application/x-recordio-protobuf":
        raise UnsupportedFormatError(content_type, "(recordio-protobuf is not supported by the local SageMaker "
                                                   "emulator: send text/csv or text/libsvm, or implement input_fn.)")
    raise UnsupportedFormatError(media)


def xgboost_predict_fn(data: Any, model: Any) -> Any:
    return model.predict(data, validate_features=False)


def sklearn_input_fn(data: str | bytes, content_type: str) -> np.ndarray:
    """``sagemaker_containers`` decoders (JSON, CSV squeezed, NPY), text input cast to float32."""
    media = _media(content_type)
    if media == JSON:
        array = np.array(json.loads(data))
    elif media == CSV:
        rows = list(csv.reader(io.StringIO(_text(data)), delimiter=",", quotechar='"', doublequote=True, strict=True))
        array = np.array(rows).squeeze()
        try:
            array = array.astype(None)
        except ValueError:
            pass  # csv_to_numpy(dtype=None) keeps the strings; the float32 cast below reports them
    elif media == NPY:
        array = np.load(io.BytesIO(data.encode() if isinstance(data, str) else bytes(data)), allow_pickle=False)
    else:
        raise UnsupportedFormatError(media)
    return array.astype(np.float32) if media in UTF8_TYPES else array


def sklearn_predict_fn(data: Any, model: Any) -> Any:
    return model.predict(data)


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def array_to_csv(array_like: Any) -> str:
    """``array_to_csv``: one row per line; numpy scalars written with ``str`` as NumPy 1.x did."""
    array = np.array(array_like)
    if array.ndim == 1:
        array = array.reshape(array.shape[0], 1)
    stream = io.StringIO()
    writer = csv.writer(stream, lineterminator="\n", delimiter=",", quotechar='"', doublequote=True, strict=True)
    writer.writerows([str(value) if isinstance(value, np.generic) else value for value in row] for row in array)
    return stream.getvalue()


def encode(prediction: Any, accept: str) -> tuple[bytes, str]:
    """JSON, CSV or NPY; the first supported type of an ``Accept`` list wins."""
    for candidate in accept.split(","):
        media = _media(candidate)
        if media == JSON:
            return json.dumps(prediction, default=_json_default).encode(), JSON
        if media == CSV:
            return array_to_csv(prediction).encode(), CSV
        if media == NPY:
            buffer = io.BytesIO()
            np.save(buffer, prediction)
            return buffer.getvalue(), NPY
    raise UnsupportedFormatError(accept)


def default_output_fn(prediction: Any, accept: str) -> Response:
    body, media = encode(prediction, accept)
    return Response(200, body, _mimetype(media))


def _mimetype(content_type: str) -> str:
    """Flask's ``mimetype=...``: ``text/*`` without a charset gets ``; charset=utf-8``."""
    if content_type.startswith("text/") and "charset" not in content_type:
        return f"{content_type}; charset=utf-8"
    return content_type


def _no_model_fn(model_dir: str) -> Any:
    raise NotImplementedError(MODEL_FN_MISSING)


def _sklearn_model_fn(model_dir: str) -> Any:
    path = os.path.join(model_dir, "model.joblib")
    if not os.path.isfile(path):
        raise NotImplementedError(MODEL_FN_MISSING + f"(The local emulator's default model_fn loads {path}, "
                                  "which does not exist.)")
    import joblib

    logger.info("No model_fn in the inference script: loading model.joblib (a local convenience: the "
                "scikit-learn container itself requires a model_fn)")
    return joblib.load(path)


DEFAULTS: dict[str, dict[str, Callable[..., Any]]] = {
    "xgboost": {"model_fn": _no_model_fn, "input_fn": xgboost_input_fn, "predict_fn": xgboost_predict_fn,
                "output_fn": default_output_fn},
    "sklearn": {"model_fn": _sklearn_model_fn, "input_fn": sklearn_input_fn, "predict_fn": sklearn_predict_fn,
                "output_fn": default_output_fn},
}


# --------------------------------------------------------------------------- the user module


def find_program(settings: ScriptSettings) -> str:
    """The path of ``SAGEMAKER_PROGRAM`` in the first code directory that has it."""
    for directory in settings.code_dirs:
        path = os.path.join(directory, settings.program)
        if os.path.isfile(path):
            return path
    raise ModelLoadError(f"The inference script {settings.program} (SAGEMAKER_PROGRAM) was not found in "
                         f"{', '.join(settings.code_dirs)}.")


def import_user_module(path: str, code_dir: str) -> Any:
    """Import the script as a top-level module with its directory first on ``sys.path``."""
    name = os.path.splitext(os.path.basename(path))[0]
    for directory in (os.path.dirname(path), code_dir):
        if directory not in sys.path:
            sys.path.insert(0, directory)
    requirements = os.path.join(code_dir, "requirements.txt")
    if os.path.isfile(requirements):
        logger.info(f"{requirements} found: expecting this interpreter ({sys.executable}) to have them installed")
    try:
        if name not in sys.modules:
            return importlib.import_module(name)
        # The name is taken (e.g. a script called "json.py"): load it without replacing that module.
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    except BaseException as error:
        logger.error("Failed to import the inference script:\n" + traceback.format_exc())
        raise ModelLoadError(f"Failed to import the inference script {path}: {type(error).__name__}: {error}") \
            from error


def resolve_hooks(module: Any, framework: str) -> dict[str, Hook | None]:
    """The user's hooks where defined, the image's defaults elsewhere (``transform_fn`` excludes the three)."""
    defaults = DEFAULTS.get(framework, DEFAULTS["xgboost"])
    user = {name: getattr(module, name, None) for name in _HOOKS}
    user = {name: fn for name, fn in user.items() if callable(fn)}
    if "transform_fn" in user and any(name in user for name in ("input_fn", "predict_fn", "output_fn")):
        raise ModelLoadError("Cannot use transform_fn implementation with input_fn, predict_fn, and/or output_fn")
    hooks: dict[str, Hook | None] = {}
    for name, arity in _HOOKS.items():
        if name in user:
            hooks[name] = Hook(user[name], _takes_context(user[name], arity), user=True)
        elif name in defaults:
            hooks[name] = Hook(defaults[name])
        else:
            hooks[name] = None
    return hooks


# --------------------------------------------------------------------------- responses


def user_traceback(error: BaseException) -> str:
    """The traceback from the first frame outside this package: the user's code (or the library it called)."""
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None and tb.tb_frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        tb = tb.tb_next
    return "Traceback (most recent call last):\n" + "".join(traceback.format_tb(tb)) + "".join(
        traceback.format_exception_only(type(error), error))


def _error_response(error: BaseException, status: int) -> Response:
    """The toolkit's ``_error_response``: a JSON body with the error class, message and stack trace."""
    body = json.dumps({"error": type(error).__name__, "error-message": str(error),
                       "stack-trace": user_traceback(error)})
    return Response(status, body.encode(), JSON)


def to_response(result: Any, accept: str) -> Response:
    """What a hook returned → a response: ``Response``, ``(body, content_type)``, Flask-like, or a body."""
    if isinstance(result, Response):
        return result
    content_type: str | None = accept
    if isinstance(result, tuple) and len(result) == 2:
        result, content_type = result
    elif hasattr(result, "get_data") and hasattr(result, "status_code"):  # a flask/werkzeug Response
        return Response(int(result.status_code), result.get_data(), getattr(result, "content_type", None) or accept)
    if isinstance(result, (bytes, bytearray, memoryview)):
        body = bytes(result)
    elif isinstance(result, str):
        body = result.encode("utf-8")
    elif isinstance(result, (dict, list)):  # Flask turns a returned dict into JSON
        body, content_type = json.dumps(result, default=_json_default).encode(), JSON
    elif result is None:
        body = b""
    else:
        raise TypeError(f"The inference handler returned a {type(result).__name__}; return bytes, str, or a "
                        "(body, content_type) tuple.")
    return Response(200, body, _mimetype(content_type) if content_type else None)


# --------------------------------------------------------------------------- the service


class ScriptModeService:
    """Loads the model with ``model_fn`` at start-up and runs the hooks for each request."""

    def __init__(self, settings: ScriptSettings) -> None:
        self.settings = settings
        path = find_program(settings)
        code_dir = next(d for d in settings.code_dirs if path.startswith(os.path.join(d, "")))
        logger.info(f"Importing the inference script {path}")
        self.module = import_user_module(path, code_dir)
        self.hooks = resolve_hooks(self.module, settings.framework)
        self.model = self._load_model()

    def _load_model(self) -> Any:
        hook = self.hooks["model_fn"]
        assert hook is not None
        try:
            model = hook(InferenceContext(self.settings.model_dir), self.settings.model_dir)
        except BaseException as error:
            logger.error("model_fn failed:\n" + traceback.format_exc())
            raise ModelLoadError(f"model_fn failed: {type(error).__name__}: {str(error).strip()}") from error
        logger.info(f"Model loaded from {self.settings.model_dir} ({type(model).__module__}.{type(model).__name__})")
        return model

    def execution_parameters(self, request: Request) -> Response:
        hook = self.hooks["execution_parameters_fn"]
        if hook is None:
            return Response(404, b"Not Found", "text/html; charset=utf-8")
        return to_response(hook(InferenceContext(self.settings.model_dir, request.headers)), JSON)

    def invoke(self, request: Request) -> Response:
        headers = request.headers
        content_type = headers.get("contenttype") or headers.get("content-type") or JSON
        accept = headers.get("accept")
        if not accept or accept == "*/*":
            accept = self.settings.default_accept
        # Werkzeug's get_data(as_text=True) for exactly these two types, with errors="replace".
        data: str | bytes = request.body.decode("utf-8", "replace") if content_type in UTF8_TYPES else request.body
        context = InferenceContext(self.settings.model_dir, headers)
        try:
            return to_response(self._transform(context, data, content_type, accept), accept)
        except Exception as error:
            status = getattr(error, "status_code", None)
            status = status if isinstance(status, int) and 400 <= status <= 599 else 500
            trace = user_traceback(error)
            logger.error(f"Inference failed with {status}:\n{trace}")
            message = getattr(error, "message", None) or str(error) or type(error).__name__
            return Response(status, f"{message}\n{trace}".encode(), "text/plain; charset=utf-8")

    def _transform(self, context: InferenceContext, data: str | bytes, content_type: str, accept: str) -> Any:
        hooks = self.hooks
        transform = hooks["transform_fn"]
        if transform is not None:
            return transform(context, self.model, data, content_type, accept)
        input_fn, predict_fn, output_fn = hooks["input_fn"], hooks["predict_fn"], hooks["output_fn"]
        assert input_fn is not None and predict_fn is not None and output_fn is not None
        try:
            decoded = input_fn(context, data, content_type)
        except UnsupportedFormatError as error:
            if input_fn.user:
                raise
            return _error_response(error, 415)
        prediction = predict_fn(context, decoded, self.model)
        try:
            return output_fn(context, prediction, accept)
        except UnsupportedFormatError as error:
            if output_fn.user:
                raise
            return _error_response(error, 406)
