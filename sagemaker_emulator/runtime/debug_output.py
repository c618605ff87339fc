"""A training job's SageMaker Debugger output: the hook's configuration in, the tensors out to S3 as they appear.

On SageMaker the platform writes ``/opt/ml/input/config/debughookconfig.json`` from the job's
``DebugHookConfig``, uploads the hook's ``LocalPath`` (``/opt/ml/output/tensors``) continuously to
``<S3OutputPath>/<job>/debug-output/`` — the rule evaluations read it from there while the job
trains — and writes ``training_job_end.ts`` there when the job ends, whatever its outcome.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ..images.debugger.tfevents import END_OF_JOB
from . import staging
from .container import host_path

DEFAULT_LOCAL_PATH = "/opt/ml/output/tensors"
#: upload order within one sync: a reader finds a step by its index file, so its event file goes first
_ORDER = ("events", "index", "collections")


def debug_output_uri(record: dict[str, Any]) -> str:
    """``<DebugHookConfig.S3OutputPath>/<job>/debug-output``: where the tensors of the job go."""
    base = record["DebugHookConfig"]["S3OutputPath"].rstrip("/")
    return f"{base}/{record['TrainingJobName']}/debug-output"


def write_hook_config(record: dict[str, Any], config_dir: Path) -> None:
    """``debughookconfig.json`` as the platform writes it for the container (paths still ``/opt/ml``)."""
    hook = record.get("DebugHookConfig")
    if not hook:
        return
    document = {"LocalPath": hook.get("LocalPath") or DEFAULT_LOCAL_PATH, "S3OutputPath": debug_output_uri(record),
                "HookParameters": hook.get("HookParameters") or {},
                "CollectionConfigurations": hook.get("CollectionConfigurations") or []}
    (config_dir / "debughookconfig.json").write_text(json.dumps(document))


class TensorSync:
    """Uploads new or changed files of the hook's directory; ``finish`` adds the end-of-training marker."""

    def __init__(self, emulator: Any, record: dict[str, Any], base: Path, interval: float = 0.2) -> None:
        self.store = emulator.s3.store
        self.uri = debug_output_uri(record)
        local = (record.get("DebugHookConfig") or {}).get("LocalPath") or DEFAULT_LOCAL_PATH
        self.local = host_path(local, base)
        self.interval = interval
        self._uploaded: dict[str, tuple[int, int]] = {}
        self._last = 0.0

    def sync(self, force: bool = False) -> None:
        if not force and time.monotonic() - self._last < self.interval:
            return
        self._last = time.monotonic()
        if not self.local.is_dir():
            return
        files = [p for p in self.local.rglob("*") if p.is_file() and not p.name.startswith(".")]
        files.sort(key=lambda p: (_rank(p.relative_to(self.local)), str(p)))
        for path in files:
            relative = str(path.relative_to(self.local))
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            signature = (stat.st_size, stat.st_mtime_ns)
            if self._uploaded.get(relative) != signature:
                staging.upload_file(self.store, path, f"{self.uri}/{relative}")
                self._uploaded[relative] = signature

    def finish(self, scratch: Path) -> None:
        """Last upload, then ``training_job_end.ts`` (empty), which tells the rules no step will follow."""
        self.sync(force=True)
        marker = scratch / END_OF_JOB
        marker.write_bytes(b"")
        staging.upload_file(self.store, marker, f"{self.uri}/{END_OF_JOB}")


def _rank(relative: Path) -> int:
    top = relative.parts[0] if relative.parts else ""
    return _ORDER.index(top) if top in _ORDER else len(_ORDER)
