"""Tests of the local model server (the ``serve`` side of the XGBoost and scikit-learn images).

Every server runs as the runtime starts it: ``python -m sagemaker_emulator.images.model_server serve``
in its own process, with an instance directory as ``SAGEMAKER_BASE_DIR`` and a free port, serving a
model trained here. The configurations are started together (start-up is mostly ``import xgboost``)
and requests go over real keep-alive HTTP connections. Decoding and loading rules are also checked
in-process, which is faster.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb
from scipy.sparse import csr_matrix

from sagemaker_emulator.images.model_server import xgboost_algorithm as algo

pytestmark = pytest.mark.filterwarnings("ignore:.*(Unknown file format|UBJSON format).*:UserWarning")

REPO_ROOT = Path(__file__).resolve().parents[2]
MODULE = "sagemaker_emulator.images.model_server"
N_FEATURES = 5
CSV_HEADERS = {"Content-Type": "text/csv"}


# --------------------------------------------------------------------------- helpers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    """One model-server process and a keep-alive connection to it."""

    name: str
    base: Path
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    _conn: http.client.HTTPConnection | None = field(default=None, repr=False)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        return self._conn

    def call(self, method: str, path: str, body: bytes | str | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
        """(status, Content-Type, body) over the kept-alive connection."""
        conn = self.connection()
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        if response.getheader("Connection", "").lower() == "close":
            conn.close()
            self._conn = None
        return response.status, response.getheader("Content-Type", ""), data

    def invoke(self, body: bytes | str, content_type: str = "text/csv", accept: str | None = None
               ) -> tuple[int, str, bytes]:
        headers = {"Content-Type": content_type}
        if accept is not None:
            headers["Accept"] = accept
        return self.call("POST", "/invocations", body, headers)

    def stop(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def launch(name: str, base: Path, env: dict[str, str] | None = None) -> Server:
    """Start a server the way the runtime does (cwd = instance dir), without waiting for it."""
    port = free_port()
    full_env = {**os.environ, "SAGEMAKER_BASE_DIR": str(base), "SAGEMAKER_BIND_TO_PORT": str(port),
                "SM_EMULATOR_FRAMEWORK": "xgboost", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1",
                "PYTHONPATH": str(REPO_ROOT)}
    full_env.update(env or {})
    log_path = base / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", MODULE, "serve"], cwd=base, env=full_env,
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    return Server(name, base, port, process, log_path)


def wait_ready(server: Server, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"{server.name} exited with {server.process.returncode}:\n{server.log()}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=1)
            conn.request("GET", "/ping")
            status = conn.getresponse().status
            conn.close()
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{server.name} did not answer /ping within {timeout}s:\n{server.log()}")


def csv_text(rows: np.ndarray) -> str:
    return "\n".join(",".join(repr(float(v)) for v in row) for row in rows)


def expected_lines(booster: xgb.Booster, rows: np.ndarray) -> str:
    """The container's CSV answer: ``str(float)`` of each prediction, one per line."""
    return "".join(f"{value}\n" for value in booster.predict(xgb.DMatrix(rows)).tolist())


# --------------------------------------------------------------------------- fixtures

XGB_MODEL_FN = '''
import os
import xgboost as xgb


def model_fn(model_dir):
    booster = xgb.Booster()
    booster.load_model(os.path.join(model_dir, "xgboost-model"))
    return booster
'''

XGB_TRANSFORM_FN = '''
import json
import os

import numpy as np
import xgboost as xgb


def model_fn(model_dir):
    booster = xgb.Booster()
    booster.load_model(os.path.join(model_dir, "xgboost-model"))
    return booster


def transform_fn(model, data, content_type, accept, context):  # the extra parameter asks for the context
    rows = np.array([[float(v) for v in line.split(",")] for line in data.strip().split("\\n")])
    predictions = model.predict(xgb.DMatrix(rows)).tolist()
    answer = {"predictions": predictions, "content_type": content_type, "accept": accept,
              "model_dir": context.model_dir}
    return json.dumps(answer), "application/vnd.test+json"
'''

XGB_FAULTY = '''
import os
import time

import numpy as np
import xgboost as xgb


def model_fn(model_dir, context):  # the extra parameter asks for the context
    booster = xgb.Booster()
    booster.load_model(os.path.join(context.model_dir, "xgboost-model"))
    return booster


def input_fn(data, content_type):
    if data.startswith("boom"):
        raise ValueError("input_fn exploded on purpose")
    if data.startswith("sleep"):
        return "sleep"
    return xgb.DMatrix(np.array([[float(v) for v in data.split(",")]]))


def predict_fn(data, model):
    if isinstance(data, str):
        time.sleep(5)
        return np.array([-1.0])
    return model.predict(data)
'''


@pytest.fixture(scope="module")
def booster() -> xgb.Booster:
    rng = np.random.default_rng(7)
    features = rng.normal(size=(400, N_FEATURES))
    labels = (features[:, 0] + 0.5 * features[:, 1] + rng.normal(scale=0.5, size=400) > 0).astype(int)
    params = {"objective": "binary:logistic", "max_depth": 3, "eta": 0.3, "nthread": 1}
    return xgb.train(params, xgb.DMatrix(features, label=labels), num_boost_round=20)


@pytest.fixture(scope="module")
def sklearn_model():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(3)
    features = rng.normal(size=(200, 4))
    labels = (features[:, 0] - features[:, 2] > 0).astype(int)
    return LogisticRegression().fit(features, labels)


def _instance(root: Path, name: str, booster: xgb.Booster | None) -> Path:
    base = root / name
    (base / "model").mkdir(parents=True)
    (base / "code").mkdir()
    if booster is not None:
        booster.save_model(str(base / "model" / "xgboost-model"))
    return base


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory, booster: xgb.Booster, sklearn_model) -> Iterator[dict]:
    """Every configuration, started at once and ready."""
    import joblib

    root = tmp_path_factory.mktemp("model-server")
    configs: dict[str, tuple[Path, dict[str, str] | None]] = {}

    def prepare(name: str, env: dict[str, str] | None = None, *, model: bool = True) -> Path:
        base = _instance(root, name, booster if model else None)
        configs[name] = (base, env)
        return base

    prepare("algorithm")
    prepare("selectable", {"SAGEMAKER_INFERENCE_OUTPUT": "predicted_label, probability"})
    prepare("batch", {"SAGEMAKER_BATCH": "true"})
    base = prepare("script", {"SAGEMAKER_PROGRAM": "inference.py"})  # in <model>/code, as the SDK repacks it
    (base / "model" / "code").mkdir()
    (base / "model" / "code" / "inference.py").write_text(XGB_MODEL_FN)
    base = prepare("transform", {"SAGEMAKER_PROGRAM": "serve.py"})  # in <base>/code, as the runtime extracts it
    (base / "code" / "serve.py").write_text(XGB_TRANSFORM_FN)
    base = prepare("faulty", {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_MODEL_SERVER_TIMEOUT": "1",
                              "SAGEMAKER_MODEL_SERVER_WORKERS": "1"})
    (base / "code" / "inference.py").write_text(XGB_FAULTY)
    base = prepare("sklearn", {"SAGEMAKER_PROGRAM": "inference.py", "SM_EMULATOR_FRAMEWORK": "sklearn"},
                   model=False)
    joblib.dump(sklearn_model, base / "model" / "model.joblib")
    (base / "model" / "code").mkdir()
    (base / "model" / "code" / "inference.py").write_text("# default handlers only\n")

    running = {name: launch(name, base, env) for name, (base, env) in configs.items()}
    try:
        for server in running.values():
            wait_ready(server)
        yield running
    finally:
        for server in running.values():
            server.stop()


# --------------------------------------------------------------------------- built-in algorithm


def test_csv_predictions_match_in_process_booster(servers: dict, booster: xgb.Booster) -> None:
    server = servers["algorithm"]
    rows = np.round(np.random.default_rng(11).normal(size=(7, N_FEATURES)), 4)
    status, content_type, body = server.invoke(csv_text(rows[:1]))
    assert (status, content_type) == (200, "text/csv; charset=utf-8")
    assert body.decode() == expected_lines(booster, rows[:1])
    status, _, body = server.invoke(csv_text(rows) + "\n")  # the body is stripped first
    assert status == 200
    assert body.decode() == expected_lines(booster, rows)
    assert body.decode().count("\n") == 7


def test_accept_types(servers: dict, booster: xgb.Booster) -> None:
    server = servers["algorithm"]
    rows = np.array([[0.5, -1.0, 2.0, 0.0, 1.5], [1.0, 1.0, 1.0, 1.0, 1.0]])
    predictions = booster.predict(xgb.DMatrix(rows)).tolist()
    status, content_type, body = server.invoke(csv_text(rows), accept="application/json")
    assert (status, content_type) == (200, "application/json")
    assert json.loads(body) == {"predictions": [{"score": p} for p in predictions]}
    assert body.decode() == json.dumps({"predictions": [{"score": p} for p in predictions]})
    for accept in ("text/csv", "*/*", "text/csv; charset=utf-8"):
        status, _, body = server.invoke(csv_text(rows), accept=accept)
        assert (status, body.decode()) == (200, expected_lines(booster, rows)), accept
    status, _, body = server.invoke(csv_text(rows), accept="application/jsonlines")
    assert status == 406
    assert b"SAGEMAKER_INFERENCE_OUTPUT" in body
    status, _, body = server.invoke(csv_text(rows), accept="text/plain")
    assert status == 406
    assert body.decode() == ("Accept type text/plain is not supported. Please use supported accept types: "
                             "['application/json', 'application/jsonlines', 'application/x-recordio-protobuf', "
                             "'text/csv'].")
    status, _, _ = server.invoke(csv_text(rows), accept="application/json, text/csv")  # not split, as the container
    assert status == 406


def test_libsvm_input(servers: dict, booster: xgb.Booster) -> None:
    server = servers["algorithm"]
    payload = "1 0:0.5 2:-1.25 4:2.0\n0 1:1.5 3:0.25 4:-0.5"
    dense = csr_matrix((np.array([0.5, -1.25, 2.0, 1.5, 0.25, -0.5]),
                        (np.array([0, 0, 0, 1, 1, 1]), np.array([0, 2, 4, 1, 3, 4]))), shape=(2, N_FEATURES))
    expected = "".join(f"{v}\n" for v in booster.predict(xgb.DMatrix(dense)).tolist())
    for content_type in ("text/libsvm", "text/x-libsvm", "libsvm"):
        status, _, body = server.invoke(payload, content_type=content_type)
        assert (status, body.decode()) == (200, expected), content_type


def test_error_statuses(servers: dict) -> None:
    server = servers["algorithm"]
    status, _, body = server.invoke(b"")
    assert (status, body) == (204, b"")
    status, _, body = server.invoke("1.0,abc,3.0,4.0,5.0")
    assert status == 415
    assert body.decode() == ("Loading csv data failed with Exception, please ensure data is in csv format:\n"
                             " <class 'ValueError'>\n could not convert string to float: 'abc'")
    status, _, body = server.invoke("1,2,3,4,5\n1,2,3")
    assert status == 415 and body.startswith(b"Loading csv data failed with Exception")
    status, _, body = server.invoke("[[1, 2, 3, 4, 5]]", content_type="application/json")
    assert status == 415
    assert body.startswith(b"application/json is not an accepted ContentType: csv, libsvm")
    status, _, body = server.invoke(b"\x00\x01", content_type="application/x-recordio-protobuf")
    assert status == 415 and b"not supported by the local SageMaker emulator" in body
    status, _, body = server.invoke("1,2,3,4,5,6")
    assert status == 400
    assert body.decode() == ("Unable to evaluate payload provided: Feature size of csv inference data 6 is not "
                             "consistent with feature size of trained model 5.")
    status, _, _ = server.invoke("1,2,3,4")  # fewer columns: XGBoost treats the rest as missing
    assert status == 200
    assert server.call("GET", "/nothing-here")[0] == 404
    assert server.call("GET", "/invocations")[0] == 405
    assert server.call("GET", "/ping")[0] == 200


def test_too_large_body_is_413_and_the_connection_survives(servers: dict) -> None:
    server = servers["algorithm"]
    line = b"1.0,2.0,3.0,4.0,5.0\n"
    big = line * (7 * 1024 * 1024 // len(line) + 1)
    status, _, body = server.invoke(big)
    assert status == 413 and b"Request Entity Too Large" in body
    status, _, _ = server.invoke("1,2,3,4,5")
    assert status == 200


def test_execution_parameters(servers: dict) -> None:
    status, content_type, body = servers["algorithm"].call("GET", "/execution-parameters")
    assert (status, content_type) == (200, "application/json")
    assert json.loads(body) == {"MaxConcurrentTransforms": os.cpu_count(), "BatchStrategy": "MULTI_RECORD",
                                "MaxPayloadInMB": 6}


def test_selectable_output(servers: dict, booster: xgb.Booster) -> None:
    server = servers["selectable"]
    rows = np.array([[2.0, 2.0, 0.0, 0.0, 0.0], [-2.0, -2.0, 0.0, 0.0, 0.0]])
    probabilities = booster.predict(xgb.DMatrix(rows)).tolist()
    expected = [{"predicted_label": int(p > 0.5), "probability": p} for p in probabilities]
    assert [e["predicted_label"] for e in expected] == [1, 0]
    status, content_type, body = server.invoke(csv_text(rows), accept="application/json")
    assert (status, content_type) == (200, "application/json")
    assert json.loads(body) == {"predictions": expected}
    status, _, body = server.invoke(csv_text(rows), accept="text/csv")
    assert body.decode() == "\n".join(f"{e['predicted_label']},{e['probability']}" for e in expected)
    status, content_type, body = server.invoke(csv_text(rows), accept="application/jsonlines")
    assert (status, content_type) == (200, "application/jsonlines")
    assert [json.loads(line) for line in body.decode().splitlines()] == expected
    assert body.decode().endswith("\n")
    status, _, body = server.invoke(csv_text(rows))  # default accept text/csv
    assert status == 200 and body.decode().startswith("1,")


def test_batch_output(servers: dict, booster: xgb.Booster) -> None:
    rows = np.array([[0.1, 0.2, 0.3, 0.4, 0.5], [1.0, -1.0, 1.0, -1.0, 1.0], [0.0, 0.0, 0.0, 0.0, 0.0]])
    for accept in ("application/json", "text/csv"):
        status, _, body = servers["batch"].invoke(csv_text(rows), accept=accept)
        assert (status, body.decode()) == (200, expected_lines(booster, rows)), accept


# --------------------------------------------------------------------------- script mode


def test_script_mode_defaults_after_user_model_fn(servers: dict, booster: xgb.Booster) -> None:
    server = servers["script"]
    rows = np.array([[0.5, -1.0, 2.0, 0.0, 1.5], [1.0, 1.0, 1.0, 1.0, 1.0]])
    predictions = booster.predict(xgb.DMatrix(rows))
    status, content_type, body = server.invoke(csv_text(rows))  # default accept: application/json
    assert (status, content_type) == (200, "application/json")
    assert json.loads(body) == predictions.tolist()
    status, content_type, body = server.invoke(csv_text(rows), accept="text/csv")
    assert (status, content_type) == (200, "text/csv; charset=utf-8")
    assert body.decode() == "".join(str(value) + "\n" for value in predictions)  # float32 str, as the container
    status, content_type, body = server.invoke(csv_text(rows), accept="application/x-npy")
    assert status == 200 and content_type == "application/x-npy"
    assert np.load(io.BytesIO(body)).tolist() == predictions.tolist()
    status, _, body = server.invoke("1 0:0.5 1:-1.0 2:2.0 4:1.5", content_type="text/libsvm")
    assert status == 200 and len(json.loads(body)) == 1
    status, content_type, body = server.invoke("[[1, 2]]", content_type="application/json")
    assert (status, content_type) == (415, "application/json")
    assert json.loads(body)["error"] == "UnsupportedFormatError"
    status, _, body = server.invoke(csv_text(rows), accept="image/png")
    assert status == 406 and json.loads(body)["error-message"].startswith("Content type image/png is not supported")
    assert server.call("GET", "/execution-parameters")[0] == 404  # the XGBoost image has none in script mode


def test_script_mode_transform_fn_with_context(servers: dict, booster: xgb.Booster) -> None:
    server = servers["transform"]
    rows = np.array([[0.5, -1.0, 2.0, 0.0, 1.5]])
    status, content_type, body = server.invoke(csv_text(rows), accept="application/json")
    assert (status, content_type) == (200, "application/vnd.test+json")
    answer = json.loads(body)
    assert answer["predictions"] == booster.predict(xgb.DMatrix(rows)).tolist()
    assert answer["content_type"] == "text/csv" and answer["accept"] == "application/json"
    assert answer["model_dir"] == str(server.base / "model")


def test_script_mode_user_errors_and_timeouts(servers: dict, booster: xgb.Booster) -> None:
    server = servers["faulty"]  # one worker thread, 1 s timeout
    status, _, body = server.invoke("boom")
    assert status == 500 and b"input_fn exploded on purpose" in body and b"Traceback" in body
    assert b"model_server" not in body  # the traceback starts in the user's code
    started = time.monotonic()
    status, _, body = server.invoke("sleep")
    elapsed = time.monotonic() - started
    assert status == 500 and b"SAGEMAKER_MODEL_SERVER_TIMEOUT" in body
    assert elapsed < 3.0
    row = np.array([[0.5, -1.0, 2.0, 0.0, 1.5]])
    status, _, body = server.invoke(csv_text(row))  # the hung worker was replaced
    assert (status, json.loads(body)) == (200, booster.predict(xgb.DMatrix(row)).tolist())
    assert server.process.poll() is None


def test_sklearn_default_handlers(servers: dict, sklearn_model) -> None:
    server = servers["sklearn"]
    rows = np.array([[1.0, 0.5, -1.0, 2.0], [-1.0, 0.0, 1.0, 0.5], [0.25, 0.25, 0.25, 0.25]])
    expected = sklearn_model.predict(rows.astype(np.float32)).tolist()
    status, content_type, body = server.invoke(json.dumps(rows.tolist()), content_type="application/json")
    assert (status, content_type) == (200, "application/json")
    assert json.loads(body) == expected
    status, _, body = server.invoke(csv_text(rows), content_type="text/csv", accept="text/csv")
    assert (status, body.decode()) == (200, "".join(f"{v}\n" for v in expected))
    # As in the container, CSV is squeezed: a single row becomes 1-D and scikit-learn refuses it.
    status, _, body = server.invoke(csv_text(rows[:1]), content_type="text/csv")
    assert status == 500 and b"2D array" in body


# --------------------------------------------------------------------------- process lifecycle


def test_missing_model_fails_start_up_with_a_reason(tmp_path: Path) -> None:
    server = launch("empty", _instance(tmp_path, "empty", None))
    try:
        code = server.process.wait(60)
    finally:
        server.stop()
    assert code != 0
    last = server.log().strip().splitlines()[-1]
    assert last.startswith("FAILURE: Unable to load model: no model file found in ")


def test_broken_inference_script_fails_start_up(tmp_path: Path) -> None:
    base = _instance(tmp_path, "broken", None)
    (base / "code" / "inference.py").write_text("import does_not_exist_anywhere\n")
    server = launch("broken", base, {"SAGEMAKER_PROGRAM": "inference.py", "SM_EMULATOR_FRAMEWORK": "sklearn"})
    try:
        code = server.process.wait(60)
    finally:
        server.stop()
    assert code != 0
    last = server.log().strip().splitlines()[-1]
    assert last.startswith("FAILURE: Failed to import the inference script") and "does_not_exist_anywhere" in last


def test_sklearn_without_inference_script_fails_start_up(tmp_path: Path) -> None:
    server = launch("no-program", _instance(tmp_path, "no-program", None), {"SM_EMULATOR_FRAMEWORK": "sklearn"})
    try:
        code = server.process.wait(60)
    finally:
        server.stop()
    assert code == 1
    assert server.log().strip().splitlines()[-1].startswith("FAILURE: SAGEMAKER_PROGRAM is not set")


def test_sigterm_stops_the_server_quickly(tmp_path: Path, booster: xgb.Booster) -> None:
    server = launch("sigterm", _instance(tmp_path, "sigterm", booster))
    try:
        wait_ready(server)
        assert server.invoke("1,2,3,4,5")[0] == 200  # leaves an idle keep-alive connection open
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        code = server.process.wait(5)
        assert time.monotonic() - started < 2.0
        assert code == 0
    finally:
        server.stop()


def test_latency_single_row_keep_alive(servers: dict) -> None:
    """Not asserted (shared CI machines are noisy): prints p50/p99 of 2,000 sequential requests."""
    server = servers["algorithm"]
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    body = b"0.1,0.2,0.3,0.4,0.5"
    timings = []
    for index in range(2100):
        started = time.perf_counter()
        conn.request("POST", "/invocations", body=body, headers=CSV_HEADERS)
        response = conn.getresponse()
        response.read()
        if index >= 100:  # warm-up
            timings.append(time.perf_counter() - started)
        assert response.status == 200
    conn.close()
    timings.sort()
    p50, p99 = timings[len(timings) // 2] * 1000, timings[int(len(timings) * 0.99)] * 1000
    print(f"\nmodel server latency over keep-alive (2000 single-row CSV requests): p50 {p50:.3f} ms, "
          f"p99 {p99:.3f} ms, max {timings[-1] * 1000:.3f} ms")


# --------------------------------------------------------------------------- in-process rules


def test_pickled_booster_is_loaded_and_feature_counts_follow_the_container(tmp_path: Path,
                                                                           booster: xgb.Booster) -> None:
    (tmp_path / "xgboost-model").write_bytes(pickle.dumps(booster))
    model = algo.load_model(str(tmp_path))
    assert model.model_format == algo.PKL_FORMAT and model.num_features == N_FEATURES
    algo.check_feature_count(model, algo.CSV, N_FEATURES)
    algo.check_feature_count(model, algo.CSV, N_FEATURES - 1)  # n-1 tolerated
    for columns in (N_FEATURES - 2, N_FEATURES + 1):
        with pytest.raises(ValueError, match=f"Feature size of csv inference data {columns} is not consistent"):
            algo.check_feature_count(model, algo.CSV, columns)
    algo.check_feature_count(model, algo.LIBSVM, N_FEATURES + 1)
    with pytest.raises(ValueError, match="is larger than feature size of trained model 5"):
        algo.check_feature_count(model, algo.LIBSVM, N_FEATURES + 2)
    rows = np.ones((2, N_FEATURES))
    dtest, kind = algo.parse_payload(csv_text(rows).encode(), "text/csv")
    assert algo.predict(model, dtest, kind).tolist() == booster.predict(xgb.DMatrix(rows)).tolist()


def test_saved_model_ensemble_and_dotfiles(tmp_path: Path, booster: xgb.Booster) -> None:
    other = xgb.train({"objective": "binary:logistic", "max_depth": 2}, xgb.DMatrix(np.eye(N_FEATURES),
                      label=[0, 1, 0, 1, 0]), 3)
    booster.save_model(str(tmp_path / "xgboost-model"))
    other.save_model(str(tmp_path / "second.json"))
    (tmp_path / ".hidden").write_text("ignored")
    model = algo.load_model(str(tmp_path), ensemble=True)
    assert model.model_format == algo.XGB_FORMAT and len(model.boosters) == 2
    rows = np.ones((3, N_FEATURES))
    dtest, kind = algo.parse_payload(csv_text(rows).encode(), "csv")
    expected = np.mean([booster.predict(xgb.DMatrix(rows)), other.predict(xgb.DMatrix(rows))], axis=0)
    assert np.allclose(algo.predict(model, dtest, kind), expected)
    single = algo.load_model(str(tmp_path), ensemble=False)
    assert len(single.boosters) == 1
    algo.check_feature_count(single, algo.CSV, 2)  # saved models: fewer columns are XGBoost's business


def test_csv_delimiter_shortcut_agrees_with_the_sniffer() -> None:
    import csv

    for line in ["1,2,3", "1.5, 2.5,3", "0.5", "5", "1 2 3", "1;2;3", "1\t2\t3", "1,2;3", "a,b", "nan,1", ",1,"]:
        sniffed = csv.Sniffer().sniff(line[:512]).delimiter
        assert algo.csv_delimiter(line) == ("," if sniffed.isalnum() else sniffed), line


def test_content_type_and_accept_parsing() -> None:
    assert algo.normalize_content_type(None) == algo.LIBSVM  # no header: libsvm, as the container
    assert algo.normalize_content_type("text/csv; label_size=1") == algo.CSV
    with pytest.raises(ValueError, match="label_size must be equal to 1"):
        algo.normalize_content_type("text/csv; label_size=2")
    assert algo.parse_accept(None, "text/csv") == "text/csv"
    assert algo.parse_accept("*/*", "application/json") == "application/json"
    assert algo.parse_accept("Application/JSON; q=1", "text/csv") == "application/json"


def test_transform_fn_cannot_be_mixed_with_the_other_hooks() -> None:
    from types import SimpleNamespace

    from sagemaker_emulator.images.model_server.errors import ModelLoadError
    from sagemaker_emulator.images.model_server.script_mode import resolve_hooks

    def transform_fn(model, data, content_type, accept):
        return data

    def input_fn(data, content_type, context):
        return data

    with pytest.raises(ModelLoadError, match="Cannot use transform_fn implementation with input_fn"):
        resolve_hooks(SimpleNamespace(transform_fn=transform_fn, input_fn=input_fn), "xgboost")
    hooks = resolve_hooks(SimpleNamespace(input_fn=input_fn), "sklearn")
    assert hooks["input_fn"].user and hooks["input_fn"].takes_context
    assert not hooks["predict_fn"].user and hooks["transform_fn"] is None


def test_handler_results_become_responses() -> None:
    from sagemaker_emulator.images.model_server.script_mode import array_to_csv, to_response

    assert to_response(("1,2", "text/csv"), "application/json").content_type == "text/csv; charset=utf-8"
    plain = to_response(b"\x00", "application/x-npy")
    assert (plain.body, plain.content_type) == (b"\x00", "application/x-npy")
    assert to_response({"a": 1}, "text/csv").content_type == "application/json"
    with pytest.raises(TypeError, match="return bytes, str"):
        to_response(object(), "application/json")
    assert array_to_csv(np.array([[1.5, 2.0], [3.0, 4.25]])) == "1.5,2.0\n3.0,4.25\n"
    assert array_to_csv(np.array([1, 0], dtype=np.int64)) == "1\n0\n"


def test_selectable_output_for_multiclass_and_regression() -> None:
    softprob = np.array([[0.1, 0.7, 0.2], [0.5, 0.25, 0.25]], dtype=np.float32)
    rows = algo.selected_predictions(softprob, ["predicted_label", "probability", "labels", "predicted_score"],
                                     "multi:softprob", "3")
    assert rows[0]["predicted_label"] == 1 and rows[0]["labels"] == [0, 1, 2]
    assert rows[0]["probability"] == float(np.float32(0.7)) and np.isnan(rows[0]["predicted_score"])
    assert list(rows[0]) == ["predicted_label", "labels", "probability", "predicted_score"]  # container order
    text = algo.encode_selected(rows, ["labels", "predicted_label"], "text/csv", batch=True).decode()
    assert text == '"[0, 1, 2]",1\n"[0, 1, 2]",0\n'
    softmax = algo.selected_predictions(np.array([2.0, 0.0], dtype=np.float32), ["predicted_label", "raw_scores"],
                                        "multi:softmax", "3")
    assert softmax[0] == {"predicted_label": 2.0, "raw_scores": [-1.0, 2.0]}
    regression = algo.selected_predictions(np.array([1.5], dtype=np.float32), ["predicted_score"],
                                           "reg:squarederror", "0")
    assert regression == [{"predicted_score": 1.5}]
    with pytest.raises(ValueError, match="unsupported for selectable inference"):
        algo.selected_predictions(np.array([1.0]), ["predicted_score"], "count:poisson", "0")


def test_csv_fast_path_equals_the_container_conversion() -> None:
    """``csv_to_array``'s fast path (plain decimals, each distinct cell converted once) gives the very array of the
    container's ``np.array(rows).astype(float)``; anything else takes the container's path and its messages."""
    rng = np.random.default_rng(7)
    values = np.where(rng.random((300, 9)) < 0.5, rng.normal(size=(300, 9)) * 10.0 ** rng.integers(-8, 9, (300, 9)),
                      rng.integers(0, 3, (300, 9)))
    buffer = io.StringIO()
    np.savetxt(buffer, values, delimiter=",", fmt="%.17g")
    text = buffer.getvalue().strip() + "\n1,,-.5,+2.,3e5,4E-3,0,1,2"
    lines = text.split("\n")
    container = np.array([[cell or "nan" for cell in line.split(",")] for line in lines]).astype(float)
    fast = algo._decimal_table(text, lines, ",")
    assert fast is not None
    np.testing.assert_array_equal(fast, container)  # NaN == NaN here, every other value bit for bit
    assert fast[:-1].tobytes() == values.tobytes()
    for odd in ("1,2\n3", "1,nan", "1,inf", "1, 2", "1,0x1", "a,b"):
        assert algo._decimal_table(odd, odd.split("\n"), ",") is None, odd
    np.testing.assert_array_equal(algo.csv_to_array("1, 2\n3,nan"), [[1.0, 2.0], [3.0, np.nan]])
