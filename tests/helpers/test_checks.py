"""helpers.checks: every exercise check says one line — unanswered, wrong type, wrong value (❌ + hint) or right (✅).

The lab's own verifications raise CheckFailed, which IPython shows as the one line alone.
"""

from __future__ import annotations

import io

import boto3
import numpy as np
import pandas as pd
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from helpers import checks
from helpers.checks import CheckFailed

HINT = "Train with keep_macro=True."


def said(capsys: pytest.CaptureFixture[str], right: bool, *args, **kwargs) -> str:  # noqa: ANN002, ANN003
    """Run ``checks.answer``: it returns ``right``, prints exactly one line and never raises."""
    assert bool(checks.answer(*args, **kwargs)) is right
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("✅ " if right else "❌ "), out
    return out.strip()


def test_the_four_outcomes(capsys: pytest.CaptureFixture[str]) -> None:
    judge = checks.at_least(0.79)
    # unanswered: the name does not exist yet, or still holds the placeholder `...`
    message = said(capsys, False, "macro_auc", checks.NUMBER, judge, HINT, namespace={})
    assert message == f"❌ macro_auc has no answer yet (NameError) — {HINT}"
    assert said(capsys, False, "macro_auc", checks.NUMBER, judge, HINT, namespace={"macro_auc": ...}) \
        == f"❌ macro_auc has no answer yet — {HINT}"
    # wrong type: a string, and a bool (which Python counts as a number)
    assert said(capsys, False, "macro_auc", checks.NUMBER, judge, HINT, namespace={"macro_auc": "0.8"}) \
        == f"❌ macro_auc should be a number, not str — {HINT}"
    assert "not bool" in said(capsys, False, "macro_auc", checks.NUMBER, judge, HINT, namespace={"macro_auc": True})
    # wrong value
    assert said(capsys, False, "macro_auc", checks.NUMBER, judge, HINT, namespace={"macro_auc": 0.61}) \
        == f"❌ macro_auc: 0.6100 is below 0.79 — {HINT}"
    assert "below" in said(capsys, False, "macro_auc", checks.NUMBER, judge, HINT,
                           namespace={"macro_auc": float("nan")})
    # right, NumPy numbers included
    assert said(capsys, True, "macro_auc", checks.NUMBER, judge, HINT, namespace={"macro_auc": np.float32(0.8)}) \
        == "✅ macro_auc: 0.8000"


def test_the_answer_is_read_from_the_calling_cell(capsys: pytest.CaptureFixture[str]) -> None:
    best_name = "job-3"  # noqa: F841 - read by checks.answer from this frame, as from a notebook cell
    assert checks.answer("best_name", str, checks.equal_to("job-3"), "hint")
    assert capsys.readouterr().out == "✅ best_name: 'job-3'\n"
    features = pd.DataFrame({"job": ["student", "admin."]})
    judge = checks.indicator_of(features["job"] == "student")
    assert not checks.answer('features["not_working"]', pd.Series, judge, "hint")
    assert capsys.readouterr().out == '❌ features["not_working"] has no answer yet (KeyError) — hint\n'
    features["not_working"] = (features["job"] == "student").astype(int)
    assert checks.answer('features["not_working"]', pd.Series, judge, "hint")


def test_a_judge_that_fails_is_a_wrong_value(capsys: pytest.CaptureFixture[str]) -> None:
    weights = {"A": 0.9, "B": 0.1}
    message = said(capsys, False, "share", checks.NUMBER, checks.close_to(0.9, 1e-6), "hint",
                   get=lambda: weights["C"])
    assert message == "❌ share has no answer yet (KeyError) — hint"
    message = said(capsys, False, "winner", str, lambda w: f"{weights[w]}", "hint", namespace={"winner": "C"})
    assert message.startswith("❌ winner: could not be checked (KeyError: 'C') — hint")


def test_judges(capsys: pytest.CaptureFixture[str]) -> None:
    assert checks.close_to(0.5, 0.001)(0.5004) is None and "not within 0.001" in checks.close_to(0.5, 0.001)(0.6)
    assert checks.equal_to(400)(400) is None and checks.equal_to(400)(500) == "500 is not the expected value"
    assert checks.one_of(["A", "B"])("A") is None and "one of ['A', 'B']" in checks.one_of(["A", "B"])("C")
    frame = pd.DataFrame({"no_previous_contact": [1, 0, 1], "not_working": [0, 0, 1]})
    assert checks.has_rows(3)(frame) is None and checks.has_rows(4)(frame) == "has 3 rows, not 4"
    assert checks.same_frame(frame.copy())(frame) is None
    assert "shape" in checks.same_frame(frame.iloc[:2])(frame)
    assert "columns differ" in checks.same_frame(frame[["not_working", "no_previous_contact"]])(frame)
    assert "values differ" in checks.same_frame(frame.assign(not_working=1))(frame)
    assert checks.indicator_of(pd.Series([False, False, True]))(frame["not_working"]) is None
    assert "in 1 rows" in checks.indicator_of(pd.Series([True, False, True]))(frame["not_working"])
    assert "only 0 and 1" in checks.indicator_of(pd.Series([True, False, True]))(frame["not_working"] * 2)
    assert checks.without_columns(["duration"])(frame) is None
    assert checks.without_columns(["duration", "not_working"])(frame) == "still has not_working"


def test_an_object_in_s3(capsys: pytest.CaptureFixture[str]) -> None:
    s3 = boto3.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
    with Stubber(s3) as stub:
        stub.add_client_error("get_object", "NoSuchKey", http_status_code=404)
        body = b"hello, SageMaker"
        stub.add_response("get_object", {"Body": StreamingBody(io.BytesIO(body), len(body))})

        def get() -> bytes:
            return s3.get_object(Bucket="b", Key="k")["Body"].read()

        message = said(capsys, False, "s3://b/k", bytes, checks.equal_to(body), "Upload it.", get=get)
        assert message == "❌ s3://b/k has no answer yet (NoSuchKey) — Upload it."
        said(capsys, True, "s3://b/k", bytes, checks.equal_to(body), "Upload it.", get=get)


def test_lab_verifications_raise_one_line_without_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    checks.check_close(0.5001, 0.5, 0.001, "AUC")
    assert capsys.readouterr().out == "✅ AUC: 0.5001 matches 0.5000 (±0.001).\n"
    with pytest.raises(CheckFailed) as failed:
        checks.check_equal(500, 400, "status", "It answers 400 for a wrong feature count.")
    assert str(failed.value) == "❌ status is 500; expected 400. It answers 400 for a wrong feature count."
    assert failed.value._render_traceback_() == [str(failed.value)]  # what IPython prints instead of a traceback
    assert issubclass(CheckFailed, AssertionError)  # so pytest and papermill stop at a broken lab


def test_a_verdict_displays_nothing_under_its_line(capsys: pytest.CaptureFixture[str]) -> None:
    """A check cell ending in ``checks.answer(...)`` shows its ✅/❌ line only, no echoed ``True``/``False``.

    IPython's display formatter gives no data for the verdict, and ipykernel sends no ``execute_result`` for an
    empty one (the terminal shell still prints its ``Out[n]:`` prompt, which a notebook never shows).
    """
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        verdict = checks.answer("best", int, checks.equal_to(3), "hint", namespace={"best": 3})
        assert verdict and shell.display_formatter.format(verdict) == ({}, {})
        assert not checks.answer("best", int, checks.equal_to(3), "hint", namespace={})
    finally:
        InteractiveShell.clear_instance()
    assert capsys.readouterr().out.splitlines() == ["✅ best: 3", "❌ best has no answer yet (NameError) — hint"]
