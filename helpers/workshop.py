"""One call that makes a notebook ready: ``ws = workshop.setup(mode)``.

In ``local`` mode it starts (or reuses) the emulator daemon and exports its
environment into this kernel, so every later cell is plain SageMaker SDK V3
and boto3 code that would run unchanged on AWS. In ``sagemaker`` mode it
removes exactly those variables first (a learner can never mix the two by
accident) and uses the real account: Studio's execution role and the
account's default bucket. ``auto`` picks ``sagemaker`` only when real
credentials and a role are present.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from . import sdk_fixes

MODES = ("local", "sagemaker", "auto")
STUDIO_METADATA = Path("/opt/ml/metadata/resource-metadata.json")
DEFAULT_REGION = "us-east-1"


@dataclass
class Workshop:
    """Everything a lab needs to talk to SageMaker, whichever SageMaker that is."""

    mode: str
    region: str
    bucket: str
    role: str
    session: Any = field(repr=False)
    boto_session: boto3.Session = field(repr=False)
    endpoint_url: str | None = None
    state_dir: Path | None = None

    def client(self, name: str, **kwargs: Any) -> Any:
        return self.boto_session.client(name, **kwargs)

    def s3_uri(self, *parts: str) -> str:
        return "s3://" + "/".join([self.bucket, *(p.strip("/") for p in parts)])

    def monitoring_clock_tags(self, hour_seconds: float) -> list[dict[str, str]]:
        """Tags that make a monitoring schedule's hour last ``hour_seconds`` real seconds on the emulator; none on AWS.

        Why a helper: an hourly schedule on AWS runs once an hour, and a lab cannot wait that long offline. The
        emulator reads the tag ``sagemaker-emulator:hour-seconds`` of a schedule (and says so in the schedule's tag
        ``sagemaker-emulator:clock``); in ``sagemaker`` mode this returns no tag, so the lab's calls stay AWS's own.
        """
        if self.mode != "local":
            return []
        return [{"Key": "sagemaker-emulator:hour-seconds", "Value": f"{hour_seconds:g}"}]

    def _repr_markdown_(self) -> str:
        where = (f"the local emulator at `{self.endpoint_url}` (state in `{self.state_dir}`)"
                 if self.mode == "local" else "**Amazon SageMaker in your AWS account** (this costs money)")
        return (f"**Mode `{self.mode}`** — talking to {where}.\n\n"
                f"| region | bucket | role |\n|---|---|---|\n| `{self.region}` | `{self.bucket}` | `{self.role}` |")


def _emulator_variables() -> tuple[str, ...]:
    from sagemaker_emulator.envvars import MANAGED

    return MANAGED


def _emulator_credentials(state_dir: str | None) -> tuple[str, str] | None:
    if not state_dir:
        return None
    try:
        from sagemaker_emulator.config import StatePaths, load_credentials

        path = StatePaths(Path(state_dir))
        if not path.credentials.exists():
            return None
        creds = load_credentials(path)
        return creds.access_key, creds.secret_key
    except (OSError, ValueError, KeyError):
        return None


def clear_emulator_environment(environ: dict[str, str] | os._Environ[str] = os.environ) -> list[str]:
    """Remove the variables ``sagemaker-emulator env`` exported, and only those; return their names.

    Credentials are removed only when they are the emulator's own, so a
    learner's real keys in the environment survive the switch to AWS. Trust
    variables are removed only when they name an emulator bundle, and the
    values they had before the emulator set them are put back: behind a
    company's TLS inspection, AWS itself is only reachable with that trust.
    Proxy variables likewise: the user's own proxy stays or comes back.
    """
    from sagemaker_emulator.envvars import (
        DEFAULTED,
        TRUST_VARIABLES,
        is_emulator_bundle,
        is_emulator_default,
        prior_trust,
    )
    from sagemaker_emulator.upstream import PROXY_VARIABLES, prior_proxy

    removed = []
    prior = {**prior_trust(environ), **prior_proxy(environ)}
    emulated = "SAGEMAKER_EMULATOR_STATE_DIR" in environ  # read once: the loop removes it
    creds = _emulator_credentials(environ.get("SAGEMAKER_EMULATOR_STATE_DIR"))
    for name in _emulator_variables():
        value = environ.get(name)
        if value is None:
            continue
        if name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            if creds is None or value not in creds:
                continue
        elif name in ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_EC2_METADATA_DISABLED"):
            if not emulated:
                continue
        elif name in TRUST_VARIABLES and not is_emulator_bundle(value):
            continue
        elif name in PROXY_VARIABLES and prior.get(name) == value:  # the user's own proxy, not the emulator
            continue
        del environ[name]
        removed.append(name)
    for name in DEFAULTED if emulated else ():
        if is_emulator_default(name, environ.get(name, "")):
            del environ[name]
            removed.append(name)
    for name, value in prior.items():
        environ.setdefault(name, value)
    return removed


def _real_aws_available(region: str) -> bool:
    """Real credentials that resolve to a role (Studio, a notebook instance, or assumed-role keys)?"""
    if STUDIO_METADATA.exists():
        return True
    if os.environ.get("SAGEMAKER_EMULATOR_STATE_DIR"):
        return False
    import botocore.config

    session = boto3.Session(region_name=region)
    if session.get_credentials() is None:
        return False
    try:
        sts = session.client("sts", config=botocore.config.Config(
            connect_timeout=3, read_timeout=5, retries={"max_attempts": 1}))
        arn = sts.get_caller_identity()["Arn"]
    except Exception:  # offline, expired or invalid: not usable
        return False
    return ":assumed-role/" in arn or ":role/" in arn


def _resolve_mode(mode: str, region: str) -> str:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    if mode != "auto":
        return mode
    return "sagemaker" if _real_aws_available(region) else "local"


def _start_local(region: str, state_dir: Path | None) -> tuple[str, Path]:
    from sagemaker_emulator.cli import start
    from sagemaker_emulator.config import default_state_dir
    from sagemaker_emulator.envvars import environment

    state = Path(state_dir or default_state_dir()).expanduser().resolve()
    info = start(state, 0, region)
    clear_emulator_environment()
    os.environ.update(environment(state, info["endpoint_url"], region))
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        os.environ.pop(name, None)
    return info["endpoint_url"], state


_RICH_MARKUP = re.compile(r"\[/?(?:bold|italic|underline|red|green|blue|yellow|magenta|cyan|white)[^\]]*\]")


#: libraries whose INFO records are noise in a notebook, whatever the root logger's level becomes
QUIET_LOGGERS = ("botocore", "boto3", "urllib3", "s3transfer")

#: SDK records that tell a learner nothing (each below ERROR, matched whole): why each is noise is in its comment
NOISE = tuple(re.compile(pattern) for pattern in (
    # image_uris.retrieve() was not given an instance type because the built-in XGBoost image needs none
    r"Ignoring unnecessary (?:instance type|Python version): None\.",
    # the SDK builds an internal client without naming a region and uses the session's, which is the right one
    r"No region provided\. Using default region\.",
    # Pipeline.definition()/upsert()/start() drop job names from each step (SageMaker names a pipeline's jobs
    # itself), one warning per step and call: the learner's definition is as intended
    r"Popping out '\w+' from the pipeline definition .*",
))
#: parts of SDK records that mean nothing to a learner, cut out of the message (the rest is kept)
NOISE_PARTS = (re.compile(r" using server None in \w+ mode"),)

#: a CloudWatch log line as the SDK logs it: ``<job>/algo-1-<epoch>:\n<line>``
_JOB_LOG = re.compile(r"(?P<job>[^\s/]+)/(?P<host>[^\s/]+?)-\d+:\n(?P<line>.*)", re.S)


def decode_log_line(line: str) -> str:
    """A job log line as the job wrote it: CloudWatch shows a tab as ``#011`` (syslog's octal escape)."""
    return line.replace("#011", "\t")


class RawLog:
    """A training job's log, collapsed under one line the learner can open, updated in place while the job runs.

    Why: a training cell printed ~125 lines (one per boosting round) under the SDK's live panel; the panel and the
    metric plot say what matters, and the raw log stays one click away, its tabs decoded.
    """

    def __init__(self, display: Any = None, interval: float = 0.5) -> None:
        self._display, self.interval = display, interval
        self.job: str | None = None
        self.lines: list[str] = []
        self._handle: Any = None
        self._shown = 0.0
        self._pending = False

    def html(self) -> str:
        import html

        text = html.escape("\n".join(self.lines))
        return (f"<details><summary>raw log of <code>{html.escape(self.job or '')}</code>: {len(self.lines)} lines "
                f"(click to open)</summary><pre style=\"max-height:24em;overflow:auto;font-size:11px\">{text}</pre>"
                "</details>")

    def add(self, job: str, host: str, line: str) -> None:
        if job != self.job:
            self.flush()
            self.job, self.lines, self._handle = job, [], None
        self.lines.append(f"[{host}] {decode_log_line(line)}")
        self._pending = True
        if self._handle is None or time.monotonic() - self._shown >= self.interval:
            self.flush()

    def flush(self) -> None:
        """Show what has arrived (the first call displays the box, later ones update it)."""
        if not self._pending:
            return
        from IPython.display import HTML, display

        show = self._display or display
        if self._handle is None:
            self._handle = show(HTML(self.html()), display_id=True)
        else:
            self._handle.update(HTML(self.html()))
        self._shown, self._pending = time.monotonic(), False

    def close(self) -> None:
        """The cell ended: show the last lines; the next job's log gets a box of its own."""
        self.flush()
        self.job, self.lines, self._handle = None, [], None


class _NotebookHandler(logging.StreamHandler):
    """The SDK's records for a learner: job logs into a :class:`RawLog`, noise dropped, the rest one line each."""

    def __init__(self, raw_log: RawLog) -> None:
        super().__init__(sys.stdout)
        self.raw_log = raw_log
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        job_line = _JOB_LOG.fullmatch(message)
        if job_line:
            self.raw_log.add(job_line["job"], job_line["host"], job_line["line"])
            return
        if record.levelno < logging.ERROR:
            if any(pattern.fullmatch(message.strip()) for pattern in NOISE):
                return
            for part in NOISE_PARTS:
                message = part.sub("", message)
        self.raw_log.flush()
        record.msg, record.args = _RICH_MARKUP.sub("", message), ()
        self.stream = sys.stdout  # the kernel swaps sys.stdout per cell; write to the current one
        super().emit(record)


def _close_raw_log_after_each_cell(raw_log: RawLog) -> None:
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None:
        shell.events.register("post_run_cell", lambda _result: raw_log.close())


def show_sdk_logs(level: int = logging.INFO) -> None:
    """Show the SDK's progress in the notebook, quietly: one line per step, job logs collapsed (see :class:`RawLog`).

    SDK V3 leaves logging unconfigured unless rich logging is opted into, so ``wait(logs=True)`` would print
    nothing in a plain kernel. Records that say nothing to a learner (:data:`NOISE`) are dropped; errors never are.
    """
    logger = logging.getLogger("sagemaker")
    if any(getattr(h, "_workshop", False) for h in logger.handlers):
        return
    raw_log = RawLog()
    handler = _NotebookHandler(raw_log)
    handler._workshop = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    _close_raw_log_after_each_cell(raw_log)
    logging.getLogger("sagemaker.config").setLevel(logging.WARNING)
    # SDK V3 calls ``logging.basicConfig(level=INFO)`` when ``sagemaker.core.experiments`` is imported (e.g. by
    # ``ModelBuilder``), which would print botocore's per-client "Found endpoint for ..." lines in every cell.
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def opt_out_of_telemetry(session: Any) -> None:
    """Set the SDK's own ``TelemetryOptOut`` default in this session's config, unless the config already decides.

    The SDK offers the opt-out (and prints a notice about it on the first job); a workshop run against a local
    emulator has nothing to report, and the notice is one more paragraph between a learner and the job's progress.
    """
    config = session.sagemaker_config if isinstance(session.sagemaker_config, dict) else {}
    modules = config.setdefault("SageMaker", {}).setdefault("PythonSDK", {}).setdefault("Modules", {})
    modules.setdefault("TelemetryOptOut", True)
    config.setdefault("SchemaVersion", "1.0")
    session.sagemaker_config = config


def say(line: str) -> None:
    """One visible line before a slow step, shown at once (not when the cell ends)."""
    print(line, flush=True)


def setup(mode: str = "auto", region: str | None = None, state_dir: str | Path | None = None,
          boto_session: boto3.Session | None = None) -> Workshop:
    """Return a ready context for ``mode`` (``local``, ``sagemaker`` or ``auto``)."""
    region = region or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
    show_sdk_logs()
    chosen = _resolve_mode(mode, region)
    endpoint: str | None = None
    state: Path | None = None
    if chosen == "local":
        say("starting the local SageMaker emulator (or reusing the running one)…")
        endpoint, state = _start_local(region, Path(state_dir) if state_dir else None)
    else:
        clear_emulator_environment()
    say("importing the SageMaker Python SDK (takes a few seconds the first time)…")
    from sagemaker.core.helper.session_helper import Session, get_execution_role

    sdk_fixes.apply_all()  # a failed job shows its FailureReason, not an AttributeError (see helpers.sdk_fixes)
    boto = boto_session or boto3.Session(region_name=region)
    session = Session(boto_session=boto)
    opt_out_of_telemetry(session)
    role = get_execution_role(session)
    bucket = session.default_bucket()
    return Workshop(chosen, session.boto_region_name, bucket, role, session, boto, endpoint, state)
