"""CloudWatch metrics through boto3 (JSON, what current botocore picks) and botocore's own CBOR and query codecs.

CloudWatch's model lists three protocols; each request is answered in its own. The CBOR codec is also
checked on its own: round trips, indefinite lengths and malformed bodies (a 400, never a 500).
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import botocore.session
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import create_request_object, prepare_request_dict
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from botocore.httpsession import URLLib3Session
from botocore.parsers import create_parser
from botocore.serialize import create_serializer

from sagemaker_emulator.protocol import cbor

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
WINDOW = {"StartTime": NOW - dt.timedelta(minutes=10), "EndTime": NOW + dt.timedelta(minutes=10)}


@pytest.fixture(scope="module")
def cw(client):
    return client("cloudwatch")


def raw_call(emulator, protocol: str, operation: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """One call serialized, signed and parsed by botocore in ``protocol`` (what other SDKs and versions speak)."""
    model = botocore.session.get_session().get_service_model("cloudwatch")
    op = model.operation_model(operation)
    request = create_serializer(protocol, include_validation=True).serialize_to_request(params, op)
    prepare_request_dict(request, endpoint_url=emulator.endpoint_url)
    aws_request = create_request_object(request)
    creds = Credentials(emulator.credentials.access_key, emulator.credentials.secret_key)
    SigV4Auth(creds, "monitoring", "us-east-1").add_auth(aws_request)
    response = URLLib3Session().send(aws_request.prepare())
    parsed = create_parser(protocol).parse(
        {"status_code": response.status_code, "headers": response.headers, "body": response.content},
        op.output_shape)
    return response.status_code, parsed


def test_put_list_and_statistics_with_boto3(cw):
    dims = [{"Name": "Host", "Value": "a"}]
    cw.put_metric_data(Namespace="Workshop", MetricData=[
        {"MetricName": "Latency", "Dimensions": dims, "Value": v, "Unit": "Milliseconds", "Timestamp": NOW}
        for v in (10.0, 20.0, 60.0)] + [
        {"MetricName": "Latency", "Dimensions": dims, "Unit": "Milliseconds", "Timestamp": NOW,
         "StatisticValues": {"SampleCount": 2, "Sum": 30.0, "Minimum": 5.0, "Maximum": 25.0}},
        {"MetricName": "Latency", "Dimensions": [{"Name": "Host", "Value": "b"}], "Values": [1.0, 2.0],
         "Counts": [3, 1], "Timestamp": NOW}])
    listed = cw.list_metrics(Namespace="Workshop")["Metrics"]
    assert {m["Dimensions"][0]["Value"] for m in listed} == {"a", "b"}
    assert cw.list_metrics(Namespace="Workshop", Dimensions=[{"Name": "Host", "Value": "b"}])["Metrics"] == [
        {"Namespace": "Workshop", "MetricName": "Latency", "Dimensions": [{"Name": "Host", "Value": "b"}]}]
    points = cw.get_metric_statistics(Namespace="Workshop", MetricName="Latency", Dimensions=dims, Period=60,
                                      Statistics=["SampleCount", "Sum", "Average", "Minimum", "Maximum"],
                                      **WINDOW)["Datapoints"]
    assert len(points) == 1
    point = points[0]
    assert (point["SampleCount"], point["Sum"], point["Minimum"], point["Maximum"]) == (5.0, 120.0, 5.0, 60.0)
    assert point["Average"] == 24.0 and point["Unit"] == "Milliseconds"
    assert point["Timestamp"] == NOW.replace(second=0)
    other = cw.get_metric_statistics(Namespace="Workshop", MetricName="Latency", Period=60, Statistics=["Sum"],
                                     Dimensions=[{"Name": "Host", "Value": "b"}], **WINDOW)["Datapoints"]
    assert other[0]["Sum"] == 5.0  # 1*3 + 2*1


def test_get_metric_data_series(cw):
    dims = [{"Name": "Job", "Value": "series"}]
    start = NOW.replace(second=0) - dt.timedelta(minutes=3)
    cw.put_metric_data(Namespace="Workshop", MetricData=[
        {"MetricName": "Rows", "Dimensions": dims, "Value": float(i + 1), "Timestamp": start + dt.timedelta(minutes=i)}
        for i in range(3)])
    result = cw.get_metric_data(MetricDataQueries=[
        {"Id": "rows", "MetricStat": {"Metric": {"Namespace": "Workshop", "MetricName": "Rows", "Dimensions": dims},
                                      "Period": 60, "Stat": "Sum"}},
        {"Id": "hidden", "ReturnData": False, "MetricStat": {
            "Metric": {"Namespace": "Workshop", "MetricName": "Rows", "Dimensions": dims}, "Period": 60,
            "Stat": "Maximum"}}], ScanBy="TimestampAscending", **WINDOW)["MetricDataResults"]
    assert [r["Id"] for r in result] == ["rows"]
    assert result[0]["Values"] == [1.0, 2.0, 3.0] and result[0]["StatusCode"] == "Complete"
    assert result[0]["Timestamps"] == [start + dt.timedelta(minutes=i) for i in range(3)]


@pytest.mark.parametrize("call,code", [
    (lambda cw: cw.put_metric_data(Namespace="AWS/SageMaker", MetricData=[{"MetricName": "m", "Value": 1.0}]),
     "InvalidParameterValue"),
    (lambda cw: cw.put_metric_data(Namespace="W", MetricData=[{"MetricName": "m", "Value": 1.0, "StatisticValues": {
        "SampleCount": 1, "Sum": 1.0, "Minimum": 1.0, "Maximum": 1.0}}]), "InvalidParameterCombination"),
    (lambda cw: cw.get_metric_statistics(Namespace="W", MetricName="m", Period=60, ExtendedStatistics=["p99"],
                                         **WINDOW), "InvalidParameterValue"),
    (lambda cw: cw.get_metric_statistics(Namespace="W", MetricName="m", Period=61, Statistics=["Sum"], **WINDOW),
     "InvalidParameterValue"),
    (lambda cw: cw.get_metric_statistics(Namespace="W", MetricName="m", Period=60, **WINDOW),
     "MissingParameter"),
])
def test_bad_requests_get_cloudwatch_error_codes(cw, call, code):
    with pytest.raises(ClientError) as exc:
        call(cw)
    assert exc.value.response["Error"]["Code"] == code
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


@pytest.mark.parametrize("protocol", ["smithy-rpc-v2-cbor", "query"])
def test_other_protocols_are_answered_in_their_own(emulator, protocol):
    dims = [{"Name": "Protocol", "Value": protocol}]
    status, _ = raw_call(emulator, protocol, "PutMetricData", {
        "Namespace": "Protocols", "MetricData": [{"MetricName": "Calls", "Dimensions": dims, "Value": 2.5,
                                                  "Timestamp": NOW}]})
    assert status == 200
    status, parsed = raw_call(emulator, protocol, "GetMetricStatistics", {
        "Namespace": "Protocols", "MetricName": "Calls", "Dimensions": dims, "Period": 60,
        "Statistics": ["Sum", "SampleCount"], **WINDOW})
    assert status == 200
    assert [(p["Sum"], p["SampleCount"], p["Timestamp"]) for p in parsed["Datapoints"]] == [
        (2.5, 1.0, NOW.replace(second=0))]
    status, parsed = raw_call(emulator, protocol, "PutMetricData", {
        "Namespace": "AWS/EC2", "MetricData": [{"MetricName": "Calls", "Value": 1.0}]})
    assert status == 400 and parsed["Error"]["Code"] == "InvalidParameterValue"


def test_cbor_codec_round_trip_and_limits():
    value = {"a": [1, -2, 2**40, -(2**40), 1.5, True, False, None, "é", b"\x00\xff"], "t": NOW, "m": {}}
    decoded = cbor.decode(cbor.encode(value))
    assert decoded["a"] == value["a"] and decoded["t"] == NOW and decoded["m"] == {}
    # indefinite-length map, array and text (as other encoders write them); a half-precision float
    assert cbor.decode(bytes.fromhex("bf61619f0102ff6162" "7f6161616aff" "ff")) == {"a": [1, 2], "b": "aj"}
    assert cbor.decode(bytes.fromhex("f93e00")) == 1.5
    assert math.isnan(cbor.decode(bytes.fromhex("fb7ff8000000000000")))
    for bad in ("a2", "bf6161", "9a00ffffff", "62ffff", "0102", "fc", "c16161", "a1016161",
                "81" * 100 + "01"):
        with pytest.raises(cbor.CborError):
            cbor.decode(bytes.fromhex(bad))


def test_malformed_cbor_body_is_a_400(emulator):
    session = URLLib3Session()
    model = botocore.session.get_session().get_service_model("cloudwatch")
    request = create_serializer("smithy-rpc-v2-cbor").serialize_to_request(
        {"Namespace": "X"}, model.operation_model("ListMetrics"))
    request["body"] = b"\xa2\x61"
    prepare_request_dict(request, endpoint_url=emulator.endpoint_url)
    aws_request = create_request_object(request)
    SigV4Auth(Credentials(emulator.credentials.access_key, emulator.credentials.secret_key), "monitoring",
              "us-east-1").add_auth(aws_request)
    response = session.send(aws_request.prepare())
    assert response.status_code == 400
    assert cbor.decode(response.content)["__type"] == "SerializationException"
