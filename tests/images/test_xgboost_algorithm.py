"""Tests of the local built-in XGBoost algorithm container (algorithm mode).

Most tests run the real program, ``python -m sagemaker_emulator.images.xgboost_algorithm train``,
as a subprocess on real files in a temporary ``/opt/ml``-shaped directory, exactly as the runtime
launches it.  Pure validation rules are additionally checked in-process, which is much faster.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from sagemaker_emulator.images.xgboost_algorithm import channels, custom_metrics, data, hyperparameters, job
from sagemaker_emulator.images.xgboost_algorithm.environment import Environment
from sagemaker_emulator.images.xgboost_algorithm.errors import UserError, failure_text
from sagemaker_emulator.images.xgboost_algorithm.metrics import MAXIMIZE, METRIC_DEFINITIONS, direction

# Extension-less model files are UBJSON; XGBoost 3 warns that it has to guess when loading them.
pytestmark = pytest.mark.filterwarnings("ignore:.*Unknown file format.*:UserWarning")

REPO_ROOT = Path(__file__).resolve().parents[2]
MODULE = "sagemaker_emulator.images.xgboost_algorithm"
LOG_LINE = re.compile(r"^\[\d{4}-\d{2}-\d{2}:\d{2}:\d{2}:\d{2}:(INFO|WARNING|ERROR)\] ")
METRIC_LINE = re.compile(r"^\[(\d+)\]((\t[a-z]+-[a-z0-9@.\-_]+:-?\d+\.\d{5})+)$")

CSV_CHANNEL = {
    "ContentType": "text/csv",
    "TrainingInputMode": "File",
    "S3DistributionType": "FullyReplicated",
}


# --------------------------------------------------------------------------- helpers


def make_rows(seed: int, n: int, *, weights: bool = False) -> np.ndarray:
    """Binary-classification rows: label first (then an optional weight), five features."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, 5))
    labels = (features[:, 0] + 0.5 * features[:, 1] + rng.normal(scale=0.5, size=n) > 0).astype(int)
    columns = [labels]
    if weights:
        columns.append(rng.uniform(0.5, 2.0, size=n))
    return np.column_stack(columns + [features])


def write_csv(path: Path, rows: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, rows, delimiter=",", fmt="%.6g")


def write_libsvm(path: Path, rows: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{int(r[0])} " + " ".join(f"{j + 1}:{v:.6g}" for j, v in enumerate(r[1:])) for r in rows]
    path.write_text("\n".join(lines) + "\n")


def write_parquet(path: Path, rows: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(rows, columns=["label"] + [f"f{i}" for i in range(rows.shape[1] - 1)])
    frame.to_parquet(path)


def make_instance(
    base: Path,
    hps: dict[str, str],
    *,
    channel_config: dict[str, dict] | None = None,
    host: str = "algo-1",
    hosts: tuple[str, ...] = ("algo-1",),
    with_data: bool = True,
) -> Path:
    """Create an instance directory (the local /opt/ml) with configs and, optionally, CSV data."""
    config = base / "input" / "config"
    config.mkdir(parents=True)
    for sub in ("model", "output/data"):
        (base / sub).mkdir(parents=True)
    channel_config = (
        channel_config if channel_config is not None else {"train": CSV_CHANNEL, "validation": CSV_CHANNEL}
    )
    (config / "hyperparameters.json").write_text(json.dumps(hps))
    (config / "inputdataconfig.json").write_text(json.dumps(channel_config))
    resource = {"current_host": host, "hosts": list(hosts), "network_interface_name": "eth0"}
    (config / "resourceconfig.json").write_text(json.dumps(resource))
    for name in channel_config:
        (base / "input" / "data" / name).mkdir(parents=True, exist_ok=True)
    if with_data:
        write_csv(base / "input/data/train/train.csv", make_rows(0, 300))
        if "validation" in channel_config:
            write_csv(base / "input/data/validation/validation.csv", make_rows(1, 150))
    return base


def child_env(base: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        SAGEMAKER_BASE_DIR=str(base),
        TRAINING_JOB_NAME="test-job",
        TRAINING_JOB_ARN="arn:aws:sagemaker:us-east-1:123456789012:training-job/test-job",
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")])),
    )
    env.update(extra)
    return env


def start(base: Path, **extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", MODULE, "train"],
        cwd=base,
        env=child_env(base, **extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run(base: Path, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", MODULE, "train"],
        cwd=base,
        env=child_env(base, **extra),
        capture_output=True,
        text=True,
        timeout=120,
    )


def metric_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if METRIC_LINE.match(line)]


def assert_success(base: Path, proc: subprocess.CompletedProcess) -> xgb.Booster:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (base / "output/success").exists()
    assert not (base / "output/failure").exists()
    return xgb.Booster(model_file=str(base / "model/xgboost-model"))


def assert_failure(base: Path, proc: subprocess.CompletedProcess, message: str) -> str:
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert not (base / "output/success").exists()
    text = (base / "output/failure").read_text()
    assert text.startswith("framework error: \n")
    assert text.endswith("\n" + message), text
    assert message in ("AlgorithmError: " + text)[:1024], "message must survive the FailureReason cut"
    return text


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------- end-to-end runs


def test_trains_saves_model_and_prints_metric_lines(tmp_path: Path) -> None:
    hps = {
        "num_round": "5",
        "objective": "binary:logistic",
        "eval_metric": "logloss",
        "_tuning_objective_metric": "validation:auc",
        "learning_rate": "0.3",
    }
    base = make_instance(tmp_path / "job", hps)
    proc = run(base)
    booster = assert_success(base, proc)

    assert booster.num_boosted_rounds() == 5
    predictions = booster.predict(xgb.DMatrix(make_rows(2, 10)[:, 1:]))
    assert predictions.shape == (10,) and np.all((predictions >= 0) & (predictions <= 1))

    lines = metric_lines(proc.stdout)
    assert [line.split("\t")[0] for line in lines] == [f"[{i}]" for i in range(5)]
    # Sorted union of eval_metric and the HPO metric, data-major order, five decimals.
    assert re.fullmatch(
        r"\[0\]\ttrain-auc:\d\.\d{5}\ttrain-logloss:\d\.\d{5}\tvalidation-auc:\d\.\d{5}\tvalidation-logloss:\d\.\d{5}",
        lines[0],
    )
    assert any(
        LOG_LINE.match(line) and line.endswith("] Single node training.") for line in proc.stdout.splitlines()
    )
    assert all(LOG_LINE.match(line) or METRIC_LINE.match(line) for line in proc.stdout.splitlines())

    # The default metric definitions extract the numbers from the CloudWatch form of the line.
    cloudwatch_line = lines[-1].replace("\t", "#011")
    definitions = {d["Name"]: d["Regex"] for d in METRIC_DEFINITIONS}
    expected = dict(part.split(":") for part in lines[-1].split("\t")[1:])
    for name in ("validation:auc", "validation:logloss", "train:auc"):
        match = re.match(definitions[name], cloudwatch_line)
        assert match and float(match.group(1)) == float(expected[name.replace(":", "-")])


def test_early_stopping_keeps_best_iteration(tmp_path: Path) -> None:
    hps = {
        "num_round": "200",
        "objective": "binary:logistic",
        "eval_metric": "auc",
        "early_stopping_rounds": "3",
    }
    base = make_instance(tmp_path / "job", hps, with_data=False)
    write_csv(base / "input/data/train/train.csv", make_rows(0, 300))
    noise = make_rows(1, 150)
    noise[:, 0] = np.random.default_rng(9).integers(0, 2, size=150)  # labels unrelated to features
    write_csv(base / "input/data/validation/validation.csv", noise)
    proc = run(base)
    booster = assert_success(base, proc)

    lines = metric_lines(proc.stdout)
    assert 4 <= len(lines) < 200
    scores = [float(line.split("validation-auc:")[1]) for line in lines]
    best = int(np.argmax(scores))
    assert len(lines) == best + 1 + 3
    assert booster.num_boosted_rounds() == best + 1


@pytest.mark.parametrize(
    ("hps", "channel_config", "message"),
    [
        ({"num_round": "10", "subsample": "0"}, None, "Hyperparameter subsample: 0.0 is not in (0, 1]"),
        ({"eta": "0.1"}, None, "Missing required hyperparameter: num_round"),
        ({"num_round": "10", "silent": "0"}, None, "Extraneous hyperparameter found: silent"),
        ({"num_round": "10"}, {"validation": CSV_CHANNEL}, "Missing required channel: train"),
        (
            {"num_round": "10"},
            {"train": {**CSV_CHANNEL, "ContentType": "text/foo"}},
            "Channel configuration for 'train' channel is not supported: {'ContentType': 'text/foo', "
            "'TrainingInputMode': 'File', 'S3DistributionType': 'FullyReplicated'}",
        ),
    ],
    ids=["range", "missing-num-round", "silent", "missing-train", "unknown-content-type"],
)
def test_validation_errors_write_failure_file(
    tmp_path: Path, hps: dict[str, str], channel_config: dict | None, message: str
) -> None:
    base = make_instance(tmp_path / "job", hps, channel_config=channel_config)
    proc = run(base)
    assert_failure(base, proc, message)
    assert "Reporting training FAILURE" in proc.stdout


def test_libsvm_input(tmp_path: Path) -> None:
    channel = {**CSV_CHANNEL, "ContentType": "text/libsvm"}
    hps = {"num_round": "3", "objective": "binary:logistic"}
    base = make_instance(
        tmp_path / "job", hps, channel_config={"train": channel, "validation": channel}, with_data=False
    )
    write_libsvm(base / "input/data/train/part-0", make_rows(0, 200))
    write_libsvm(base / "input/data/train/nested/part-1", make_rows(3, 100))  # files are found recursively
    write_libsvm(base / "input/data/validation/part-0", make_rows(1, 100))
    proc = run(base)
    booster = assert_success(base, proc)
    assert booster.num_boosted_rounds() == 3
    assert "Train matrix has 300 rows" in proc.stdout
    assert len(metric_lines(proc.stdout)) == 3


def test_parquet_input(tmp_path: Path) -> None:
    channel = {**CSV_CHANNEL, "ContentType": "application/x-parquet"}
    hps = {"num_round": "3", "objective": "binary:logistic", "eval_metric": "error"}
    base = make_instance(tmp_path / "job", hps, channel_config={"train": channel}, with_data=False)
    write_parquet(base / "input/data/train/a.parquet", make_rows(0, 150))
    write_parquet(base / "input/data/train/b.parquet", make_rows(1, 150))
    proc = run(base)
    booster = assert_success(base, proc)
    assert booster.num_features() == 5
    assert "Train matrix has 300 rows and 5 columns" in proc.stdout
    assert re.match(r"\[0\]\ttrain-error:\d\.\d{5}$", metric_lines(proc.stdout)[0])


def test_csv_weights_column_is_not_a_feature(tmp_path: Path) -> None:
    hps = {"num_round": "3", "objective": "binary:logistic", "csv_weights": "1"}
    base = make_instance(tmp_path / "job", hps, channel_config={"train": CSV_CHANNEL}, with_data=False)
    write_csv(base / "input/data/train/train.csv", make_rows(0, 300, weights=True))
    proc = run(base)
    booster = assert_success(base, proc)
    assert booster.num_features() == 5
    assert "Train matrix has 300 rows and 5 columns" in proc.stdout


def test_kfold_writes_one_model_per_fold_and_predictions(tmp_path: Path) -> None:
    hps = {"num_round": "3", "objective": "binary:logistic", "_kfold": "3", "eval_metric": "auc"}
    base = make_instance(tmp_path / "job", hps)
    proc = run(base)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(p.name for p in (base / "model").iterdir()) == [f"xgboost-model-{i}" for i in range(3)]
    predictions = np.loadtxt(base / "output/data/predictions.csv", delimiter=",")
    assert predictions.shape == (450, 3)
    assert re.search(r"^\[3\]\ttrain-auc:\d\.\d{5}\tvalidation-auc:\d\.\d{5}$", proc.stdout, re.M)


def test_checkpoints_are_written_and_resumed(tmp_path: Path) -> None:
    base = make_instance(tmp_path / "job", {"num_round": "8", "objective": "binary:logistic"})
    (base / "input/config/checkpointconfig.json").write_text(json.dumps({"LocalPath": "/opt/ml/checkpoints"}))
    assert_success(base, run(base))
    names = sorted(p.name for p in (base / "checkpoints").iterdir())
    assert names == [f"xgboost-checkpoint.{i}" for i in range(3, 8)]  # the five most recent

    (base / "input/config/hyperparameters.json").write_text(json.dumps({"num_round": "10"}))
    (base / "output/success").unlink()
    proc = run(base)
    booster = assert_success(base, proc)
    assert "Resuming from iteration 8" in proc.stdout
    assert len(metric_lines(proc.stdout)) == 2
    assert booster.num_boosted_rounds() == 10


def test_sigterm_with_save_model_on_termination_keeps_model(tmp_path: Path) -> None:
    hps = {"num_round": "1000000", "objective": "binary:logistic", "save_model_on_termination": "true"}
    base = make_instance(tmp_path / "job", hps)
    proc = start(base)
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("[3]\t"):
            break
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, "".join(seen) + out + err
    booster = xgb.Booster(model_file=str(base / "model/xgboost-model"))
    assert booster.num_boosted_rounds() >= 3  # the line is printed before the round is saved
    assert [p.name for p in (base / "model").iterdir()] == ["xgboost-model"]


def _distributed_pair(tmp_path: Path, hps: dict[str, str], second_has_data: bool) -> tuple:
    hosts = ("algo-1", "algo-2")
    bases = []
    for index, host in enumerate(hosts):
        base = make_instance(tmp_path / host, hps, host=host, hosts=hosts, with_data=False)
        # ShardedByS3Key-like: each instance sees different training files.
        if index == 0 or second_has_data:
            write_csv(base / f"input/data/train/part-{index}.csv", make_rows(10 + index, 200))
        write_csv(base / "input/data/validation/validation.csv", make_rows(1, 150))
        bases.append(base)
    port = str(free_port())
    procs = [start(base, SM_EMULATOR_TRACKER_PORT=port) for base in reversed(bases)][::-1]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    return bases, procs, outputs


def test_two_instances_train_one_model(tmp_path: Path) -> None:
    hps = {"num_round": "4", "objective": "binary:logistic", "eval_metric": "auc"}
    bases, procs, outputs = _distributed_pair(tmp_path, hps, second_has_data=True)
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, out + err
    booster = xgb.Booster(model_file=str(bases[0] / "model/xgboost-model"))
    assert booster.num_boosted_rounds() == 4
    assert list((bases[1] / "model").iterdir()) == []
    assert len(metric_lines(outputs[0][0])) == 4
    assert metric_lines(outputs[1][0]) == []
    assert "Distributed node training with 2 hosts: ['algo-1', 'algo-2']" in outputs[1][0]


def test_instance_without_data_leaves_distributed_training(tmp_path: Path) -> None:
    hps = {"num_round": "3", "objective": "binary:logistic"}
    bases, procs, outputs = _distributed_pair(tmp_path, hps, second_has_data=False)
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, out + err
    assert (bases[0] / "model/xgboost-model").exists()
    assert list((bases[1] / "model").iterdir()) == []
    assert "Host algo-2 not being used for distributed training." in outputs[1][0]
    assert len(metric_lines(outputs[0][0])) == 3


# --------------------------------------------------------------------------- in-process rules


@pytest.mark.parametrize(
    ("hps", "message"),
    [
        ({"num_round": "ten"}, "Hyperparameter num_round: could not parse value (caused by ValueError)"),
        ({"num_round": "0"}, "Hyperparameter num_round: 0 is not in [1, +inf)"),
        (
            {"num_round": "10", "tree_method": "gpu"},
            "Hyperparameter tree_method: gpu is not in ['auto', 'exact', 'approx', 'hist', 'gpu_hist']",
        ),
        (
            {"num_round": "10", "objective": "multi:softmax"},
            "Require input for parameter 'num_class' for multi-classification",
        ),
        (
            {"num_round": "10", "objective": "reg:squarederror", "eval_metric": "auc"},
            "Metric 'auc' can only be applied for classification and ranking problems.",
        ),
        (
            {"num_round": "10", "objective": "binary:logistic", "eval_metric": "error@x"},
            "Threshold value 't' in 'error@t' expects float input.",
        ),
        (
            {"num_round": "10", "monotone_constraints": "(1,-1)"},
            "monotone_constraints can be used only when the tree_method parameter is set to "
            "either 'exact' or 'hist'.",
        ),
        (
            {"num_round": "10", "seed": str(2**31)},
            "Hyperparameter seed: 2147483648 is not in (-2147483648, 2147483647)",
        ),
    ],
)
def test_hyperparameter_messages(hps: dict[str, str], message: str) -> None:
    with pytest.raises(UserError) as info:
        hyperparameters.validate(hps)
    assert str(info.value) == message


def test_eval_metric_range_message_lists_all_metrics() -> None:
    with pytest.raises(UserError) as info:
        hyperparameters.validate({"num_round": "10", "objective": "binary:logistic", "eval_metric": "foo"})
    text = str(info.value)
    assert text.startswith("Hyperparameter eval_metric: value ['foo'] not in range ['accuracy', 'auc', ")
    assert text.endswith(", 'tweedie-nloglik']") and text.count("'") == 2 * 34


def test_eval_metric_without_objective_fails_like_the_container() -> None:
    with pytest.raises(KeyError, match="objective"):
        hyperparameters.validate({"num_round": "10", "eval_metric": "auc"})


def test_valid_hyperparameters_are_typed_and_aliased() -> None:
    result = hyperparameters.validate(
        {
            "num_round": "10",
            "objective": "binary:logistic",
            "eval_metric": "auc,logloss",
            "learning_rate": "0.3",
        }
    )
    assert result == {
        "num_round": 10,
        "objective": "binary:logistic",
        "eval_metric": ["auc", "logloss"],
        "eta": 0.3,
    }


def test_channel_rules() -> None:
    validated = channels.validate_channels(
        {"train": {"TrainingInputMode": "File", "S3DistributionType": "ShardedByS3Key"}}
    )
    assert validated["train"]["ContentType"] == "text/libsvm"
    with pytest.raises(UserError, match="^Extraneous channel found: test$"):
        channels.validate_channels({"train": CSV_CHANNEL, "test": CSV_CHANNEL})
    assert channels.parse_content_type("text/csv; label_size=1") == "csv"
    with pytest.raises(UserError) as info:
        channels.parse_content_type("text/csv;label_size=2")
    assert str(info.value) == (
        "text/csv;label_size=2 is not an accepted csv ContentType. "
        "Optional parameter label_size must be equal to 1"
    )
    with pytest.raises(UserError) as info:
        channels.parse_content_type("application/json")
    assert str(info.value) == (
        "application/json is not an accepted ContentType: csv, libsvm, parquet, recordio-protobuf, text/csv, "
        "text/libsvm, text/x-libsvm, application/x-parquet, application/x-recordio-protobuf."
    )


def test_data_rules(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / ".hidden").write_text("x")
    with pytest.raises(UserError, match="^Hidden file found in the data path! Remove that before training.$"):
        data.data_size(str(tmp_path))

    bad = tmp_path / "libsvm"
    bad.mkdir()
    (bad / "data.txt").write_text("1,2,3\n")
    with pytest.raises(UserError) as info:
        data.validate_data_files(str(bad), "libsvm")
    assert str(info.value) == (
        "First line '1,2,3\n...' of file 'data.txt' is not 'LIBSVM' format. "
        "Please ensure the file is in 'LIBSVM' format."
    )
    with pytest.raises(
        UserError, match="recordio-protobuf .* is not supported by the local SageMaker emulator"
    ):
        data.load_dmatrix(str(bad), "recordio-protobuf")


@pytest.mark.parametrize("empty", ["train", "validation"])
def test_empty_channel_is_a_user_error(tmp_path: Path, empty: str) -> None:
    base = make_instance(tmp_path / "job", {"num_round": "3"})
    (base / "input" / "data" / empty / f"{empty}.csv").unlink()
    with pytest.raises(UserError) as info:
        job.sagemaker_train(Environment(str(base)))
    assert str(
        info.value
    ) == f"No data in {'training' if empty == 'train' else 'validation'} channel path " + str(
        base / "input" / "data" / empty
    )


def test_metric_definitions_and_directions() -> None:
    names = [d["Name"] for d in METRIC_DEFINITIONS]
    assert len(names) == len(set(names)) == 66
    assert {"validation:auc", "train:auc", "validation:rmse", "train:aft-nloglik"} <= set(names)
    assert {"auc", "accuracy", "ndcg", "map", "r2"} <= MAXIMIZE and "rmse" not in MAXIMIZE
    assert direction("validation:auc") == "Maximize" and direction("validation:logloss") == "Minimize"
    regex = {d["Name"]: d["Regex"] for d in METRIC_DEFINITIONS}["validation:error"]
    assert re.match(
        regex, "[3]#011train-merror:0.5#011validation-error:1.5e-02#011validation-merror:0.1"
    ).group(1) == ("1.5e-02")
    assert not re.match(regex, "[3]#011validation-merror:0.25")


def test_container_metrics_see_margins_like_xgboost_1_7() -> None:
    probabilities = np.array([0.9, 0.2, 0.6, 0.4])
    matrix = xgb.DMatrix(np.zeros((4, 1)), label=np.array([1, 0, 0, 0]))
    feval = custom_metrics.make_feval(["accuracy", "f1_binary"], "binary:logistic", None)
    assert dict(feval(probabilities, matrix)) == pytest.approx({"accuracy": 0.75, "f1_binary": 2 / 3})


def test_failure_text_keeps_message_visible() -> None:
    try:
        try:
            int("ten")
        except ValueError as error:
            raise UserError("Hyperparameter num_round: could not parse value", caused_by=error) from error
    except UserError as error:
        text = failure_text(error)
    assert text.startswith("framework error: \nTraceback (most recent call last):\n")
    assert text.endswith("\nHyperparameter num_round: could not parse value (caused by ValueError)")
    assert len(text) < 1024
