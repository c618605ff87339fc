"""The attacker's client itself works: a correctly signed raw request is answered like boto3's."""

from __future__ import annotations


def test_signed_raw_requests_are_served(raw, still_serving):
    resp = raw.json_call("ListTrainingJobs", {"MaxResults": 5})
    assert resp.status == 200, resp.body
    assert "TrainingJobSummaries" in resp.json()


def test_a_stranger_is_refused_in_the_services_protocol(stranger):
    resp = stranger.json_call("ListTrainingJobs", {})
    assert (resp.status, resp.error_code) == (403, "UnrecognizedClientException")
    resp = stranger.request("GET", "/", service="s3")
    assert (resp.status, resp.error_code) == (403, "InvalidAccessKeyId")
