"""SageMaker Debugger's built-in rules that apply to XGBoost, evaluated step by step on a trial.

The rules, their parameters and defaults are those the SageMaker documentation lists ("List of
Debugger built-in rules"); the evaluator image's code is not public, so each check below is the
documented condition written out, and says so where the documentation leaves a choice open.
``invoke(step)`` returns True when the condition is met at that step (the rule "fires");
``finish()`` runs once training has ended and every step was seen.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from .trial import Trial

#: parameters every rule accepts besides its own (set by the SDK or the service)
COMMON_PARAMETERS = {"rule_to_invoke", "action_json", "base_trial", "other_trials", "start_step", "end_step"}
INCREASING = re.compile(r"^[a-zA-Z]+-(auc|map|aucpr|ndcg.*|pre.*)$")


class RuleConfigError(ValueError):
    """A rule parameter the evaluator cannot use; the rule evaluation ends with ``Error``."""


def _bool(value: str) -> bool:
    text = str(value).strip().lower()
    if text not in ("true", "false"):
        raise ValueError("expected True or False")
    return text == "true"


def _list(value: str) -> list[str]:
    return [part.strip() for part in str(value).split(",") if part.strip()]


class Rule:
    NAME: ClassVar[str]
    #: parameter → (parser, default)
    PARAMETERS: ClassVar[dict[str, tuple[Callable[[str], Any], Any]]] = {}

    def __init__(self, trial: Trial, parameters: dict[str, str]) -> None:
        self.trial = trial
        unknown = sorted(set(parameters) - set(self.PARAMETERS) - COMMON_PARAMETERS)
        if unknown:
            raise RuleConfigError(f"Rule {self.NAME} does not take the parameter(s) {', '.join(unknown)}; "
                                  f"its parameters are: {', '.join(self.PARAMETERS) or 'none'}.")
        self.params: dict[str, Any] = {}
        for name, (parse, default) in self.PARAMETERS.items():
            raw = parameters.get(name)
            try:
                self.params[name] = default if raw in (None, "", "None") else parse(raw)
            except ValueError as exc:
                raise RuleConfigError(f"Invalid value '{raw}' for parameter {name} of rule {self.NAME}: "
                                      f"{exc}.") from None
        self.start_step = int(parameters.get("start_step") or 0)
        self.details = ""

    def invoke(self, step: int) -> bool:
        return False

    def fire(self, details: str) -> bool:
        """The condition is met: say why (logged by the evaluator with the rule's message)."""
        self.details = details
        return True

    def finish(self) -> bool:
        return False

    def report(self, out_dir: Any) -> None:
        """Files the rule leaves in its output (``/opt/ml/processing/output/rule``)."""

    # ------------------------------------------------------------ shared selections
    def losses(self) -> list[str]:
        """Loss tensors: ``tensor_regex`` if given, else the metrics that decrease (smdebug's ``losses``)."""
        regex = self.params.get("tensor_regex")
        if regex:
            return self.trial.tensor_names(regex=regex)
        names = self.trial.tensor_names(collection="losses") or self.trial.tensor_names(collection="metrics")
        names = names or self.trial.tensor_names(regex=r"^[a-zA-Z]+-[a-zA-Z0-9@:]+$")
        return [n for n in names if not INCREASING.match(n)]

    def pairs(self) -> list[tuple[str, str]]:
        """(train, validation) losses of the same metric: ``train-logloss`` with ``validation-logloss``."""
        names = set(self.losses())
        return [(n, "validation-" + n.split("-", 1)[1]) for n in sorted(names)
                if n.startswith("train-") and "validation-" + n.split("-", 1)[1] in names]

    def selected(self) -> list[str]:
        """Tensors named by ``collection_names`` and/or ``tensor_regex``."""
        names: set[str] = set()
        for collection in self.params.get("collection_names") or []:
            names |= set(self.trial.tensor_names(collection=collection))
        if self.params.get("tensor_regex"):
            names |= set(self.trial.tensor_names(regex=self.params["tensor_regex"]))
        return sorted(names)


class LossNotDecreasing(Rule):
    """Fires when a loss has not decreased by at least ``diff_percent`` % over ``num_steps`` steps."""

    NAME = "LossNotDecreasing"
    PARAMETERS = {"collection_names": (_list, None), "tensor_regex": (_list, None),
                  "use_losses_collection": (_bool, True), "num_steps": (int, 10), "diff_percent": (float, 0.1),
                  "increase_threshold_percent": (float, 5.0), "mode": (str, None)}

    def __init__(self, trial: Trial, parameters: dict[str, str]) -> None:
        super().__init__(trial, parameters)
        self.last: dict[str, tuple[int, float]] = {}

    def invoke(self, step: int) -> bool:
        names = self.selected() if (self.params["collection_names"] or self.params["tensor_regex"]) else []
        if self.params["use_losses_collection"]:
            names = sorted(set(names) | set(self.losses()))
        for name in names:
            if not self.trial.has(name, step):
                continue
            value = self.trial.scalar(name, step)
            previous = self.last.setdefault(name, (step, value))
            if step - previous[0] < self.params["num_steps"]:
                continue
            self.last[name] = (step, value)
            drop = (previous[1] - value) / abs(previous[1]) * 100 if previous[1] else (-math.inf if value > 0 else 0.0)
            if drop < self.params["diff_percent"]:
                return self.fire(f"{name} went from {previous[1]:.6g} at step {previous[0]} to {value:.6g} at step "
                                 f"{step}: a decrease of {drop:.3g}%, less than {self.params['diff_percent']}%")
        return False


class Overfit(Rule):
    """Fires when (validation − training) / training loss exceeds ``ratio_threshold`` for ``patience`` steps."""

    NAME = "Overfit"
    PARAMETERS = {"tensor_regex": (_list, None), "start_step": (int, 0), "patience": (int, 1),
                  "ratio_threshold": (float, 0.1)}

    def __init__(self, trial: Trial, parameters: dict[str, str]) -> None:
        super().__init__(trial, parameters)
        self.count: dict[str, int] = {}

    def invoke(self, step: int) -> bool:
        if step < self.params["start_step"]:
            return False
        for train, validation in self.pairs():
            if not (self.trial.has(train, step) and self.trial.has(validation, step)):
                continue
            t, v = self.trial.scalar(train, step), self.trial.scalar(validation, step)
            ratio = (v - t) / abs(t) if t else (math.inf if v > t else 0.0)
            self.count[train] = self.count.get(train, 0) + 1 if ratio > self.params["ratio_threshold"] else 0
            if self.count[train] >= self.params["patience"]:
                return self.fire(f"{validation}={v:.6g} and {train}={t:.6g} at step {step}: ratio {ratio:.3g} > "
                                 f"{self.params['ratio_threshold']} for {self.count[train]} step(s)")
        return False


class Overtraining(Rule):
    """Fires when the training loss has not improved by ``delta`` for ``patience_train`` saved steps, or the
    validation loss for ``patience_validation`` saved steps."""

    NAME = "Overtraining"
    PARAMETERS = {"patience_train": (int, 5), "patience_validation": (int, 10), "delta": (float, 0.01)}

    def __init__(self, trial: Trial, parameters: dict[str, str]) -> None:
        super().__init__(trial, parameters)
        self.best: dict[str, tuple[float, int]] = {}

    def invoke(self, step: int) -> bool:
        for name in self.losses():
            if not self.trial.has(name, step):
                continue
            value = self.trial.scalar(name, step)
            best, stale = self.best.get(name, (math.inf, -1))
            self.best[name] = (value, 0) if best - value > self.params["delta"] or stale < 0 else (best, stale + 1)
            patience = self.params["patience_validation" if name.startswith("validation-") else "patience_train"]
            if self.best[name][1] >= patience:
                return self.fire(f"{name} has not improved by more than {self.params['delta']} on its best "
                                 f"{self.best[name][0]:.6g} for {self.best[name][1]} saved steps (step {step})")
        return False


class ClassImbalance(Rule):
    """Fires when the most frequent class outnumbers the rarest by ``threshold_imbalance``, or when a class is
    mispredicted more often than ``threshold_misprediction``, once ``samples`` labels were seen."""

    NAME = "ClassImbalance"
    PARAMETERS = {"threshold_imbalance": (float, 10.0), "threshold_misprediction": (float, 0.7),
                  "samples": (int, 500), "argmax": (_bool, False), "labels_regex": (str, ".*labels"),
                  "predictions_regex": (str, ".*predictions")}

    def __init__(self, trial: Trial, parameters: dict[str, str]) -> None:
        super().__init__(trial, parameters)
        self.labels: list[np.ndarray] = []
        self.predicted: list[np.ndarray] = []

    def invoke(self, step: int) -> bool:
        labels = [n for n in self.trial.tensor_names(regex=self.params["labels_regex"]) if self.trial.has(n, step)]
        predictions = [n for n in self.trial.tensor_names(regex=self.params["predictions_regex"])
                       if self.trial.has(n, step)]
        if not labels:
            return False
        y = np.asarray(self.trial.value(labels[0], step)).reshape(-1)
        self.labels.append(y)
        if predictions:
            p = np.asarray(self.trial.value(predictions[0], step))
            if p.ndim > 1 or self.params["argmax"]:
                p = np.argmax(p.reshape(len(y), -1), axis=1)
            elif np.all((p >= 0) & (p <= 1)) and set(np.unique(y)) <= {0.0, 1.0}:
                p = (p > 0.5).astype(float)
            self.predicted.append(np.rint(p).reshape(-1))
        seen = np.concatenate(self.labels)
        if len(seen) < self.params["samples"]:
            return False
        classes, counts = np.unique(seen, return_counts=True)
        if len(classes) > 1 and counts.max() / counts.min() > self.params["threshold_imbalance"]:
            return self.fire(f"class {classes[counts.argmax()]:g} has {counts.max()} samples, class "
                             f"{classes[counts.argmin()]:g} {counts.min()}: ratio {counts.max() / counts.min():.3g} > "
                             f"{self.params['threshold_imbalance']}")
        if self.predicted and len(np.concatenate(self.predicted)) == len(seen):
            guesses = np.concatenate(self.predicted)
            for label in classes:
                wrong = float(np.mean(guesses[seen == label] != label))
                if wrong > self.params["threshold_misprediction"]:
                    return self.fire(f"{wrong:.1%} of class {label:g} mispredicted "
                                     f"(> {self.params['threshold_misprediction']})")
        return False


class TreeDepth(Rule):
    """Fires when a tree stays shallower than ``depth``; the depth is log2 of the tree's largest node ID.

    The documentation gives only that measure; which side of ``depth`` is the issue is its wording
    ("the tree might not grow as deep as defined by the depth parameter").
    """

    NAME = "TreeDepth"
    PARAMETERS = {"depth": (int, 4)}

    def invoke(self, step: int) -> bool:
        if not self.trial.has("trees/Node", step):
            return False
        nodes = np.asarray(self.trial.value("trees/Node", step))
        largest = int(nodes.max()) if nodes.size else 0
        depth = int(math.log2(largest)) if largest > 0 else 0
        if depth < self.params["depth"]:
            return self.fire(f"the tree of step {step} has depth {depth} (largest node ID {largest}) "
                             f"< {self.params['depth']}")
        return False


class FeatureImportanceOverweight(Rule):
    """Fires when the ``nfeatures`` largest normalised importances sum to more than ``threshold``."""

    NAME = "FeatureImportanceOverweight"
    PARAMETERS = {"threshold": (float, 0.8), "nfeatures": (int, 3),
                  "tensor_regex": (str, ".*feature_importance/weight")}

    def invoke(self, step: int) -> bool:
        names = [n for n in self.trial.tensor_names(regex=self.params["tensor_regex"]) if self.trial.has(n, step)]
        if not names:
            return False
        scores = sorted(((self.trial.scalar(n, step), n) for n in names), reverse=True)
        top = scores[:self.params["nfeatures"]]
        total = sum(score for score, _ in top)
        if total > self.params["threshold"]:
            shown = ", ".join(f"{name.rsplit('/', 1)[-1]}={score:.3g}" for score, name in top)
            return self.fire(f"top {len(top)} features ({shown}) weigh {total:.3g} > {self.params['threshold']}")
        return False


class AllZero(Rule):
    """Fires when at least ``threshold`` % of a selected tensor's values are zero."""

    NAME = "AllZero"
    PARAMETERS = {"collection_names": (_list, None), "tensor_regex": (_list, None), "threshold": (float, 100.0)}

    def __init__(self, trial: Trial, parameters: dict[str, str]) -> None:
        super().__init__(trial, parameters)
        if not self.params["collection_names"] and not self.params["tensor_regex"]:
            raise RuleConfigError("Rule AllZero needs collection_names or tensor_regex to choose its tensors.")

    def invoke(self, step: int) -> bool:
        for name in self.selected():
            if not self.trial.has(name, step):
                continue
            value = np.asarray(self.trial.value(name, step))
            if value.dtype.kind not in "biuf" or value.size == 0:
                continue
            zeros = float(np.mean(value == 0) * 100)
            if zeros >= self.params["threshold"]:
                return self.fire(f"{zeros:.3g}% of {name} is zero at step {step} "
                                 f"(threshold {self.params['threshold']}%)")
        return False


RULES: dict[str, type[Rule]] = {rule.NAME: rule for rule in (
    LossNotDecreasing, Overfit, Overtraining, ClassImbalance, TreeDepth, FeatureImportanceOverweight, AllZero)}
