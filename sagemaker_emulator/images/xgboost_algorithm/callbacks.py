"""Training callbacks: metric lines, early stopping, checkpoints and save-on-termination.

* Metric lines use XGBoost's own ``EvaluationMonitor`` formatting (``[i]\\t<data>-<metric>:%.5f``,
  rank 0 only) but print through :func:`console.print_line` so each line is flushed at once.
* Checkpoints (managed spot training) are written as ``xgboost-checkpoint.<n>`` into the
  checkpoint ``LocalPath`` after every round, keeping the five most recent, and training resumes
  from the highest ``n``.  This is what the container's script-mode helper does; the 1.7-1
  algorithm mode writes XGBoost-named files it can never resume from, which we do not copy.
* ``save_model_on_termination=true`` saves the model after every round and installs a SIGTERM
  handler that removes half-written files and exits 0, so a stopped job keeps its last model.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
import tempfile
from types import FrameType

import xgboost as xgb

from .console import print_line

logger = logging.getLogger(__name__)

MODEL_NAME = "xgboost-model"
CHECKPOINT_FILENAME = "xgboost-checkpoint"
CHECKPOINT_PATTERN = re.compile(rf"^{re.escape(CHECKPOINT_FILENAME)}\.[0-9]+$")
UPLOADING_SUFFIX = ".sagemaker-uploading"
UPLOADED_SUFFIX = ".sagemaker-uploaded"


def _atomic_save(model: xgb.Booster, directory: str, name: str) -> None:
    """Save via a temporary file and a rename, so readers never see a half-written model."""
    os.makedirs(directory, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=directory, suffix=".sagemaker-ignore", delete=False) as handle:
        temp_path = handle.name
    model.save_model(temp_path)
    # save_model may add nothing to an extension-less name; rename whatever was written.
    os.replace(temp_path, os.path.join(directory, name))


class EvaluationMonitor(xgb.callback.TrainingCallback):
    """XGBoost's ``EvaluationMonitor`` lines (``[i]\\t<data>-<metric>:%.5f``, rank 0 only) through our console.

    Not XGBoost's class itself: only XGBoost 3 lets it print through a function. 1.7 and 2.1 (the 1.7-1
    image's, and the Studio kernel's that a job gets when it runs in the emulator's own environment) print
    through the communicator, which in a distributed job sends rank 0's lines to the tracker, not to the log.
    """

    def after_iteration(self, model: xgb.Booster, epoch: int, evals_log: dict) -> bool:
        if evals_log and xgb.collective.get_rank() == 0:
            print_line(f"[{epoch}]" + "".join(
                f"\t{data}-{metric}:{_score(log[-1]):.5f}" for data, metrics in evals_log.items()
                for metric, log in metrics.items()))
        return False


def _score(entry: float | tuple[float, float]) -> float:
    """A round's score; cross-validation logs (mean, std) pairs, of which the monitor shows the mean."""
    return entry[0] if isinstance(entry, tuple) else entry


class InOrder(xgb.callback.TrainingCallback):
    """Run the given callbacks in their order, all of them, on every XGBoost version.

    XGBoost before 3 keeps a training's callbacks in a set: whether the monitor printed the round that
    made early stopping stop (the monitor must run before the stopper) changed from run to run.
    """

    def __init__(self, callbacks: list[xgb.callback.TrainingCallback]) -> None:
        super().__init__()
        self.callbacks = callbacks

    def before_training(self, model: xgb.Booster) -> xgb.Booster:
        for callback in self.callbacks:
            model = callback.before_training(model)
        return model

    def after_training(self, model: xgb.Booster) -> xgb.Booster:
        for callback in self.callbacks:
            model = callback.after_training(model)
        return model

    def before_iteration(self, model: xgb.Booster, epoch: int, evals_log: dict) -> bool:
        return any([callback.before_iteration(model, epoch, evals_log) for callback in self.callbacks])

    def after_iteration(self, model: xgb.Booster, epoch: int, evals_log: dict) -> bool:
        return any([callback.after_iteration(model, epoch, evals_log) for callback in self.callbacks])


def load_checkpoint(checkpoint_dir: str | None) -> tuple[str | None, int]:
    """Return (path of the newest checkpoint, number of rounds it holds) or ``(None, 0)``."""
    if not checkpoint_dir or not os.path.isdir(checkpoint_dir):
        return None, 0
    numbers = [
        int(name.split(".")[1]) for name in os.listdir(checkpoint_dir) if CHECKPOINT_PATTERN.match(name)
    ]
    if not numbers:
        return None, 0
    newest = max(numbers)
    return os.path.join(checkpoint_dir, f"{CHECKPOINT_FILENAME}.{newest}"), newest + 1


class SaveCheckpoint(xgb.callback.TrainingCallback):
    """Write ``xgboost-checkpoint.<n>`` after every round; keep only the ``max_to_keep`` newest."""

    def __init__(self, checkpoint_dir: str, max_to_keep: int = 5) -> None:
        super().__init__()
        self.checkpoint_dir = checkpoint_dir
        self.max_to_keep = max_to_keep
        os.makedirs(checkpoint_dir, exist_ok=True)
        # Files from an earlier run may still be needed by SageMaker's upload; never delete them.
        self.previous = set(os.listdir(checkpoint_dir))

    def _path(self, number: int) -> str:
        return os.path.join(self.checkpoint_dir, f"{CHECKPOINT_FILENAME}.{number}")

    def after_iteration(self, model: xgb.Booster, epoch: int, evals_log: dict) -> bool:
        number = model.num_boosted_rounds() - 1
        _atomic_save(model, self.checkpoint_dir, f"{CHECKPOINT_FILENAME}.{number}")
        stale = self._path(number - self.max_to_keep)
        name = os.path.basename(stale)
        uploading = os.path.exists(stale + UPLOADING_SUFFIX) and not os.path.exists(stale + UPLOADED_SUFFIX)
        if name not in self.previous and os.path.isfile(stale) and not uploading:
            try:
                os.remove(stale)
            except OSError:
                logger.debug("Failed to delete %s", stale)
        return False


class SaveIntermediateModel(xgb.callback.TrainingCallback):
    """Overwrite ``<model_dir>/<model_name>`` after every round (master only)."""

    def __init__(self, model_dir: str, model_name: str, is_master: bool) -> None:
        super().__init__()
        self.model_dir = model_dir
        self.model_name = model_name
        self.is_master = is_master
        os.makedirs(model_dir, exist_ok=True)

    def after_iteration(self, model: xgb.Booster, epoch: int, evals_log: dict) -> bool:
        if self.is_master:
            _atomic_save(model, self.model_dir, self.model_name)
        return False


def install_sigterm_handler(model_dir: str, is_master: bool) -> None:
    """On SIGTERM: drop temporary files from ``model_dir`` (master) and exit 0 immediately."""

    def _on_sigterm(signo: int, frame: FrameType | None) -> None:
        if is_master and os.path.isdir(model_dir):
            for name in os.listdir(model_dir):
                path = os.path.join(model_dir, name)
                if os.path.isfile(path) and not name.startswith(MODEL_NAME):
                    try:
                        os.remove(path)
                    except OSError:
                        pass
        sys.stdout.flush()
        os._exit(0)

    signal.signal(signal.SIGTERM, _on_sigterm)


def build_callbacks(
    *,
    model_dir: str,
    checkpoint_dir: str | None,
    early_stopping_data_name: str | None,
    early_stopping_metric: str | None,
    early_stopping_rounds: int | None,
    maximize: bool,
    save_model_on_termination: str,
    is_master: bool,
    fold: int | None = None,
) -> tuple[str | None, int, list[xgb.callback.TrainingCallback]]:
    """Return (checkpoint to resume from, rounds already done, callbacks) for one ``xgb.train``."""
    if checkpoint_dir and fold is not None:
        checkpoint_dir = os.path.join(checkpoint_dir, f"model-{fold}")

    xgb_model, iteration = load_checkpoint(checkpoint_dir)
    if xgb_model is not None:
        logger.info("Checkpoint loaded from %s", xgb_model)
        logger.info("Resuming from iteration %s", iteration)

    callbacks: list[xgb.callback.TrainingCallback] = [EvaluationMonitor()]
    if checkpoint_dir:
        callbacks.append(SaveCheckpoint(checkpoint_dir))

    if save_model_on_termination == "true":
        model_name = f"{MODEL_NAME}-{fold}" if fold is not None else MODEL_NAME
        callbacks.append(SaveIntermediateModel(model_dir, model_name, is_master))
        install_sigterm_handler(model_dir, is_master)

    if early_stopping_data_name and early_stopping_metric and early_stopping_rounds:
        callbacks.append(
            xgb.callback.EarlyStopping(
                rounds=early_stopping_rounds,
                data_name=early_stopping_data_name,
                metric_name=early_stopping_metric,
                maximize=maximize,
                save_best=True,
            )
        )
    return xgb_model, iteration, [InOrder(callbacks)]
