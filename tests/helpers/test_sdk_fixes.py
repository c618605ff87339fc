"""``helpers.sdk_fixes``: the SDK V3 bug is real, the repair restores the SDK's intended error, and a learner's
kernel set up by ``helpers.workshop.setup`` sees a failed processing job's FailureReason."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _python(code: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd=ROOT,
                          env=env or dict(os.environ), timeout=timeout)


def test_the_sdk_looks_the_exception_up_on_botocore_and_the_repair_supplies_the_sdks_own():
    done = _python("""
        from sagemaker.core.common_utils import _check_job_status
        desc = {"ProcessingJobStatus": "Failed", "FailureReason": "AlgorithmError: boom"}
        try:
            _check_job_status("job", desc, "ProcessingJobStatus")
        except AttributeError as error:
            print("before:", error)
        from helpers import sdk_fixes
        print("added:", sdk_fixes.apply_all(), sdk_fixes.apply_all())
        from sagemaker.core.exceptions import UnexpectedStatusException
        try:
            _check_job_status("job", desc, "ProcessingJobStatus")
        except UnexpectedStatusException as error:
            print("after:", type(error).__name__, error.actual_status, error)
    """)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("before:") and "UnexpectedStatusException" in lines[0], \
        "the SDK bug is gone: drop the repair (and its README entry)"
    assert lines[1] == "added: ['UnexpectedStatusException', 'CapacityError'] []", "applied once, idempotent"
    assert lines[2].startswith("after: UnexpectedStatusException Failed Error for Processing job job: Failed. "
                               "Reason: AlgorithmError: boom.")


@pytest.mark.slow
def test_a_failed_processing_job_shows_its_failure_reason_in_a_workshop_kernel(tmp_path: Path):
    """The public processing notebook's ``ScriptProcessor.run`` with a script that fails, in a kernel made by setup."""
    state = tmp_path / "state"
    script = tmp_path / "preprocessing.py"
    script.write_text("raise ValueError(\"column 'age' is missing\")\n")
    code = f"""
        import boto3
        from helpers import workshop
        ws = workshop.setup("local", state_dir={str(state)!r})
        from sagemaker.core import image_uris
        from sagemaker.core.processing import ScriptProcessor
        from sagemaker.core.shapes import ProcessingInput, ProcessingS3Input
        boto3.client("s3").put_object(Bucket=ws.bucket, Key="fail/in/data.csv", Body=b"1,2\\n")
        image = image_uris.retrieve(framework="sklearn", region=ws.region, version="1.2-1", py_version="py3",
                                    instance_type="ml.m5.large")
        processor = ScriptProcessor(image_uri=image, command=["python3"], role=ws.role, instance_type="ml.m5.large",
                                    instance_count=1, base_job_name="sm-immday-skprocessing",
                                    sagemaker_session=ws.session)
        try:
            processor.run(code={str(script)!r}, inputs=[ProcessingInput(input_name="input-1", s3_input=
                ProcessingS3Input(s3_uri=f"s3://{{ws.bucket}}/fail/in", local_path="/opt/ml/processing/input",
                                  s3_data_type="S3Prefix", s3_input_mode="File"))], wait=True, logs=False)
        except Exception as error:
            print("RAISED", type(error).__name__, str(error).replace("\\n", " "))
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    try:
        done = _python(code, env=env, timeout=180)
    finally:
        subprocess.run([sys.executable, "-m", "sagemaker_emulator.cli", "stop", "--state-dir", str(state)],
                       capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    raised = [line for line in done.stdout.splitlines() if line.startswith("RAISED")]
    assert raised, done.stdout[-2000:]
    assert raised[0].startswith("RAISED UnexpectedStatusException Error for Processing job sm-immday-skprocessing")
    assert "Reason: AlgorithmError" in raised[0] and "column 'age' is missing" in raised[0], raised[0]
