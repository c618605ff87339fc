"""Attacks on the gateway: SigV4 as AWS checks it, authentication before the body, bounded waits, framing.

Each test sends what botocore never would (stale scopes, swapped bodies, expired presigned URLs, bodies
that never end) with the raw client, checks the AWS error and that nothing was stored, and the
``still_serving`` fixture then proves the daemon still answers ordinary calls.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import socket
import subprocess
import sys
import threading
import time
import zlib

import pytest
from rawclient import EMPTY_SHA256, RawClient, amz_now, read_response, request_head, signed_chunks, wait_closed

from sagemaker_emulator.app import Emulator
from sagemaker_emulator.connections import Limits

pytestmark = pytest.mark.usefixtures("still_serving")
BUCKET = "hostile-gateway"


@pytest.fixture(scope="module", autouse=True)
def bucket(raw: RawClient) -> str:
    assert raw.request("PUT", f"/{BUCKET}", service="s3").status == 200
    return BUCKET


def _exists(raw: RawClient, key: str) -> bool:
    return raw.request("HEAD", f"/{BUCKET}/{key}", service="s3").status == 200


def _log_groups(raw: RawClient) -> list[str]:
    resp = raw.json_call("DescribeLogGroups", {}, service="logs", prefix="Logs_20140328")
    return [g["logGroupName"] for g in resp.json()["logGroups"]]


# ----------------------------------------------------------------------------------------- SigV4 scope
def test_a_scope_dated_another_day_is_refused(raw):
    yesterday = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).strftime("%Y%m%d")
    resp = raw.json_call("ListTrainingJobs", {}, scope_date=yesterday)
    assert (resp.status, resp.error_code) == (403, "InvalidSignatureException")
    assert "Date in Credential scope does not match" in resp.json()["message"]
    resp = raw.request("GET", "/", service="s3", scope_date=yesterday)
    assert (resp.status, resp.error_code) == (400, "AuthorizationHeaderMalformed")


def test_a_scope_with_an_invalid_region_is_refused(raw):
    resp = raw.json_call("ListTrainingJobs", {}, region="mars-north-1")
    assert (resp.status, resp.error_code) == (403, "InvalidSignatureException")
    assert resp.json()["message"] == "Credential should be scoped to a valid region."
    resp = raw.request("GET", "/", service="s3", region="mars-north-1")
    assert (resp.status, resp.error_code) == (400, "AuthorizationHeaderMalformed")


def test_region_and_service_must_match_the_host_they_are_sent_to(raw):
    body = b"Action=GetCallerIdentity&Version=2011-06-15"
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    resp = raw.request("POST", "/", service="sts", body=body, region="us-west-2",
                       headers={**form, "Host": "sts.eu-west-1.amazonaws.com"})
    assert (resp.status, resp.error_code) == (403, "SignatureDoesNotMatch")
    assert b"Credential should be scoped to a valid region." in resp.body
    resp = raw.request("POST", "/", service="sts", body=body, region="eu-west-1",
                       headers={**form, "Host": "sts.eu-west-1.amazonaws.com"})
    assert resp.status == 200, resp.body
    resp = raw.request("POST", "/", service="iam", body=body, headers={**form, "Host": "sts.amazonaws.com"})
    assert resp.error_code == "SignatureDoesNotMatch"
    assert b"Credential should be scoped to correct service: 'sts'." in resp.body


# ----------------------------------------------------------------------------------------- presigned URLs
def test_presigned_urls_expire(raw):
    assert raw.request("PUT", f"/{BUCKET}/presigned", service="s3", body=b"hello").status == 200
    fresh = raw.presign("GET", f"/{BUCKET}/presigned", expires=60)
    resp = raw.request("GET", f"/{BUCKET}/presigned", service="s3", query=fresh, sign=False)
    assert (resp.status, resp.body) == (200, b"hello")
    old = raw.presign("GET", f"/{BUCKET}/presigned", expires=60,
                      amz_date=amz_now(-dt.timedelta(minutes=5)))
    resp = raw.request("GET", f"/{BUCKET}/presigned", service="s3", query=old, sign=False)
    assert (resp.status, resp.error_code) == (403, "AccessDenied")
    assert b"Request has expired" in resp.body


def test_presigned_urls_live_at_most_a_week_and_must_say_how_long(raw):
    week_plus = raw.presign("GET", f"/{BUCKET}/x", expires=604801)
    resp = raw.request("GET", f"/{BUCKET}/x", service="s3", query=week_plus, sign=False)
    assert (resp.status, resp.error_code) == (400, "AuthorizationQueryParametersError")
    assert b"604800" in resp.body
    without = "&".join(p for p in raw.presign("GET", f"/{BUCKET}/x").split("&") if not p.startswith("X-Amz-Expires"))
    resp = raw.request("GET", f"/{BUCKET}/x", service="s3", query=without, sign=False)
    assert (resp.status, resp.error_code) == (400, "AuthorizationQueryParametersError")
    future = raw.presign("GET", f"/{BUCKET}/x", amz_date=amz_now(dt.timedelta(hours=2)))
    resp = raw.request("GET", f"/{BUCKET}/x", service="s3", query=future, sign=False)
    assert (resp.status, resp.error_code) == (403, "AccessDenied")
    assert b"not valid yet" in resp.body


# ----------------------------------------------------------------------------------------- payload integrity
def test_a_body_swapped_under_a_valid_signature_is_refused_and_changes_nothing(raw):
    signed = json.dumps({"logGroupName": "signed-group"}).encode()
    swapped = json.dumps({"logGroupName": "evil-group!"}).encode()
    headers = {"X-Amz-Target": "Logs_20140328.CreateLogGroup", "Content-Type": "application/x-amz-json-1.1"}
    headers = raw.sign("POST", "/", service="logs", headers=headers, body=signed)
    headers["X-Amz-Content-SHA256"] = hashlib.sha256(signed).hexdigest()  # an unsigned claim that it is the body
    resp = raw.request("POST", "/", service="logs", body=swapped, headers=headers, sign=False)
    assert (resp.status, resp.error_code) == (403, "SignatureDoesNotMatch")
    assert "evil-group!" not in _log_groups(raw)


def test_s3_checks_the_signed_payload_hash_against_the_body_received(raw):
    signed, swapped = b"A" * 1000, b"B" * 1000
    headers = raw.sign("PUT", f"/{BUCKET}/swapped", service="s3", body=signed)
    resp = raw.request("PUT", f"/{BUCKET}/swapped", service="s3", body=swapped, headers=headers, sign=False)
    assert (resp.status, resp.error_code) == (400, "XAmzContentSHA256Mismatch")
    assert not _exists(raw, "swapped")


def test_s3_refuses_an_unsigned_content_sha256_header(raw):
    body = b"data"
    headers = raw.sign("PUT", f"/{BUCKET}/unsigned-hash", service="s3", body=body, signed=("host", "x-amz-date"))
    resp = raw.request("PUT", f"/{BUCKET}/unsigned-hash", service="s3", body=body, headers=headers, sign=False)
    assert (resp.status, resp.error_code) == (403, "AccessDenied")
    assert b"not signed" in resp.body
    assert not _exists(raw, "unsigned-hash")


def test_streaming_chunk_signatures_are_verified(raw):
    chunks = [b"x" * 8192, b"y" * 100]
    base = {"Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": str(sum(map(len, chunks)))}
    for key, tamper, status in (("chunked-ok", None, 200), ("chunked-bad", 1, 403)):
        headers = raw.sign("PUT", f"/{BUCKET}/{key}", service="s3", headers=dict(base),
                           payload_hash="STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
        body = signed_chunks(raw, headers, chunks, tamper=tamper)
        resp = raw.request("PUT", f"/{BUCKET}/{key}", service="s3", body=body, headers=headers, sign=False)
        assert resp.status == status, resp.body
    assert raw.request("GET", f"/{BUCKET}/chunked-ok", service="s3").body == b"".join(chunks)
    assert not _exists(raw, "chunked-bad")


@pytest.mark.parametrize("case", ["signed", "tampered-checksum", "forged-signature", "missing-signature"])
def test_streaming_trailer_signatures_are_verified(raw, case):
    """``STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER``: the checksum trailer is signed, chained to the final
    chunk's signature; a swapped checksum or a forged or missing trailer signature stores nothing."""
    chunks = [b"z" * 4000]
    crc = base64.b64encode(zlib.crc32(chunks[0]).to_bytes(4, "big")).decode()
    key = f"trailer-{case}"
    headers = raw.sign("PUT", f"/{BUCKET}/{key}", service="s3",
                       payload_hash="STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
                       headers={"Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": "4000",
                                "x-amz-trailer": "x-amz-checksum-crc32"})
    body = signed_chunks(raw, headers, chunks, trailers={"x-amz-checksum-crc32": crc},
                         trailer_signature={"forged-signature": "0" * 64}.get(case))
    if case == "tampered-checksum":  # the signature covered the real checksum; send another (still valid form)
        body = body.replace(crc.encode(), base64.b64encode(b"\0\0\0\0"))
    if case == "missing-signature":
        body = body[: body.index(b"x-amz-trailer-signature")] + b"\r\n"
    resp = raw.request("PUT", f"/{BUCKET}/{key}", service="s3", body=body, headers=headers, sign=False)
    if case == "signed":
        assert resp.status == 200, resp.body
        assert raw.request("GET", f"/{BUCKET}/{key}", service="s3").body == chunks[0]
    else:
        assert resp.status in (400, 403) and resp.error_code in ("SignatureDoesNotMatch", "InvalidRequest"), resp.body
        assert not _exists(raw, key)


@pytest.mark.parametrize("declared", [5, 50], ids=["chunks-exceed", "chunks-fall-short"])
def test_aws_chunked_bodies_must_add_up_to_their_decoded_length(raw, declared):
    key = f"decoded-{declared}"
    headers = raw.sign("PUT", f"/{BUCKET}/{key}", service="s3", payload_hash="STREAMING-UNSIGNED-PAYLOAD-TRAILER",
                       headers={"Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": str(declared)})
    body = b"a\r\n0123456789\r\n0\r\n\r\n"
    resp = raw.request("PUT", f"/{BUCKET}/{key}", service="s3", body=body, headers=headers, sign=False)
    assert resp.status == 400 and resp.error_code in ("InvalidRequest", "IncompleteBody"), resp.body
    assert not _exists(raw, key)


# ----------------------------------------------------------------------------------------- before the body
def _send_head_only(client: RawClient, head: bytes, wait: float = 5.0) -> tuple[float, bytes]:
    """Send only a request's head (and a little body); the answer must come before the body does."""
    with client.connect(wait) as sock:
        sock.sendall(head + b"x" * 65536)
        started = time.monotonic()
        resp = read_response(sock)
        return time.monotonic() - started, resp.status.to_bytes(2, "big") + resp.body


@pytest.mark.parametrize("headers", [
    {"X-Amz-Target": "SageMaker.ListTrainingJobs"},  # unsigned
    {"X-Amz-Target": "SageMaker.ListTrainingJobs",
     "Authorization": "AWS4-HMAC-SHA256 Credential=AKIASTRANGER00000000/20260101/us-east-1/sagemaker/aws4_request, "
                      "SignedHeaders=host, Signature=00"},  # a stranger
], ids=["unsigned", "stranger"])
def test_a_huge_unauthenticated_body_is_refused_from_its_headers(raw, headers):
    lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head = f"POST / HTTP/1.1\r\nHost: {raw.host_header}\r\nContent-Length: 209715200\r\n{lines}\r\n".encode()
    elapsed, answer = _send_head_only(raw, head)
    assert int.from_bytes(answer[:2], "big") in (400, 403)
    assert elapsed < 2.0


def test_over_limit_bodies_are_refused_from_content_length(raw):
    headers = raw.sign("POST", "/endpoints/any/invocations", service="sagemaker",
                       headers={"Content-Type": "text/csv"}, payload_hash=EMPTY_SHA256)
    head = request_head("POST", "/endpoints/any/invocations", {**headers, "Content-Length": "7340032"})
    _, answer = _send_head_only(raw, head)
    assert int.from_bytes(answer[:2], "big") == 400
    assert b"6 MB" in answer
    headers = raw.sign("PUT", f"/{BUCKET}/huge", service="s3", payload_hash="UNSIGNED-PAYLOAD")
    head = request_head("PUT", f"/{BUCKET}/huge", {**headers, "Content-Length": "6442450944"})
    _, answer = _send_head_only(raw, head)
    assert int.from_bytes(answer[:2], "big") == 400 and b"EntityTooLarge" in answer
    assert not _exists(raw, "huge")


def test_expect_100_continue_is_answered_only_after_authentication(raw, stranger):
    for client, expected in ((stranger, b"403"), (raw, b"100")):
        headers = client.sign("PUT", f"/{BUCKET}/expect", service="s3", payload_hash="UNSIGNED-PAYLOAD",
                              headers={"Expect": "100-continue", "Content-Length": "5"})
        head = request_head("PUT", f"/{BUCKET}/expect", headers)
        with client.connect(5) as sock:
            sock.sendall(head)
            first = sock.recv(12)
            assert first[9:12] == expected, first
            if expected == b"100":
                sock.recv(65536)
                sock.sendall(b"hello")
                assert read_response(sock).status == 200
    assert raw.request("GET", f"/{BUCKET}/expect", service="s3").body == b"hello"


# ----------------------------------------------------------------------------------------- framing
@pytest.mark.parametrize("framing", [
    b"-5\r\nhello\r\n0\r\n\r\n",  # negative size
    b"fffffffffffffffffffff\r\nhello\r\n0\r\n\r\n",  # absurd size
    b"zz\r\nhello\r\n0\r\n\r\n",  # not hex
    b"a\r\nhello",  # truncated: the client hangs up inside a chunk
    b"5\r\nhelloEXTRA\r\n0\r\n\r\n",  # a chunk longer than its size
], ids=["negative", "absurd", "not-hex", "truncated", "overlong"])
def test_malformed_chunked_uploads_are_refused_and_never_stored(raw, framing):
    key = "chunked-" + hashlib.md5(framing).hexdigest()[:8]
    headers = raw.sign("PUT", f"/{BUCKET}/{key}", service="s3", payload_hash="UNSIGNED-PAYLOAD",
                       headers={"Transfer-Encoding": "chunked"})
    head = request_head("PUT", f"/{BUCKET}/{key}", headers)
    with raw.connect(5) as sock:
        sock.sendall(head + framing)
        sock.shutdown(socket.SHUT_WR)
        resp = read_response(sock)
    assert resp.status == 400 and resp.error_code in ("IncompleteBody", "InvalidRequest"), resp.body
    assert not _exists(raw, key)


def test_a_body_shorter_than_its_content_length_is_never_stored(raw):
    headers = raw.sign("PUT", f"/{BUCKET}/short", service="s3", payload_hash="UNSIGNED-PAYLOAD",
                       headers={"Content-Length": "1000000"})
    head = request_head("PUT", f"/{BUCKET}/short", headers)
    with raw.connect(5) as sock:
        sock.sendall(head + b"z" * 1000)
        sock.shutdown(socket.SHUT_WR)
        resp = read_response(sock)
    assert (resp.status, resp.error_code) == (400, "IncompleteBody")
    assert not _exists(raw, "short")


@pytest.mark.parametrize("value", ["-1", "abc", "1e3", "99999999999999999999"])
def test_an_invalid_content_length_is_a_400(raw, value):
    head = (f"POST / HTTP/1.1\r\nHost: {raw.host_header}\r\nX-Amz-Target: SageMaker.ListTrainingJobs\r\n"
            f"Content-Length: {value}\r\n\r\n").encode()
    resp = raw.send_bytes(head)
    assert resp.status == 400


def test_content_length_with_chunked_encoding_is_a_400(raw):
    head = (f"POST / HTTP/1.1\r\nHost: {raw.host_header}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n"
            "\r\n0\r\n\r\n").encode()
    assert raw.send_bytes(head).status == 400


# ----------------------------------------------------------------------------------------- unknown services
def test_services_not_emulated_are_named_in_their_own_protocol(client):
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as exc:
        client("sns").publish(TopicArn="arn:aws:sns:us-east-1:123456789012:t", Message="hi")
    assert "Publish" in str(exc.value) and "not emulated" in str(exc.value)
    with pytest.raises(ClientError) as exc:
        client("sagemaker-featurestore-runtime").get_record(FeatureGroupName="fg", RecordIdentifierValueAsString="1")
    assert "GetRecord" in str(exc.value) and "not emulated" in str(exc.value)
    with pytest.raises(ClientError) as exc:
        client("cloudwatch").describe_alarms()  # CloudWatch metrics are emulated, alarms are not
    assert "DescribeAlarms" in str(exc.value) and "not emulated" in str(exc.value)
    with pytest.raises(ClientError) as exc:
        client("sagemaker").list_feature_groups()
    assert exc.value.response["Error"]["Code"] == "UnknownOperationException"
    assert "ListFeatureGroups" in str(exc.value)


def test_the_access_log_shows_what_was_asked(emulator, raw):
    raw.json_call("ListTrainingJobs", {})
    raw.json_call("DescribeTrainingJob", {"TrainingJobName": "no-such-job"})
    time.sleep(0.6)
    out = subprocess.run([sys.executable, "-m", "sagemaker_emulator.cli", "logs", "--state-dir",
                          str(emulator.paths.root), "-n", "400"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:3] == ["time", "service", "operation"]
    assert any(line.split()[1:5] == ["sagemaker", "ListTrainingJobs", "200", "-"] for line in lines)
    assert any(line.split()[1:5] == ["sagemaker", "DescribeTrainingJob", "400", "ValidationException"]
               for line in lines)


# ----------------------------------------------------------------------------------------- bounded waits
@pytest.fixture(scope="module")
def strict(tmp_path_factory):
    """A second emulator with short limits, so that timeouts show in a test's time."""
    emu = Emulator(tmp_path_factory.mktemp("strict-state"))
    emu.start("127.0.0.1", 0, limits=Limits(head_seconds=1.0, body_seconds=1.0, max_connections=8,
                                            check_every=0.1))
    yield RawClient(emu.endpoint_url, emu.credentials.access_key, emu.credentials.secret_key), emu
    emu.stop()


def test_an_idle_connection_is_closed(strict):
    client, _ = strict
    with client.connect() as sock:
        closed = wait_closed(sock, 5)
    assert closed is not None and closed < 2.5


def test_slowloris_headers_get_a_408_and_the_connection_ends(strict):
    client, _ = strict
    with client.connect() as sock:
        sock.sendall(b"POST / HTTP/1.1\r\n")
        got = b""
        started = time.monotonic()
        sock.settimeout(0.2)
        while time.monotonic() - started < 5:
            try:
                sock.sendall(b"X-Slow: 1\r\n")
            except OSError:
                break
            try:
                data = sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            got += data
        assert time.monotonic() - started < 3
    assert got.startswith(b"HTTP/1.1 408")


def _upload_head(client: RawClient, bucket: str) -> bytes:
    """The head of a 100,000-byte PutObject into a fresh bucket: the test decides how the body comes."""
    client.request("PUT", f"/{bucket}", service="s3")
    headers = client.sign("PUT", f"/{bucket}/key", service="s3", payload_hash="UNSIGNED-PAYLOAD",
                          headers={"Content-Length": "100000"})
    return request_head("PUT", f"/{bucket}/key", headers)


def test_a_stalled_body_is_a_request_timeout_and_is_not_stored(strict):
    client, _ = strict
    head = _upload_head(client, "stall")
    with client.connect() as sock:
        sock.sendall(head + b"a" * 10)
        started = time.monotonic()
        resp = read_response(sock)
    assert (resp.status, resp.error_code) == (400, "RequestTimeout")
    assert time.monotonic() - started < 3
    assert client.request("HEAD", "/stall/key", service="s3").status == 404


def test_a_dripping_body_is_cut_off(strict):
    client, _ = strict
    head = _upload_head(client, "drip")
    with client.connect() as sock:
        sock.sendall(head)
        started = time.monotonic()
        sock.settimeout(0.25)
        answer = b""
        while time.monotonic() - started < 6 and not answer:
            try:
                sock.sendall(b"d")  # a byte every quarter second: far below the minimum rate
                answer = sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                break
    assert b"RequestTimeout" in answer
    assert time.monotonic() - started < 4


def test_a_full_house_of_idle_connections_does_not_lock_others_out(strict):
    client, _ = strict
    idle = [client.connect() for _ in range(8)]
    try:
        time.sleep(0.2)
        resp = client.json_call("ListTrainingJobs", {})
        assert resp.status == 200
    finally:
        for sock in idle:
            sock.close()


def test_other_clients_are_served_during_a_slowloris_attack(strict):
    client, emu = strict
    stop = threading.Event()

    def loris() -> None:
        while not stop.is_set():
            try:
                with client.connect() as sock:
                    sock.sendall(b"GET / HTTP/1.1\r\n")
                    while not stop.is_set():
                        sock.sendall(b"X: y\r\n")
                        time.sleep(0.3)
            except OSError:
                continue

    threads = [threading.Thread(target=loris, daemon=True) for _ in range(6)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.5)
        statuses = [client.json_call("ListTrainingJobs", {}).status for _ in range(30)]
    finally:
        stop.set()
    assert statuses == [200] * 30


# ----------------------------------------------------------------------------------------- stopping
def _half_sent_put(client: RawClient, key: str, body: bytes) -> socket.socket:
    """A signed PutObject whose body has only half arrived: the request is being served when this returns."""
    path = f"/{BUCKET}/{key}"
    headers = client.sign("PUT", path, service="s3", body=body, headers={"Content-Length": str(len(body))})
    sock = client.connect()
    sock.sendall(request_head("PUT", path, headers) + body[: len(body) // 2])
    return sock


def _stopping(emu: Emulator) -> threading.Thread:
    stopper = threading.Thread(target=emu.stop, name="stop")
    stopper.start()
    return stopper


def test_stop_lets_a_request_being_served_finish_before_closing_the_state(tmp_path):
    emu = Emulator(tmp_path / "state")
    emu.start("127.0.0.1", 0)
    client = RawClient(emu.endpoint_url, emu.credentials.access_key, emu.credentials.secret_key)
    assert client.request("PUT", f"/{BUCKET}", service="s3").status == 200
    body = b"x" * 100_000
    with _half_sent_put(client, "in-flight", body) as sock:
        time.sleep(0.3)  # the gateway is reading the body now
        stopper = _stopping(emu)
        time.sleep(0.5)
        assert stopper.is_alive(), "stop() returned while a PutObject was still being received"
        sock.sendall(body[len(body) // 2:])
        answer = read_response(sock, "PUT")
    stopper.join(15)
    assert not stopper.is_alive(), "stop() did not return once the request finished"
    assert answer.status == 200, answer.body
    again = Emulator(tmp_path / "state")  # the object was stored whole, under the closing emulator
    again.start("127.0.0.1", 0)
    try:
        client = RawClient(again.endpoint_url, again.credentials.access_key, again.credentials.secret_key)
        stored = client.request("GET", f"/{BUCKET}/in-flight", service="s3")
        assert stored.status == 200 and stored.body == body
    finally:
        again.stop()


def test_stop_does_not_wait_forever_for_a_request_that_never_ends(tmp_path, caplog):
    emu = Emulator(tmp_path / "state")
    emu.DRAIN_SECONDS = 0.5
    emu.start("127.0.0.1", 0, limits=Limits(body_seconds=30.0))  # the body wait outlasts the drain
    client = RawClient(emu.endpoint_url, emu.credentials.access_key, emu.credentials.secret_key)
    assert client.request("PUT", f"/{BUCKET}", service="s3").status == 200
    with _half_sent_put(client, "never-ends", b"y" * 10_000):
        time.sleep(0.3)
        started = time.monotonic()
        with caplog.at_level("WARNING", logger="sagemaker_emulator"):
            _stopping(emu).join(10)
        took = time.monotonic() - started
    assert took < 5, f"stop() took {took:.1f} s with a request stalled"
    assert "1 request(s) still running" in caplog.text


def test_a_kept_alive_connection_is_not_served_once_stop_began(tmp_path):
    emu = Emulator(tmp_path / "state")
    emu.start("127.0.0.1", 0)
    client = RawClient(emu.endpoint_url, emu.credentials.access_key, emu.credentials.secret_key)
    assert client.request("PUT", f"/{BUCKET}", service="s3").status == 200
    body = b"z" * 10_000
    with _half_sent_put(client, "first", body) as busy, client.connect() as idle:
        head = request_head("GET", "/", client.sign("GET", "/", service="s3"))
        idle.sendall(head)
        assert read_response(idle).status == 200  # a kept-alive connection, idle now
        time.sleep(0.2)
        stopper = _stopping(emu)
        time.sleep(0.3)
        idle.sendall(request_head("GET", "/", client.sign("GET", "/", service="s3")))
        late = read_response(idle)
        busy.sendall(body[len(body) // 2:])
        assert read_response(busy, "PUT").status == 200
    stopper.join(15)
    assert late.status == 503 and late.error_code == "ServiceUnavailable", late.body
    assert late.headers.get("connection", "").lower() == "close"
