"""The UCI Bank Marketing data (``bank-additional-full.csv``) for the notebooks, prepared as the Immersion Day does.

Why this module exists: the original labs run ``wget`` + ``unzip`` in a cell, which fails offline, re-downloads
every time, and never checks what it got. Here the data is fetched once into a cache, verified by the SHA-256 of the
CSV (not of the zip: mirrors repack it), and every write is atomic so an interrupted run never leaves a half-written
file that a later run would trust.

Where the CSV comes from, in order:

1. the cache (``<repo>/data/cache/``, or ``$WORKSHOP_DATA_CACHE``, or the ``cache_dir`` argument), if its checksum
   matches (a corrupt cached file is deleted and fetched again);
2. a local mirror folder holding ``bank-additional.zip`` (the ``mirror`` argument, else ``$WORKSHOP_DATA_MIRROR``) —
   this is how tests and offline classrooms work;
3. the public downloads: the UCI outer zip (which contains ``bank-additional.zip``), then the SageMaker sample-data
   bucket. Each attempt times out after ~10 s so an offline machine fails fast, with instructions.

Data: S. Moro, P. Cortez and P. Rita, "A Data-Driven Approach to Predict the Success of Bank Telemarketing", Decision
Support Systems 62:22-31, 2014 (UCI dataset 222, CC BY 4.0).
"""

from __future__ import annotations

import hashlib
import http.client
import io
import os
import tempfile
import urllib.error
import urllib.request
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import IO

import pandas as pd

CSV_NAME = "bank-additional-full.csv"
NAMES_NAME = "bank-additional-names.txt"
ZIP_NAME = "bank-additional.zip"
CSV_SHA256 = "74adfc578bf77a7ff4bb1ba4a9f8709d9e3c6907342959c2c8416847e0afb4d8"

UCI_URL = "https://archive.ics.uci.edu/static/public/222/bank+marketing.zip"
S3_URL = (
    "https://sagemaker-sample-data-us-west-2.s3-us-west-2.amazonaws.com/autopilot/direct_marketing/bank-additional.zip"
)
SOURCES: tuple[str, ...] = (UCI_URL, S3_URL)
"""Public download locations, tried in order. Each may serve the outer UCI zip or ``bank-additional.zip`` itself."""

DOWNLOAD_TIMEOUT_S = 10.0
CACHE_ENV = "WORKSHOP_DATA_CACHE"
MIRROR_ENV = "WORKSHOP_DATA_MIRROR"
DEFAULT_CACHE_DIR = Path(__file__).resolve().parent.parent / "data" / "cache"
MIRROR_ZIP_NAMES = (ZIP_NAME, "bank+marketing.zip")

LABEL = "y_yes"
LEAKY_COLUMNS = ("duration",)
"""Only known after the call ends, and it nearly determines ``y``: a model using it could not be deployed."""
MACRO_COLUMNS = ("emp.var.rate", "cons.price.idx", "cons.conf.idx", "euribor3m", "nr.employed")
"""Economic context indicators the lab drops; they drift with the date, which orders the file."""
NOT_WORKING_JOBS = ("student", "retired", "unemployed")

CATEGORY_LEVELS: dict[str, tuple[str, ...]] = {
    "job": ("admin.", "blue-collar", "entrepreneur", "housemaid", "management", "retired", "self-employed",
            "services", "student", "technician", "unemployed", "unknown"),
    "marital": ("divorced", "married", "single", "unknown"),
    "education": ("basic.4y", "basic.6y", "basic.9y", "high.school", "illiterate", "professional.course",
                  "university.degree", "unknown"),
    "default": ("no", "unknown", "yes"),
    "housing": ("no", "unknown", "yes"),
    "loan": ("no", "unknown", "yes"),
    "contact": ("cellular", "telephone"),
    "month": ("apr", "aug", "dec", "jul", "jun", "mar", "may", "nov", "oct", "sep"),
    "day_of_week": ("fri", "mon", "thu", "tue", "wed"),
    "poutcome": ("failure", "nonexistent", "success"),
    "y": ("no", "yes"),
}
"""The levels present in the full file, sorted as ``get_dummies`` sorts them. ``engineer_features(all_levels=True)``
pins them so a sample or a single new record gets the full data's columns (``default == "yes"`` occurs in only 3 of
41,188 rows, so a 10 % sample usually lacks ``default_yes``; January and February never occur at all)."""

_CHUNK = 1 << 20
_USER_AGENT = "sagemaker-immersion-day-anywhere/0.1 (python urllib)"


class DataUnavailableError(RuntimeError):
    """The data set could not be found or fetched; the message says what to do about it."""


class ChecksumMismatchError(DataUnavailableError):
    """A file's SHA-256 differs from the published one (the bad file has already been deleted)."""


# --------------------------------------------------------------------------------------------------------------------
# Fetching


def default_cache_dir() -> Path:
    """``$WORKSHOP_DATA_CACHE`` if set, else ``<repo>/data/cache`` (git-ignored), so every notebook shares one copy."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else DEFAULT_CACHE_DIR


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks so memory stays flat."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_bank_marketing(
    cache_dir: Path | None = None,
    mirror: str | Path | None = None,
    progress: bool = True,
    *,
    sources: Sequence[str] | None = None,
    timeout: float = DOWNLOAD_TIMEOUT_S,
) -> Path:
    """Return the path of a verified ``bank-additional-full.csv``, fetching it into the cache if needed.

    ``sources`` replaces the public URL list (tests serve a zip from 127.0.0.1); ``timeout`` bounds each network
    operation so an offline machine fails in seconds, not minutes.
    """
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    target = cache / CSV_NAME
    if _cached_is_valid(target):
        return target

    mirror_dir = _resolve_mirror(mirror)
    mirror_zip = _find_mirror_zip(mirror_dir) if mirror_dir is not None else None
    if mirror_zip is not None:
        _install_from_zip(mirror_zip, cache, origin=str(mirror_zip))
        return target

    failures = _download_first_working(list(SOURCES if sources is None else sources), cache, progress, timeout)
    if target.is_file():
        return target
    raise DataUnavailableError(_unavailable_message(cache, mirror_dir, failures))


def _cached_is_valid(target: Path) -> bool:
    """True if the cached CSV is intact; a corrupt one is deleted (with a warning) so it gets repaired."""
    if not target.is_file():
        return False
    actual = sha256_of(target)
    if actual == CSV_SHA256:
        return True
    warnings.warn(f"{target} is corrupt (SHA-256 {actual[:12]}…, expected {CSV_SHA256[:12]}…); fetching it again.",
                  stacklevel=3)
    target.unlink(missing_ok=True)
    return False


def _resolve_mirror(mirror: str | Path | None) -> Path | None:
    """The mirror argument, else ``$WORKSHOP_DATA_MIRROR``, else None."""
    if mirror is None:
        mirror = os.environ.get(MIRROR_ENV) or None
    return Path(mirror).expanduser() if mirror is not None else None


def _find_mirror_zip(mirror: Path) -> Path | None:
    """The zip in a mirror folder (or the mirror itself if it names a zip file)."""
    if mirror.is_file():
        return mirror
    for name in MIRROR_ZIP_NAMES:
        if (mirror / name).is_file():
            return mirror / name
    return None


def _is_metadata(name: str) -> bool:
    """macOS zip litter (``__MACOSX/``, ``._x``, ``.DS_Store``) that must never be mistaken for data."""
    path = PurePosixPath(name)
    return path.parts[:1] == ("__MACOSX",) or path.name.startswith("._") or path.name == ".DS_Store"


def _member(archive: zipfile.ZipFile, basename: str) -> str | None:
    """The archive member called ``basename`` in any folder, ignoring macOS metadata."""
    for info in archive.infolist():
        if not info.is_dir() and PurePosixPath(info.filename).name == basename and not _is_metadata(info.filename):
            return info.filename
    return None


def _install_from_zip(source: Path | IO[bytes], cache: Path, origin: str) -> None:
    """Extract and verify the CSV (and the data dictionary) from ``source``, which may nest ``bank-additional.zip``."""
    try:
        with zipfile.ZipFile(source) as archive:
            csv_member = _member(archive, CSV_NAME)
            if csv_member is None:
                inner = _member(archive, ZIP_NAME)
                if inner is None:
                    raise DataUnavailableError(f"{origin} contains neither {CSV_NAME} nor {ZIP_NAME}.")
                _install_from_zip(io.BytesIO(archive.read(inner)), cache, origin=f"{origin}!{inner}")
                return
            with archive.open(csv_member) as src:
                _write_atomic(src, cache / CSV_NAME, expected_sha256=CSV_SHA256, origin=f"{origin}!{csv_member}")
            names_member = _member(archive, NAMES_NAME)
            if names_member is not None:
                with archive.open(names_member) as src:
                    _write_atomic(src, cache / NAMES_NAME)
    except zipfile.BadZipFile as exc:
        raise DataUnavailableError(f"{origin} is not a valid zip file ({exc}).") from exc


def _write_atomic(src: IO[bytes], dest: Path, expected_sha256: str | None = None, origin: str = "") -> None:
    """Copy ``src`` to ``dest`` via a temp file in the same folder; on a checksum mismatch nothing replaces ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _atomic_path(dest) as tmp:
        digest = hashlib.sha256()
        with tmp.open("wb") as out:
            for chunk in iter(lambda: src.read(_CHUNK), b""):
                digest.update(chunk)
                out.write(chunk)
        if expected_sha256 is not None and digest.hexdigest() != expected_sha256:
            raise ChecksumMismatchError(
                f"{dest.name} from {origin or 'the source'} has SHA-256 {digest.hexdigest()}, expected "
                f"{expected_sha256}. The file was deleted. The source is corrupt or a different version of the data: "
                f"replace it with the original {ZIP_NAME} from {UCI_URL}."
            )


@contextmanager
def _atomic_path(dest: Path) -> Iterator[Path]:
    """Yield a temp path beside ``dest``; move it onto ``dest`` only if the block succeeds, else delete it."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        tmp.chmod(0o644)  # mkstemp makes 0600; the cache is shared with containers and other users
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _download_first_working(urls: list[str], cache: Path, progress: bool, timeout: float) -> list[str]:
    """Try each URL until one yields a verified CSV; return a ``url: reason`` line per failure."""
    failures: list[str] = []
    for url in urls:
        try:
            with _atomic_download(url, cache, progress, timeout) as archive:
                _install_from_zip(archive, cache, origin=url)
            return failures
        except (OSError, http.client.HTTPException, ValueError, DataUnavailableError) as exc:
            failures.append(f"{url}: {_reason(exc)}")
    return failures


def _reason(exc: BaseException) -> str:
    """A one-line reason, unwrapping urllib's ``<urlopen error ...>`` wrapper."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return str(exc) or type(exc).__name__


@contextmanager
def _atomic_download(url: str, cache: Path, progress: bool, timeout: float) -> Iterator[Path]:
    """Download ``url`` to a temp file in the cache folder (deleted afterwards), with an optional progress bar."""
    from tqdm.auto import tqdm

    cache.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".download.", suffix=".zip", dir=cache)
    tmp = Path(name)
    try:
        request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
        with urllib.request.urlopen(request, timeout=timeout) as response, os.fdopen(fd, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            label = PurePosixPath(urllib.request.urlparse(url).path).name or url
            with tqdm(total=total, unit="B", unit_scale=True, desc=label, disable=not progress) as bar:
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    out.write(chunk)
                    bar.update(len(chunk))
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def _unavailable_message(cache: Path, mirror_dir: Path | None, failures: list[str]) -> str:
    """Tell the learner exactly how to get the data onto this machine."""
    if mirror_dir is None:
        mirror_line = f"No mirror: {MIRROR_ENV} is not set."
    else:
        mirror_line = f"The mirror {mirror_dir} has no {ZIP_NAME}."
    tried = "\n".join(f"  - {line}" for line in failures) or "  (no download sources configured)"
    return (
        f"The UCI Bank Marketing data ({CSV_NAME}) is not available.\n"
        f"Not in the cache: {cache}\n{mirror_line}\n"
        f"Downloads failed (is this machine offline?):\n{tried}\n"
        "Do ONE of the following, then re-run the cell:\n"
        f"  1. Set {MIRROR_ENV} to a folder that contains {ZIP_NAME}, e.g.\n"
        f"       export {MIRROR_ENV}=/path/to/folder      (in a notebook: %env {MIRROR_ENV}=/path/to/folder)\n"
        "  2. On a machine with internet access, download one of\n"
        f"       {UCI_URL}   (an outer zip with {ZIP_NAME} inside; either zip works)\n"
        f"       {S3_URL}\n"
        "     and put it, unchanged, in that folder (step 1).\n"
        f"  3. Copy {CSV_NAME} itself (SHA-256 {CSV_SHA256}) into\n"
        f"       {cache}"
    )


# --------------------------------------------------------------------------------------------------------------------
# Loading and feature engineering


def load_bank_marketing(sample_fraction: float = 1.0, seed: int = 42, **fetch_kwargs: object) -> pd.DataFrame:
    """The raw 41,188 × 21 table (``;``-separated in the file), optionally a sample stratified by ``y``.

    Stratifying keeps the 11.3 % "yes" rate in small samples, so quick runs still see positives.
    """
    if not 0 < sample_fraction <= 1:
        raise ValueError(f"sample_fraction must be in (0, 1], got {sample_fraction!r}")
    df = pd.read_csv(fetch_bank_marketing(**fetch_kwargs), sep=";")  # type: ignore[arg-type]
    if sample_fraction < 1:
        df = df.groupby("y", group_keys=False).sample(frac=sample_fraction, random_state=seed)
        df = df.sort_index().reset_index(drop=True)  # keep the file's (chronological) order
    return df


def engineer_features(df: pd.DataFrame, keep_macro: bool = False, all_levels: bool = False) -> pd.DataFrame:
    """The Immersion Day XGBoost lab's features: two indicators, one-hot encoding, leaky/macro columns dropped.

    The label ``y_yes`` comes first (SageMaker's built-in XGBoost expects the label in the first CSV column) and
    ``y_no`` is dropped: 59 features + label for the full data. ``keep_macro=True`` keeps the five economic indicators,
    for the exercise that asks what they add. By default the one-hot columns are exactly what ``pd.get_dummies`` makes
    of *this* frame, as in the lab (so a small sample may lack rare levels); ``all_levels=True`` pins the full data's
    levels (``CATEGORY_LEVELS``) so samples and single records get the same columns as the full data.
    """
    data = df.copy()
    data["no_previous_contact"] = (data["pdays"] == 999).astype(int)
    data["not_working"] = data["job"].isin(NOT_WORKING_JOBS).astype(int)
    if all_levels:
        data = _pin_categories(data)
    model_data = pd.get_dummies(data, dtype=int)
    dropped = list(LEAKY_COLUMNS) + ([] if keep_macro else list(MACRO_COLUMNS))
    model_data = model_data.drop(columns=[c for c in dropped if c in model_data.columns])
    if LABEL not in model_data.columns:
        return model_data  # unlabelled data (e.g. records to score): features only
    features = model_data.drop(columns=[LABEL, "y_no"], errors="ignore")
    return pd.concat([model_data[LABEL], features], axis=1)


def _pin_categories(data: pd.DataFrame) -> pd.DataFrame:
    """Make the known categorical columns ``Categorical`` over known ∪ observed levels (sorted like get_dummies)."""
    for column, known in CATEGORY_LEVELS.items():
        if column in data.columns:
            observed = data[column].dropna().unique().tolist()
            levels = sorted(set(known) | set(observed))
            data[column] = pd.Categorical(data[column], categories=levels)
    return data


def split(
    df: pd.DataFrame, fractions: Sequence[float] = (0.7, 0.2, 0.1), seed: int = 1729
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Shuffle and cut into train/validation/test exactly like the lab's ``np.split(df.sample(frac=1, ...), ...)``.

    Slicing with ``iloc`` gives the same rows as ``np.split`` but keeps DataFrames: with pandas 3, ``np.split`` on a
    DataFrame returns bare ndarrays. The second cut is rounded so 0.7 + 0.2 cuts where the lab's 0.9 does.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-9:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {tuple(fractions)}")
    shuffled = df.sample(frac=1, random_state=seed)
    n = len(shuffled)
    first = int(fractions[0] * n)
    second = int(round(fractions[0] + fractions[1], 12) * n)
    return shuffled.iloc[:first], shuffled.iloc[first:second], shuffled.iloc[second:]


# --------------------------------------------------------------------------------------------------------------------
# Writing channels


def _label_first(df: pd.DataFrame, label: str) -> pd.DataFrame:
    """Reorder so ``label`` is column 0, the convention of SageMaker's built-in algorithms."""
    if label not in df.columns:
        raise KeyError(f"label column {label!r} not in the DataFrame (columns: {list(df.columns)[:5]}…)")
    return df[[label, *[c for c in df.columns if c != label]]]


def _write_csv(df: pd.DataFrame, path: Path) -> Path:
    """Headerless, index-free CSV (what the built-in XGBoost reads), written atomically."""
    with _atomic_path(path) as tmp:
        df.to_csv(tmp, header=False, index=False)
    return path


def write_channels(
    train: pd.DataFrame, validation: pd.DataFrame, test: pd.DataFrame, out_dir: str | Path, label: str = LABEL
) -> dict[str, Path]:
    """Write the layout the Immersion Day ``preprocessing.py`` produces, ready to upload as training channels.

    ``train/train.csv`` and ``validation/validation.csv`` (label first), ``test/test_x.csv`` (features only) and
    ``test/test_y.csv`` (labels only) — all headerless. Returns ``{"train", "validation", "test_x", "test_y"}`` paths.
    """
    out = Path(out_dir)
    test = _label_first(test, label)
    return {
        "train": _write_csv(_label_first(train, label), out / "train" / "train.csv"),
        "validation": _write_csv(_label_first(validation, label), out / "validation" / "validation.csv"),
        "test_x": _write_csv(test.drop(columns=[label]), out / "test" / "test_x.csv"),
        "test_y": _write_csv(test[[label]], out / "test" / "test_y.csv"),
    }


__all__ = [
    "CSV_SHA256",
    "ChecksumMismatchError",
    "DataUnavailableError",
    "LABEL",
    "MACRO_COLUMNS",
    "SOURCES",
    "default_cache_dir",
    "engineer_features",
    "fetch_bank_marketing",
    "load_bank_marketing",
    "split",
    "write_channels",
]
