"""AWS's public sample-data buckets, served read-only under their real names, offline.

Public notebooks read sample data straight from AWS's buckets (``aws s3 cp s3://sagemaker-sample-data-us-west-2/
autopilot/direct_marketing/bank-additional.zip .``, ``s3_client.download_file("sagemaker-example-files-prod-<region>",
...)``). Against the emulator those buckets do not exist, so the cell fails with ``NoSuchBucket`` although the data
is public and the project already knows where to find it. This module serves the objects listed in
``CATALOGUE`` under their real bucket names and keys:

* each object comes from the data mirror (the folder ``WORKSHOP_DATA_MIRROR`` names in the daemon's environment
  when it starts, resolved to an absolute path by ``sagemaker-emulator start``; CI sets ``../shared/datasets``)
  or, failing that, from its public source, and is verified by SHA-256 before it is served (a mirror may repack
  the zip: an object taken from inside an archive is checked by its own digest);
* verified copies are kept in ``<state>/cache/public-data/<sha256>`` and placed in the object store the first
  time a request names their bucket, so every S3 read (ranges, conditions, listing, the AWS CLI, CopyObject into
  the learner's bucket) behaves as for any object;
* the buckets are foreign, as on AWS: reads only (GetObject, HeadObject, ListObjects[V2], HeadBucket,
  GetBucketLocation); any write, and a key the catalogue does not serve, is ``AccessDenied``; CreateBucket of
  such a name is ``BucketAlreadyExists``; ListBuckets does not list them. Any other missing bucket stays
  ``NoSuchBucket``.

When neither the mirror nor the public source can provide an object, the read is a ``503 ServiceUnavailable``
naming both and what to set; the failure is remembered for a minute so SDK retries do not wait again.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .s3store import S3Error, S3Store

MIRROR_ENV = "WORKSHOP_DATA_MIRROR"
FETCH_TIMEOUT_S = 10.0
FAILURE_MEMORY_S = 60.0
_REGION = r"[a-z]{2}(?:-[a-z]+)+-[0-9]"

#: what a request may do in a foreign, public-read bucket
READ_OPERATIONS = frozenset({"GetObject", "HeadObject", "ListObjectsV2", "ListObjects", "HeadBucket",
                             "GetBucketLocation"})
KEYED_READS = frozenset({"GetObject", "HeadObject"})


@dataclass(frozen=True)
class Archive:
    """A public file that holds one or more served objects: its name in the mirror, its URL, its SHA-256."""

    mirror_name: str
    url: str
    sha256: str


@dataclass(frozen=True)
class PublicObject:
    """One served object. ``bucket`` may contain ``{region}`` (one bucket per region on AWS)."""

    bucket: str
    key: str
    archive: Archive
    sha256: str  # of the object's own bytes
    member: str | None = None  # its path inside ``archive``; None when it is the archive itself
    content_type: str = "binary/octet-stream"


BANK_MARKETING_ZIP = Archive(
    "bank-additional.zip",
    "https://sagemaker-sample-data-us-west-2.s3-us-west-2.amazonaws.com/autopilot/direct_marketing/"
    "bank-additional.zip",
    "e689f38cc6bd689f64f031e7a1fbe0849aabb7ad57544fc75068e30129bbd514",
)
BANK_CSV_SHA256 = "74adfc578bf77a7ff4bb1ba4a9f8709d9e3c6907342959c2c8416847e0afb4d8"
BANK_CSV_KEY = "datasets/tabular/uci_bank_marketing/bank-additional-full.csv"
BANK_CSV_MEMBER = "bank-additional/bank-additional-full.csv"

#: every object served, with where it comes from and its digest: the one place to add sample data
CATALOGUE: tuple[PublicObject, ...] = (
    PublicObject("sagemaker-sample-data-{region}", "autopilot/direct_marketing/bank-additional.zip",
                 BANK_MARKETING_ZIP, BANK_MARKETING_ZIP.sha256, content_type="application/zip"),
    PublicObject("sagemaker-sample-files", BANK_CSV_KEY, BANK_MARKETING_ZIP, BANK_CSV_SHA256, BANK_CSV_MEMBER,
                 "text/csv"),
    PublicObject("sagemaker-example-files-prod-{region}", BANK_CSV_KEY, BANK_MARKETING_ZIP, BANK_CSV_SHA256,
                 BANK_CSV_MEMBER, "text/csv"),
)


def _bucket_pattern(name: str) -> re.Pattern[str]:
    return re.compile(re.escape(name).replace(re.escape("{region}"), f"(?P<region>{_REGION})") + r"\Z")


_PATTERNS = [(_bucket_pattern(entry.bucket), entry) for entry in CATALOGUE]


def access_denied() -> S3Error:
    return S3Error("AccessDenied", "Access Denied", 403)


def mirror_from_env() -> Path | None:
    """The data mirror the daemon was started with (``WORKSHOP_DATA_MIRROR``), if it is a folder."""
    value = os.environ.get(MIRROR_ENV)
    if not value:
        return None
    path = Path(value).expanduser().resolve()
    return path if path.is_dir() else None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _direct_opener() -> urllib.request.OpenerDirector:
    """Proxies from the environment, except one on this machine: that would be the emulator itself."""
    proxies = {scheme: url for scheme, url in urllib.request.getproxies().items()
               if (urllib.parse.urlsplit(url).hostname or "") not in ("127.0.0.1", "localhost", "::1")}
    return urllib.request.build_opener(urllib.request.ProxyHandler(proxies))


class PublicSamples:
    """The catalogue's buckets: which names are served, the read-only guard, and the verified copies."""

    def __init__(self, store: S3Store, cache_dir: Path, mirror: Path | None,
                 fetch_timeout: float = FETCH_TIMEOUT_S) -> None:
        self.store = store
        self.cache_dir = cache_dir
        self.mirror = mirror
        self.fetch_timeout = fetch_timeout
        self._lock = threading.Lock()
        self._ready: set[str] = set()
        self._failed: dict[str, tuple[float, str]] = {}
        store.materialize = self._materialize  # jobs staging s3://sagemaker-sample-files/… read the store directly

    def _materialize(self, bucket: str) -> None:
        if self.serves(bucket):
            with contextlib.suppress(S3Error):  # unavailable offline: the bucket stays missing, as the job says
                self.prepare(bucket)

    # ------------------------------------------------------------ names
    def serves(self, bucket: str) -> bool:
        return any(pattern.match(bucket) for pattern, _ in _PATTERNS)

    def objects(self, bucket: str) -> list[PublicObject]:
        return [entry for pattern, entry in _PATTERNS if pattern.match(bucket)]

    @staticmethod
    def region_of(bucket: str) -> str:
        for pattern, _ in _PATTERNS:
            match = pattern.match(bucket)
            if match and "region" in match.groupdict():
                return match.group("region")
        return "us-east-1"

    # ------------------------------------------------------------ the guard
    def guard(self, bucket: str, operation: str | None, key: str | None = None) -> None:
        """Refuse what a foreign public-read bucket refuses; make the bucket's objects present for a read."""
        if operation is not None and operation not in READ_OPERATIONS:
            raise access_denied()
        if operation in KEYED_READS and key not in {entry.key for entry in self.objects(bucket)}:
            raise access_denied()
        self.prepare(bucket)

    def prepare(self, bucket: str) -> None:
        """Place every catalogue object of ``bucket`` in the store (once), from verified copies."""
        if bucket in self._ready:
            return
        with self._lock:
            if bucket in self._ready:
                return
            entries = self.objects(bucket)
            paths = [self._verified(entry) for entry in entries]
            self.store.create_bucket(bucket, self.region_of(bucket))
            for entry, path in zip(entries, paths, strict=True):
                self.store.put_file(bucket, entry.key, path, entry.content_type)
            self._ready.add(bucket)

    # ------------------------------------------------------------ verified copies
    def _verified(self, entry: PublicObject) -> Path:
        target = self.cache_dir / entry.sha256
        if target.is_file() and _sha256(target.read_bytes()) == entry.sha256:
            return target
        failed = self._failed.get(entry.sha256)
        if failed and time.monotonic() - failed[0] < FAILURE_MEMORY_S:
            raise self._unavailable(entry, failed[1])
        problems: list[str] = []
        for origin, archive in self._archives(entry.archive, problems):
            data = self._extract(archive, entry, origin, problems)
            if data is not None:
                self._write(target, data)
                self._failed.pop(entry.sha256, None)
                return target
        reason = "; ".join(problems)
        self._failed[entry.sha256] = (time.monotonic(), reason)
        raise self._unavailable(entry, reason)

    def _archives(self, archive: Archive, problems: list[str]):  # noqa: ANN202 - a generator of (origin, bytes)
        """The archive's bytes from the mirror, then from its public URL, as each is needed."""
        if self.mirror is not None:
            path = self.mirror / archive.mirror_name
            if path.is_file():
                yield str(path), path.read_bytes()
            else:
                problems.append(f"{path} does not exist")
        else:
            problems.append(f"no data mirror ({MIRROR_ENV} was not set when the emulator started)")
        try:
            with _direct_opener().open(archive.url, timeout=self.fetch_timeout) as response:
                yield archive.url, response.read()
        except OSError as exc:
            problems.append(f"{archive.url}: {exc}")

    @staticmethod
    def _extract(archive: bytes, entry: PublicObject, origin: str, problems: list[str]) -> bytes | None:
        data = archive
        if entry.member is not None:
            try:
                with zipfile.ZipFile(io.BytesIO(archive)) as opened:
                    data = opened.read(entry.member)
            except (zipfile.BadZipFile, KeyError) as exc:
                problems.append(f"{origin}: no {entry.member} in it ({exc})")
                return None
        if _sha256(data) != entry.sha256:
            problems.append(f"{origin}: SHA-256 of {entry.member or entry.archive.mirror_name} is not "
                            f"{entry.sha256}")
            return None
        return data

    def _write(self, target: Path, data: bytes) -> None:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.cache_dir, prefix=".part-")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, target)

    @staticmethod
    def _unavailable(entry: PublicObject, reason: str) -> S3Error:
        return S3Error(
            "ServiceUnavailable",
            f"The local emulator serves s3://{entry.bucket}/{entry.key} from a verified copy, and has none: "
            f"{reason}. Start the emulator with {MIRROR_ENV} set to a folder holding "
            f"{entry.archive.mirror_name}, or with access to {entry.archive.url}.", 503)
