"""Reading a channel directory into an ``xgboost.DMatrix`` the way the 1.7-1 container does.

Steps and texts follow the container: the size check (which also rejects hidden files anywhere in
the channel), a first-line format check of the files, then every file (recursing at most three
folder levels) is symlinked into one flat directory which XGBoost loads in one go:

* csv: no header, label in column 0, optional weight in column 1 (``csv_weights=1``); the
  delimiter is sniffed from the first line of one file;
* libsvm: ``<label>[:<weight>] <index>:<value> ...``;
* parquet: column 0 is the label, the other columns are features.

Deviations: the flat directory is a private temporary directory per call (the container reuses
``/tmp/sagemaker_xgboost_input_data``, which would clash between local instances), deeper files are
skipped individually, and ``recordio-protobuf`` is rejected with a clear error because the
emulator has no RecordIO reader.
"""

from __future__ import annotations

import csv
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence

import numpy as np
import xgboost as xgb

from .channels import CSV, LIBSVM, PARQUET, RECORDIO_PROTOBUF
from .errors import AlgorithmError, UserError, library_message

logger = logging.getLogger(__name__)

MAX_FOLDER_DEPTH = 3

NO_LABELS_MESSAGE = (
    "Got input data without labels. Please check the input data set. "
    "If training job is running on multiple instances, please switch "
    "to using single instance if number of records in the data set "
    "is less than number of workers (16 * number of instance) in the cluster."
)


def data_size(path: str) -> int:
    """Total bytes under ``path`` (0 if it does not exist); hidden files are a user error."""
    if not os.path.exists(path):
        logger.info(f"Path {path} does not exist!")
        return 0
    if os.path.isfile(path):
        return os.path.getsize(path)
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            if name.startswith("."):
                raise UserError("Hidden file found in the data path! Remove that before training.")
            total += os.path.getsize(os.path.join(root, name))
    return total


def _is_data_file(directory: str, name: str) -> bool:
    if not os.path.isfile(os.path.join(directory, name)):
        return False
    if name.startswith((".", "_")):
        return False
    return not (".cache" in name and ("dtrain" in name or "dval" in name))


def sniff_delimiter(line: str) -> str:
    """Delimiter of a CSV line, as ``csv.Sniffer`` finds it."""
    try:
        delimiter = csv.Sniffer().sniff(line).delimiter
    except Exception as error:
        raise UserError(f"Could not determine delimiter on line {line[:50]}:\n{error}") from error
    logger.info(f"Determined delimiter of CSV input is '{delimiter}'")
    return delimiter


def _is_valid_libsvm_label(token: str) -> bool:
    parts = token.split(":")
    if len(parts) > 2:
        return False
    try:
        for part in parts:
            float(part)
    except ValueError:
        return False
    return True


def _libsvm_feature_count(line: str) -> int:
    """Number of features on a libsvm line, or -1 when the line is not libsvm (container logic)."""
    tokens = line.split(" ")
    if not _is_valid_libsvm_label(tokens[0]):
        logger.error(f"{tokens[0]} does not follow LIBSVM label format <label>(:<weight>).")
        return -1
    for token in tokens[1:]:
        if ":" not in token or len(tokens[1].split(":")) != 2:
            return -1
    return len(tokens) - 1


def _validate_libsvm_file(path: str) -> None:
    name = os.path.basename(path)
    with open(path, errors="ignore") as handle:
        for line in handle:
            count = _libsvm_feature_count(line)
            if count > 1:
                return
            if count < 0:
                raise UserError(
                    f"First line '{line[:50]}...' of file '{name}' is not 'LIBSVM' format. "
                    "Please ensure the file is in 'LIBSVM' format."
                )
    logger.warning(
        f"File {name} is not an invalid LIBSVM file but has no features. Accepting simple validation."
    )


def validate_data_files(path: str, file_type: str) -> None:
    """Check the first line(s) of the files of the first leaf folder, like the container."""
    if not os.path.exists(path):
        raise UserError(f"{path} is not a valid path!")
    if os.path.isfile(path):
        files = [path]
    else:
        leaf = next((root for root, dirs, _ in os.walk(path) if not dirs), path)
        files = [os.path.join(leaf, name) for name in sorted(os.listdir(leaf)) if _is_data_file(leaf, name)]
    for file_path in files:
        if file_type == CSV:
            with open(file_path, errors="ignore") as handle:
                sniff_delimiter(handle.readline())
        elif file_type == LIBSVM:
            _validate_libsvm_file(file_path)


def _collect_files(path: str, depth: int, found: list[str]) -> None:
    if os.path.isfile(path):
        found.append(path)
        return
    if depth > MAX_FOLDER_DEPTH:
        logger.warning(
            f"The depth of folder {path} exceed the limit {MAX_FOLDER_DEPTH}. Files in deeper sub dirs "
            "won't be loaded. Please adjust the folder structure accordingly."
        )
        return
    for entry in sorted(os.scandir(path), key=lambda item: item.name):
        if entry.is_file():
            found.append(entry.path)
        elif entry.is_dir():
            _collect_files(entry.path, depth + 1, found)


def link_input_files(paths: Sequence[str]) -> str:
    """Symlink every input file under ``paths`` into a new flat temporary directory and return it."""
    flat_dir = tempfile.mkdtemp(prefix="sagemaker_xgboost_input_data_")
    files: list[str] = []
    for path in paths:
        logger.info(f"File path {path} of input files")
        if not os.path.exists(path):
            raise AlgorithmError(f"Unable to create symlinks as {path} or {flat_dir} doesn't exist ")
        _collect_files(path, 1, files)
    for index, file_path in enumerate(files):
        # A numeric suffix keeps equally named files from different folders apart.
        link = os.path.join(flat_dir, f"{os.path.basename(file_path)}-{index}")
        os.symlink(os.path.abspath(file_path), link)
    return flat_dir


def _csv_dmatrix(flat_dir: str, csv_weights: int) -> xgb.DMatrix:
    names = sorted(os.listdir(flat_dir))
    # The container sniffs "the first" file; prefer a non-empty data file so a _SUCCESS marker
    # or an empty part file does not break delimiter detection.
    candidates = [
        n for n in names if _is_data_file(flat_dir, n) and os.path.getsize(os.path.join(flat_dir, n))
    ]
    first_file = (candidates or names)[0]
    with open(os.path.join(flat_dir, first_file)) as handle:
        delimiter = sniff_delimiter(handle.readline())
    uri = f"{flat_dir}?format=csv&label_column=0&delimiter={delimiter}"
    if csv_weights == 1:
        uri += "&weight_column=1"
    try:
        return xgb.DMatrix(uri)
    except Exception as error:
        raise UserError(f"Failed to load csv data with exception:\n{library_message(error)}") from error


def _libsvm_dmatrix(flat_dir: str) -> xgb.DMatrix:
    try:
        return xgb.DMatrix(f"{flat_dir}?format=libsvm")
    except Exception as error:
        raise UserError(f"Failed to load libsvm data with exception:\n{library_message(error)}") from error


def _parquet_dmatrix(flat_dir: str) -> xgb.DMatrix:
    try:
        import pyarrow.parquet as pq

        frame = pq.read_table(flat_dir).to_pandas()
        data = frame.to_numpy(dtype=np.float32)
        return xgb.DMatrix(data[:, 1:], label=data[:, 0])
    except Exception as error:
        raise UserError(f"Failed to load parquet data with exception:\n{library_message(error)}") from error


def load_dmatrix(paths: str | Sequence[str], file_type: str, csv_weights: int = 0) -> xgb.DMatrix | None:
    """Load the files under one or several channel paths into a single DMatrix."""
    path_list = [paths] if isinstance(paths, str) else list(paths)
    if file_type == RECORDIO_PROTOBUF:
        raise UserError(
            "Content type recordio-protobuf (application/x-recordio-protobuf) is not supported by the "
            "local SageMaker emulator. Please provide the data as text/csv, text/libsvm or "
            "application/x-parquet."
        )
    flat_dir = link_input_files(path_list)
    try:
        logger.info(f"files path: {flat_dir}")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*Text file input has been deprecated.*")
            if file_type == CSV:
                dmatrix = _csv_dmatrix(flat_dir, csv_weights)
            elif file_type == LIBSVM:
                dmatrix = _libsvm_dmatrix(flat_dir)
            elif file_type == PARQUET:
                dmatrix = _parquet_dmatrix(flat_dir)
            else:
                raise AlgorithmError(f"Unknown content type {file_type}")
    finally:
        shutil.rmtree(flat_dir, ignore_errors=True)
    if dmatrix is not None and dmatrix.get_label().size == 0:
        raise UserError(NO_LABELS_MESSAGE)
    return dmatrix


def warn_if_redundant(train_path: str, validation_path: str) -> None:
    """Warn when train and validation hold files with the same name and size (likely duplicates)."""
    if not os.path.exists(train_path):
        raise UserError("training data's path is not existed")
    if not os.path.exists(validation_path):
        raise UserError("validation data's path is not existed")

    def files(path: str) -> set[str]:
        return {name for name in os.listdir(path) if os.path.isfile(os.path.join(path, name))}

    for name in sorted(files(train_path) & files(validation_path)):
        train_file = os.path.join(train_path, name)
        validation_file = os.path.join(validation_path, name)
        size = os.path.getsize(validation_file)
        if os.path.getsize(train_file) == size:
            logger.warning(
                f"Suspected identical files found. ({train_file} and {validation_file}"
                f"with same size {size} bytes)."
                " Note: Duplicate data in the training set and validation set is usually"
                " not intentional and can impair the validity of the model evaluation by"
                " the validation score."
            )
