"""The UCI Bank Marketing data, prepared as in the Immersion Day's XGBoost direct-marketing lab.

The zip is read from ``$WORKSHOP_DATA_MIRROR/bank-additional.zip`` or, failing that, from
``../shared/datasets/bank-additional.zip`` next to the repository. Nothing is copied into the
repository: the prepared CSV files go into a directory the caller owns (a temporary one).
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
ZIP_NAME = "bank-additional.zip"
MEMBER = "bank-additional/bank-additional-full.csv"
FULL_CSV_SHA256 = "74adfc578bf77a7ff4bb1ba4a9f8709d9e3c6907342959c2c8416847e0afb4d8"
DROPPED = ["duration", "emp.var.rate", "cons.price.idx", "cons.conf.idx", "euribor3m", "nr.employed"]
SEED = 1729


class DataMissing(SystemExit):
    """Raised (and exits) with a readable message when the dataset cannot be found."""


@dataclass
class Prepared:
    train_csv: Path
    validation_csv: Path
    rows: dict[str, int]
    feature_columns: int
    source: Path
    test_csv: Path | None = None  # the 10 % held out: the rows the endpoint benchmark sends


def locate_zip() -> Path:
    candidates = []
    mirror = os.environ.get("WORKSHOP_DATA_MIRROR")
    if mirror:
        candidates.append(Path(mirror) / ZIP_NAME)
    candidates.append(REPO_ROOT.parent / "shared" / "datasets" / ZIP_NAME)
    for path in candidates:
        if path.is_file():
            return path
    tried = "\n  ".join(str(p) for p in candidates)
    raise DataMissing(
        f"benchmarks: cannot find {ZIP_NAME}. Tried:\n  {tried}\n"
        "Set WORKSHOP_DATA_MIRROR to the directory that holds it (or run with --only s3)."
    )


def load_frame(zip_path: Path):
    import pandas as pd

    with zipfile.ZipFile(zip_path) as archive:
        raw = archive.read(MEMBER)
    digest = hashlib.sha256(raw).hexdigest()
    if digest != FULL_CSV_SHA256:
        raise DataMissing(f"benchmarks: {MEMBER} in {zip_path} has SHA-256 {digest}, expected {FULL_CSV_SHA256}.")
    return pd.read_csv(io.BytesIO(raw), sep=";")


def features(data):
    """The lab's feature engineering: two flags, one-hot encoding, leaky/economic columns dropped."""
    import pandas as pd

    data = data.copy()
    data["no_previous_contact"] = (data["pdays"] == 999).astype(int)
    data["not_working"] = data["job"].isin(["student", "retired", "unemployed"]).astype(int)
    model_data = pd.get_dummies(data).drop(columns=DROPPED)
    label = model_data["y_yes"]
    rest = model_data.drop(columns=["y_no", "y_yes"])
    return pd.concat([label, rest], axis=1).astype(float)


def prepare(out_dir: Path) -> Prepared:
    """Write ``train.csv`` (70 %), ``validation.csv`` (20 %) and ``test.csv`` (10 %): label first, no header."""
    source = locate_zip()
    model_data = features(load_frame(source))
    shuffled = model_data.sample(frac=1, random_state=SEED)
    n = len(shuffled)
    cut_train, cut_val = int(0.7 * n), int(0.9 * n)
    train, validation, test = shuffled.iloc[:cut_train], shuffled.iloc[cut_train:cut_val], shuffled.iloc[cut_val:]
    out_dir.mkdir(parents=True, exist_ok=True)
    train_csv, validation_csv, test_csv = out_dir / "train.csv", out_dir / "validation.csv", out_dir / "test.csv"
    train.to_csv(train_csv, index=False, header=False)
    validation.to_csv(validation_csv, index=False, header=False)
    test.to_csv(test_csv, index=False, header=False)
    return Prepared(
        train_csv=train_csv,
        validation_csv=validation_csv,
        rows={"train": len(train), "validation": len(validation), "test": len(test)},
        feature_columns=model_data.shape[1] - 1,
        source=source,
        test_csv=test_csv,
    )
