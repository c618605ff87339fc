"""helpers.data: fetch (cache → mirror → download) with checksums, and the Immersion Day feature pipeline.

No test touches the internet: the real mirror is a local folder, downloads come from a 127.0.0.1 server.
"""

from __future__ import annotations

import functools
import io
import os
import socket
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # tests/ is on sys.path and tests/helpers would shadow the package as a namespace
    sys.path.insert(0, str(ROOT))

from helpers import data  # noqa: E402

MIRROR = Path(os.environ.get(data.MIRROR_ENV) or "/work/shared/datasets")
MIRROR_ZIP = MIRROR / data.ZIP_NAME
needs_mirror = pytest.mark.skipif(not MIRROR_ZIP.is_file(), reason=f"no dataset mirror at {MIRROR}")
MACRO = ["emp.var.rate", "cons.price.idx", "cons.conf.idx", "euribor3m", "nr.employed"]
PROXY_VARS = ["http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"]


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ambient mirror/cache settings, and no proxy between us and 127.0.0.1."""
    for name in [data.MIRROR_ENV, data.CACHE_ENV, *PROXY_VARS]:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One verified copy for the tests that only need to read the data."""
    if not MIRROR_ZIP.is_file():
        pytest.skip(f"no dataset mirror at {MIRROR}")
    cache = tmp_path_factory.mktemp("shared-cache")
    data.fetch_bank_marketing(cache_dir=cache, mirror=MIRROR, progress=False)
    return cache


@pytest.fixture(scope="module")
def raw(shared_cache: Path) -> pd.DataFrame:
    return data.load_bank_marketing(cache_dir=shared_cache, mirror=None, progress=False, sources=[])


@pytest.fixture(scope="module")
def features(raw: pd.DataFrame) -> pd.DataFrame:
    return data.engineer_features(raw)


def closed_port_url() -> str:
    """A URL on 127.0.0.1 that refuses connections at once (the port was just free)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/bank+marketing.zip"


def zip_with_csv(path: Path | IO[bytes], content: bytes) -> Path | IO[bytes]:
    """A bank-additional.zip look-alike whose CSV holds ``content`` (plus the macOS litter real ones have)."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("__MACOSX/bank-additional/._bank-additional-full.csv", b"\x00\x05\x16\x07junk")
        archive.writestr("bank-additional/.DS_Store", b"junk")
        archive.writestr(f"bank-additional/{data.CSV_NAME}", content)
    return path


def leftovers(cache: Path) -> list[str]:
    """Temp files an interrupted or failed write would leave behind."""
    return sorted(p.name for p in cache.iterdir() if p.name.startswith("."))


# --------------------------------------------------------------------------------------------------------------------
# Fetching


@needs_mirror
def test_mirror_gives_verified_csv_and_data_dictionary(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    path = data.fetch_bank_marketing(cache_dir=cache, mirror=MIRROR, progress=False)

    assert path == cache / data.CSV_NAME
    assert data.sha256_of(path) == data.CSV_SHA256
    assert "Citation Request" in (cache / data.NAMES_NAME).read_text()[:30]  # begins with a UTF-8 BOM
    assert sorted(p.name for p in cache.iterdir()) == [data.CSV_NAME, data.NAMES_NAME]  # no temp files, no junk
    df = pd.read_csv(path, sep=";")
    assert df.shape == (41188, 21)
    assert round((df["y"] == "yes").mean() * 100, 2) == 11.27


@needs_mirror
def test_environment_variables_choose_mirror_and_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(data.MIRROR_ENV, str(MIRROR))
    monkeypatch.setenv(data.CACHE_ENV, str(tmp_path / "env-cache"))

    path = data.fetch_bank_marketing(progress=False, sources=[])

    assert path == tmp_path / "env-cache" / data.CSV_NAME
    assert data.sha256_of(path) == data.CSV_SHA256


def test_default_cache_is_in_the_repository() -> None:
    assert data.default_cache_dir() == ROOT / "data" / "cache"


@needs_mirror
def test_second_call_is_a_cache_hit(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = data.fetch_bank_marketing(cache_dir=cache, mirror=MIRROR, progress=False)
    mtime = first.stat().st_mtime_ns
    time.sleep(0.01)

    again = data.fetch_bank_marketing(cache_dir=cache, mirror=MIRROR, progress=False)
    offline = data.fetch_bank_marketing(cache_dir=cache, mirror=None, progress=False, sources=[])

    assert again == offline == first
    assert first.stat().st_mtime_ns == mtime  # not re-extracted


@needs_mirror
def test_corrupt_cache_is_detected_and_repaired_from_mirror(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / data.CSV_NAME).write_text('"age";"y"\n1;"yes"\n')

    with pytest.warns(UserWarning, match="corrupt"):
        path = data.fetch_bank_marketing(cache_dir=cache, mirror=MIRROR, progress=False)

    assert data.sha256_of(path) == data.CSV_SHA256


def test_bad_mirror_raises_deletes_and_explains(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    zip_with_csv(mirror / data.ZIP_NAME, b'"age";"y"\n1;"yes"\n')
    cache = tmp_path / "cache"

    with pytest.raises(data.ChecksumMismatchError) as caught:
        data.fetch_bank_marketing(cache_dir=cache, mirror=mirror, progress=False, sources=[])

    message = str(caught.value)
    assert data.CSV_SHA256 in message and "SHA-256" in message and str(mirror) in message
    assert not (cache / data.CSV_NAME).exists()
    assert leftovers(cache) == []


def test_mirror_zip_without_the_csv_is_reported(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    with zipfile.ZipFile(mirror / data.ZIP_NAME, "w") as archive:
        archive.writestr("readme.txt", b"nothing here")

    with pytest.raises(data.DataUnavailableError, match="contains neither"):
        data.fetch_bank_marketing(cache_dir=tmp_path / "cache", mirror=mirror, progress=False, sources=[])


def test_offline_without_mirror_says_what_to_do(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    unreachable = closed_port_url()
    started = time.monotonic()

    with pytest.raises(data.DataUnavailableError) as caught:
        data.fetch_bank_marketing(cache_dir=cache, mirror=None, progress=False, sources=[unreachable])

    assert time.monotonic() - started < 5
    message = str(caught.value)
    for needle in [data.MIRROR_ENV, data.ZIP_NAME, data.UCI_URL, data.S3_URL, str(cache), data.CSV_SHA256,
                   unreachable, "not set"]:
        assert needle in message, needle
    assert not (cache / data.CSV_NAME).exists()
    assert leftovers(cache) == []


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A quiet static file server on 127.0.0.1: yields (base URL, folder served)."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


@needs_mirror
def test_download_of_outer_uci_zip_after_a_failing_source(tmp_path: Path, http_server: tuple[str, Path]) -> None:
    base, root = http_server
    with zipfile.ZipFile(root / "bank+marketing.zip", "w") as outer:  # the UCI layout: a zip inside a zip
        outer.write(MIRROR_ZIP, data.ZIP_NAME)
        outer.writestr("bank.zip", b"not the one we want")
    cache = tmp_path / "cache"

    path = data.fetch_bank_marketing(cache_dir=cache, mirror=None, progress=False,
                                     sources=[closed_port_url(), f"{base}/bank+marketing.zip"])

    assert data.sha256_of(path) == data.CSV_SHA256
    assert (cache / data.NAMES_NAME).is_file()
    assert leftovers(cache) == []  # the downloaded zip is not kept


@needs_mirror
def test_download_of_inner_zip_with_progress_bar(tmp_path: Path, http_server: tuple[str, Path]) -> None:
    base, root = http_server
    (root / data.ZIP_NAME).write_bytes(MIRROR_ZIP.read_bytes())  # the S3 sample-data layout

    path = data.fetch_bank_marketing(cache_dir=tmp_path / "cache", mirror=None, progress=True,
                                     sources=[f"{base}/{data.ZIP_NAME}"])

    assert data.sha256_of(path) == data.CSV_SHA256


def test_download_with_wrong_csv_fails_with_reason(tmp_path: Path, http_server: tuple[str, Path]) -> None:
    base, root = http_server
    zip_with_csv(root / data.ZIP_NAME, b"tampered")
    (root / "notazip.zip").write_bytes(b"<html>captive portal</html>")
    cache = tmp_path / "cache"

    with pytest.raises(data.DataUnavailableError) as caught:
        data.fetch_bank_marketing(cache_dir=cache, mirror=None, progress=False,
                                  sources=[f"{base}/{data.ZIP_NAME}", f"{base}/notazip.zip", f"{base}/missing.zip"])

    message = str(caught.value)
    assert "SHA-256" in message and "not a valid zip" in message and "HTTP 404" in message
    assert not (cache / data.CSV_NAME).exists()
    assert leftovers(cache) == []


# --------------------------------------------------------------------------------------------------------------------
# Loading and features


def test_load_full(raw: pd.DataFrame) -> None:
    assert raw.shape == (41188, 21)
    assert raw["y"].value_counts().to_dict() == {"no": 36548, "yes": 4640}


def test_sample_is_stratified_and_deterministic(shared_cache: Path) -> None:
    kwargs = {"cache_dir": shared_cache, "mirror": None, "progress": False, "sources": []}
    sample = data.load_bank_marketing(sample_fraction=0.1, seed=7, **kwargs)
    again = data.load_bank_marketing(sample_fraction=0.1, seed=7, **kwargs)
    other = data.load_bank_marketing(sample_fraction=0.1, seed=8, **kwargs)

    assert sample["y"].value_counts().to_dict() == {"no": 3655, "yes": 464}
    assert sample.equals(again) and not sample.equals(other)
    with pytest.raises(ValueError, match="sample_fraction"):
        data.load_bank_marketing(sample_fraction=0, **kwargs)


def test_features_as_in_the_lab(raw: pd.DataFrame, features: pd.DataFrame) -> None:
    assert features.shape == (41188, 60)  # 59 features + label
    assert features.columns[0] == "y_yes"
    assert features.columns[1:7].tolist() == ["age", "campaign", "pdays", "previous", "no_previous_contact",
                                              "not_working"]
    dropped = {"duration", "y", "y_no", *MACRO}
    assert not dropped & set(features.columns)
    assert all(dtype == np.int64 for dtype in features.dtypes)
    assert features["no_previous_contact"].sum() == (raw["pdays"] == 999).sum()
    assert features["not_working"].sum() == raw["job"].isin(["student", "retired", "unemployed"]).sum()
    assert features["y_yes"].sum() == 4640


def test_features_equal_the_notebook_code(raw: pd.DataFrame, features: pd.DataFrame) -> None:
    nb = raw.copy()
    nb["no_previous_contact"] = np.where(nb["pdays"] == 999, 1, 0)
    nb["not_working"] = np.where(nb["job"].isin(["student", "retired", "unemployed"]), 1, 0)
    model_data = pd.get_dummies(nb, dtype=int).drop(columns=["duration", *MACRO])
    model_data = pd.concat([model_data["y_yes"], model_data.drop(columns=["y_no", "y_yes"])], axis=1)

    assert features.columns.tolist() == model_data.columns.tolist()
    assert (features.to_numpy() == model_data.to_numpy()).all()


def test_keep_macro(raw: pd.DataFrame, features: pd.DataFrame) -> None:
    with_macro = data.engineer_features(raw, keep_macro=True)

    assert with_macro.shape[1] == features.shape[1] + 5
    assert set(MACRO) <= set(with_macro.columns) and "duration" not in with_macro.columns
    assert with_macro.columns[0] == "y_yes"


def test_all_levels_gives_a_sample_the_full_columns(raw: pd.DataFrame, features: pd.DataFrame) -> None:
    few = raw.iloc[:50]  # May 2008 only, no default == "yes"
    assert data.engineer_features(few).shape[1] < features.shape[1]

    pinned = data.engineer_features(few, all_levels=True)

    assert pinned.columns.tolist() == features.columns.tolist()
    assert (pinned.to_numpy() == features.iloc[:50].to_numpy()).all()


def test_split_sizes_and_determinism(features: pd.DataFrame) -> None:
    train, validation, test = data.split(features)
    again = data.split(features)

    assert (len(train), len(validation), len(test)) == (28831, 8238, 4119)  # int(.7 n), int(.9 n)
    assert all(a.equals(b) for a, b in zip((train, validation, test), again, strict=True))
    assert not data.split(features, seed=1)[0].equals(train)
    index = train.index.append([validation.index, test.index])
    assert index.is_unique and len(index) == len(features)


def test_split_matches_np_split_of_the_notebook(features: pd.DataFrame) -> None:
    shuffled = features.sample(frac=1, random_state=1729)
    n = len(shuffled)
    expected = np.split(shuffled.index.to_numpy(), [int(0.7 * n), int(0.9 * n)])

    for part, index in zip(data.split(features), expected, strict=True):
        assert (part.index.to_numpy() == index).all()
    for n in (10, 100):  # where 0.7 + 0.2 != 0.9 in floating point
        small = pd.DataFrame({"y_yes": range(n)})
        assert [len(p) for p in data.split(small)] == [int(0.7 * n), int(0.9 * n) - int(0.7 * n), n - int(0.9 * n)]
    with pytest.raises(ValueError, match="fractions"):
        data.split(features, fractions=(0.5, 0.2, 0.2))


# --------------------------------------------------------------------------------------------------------------------
# Writing


def test_write_channels_layout(features: pd.DataFrame, tmp_path: Path) -> None:
    train, validation, test = data.split(features)
    # A caller may have moved the label; the files must still have it first.
    reordered = train[[*train.columns[1:], "y_yes"]]

    paths = data.write_channels(reordered, validation, test, tmp_path / "out")

    assert {k: v.relative_to(tmp_path / "out").as_posix() for k, v in paths.items()} == {
        "train": "train/train.csv", "validation": "validation/validation.csv",
        "test_x": "test/test_x.csv", "test_y": "test/test_y.csv",
    }
    for path in paths.values():
        assert path.read_text().split("\n", 1)[0][0].isdigit()  # no header row
    read = {k: pd.read_csv(v, header=None) for k, v in paths.items()}
    assert read["train"].shape == (28831, 60) and read["validation"].shape == (8238, 60)
    assert read["test_x"].shape == (4119, 59) and read["test_y"].shape == (4119, 1)
    assert (read["train"][0].to_numpy() == train["y_yes"].to_numpy()).all()
    assert (read["test_y"][0].to_numpy() == test["y_yes"].to_numpy()).all()
    assert (read["test_x"].to_numpy() == test.drop(columns="y_yes").to_numpy()).all()
    assert sorted(p.name for p in (tmp_path / "out" / "test").iterdir()) == ["test_x.csv", "test_y.csv"]


def test_zip_member_lookup_skips_macos_metadata() -> None:
    buffer = io.BytesIO()
    zip_with_csv(buffer, b"x")
    with zipfile.ZipFile(buffer) as archive:
        assert data._member(archive, data.CSV_NAME) == f"bank-additional/{data.CSV_NAME}"
        assert data._member(archive, ".DS_Store") is None


@needs_mirror
def test_mirror_may_hold_the_outer_uci_zip(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    with zipfile.ZipFile(mirror / "bank+marketing.zip", "w") as outer:
        outer.write(MIRROR_ZIP, data.ZIP_NAME)

    path = data.fetch_bank_marketing(cache_dir=tmp_path / "cache", mirror=mirror, progress=False, sources=[])

    assert data.sha256_of(path) == data.CSV_SHA256
