"""What a lab needs from the labs before it: the channels (01), the trained model (02), the tuned model (03).

Why one module: every lab after 01 starts with "if you skipped the earlier lab …", and three notebooks each
carried their own catch-up cell (04's was 51 lines). Here each prerequisite is found where the earlier lab
left it; if it is missing, it is produced the quick way, with the same SageMaker SDK calls the earlier lab
makes, and a printed line says so. Nothing here is emulator-specific: in ``sagemaker`` mode the same calls
run on AWS (a catch-up training job then takes a few minutes, and costs what lab 02's job costs).

Where the labs leave things (the contract ``tests/helpers/test_prerequisites.py`` checks against the
notebooks): lab 01's processing job writes ``<prefix>/{train,validation,test}/``; lab 02 trains with
``base_job_name="sm-immday-xgboost"``; lab 03 writes the best trial's artifact URI to
``<prefix>/best-model.txt``.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

from helpers import data
from helpers.workshop import Workshop

PREFIX = "sagemaker/DEMO-xgboost-dm"
CHANNELS = ("train", "validation", "test")
BASELINE_JOB = "sm-immday-xgboost"
"""Lab 02's ``base_job_name``: its jobs are named ``sm-immday-xgboost-<timestamp>``."""
TUNED_JOB = "sm-immday-xgboost-tuned"
"""The catch-up job that stands in for lab 03's best trial."""
BEST_MODEL_KEY = "best-model.txt"
"""Lab 03 writes the best trial's ``model.tar.gz`` URI to ``<prefix>/best-model.txt``."""
HYPERPARAMETERS: dict[str, Any] = {
    "max_depth": 5, "eta": 0.2, "gamma": 4, "min_child_weight": 6, "subsample": 0.8,
    "objective": "binary:logistic", "eval_metric": "auc", "num_round": 100, "seed": 42,
}
"""Lab 02's hyperparameters (the Immersion Day's)."""
TUNED_HYPERPARAMETERS: dict[str, Any] = {"max_depth": 4, "eta": 0.12, "min_child_weight": 3}
"""Values in the region lab 03's tuning jobs usually end up in; they override ``HYPERPARAMETERS``."""
XGBOOST_VERSION = "1.7-1"


def ensure_channels(ws: Workshop, prefix: str = PREFIX) -> dict[str, str]:
    """The S3 URIs of lab 01's ``train``, ``validation`` and ``test`` channels, written here if any is missing.

    The quick way is lab 01's transformation and split run in this kernel (``helpers.data``), uploaded to the
    same keys its processing job writes, so every later lab reads identical files either way.
    """
    s3 = ws.client("s3")
    missing = [name for name in CHANNELS
               if not s3.list_objects_v2(Bucket=ws.bucket, Prefix=f"{prefix}/{name}/").get("KeyCount", 0)]
    if missing:
        print(f"Lab 01's {' and '.join(missing)} channel{'s are' if len(missing) > 1 else ' is'} not in "
              f"{ws.s3_uri(prefix)}/: writing all three from the same features and split in this kernel "
              "(lab 01 runs this as a processing job).")
        from tqdm.auto import tqdm

        # a few seconds of work with nothing of the SDK's on screen: a bar, so the cell is seen to move
        with tqdm(total=6, desc="lab 01's channels", unit="step", leave=False) as bar:  # 2 steps + 4 files
            features = data.engineer_features(data.load_bank_marketing())
            bar.update()
            frames = data.split(features)
            bar.update()
            with tempfile.TemporaryDirectory() as folder:
                root = Path(folder)
                files = data.write_channels(*frames, root).values()
                bar.total = 2 + len(files)
                for path in files:
                    s3.upload_file(str(path), ws.bucket, f"{prefix}/{path.relative_to(root).as_posix()}")
                    bar.update()
    return {name: ws.s3_uri(prefix, name) for name in CHANNELS}


def ensure_trained_model(ws: Workshop, prefix: str = PREFIX, instance_type: str = "ml.m5.xlarge") -> str:
    """The ``model.tar.gz`` URI of lab 02's newest completed built-in XGBoost job, trained here if there is none."""
    found = latest_model(ws, BASELINE_JOB)
    if found:
        return found
    print(f"No completed {BASELINE_JOB}-<timestamp> training job (lab 02): training one now with lab 02's "
          "hyperparameters.")
    return train(ws, BASELINE_JOB, prefix, instance_type)


def ensure_tuned_model(ws: Workshop, prefix: str = PREFIX, instance_type: str = "ml.m5.xlarge") -> str:
    """The ``model.tar.gz`` URI lab 03 recorded as its best trial's; else a stand-in trained here (once)."""
    s3 = ws.client("s3")
    try:
        return s3.get_object(Bucket=ws.bucket, Key=f"{prefix}/{BEST_MODEL_KEY}")["Body"].read().decode()
    except s3.exceptions.NoSuchKey:
        pass
    found = latest_model(ws, TUNED_JOB)
    if found:
        print(f"Lab 03's {ws.s3_uri(prefix, BEST_MODEL_KEY)} is missing: using the stand-in trained earlier.")
        return found
    print(f"Lab 03's {ws.s3_uri(prefix, BEST_MODEL_KEY)} is missing: training a stand-in with hyperparameters "
          f"in the range tuning finds ({TUNED_HYPERPARAMETERS}).")
    return train(ws, TUNED_JOB, prefix, instance_type, **TUNED_HYPERPARAMETERS)


def latest_model(ws: Workshop, base_job_name: str) -> str | None:
    """The artifact of the newest completed job named ``<base_job_name>-<timestamp>``, or None.

    The name must match exactly: lab 02's script-mode and two-instance jobs (``…-script-…``, ``…-dist-…``)
    share the prefix but are not the model the later labs deploy.
    """
    sm = ws.client("sagemaker")
    own = re.compile(rf"{re.escape(base_job_name)}-\d+")
    pages = sm.get_paginator("list_training_jobs").paginate(
        NameContains=base_job_name, StatusEquals="Completed", SortBy="CreationTime", SortOrder="Descending")
    for page in pages:
        for job in page["TrainingJobSummaries"]:
            if own.fullmatch(job["TrainingJobName"]):
                return sm.describe_training_job(TrainingJobName=job["TrainingJobName"])["ModelArtifacts"][
                    "S3ModelArtifacts"]
    return None


def train(ws: Workshop, base_job_name: str, prefix: str = PREFIX, instance_type: str = "ml.m5.xlarge",
          **hyperparameters: Any) -> str:
    """Train the built-in XGBoost on the channels with lab 02's ``ModelTrainer`` call; return the artifact URI."""
    from sagemaker.core import image_uris
    from sagemaker.core.training.configs import Compute, InputData, OutputDataConfig
    from sagemaker.train import ModelTrainer

    channels = ensure_channels(ws, prefix)
    trainer = ModelTrainer(
        training_image=image_uris.retrieve(framework="xgboost", region=ws.region, version=XGBOOST_VERSION),
        role=ws.role, compute=Compute(instance_type=instance_type, instance_count=1),
        output_data_config=OutputDataConfig(s3_output_path=ws.s3_uri(prefix, "output")),
        hyperparameters={**HYPERPARAMETERS, **hyperparameters}, base_job_name=base_job_name,
        sagemaker_session=ws.session,
    )
    trainer.train(input_data_config=[
        InputData(channel_name=name, data_source=channels[name], content_type="text/csv")
        for name in ("train", "validation")], wait=True, logs=False)
    # train() returns None; the SDK's own docs read the job from _latest_training_job (no public accessor in V3)
    return trainer._latest_training_job.model_artifacts.s3_model_artifacts
