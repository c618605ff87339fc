"""Fixtures for the hostile suite: a raw attacker's client and a check that the daemon still serves."""

from __future__ import annotations

import pytest
from rawclient import RawClient


@pytest.fixture(scope="session")
def raw(emulator) -> RawClient:
    """A client holding the emulator's real credentials (an attacker who read the 0600 file, or a bug)."""
    return RawClient(emulator.endpoint_url, emulator.credentials.access_key, emulator.credentials.secret_key)


@pytest.fixture(scope="session")
def stranger(emulator) -> RawClient:
    """A local process without the credentials."""
    return RawClient(emulator.endpoint_url, "AKIASTRANGER00000000", "s" * 40)


@pytest.fixture
def still_serving(raw: RawClient):
    """After the attack, ordinary signed calls to every service still answer correctly."""
    yield
    assert raw.json_call("ListTrainingJobs", {}).status == 200
    assert raw.request("GET", "/", service="s3").status == 200
    body = b"Action=GetCallerIdentity&Version=2011-06-15"
    sts = raw.request("POST", "/", service="sts", body=body,
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert sts.status == 200, sts.body
