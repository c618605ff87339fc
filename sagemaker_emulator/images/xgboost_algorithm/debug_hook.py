"""SageMaker Debugger's hook for the built-in XGBoost algorithm: the tensors smdebug's ``xgboost.Hook`` saves.

The 1.7-1 container adds ``smdebug.xgboost.Hook.hook_from_config()`` to its callbacks when the job
has a ``DebugHookConfig`` (``/opt/ml/input/config/debughookconfig.json``); smdebug itself no longer
installs beside NumPy 2, so this callback does the same work and writes the same files
(:mod:`..debugger.tfevents`). Its rules are smdebug's:

* collections: ``metrics`` always, plus every ``CollectionConfigurations`` name (``save_all``: all);
  the tensor names and the regular expressions that pick them are smdebug's XGBoost ones;
* save configs: ``HookParameters`` (``save_interval`` default 10, ``save_steps``, ``start_step``,
  ``end_step``) for the hook's own collections; a configured collection merges its
  ``CollectionParameters`` over the explicit hook parameters and, as in smdebug, falls back to an
  interval of 500, not 10;
* a step is the boosting round (0-based); only ``worker_0`` writes (``include_workers="one"``).

A hook that cannot be created is logged and left out: the container swallows that error too.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb

from ..debugger import tfevents

logger = logging.getLogger(__name__)

#: smdebug ``xgboost/collection.py``: the regular expression of each built-in collection (sic: ``[a-zA-z]``)
REGEXES: dict[str, str] = {
    "hyperparameters": r"^hyperparameters/.*$",
    "metrics": r"^[a-zA-z]+-[a-zA-z0-9]+$",
    "losses": r"^[a-zA-z]+-.+(?<!(auc|map))$",
    "predictions": r"^predictions$",
    "labels": r"^labels$",
    "feature_importance": r"^feature_importance/.*",
    "average_shap": r"^average_shap/.*[^/bias]$",
    "full_shap": r"^full_shap/.*[^/bias]$",
    "trees": r"^trees/.*",
}
INCREASING_METRICS = re.compile(r"^[a-zA-z]+-(auc|map)$")
IMPORTANCE_TYPES = ("weight", "gain", "cover", "total_gain", "total_cover")
HOOK_DEFAULT_INTERVAL = 10
COLLECTION_DEFAULT_INTERVAL = 500
SAVE_KEYS = ("save_interval", "save_steps", "start_step", "end_step")


class HookConfigError(ValueError):
    """The configuration smdebug would refuse (the hook is then not created)."""


@dataclass
class SaveConfig:
    """smdebug's ``SaveConfigMode`` for the one mode XGBoost uses (GLOBAL)."""

    save_interval: int = COLLECTION_DEFAULT_INTERVAL
    save_steps: list[int] = field(default_factory=list)
    start_step: int = 0
    end_step: int | None = None

    @classmethod
    def parse(cls, params: dict[str, Any], default_interval: int) -> SaveConfig:
        """From (flattened) parameters; ``global.``-prefixed keys override the plain ones."""
        plain = {k: v for k, v in params.items() if k in SAVE_KEYS}
        plain.update({k[len("global."):]: v for k, v in params.items() if k[len("global."):] in SAVE_KEYS
                      and k.startswith("global.")})
        try:
            steps = plain.get("save_steps", [])
            if isinstance(steps, str):
                steps = [int(s) for s in steps.split(",") if s.strip()]
            end = plain.get("end_step")
            return cls(int(plain.get("save_interval", default_interval)), [int(s) for s in steps],
                       int(plain.get("start_step", 0)), None if end in (None, "") else int(end))
        except (TypeError, ValueError) as exc:
            raise HookConfigError(f"Invalid save configuration {plain}: {exc}") from exc

    def should_save(self, step: int) -> bool:
        if step in self.save_steps:
            return True
        in_range = step >= self.start_step and (self.end_step is None or step < self.end_step)
        return in_range and step % self.save_interval == 0

    def to_json(self) -> dict[str, Any]:
        mode = {"save_interval": self.save_interval, "save_steps": self.save_steps,
                "start_step": self.start_step, "end_step": self.end_step}
        return {name: dict(mode) for name in ("TRAIN", "EVAL", "PREDICT", "GLOBAL")}


@dataclass
class Collection:
    name: str
    regexes: list[str]
    save: SaveConfig
    tensor_names: set[str] = field(default_factory=set)

    def includes(self, tensor: str) -> bool:
        return any(re.match(regex, tensor) for regex in self.regexes)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "include_regex": self.regexes, "tensor_names": sorted(self.tensor_names),
                "reduction_config": {"save_raw_tensor": True, "reductions": "", "save_shape": False},
                "save_config": self.save.to_json(), "save_histogram": False}


def collections_from_config(config: dict[str, Any]) -> list[Collection]:
    """The collections the hook saves, with their save configs, as smdebug's ``json_config`` builds them."""
    hook_params = dict(config.get("HookParameters") or {})
    hook_save = SaveConfig.parse(hook_params, HOOK_DEFAULT_INTERVAL)
    explicit = {k: v for k, v in hook_params.items() if k.split(".")[-1] in SAVE_KEYS}
    configured: dict[str, dict[str, Any]] = {}
    for entry in config.get("CollectionConfigurations") or []:
        if "CollectionName" not in entry:
            raise HookConfigError("Must specify 'CollectionName' in JSON config.")
        configured[entry["CollectionName"]] = dict(entry.get("CollectionParameters") or {})
    names = ["metrics", *configured]
    if str(hook_params.get("save_all", "false")).lower() == "true":
        names = list(dict.fromkeys([*names, *REGEXES]))
    collections = []
    for name in dict.fromkeys(names):
        params = configured.get(name)
        regexes = [REGEXES[name]] if name in REGEXES else []
        if params is not None and params.get("include_regex"):
            regexes += [r for r in str(params["include_regex"]).split(",") if r]
        if not regexes:
            raise HookConfigError(f"Collection {name} has no tensor names or include_regex: "
                                  "the XGBoost hook cannot save it.")
        save = hook_save if params is None else SaveConfig.parse({**explicit, **params}, COLLECTION_DEFAULT_INTERVAL)
        collections.append(Collection(name, regexes, save))
    if hook_params.get("include_regex"):
        collections.append(Collection("default", str(hook_params["include_regex"]).split(","), hook_save))
    return collections


def _array(value: Any) -> np.ndarray:
    """smdebug's ``make_numpy_array``: scalars become one-element arrays."""
    if isinstance(value, np.ndarray):
        return value
    if np.isscalar(value):
        return np.array([value])
    return np.asarray(value)


def tree_columns(booster: xgb.Booster, iteration: int) -> dict[str, np.ndarray]:
    """smdebug's ``parse_tree_model``: the columns of ``trees_to_dataframe`` for the tree of ``iteration``."""
    rows: list[tuple] = []
    dumps = booster.get_dump(with_stats=True)
    if iteration < len(dumps):
        for line in dumps[iteration].split("\n"):
            line = line.strip()
            if not line:
                continue
            node, rest = line.split(":", 1)
            if rest.startswith("leaf="):
                stats = dict(part.split("=") for part in rest.split(","))
                rows.append((iteration, int(node), "Leaf", np.nan, np.nan, np.nan, np.nan,
                             float(stats["leaf"]), float(stats["cover"])))
            else:
                condition, stats_text = rest[1:].split("] ")
                feature, split = condition.split("<") if "<" in condition else (condition, "nan")
                stats = dict(part.split("=") for part in stats_text.split(","))
                rows.append((iteration, int(node), feature, float(split), f"{iteration}-{stats['yes']}",
                             f"{iteration}-{stats['no']}", f"{iteration}-{stats['missing']}",
                             float(stats["gain"]), float(stats["cover"])))
    rows.sort(key=lambda row: (row[0], row[1]))
    columns = list(zip(*rows, strict=True)) if rows else [()] * 9
    return {
        "Tree": np.array(columns[0], dtype=int), "Node": np.array(columns[1], dtype=int),
        "ID": np.array([f"{t}-{n}" for t, n in zip(columns[0], columns[1], strict=True)], dtype="U"),
        "Feature": np.array(columns[2], dtype="U"), "Split": np.array(columns[3], dtype=float),
        "Yes": np.array([str(v) for v in columns[4]], dtype="U"),
        "No": np.array([str(v) for v in columns[5]], dtype="U"),
        "Missing": np.array([str(v) for v in columns[6]], dtype="U"),
        "Gain": np.array(columns[7], dtype=float), "Cover": np.array(columns[8], dtype=float),
        "Category": np.array(["nan"] * len(rows), dtype="U"),
    }


class DebugHook(xgb.callback.TrainingCallback):
    """Saves the configured collections after each boosting round; rank 0 only."""

    def __init__(self, out_dir: str, collections: list[Collection], hyperparameters: dict[str, Any],
                 train: xgb.DMatrix | None, validation: xgb.DMatrix | None) -> None:
        super().__init__()
        self.out_dir = Path(out_dir)
        self.collections = collections
        self.hyperparameters = hyperparameters
        self.train = train
        self.validation = validation
        self.worker = f"worker_{xgb.collective.get_rank()}"
        self.exported = False
        logger.info("Monitoring the collections: %s", ", ".join(c.name for c in collections))

    def after_iteration(self, model: xgb.Booster, epoch: int, evals_log: dict) -> bool:
        if self.worker != "worker_0":
            return False
        saving = [c for c in self.collections if c.save.should_save(epoch)]
        if saving:
            names = {c.name for c in saving}
            tensors = [(name, value) for name, value in self._candidates(model, epoch, evals_log, names)
                       if self._claim(name, saving)]
            tfevents.write_step(self.out_dir, epoch, self.worker, tensors)
            if not self.exported:
                self._export()
        return False

    def after_training(self, model: xgb.Booster) -> xgb.Booster:
        if self.worker == "worker_0":
            self._export()
        return model

    def _export(self) -> None:
        tfevents.write_collections(self.out_dir, self.worker, {c.name: c.to_json() for c in self.collections})
        self.exported = True

    @staticmethod
    def _claim(name: str, saving: list[Collection]) -> bool:
        owners = [c for c in saving if c.includes(name)]
        for collection in owners:
            collection.tensor_names.add(name)
        return bool(owners)

    def _candidates(self, model: xgb.Booster, epoch: int, evals_log: dict, names: set[str]):
        """The tensors of every collection saved this round (any custom collection sees them all)."""
        everything = bool(names - set(REGEXES))
        if everything or "hyperparameters" in names:
            for key, value in (self.hyperparameters or {}).items():
                yield f"hyperparameters/{key}", _array(value)
        if everything or names & {"metrics", "losses"}:
            for data, metrics in evals_log.items():
                for metric, history in metrics.items():
                    name = f"{data}-{metric}"
                    if "metrics" in names or everything or not INCREASING_METRICS.match(name):
                        last = history[-1]
                        yield name, _array(float(last[0] if isinstance(last, tuple) else last))
        if self.validation is not None and (everything or "predictions" in names):
            yield "predictions", model.predict(self.validation)
        if self.validation is not None and (everything or "labels" in names):
            yield "labels", self.validation.get_label()
        if everything or "feature_importance" in names:
            yield from self._importances(model)
        if everything or "trees" in names:
            for column, values in tree_columns(model, epoch).items():
                yield f"trees/{column}", values
        if self.train is not None and (everything or names & {"average_shap", "full_shap"}):
            contributions = model.predict(self.train, pred_contribs=True)
            features = [*self._feature_names(model), "bias"]
            if everything or "full_shap" in names:
                for feature in features:
                    yield f"full_shap/{feature}", contributions  # sic: smdebug saves the whole matrix each time
            if everything or "average_shap" in names:
                average = np.mean(contributions, axis=tuple(range(contributions.ndim - 1)))
                for i, feature in enumerate(features):
                    yield f"average_shap/{feature}", _array(average[i])

    def _importances(self, model: xgb.Booster):
        booster = self.hyperparameters.get("booster", "gbtree")
        if booster not in ("gbtree", "dart"):
            logger.warning("Feature importance is not defined for Booster type %s", booster)
            return
        for kind in IMPORTANCE_TYPES:
            scores = model.get_score(importance_type=kind)
            total = sum(scores.values())
            for feature, score in scores.items():
                yield f"feature_importance/{kind}/{feature}", _array(score / total)

    @staticmethod
    def _feature_names(model: xgb.Booster) -> list[str]:
        return list(model.feature_names) if model.feature_names else [f"f{i}" for i in range(model.num_features())]


def hook_from_config(config: dict[str, Any] | None, out_dir: str, hyperparameters: dict[str, Any],
                     train: xgb.DMatrix | None, validation: xgb.DMatrix | None) -> DebugHook | None:
    """The hook for ``debughookconfig.json``, or None (no config, or one smdebug would refuse: logged)."""
    if not config:
        return None
    try:
        collections = collections_from_config(config)
    except HookConfigError as exc:
        logger.info("Failed to create debug hook: %s", exc)
        return None
    logger.info("Debug hook created from config")
    return DebugHook(out_dir, collections, hyperparameters, train, validation)
