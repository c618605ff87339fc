"""The warm worker: ``python -m sagemaker_emulator.runtime.warm_worker <fd> <module>…``, a fork server.

Starting Python and importing XGBoost, pandas or scikit-learn costs a job 0.4–1.6 s of a 2-core
machine; a forked copy of a process that already imported them is ready in milliseconds. This
program imports the heavy modules once, then serves requests arriving on the inherited UNIX socket
``<fd>`` (a ``SOCK_SEQPACKET`` socketpair end the daemon keeps the other end of: no path in the file
system that anyone else could connect to). A request is a JSON object (``module`` or ``script``,
``argv``, ``cwd``, ``env``) with three descriptors passed by ``SCM_RIGHTS``: a status socket, the
job's stdout and its stderr. The worker forks; the child becomes the job as ``python -m module
argv…`` (or ``python script argv…``) would be, and the worker writes ``{"pid": …}`` and, once it
has reaped the child, ``{"exit": code}`` (``Popen.returncode`` convention) to the status socket.

The worker must stay fork-safe: it is single-threaded, never runs an OpenMP/BLAS parallel region,
and was started with the environment variables that libraries read at import time set as the jobs
it serves have them (the daemon keys its workers by those values, see :mod:`.warm`). It exits when
the daemon closes its end of the socket, and dies with the daemon (``PR_SET_PDEATHSIG``); its
children die with it the same way.
"""

from __future__ import annotations

import builtins
import contextlib
import ctypes
import gc
import importlib
import importlib.machinery
import importlib.util
import io
import json
import os
import runpy
import selectors
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
import types
from types import TracebackType
from typing import Any

_PR_SET_PDEATHSIG = 1
_MAX_REQUEST = 1 << 20
#: variables the child applies itself (Python reads them at start-up, but they can be re-applied after a fork);
#: every other import-time variable is part of the worker's key instead (see ``warm.IMPORT_TIME_PREFIXES``)
RUNTIME_APPLIED = ("PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "TZ")


def preload(modules: list[str]) -> dict[str, str]:
    """Import ``modules``; what failed and why (a module missing from this environment is simply not warm)."""
    failed = {}
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - any import error just leaves the module cold
            failed[name] = f"{type(exc).__name__}: {exc}"
    return failed


def open_fds() -> set[int]:
    """The descriptors this process holds (those the preloaded libraries opened are kept in children).

    The listing's own descriptor shows in the listing; it is closed again by the time this returns.
    """
    if not os.path.isdir("/proc/self/fd"):
        return {0, 1, 2}
    return {fd for fd in map(int, os.listdir("/proc/self/fd")) if _is_open(fd)}


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


class Worker:
    """The fork server's loop: requests from the control socket, exits of children through SIGCHLD."""

    def __init__(self, control: socket.socket) -> None:
        self.control = control
        self.children: dict[int, socket.socket] = {}
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # a Python handler, so that SIGCHLD writes to the wakeup fd
        self.library_fds = open_fds() - {control.fileno(), self.wake_r, self.wake_w}

    def serve(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self.control, selectors.EVENT_READ)
        selector.register(self.wake_r, selectors.EVENT_READ)
        while True:
            for key, _ in selector.select():
                if key.fileobj is self.control:
                    message, fds, _flags, _addr = socket.recv_fds(self.control, _MAX_REQUEST, 3)
                    if not message:
                        return  # the daemon closed its end: the children die with this process (PDEATHSIG)
                    self.handle(message, fds)
                else:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self.wake_r, 4096)
            self.reap()

    def handle(self, message: bytes, fds: list[int]) -> None:
        if len(fds) != 3:
            for fd in fds:
                os.close(fd)
            return
        status = socket.socket(fileno=fds[0])
        try:
            request = json.loads(message)
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
        except Exception as exc:  # noqa: BLE001 - a bad request or a failed fork is answered, never fatal
            _send(status, {"error": f"{type(exc).__name__}: {exc}"})
            status.close()
            os.close(fds[1])
            os.close(fds[2])
            return
        if pid == 0:
            code = 1
            try:
                code = self.become(request, fds)
            except BaseException:  # noqa: BLE001 - the child must never return into the worker's loop
                with contextlib.suppress(Exception):
                    traceback.print_exc()
            finally:
                os._exit(code)
        os.close(fds[1])
        os.close(fds[2])
        self.children[pid] = status
        _send(status, {"pid": pid})

    def reap(self) -> None:
        while self.children:
            try:
                pid, wait_status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            status = self.children.pop(pid, None)
            if status is not None:  # with the CPU time, which the daemon's RUSAGE_CHILDREN no longer sees
                _send(status, {"exit": os.waitstatus_to_exitcode(wait_status),
                               "cpu_seconds": usage.ru_utime + usage.ru_stime})
                status.close()

    # ------------------------------------------------------------ in the child
    def become(self, request: dict[str, Any], fds: list[int]) -> int:
        """Turn this fresh fork into the job's process, run it, and return its exit status."""
        parent = os.getppid()
        os.setsid()  # its own session and process group: the daemon stops it with os.killpg(pid, …)
        if sys.platform.startswith("linux"):
            with contextlib.suppress(Exception):
                ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:
            return 1  # the worker died between fork and prctl: nobody would kill this process
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGCHLD, signal.SIGTERM):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(fds[1], 1)
        os.dup2(fds[2], 2)
        keep = self.library_fds | {0, 1, 2}
        for fd in open_fds() - keep:  # as Popen(close_fds=True): other jobs' pipes and sockets, the control socket
            with contextlib.suppress(OSError):
                os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        _apply_startup_environment(os.environ)
        _reseed()
        return _run(request)


def _send(status: socket.socket, message: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):
        status.sendall(json.dumps(message).encode() + b"\n")


def _apply_startup_environment(env: os._Environ[str]) -> None:
    """What ``python`` would have derived from the job's environment at start-up, redone after the fork."""
    sys.dont_write_bytecode = bool(env.get("PYTHONDONTWRITEBYTECODE"))
    time.tzset()
    tempfile.tempdir = None  # gettempdir() caches: the job has its own TMPDIR
    unbuffered = bool(env.get("PYTHONUNBUFFERED"))
    old_out, old_err = sys.stdout, sys.stderr
    sys.stdin = sys.__stdin__ = _stdio(0, "r", sys.stdin, unbuffered=False, line=False)
    # a pipe is no terminal: stdout is block-buffered, stderr line-buffered (Python 3.9+), both unbuffered with -u
    sys.stdout = sys.__stdout__ = _stdio(1, "w", old_out, unbuffered, line=False)
    sys.stderr = sys.__stderr__ = _stdio(2, "w", old_err, unbuffered, line=True)


def _stdio(fd: int, mode: str, like: Any, unbuffered: bool, line: bool) -> io.TextIOWrapper:
    raw = io.FileIO(fd, mode, closefd=False)
    buffer: Any = raw if unbuffered and mode == "w" else (
        io.BufferedWriter(raw) if mode == "w" else io.BufferedReader(raw))
    return io.TextIOWrapper(buffer, encoding=getattr(like, "encoding", None) or "utf-8",
                            errors=getattr(like, "errors", None) or "strict", newline=None if mode == "r" else "\n",
                            line_buffering=line, write_through=unbuffered and mode == "w")


def _reseed() -> None:
    """Forked children share the worker's random state; a fresh process would not. ``random`` reseeds itself
    after a fork; NumPy's legacy global generator (``np.random.rand``) does not."""
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:
        numpy_random.seed()


def _run(request: dict[str, Any]) -> int:
    """Run the module or script as ``__main__`` and end the way ``python`` ends: the exit status it computes."""
    argv = [str(a) for a in request.get("argv") or []]
    try:
        if request.get("module"):
            module = request["module"]
            sys.argv = [module, *argv]
            sys.path[0] = os.getcwd()
            importlib.invalidate_caches()  # the worker's finders may have listed these directories before
            if importlib.util.find_spec(module) is None:
                print(f"{sys.executable}: No module named {module}", file=sys.stderr)
                return _finish(1)
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        else:
            script = request["script"]
            if not os.path.isfile(script):
                print(f"{sys.executable}: can't open file {os.path.abspath(script)!r}: "
                      f"[Errno 2] No such file or directory", file=sys.stderr)
                return _finish(2)
            sys.argv = [script, *argv]
            sys.path[0] = os.path.dirname(os.path.realpath(script))
            _run_script(os.path.abspath(script))
    except SystemExit as exit_:
        return _finish(_exit_code(exit_.code))
    except BaseException as error:  # noqa: BLE001 - an uncaught exception: sys.excepthook prints it, status 1
        error.__traceback__ = _user_frames(error.__traceback__)
        _flush(sys.stdout)  # python flushes what the program printed before it prints the traceback
        sys.excepthook(type(error), error, error.__traceback__)
        _finish(1)
        if isinstance(error, KeyboardInterrupt):  # as python does: the exit status says "killed by SIGINT"
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
        return 1
    return _finish(0)


def _run_script(path: str) -> None:
    """``python script.py``: a fresh ``__main__`` whose ``__file__`` is absolute while ``sys.argv[0]`` stays as
    given (``runpy.run_path`` would set both to one value)."""
    main = types.ModuleType("__main__")
    main.__dict__.update(__file__=path, __builtins__=builtins, __spec__=None, __cached__=None,
                         __loader__=importlib.machinery.SourceFileLoader("__main__", path))
    sys.modules["__main__"] = main
    with open(path, "rb") as handle:
        code = compile(handle.read(), path, "exec", dont_inherit=True)
    exec(code, main.__dict__)  # noqa: S102 - running the job's own program is the point


def _exit_code(code: Any) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    _flush(sys.stdout)
    print(code, file=sys.stderr)
    return 1


def _user_frames(tb: TracebackType | None) -> TracebackType | None:
    """The traceback without this worker's and runpy's own frames, which ``python script.py`` would not show."""
    skip = (__file__, runpy.__file__, "<frozen runpy>")  # _run_script's exec frame is this file's too
    while tb is not None and tb.tb_frame.f_code.co_filename in skip:
        tb = tb.tb_next
    return tb


def _finish(code: int) -> int:
    """Interpreter shutdown as far as a program can see it: wait for non-daemon threads, run atexit, flush."""
    with contextlib.suppress(Exception):
        threading._shutdown()  # type: ignore[attr-defined]
    with contextlib.suppress(Exception):
        import atexit

        atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        _flush(stream)
    return code


def _flush(stream: Any) -> None:
    with contextlib.suppress(Exception):
        stream.flush()


def main(argv: list[str]) -> int:
    control = socket.socket(fileno=int(argv[0]))
    failed = preload(argv[1:])
    gc.collect()
    gc.freeze()  # keeps the preloaded objects' pages shared with the children (no GC writes to them)
    worker = Worker(control)
    threads = len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else 1
    versions = {name: getattr(sys.modules.get(name), "__version__", None)
                for name in argv[1:] if "." not in name and name in sys.modules}
    try:
        control.send(json.dumps({"ready": True, "pid": os.getpid(), "failed": failed, "threads": threads,
                                 "versions": versions}).encode())
    except OSError:
        return 0  # the daemon stopped (or gave up on this worker) while it was importing
    worker.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
