"""Repairs for SageMaker Python SDK V3 bugs that would hide from a learner why a job failed.

Each repair is the smallest change that makes the SDK behave as its own code intends, applies on AWS as
locally (the bugs are the SDK's, not the emulator's), and does nothing once the SDK is fixed.
``helpers.workshop.setup`` applies them; the README lists them with the other SDK bugs found so far.

``sagemaker.core.common_utils._check_job_status`` (SDK 3.27 / sagemaker-core 2.27), which
``ProcessingJob``/``ScriptProcessor.run(wait=True)`` and ``Transformer.wait`` call when a job ends, raises
``exceptions.UnexpectedStatusException`` (or ``exceptions.CapacityError``) with the job's FailureReason; but
that module's ``exceptions`` is ``botocore.exceptions`` (``from botocore import exceptions``), which has
neither class. The learner gets ``AttributeError: module 'botocore.exceptions' has no attribute
'UnexpectedStatusException'`` instead of the reason. The repair names the SDK's own classes on
``botocore.exceptions``, so the intended exception, message and FailureReason come through.
"""

from __future__ import annotations

#: the names the SDK looks up on ``botocore.exceptions``; each is a class of ``sagemaker.core.exceptions``
JOB_STATUS_EXCEPTIONS = ("UnexpectedStatusException", "CapacityError")


def repair_job_status_errors() -> list[str]:
    """Give ``botocore.exceptions`` the SDK exception classes ``_check_job_status`` expects; return those added."""
    import botocore.exceptions

    try:
        from sagemaker.core import exceptions as sdk_exceptions
    except ImportError:  # no SDK V3 in this kernel: nothing to repair
        return []
    added = []
    for name in JOB_STATUS_EXCEPTIONS:
        if not hasattr(botocore.exceptions, name) and hasattr(sdk_exceptions, name):
            setattr(botocore.exceptions, name, getattr(sdk_exceptions, name))
            added.append(name)
    return added


def apply_all() -> list[str]:
    """Apply every repair; return what was changed (empty once the SDK no longer needs them)."""
    return repair_job_status_errors()
