"""S3 under attack: lying digests, truncated and unbounded bodies, absurd ranges, bad XML, escaping keys.

Every request here is written by the raw-socket client (no botocore to tidy it up). Each test checks
the AWS error code and status, that nothing was committed (no object, no part, no temp file), and,
through ``still_serving``, that the daemon keeps answering every service afterwards.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import time
import tracemalloc
import uuid
import zlib
from pathlib import Path

import pytest
from rawclient import RawClient, RawResponse, read_response

from sagemaker_emulator.services import s3 as s3_service
from sagemaker_emulator.services import s3checksums

MB = 1024 * 1024
UNSIGNED = "UNSIGNED-PAYLOAD"
TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"


# ---------------------------------------------------------------- helpers
@pytest.fixture
def bucket(s3) -> str:
    name = f"hostile-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def store(emulator) -> Path:
    return emulator.paths.s3


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def crc32(data: bytes) -> str:
    return b64(zlib.crc32(data).to_bytes(4, "big"))


def md5(data: bytes) -> str:
    return b64(hashlib.md5(data).digest())


def put(raw: RawClient, path: str, body: bytes, headers: dict[str, str] | None = None, **kwargs) -> RawResponse:
    return raw.request("PUT", path, service="s3", body=body, headers=headers, **kwargs)


def head_status(raw: RawClient, path: str) -> int:
    """Whether the object exists (by GET: ``read_response`` cannot know that a HEAD answer has no body)."""
    return raw.request("GET", path, service="s3").status


def temp_files(root: Path) -> list[str]:
    return [os.path.join(d, f) for d, _, files in os.walk(root) for f in files if f.startswith(".s3emu-tmp")]


def message(resp: RawResponse) -> str:
    text = resp.body.decode("utf-8", "replace")
    return text.split("<Message>", 1)[1].split("</Message>", 1)[0] if "<Message>" in text else ""


def assert_error(resp: RawResponse, status: int, code: str) -> None:
    assert (resp.status, resp.error_code) == (status, code), resp.body[:500]


def create_upload(raw: RawClient, bucket: str, key: str) -> str:
    resp = raw.request("POST", f"/{bucket}/{key}", query="uploads=", service="s3")
    assert resp.status == 200, resp.body
    return resp.body.decode().split("<UploadId>", 1)[1].split("</UploadId>", 1)[0]


def parts_of(raw: RawClient, bucket: str, key: str, upload_id: str) -> str:
    resp = raw.request("GET", f"/{bucket}/{key}", query=f"uploadId={upload_id}", service="s3")
    assert resp.status == 200, resp.body  # the upload itself survived the attack
    return resp.body.decode()


def head_bytes(raw: RawClient, method: str, path: str, headers: dict[str, str], query: str = "",
               payload_hash: str = UNSIGNED) -> bytes:
    """A signed request head exactly as given: no Content-Length is added unless ``headers`` has one."""
    signed = raw.sign(method, path, service="s3", query=query, headers={"Host": raw.host_header, **headers},
                      payload_hash=payload_hash)
    target = path + (f"?{query}" if query else "")
    return (f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in signed.items())
            + "\r\n").encode("latin-1")


def aws_chunked(data: bytes, trailers: dict[str, str]) -> bytes:
    """An ``aws-chunked`` body (unsigned chunks) with the given trailers, as botocore frames it."""
    out = f"{len(data):x}\r\n".encode() + data + b"\r\n" if data else b""
    out += b"0\r\n" + "".join(f"{k}:{v}\r\n" for k, v in trailers.items()).encode() + b"\r\n"
    return out


def chunked_put(raw: RawClient, path: str, data: bytes, trailers: dict[str, str], announce: str,
                query: str = "") -> RawResponse:
    body = aws_chunked(data, trailers)
    headers = {"Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": str(len(data)),
               "x-amz-trailer": announce, "Content-Length": str(len(body))}
    return raw.send_bytes(head_bytes(raw, "PUT", path, headers, query, payload_hash=TRAILER) + body)


def wait_for(condition, limit: float = 5.0) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


# ---------------------------------------------------------------- Content-MD5
@pytest.mark.parametrize("value", ["abc", "!!!!", b64(b"x" * 15), b64(b"x" * 17), "", "  ", "AAAA" * 100])
def test_malformed_content_md5_is_invalid_digest(raw, bucket, value, still_serving):
    resp = put(raw, f"/{bucket}/k", b"payload", {"Content-MD5": value})
    assert_error(resp, 400, "InvalidDigest")
    assert message(resp) == "The Content-MD5 you specified was invalid."
    assert head_status(raw, f"/{bucket}/k") == 404


def test_wrong_content_md5_is_bad_digest_and_keeps_the_old_object(raw, bucket, still_serving):
    assert put(raw, f"/{bucket}/k", b"original").status == 200
    resp = put(raw, f"/{bucket}/k", b"replaced", {"Content-MD5": md5(b"something else")})
    assert_error(resp, 400, "BadDigest")
    assert message(resp) == "The Content-MD5 you specified did not match what we received."
    assert raw.request("GET", f"/{bucket}/k", service="s3").body == b"original"


# ---------------------------------------------------------------- x-amz-checksum-* headers
@pytest.mark.parametrize("algorithm, digest", [
    ("CRC32", lambda d: zlib.crc32(d).to_bytes(4, "big")),
    ("SHA1", lambda d: hashlib.sha1(d).digest()),
    ("SHA256", lambda d: hashlib.sha256(d).digest()),
])
def test_checksum_header_mismatch_is_bad_digest(raw, bucket, algorithm, digest, still_serving):
    name = f"x-amz-checksum-{algorithm.lower()}"
    resp = put(raw, f"/{bucket}/k", b"payload", {name: b64(digest(b"tampered"))})
    assert_error(resp, 400, "BadDigest")
    assert message(resp) == f"The {algorithm} you specified did not match the calculated checksum."
    assert head_status(raw, f"/{bucket}/k") == 404
    ok = put(raw, f"/{bucket}/k", b"payload", {name: b64(digest(b"payload"))})
    assert ok.status == 200 and ok.headers[name] == b64(digest(b"payload"))


@pytest.mark.parametrize("name, value", [
    ("x-amz-checksum-crc32", "not base64!"),
    ("x-amz-checksum-crc32", b64(b"12345")),  # five bytes: not a CRC32
    ("x-amz-checksum-sha256", b64(hashlib.sha1(b"payload").digest())),  # a SHA1 under the SHA256 name
    ("x-amz-checksum-sha1", ""),
])
def test_malformed_checksum_header_is_invalid_request(raw, bucket, name, value, still_serving):
    resp = put(raw, f"/{bucket}/k", b"payload", {name: value})
    assert_error(resp, 400, "InvalidRequest")
    assert message(resp) == f"Value for {name} header is invalid."
    assert head_status(raw, f"/{bucket}/k") == 404


def test_two_checksums_or_a_contradicting_algorithm_are_refused(raw, bucket, still_serving):
    both = {"x-amz-checksum-crc32": crc32(b"payload"), "x-amz-checksum-sha1": b64(hashlib.sha1(b"payload").digest())}
    resp = put(raw, f"/{bucket}/k", b"payload", both)
    assert_error(resp, 400, "InvalidRequest")
    assert "Multiple checksum Types are not allowed" in message(resp)
    resp = put(raw, f"/{bucket}/k", b"payload", {"x-amz-sdk-checksum-algorithm": "SHA256",
                                                 "x-amz-checksum-crc32": crc32(b"payload")})
    assert_error(resp, 400, "InvalidRequest")
    resp = put(raw, f"/{bucket}/k", b"payload", {"x-amz-sdk-checksum-algorithm": "MD4"})
    assert_error(resp, 400, "InvalidRequest")
    assert head_status(raw, f"/{bucket}/k") == 404


@pytest.mark.parametrize("algorithm", ["CRC32C", "CRC64NVME"])
def test_checksums_needing_awscrt_are_verified_or_refused_never_trusted(raw, bucket, algorithm, still_serving):
    width = s3checksums.LENGTHS[algorithm]
    resp = put(raw, f"/{bucket}/k", b"payload", {f"x-amz-checksum-{algorithm.lower()}": b64(b"\x01" * width)})
    if s3checksums.computable(algorithm):
        assert_error(resp, 400, "BadDigest")
    else:
        assert_error(resp, 400, "InvalidRequest")
        assert "awscrt" in message(resp)
    assert head_status(raw, f"/{bucket}/k") == 404


# ---------------------------------------------------------------- aws-chunked trailers
def test_trailing_checksum_is_verified(raw, bucket, s3, still_serving):
    data = os.urandom(3000)
    resp = chunked_put(raw, f"/{bucket}/bad", data, {"x-amz-checksum-crc32": crc32(b"other")}, "x-amz-checksum-crc32")
    assert_error(resp, 400, "BadDigest")
    assert head_status(raw, f"/{bucket}/bad") == 404

    resp = chunked_put(raw, f"/{bucket}/good", data, {"x-amz-checksum-crc32": crc32(data)}, "x-amz-checksum-crc32")
    assert resp.status == 200, resp.body
    got = s3.get_object(Bucket=bucket, Key="good", ChecksumMode="ENABLED")
    assert got["Body"].read() == data and got["ChecksumCRC32"] == crc32(data)


def test_announced_trailer_that_never_comes_or_is_garbage(raw, bucket, still_serving):
    resp = chunked_put(raw, f"/{bucket}/k", b"data", {}, "x-amz-checksum-crc32")
    assert_error(resp, 400, "MalformedTrailerError")
    resp = chunked_put(raw, f"/{bucket}/k", b"data", {"x-amz-checksum-crc32": "%%%"}, "x-amz-checksum-crc32")
    assert_error(resp, 400, "InvalidRequest")
    assert head_status(raw, f"/{bucket}/k") == 404


def test_upload_part_digests_are_verified(raw, bucket, store, still_serving):
    upload = create_upload(raw, bucket, "mp")
    query = f"partNumber=1&uploadId={upload}"
    resp = raw.request("PUT", f"/{bucket}/mp", query=query, service="s3", body=b"part",
                       headers={"Content-MD5": md5(b"trap")})
    assert_error(resp, 400, "BadDigest")
    resp = raw.request("PUT", f"/{bucket}/mp", query=query, service="s3", body=b"part",
                       headers={"x-amz-checksum-sha256": b64(hashlib.sha256(b"trap").digest())})
    assert_error(resp, 400, "BadDigest")
    resp = chunked_put(raw, f"/{bucket}/mp", b"part", {"x-amz-checksum-crc32": crc32(b"trap")},
                       "x-amz-checksum-crc32", query=query)
    assert_error(resp, 400, "BadDigest")
    assert "<Part>" not in parts_of(raw, bucket, "mp", upload)
    assert temp_files(store) == []


# ---------------------------------------------------------------- DeleteObjects
def _delete_body(*keys: str) -> bytes:
    objects = "".join(f"<Object><Key>{k}</Key></Object>" for k in keys)
    return f'<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{objects}</Delete>'.encode()


def test_delete_objects_requires_and_verifies_a_digest(raw, bucket, still_serving):
    assert put(raw, f"/{bucket}/keep", b"x").status == 200
    body = _delete_body("keep")
    path = f"/{bucket}"
    resp = raw.request("POST", path, query="delete=", service="s3", body=body)
    assert_error(resp, 400, "InvalidRequest")
    resp = raw.request("POST", path, query="delete=", service="s3", body=body,
                       headers={"Content-MD5": md5(_delete_body("other"))})
    assert_error(resp, 400, "BadDigest")
    resp = raw.request("POST", path, query="delete=", service="s3", body=body,
                       headers={"x-amz-checksum-crc32": crc32(_delete_body("other"))})
    assert_error(resp, 400, "BadDigest")
    resp = raw.request("POST", path, query="delete=", service="s3", body=body,
                       headers={"x-amz-sdk-checksum-algorithm": "CRC32"})  # an algorithm is not a checksum
    assert_error(resp, 400, "InvalidRequest")
    resp = raw.request("POST", path, query="delete=", service="s3", body=body, headers={"Content-MD5": "junk"})
    assert_error(resp, 400, "InvalidDigest")
    assert head_status(raw, f"/{bucket}/keep") == 200  # nothing was deleted by any of them

    resp = raw.request("POST", path, query="delete=", service="s3", body=body,
                       headers={"x-amz-checksum-crc32": crc32(body)})
    assert resp.status == 200 and b"<Deleted>" in resp.body
    assert head_status(raw, f"/{bucket}/keep") == 404


# ---------------------------------------------------------------- truncated and unbounded bodies
def _start_put(raw: RawClient, path: str, declared: int, sent: bytes, query: str = "") -> socket.socket:
    sock = raw.connect()
    sock.sendall(head_bytes(raw, "PUT", path, {"Content-Length": str(declared)}, query) + sent)
    return sock


def test_truncated_put_commits_nothing(raw, bucket, store, still_serving):
    sock = _start_put(raw, f"/{bucket}/big", 1_000_000, b"x" * 1000)
    with sock:
        sock.shutdown(socket.SHUT_WR)  # the client is done: 999,000 bytes will never come
        resp = read_response(sock)
    assert 400 <= resp.status < 500, resp.body
    assert head_status(raw, f"/{bucket}/big") == 404
    assert temp_files(store) == []


def test_abandoned_put_commits_nothing(raw, bucket, store, still_serving):
    sock = _start_put(raw, f"/{bucket}/big", 1_000_000, b"x" * 1000)
    assert wait_for(lambda: temp_files(store / bucket)), "the upload never started writing"
    sock.close()  # hang up mid-body
    assert wait_for(lambda: not temp_files(store)), temp_files(store)
    assert head_status(raw, f"/{bucket}/big") == 404


def test_truncated_upload_part_commits_nothing(raw, bucket, store, still_serving):
    upload = create_upload(raw, bucket, "mp")
    sock = _start_put(raw, f"/{bucket}/mp", 1_000_000, b"x" * 1000, query=f"partNumber=1&uploadId={upload}")
    assert wait_for(lambda: temp_files(store / ".uploads" / bucket))
    sock.close()
    assert wait_for(lambda: not temp_files(store)), temp_files(store)
    assert "<Part>" not in parts_of(raw, bucket, "mp", upload)


@pytest.mark.parametrize("query", ["", "partNumber=1&uploadId={upload}"])
def test_body_without_length_is_411_not_an_empty_object(raw, bucket, query, still_serving):
    upload = create_upload(raw, bucket, "k")
    query = query.format(upload=upload)
    resp = raw.send_bytes(head_bytes(raw, "PUT", f"/{bucket}/k", {}, query))
    assert_error(resp, 411, "MissingContentLength")
    assert message(resp) == "You must provide the Content-Length HTTP header."
    assert head_status(raw, f"/{bucket}/k") == 404
    assert "<Part>" not in parts_of(raw, bucket, "k", upload)


def test_declared_size_over_five_gib_is_refused_before_reading(raw, bucket, still_serving):
    resp = raw.send_bytes(head_bytes(raw, "PUT", f"/{bucket}/huge", {"Content-Length": str(5 * 1024**3 + 1)}))
    assert_error(resp, 400, "EntityTooLarge")
    assert head_status(raw, f"/{bucket}/huge") == 404


def test_chunked_body_past_the_limit_stops_and_commits_nothing(raw, bucket, store, monkeypatch, still_serving):
    monkeypatch.setattr(s3_service, "MAX_PUT_SIZE", MB)
    chunk = b"z" * (256 * 1024)
    body = b"".join(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" for _ in range(8)) + b"0\r\n\r\n"
    resp = raw.send_bytes(head_bytes(raw, "PUT", f"/{bucket}/k", {"Transfer-Encoding": "chunked"}) + body)
    assert_error(resp, 400, "EntityTooLarge")
    assert head_status(raw, f"/{bucket}/k") == 404
    assert temp_files(store) == []


@pytest.mark.parametrize("kind", ["PutObject", "UploadPart"])
def test_large_bodies_stream_in_constant_memory(raw, bucket, kind, still_serving):
    size, chunk = 64 * MB, os.urandom(MB)
    query = f"partNumber=1&uploadId={create_upload(raw, bucket, 'big')}" if kind == "UploadPart" else ""
    digest = hashlib.sha256()
    for _ in range(size // MB):
        digest.update(chunk)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        sock = raw.connect(timeout=60)
        with sock:
            sock.sendall(head_bytes(raw, "PUT", f"/{bucket}/big", {"Content-Length": str(size)}, query,
                                    payload_hash=digest.hexdigest()))
            for _ in range(size // MB):
                sock.sendall(chunk)
            resp = read_response(sock)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert resp.status == 200, resp.body
    assert peak < 16 * MB, f"the server held {peak / MB:.0f} MiB for a {size // MB} MiB body"


# ---------------------------------------------------------------- ranges
RANGES = [
    ("bytes=3-5", 206, b"345"),
    ("bytes=7-", 206, b"789"),
    ("bytes=-2", 206, b"89"),
    ("bytes=0-" + "9" * 400, 206, b"0123456789"),
    ("bytes=-" + "9" * 5000, 206, b"0123456789"),
    ("bytes=5-2", 200, b"0123456789"),
    ("bytes=abc", 200, b"0123456789"),
    ("bytes=0-1,3-4", 200, b"0123456789"),
    ("items=0-1", 200, b"0123456789"),
    ("bytes=--1", 200, b"0123456789"),
    ("bytes=1-2-3", 200, b"0123456789"),
    ("bytes=999999999999-", 416, None),
    ("bytes=10-", 416, None),
    ("bytes=-0", 416, None),
    ("bytes=" + "9" * 400 + "-", 416, None),
    ("bytes=" + "9" * 5000 + "-" + "9" * 5001, 416, None),
]


@pytest.mark.parametrize("header, status, body", RANGES, ids=[r[0][:24] for r in RANGES])
def test_absurd_ranges_are_answered_as_s3_does(raw, bucket, header, status, body, still_serving):
    assert put(raw, f"/{bucket}/digits", b"0123456789").status == 200
    resp = raw.request("GET", f"/{bucket}/digits", service="s3", headers={"Range": header})
    assert resp.status == status, resp.body[:300]
    if status == 416:
        assert resp.error_code == "InvalidRange"
        assert message(resp) == "The requested range is not satisfiable"
        assert b"<ActualObjectSize>10</ActualObjectSize>" in resp.body
        assert raw.request("HEAD", f"/{bucket}/digits", service="s3", headers={"Range": header}).status == 416
        # (a 416 answer carries Content-Length 0 for HEAD, so read_response does not wait for a body)
    else:
        assert resp.body == body


def test_any_range_of_an_empty_object_is_unsatisfiable(raw, bucket, still_serving):
    assert put(raw, f"/{bucket}/empty", b"").status == 200
    resp = raw.request("GET", f"/{bucket}/empty", service="s3", headers={"Range": "bytes=0-"})
    assert_error(resp, 416, "InvalidRange")
    assert raw.request("GET", f"/{bucket}/empty", service="s3", headers={"Range": "bytes=x"}).status == 200


@pytest.mark.parametrize("query, status, code", [
    ("partNumber=0", 400, "InvalidArgument"),
    ("partNumber=10001", 400, "InvalidArgument"),
    ("partNumber=-3", 400, "InvalidArgument"),
    ("partNumber=abc", 400, "InvalidArgument"),
    ("partNumber=" + "9" * 30, 400, "InvalidArgument"),
    ("partNumber=2", 416, "InvalidPartNumber"),
])
def test_bad_part_numbers_on_read(raw, bucket, query, status, code, still_serving):
    assert put(raw, f"/{bucket}/k", b"0123456789").status == 200
    resp = raw.request("GET", f"/{bucket}/k", query=query, service="s3")
    assert_error(resp, status, code)


def test_part_number_and_range_together_are_refused(raw, bucket, still_serving):
    assert put(raw, f"/{bucket}/k", b"0123456789").status == 200
    resp = raw.request("GET", f"/{bucket}/k", query="partNumber=1", service="s3", headers={"Range": "bytes=0-1"})
    assert_error(resp, 400, "InvalidRequest")


# ---------------------------------------------------------------- multipart
def _complete(*parts: str) -> bytes:
    return ("<CompleteMultipartUpload>" + "".join(f"<Part>{p}</Part>" for p in parts)
            + "</CompleteMultipartUpload>").encode()


BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">'.encode() for i in range(1, 10)).replace(
        b"&lol0;", b"&lol;")
    + b']><CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&lol9;</ETag></Part>'
    + b"</CompleteMultipartUpload>"
)
EXTERNAL_ENTITY = (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                   b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&x;</ETag></Part>"
                   b"</CompleteMultipartUpload>")
COMPLETE_BODIES = {
    "non-numeric": (_complete("<PartNumber>one</PartNumber><ETag>{etag}</ETag>"), "MalformedXML"),
    "digit-groups": (_complete("<PartNumber>1_0</PartNumber><ETag>{etag}</ETag>"), "MalformedXML"),
    "5000-digits": (_complete(f"<PartNumber>{'9' * 5000}</PartNumber><ETag>{{etag}}</ETag>"), "MalformedXML"),
    "negative": (_complete("<PartNumber>-1</PartNumber><ETag>{etag}</ETag>"), "InvalidArgument"),
    "zero": (_complete("<PartNumber>0</PartNumber><ETag>{etag}</ETag>"), "InvalidArgument"),
    "over-10000": (_complete("<PartNumber>10001</PartNumber><ETag>{etag}</ETag>"), "InvalidPart"),
    "missing-etag": (_complete("<PartNumber>1</PartNumber>"), "MalformedXML"),
    "empty-etag": (_complete("<PartNumber>1</PartNumber><ETag></ETag>"), "MalformedXML"),
    "missing-number": (_complete("<ETag>{etag}</ETag>"), "MalformedXML"),
    "unknown-part": (_complete("<PartNumber>2</PartNumber><ETag>{etag}</ETag>"), "InvalidPart"),
    "wrong-etag": (_complete('<PartNumber>1</PartNumber><ETag>"0123"</ETag>'), "InvalidPart"),
    "out-of-order": (_complete("<PartNumber>2</PartNumber><ETag>{etag}</ETag>",
                               "<PartNumber>1</PartNumber><ETag>{etag}</ETag>"), "InvalidPartOrder"),
    "duplicate": (_complete("<PartNumber>1</PartNumber><ETag>{etag}</ETag>",
                            "<PartNumber>1</PartNumber><ETag>{etag}</ETag>"), "InvalidPartOrder"),
    "no-parts": (_complete(), "MalformedXML"),
    "not-xml": (b"PartNumber=1", "MalformedXML"),
    "truncated": (_complete("<PartNumber>1</PartNumber><ETag>{etag}</ETag>")[:-10], "MalformedXML"),
    "not-utf8": (b"<CompleteMultipartUpload>\xff\xfe</CompleteMultipartUpload>", "MalformedXML"),
    "deep-nesting": (b"<CompleteMultipartUpload>" + b"<Part>" * 200_000 + b"</Part>" * 200_000
                     + b"</CompleteMultipartUpload>", "MalformedXML"),
    "billion-laughs": (BILLION_LAUGHS, "MalformedXML"),
    "external-entity": (EXTERNAL_ENTITY, "MalformedXML"),
}


@pytest.mark.parametrize("case", list(COMPLETE_BODIES))
def test_complete_multipart_upload_refuses_bad_part_lists(raw, bucket, case, still_serving):
    template, code = COMPLETE_BODIES[case]
    upload = create_upload(raw, bucket, "mp")
    part = raw.request("PUT", f"/{bucket}/mp", query=f"partNumber=1&uploadId={upload}", service="s3", body=b"one")
    etag = part.headers["etag"]
    body = template.replace(b"{etag}", etag.encode())
    started = time.monotonic()
    resp = raw.request("POST", f"/{bucket}/mp", query=f"uploadId={upload}", service="s3", body=body)
    assert time.monotonic() - started < 5
    status = 400
    assert_error(resp, status, code)
    assert b"root:" not in resp.body
    assert head_status(raw, f"/{bucket}/mp") == 404
    assert "<PartNumber>1</PartNumber>" in parts_of(raw, bucket, "mp", upload)  # the upload is intact


@pytest.mark.parametrize("number", ["0", "10001", "-1", "abc", "1.5", "9" * 40])
def test_upload_part_number_out_of_range(raw, bucket, number, still_serving):
    upload = create_upload(raw, bucket, "mp")
    resp = raw.request("PUT", f"/{bucket}/mp", query=f"partNumber={number}&uploadId={upload}", service="s3",
                       body=b"data")
    assert_error(resp, 400, "InvalidArgument")
    assert "<Part>" not in parts_of(raw, bucket, "mp", upload)


@pytest.mark.parametrize("upload_id", ["..%2F..%2F..%2Fetc", "..", "a" * 300, "%00" * 10, "x%0Ay" * 4])
def test_forged_upload_ids_name_no_directory(raw, bucket, upload_id, still_serving):
    resp = raw.request("PUT", f"/{bucket}/mp", query=f"partNumber=1&uploadId={upload_id}", service="s3",
                       body=b"data")
    assert_error(resp, 404, "NoSuchUpload")


# ---------------------------------------------------------------- keys and bucket names
TRAVERSALS = ["%2e%2e/%2e%2e/escape-{tag}", "../../escape-{tag}", "..%2f..%2fescape-{tag}", "%2Fabs-{tag}",
              "/%2e%2e/%2E%2E/escape-{tag}", "a/../../../escape-{tag}", "..%5c..%5cescape-{tag}", ".",
              "%2e", "..", "%2e%2e"]


@pytest.mark.parametrize("raw_key", TRAVERSALS)
def test_escaping_keys_stay_inside_the_bucket(raw, bucket, emulator, raw_key, still_serving):
    tag = uuid.uuid4().hex[:8]
    path = f"/{bucket}/{raw_key.format(tag=tag)}"
    before = {os.path.join(d, f) for d, _, fs in os.walk(emulator.paths.root.parent) for f in fs}
    assert raw.request("GET", path, service="s3").status == 404  # nothing outside is readable through it
    resp = put(raw, path, f"payload {tag}".encode())
    assert resp.status == 200, resp.body
    after = {os.path.join(d, f) for d, _, fs in os.walk(emulator.paths.root.parent) for f in fs}
    created = after - before
    assert created and all(p.startswith(str(emulator.paths.s3 / ".meta") + os.sep)
                           or p.startswith(str(emulator.paths.s3 / bucket) + os.sep)
                           or p.startswith(str(emulator.paths.s3 / ".special" / bucket) + os.sep)
                           for p in created), created
    assert raw.request("GET", path, service="s3").body == f"payload {tag}".encode()


@pytest.mark.parametrize("raw_key", ["..%2f..%2fcredentials.json", "../../credentials.json",
                                     "%2e%2e/%2e%2e/state.db", "..%2F..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd"])
def test_keys_never_read_files_outside_the_bucket(raw, bucket, emulator, raw_key, still_serving):
    assert (emulator.paths.root / "credentials.json").exists()
    resp = raw.request("GET", f"/{bucket}/{raw_key}", service="s3")
    assert_error(resp, 404, "NoSuchKey")
    assert emulator.credentials.secret_key.encode() not in resp.body


def test_nul_and_over_long_keys(raw, bucket, still_serving):
    assert_error(put(raw, f"/{bucket}/a%00b", b"x"), 400, "InvalidArgument")
    too_long = "k" * 1025
    resp = put(raw, f"/{bucket}/{too_long}", b"x")
    assert_error(resp, 400, "KeyTooLongError")
    multibyte = "%C3%A9" * 513  # 1,026 bytes in UTF-8, 513 characters
    assert_error(put(raw, f"/{bucket}/{multibyte}", b"x"), 400, "KeyTooLongError")
    assert put(raw, f"/{bucket}/{'k' * 1024}", b"x").status == 200


@pytest.mark.parametrize("name", ["%2e%2e", "..%2f..%2ftmp", ".meta", ".special", "UPPER_case_but_long_enough_x" * 10,
                                  "a%0a", "abc%0a", "bucket%00", "-dash", "ab", "a" * 64, "xn--punycode", "192.168.1.1",
                                  "has..dots", "ends-", "my_bucket"])
def test_invalid_bucket_names_are_refused(raw, name, emulator, still_serving):
    resp = raw.request("PUT", f"/{name}", service="s3")
    assert_error(resp, 400, "InvalidBucketName")
    resp = raw.request("PUT", f"/{name}/key", service="s3", body=b"x")
    assert resp.status in (400, 404) and resp.error_code in ("InvalidBucketName", "NoSuchBucket"), resp.body
    assert not any(p.name.startswith(("..", "UPPER")) or "\n" in p.name for p in emulator.paths.s3.iterdir())


@pytest.mark.parametrize("constraint", ["../../x", "us-east-1", "a" * 300, "EU/../x", "eu-west-1\n"])
def test_invalid_location_constraints_are_refused(raw, constraint, emulator, still_serving):
    name = f"hostile-{uuid.uuid4().hex[:12]}"
    body = (f"<CreateBucketConfiguration><LocationConstraint>{constraint}</LocationConstraint>"
            "</CreateBucketConfiguration>").encode()
    assert_error(raw.request("PUT", f"/{name}", service="s3", body=body), 400, "InvalidLocationConstraint")
    assert not (emulator.paths.s3 / name).exists()
