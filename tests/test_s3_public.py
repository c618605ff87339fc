"""AWS's public sample-data buckets served offline: the bank marketing objects the public notebooks read, under their
real bucket names, read-only, verified by SHA-256; everything else there is AccessDenied, as a foreign bucket is."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from sagemaker_emulator.app import Emulator
from sagemaker_emulator.services.s3_public import (
    BANK_CSV_KEY,
    BANK_CSV_SHA256,
    BANK_MARKETING_ZIP,
    MIRROR_ENV,
    Archive,
    PublicObject,
    PublicSamples,
)
from sagemaker_emulator.services.s3store import S3Error, S3Store

ZIP_KEY = "autopilot/direct_marketing/bank-additional.zip"
ROOT = Path(__file__).resolve().parents[1]


def _mirror() -> Path | None:
    value = os.environ.get(MIRROR_ENV)
    for candidate in ([Path(value)] if value else []) + [ROOT.parent / "shared" / "datasets"]:
        path = candidate if candidate.is_absolute() else ROOT / candidate
        if (path / "bank-additional.zip").is_file():
            return path.resolve()
    return None


MIRROR = _mirror()
needs_mirror = pytest.mark.skipif(MIRROR is None, reason=f"{MIRROR_ENV} names no folder with bank-additional.zip")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """An emulator started with the data mirror in its environment, as ``sagemaker-emulator start`` passes it."""
    before = os.environ.get(MIRROR_ENV)
    os.environ[MIRROR_ENV] = str(MIRROR)
    try:
        emu = Emulator(tmp_path_factory.mktemp("public-state"))
    finally:
        if before is None:
            os.environ.pop(MIRROR_ENV, None)
        else:
            os.environ[MIRROR_ENV] = before
    emu.start("127.0.0.1", 0)
    yield emu
    emu.stop()


def _client(emu: Emulator, region: str = "us-east-1"):
    return boto3.Session(aws_access_key_id=emu.credentials.access_key, aws_secret_access_key=emu.credentials.secret_key,
                         region_name=region).client("s3", endpoint_url=emu.endpoint_url)


def _error(call, *args, **kwargs) -> str:
    with pytest.raises(ClientError) as caught:
        call(*args, **kwargs)
    return caught.value.response["Error"]["Code"]


@needs_mirror
def test_the_bank_marketing_objects_under_their_real_names(served: Emulator):
    west = _client(served, "us-west-2")
    body = west.get_object(Bucket="sagemaker-sample-data-us-west-2", Key=ZIP_KEY)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == BANK_MARKETING_ZIP.sha256
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert "bank-additional/bank-additional-full.csv" in archive.namelist()
    s3 = _client(served)
    for bucket in ("sagemaker-sample-files", "sagemaker-example-files-prod-us-east-1"):
        csv = s3.get_object(Bucket=bucket, Key=BANK_CSV_KEY)["Body"].read()
        assert hashlib.sha256(csv).hexdigest() == BANK_CSV_SHA256
        assert s3.head_object(Bucket=bucket, Key=BANK_CSV_KEY)["ContentLength"] == len(csv)
        listed = s3.list_objects_v2(Bucket=bucket, Prefix="datasets/tabular/")["Contents"]
        assert [o["Key"] for o in listed] == [BANK_CSV_KEY]
    first = s3.get_object(Bucket="sagemaker-sample-files", Key=BANK_CSV_KEY, Range="bytes=0-2")["Body"].read()
    assert first == b'"ag'
    assert west.get_bucket_location(Bucket="sagemaker-sample-data-us-west-2")["LocationConstraint"] == "us-west-2"


@needs_mirror
def test_foreign_and_read_only(served: Emulator):
    s3 = _client(served)
    bucket = "sagemaker-sample-files"
    s3.head_bucket(Bucket=bucket)
    assert _error(s3.put_object, Bucket=bucket, Key="mine.txt", Body=b"x") == "AccessDenied"
    assert _error(s3.delete_object, Bucket=bucket, Key=BANK_CSV_KEY) == "AccessDenied"
    assert _error(s3.get_object, Bucket=bucket, Key="datasets/tabular/not-served.csv") == "AccessDenied"
    assert _error(s3.head_object, Bucket=bucket, Key="datasets/other.csv") == "403"
    assert _error(s3.create_bucket, Bucket=bucket) == "BucketAlreadyExists"
    assert _error(s3.get_object, Bucket="some-bucket-nobody-made", Key="x") == "NoSuchBucket"
    assert bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]], "not the learner's bucket"
    assert s3.get_object(Bucket=bucket, Key=BANK_CSV_KEY)["Body"].read(3) == b'"ag', "still served after refusals"


@needs_mirror
def test_copy_into_the_learners_bucket_and_the_aws_cli(served: Emulator, tmp_path: Path):
    s3 = _client(served)
    s3.create_bucket(Bucket="learner-bucket")
    s3.copy_object(Bucket="learner-bucket", Key="data/bank.csv",
                   CopySource={"Bucket": "sagemaker-example-files-prod-us-east-1", "Key": BANK_CSV_KEY})
    csv = s3.get_object(Bucket="learner-bucket", Key="data/bank.csv")["Body"].read()
    assert hashlib.sha256(csv).hexdigest() == BANK_CSV_SHA256
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "AWS_ENDPOINT_URL": served.endpoint_url,
           "AWS_ACCESS_KEY_ID": served.credentials.access_key,
           "AWS_SECRET_ACCESS_KEY": served.credentials.secret_key, "AWS_DEFAULT_REGION": "us-west-2",
           "AWS_CONFIG_FILE": str(tmp_path / "config"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "creds"),
           "AWS_EC2_METADATA_DISABLED": "true"}
    aws = str(Path(sys.executable).parent / "aws")
    done = subprocess.run([aws, "s3", "cp", f"s3://sagemaker-sample-data-us-west-2/{ZIP_KEY}", str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    got = (tmp_path / "bank-additional.zip").read_bytes()
    assert hashlib.sha256(got).hexdigest() == BANK_MARKETING_ZIP.sha256


@needs_mirror
def test_anyone_may_read_the_public_samples_unsigned_and_nothing_else(served: Emulator):
    """``wget https://sagemaker-sample-files.s3.amazonaws.com/…`` and ``aws s3 --no-sign-request`` work on AWS."""
    import requests

    url = f"{served.endpoint_url}/sagemaker-sample-files/{BANK_CSV_KEY}"
    got = requests.get(url, timeout=30)
    assert got.status_code == 200 and hashlib.sha256(got.content).hexdigest() == BANK_CSV_SHA256
    virtual = requests.head(f"{served.endpoint_url}/{BANK_CSV_KEY}", timeout=30,
                            headers={"Host": "sagemaker-sample-files.s3.amazonaws.com"})
    assert virtual.status_code == 200
    assert requests.put(url, data=b"x", timeout=30).status_code == 403
    assert requests.get(f"{served.endpoint_url}/learner-bucket/data/bank.csv", timeout=30).status_code in (400, 403)


@needs_mirror
def test_a_job_reads_a_sample_bucket_no_request_has_touched(served: Emulator, tmp_path: Path):
    """Staging a channel reads the store directly: the sample bucket appears on first use there too."""
    from sagemaker_emulator.runtime.staging import stage_prefix

    uri = "s3://sagemaker-example-files-prod-eu-west-1/datasets/tabular/uci_bank_marketing/"
    assert stage_prefix(served.s3.store, uri, tmp_path / "train") == 1
    staged = (tmp_path / "train" / "bank-additional-full.csv").read_bytes()
    assert hashlib.sha256(staged).hexdigest() == BANK_CSV_SHA256


# --------------------------------------------------------------------------- where verified copies come from

def _entry(archive: Archive, member: str | None, sha256: str) -> PublicObject:
    return PublicObject("sagemaker-sample-files", "datasets/x.csv", archive, sha256, member, "text/csv")


def test_no_mirror_and_no_network_is_a_clear_503_remembered_for_retries(tmp_path: Path):
    samples = PublicSamples(S3Store(tmp_path / "s3"), tmp_path / "cache", mirror=None, fetch_timeout=2)
    entry = _entry(Archive("data.zip", "http://127.0.0.1:9/data.zip", "0" * 64), None, "0" * 64)
    with pytest.raises(S3Error) as caught:
        samples._verified(entry)
    assert caught.value.status == 503 and caught.value.code == "ServiceUnavailable"
    assert MIRROR_ENV in caught.value.message and "http://127.0.0.1:9/data.zip" in caught.value.message
    with pytest.raises(S3Error) as again:
        samples._verified(entry)
    assert again.value.message == caught.value.message


def test_a_mirror_copy_is_served_only_when_its_digest_matches(tmp_path: Path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    member = b"age,job\n30,admin.\n"
    with zipfile.ZipFile(mirror / "data.zip", "w") as archive:
        archive.writestr("d/data.csv", member)
    url = "http://127.0.0.1:9/data.zip"
    samples = PublicSamples(S3Store(tmp_path / "s3"), tmp_path / "cache", mirror=mirror, fetch_timeout=2)
    good = samples._verified(_entry(Archive("data.zip", url, "0" * 64), "d/data.csv",
                                    hashlib.sha256(member).hexdigest()))
    assert good.read_bytes() == member, "a repacked archive is fine when the object's own digest matches"
    with pytest.raises(S3Error) as caught:
        samples._verified(_entry(Archive("data.zip", url, "0" * 64), "d/data.csv", "f" * 64))
    assert "SHA-256 of d/data.csv is not" in caught.value.message
