"""Where the emulator keeps its state, and the identity it presents.

One state directory holds everything a learner made (objects, jobs, logs)
plus the emulator's own credentials and CA, so that deleting it is a full
reset and two state directories are two independent emulators.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import string
from dataclasses import dataclass
from pathlib import Path

STATE_ENV = "SAGEMAKER_EMULATOR_STATE_DIR"
ACCOUNT_ID = "123456789012"
DEFAULT_REGION = "us-east-1"
ROLE_NAME = "AmazonSageMaker-ExecutionRole-Local"
ROLE_PATH = "/service-role/"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT_ID}:role{ROLE_PATH}{ROLE_NAME}"
SESSION_NAME = "SageMaker"


def default_state_dir() -> Path:
    env = os.environ.get(STATE_ENV)
    if env:
        return Path(env).expanduser().resolve()
    return (Path.home() / ".sagemaker-emulator").resolve()


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str


@dataclass(frozen=True)
class StatePaths:
    """Every file and folder in a state directory, named once."""

    root: Path

    @property
    def db(self) -> Path:
        return self.root / "state.db"

    @property
    def s3(self) -> Path:
        return self.root / "s3"

    @property
    def jobs(self) -> Path:
        return self.root / "jobs"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def ca(self) -> Path:
        return self.root / "ca"

    @property
    def credentials(self) -> Path:
        return self.root / "credentials.json"

    @property
    def server_info(self) -> Path:
        return self.root / "server.json"

    @property
    def daemon_log(self) -> Path:
        return self.root / "daemon.log"

    def ensure(self) -> StatePaths:
        """Create the state directory private to its user (``0700``): it holds the credentials, the CA's
        key, every object and every job's files, and other local users must not read or plant any of it."""
        self.root.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
        make_private(self.root)
        for path in (self.s3, self.jobs, self.cache, self.ca):
            path.mkdir(mode=PRIVATE_DIR, exist_ok=True)
        return self


PRIVATE_DIR = 0o700
#: what a state directory may already hold for ``make_private`` to tighten it (ours, or nothing yet)
STATE_MARKERS = ("credentials.json", "state.db")


def make_private(root: Path) -> None:
    """Tighten an existing state directory to ``0700`` when it is ours: empty or holding our state.

    Why the condition: ``--state-dir`` could name a shared folder (``/tmp``, a home directory); changing
    such a folder's mode would break other programs, so the emulator only warns there.
    """
    info = root.stat()
    if info.st_mode & 0o077 == 0:
        return
    if info.st_uid == os.getuid() and (not any(root.iterdir()) or any((root / m).exists() for m in STATE_MARKERS)):
        os.chmod(root, PRIVATE_DIR)
        return
    logging.getLogger("sagemaker_emulator").warning(
        "The state directory %s is readable by other users (mode %o); use a private directory.",
        root, info.st_mode & 0o777)


def _random(alphabet: str, size: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(size))


def load_credentials(paths: StatePaths) -> Credentials:
    """Read the emulator's credentials, creating them (mode 0600) on first use."""
    path = paths.credentials
    if path.exists():
        data = json.loads(path.read_text())
        return Credentials(data["aws_access_key_id"], data["aws_secret_access_key"])
    creds = Credentials(
        "AKIA" + _random(string.ascii_uppercase + string.digits, 16),
        _random(string.ascii_letters + string.digits + "+/", 40),
    )
    paths.root.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"aws_access_key_id": creds.access_key, "aws_secret_access_key": creds.secret_key}, fh)
    try:
        os.link(tmp, path)  # first writer wins when two processes race
    except FileExistsError:
        pass
    tmp.unlink(missing_ok=True)
    return load_credentials(paths)
