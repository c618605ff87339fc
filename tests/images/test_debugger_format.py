"""SageMaker Debugger's files without smdebug: compared with a trial smdebug 1.0.34 itself wrote.

``data/smdebug_xgboost_trial`` was written by smdebug's XGBoost hook and read back by smdebug's
``create_trial`` into ``.expected.json`` (``data/make_smdebug_trial.py``). The emulator's writer must
reproduce those files byte for byte, its hook must save the same tensors, and both readers (the
rule evaluator's and the learner's ``helpers.debugger``) must read the same values.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb

from helpers.debugger import create_trial
from sagemaker_emulator.images.debugger import rules, tfevents
from sagemaker_emulator.images.debugger.trial import LocalStore, Trial
from sagemaker_emulator.images.xgboost_algorithm.debug_hook import collections_from_config, hook_from_config

DATA = Path(__file__).parent / "data"
TRIAL = DATA / "smdebug_xgboost_trial"
EXPECTED = json.loads((DATA / "smdebug_xgboost_trial.expected.json").read_text())


def same(value: np.ndarray, expected: list) -> bool:
    if value.dtype.kind in "US":
        return value.tolist() == expected
    return np.allclose(value.astype(float), np.array(expected, dtype=float), equal_nan=True)


def test_crc32c_is_castagnoli():
    assert tfevents.crc32c(b"123456789") == 0xE3069283


def test_the_writer_reproduces_smdebugs_event_files_byte_for_byte():
    for path in sorted((TRIAL / "events").rglob("*.tfevents")):
        data = path.read_bytes()
        rewritten = b""
        for payload in tfevents.read_records(data):
            ((name, step, value, mode, mode_step),) = tfevents.decode_event(payload)
            rewritten += tfevents.frame(tfevents.event(name, step, value, mode, mode_step, tfevents.wall_time(payload)))
        assert rewritten == data, path.name


def test_a_corrupt_record_length_is_refused():
    data = bytearray((TRIAL / "events" / "000000000000" / "000000000000_worker_0.tfevents").read_bytes())
    data[0] ^= 1
    with pytest.raises(ValueError, match="checksum"):
        list(tfevents.read_records(bytes(data)))


def test_both_readers_read_what_smdebug_read():
    trial = Trial(LocalStore(TRIAL))
    assert trial.refresh() == [0, 2] and trial.ended()
    learner = create_trial(str(TRIAL))
    assert learner.steps() == [0, 2] and learner.has_ended()
    assert sorted(EXPECTED) == trial.tensor_names() == learner.tensor_names()
    for name, steps in EXPECTED.items():
        for step, value in steps.items():
            assert same(trial.value(name, int(step)), value), (name, step)
            assert same(learner.tensor(name).value(int(step)), value), (name, step)
    assert learner.tensor_names(collection="metrics") == ["train-logloss", "validation-logloss"]


def test_the_hook_saves_what_smdebugs_hook_saves(tmp_path):
    """The same data, parameters and collections as ``make_smdebug_trial.py``, through the emulator's hook."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    y = (x[:, 0] + rng.normal(scale=0.5, size=40) > 0).astype(float)
    dtrain, dval = xgb.DMatrix(x[:30], label=y[:30]), xgb.DMatrix(x[30:], label=y[30:])
    params = {"objective": "binary:logistic", "max_depth": 2, "eta": 0.5, "eval_metric": "logloss"}
    config = {"HookParameters": {"save_interval": "2"}, "CollectionConfigurations": [{"CollectionName": c} for c in (
        "metrics", "hyperparameters", "feature_importance", "average_shap", "trees", "predictions", "labels")]}
    hook = hook_from_config(config, str(tmp_path), params, dtrain, dval)
    xgb.train(params, dtrain, 4, evals=[(dtrain, "train"), (dval, "validation")], callbacks=[hook], verbose_eval=False)
    ours, theirs = Trial(LocalStore(tmp_path)), Trial(LocalStore(TRIAL))
    assert ours.refresh() == theirs.refresh()
    assert ours.tensor_names() == theirs.tensor_names()
    for name in theirs.tensor_names():
        for step in theirs.locations[name]:
            a, b = ours.value(name, step), theirs.value(name, step)
            assert a.dtype == b.dtype and a.shape == b.shape, name
            assert same(a, b.tolist()), (name, step)
    for step in (0, 2):  # the index files too, but for the offsets' source order
        mine = json.loads((tmp_path / tfevents.index_file(step, "worker_0")).read_text())
        smdebug = json.loads((TRIAL / tfevents.index_file(step, "worker_0")).read_text())
        assert mine["meta"] == smdebug["meta"]
        assert sorted(e["tensorname"] for e in mine["tensor_payload"]) == sorted(
            e["tensorname"] for e in smdebug["tensor_payload"])


def test_save_configs_follow_smdebugs_defaults():
    by_name = {c.name: c for c in collections_from_config({"CollectionConfigurations": [
        {"CollectionName": "feature_importance"},
        {"CollectionName": "labels", "CollectionParameters": {"save_steps": "1,7", "save_interval": "1000"}}]})}
    assert by_name["metrics"].save.save_interval == 10  # the hook's default
    assert by_name["feature_importance"].save.save_interval == 500  # a configured collection's default
    assert by_name["labels"].save.should_save(7) and not by_name["labels"].save.should_save(2)
    explicit = {c.name: c for c in collections_from_config({"HookParameters": {"save_interval": "3", "end_step": "7"},
                                                            "CollectionConfigurations": [{"CollectionName": "trees"}]})}
    assert explicit["trees"].save.save_interval == 3
    assert [s for s in range(12) if explicit["trees"].save.should_save(s)] == [0, 3, 6]
    unknown = {"CollectionConfigurations": [{"CollectionName": "mine"}]}  # no tensors, no regex: smdebug refuses
    assert hook_from_config(unknown, "/tmp/x", {}, None, None) is None


def _synthetic(tmp_path: Path, steps: dict[int, dict[str, np.ndarray]]) -> Trial:
    for step, tensors in steps.items():
        tfevents.write_step(tmp_path, step, "worker_0", list(tensors.items()))
    trial = Trial(LocalStore(tmp_path))
    trial.refresh()
    return trial


def _fires(rule: rules.Rule, trial: Trial) -> int | None:
    return next((step for step in trial.steps() if rule.invoke(step)), None)


def test_loss_rules_fire_on_the_step_the_documentation_describes(tmp_path):
    losses = [0.7, 0.5, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4]
    validation = [0.7, 0.54, 0.5, 0.52, 0.56, 0.6, 0.65, 0.7]
    trial = _synthetic(tmp_path, {s: {"train-logloss": np.array([t]), "validation-logloss": np.array([v])}
                                  for s, (t, v) in enumerate(zip(losses, validation, strict=True))})
    assert _fires(rules.LossNotDecreasing(trial, {"num_steps": "2"}), trial) == 4  # 0.4 → 0.4 over steps 2..4
    assert _fires(rules.Overfit(trial, {}), trial) == 2  # (0.5 − 0.4) / 0.4 = 0.25 > 0.1
    assert _fires(rules.Overfit(trial, {"patience": "3", "ratio_threshold": "0.3"}), trial) == 6
    assert _fires(rules.Overtraining(trial, {"patience_train": "3"}), trial) == 5
    assert _fires(rules.Overtraining(trial, {"patience_train": "100", "patience_validation": "4"}), trial) == 6


def test_data_and_model_rules(tmp_path):
    labels = np.array([0.0] * 95 + [1.0] * 5, dtype=np.float32)
    trial = _synthetic(tmp_path, {0: {"labels": labels, "predictions": np.full(100, 0.1, dtype=np.float32),
                                      "trees/Node": np.arange(7), "feature_importance/weight/f0": np.array([0.9]),
                                      "feature_importance/weight/f1": np.array([0.1]),
                                      "train-error": np.array([0.0])}})
    assert rules.ClassImbalance(trial, {"samples": "100"}).invoke(0)  # 95 / 5 = 19 > 10
    assert not rules.ClassImbalance(trial, {"samples": "100", "threshold_imbalance": "20",
                                            "threshold_misprediction": "1"}).invoke(0)
    assert rules.ClassImbalance(trial, {"samples": "100", "threshold_imbalance": "20"}).invoke(0)  # class 1: all wrong
    assert not rules.TreeDepth(trial, {"depth": "2"}).invoke(0)  # log2(6) = 2.58 → depth 2
    assert rules.TreeDepth(trial, {"depth": "3"}).invoke(0)
    assert rules.FeatureImportanceOverweight(trial, {"nfeatures": "1"}).invoke(0)  # 0.9 > 0.8
    assert not rules.FeatureImportanceOverweight(trial, {"nfeatures": "1", "threshold": "0.95"}).invoke(0)
    assert rules.AllZero(trial, {"tensor_regex": "train-.*"}).invoke(0)
    assert not rules.AllZero(trial, {"tensor_regex": "labels"}).invoke(0)


@pytest.mark.parametrize(("rule", "params", "message"), [
    (rules.Overfit, {"patience": "two"}, "Invalid value 'two' for parameter patience of rule Overfit"),
    (rules.Overfit, {"depth": "3"}, "Rule Overfit does not take the parameter(s) depth"),
    (rules.AllZero, {}, "needs collection_names or tensor_regex"),
])
def test_bad_rule_parameters_are_refused(tmp_path, rule, params, message):
    with pytest.raises(rules.RuleConfigError) as exc:
        rule(Trial(LocalStore(tmp_path)), params)
    assert message in str(exc.value)
