"""``sagemaker-emulator serve | start | stop | status | env | logs``.

``serve`` runs in the foreground; ``start`` launches it as a daemon for a
state directory (reusing one that is already running there) and returns once
it answers its health check; ``env`` prints the exports that point boto3, the
SDK and the AWS CLI at it; ``logs`` shows the access log (what clients asked
for and what the emulator answered).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from . import __version__
from .config import DEFAULT_REGION, StatePaths, default_state_dir

START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
#: a daemon started with this set to a pid stops (jobs and model servers too) once that process is gone
EXIT_WITH_PID_ENV = "SAGEMAKER_EMULATOR_EXIT_WITH_PID"


def _alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (exited, not yet reaped) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def running_info(state_dir: Path) -> dict[str, Any] | None:
    """The daemon serving ``state_dir``, if one is running and healthy."""
    path = StatePaths(state_dir).server_info
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not _alive(int(info.get("pid", 0))):
        return None
    try:
        with urllib.request.urlopen(info["endpoint_url"] + "/_emulator/health", timeout=2) as resp:
            health = json.loads(resp.read())
    except OSError:
        return None
    return info if health.get("pid") == info["pid"] else None


def _exit_with(pid: int, done: threading.Event) -> None:
    """Set ``done`` once ``pid`` has exited: a killed test run or workshop runner leaves no daemon behind.

    Test sessions and the workshop runner export ``EXIT_WITH_PID_ENV`` (their own pid) before a notebook
    starts the daemon; even a SIGKILL, which runs no clean-up, then ends the daemon and everything it ran.
    A pidfd cannot be fooled by pid reuse; platforms without one poll.
    """
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        fd = None
    except (AttributeError, OSError):  # no pidfd here (macOS, old kernels)
        while _alive(pid):
            time.sleep(0.5)
        fd = None
    if fd is not None:
        select.select([fd], [], [])
        os.close(fd)
    logging.getLogger(__name__).info("process %d (%s) is gone: stopping", pid, EXIT_WITH_PID_ENV)
    done.set()


def serve(state_dir: Path, host: str, port: int, region: str) -> int:
    from .app import Emulator

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    emulator = Emulator(state_dir, region=region)
    url = emulator.start(host, port)
    emulator.warm_up()
    emulator.write_server_info()
    done = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    watched = os.environ.get(EXIT_WITH_PID_ENV, "").strip()
    if watched.isdigit() and int(watched) > 0:
        threading.Thread(target=_exit_with, args=(int(watched), done), name="exit-with-pid", daemon=True).start()
    print(f"SageMaker emulator {__version__} serving on {url} (state: {emulator.paths.root})", flush=True)
    done.wait()
    emulator.stop()
    with contextlib.suppress(OSError):
        info = json.loads(emulator.paths.server_info.read_text())
        if info.get("pid") == os.getpid():
            emulator.paths.server_info.unlink()
    print("SageMaker emulator stopped", flush=True)
    return 0


def _daemon_environment() -> dict[str, str]:
    """This environment, with the data mirror as an absolute path: the daemon runs in its state directory.

    ``WORKSHOP_DATA_MIRROR`` (e.g. ``../shared/datasets`` in CI) is where the daemon finds the public sample data it
    serves under AWS's bucket names (``services.s3_public``); it is read once, when the daemon starts.
    """
    from .services.s3_public import MIRROR_ENV

    env = dict(os.environ)
    if env.get(MIRROR_ENV):
        env[MIRROR_ENV] = str(Path(env[MIRROR_ENV]).expanduser().resolve())
    return env


def start(state_dir: Path, port: int, region: str) -> dict[str, Any]:
    """Start (or reuse) the daemon for ``state_dir`` and return its info once healthy."""
    paths = StatePaths(state_dir).ensure()
    with open(paths.root / "start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        info = running_info(paths.root)
        if info:
            return info
        with open(paths.daemon_log, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "sagemaker_emulator.cli", "serve", "--state-dir", str(paths.root),
                 "--port", str(port), "--region", region],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                cwd=paths.root, env=_daemon_environment(),
            )
        deadline = time.time() + START_TIMEOUT
        while time.time() < deadline:
            info = running_info(paths.root)
            if info and info["pid"] == proc.pid:
                return info
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        tail = paths.daemon_log.read_text(errors="replace").splitlines()[-15:]
        raise SystemExit("sagemaker-emulator: the daemon did not start. Last lines of "
                         f"{paths.daemon_log}:\n" + "\n".join(tail))


def stop(state_dir: Path) -> bool:
    paths = StatePaths(state_dir)
    try:
        info = json.loads(paths.server_info.read_text())
    except (OSError, ValueError):
        return False
    pid = int(info.get("pid", 0))
    if not pid or not _alive(pid):
        paths.server_info.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.time() + STOP_TIMEOUT
    while time.time() < deadline and _alive(pid):
        time.sleep(0.05)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
    paths.server_info.unlink(missing_ok=True)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sagemaker-emulator", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True)

    def add_state(p: argparse.ArgumentParser) -> None:
        p.add_argument("--state-dir", type=Path, default=None,
                       help="state directory (default: $SAGEMAKER_EMULATOR_STATE_DIR or ~/.sagemaker-emulator)")

    p_serve = sub.add_parser("serve", help="run in the foreground")
    add_state(p_serve)
    p_serve.add_argument("--host", default="127.0.0.1", help="bind address (loopback only)")
    p_serve.add_argument("--port", type=int, default=0, help="port (0 picks a free one)")
    p_serve.add_argument("--region", default=DEFAULT_REGION)
    p_start = sub.add_parser("start", help="start a daemon (or reuse the running one) and wait until healthy")
    add_state(p_start)
    p_start.add_argument("--port", type=int, default=0)
    p_start.add_argument("--region", default=DEFAULT_REGION)
    for name, text in (("stop", "stop the daemon and every job it started"), ("status", "print status as JSON"),
                       ("env", "print export lines for AWS clients")):
        add_state(sub.add_parser(name, help=text))
    p_logs = sub.add_parser("logs", help="show the access log: time, service, operation, status, error, ms")
    add_state(p_logs)
    p_logs.add_argument("-n", "--lines", type=int, default=50, help="how many of the last lines (0: all)")
    p_logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines (Ctrl-C stops)")
    p_logs.add_argument("--errors", action="store_true", help="only requests answered with an error")
    args = parser.parse_args(argv)
    state_dir = (args.state_dir or default_state_dir()).expanduser().resolve()

    if args.command == "serve":
        if args.host not in ("127.0.0.1", "localhost", "::1"):
            parser.error("the emulator binds to loopback only (127.0.0.1, localhost or ::1)")
        return serve(state_dir, args.host, args.port, args.region)
    if args.command == "start":
        print(json.dumps({"running": True, **start(state_dir, args.port, args.region)}))
        return 0
    if args.command == "stop":
        stopped = stop(state_dir)
        print("stopped" if stopped else f"not running (state dir {state_dir})")
        return 0
    if args.command == "status":
        info = running_info(state_dir)
        print(json.dumps({"running": True, **info} if info else {"running": False, "state_dir": str(state_dir)}))
        return 0 if info else 3
    if args.command == "env":
        from .envvars import as_shell, environment

        info = running_info(state_dir)
        if not info:
            print(f"sagemaker-emulator: not running for {state_dir}; run 'sagemaker-emulator start' first",
                  file=sys.stderr)
            return 1
        print(as_shell(environment(state_dir, info["endpoint_url"], info.get("region", DEFAULT_REGION))), end="")
        return 0
    if args.command == "logs":
        return show_logs(state_dir, args.lines, args.follow, args.errors)
    return 2


def show_logs(state_dir: Path, count: int, follow: bool, errors_only: bool) -> int:
    from .access_log import HEADER, tail

    path = StatePaths(state_dir).root / "access.log"
    if not path.exists() and not follow:
        print(f"sagemaker-emulator: no access log in {state_dir} yet", file=sys.stderr)
        return 1

    def keep(line: str) -> bool:
        return not errors_only or line.split()[4] != "-" if len(line.split()) > 4 else False

    print(HEADER)
    for line in tail(path, count):
        if keep(line):
            print(line)
    if not follow:
        return 0
    offset = path.stat().st_size if path.exists() else 0
    with contextlib.suppress(KeyboardInterrupt):
        while True:
            time.sleep(0.5)
            if not path.exists():
                continue
            size = path.stat().st_size
            if size < offset:  # rotated
                offset = 0
            with path.open(encoding="utf-8", errors="replace") as log_file:
                log_file.seek(offset)
                for line in log_file.read().splitlines():
                    if keep(line):
                        print(line, flush=True)
                offset = log_file.tell()
    return 0


if __name__ == "__main__":
    sys.exit(main())
