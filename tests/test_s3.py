"""S3 through genuine boto3 clients, s3transfer and the AWS CLI, plus the store's internal API.

Every test makes its own bucket(s) so the session-wide emulator can be shared.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import os
import subprocess
import sys
import threading
import time
import uuid
import zlib
from pathlib import Path

import boto3
import botocore.config
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from sagemaker_emulator.services.s3store import NoSuchKey, S3Store, parse_s3_uri

MB = 1024 * 1024


@pytest.fixture
def bucket(s3) -> str:
    name = f"test-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def _error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    response = exc.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def _md5(data: bytes) -> str:
    return f'"{hashlib.md5(data).hexdigest()}"'


def _files_under(root: Path) -> set[str]:
    return {os.path.join(d, f) for d, _, files in os.walk(root) for f in files}


# ---------------------------------------------------------------- buckets
def test_bucket_lifecycle(s3, emulator):
    name = f"life-{uuid.uuid4().hex[:8]}"
    assert s3.create_bucket(Bucket=name)["Location"] == f"/{name}"
    assert (emulator.paths.s3 / name).is_dir()
    assert s3.get_bucket_location(Bucket=name)["LocationConstraint"] is None
    head = s3.head_bucket(Bucket=name)
    assert head["BucketRegion"] == "us-east-1"

    listing = s3.list_buckets()
    assert name in [b["Name"] for b in listing["Buckets"]]
    assert listing["Owner"]["ID"]

    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket=name)
    assert _error(exc) == ("BucketAlreadyOwnedByYou", 409)

    for bad in ("ab", "Upper-Case", "under_score", "192.168.1.1", "a..b", "-leading"):
        with pytest.raises(ClientError) as exc:
            s3.create_bucket(Bucket=bad)
        assert _error(exc) == ("InvalidBucketName", 400), bad

    with pytest.raises(ClientError) as exc:
        s3.head_bucket(Bucket=name, ExpectedBucketOwner="999999999999")
    assert _error(exc)[1] == 403
    s3.head_bucket(Bucket=name, ExpectedBucketOwner=emulator.account_id)

    s3.put_object(Bucket=name, Key="k", Body=b"x")
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket=name)
    assert _error(exc) == ("BucketNotEmpty", 409)
    s3.delete_object(Bucket=name, Key="k")
    s3.delete_bucket(Bucket=name)
    assert not (emulator.paths.s3 / name).exists()

    with pytest.raises(ClientError) as exc:
        s3.head_bucket(Bucket=name)
    assert _error(exc) == ("404", 404)  # HEAD errors have no body
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket=name)
    assert _error(exc) == ("NoSuchBucket", 404)
    assert exc.value.response["Error"]["BucketName"] == name


def test_bucket_with_location_constraint(s3):
    name = f"eu-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    assert s3.get_bucket_location(Bucket=name)["LocationConstraint"] == "eu-west-1"
    assert s3.head_bucket(Bucket=name)["BucketRegion"] == "eu-west-1"
    entry = next(b for b in s3.list_buckets()["Buckets"] if b["Name"] == name)
    assert isinstance(entry["CreationDate"], dt.datetime)


# ---------------------------------------------------------------- objects
def test_put_get_head_metadata_round_trip(s3, bucket, emulator):
    body = b"col1,col2\n1,2\n"
    put = s3.put_object(
        Bucket=bucket, Key="data/train.csv", Body=body, ContentType="text/csv",
        Metadata={"Owner": "learner", "run": "42"}, ContentEncoding="identity",
        ContentDisposition='attachment; filename="train.csv"', CacheControl="max-age=60",
    )
    assert put["ETag"] == _md5(body)
    assert (emulator.paths.s3 / bucket / "data" / "train.csv").read_bytes() == body

    got = s3.get_object(Bucket=bucket, Key="data/train.csv")
    assert got["Body"].read() == body
    assert got["ETag"] == _md5(body)
    assert got["ContentType"] == "text/csv"
    assert got["ContentLength"] == len(body)
    assert got["Metadata"] == {"owner": "learner", "run": "42"}
    assert got["ContentEncoding"] == "identity"
    assert got["ContentDisposition"] == 'attachment; filename="train.csv"'
    assert got["CacheControl"] == "max-age=60"
    assert isinstance(got["LastModified"], dt.datetime)

    head = s3.head_object(Bucket=bucket, Key="data/train.csv")
    assert head["ContentLength"] == len(body)
    assert head["Metadata"] == {"owner": "learner", "run": "42"}
    assert head["AcceptRanges"] == "bytes"

    s3.put_object(Bucket=bucket, Key="plain", Body=b"")
    plain = s3.get_object(Bucket=bucket, Key="plain", ResponseContentType="application/json")
    assert plain["Body"].read() == b""
    assert plain["ContentType"] == "application/json"  # response-content-type override
    assert s3.head_object(Bucket=bucket, Key="plain")["ContentType"] == "binary/octet-stream"


def test_overwrite_and_checksums(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"first")
    put = s3.put_object(Bucket=bucket, Key="k", Body=b"second", ChecksumAlgorithm="SHA256")
    assert put["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(b"second").digest()).decode()
    got = s3.get_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert got["Body"].read() == b"second"  # botocore validated the echoed checksum while reading
    assert got["ChecksumSHA256"] == put["ChecksumSHA256"]


def test_content_md5_and_sha256_are_verified(s3, bucket, client):
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="md5", Body=b"payload",
                      ContentMD5=base64.b64encode(hashlib.md5(b"other").digest()).decode())
    assert _error(exc) == ("BadDigest", 400)
    ok = s3.put_object(Bucket=bucket, Key="md5", Body=b"payload",
                       ContentMD5=base64.b64encode(hashlib.md5(b"payload").digest()).decode())
    assert ok["ETag"] == _md5(b"payload")

    tamperer = client("s3")

    def tamper(request, **_):  # change the body after it was signed (same length)
        request.body = b"PAYLOAD"

    tamperer.meta.events.register("before-send.s3.PutObject", tamper)
    with pytest.raises(ClientError) as exc:
        tamperer.put_object(Bucket=bucket, Key="sha", Body=b"payload")
    assert _error(exc) == ("XAmzContentSHA256Mismatch", 400)
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="sha")  # nothing was stored


def test_ranges(s3, bucket):
    body = bytes(range(100))
    s3.put_object(Bucket=bucket, Key="r", Body=body)
    cases = {"bytes=0-9": (0, 9), "bytes=90-": (90, 99), "bytes=-5": (95, 99), "bytes=95-200": (95, 99)}
    for header, (start, end) in cases.items():
        got = s3.get_object(Bucket=bucket, Key="r", Range=header)
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206, header
        assert got["ContentRange"] == f"bytes {start}-{end}/100"
        assert got["ContentLength"] == end - start + 1
        assert got["Body"].read() == body[start : end + 1]
    for header in ("bytes=100-", "bytes=200-300", "bytes=-0"):
        with pytest.raises(ClientError) as exc:
            s3.get_object(Bucket=bucket, Key="r", Range=header)
        assert _error(exc) == ("InvalidRange", 416), header
    whole = s3.get_object(Bucket=bucket, Key="r", Range="lines=1-2")  # not a byte range: ignored
    assert whole["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert whole["Body"].read() == body


def test_conditional_requests(s3, bucket):
    etag = s3.put_object(Bucket=bucket, Key="c", Body=b"cond")["ETag"]
    past = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    future = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)

    assert s3.get_object(Bucket=bucket, Key="c", IfMatch=etag)["Body"].read() == b"cond"
    assert s3.get_object(Bucket=bucket, Key="c", IfModifiedSince=past)["Body"].read() == b"cond"
    assert s3.get_object(Bucket=bucket, Key="c", IfNoneMatch='"other"')["Body"].read() == b"cond"
    for kwargs, expected in (
        ({"IfMatch": '"nope"'}, ("PreconditionFailed", 412)),
        ({"IfUnmodifiedSince": past}, ("PreconditionFailed", 412)),
        ({"IfNoneMatch": etag}, ("304", 304)),
        ({"IfModifiedSince": future}, ("304", 304)),
    ):
        with pytest.raises(ClientError) as exc:
            s3.get_object(Bucket=bucket, Key="c", **kwargs)
        assert _error(exc) == expected, kwargs
        with pytest.raises(ClientError) as exc:
            s3.head_object(Bucket=bucket, Key="c", **kwargs)
        assert _error(exc)[1] == expected[1]
    # the connection stays usable after a bodiless 304
    assert s3.get_object(Bucket=bucket, Key="c")["Body"].read() == b"cond"

    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="c", Body=b"new", IfNoneMatch="*")
    assert _error(exc) == ("PreconditionFailed", 412)
    s3.put_object(Bucket=bucket, Key="c", Body=b"new", IfMatch=etag)
    assert s3.get_object(Bucket=bucket, Key="c")["Body"].read() == b"new"


def test_missing_things(s3, bucket):
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="nope/missing.txt")
    assert _error(exc) == ("NoSuchKey", 404)
    assert exc.value.response["Error"]["Key"] == "nope/missing.txt"
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="missing")
    assert _error(exc) == ("404", 404)
    missing_bucket = f"missing-{uuid.uuid4().hex[:8]}"
    for call in (
        lambda: s3.get_object(Bucket=missing_bucket, Key="k"),
        lambda: s3.put_object(Bucket=missing_bucket, Key="k", Body=b"x"),
        lambda: s3.list_objects_v2(Bucket=missing_bucket),
    ):
        with pytest.raises(ClientError) as exc:
            call()
        assert _error(exc) == ("NoSuchBucket", 404)
        assert exc.value.response["Error"]["BucketName"] == missing_bucket
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="k" * 1025, Body=b"x")
    assert _error(exc) == ("KeyTooLongError", 400)


def test_delete_object_and_batch_delete(s3, bucket, emulator):
    s3.delete_object(Bucket=bucket, Key="never-existed")  # idempotent
    for key in ("d/1", "d/2", "d/sub/3", "keep"):
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    response = s3.delete_object(Bucket=bucket, Key="keep")
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 204

    result = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "d/1"}, {"Key": "d/sub/3"},
                                                                  {"Key": "ghost"}]})
    assert sorted(d["Key"] for d in result["Deleted"]) == ["d/1", "d/sub/3", "ghost"]
    assert "Errors" not in result
    assert not (emulator.paths.s3 / bucket / "d" / "sub").exists()  # empty "folders" vanish with their keys

    quiet = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "d/2"}], "Quiet": True})
    assert "Deleted" not in quiet
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    assert os.listdir(emulator.paths.s3 / bucket) == []


def test_copy_object(s3, bucket):
    other = f"copy-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=other)
    src_key = "src dir/ü+%.bin"
    etag = s3.put_object(Bucket=bucket, Key=src_key, Body=b"copy me", ContentType="text/x-src",
                         Metadata={"a": "1"})["ETag"]

    copied = s3.copy_object(Bucket=other, Key="dst/one", CopySource={"Bucket": bucket, "Key": src_key})
    assert copied["CopyObjectResult"]["ETag"] == etag
    head = s3.head_object(Bucket=other, Key="dst/one")
    assert (head["ContentType"], head["Metadata"]) == ("text/x-src", {"a": "1"})

    replaced = s3.copy_object(Bucket=other, Key="dst/two", CopySource=f"{bucket}/{src_key}?versionId=null",
                              MetadataDirective="REPLACE", ContentType="text/plain", Metadata={"b": "2"})
    assert isinstance(replaced["CopyObjectResult"]["LastModified"], dt.datetime)
    head = s3.head_object(Bucket=other, Key="dst/two")
    assert (head["ContentType"], head["Metadata"]) == ("text/plain", {"b": "2"})
    assert s3.get_object(Bucket=other, Key="dst/two")["Body"].read() == b"copy me"

    # in place with new metadata is allowed; without any change it is not
    s3.copy_object(Bucket=bucket, Key=src_key, CopySource={"Bucket": bucket, "Key": src_key},
                   MetadataDirective="REPLACE", Metadata={"c": "3"})
    assert s3.head_object(Bucket=bucket, Key=src_key)["Metadata"] == {"c": "3"}
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key=src_key, CopySource={"Bucket": bucket, "Key": src_key})
    assert _error(exc) == ("InvalidRequest", 400)
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=other, Key="x", CopySource={"Bucket": bucket, "Key": "missing"})
    assert _error(exc) == ("NoSuchKey", 404)
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=other, Key="x", CopySource={"Bucket": bucket, "Key": src_key},
                       CopySourceIfMatch='"different"')
    assert _error(exc) == ("PreconditionFailed", 412)


# ---------------------------------------------------------------- listing
def _keys(pages, field="Contents", name="Key"):
    return [item[name] for page in pages for item in page.get(field, [])]


def test_list_objects_v2_pagination_prefix_delimiter(s3, bucket):
    keys = ["a.txt", "a/1", "a/2", "a/b/3", "a0", "b/1", "b/2", "c", "c/d/e", "z z/+%é"]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    assert sorted(keys, key=lambda k: k.encode()) == keys

    paginator = s3.get_paginator("list_objects_v2")
    pages = list(paginator.paginate(Bucket=bucket, PaginationConfig={"PageSize": 2}))
    assert len(pages) == 5
    assert _keys(pages) == keys
    assert all(p["KeyCount"] <= 2 for p in pages)
    assert pages[0]["IsTruncated"] and not pages[-1]["IsTruncated"]

    pages = list(paginator.paginate(Bucket=bucket, Delimiter="/", PaginationConfig={"PageSize": 2}))
    assert _keys(pages) == ["a.txt", "a0", "c"]
    assert _keys(pages, "CommonPrefixes", "Prefix") == ["a/", "b/", "c/", "z z/"]

    one = s3.list_objects_v2(Bucket=bucket, Prefix="a/", Delimiter="/")
    assert [c["Key"] for c in one["Contents"]] == ["a/1", "a/2"]
    assert one["CommonPrefixes"] == [{"Prefix": "a/b/"}]
    assert one["KeyCount"] == 3

    partial = s3.list_objects_v2(Bucket=bucket, Prefix="a")
    assert [c["Key"] for c in partial["Contents"]] == ["a.txt", "a/1", "a/2", "a/b/3", "a0"]
    after = s3.list_objects_v2(Bucket=bucket, StartAfter="a/2", MaxKeys=3)
    assert [c["Key"] for c in after["Contents"]] == ["a/b/3", "a0", "b/1"]
    assert after["StartAfter"] == "a/2"
    assert s3.list_objects_v2(Bucket=bucket, Prefix="nothing")["KeyCount"] == 0

    entry = s3.list_objects_v2(Bucket=bucket, Prefix="z z/", FetchOwner=True)["Contents"][0]
    assert entry["Key"] == "z z/+%é"
    assert (entry["Size"], entry["ETag"], entry["StorageClass"]) == (1, _md5(b"x"), "STANDARD")
    assert entry["Owner"]["ID"]

    with pytest.raises(ClientError) as exc:
        s3.list_objects_v2(Bucket=bucket, ContinuationToken="garbage!")
    assert _error(exc) == ("InvalidArgument", 400)


def test_list_encoding_type_url_on_the_wire(s3, bucket, client):
    s3.put_object(Bucket=bucket, Key="dir one/a+b%c é.txt", Body=b"x")
    raw: list[bytes] = []
    spy = client("s3")
    spy.meta.events.register("before-parse.s3.ListObjectsV2", lambda response_dict, **_: raw.append(
        response_dict["body"]))
    listing = spy.list_objects_v2(Bucket=bucket, Delimiter="/", Prefix="dir one/")
    assert listing["Contents"][0]["Key"] == "dir one/a+b%c é.txt"
    assert listing["Prefix"] == "dir one/"
    body = raw[0].decode()
    assert "<EncodingType>url</EncodingType>" in body
    assert "<Key>dir+one/a%2Bb%25c+%C3%A9.txt</Key>" in body


def test_list_objects_v1(s3, bucket):
    for key in ("p/1", "p/2", "q/1", "r", "s"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"v1")
    first = s3.list_objects(Bucket=bucket, Delimiter="/", MaxKeys=2)
    assert first["IsTruncated"]
    assert first["CommonPrefixes"] == [{"Prefix": "p/"}, {"Prefix": "q/"}]
    assert first["NextMarker"] == "q/"
    second = s3.list_objects(Bucket=bucket, Delimiter="/", Marker=first["NextMarker"])
    assert [c["Key"] for c in second["Contents"]] == ["r", "s"]
    assert not second["IsTruncated"]
    assert second["Contents"][0]["Owner"]["ID"]

    pages = list(s3.get_paginator("list_objects").paginate(Bucket=bucket, PaginationConfig={"PageSize": 2}))
    assert _keys(pages) == ["p/1", "p/2", "q/1", "r", "s"]
    assert s3.list_objects(Bucket=bucket, Prefix="p/", Marker="p/1")["Contents"][0]["Key"] == "p/2"


# ---------------------------------------------------------------- keys that are not plain paths
def test_traversal_keys_stay_inside_the_store(s3, bucket, emulator):
    outside = emulator.paths.root.parent
    before = _files_under(outside)
    keys = ["../../etc/passwd", "a/../../x", "/abs", "../escape.txt", "..", ".", "./dot", "a//b", "//",
            "../" + bucket + "2/k", "\\..\\win.txt"]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=f"content of {key}".encode())
    created = _files_under(outside) - before
    store = str(emulator.paths.s3) + os.sep
    assert created and all(path.startswith(store) for path in created), created
    assert not (emulator.paths.s3 / "etc").exists()
    assert not (emulator.paths.s3 / "x").exists()
    assert not (emulator.paths.s3 / "escape.txt").exists()
    assert not (emulator.paths.s3 / f"{bucket}2").exists()
    assert not Path("/abs").exists()
    for key in keys:
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == f"content of {key}".encode()
    listed = _keys(s3.get_paginator("list_objects_v2").paginate(Bucket=bucket))
    assert listed == sorted(keys, key=lambda k: k.encode())
    s3.copy_object(Bucket=bucket, Key="copied", CopySource={"Bucket": bucket, "Key": "../../etc/passwd"})
    assert s3.get_object(Bucket=bucket, Key="copied")["Body"].read() == b"content of ../../etc/passwd"
    for key in keys:
        s3.delete_object(Bucket=bucket, Key=key)
    assert [c["Key"] for c in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["copied"]
    assert _files_under(outside) - before <= {p for p in _files_under(emulator.paths.s3)}

    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="nul\x00byte", Body=b"x")
    assert _error(exc) == ("InvalidArgument", 400)


def test_special_characters_and_folder_markers(s3, bucket, emulator):
    root = emulator.paths.s3 / bucket
    weird = "with space/ünïcødé + plus %41 percent?#&=.txt"
    s3.put_object(Bucket=bucket, Key=weird, Body=b"weird")
    assert (root / weird).read_bytes() == b"weird"  # natural keys are plain files
    assert s3.get_object(Bucket=bucket, Key=weird)["Body"].read() == b"weird"
    assert s3.list_objects_v2(Bucket=bucket, Prefix="with space/")["Contents"][0]["Key"] == weird

    s3.put_object(Bucket=bucket, Key="folder/", Body=b"")
    assert (root / "folder").is_dir()  # an empty folder marker shows up as a directory
    listing = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert {"Prefix": "folder/"} in listing["CommonPrefixes"]
    assert [c["Key"] for c in s3.list_objects_v2(Bucket=bucket, Prefix="folder/")["Contents"]] == ["folder/"]
    assert s3.head_object(Bucket=bucket, Key="folder/")["ContentLength"] == 0
    s3.put_object(Bucket=bucket, Key="folder/inside.txt", Body=b"in")
    s3.delete_object(Bucket=bucket, Key="folder/inside.txt")
    assert (root / "folder").is_dir()  # still marked
    s3.delete_object(Bucket=bucket, Key="folder/")
    assert not (root / "folder").exists()

    # a key and a "directory" of the same name coexist
    s3.put_object(Bucket=bucket, Key="model", Body=b"file")
    s3.put_object(Bucket=bucket, Key="model/weights.bin", Body=b"nested")
    s3.put_object(Bucket=bucket, Key="other/x", Body=b"dir first")
    s3.put_object(Bucket=bucket, Key="other", Body=b"then file")
    for key, body in (("model", b"file"), ("model/weights.bin", b"nested"), ("other/x", b"dir first"),
                      ("other", b"then file")):
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body
    keys = [c["Key"] for c in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["model", "model/weights.bin", "other", "other/x", weird]
    s3.put_object(Bucket=bucket, Key="nonempty-marker/", Body=b"not empty")
    assert s3.get_object(Bucket=bucket, Key="nonempty-marker/")["Body"].read() == b"not empty"


def test_files_changed_on_disk_are_objects(s3, bucket, emulator):
    root = emulator.paths.s3 / bucket
    (root / "dropped").mkdir()
    (root / "dropped" / "notes.txt").write_bytes(b"from jupyter")
    head = s3.head_object(Bucket=bucket, Key="dropped/notes.txt")
    assert head["ETag"] == _md5(b"from jupyter")
    s3.put_object(Bucket=bucket, Key="edited", Body=b"v1", ContentType="text/plain")
    (root / "edited").write_bytes(b"edited by hand")
    got = s3.get_object(Bucket=bucket, Key="edited")
    assert (got["Body"].read(), got["ETag"]) == (b"edited by hand", _md5(b"edited by hand"))
    assert [c["Key"] for c in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["dropped/notes.txt", "edited"]


def test_concurrent_writers(s3, bucket):
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            for round_ in range(5):
                s3.put_object(Bucket=bucket, Key=f"own/{index}", Body=f"{index}-{round_}".encode())
                s3.put_object(Bucket=bucket, Key="shared", Body=f"{index}-{round_}".encode() * 1000)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for index in range(6):
        assert s3.get_object(Bucket=bucket, Key=f"own/{index}")["Body"].read() == f"{index}-4".encode()
    shared = s3.get_object(Bucket=bucket, Key="shared")
    assert shared["ETag"] == _md5(shared["Body"].read())


# ---------------------------------------------------------------- multipart
def test_upload_file_and_download_file_multipart(s3, bucket, tmp_path, emulator):
    source = tmp_path / "big.bin"
    data = os.urandom(20 * MB)
    source.write_bytes(data)
    config = TransferConfig(multipart_threshold=5 * MB, multipart_chunksize=5 * MB)
    s3.upload_file(str(source), bucket, "datasets/big.bin", Config=config)

    head = s3.head_object(Bucket=bucket, Key="datasets/big.bin")
    part_md5s = b"".join(hashlib.md5(data[i : i + 5 * MB]).digest() for i in range(0, len(data), 5 * MB))
    assert head["ETag"] == f'"{hashlib.md5(part_md5s).hexdigest()}-4"'
    assert head["ContentLength"] == len(data)
    assert (emulator.paths.s3 / bucket / "datasets" / "big.bin").read_bytes() == data
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    part2 = s3.head_object(Bucket=bucket, Key="datasets/big.bin", PartNumber=2)
    assert (part2["PartsCount"], part2["ContentLength"]) == (4, 5 * MB)

    target = tmp_path / "back.bin"
    s3.download_file(bucket, "datasets/big.bin", str(target), Config=config)
    assert target.read_bytes() == data
    assert [c["Key"] for c in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["datasets/big.bin"]


def test_multipart_low_level(s3, bucket):
    key = "mp/object.bin"
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key, ContentType="application/x-test",
                                        Metadata={"m": "1"})
    upload_id = upload["UploadId"]
    part1, part2 = os.urandom(5 * MB), b"tail"
    e1 = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=part1)["ETag"]
    e2 = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=2, Body=part2)["ETag"]
    assert e1 == _md5(part1)

    parts = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id)
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in parts["Parts"]] == [(1, e1, 5 * MB), (2, e2, 4)]
    page = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id, MaxParts=1)
    assert page["IsTruncated"] and page["NextPartNumberMarker"] == 1
    uploads = s3.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert [(u["Key"], u["UploadId"]) for u in uploads] == [(key, upload_id)]
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0  # parts are not objects

    def complete(parts_list):
        return s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id,
                                            MultipartUpload={"Parts": parts_list})

    with pytest.raises(ClientError) as exc:
        complete([{"PartNumber": 2, "ETag": e2}, {"PartNumber": 1, "ETag": e1}])
    assert _error(exc) == ("InvalidPartOrder", 400)
    with pytest.raises(ClientError) as exc:
        complete([{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": '"0000"'}])
    assert _error(exc) == ("InvalidPart", 400)
    with pytest.raises(ClientError) as exc:
        complete([{"PartNumber": 1, "ETag": e1}, {"PartNumber": 3, "ETag": e2}])
    assert _error(exc) == ("InvalidPart", 400)

    done = complete([{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}])
    assert done["ETag"].endswith('-2"') and done["Key"] == key
    got = s3.get_object(Bucket=bucket, Key=key)
    assert got["Body"].read() == part1 + part2
    assert (got["ContentType"], got["Metadata"]) == ("application/x-test", {"m": "1"})
    with pytest.raises(ClientError) as exc:
        s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id)
    assert _error(exc) == ("NoSuchUpload", 404)

    small = s3.create_multipart_upload(Bucket=bucket, Key="small")["UploadId"]
    t1 = s3.upload_part(Bucket=bucket, Key="small", UploadId=small, PartNumber=1, Body=b"a")["ETag"]
    t2 = s3.upload_part(Bucket=bucket, Key="small", UploadId=small, PartNumber=2, Body=b"b")["ETag"]
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(Bucket=bucket, Key="small", UploadId=small, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": t1}, {"PartNumber": 2, "ETag": t2}]})
    assert _error(exc) == ("EntityTooSmall", 400)
    s3.abort_multipart_upload(Bucket=bucket, Key="small", UploadId=small)
    for call in (
        lambda: s3.upload_part(Bucket=bucket, Key="small", UploadId=small, PartNumber=3, Body=b"c"),
        lambda: s3.abort_multipart_upload(Bucket=bucket, Key="small", UploadId=small),
        lambda: s3.abort_multipart_upload(Bucket=bucket, Key="small", UploadId="../../etc"),
    ):
        with pytest.raises(ClientError) as exc:
            call()
        assert _error(exc) == ("NoSuchUpload", 404)
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_upload_part_copy(s3, bucket):
    data = os.urandom(6 * MB)
    s3.put_object(Bucket=bucket, Key="source", Body=data)
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="assembled")["UploadId"]
    first = s3.upload_part_copy(Bucket=bucket, Key="assembled", UploadId=upload_id, PartNumber=1,
                                CopySource={"Bucket": bucket, "Key": "source"})
    second = s3.upload_part_copy(Bucket=bucket, Key="assembled", UploadId=upload_id, PartNumber=2,
                                 CopySource={"Bucket": bucket, "Key": "source"}, CopySourceRange="bytes=0-9")
    s3.complete_multipart_upload(Bucket=bucket, Key="assembled", UploadId=upload_id, MultipartUpload={"Parts": [
        {"PartNumber": 1, "ETag": first["CopyPartResult"]["ETag"]},
        {"PartNumber": 2, "ETag": second["CopyPartResult"]["ETag"]}]})
    assert s3.get_object(Bucket=bucket, Key="assembled")["Body"].read() == data + data[:10]


# ---------------------------------------------------------------- the internal API
def test_internal_store_api(emulator, s3, tmp_path):
    store = emulator.s3.store
    name = f"internal-{uuid.uuid4().hex[:8]}"
    assert not store.bucket_exists(name)
    store.create_bucket(name)
    assert store.bucket_exists(name)
    store.create_bucket(name)  # idempotent for the runtime

    source = tmp_path / "model.tar.gz"
    source.write_bytes(b"model bytes")
    etag = store.put_file(name, "output/model.tar.gz", source, content_type="application/x-tar")
    assert etag == _md5(b"model bytes") and source.exists()
    moved = tmp_path / "moved.bin"
    moved.write_bytes(b"moved")
    assert store.put_file(name, "output/moved.bin", moved, move=True) == _md5(b"moved")
    assert not moved.exists()

    path = store.object_path(name, "output/model.tar.gz")
    assert path.read_bytes() == b"model bytes"
    assert path == emulator.paths.s3 / name / "output" / "model.tar.gz"
    with pytest.raises(KeyError):
        store.object_path(name, "output/none")
    with pytest.raises(NoSuchKey):
        store.object_path(name, "output/none")

    infos = store.list_objects(name, "output/")
    assert [(i.key, i.size, i.etag) for i in infos] == [("output/model.tar.gz", 11, etag),
                                                        ("output/moved.bin", 5, _md5(b"moved"))]
    assert infos[0].path.read_bytes() == b"model bytes"
    assert isinstance(infos[0].last_modified, dt.datetime)
    head = s3.head_object(Bucket=name, Key="output/model.tar.gz")
    assert (head["ETag"], head["ContentType"]) == (etag, "application/x-tar")

    fresh = S3Store(emulator.paths.s3)  # everything is on disk: a restarted emulator sees the same objects
    assert fresh.head(name, "output/model.tar.gz").content_type == "application/x-tar"

    assert parse_s3_uri("s3://bucket/some/key.csv") == ("bucket", "some/key.csv")
    assert store.parse_s3_uri("s3://bucket") == ("bucket", "")
    with pytest.raises(ValueError):
        parse_s3_uri("https://bucket/key")


def test_restart_sweeps_write_files_a_crash_left_behind(tmp_path):
    store = S3Store(tmp_path / "s3")
    store.create_bucket("sweep-me")
    upload = store.create_upload("sweep-me", "mp", {})
    old = time.time() - 3600
    stale = [tmp_path / "s3" / "sweep-me" / ".s3emu-tmp-dead", tmp_path / "s3" / ".uploads" / "sweep-me" / upload /
             ".s3emu-tmp-dead"]
    live = tmp_path / "s3" / "sweep-me" / ".s3emu-tmp-live"
    for path in [*stale, live]:
        path.write_bytes(b"half a body")
    for path in stale:
        os.utime(path, (old, old))
    learner_file = tmp_path / "s3" / "sweep-me" / "notes.txt"
    learner_file.write_bytes(b"mine")
    os.utime(learner_file, (old, old))

    S3Store(tmp_path / "s3")  # what a restarted daemon does
    assert not any(path.exists() for path in stale)
    assert live.exists() and learner_file.exists()  # an in-flight write and a learner's file are left alone
    assert store.get_upload("sweep-me", "mp", upload).key == "mp"


# ---------------------------------------------------------------- the AWS CLI
def test_aws_cli_cp_ls_sync(emulator, bucket, tmp_path, s3):
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "PATH": os.environ.get("PATH", ""), "HOME": str(home),
        "AWS_ENDPOINT_URL": emulator.endpoint_url,
        "AWS_ACCESS_KEY_ID": emulator.credentials.access_key,
        "AWS_SECRET_ACCESS_KEY": emulator.credentials.secret_key,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(home / "config"), "AWS_SHARED_CREDENTIALS_FILE": str(home / "credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    aws = str(Path(sys.executable).parent / "aws")

    def run(*args: str) -> str:
        result = subprocess.run([aws, *args], env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        return result.stdout

    local = tmp_path / "local"
    (local / "sub dir").mkdir(parents=True)
    (local / "a.txt").write_text("alpha")
    (local / "sub dir" / "b+c.csv").write_text("1,2\n")
    (local / "big.bin").write_bytes(os.urandom(9 * MB))  # above the CLI's 8 MB multipart threshold

    run("s3", "cp", str(local / "a.txt"), f"s3://{bucket}/single/a.txt")
    assert s3.get_object(Bucket=bucket, Key="single/a.txt")["Body"].read() == b"alpha"
    run("s3", "sync", str(local), f"s3://{bucket}/synced/")
    keys = [c["Key"] for c in s3.list_objects_v2(Bucket=bucket, Prefix="synced/")["Contents"]]
    assert keys == ["synced/a.txt", "synced/big.bin", "synced/sub dir/b+c.csv"]
    assert s3.head_object(Bucket=bucket, Key="synced/big.bin")["ETag"].endswith('-2"')

    listing = run("s3", "ls", f"s3://{bucket}/synced/")
    assert "PRE sub dir/" in listing and "a.txt" in listing
    recursive = run("s3", "ls", "--recursive", f"s3://{bucket}/")
    assert "synced/sub dir/b+c.csv" in recursive
    assert bucket in run("s3", "ls")

    back = tmp_path / "back"
    run("s3", "sync", f"s3://{bucket}/synced/", str(back))
    assert (back / "sub dir" / "b+c.csv").read_text() == "1,2\n"
    assert (back / "big.bin").read_bytes() == (local / "big.bin").read_bytes()
    assert "upload" not in run("s3", "sync", str(local), f"s3://{bucket}/synced/")  # nothing changed
    run("s3", "cp", f"s3://{bucket}/single/a.txt", str(tmp_path / "a-copy.txt"))
    assert (tmp_path / "a-copy.txt").read_text() == "alpha"


def test_get_object_streams_large_bodies(s3, bucket):
    data = os.urandom(3 * MB + 17)
    s3.upload_fileobj(io.BytesIO(data), bucket, "stream.bin")
    body = s3.get_object(Bucket=bucket, Key="stream.bin")["Body"]
    chunks = list(iter(lambda: body.read(MB), b""))
    assert b"".join(chunks) == data


def test_https_virtual_hosted_streaming_upload_with_trailing_checksum(emulator):
    """What a notebook routed through the emulator's HTTPS proxy does: bucket.s3.amazonaws.com,
    ``aws-chunked`` bodies and an unsigned CRC32 trailer."""
    s3 = boto3.client(
        "s3", region_name="us-east-1", endpoint_url="https://s3.us-east-1.amazonaws.com",
        aws_access_key_id=emulator.credentials.access_key,
        aws_secret_access_key=emulator.credentials.secret_key, verify=str(emulator.ca.cert_path),
        config=botocore.config.Config(proxies={"https": emulator.endpoint_url}, retries={"max_attempts": 1}),
    )
    name = f"https-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)
    body = b"streamed " * 50000
    put = s3.put_object(Bucket=name, Key="k/x.bin", Body=io.BytesIO(body))
    assert put["ChecksumCRC32"] == base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
    assert put["ETag"] == _md5(body)
    assert s3.get_object(Bucket=name, Key="k/x.bin", ChecksumMode="ENABLED")["Body"].read() == body
    assert (emulator.paths.s3 / name / "k" / "x.bin").read_bytes() == body
