"""The algorithm-mode training job: validate, load this host's data, train alone or with peers.

Follows ``training.py::run_algorithm_mode`` and ``algorithm_mode/train.py::sagemaker_train`` of the
1.7-1 container, in the same order (so the *first* error a user meets is the container's):
hyperparameters, channels, content type, data checks, data loading, then single-host or
distributed training.

Deviations: Pipe mode reads the staged channel directory like File mode (LibSVM still fails as
in the container), and ``use_dask_gpu_training=true`` is rejected because there are no GPUs.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import xgboost as xgb

from . import distributed, hyperparameters
from . import legacy as legacy_algorithm
from .channels import (
    CONTENT_TYPE,
    LIBSVM,
    PIPE_MODE,
    TRAINING_INPUT_MODE,
    parse_content_type,
    validate_channels,
)
from .data import data_size, load_dmatrix, validate_data_files, warn_if_redundant
from .environment import Environment
from .errors import PlatformError, UserError
from .train import train_job

logger = logging.getLogger(__name__)

#: where smdebug writes when the configuration names no ``LocalPath`` (``DEFAULT_SAGEMAKER_OUTDIR``)
DEBUG_OUTPUT = "/opt/ml/output/tensors"


def load_dmatrices(
    train_path: str, val_path: str | None, file_type: str, csv_weights: int, combine_train_val: bool
) -> tuple[xgb.DMatrix | None, xgb.DMatrix | None, xgb.DMatrix | None]:
    """Return (train, validation, train+validation) matrices; ``None`` where there is no data."""
    train_size = data_size(train_path) if train_path else 0
    val_size = data_size(val_path) if val_path else 0
    logger.debug(
        f"File size need to be processed in the node: {round((train_size + val_size) / 2**20, 2)}mb."
    )
    if train_size > 0:
        validate_data_files(train_path, file_type)
    if val_size > 0 and val_path:
        validate_data_files(val_path, file_type)

    train = load_dmatrix(train_path, file_type, csv_weights) if train_size > 0 else None
    val = load_dmatrix(val_path, file_type, csv_weights) if val_size > 0 and val_path else None
    train_val = train
    if combine_train_val and train is not None and val is not None and val_path:
        logger.info("Read both train and validation data into one DMatrix")
        train_val = load_dmatrix([train_path, val_path], file_type, csv_weights)
    return train, val, train_val


def validated_config(train_config: dict[str, Any], is_legacy: bool) -> dict[str, Any]:
    """The job's hyperparameters checked by the image's own rules: the 1.7-1 container's or the legacy 0.72 ones."""
    if not is_legacy:
        return hyperparameters.validate(train_config)
    config = legacy_algorithm.translate(legacy_algorithm.validate(train_config), logger.info)
    logger.info("Running standalone xgboost training.")
    return config


def sagemaker_train(env: Environment, legacy: bool = False) -> None:
    """Run the whole job for this host; raises on failure, returns normally on success.

    ``legacy``: the legacy first-party image, whose hyperparameters are XGBoost 0.72's (see :mod:`.legacy`).
    """
    if not legacy:
        logger.info("Running XGBoost Sagemaker in algorithm mode")
    train_config: dict[str, Any] = env.read_config("hyperparameters.json", {})
    data_config: dict[str, Any] = env.read_config("inputdataconfig.json", {})
    checkpoint_config: dict[str, Any] = env.read_config("checkpointconfig.json", {})
    resource_config: dict[str, Any] = env.read_config("resourceconfig.json", {}) or {}
    current_host = resource_config.get("current_host", "algo-1")
    hosts = list(resource_config.get("hosts") or [current_host])

    train_path = env.channel_path("train")
    val_path = env.channel_path("validation") if "validation" in data_config else None

    config = validated_config(train_config, legacy)
    if config.get("updater"):
        config["updater"] = ",".join(config["updater"])
    channels = validate_channels(data_config)
    logger.debug(f"hyperparameters {config}")
    logger.debug(f"channels {channels}")

    file_type = parse_content_type(channels["train"].get(CONTENT_TYPE))
    is_pipe = channels["train"].get(TRAINING_INPUT_MODE) == PIPE_MODE
    if is_pipe and file_type == LIBSVM:
        raise UserError("Pipe mode not supported for LibSVM.")
    csv_weights = config.get("csv_weights", 0)
    combine_train_val = "_kfold" in config

    if val_path is not None:
        if train_path == val_path or os.path.basename(train_path) == os.path.basename(val_path):
            logger.warning(
                "Found same path for training and validation. This is not recommended and results may not "
                "be correct."
            )
        else:
            warn_if_redundant(train_path, val_path)

    debug_hook_config = env.read_config("debughookconfig.json")
    if debug_hook_config:
        debug_hook_config["LocalPath"] = env.rebase(debug_hook_config.get("LocalPath") or DEBUG_OUTPUT)

    checkpoint_dir = checkpoint_config.get("LocalPath")
    if checkpoint_dir:
        checkpoint_dir = env.rebase(checkpoint_dir)

    logger.info("Determined 0 GPU(s) available on the instance.")
    if config.pop("use_dask_gpu_training", "false") == "true":
        raise UserError(
            "Some configurations unsuitable for Dask GPU training were found: "
            "the local emulator has no GPU instances."
        )

    train_dmatrix, val_dmatrix, train_val_dmatrix = load_dmatrices(
        train_path, val_path, file_type, csv_weights, combine_train_val
    )
    missing_validation_data = "validation" in channels and val_dmatrix is None

    def run(is_master: bool) -> None:
        train_job(
            train_cfg=config,
            train_dmatrix=train_dmatrix,
            val_dmatrix=val_dmatrix,
            train_val_dmatrix=train_val_dmatrix,
            model_dir=env.model_dir,
            checkpoint_dir=checkpoint_dir,
            is_master=is_master,
            output_data_dir=env.output_data_dir,
            debug_hook_config=debug_hook_config,
        )

    if len(hosts) > 1:
        logger.info(f"Distributed node training with {len(hosts)} hosts: {hosts}")
        include_in_training = True
        if train_dmatrix is None:
            logger.warning(
                f"Host {current_host} does not have training data. Will broadcast to cluster and this host "
                f"{current_host} will not be used in distributed training. Please divide the training data "
                "across instances properly. See https://docs.aws.amazon.com/sagemaker/latest/dg/xgboost.html"
                "#Instance-XGBoost-distributed-training-divide-data. "
            )
            include_in_training = False
        if missing_validation_data:
            logger.warning(
                f"Host {current_host} does not have validation data in the validation channel : "
                f"{channels['validation']}. Will broadcast to cluster and this host {current_host} "
                "will not be used in distributed training. Please divide the validation data across "
                "instances properly. "
                "See https://docs.aws.amazon.com/sagemaker/latest/dg/xgboost.html"
                "#Instance-XGBoost-distributed-training-divide-data. "
            )
            include_in_training = False
        distributed.run(run, include_in_training, hosts, current_host)
    elif len(hosts) == 1:
        if train_dmatrix is None:
            raise UserError(f"No data in training channel path {train_path}")
        if missing_validation_data:
            raise UserError(f"No data in validation channel path {val_path}")
        logger.info("Single node training.")
        run(True)
    else:
        raise PlatformError("Number of hosts should be an int greater than or equal to 1")
