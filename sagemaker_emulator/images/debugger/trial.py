"""A Debugger trial as the rule evaluator sees it: tensors by name and step, read from S3 while training runs.

smdebug's ``create_trial`` finds steps through the ``index/`` files (each gives a tensor's byte
range in its event file) and knows training has ended when ``training_job_end.ts`` exists; this
reader does the same with ``boto3`` (pointed at the emulator by the container's environment), or
with a local directory.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from . import tfevents


class Store(Protocol):
    def keys(self, prefix: str) -> list[str]: ...
    def read(self, key: str) -> bytes: ...
    def exists(self, key: str) -> bool: ...


class S3Store:
    """Objects under ``s3://bucket/prefix``; keys are relative to the prefix."""

    def __init__(self, uri: str, client: Any = None) -> None:
        import boto3

        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        self.bucket, self.prefix = bucket, prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.client = client or boto3.client("s3")

    def keys(self, prefix: str) -> list[str]:
        found = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                          Prefix=self.prefix + prefix):
            found += [item["Key"][len(self.prefix):] for item in page.get("Contents", [])]
        return found

    def read(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"].read()

    def exists(self, key: str) -> bool:
        return bool(self.keys(key))


class LocalStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def keys(self, prefix: str) -> list[str]:
        base = self.root / prefix
        folder = base if base.is_dir() else base.parent
        if not folder.exists():
            return []
        found = (str(p.relative_to(self.root)) for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
        return sorted(key for key in found if key.startswith(prefix))

    def read(self, key: str) -> bytes:
        return (self.root / key).read_bytes()

    def exists(self, key: str) -> bool:
        return (self.root / key).exists()


def store_for(path: str) -> Store:
    return S3Store(path) if path.startswith("s3://") else LocalStore(path)


class Trial:
    """The tensors of one training job's ``debug-output``; call ``refresh`` to see new steps."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._seen: set[str] = set()
        #: tensor name → step → (event file, start, length)
        self.locations: dict[str, dict[int, tuple[str, int, int]]] = {}
        self._files: dict[str, bytes] = {}
        self.collections: dict[str, dict[str, Any]] = {}

    def refresh(self) -> list[int]:
        """Read new index files; returns the steps they added, in order."""
        new_steps = set()
        for key in sorted(self.store.keys("index/")):
            if key in self._seen or not key.endswith(".json"):
                continue
            index = json.loads(self.store.read(key))
            event_file = index["meta"]["event_file_name"]
            step = tfevents.step_of(key)
            for item in index.get("tensor_payload") or []:
                self.locations.setdefault(item["tensorname"], {})[step] = (
                    event_file, int(item["start_idx"]), int(item["length"]))
            self._seen.add(key)
            new_steps.add(step)
        for key in self.store.keys("collections/"):
            if key.endswith("_collections.json"):
                self.collections.update(json.loads(self.store.read(key)).get("collections") or {})
        return sorted(new_steps)

    def ended(self) -> bool:
        return self.store.exists(tfevents.END_OF_JOB)

    def steps(self) -> list[int]:
        return sorted({step for steps in self.locations.values() for step in steps})

    def tensor_names(self, regex: str | Iterable[str] | None = None, collection: str | None = None) -> list[str]:
        names = sorted(self.locations)
        if collection is not None:
            members = set((self.collections.get(collection) or {}).get("tensor_names") or [])
            names = [n for n in names if n in members]
        if regex is not None:
            patterns = [regex] if isinstance(regex, str) else list(regex)
            names = [n for n in names if any(re.match(p, n) for p in patterns)]
        return names

    def has(self, name: str, step: int) -> bool:
        return step in self.locations.get(name, {})

    def value(self, name: str, step: int) -> np.ndarray:
        event_file, start, length = self.locations[name][step]
        if event_file not in self._files:
            self._files[event_file] = self.store.read(event_file)
        payload, _ = tfevents.unframe(self._files[event_file][start:start + length])
        return tfevents.decode_event(payload)[0][2]

    def scalar(self, name: str, step: int) -> float:
        return float(np.asarray(self.value(name, step)).reshape(-1)[0])
