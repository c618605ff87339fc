"""``python -m sagemaker_emulator.images.remote_function <ContainerArguments>``: a @step/@remote job.

The SDK starts these jobs with ``job_driver.sh``, which bootstraps the container (unzip the
user's workspace, copy the pre-execution script and dependency file, ``pip install -U`` them, write
``/opt/ml/input/sm_training.env``) and then runs
``python -m sagemaker.core.remote_function.invoke_function``. Locally that driver cannot run as it
is: it hard-codes ``/opt/ml``, and upgrading pinned packages would rewrite the emulator's own
environment. This launcher does the same steps in the job's directory (``SAGEMAKER_BASE_DIR``):

* the workspace (``<channel named by --func_step_s3_dir>/workspace.zip``, or ``sm_rf_user_ws`` for
  @remote) is unpacked into the job's working directory and becomes the current directory and the
  first entry of ``sys.path``, as in the container;
* dependencies are not installed: each requirement must already be importable in the emulator's
  environment (a different version is accepted and said in the log; a missing one fails the job
  saying which);
* a pre-execution script (``pre_exec.sh``) runs with ``bash`` in the workspace;
* the SDK's failure file path is pointed at ``<job>/output/failure`` before ``invoke_function`` runs,
  so a failing function fails the job with its exception (the SDK's own path does not exist here,
  and its error handler would then exit 0, uploading nothing).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

WORKSPACE = "sagemaker_remote_function_workspace"
DEPENDENCIES_CHANNEL = "pre_exec_script_and_dependencies"
REMOTE_WORKSPACE_CHANNEL = "sm_rf_user_ws"


def _args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--func_step_s3_dir")
    parser.add_argument("--dependency_settings")
    parser.add_argument("--job_conda_env")
    return parser.parse_known_args(argv)[0]


def unpack_workspace(base: Path, channel: str, cwd: Path) -> Path:
    """The user's workspace, unpacked under ``cwd`` (an empty one when the job has none)."""
    archive = base / "input" / "data" / channel / "workspace.zip"
    if archive.is_file():
        shutil.unpack_archive(str(archive), str(cwd))
        print(f"INFO: unpacked the workspace {channel}/workspace.zip", flush=True)
    workspace = cwd / WORKSPACE
    workspace.mkdir(exist_ok=True)
    return workspace


def check_requirements(path: Path) -> str | None:
    """None when every requirement in ``path`` is installed (any version); else the failure reason."""
    from packaging.requirements import InvalidRequirement, Requirement

    missing = []
    for line in path.read_text().splitlines():
        text = line.split("#", 1)[0].strip()
        if not text or text.startswith("-"):
            continue
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            return f"ClientError: requirements.txt line {text!r} is not a requirement the emulator can check."
        try:
            installed = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            missing.append(str(requirement))
            continue
        if requirement.specifier and not requirement.specifier.contains(installed, prereleases=True):
            print(f"INFO: {requirement} requested; using the installed {requirement.name} {installed} "
                  "(the local emulator runs @step/@remote functions in its own environment, without pip)",
                  flush=True)
    if missing:
        return ("ClientError: the function's dependencies are not installed in the emulator's environment: "
                f"{', '.join(missing)}. Install them where the emulator runs (the emulator does not pip-install "
                "a function's requirements), or drop them from the dependency file.")
    return None


def bootstrap(base: Path, argv: list[str]) -> tuple[Path, str | None]:
    """Do what ``job_driver.sh`` and the bootstrap script do; the workspace and a failure reason, if any."""
    args = _args(argv)
    if args.job_conda_env:
        return base, "ClientError: job_conda_env is not supported by the local emulator (no conda environments)."
    cwd = base / "code"
    cwd.mkdir(parents=True, exist_ok=True)
    workspace = unpack_workspace(base, args.func_step_s3_dir or REMOTE_WORKSPACE_CHANNEL, cwd)
    dependencies = base / "input" / "data" / DEPENDENCIES_CHANNEL
    if dependencies.is_dir():
        for item in dependencies.iterdir():
            if item.is_file():
                shutil.copy(item, workspace / item.name)
    settings = json.loads(args.dependency_settings) if args.dependency_settings else {}
    dependency_file = settings.get("dependency_file")
    if dependency_file and (workspace / dependency_file).is_file():
        if not dependency_file.endswith(".txt"):
            return workspace, f"ClientError: {dependency_file}: only requirements.txt files are supported locally."
        reason = check_requirements(workspace / dependency_file)
        if reason:
            return workspace, reason
    script = workspace / "pre_exec.sh"
    if script.is_file():
        done = subprocess.run(["bash", str(script)], cwd=workspace, check=False)
        if done.returncode != 0:
            return workspace, f"ClientError: the pre-execution commands failed with exit code {done.returncode}."
    return workspace, None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    base = Path(os.environ["SAGEMAKER_BASE_DIR"])
    failure = base / "output" / "failure"
    failure.parent.mkdir(parents=True, exist_ok=True)
    workspace, reason = bootstrap(base, argv)
    if reason:
        failure.write_text(reason)
        print(reason, file=sys.stderr, flush=True)
        return 1
    os.chdir(workspace)
    sys.path.insert(0, str(workspace))
    from sagemaker.core.remote_function import errors, invoke_function

    errors.FAILURE_REASON_PATH = str(failure)
    try:
        invoke_function.main(argv)
    except SystemExit as done:
        return int(done.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
