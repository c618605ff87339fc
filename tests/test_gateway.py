"""The gateway as clients see it: authentication, routing, protocol errors, the proxy path."""

from __future__ import annotations

import json
import urllib.request

import boto3
import botocore.config
import pytest
import requests
from botocore.exceptions import ClientError

from sagemaker_emulator.config import ROLE_ARN

REGION = "us-east-1"


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return exc.value.response["Error"]["Code"]


def test_health_is_unsigned_and_reports_the_daemon(emulator):
    with urllib.request.urlopen(emulator.endpoint_url + "/_emulator/health") as resp:
        body = json.loads(resp.read())
    assert body["status"] == "ok"
    assert body["state_dir"] == str(emulator.paths.root)


def test_sts_and_iam_answer_as_the_local_execution_role(client):
    ident = client("sts").get_caller_identity()
    assert ident["Account"] == "123456789012"
    assert ":assumed-role/AmazonSageMaker-ExecutionRole-Local/" in ident["Arn"]
    role = client("iam").get_role(RoleName="AmazonSageMaker-ExecutionRole-Local")["Role"]
    assert role["Arn"] == ROLE_ARN
    with pytest.raises(ClientError) as exc:
        client("iam").get_role(RoleName="SomeoneElse")
    assert _code(exc) == "NoSuchEntity"


def test_wrong_secret_is_signature_does_not_match(emulator):
    bad = boto3.client("sagemaker", endpoint_url=emulator.endpoint_url, region_name=REGION,
                       aws_access_key_id=emulator.credentials.access_key, aws_secret_access_key="x" * 40)
    with pytest.raises(ClientError) as exc:
        bad.list_training_jobs()
    assert _code(exc) == "SignatureDoesNotMatch"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_unknown_access_key_is_rejected_per_service(emulator):
    def make(name: str):
        return boto3.client(name, endpoint_url=emulator.endpoint_url, region_name=REGION,
                            aws_access_key_id="AKIAREALACCOUNTKEY01", aws_secret_access_key="y" * 40)

    with pytest.raises(ClientError) as exc:
        make("sagemaker").list_training_jobs()
    assert _code(exc) == "UnrecognizedClientException"
    with pytest.raises(ClientError) as exc:
        make("sts").get_caller_identity()
    assert _code(exc) == "InvalidClientTokenId"
    with pytest.raises(ClientError) as exc:
        make("s3").list_buckets()
    assert _code(exc) == "InvalidAccessKeyId"


def test_unsigned_requests_are_refused_as_aws_does(emulator):
    resp = requests.post(emulator.endpoint_url + "/", data="{}", headers={
        "X-Amz-Target": "SageMaker.ListTrainingJobs", "Content-Type": "application/x-amz-json-1.1"})
    assert resp.status_code == 400
    assert resp.json()["__type"] == "MissingAuthenticationTokenException"
    resp = requests.get(emulator.endpoint_url + "/some-bucket/key", headers={"Host": "s3.amazonaws.com"})
    assert resp.status_code == 403
    assert b"<Code>AccessDenied</Code>" in resp.content


def _signed(emulator, body: bytes, target: str) -> requests.Response:
    """A correctly signed request with an arbitrary body, to reach the protocol layer."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    req = AWSRequest(method="POST", url=emulator.endpoint_url + "/", data=body,
                     headers={"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.1"})
    creds = Credentials(emulator.credentials.access_key, emulator.credentials.secret_key)
    SigV4Auth(creds, "sagemaker", REGION).add_auth(req)
    return requests.post(req.url, data=body, headers=dict(req.headers))


def test_malformed_json_body_is_a_serialization_error_and_the_server_keeps_serving(emulator, client):
    resp = _signed(emulator, b"{not json", "SageMaker.ListTrainingJobs")
    assert resp.status_code == 400
    assert resp.json()["__type"] == "SerializationException"
    resp = _signed(emulator, b"{}", "SageMaker.NoSuchOperation")
    assert resp.json()["__type"] == "UnknownOperationException"
    assert "TrainingJobSummaries" in client("sagemaker").list_training_jobs()


def test_model_constraints_are_validated_with_sagemaker_wording(client):
    with pytest.raises(ClientError) as exc:
        client("sagemaker").describe_training_job(TrainingJobName="not a valid name!")
    err = exc.value.response["Error"]
    assert err["Code"] == "ValidationException"
    assert err["Message"].startswith("1 validation error detected: Value 'not a valid name!' at 'trainingJobName'")
    assert "regular expression pattern" in err["Message"]


def test_missing_job_is_a_validation_exception_worded_resource_not_found(client):
    with pytest.raises(ClientError) as exc:
        client("sagemaker").describe_training_job(TrainingJobName="does-not-exist")
    assert _code(exc) == "ValidationException"
    assert exc.value.response["Error"]["Message"] == "Requested resource not found."


def test_explicit_aws_hostname_goes_through_the_proxy(emulator, emulator_env, boto_session):
    """The SDK builds STS with https://sts.<region>.amazonaws.com: it must land here, never on AWS."""
    sts = boto_session.client("sts", endpoint_url="https://sts.us-east-1.amazonaws.com",
                              config=botocore.config.Config(proxies={"https": emulator.endpoint_url}),
                              verify=emulator_env["AWS_CA_BUNDLE"])
    assert sts.get_caller_identity()["Account"] == "123456789012"
    s3 = boto_session.client("s3", endpoint_url="https://s3.us-east-1.amazonaws.com",
                             config=botocore.config.Config(proxies={"https": emulator.endpoint_url}),
                             verify=emulator_env["AWS_CA_BUNDLE"])
    assert "Buckets" in s3.list_buckets()


def test_sdk_telemetry_style_get_gets_a_local_answer(emulator, emulator_env):
    resp = requests.get("https://sm-pysdk-t-us-east-1.s3.us-east-1.amazonaws.com/telemetry?x=1",
                        proxies={"https": emulator.endpoint_url}, verify=emulator_env["AWS_CA_BUNDLE"], timeout=5)
    assert resp.status_code == 403
    assert resp.headers["Server"].startswith("SageMakerEmulator")


def test_logs_stream_round_trip_and_tokens(client):
    logs = client("logs")
    logs.create_log_group(logGroupName="/test/gateway")
    logs.create_log_stream(logGroupName="/test/gateway", logStreamName="job/algo-1-1")
    logs.put_log_events(logGroupName="/test/gateway", logStreamName="job/algo-1-1",
                        logEvents=[{"timestamp": 1000 + i, "message": f"line {i}"} for i in range(5)])
    first = logs.get_log_events(logGroupName="/test/gateway", logStreamName="job/algo-1-1", startFromHead=True,
                                limit=3)
    assert [e["message"] for e in first["events"]] == ["line 0", "line 1", "line 2"]
    rest = logs.get_log_events(logGroupName="/test/gateway", logStreamName="job/algo-1-1",
                               nextToken=first["nextForwardToken"])
    assert [e["message"] for e in rest["events"]] == ["line 3", "line 4"]
    again = logs.get_log_events(logGroupName="/test/gateway", logStreamName="job/algo-1-1",
                                nextToken=rest["nextForwardToken"])
    assert again["events"] == [] and again["nextForwardToken"] == rest["nextForwardToken"]
    found = logs.filter_log_events(logGroupName="/test/gateway", filterPattern='"line 4"')["events"]
    assert [e["message"] for e in found] == ["line 4"]
    with pytest.raises(ClientError) as exc:
        logs.create_log_group(logGroupName="/test/gateway")
    assert _code(exc) == "ResourceAlreadyExistsException"


def test_stats_time_runtime_requests_only(emulator, client):
    """``/_emulator/stats``: unsigned, and only SageMaker Runtime calls enter its ring (errors counted too)."""

    def stats() -> dict:
        with urllib.request.urlopen(emulator.endpoint_url + "/_emulator/stats") as resp:
            return json.loads(resp.read())["sagemaker-runtime"]

    before = stats()
    client("sagemaker").list_endpoints()
    assert stats()["count"] == before["count"]
    with pytest.raises(ClientError) as exc:
        client("sagemaker-runtime").invoke_endpoint(EndpointName="no-such-endpoint", Body=b"1,2")
    assert _code(exc) == "ValidationError"
    after = stats()
    assert after["count"] == before["count"] + 1 and after["errors"] == before["errors"] + 1
    assert 0 < after["durations_us"][-1] < 10_000_000
    assert after["window"] == len(after["durations_us"]) and after["p50_ms"] is not None


@pytest.mark.parametrize("block", [
    b"Host: a:1\r\nContent-Type: text/csv\r\nX-Tab:\tv \r\nX-Empty:\r\nDup: 1\r\nDup: 2\r\nConnection: close\r\n",
    b"Host: a\r\nX-Folded: one\r\n two\r\n",  # obsolete line folding: the email parser's path
    b"Host: a\r\nnot a header\r\nX-After: 1\r\n",
    b"Host: a\r\nX-CR: a\rb\r\n",
])
def test_fast_header_parsing_matches_the_stdlib(block):
    import http.server
    import io

    from sagemaker_emulator.http_server import GatewayHandler

    def parsed(fast: bool):
        handler = GatewayHandler.__new__(GatewayHandler)
        handler.rfile = io.BytesIO(block + b"\r\n")
        handler.raw_requestline = b"POST /endpoints/x/invocations HTTP/1.1\r\n"
        ok = handler._parse_request() if fast else http.server.BaseHTTPRequestHandler.parse_request(handler)
        return ok, handler.command, handler.path, handler.close_connection, list(handler.headers.items()), \
            handler.headers.get("Dup")

    assert parsed(fast=True) == parsed(fast=False)
