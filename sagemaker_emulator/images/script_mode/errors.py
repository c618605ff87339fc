"""Error types whose ``str()`` is exactly what lands in ``output/failure``.

SageMaker copies the first 1024 characters of the failure file into
``FailureReason``, and notebooks/tests match on it, so these classes reproduce
the training toolkit's wording: the class name on the first line, then
``ExitCode``, ``ErrorMessage``, optional ``ExtraInfo`` and ``Command``.
"""

from __future__ import annotations


class ClientError(Exception):
    """A failure caused by the user's code or configuration (exit code 1, message as-is)."""


class ProcessError(ClientError):
    """A child process (pip or the user's entry point) exited non-zero."""

    def __init__(self, cmd: str, return_code: int | str, output: str = "", info: str | None = None) -> None:
        super().__init__(cmd, return_code, output, info)
        self.cmd = cmd
        self.return_code = str(return_code)
        self.output = output
        self.extra_info = info

    def __str__(self) -> str:
        lines = [f"{type(self).__name__}:", f"ExitCode {self.return_code}", f'ErrorMessage "{self.output}"']
        if self.extra_info is not None:
            lines.append(f'ExtraInfo "{self.extra_info}"')
        lines.append(f'Command "{self.cmd}"')
        return "\n".join(lines).strip()


class ExecuteUserScriptError(ProcessError):
    """The user's entry point exited non-zero."""


class InstallRequirementsError(ProcessError):
    """``pip install -r requirements.txt`` failed for a script entry point."""


class InstallModuleError(ProcessError):
    """``pip install .`` failed for a package (setup.py) entry point."""


class TrainingStopped(BaseException):
    """SIGTERM arrived: stop now, report neither success nor failure.

    Derives from BaseException so that no ``except Exception`` on the way up
    turns a requested stop into a "Framework Error".
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
