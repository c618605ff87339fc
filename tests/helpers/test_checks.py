"""helpers.checks: a right answer prints ✅ and one line; a wrong one raises CheckFailed with the hint."""

from __future__ import annotations

import io

import boto3
import pandas as pd
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from helpers import checks
from helpers.checks import CheckFailed


def passes(capsys: pytest.CaptureFixture[str], call, *args, **kwargs) -> str:  # noqa: ANN001 - any check
    assert call(*args, **kwargs) is None
    out = capsys.readouterr().out
    assert out.startswith("✅ ") and out.count("\n") == 1, out
    return out


def hint(call, *args, **kwargs) -> str:  # noqa: ANN001 - any check
    with pytest.raises(CheckFailed) as failed:
        call(*args, **kwargs)
    message = str(failed.value)
    assert message.startswith("❌ ") and "\n" not in message, message
    return message


def test_a_failed_check_is_an_assertion_error() -> None:
    """So pytest, papermill and nbval all stop at a solution whose check fails."""
    assert issubclass(CheckFailed, AssertionError)


def test_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    assert "0.8000 ≥ 0.79" in passes(capsys, checks.check_auc, 0.8, 0.79)
    assert "should reach 0.79" in hint(checks.check_auc, 0.7, 0.79)
    assert "should reach" in hint(checks.check_auc, float("nan"), 0.5)
    assert "matches 0.5000" in passes(capsys, checks.check_close, 0.5001, 0.5, 0.001, "AUC")
    assert "not within 0.001" in hint(checks.check_close, 0.6, 0.5, 0.001, "AUC")


def test_values_and_choices(capsys: pytest.CaptureFixture[str]) -> None:
    assert "error code: 'ModelError'" in passes(capsys, checks.check_equal, "ModelError", "ModelError", "error code")
    message = hint(checks.check_equal, 500, 400, "status", "It answers 400 for a wrong feature count.")
    assert message == "❌ status is 500; expected 400. It answers 400 for a wrong feature count."
    passes(capsys, checks.check_one_of, "A", {"A": 1, "B": 2}, "winner")
    assert "one of ['A', 'B']" in hint(checks.check_one_of, "C", {"A": 1, "B": 2}, "winner")


def test_frames(capsys: pytest.CaptureFixture[str]) -> None:
    frame = pd.DataFrame({"no_previous_contact": [1, 0, 1], "not_working": [0, 0, 1]})
    passes(capsys, checks.check_indicator, frame, "not_working", pd.Series([False, False, True]))
    assert "no column 'retired'" in hint(checks.check_indicator, frame, "retired", frame["not_working"])
    assert "in 1 rows" in hint(checks.check_indicator, frame, "not_working", pd.Series([True, False, True]))
    passes(capsys, checks.check_dropped, frame, ["duration"])
    assert "Still present: not_working" in hint(checks.check_dropped, frame, ["duration", "not_working"])
    passes(capsys, checks.check_same_frame, frame, frame.copy(), "features")
    assert "shape (3, 1)" in hint(checks.check_same_frame, frame[["not_working"]], frame, "features")
    assert "columns differ" in hint(checks.check_same_frame, frame[frame.columns[::-1]], frame, "features")
    assert "values differ" in hint(checks.check_same_frame, frame.replace(1, 2), frame, "features")


def test_object_uploaded(capsys: pytest.CaptureFixture[str]) -> None:
    s3 = boto3.client("s3", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
    with Stubber(s3) as stub:
        stub.add_client_error("get_object", "NoSuchKey", http_status_code=404)
        assert "not there yet (NoSuchKey)" in hint(checks.check_object_uploaded, s3, "b", "k")
        for body in (b"hello", b"bye"):
            stub.add_response("get_object", {"Body": _stream(body)})
        assert "(5 bytes)" in passes(capsys, checks.check_object_uploaded, s3, "b", "k", expected=b"hello")
        assert "holds 3 bytes" in hint(checks.check_object_uploaded, s3, "b", "k", expected=b"hello")


def _stream(body: bytes) -> StreamingBody:
    return StreamingBody(io.BytesIO(body), len(body))
