"""Error classes and the failure-file text of the XGBoost algorithm container.

The AWS container raises ``sagemaker_algorithm_toolkit.exceptions`` errors whose message gains a
``" (caused by <ExceptionClass>)"`` suffix when they wrap another exception; notebooks and tests
match on these texts, so the same convention is kept here.

The failure file follows the ``sagemaker_containers`` trainer: ``"framework error: \\n" + traceback +
"\\n" + str(e)``.  Deviations (in the user's favour): AWS prints the *whole* traceback, including
chained exceptions, which often pushes the actual message past the 1024 characters that end up in
``FailureReason``.  We keep only the innermost frame of the raised exception (no chain), and XGBoost
messages lose their native ``Stack trace:`` tail, so the message survives the cut.
"""

from __future__ import annotations

import traceback


class BaseToolkitError(Exception):
    """Base of the three error categories the container distinguishes (algorithm, user, platform)."""

    def __init__(self, message: str | None = None, caused_by: BaseException | None = None) -> None:
        if message:
            text = message
        elif caused_by is not None:
            text = str(caused_by)
        else:
            text = "unknown error occurred"
        if caused_by is not None:
            text += f" (caused by {caused_by.__class__.__name__})"
        super().__init__(text)
        self.message = text
        self.caused_by = caused_by


class AlgorithmError(BaseToolkitError):
    """A failure that is the algorithm's fault (a bug or an unexpected library error)."""


class UserError(BaseToolkitError):
    """A failure the user can fix (bad hyperparameter, missing channel, malformed data)."""


class PlatformError(BaseToolkitError):
    """A failure of the environment (e.g. an impossible resource configuration)."""


FRAMEWORK_ERROR_PREFIX = "framework error: \n"


def failure_text(error: BaseException) -> str:
    """Return the text the trainer writes to ``output/failure`` for ``error``.

    Only the innermost frame of ``error`` itself is kept (see the module docstring).
    """
    short_traceback = "".join(traceback.format_exception(error, limit=-1, chain=False))
    return f"{FRAMEWORK_ERROR_PREFIX}{short_traceback}\n{error}"


def legacy_failure_text(error: BaseException) -> str:
    """The failure file of the legacy first-party algorithm, which SageMaker shows as the FailureReason.

    First-party algorithms report a user's mistake as ``ClientError: <message>`` and anything else as
    ``AlgorithmError: <message>``, without a traceback.
    """
    category = "ClientError" if isinstance(error, UserError) else "AlgorithmError"
    return f"{category}: {library_message(error)}"


def library_message(error: BaseException) -> str:
    """``str(error)`` without the native ``Stack trace:`` block XGBoost appends to its errors."""
    return str(error).split("\nStack trace:", 1)[0].rstrip()


def exit_code_for(error: BaseException) -> int:
    """Mirror ``sagemaker_containers``: use ``errno`` when it is an int, otherwise 1."""
    code = getattr(error, "errno", None)
    try:
        value = int(code) if code is not None else 1
    except (TypeError, ValueError):
        value = 1
    return value if value != 0 else 1
