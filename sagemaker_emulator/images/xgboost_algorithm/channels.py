"""Channel validation and content-type parsing of the XGBoost 1.7-1 algorithm container.

As in the container, channels are validated *before* content types are parsed, and a channel is
accepted only if its exact ``(ContentType, TrainingInputMode, S3DistributionType)`` triple is
supported.  Consequently an unknown or parameterised content type (``text/foo``,
``text/csv;label_size=1``) fails in training with "Channel configuration for 'train' channel is not
supported: {...}".  ``parse_content_type`` still carries the container's "is not an accepted
ContentType" / ``label_size`` texts; they are what the serving side reports.

Deviation: a missing ``train`` channel is reported as "Missing required channel: train" (the AWS
container crashes earlier on the missing ``SM_CHANNEL_TRAIN`` variable; the SageMaker service
normally rejects such a job before it starts).
"""

from __future__ import annotations

from email.message import Message
from typing import Any

from .errors import UserError

CONTENT_TYPE = "ContentType"
TRAINING_INPUT_MODE = "TrainingInputMode"
S3_DIST_TYPE = "S3DistributionType"

FILE_MODE = "File"
PIPE_MODE = "Pipe"
SHARDED = "ShardedByS3Key"
REPLICATED = "FullyReplicated"

CSV = "csv"
LIBSVM = "libsvm"
PARQUET = "parquet"
RECORDIO_PROTOBUF = "recordio-protobuf"

VALID_CONTENT_TYPES = [
    CSV,
    LIBSVM,
    PARQUET,
    RECORDIO_PROTOBUF,
    "text/csv",
    "text/libsvm",
    "text/x-libsvm",
    "application/x-parquet",
    "application/x-recordio-protobuf",
]
VALID_PIPED_CONTENT_TYPES = [
    CSV,
    PARQUET,
    RECORDIO_PROTOBUF,
    "text/csv",
    "application/x-parquet",
    "application/x-recordio-protobuf",
]
DEFAULT_CONTENT_TYPE = "text/libsvm"


def _data_channel_support() -> set[tuple[str, str, str]]:
    supported = set()
    for distribution in (SHARDED, REPLICATED):
        supported.update((ct, FILE_MODE, distribution) for ct in VALID_CONTENT_TYPES)
        supported.update((ct, PIPE_MODE, distribution) for ct in VALID_PIPED_CONTENT_TYPES)
    return supported


# name -> (required, supported configurations); dict order is the container's declaration order.
CHANNELS: dict[str, tuple[bool, set[tuple[str, str, str]]]] = {
    "train": (True, _data_channel_support()),
    "validation": (False, _data_channel_support()),
    "code": (False, {("text/python", FILE_MODE, REPLICATED)}),
}


def validate_channels(user_channels: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Validate ``inputdataconfig.json``; fills in the default content type like the container."""
    for name, (required, _) in CHANNELS.items():
        if required and name not in user_channels:
            raise UserError(f"Missing required channel: {name}")

    validated: dict[str, dict[str, Any]] = {}
    for name, config in user_channels.items():
        if name not in CHANNELS:
            raise UserError(f"Extraneous channel found: {name}")
        config = dict(config)
        config.setdefault(CONTENT_TYPE, DEFAULT_CONTENT_TYPE)
        triple = (config.get(CONTENT_TYPE), config.get(TRAINING_INPUT_MODE), config.get(S3_DIST_TYPE))
        if triple not in CHANNELS[name][1]:
            raise UserError(f"Channel configuration for '{name}' channel is not supported: {config}")
        validated[name] = config
    return validated


def invalid_content_type_message(content_type: str) -> str:
    """The container's text for a content type it does not know."""
    return f"{content_type} is not an accepted ContentType: " + ", ".join(VALID_CONTENT_TYPES) + "."


def _split_media_type(value: str) -> tuple[str, dict[str, str]]:
    """Split ``text/csv; label_size=1`` like ``cgi.parse_header`` (removed in Python 3.13)."""
    message = Message()
    message["content-type"] = value
    params = message.get_params() or []
    media_type = value.split(";", 1)[0].strip()
    return media_type, {key: val for key, val in params[1:]}


def parse_content_type(content_type: str | None) -> str:
    """Map a channel ContentType to one of ``csv``, ``libsvm``, ``parquet``, ``recordio-protobuf``."""
    if content_type is None:
        return LIBSVM
    media_type, params = _split_media_type(content_type.lower())
    if media_type in (CSV, "text/csv"):
        if "label_size" in params and params["label_size"] != "1":
            raise UserError(
                f"{content_type} is not an accepted csv ContentType. "
                "Optional parameter label_size must be equal to 1"
            )
        return CSV
    if media_type in (LIBSVM, "text/libsvm", "text/x-libsvm"):
        return LIBSVM
    if media_type in (PARQUET, "application/x-parquet"):
        return PARQUET
    if media_type in (RECORDIO_PROTOBUF, "application/x-recordio-protobuf"):
        return RECORDIO_PROTOBUF
    raise UserError(invalid_content_type_message(content_type))
