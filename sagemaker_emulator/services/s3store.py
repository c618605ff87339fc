"""The S3 object store: plain files a learner can browse, plus a hidden sidecar for what files can't say.

Layout under the store root (``<state>/s3``)::

    <bucket>/<key>                       object bytes at their natural path ("natural" keys)
    <bucket>/.s3emu-tmp-*                in-flight writes (hidden, never listed)
    .meta/<bucket>/.bucket.json          bucket creation date and region
    .meta/<bucket>/<h[:2]>/<h>.json      per-object sidecar, h = sha256(key): ETag, size, content
                                         type, user metadata, checksums, last-modified, and the
                                         (inode, size, mtime_ns) signature of the bytes it describes
    .special/<bucket>/<h>                bytes of keys that cannot live at a natural path
    .uploads/<bucket>/<upload-id>/       multipart uploads in progress: upload.json, NNNNN.part/.json

Bucket names never start with a dot, so the hidden trees can't collide with a bucket.

Why two homes for bytes: a key is "natural" when every ``/``-separated segment is a safe file
name (non-empty, not ``.``/``..``, ≤ 255 bytes, not our ``.s3emu-`` prefix) and the key does not
end in ``/``. Natural keys are files at ``<bucket>/<key>`` so JupyterLab, ``ls`` and pandas see
them. Every other key -- folder markers (``a/``), traversal-looking keys (``../../etc/passwd``,
``a/../x``, ``/abs``), over-long segments -- and keys whose natural path is taken by the other
kind of node (key ``a`` while ``a/b`` exists, or the reverse) are stored under the fixed-length,
hex-named ``.special/<bucket>/<sha256(key)>``. So no key is ever turned into a path that leaves
the bucket; writes additionally refuse a natural path whose parent resolves (through a symlink a
learner made) outside the bucket and fall back to ``.special``. Reads and listings do follow
learner-made symlinks, deliberately: linking a dataset folder into a bucket is a handy way to
"upload" it. A zero-byte folder marker also gets its directory created, cosmetically.

The data tree is the source of truth for natural keys: a file a learner drops into a bucket
directory is an object. Its sidecar is created lazily (ETag = MD5 of the file) when the
sidecar is missing or its signature no longer matches the file, so edits made outside the API are
picked up instead of served with a stale ETag.

Writes stream into a temp file in the bucket directory and are published with ``os.replace``
under a lock for that one key (sidecar first, then bytes; readers re-validate against the
signature), so readers never see partial objects and writers of different keys never wait for
each other. A write that fails for any reason (a truncated or over-long body, a digest that does
not match) removes its temp file and publishes nothing; temp files a killed daemon left behind
are swept when the store opens. Keys list in UTF-8 byte order, which is code-point order, by a lazy sorted walk that
skips whole directories before a continuation point and, with ``Delimiter='/'``, reports a
directory as one common prefix without descending into it.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import errno
import hashlib
import heapq
import itertools
import json
import os
import re
import secrets
import shutil
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from ..protocol.errors import ServiceError
from . import s3checksums as checksums

TMP_PREFIX = ".s3emu-"
CHUNK = 1 << 20
MAX_KEY_BYTES = 1024
MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PART_NUMBER = 10000
#: an in-flight write file untouched this long belongs to no live request (see ``_sweep_stale_temps``)
STALE_TEMP_SECONDS = 600.0
DEFAULT_CONTENT_TYPE = "binary/octet-stream"
UTC = dt.UTC

_BUCKET_STRICT = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_BUCKET_LOOSE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")
_IP_LIKE = re.compile(r"^\d+\.\d+\.\d+\.\d+$")
_UPLOAD_ID = re.compile(r"^[A-Za-z0-9_-]{8,128}$")


# ---------------------------------------------------------------- errors
class S3Error(ServiceError):
    """A store failure carrying its S3 error code, so HTTP handlers can let it propagate."""

    def __str__(self) -> str:
        return self.message


class NoSuchBucket(S3Error, KeyError):
    def __init__(self, bucket: str) -> None:
        super().__init__("NoSuchBucket", "The specified bucket does not exist", 404, BucketName=bucket)


class NoSuchKey(S3Error, KeyError):
    def __init__(self, key: str) -> None:
        super().__init__("NoSuchKey", "The specified key does not exist.", 404, Key=key)


class NoSuchUpload(S3Error, KeyError):
    def __init__(self, upload_id: str) -> None:
        super().__init__(
            "NoSuchUpload",
            "The specified upload does not exist. The upload ID may be invalid, or the upload may have "
            "been aborted or completed.", 404, UploadId=upload_id,
        )


def precondition_failed(condition: str) -> S3Error:
    return S3Error(
        "PreconditionFailed", "At least one of the pre-conditions you specified did not hold", 412,
        Condition=condition,
    )


# ---------------------------------------------------------------- values
@dataclass
class ObjectInfo:
    """One object as the store knows it; ``path`` is where its bytes are (read-only for callers)."""

    key: str
    size: int
    etag: str
    path: Path
    last_modified: dt.datetime
    content_type: str = DEFAULT_CONTENT_TYPE
    metadata: dict[str, str] = field(default_factory=dict)
    content_encoding: str | None = None
    content_disposition: str | None = None
    cache_control: str | None = None
    content_language: str | None = None
    expires: dt.datetime | None = None
    storage_class: str = "STANDARD"
    website_redirect_location: str | None = None
    checksums: dict[str, str] = field(default_factory=dict)
    checksum_type: str | None = None
    parts: list[int] | None = None

    @classmethod
    def from_meta(cls, meta: dict[str, Any], path: Path) -> ObjectInfo:
        expires = meta.get("expires")
        return cls(
            key=meta["key"], size=int(meta["size"]), etag=meta["etag"], path=path,
            last_modified=dt.datetime.fromtimestamp(float(meta["last_modified"]), UTC),
            content_type=meta.get("content_type") or DEFAULT_CONTENT_TYPE,
            metadata=dict(meta.get("metadata") or {}),
            content_encoding=meta.get("content_encoding"),
            content_disposition=meta.get("content_disposition"),
            cache_control=meta.get("cache_control"),
            content_language=meta.get("content_language"),
            expires=dt.datetime.fromtimestamp(float(expires), UTC) if expires is not None else None,
            storage_class=meta.get("storage_class") or "STANDARD",
            website_redirect_location=meta.get("website_redirect_location"),
            checksums=dict(meta.get("checksums") or {}),
            checksum_type=meta.get("checksum_type"),
            parts=meta.get("parts"),
        )


#: the user-settable attributes an object carries besides its bytes (sidecar field names)
ATTRIBUTE_FIELDS = (
    "content_type", "metadata", "content_encoding", "content_disposition", "cache_control",
    "content_language", "expires", "storage_class", "website_redirect_location",
)


def attributes_of(info: ObjectInfo) -> dict[str, Any]:
    """The copyable attributes of an object, in sidecar form (for CopyObject's COPY directive)."""
    out = {name: getattr(info, name) for name in ATTRIBUTE_FIELDS}
    if info.expires is not None:
        out["expires"] = info.expires.timestamp()
    return out


@dataclass
class BucketInfo:
    name: str
    created: dt.datetime
    region: str


@dataclass
class PartInfo:
    number: int
    etag: str
    size: int
    last_modified: dt.datetime
    checksums: dict[str, str] = field(default_factory=dict)


@dataclass
class UploadInfo:
    upload_id: str
    key: str
    initiated: dt.datetime
    attributes: dict[str, Any]
    checksum_algorithm: str | None = None


@dataclass
class Digests:
    """What was computed while a body streamed to disk: size, MD5 (hex) and S3 checksums (base64 by algorithm)."""

    size: int = 0
    md5: str = ""
    checksums: dict[str, str] = field(default_factory=dict)

    @property
    def md5_bytes(self) -> bytes:
        return bytes.fromhex(self.md5)

    @property
    def sha256(self) -> str | None:
        """Hex SHA-256 of the body, when it was computed (for ``x-amz-content-sha256``)."""
        value = self.checksums.get("SHA256")
        return base64.b64decode(value).hex() if value else None

    def checksum_b64(self, algorithm: str) -> str | None:
        """``algorithm`` as S3 names it (CRC32, SHA256 ...); None when not computed."""
        return self.checksums.get(algorithm)


def entity_too_large(size: int, limit: int) -> S3Error:
    return S3Error("EntityTooLarge", "Your proposed upload exceeds the maximum allowed size", 400,
                   ProposedSize=size, MaxSizeAllowed=limit)


# ---------------------------------------------------------------- helpers
def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/key`` → ``("bucket", "some/key")``; ``s3://bucket`` → ``("bucket", "")``."""
    if not uri.startswith("s3://"):
        raise ValueError(f"Not an S3 URI: {uri!r} (expected s3://bucket/key)")
    bucket, _, key = uri[5:].partition("/")
    if not bucket:
        raise ValueError(f"S3 URI has no bucket: {uri!r}")
    return bucket, key


def valid_bucket_name(name: str) -> bool:
    """S3's naming rules for new general purpose buckets."""
    if not _BUCKET_STRICT.fullmatch(name) or ".." in name or ".-" in name or "-." in name:
        return False
    if _IP_LIKE.fullmatch(name) or name.startswith(("xn--", "sthree-", "amzn-s3-demo-")):
        return False
    return not name.endswith(("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"))


def addressable_bucket_name(name: str) -> bool:
    """A name an existing bucket may have (legacy names included); anything else names no directory.

    ``fullmatch``, not ``match`` with ``$``: a trailing newline must not slip through.
    """
    return bool(name) and _BUCKET_LOOSE.fullmatch(name) is not None and ".." not in name


def check_key(key: str) -> None:
    """Reject what S3 itself rejects, plus NUL (it cannot be listed in XML nor named on disk)."""
    if not key:
        raise S3Error("InvalidArgument", "Object key must not be empty.", 400)
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise S3Error("KeyTooLongError", "Your key is too long", 400, Size=len(key.encode("utf-8", "replace")),
                      MaxSizeAllowed=MAX_KEY_BYTES)
    if "\x00" in key:
        raise S3Error("InvalidArgument", "Object key must not contain the NUL character.", 400)


def _natural_segments(key: str) -> list[str] | None:
    """The path segments of a key that may live at its natural path, else None."""
    if key.endswith("/"):
        return None
    segments = key.split("/")
    for seg in segments:
        if not seg or seg in (".", "..") or seg.startswith(TMP_PREFIX) or "\x00" in seg:
            return None
        try:
            if len(seg.encode("utf-8")) > 255:
                return None
        except UnicodeEncodeError:
            return None
    return segments


def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _sig(st: os.stat_result) -> list[int]:
    return [st.st_ino, st.st_size, st.st_mtime_ns]


def _inside(root_real: str, path: str) -> bool:
    real = os.path.realpath(path)
    return real == root_real or real.startswith(root_real + os.sep)


def _utf8_ok(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{secrets.token_hex(6)}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, separators=(",", ":"))
    os.replace(tmp, path)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _md5_of_fd(fd: int) -> str:
    md5 = hashlib.md5()
    offset = 0
    while True:
        chunk = os.pread(fd, CHUNK, offset)
        if not chunk:
            return md5.hexdigest()
        md5.update(chunk)
        offset += len(chunk)


def copy_range(src_fd: int, dst_fd: int, offset: int, count: int) -> None:
    """Append ``count`` bytes of ``src_fd`` from ``offset`` to ``dst_fd`` in the kernel when possible."""
    remaining = count
    use_cfr = hasattr(os, "copy_file_range")
    while remaining > 0:
        if use_cfr:
            try:
                n = os.copy_file_range(src_fd, dst_fd, min(remaining, 1 << 30), offset)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM):
                    raise
                use_cfr = False
                continue
            if n == 0:
                break
        else:
            chunk = os.pread(src_fd, min(remaining, 8 * CHUNK), offset)
            if not chunk:
                break
            view = memoryview(chunk)
            while view:
                written = os.write(dst_fd, view)
                view = view[written:]
            n = len(chunk)
        offset += n
        remaining -= n
    if remaining:
        raise S3Error("InternalError", "The source object is shorter than recorded.", 500, sender_fault=False)


class _KeyLocks:
    """One lock per name in use, created on demand and dropped when idle (no global write lock)."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._locks: dict[tuple[str, ...], list[Any]] = {}

    @contextlib.contextmanager
    def hold(self, *name: str) -> Iterator[None]:
        with self._mutex:
            entry = self._locks.get(name)
            if entry is None:
                entry = self._locks[name] = [threading.Lock(), 0]
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._mutex:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._locks[name]


class Staged:
    """A temp file being filled, published by ``S3Store.commit`` or removed on exit."""

    def __init__(self, directory: Path) -> None:
        fd, name = _mkstemp(directory)
        self.fd = fd
        self.path = Path(name)
        self.digests = Digests()
        self.committed = False

    def write_from(self, stream: BinaryIO | bytes | None, algorithms: Iterable[str] = (),
                   limit: int | None = None) -> Digests:
        """Stream ``stream`` to disk in 1 MiB chunks, hashing as it goes (MD5 always, plus ``algorithms``).

        Memory stays constant whatever the body's size. ``limit`` bounds a body whose length was not
        declared (chunked uploads): past it the write stops with ``EntityTooLarge`` and, like any error
        raised here (a truncated body, a signature mismatch found at its end), commits nothing.
        """
        md5 = hashlib.md5()
        hashers = {name: checksums.new_hasher(name) for name in set(algorithms)}
        size = 0
        if isinstance(stream, bytes | bytearray):
            chunks: Iterable[bytes] = [bytes(stream)]
        elif stream is None:
            chunks = []
        else:
            chunks = iter(lambda: stream.read(CHUNK), b"")
        for chunk in chunks:
            if not chunk:
                continue
            size += len(chunk)
            if limit is not None and size > limit:
                raise entity_too_large(size, limit)
            md5.update(chunk)
            for hasher in hashers.values():
                hasher.update(chunk)
            view = memoryview(chunk)
            while view:
                written = os.write(self.fd, view)
                view = view[written:]
        self.digests = Digests(size=size, md5=md5.hexdigest(),
                               checksums={name: checksums.encode(h.digest()) for name, h in hashers.items()})
        return self.digests

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Staged:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
        if not self.committed:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


def _scan(directory: Path) -> list[os.DirEntry[str]]:
    try:
        return list(os.scandir(directory))
    except OSError:
        return []


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()  # a bucket may be a symlink a learner made to another disk
    except OSError:
        return False


def _mkstemp(directory: Path) -> tuple[int, str]:
    name = str(directory / f"{TMP_PREFIX}tmp-{secrets.token_hex(8)}")
    fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o644)
    return fd, name


# ---------------------------------------------------------------- the store
class S3Store:
    """Buckets and objects on the local filesystem; used by the S3 service and the job runtime."""

    def __init__(self, root: Path, region: str = "us-east-1") -> None:
        #: called with a missing bucket's name before it is declared missing (see ``s3_public``)
        self.materialize: Callable[[str], None] | None = None
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.region = region
        self._locks = _KeyLocks()
        self._sweep_stale_temps()

    def _sweep_stale_temps(self, older_than: float = STALE_TEMP_SECONDS) -> None:
        """Remove in-flight write files a killed daemon left behind (a live write touches its file every MiB).

        Why at start-up only: a failed request removes its own temp file; what remains after a crash
        is invisible to listings but would fill the disk over many restarts.
        """
        cutoff = time.time() - older_than
        directories = [Path(e.path) for e in _scan(self.root) if not e.name.startswith(".") and _is_dir(e)]
        for uploads in _scan(self.root / ".uploads"):
            directories.extend(Path(e.path) for e in _scan(Path(uploads.path)) if _is_dir(e))
        for directory in directories:
            for entry in _scan(directory):
                if entry.name.startswith(TMP_PREFIX + "tmp-"):
                    with contextlib.suppress(OSError):
                        if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                            os.unlink(entry.path)

    parse_s3_uri = staticmethod(parse_s3_uri)

    # ------------------------------------------------------------ paths
    def _bucket_dir(self, bucket: str) -> Path | None:
        if not addressable_bucket_name(bucket):
            return None
        return self.root / bucket

    def _require_bucket(self, bucket: str) -> Path:
        path = self._bucket_dir(bucket)
        if path is None or not path.is_dir():
            raise NoSuchBucket(bucket)
        return path

    def _meta_root(self, bucket: str) -> Path:
        return self.root / ".meta" / bucket

    def _meta_path(self, bucket: str, key: str) -> Path:
        h = _key_hash(key)
        return self.root / ".meta" / bucket / h[:2] / f"{h}.json"

    def _special_dir(self, bucket: str) -> Path:
        return self.root / ".special" / bucket

    def _special_path(self, bucket: str, key: str) -> Path:
        return self._special_dir(bucket) / _key_hash(key)

    def _uploads_dir(self, bucket: str) -> Path:
        return self.root / ".uploads" / bucket

    def _natural_path(self, bdir: Path, key: str) -> Path | None:
        segments = _natural_segments(key)
        if segments is None:
            return None
        path = bdir.joinpath(*segments)
        if len(os.fsencode(str(path))) >= 4000:
            return None
        return path

    # ------------------------------------------------------------ buckets
    def bucket_exists(self, bucket: str) -> bool:
        path = self._bucket_dir(bucket)
        if path is not None and not path.is_dir() and self.materialize is not None:
            self.materialize(bucket)  # a bucket the emulator provides on first use (AWS's public sample data)
        return path is not None and path.is_dir()

    def create_bucket(self, bucket: str, region: str | None = None) -> bool:
        """Create ``bucket`` (idempotent); True when it was created, False when it already existed."""
        if not valid_bucket_name(bucket):
            raise S3Error("InvalidBucketName", "The specified bucket is not valid.", 400, BucketName=bucket)
        path = self.root / bucket
        with self._locks.hold("\0bucket", bucket):
            if path.is_dir():
                return False
            for stale in (self._meta_root(bucket), self._special_dir(bucket), self._uploads_dir(bucket)):
                shutil.rmtree(stale, ignore_errors=True)
            _write_json(self._meta_root(bucket) / ".bucket.json",
                        {"created": time.time(), "region": region or self.region})
            path.mkdir(parents=True, exist_ok=True)
        return True

    def bucket_info(self, bucket: str) -> BucketInfo:
        path = self._require_bucket(bucket)
        data = _read_json(self._meta_root(bucket) / ".bucket.json") or {}
        created = data.get("created")
        if created is None:
            created = path.stat().st_mtime
        return BucketInfo(bucket, dt.datetime.fromtimestamp(float(created), UTC), data.get("region") or self.region)

    def list_buckets(self) -> list[BucketInfo]:
        out = []
        for entry in sorted(os.scandir(self.root), key=lambda e: e.name):
            if entry.name.startswith(".") or not _BUCKET_LOOSE.fullmatch(entry.name) or not entry.is_dir():
                continue
            with contextlib.suppress(NoSuchBucket, OSError):
                out.append(self.bucket_info(entry.name))
        return out

    def bucket_is_empty(self, bucket: str) -> bool:
        bdir = self._require_bucket(bucket)
        return not self._has_file(str(bdir), 0) and not any(self._special_entries(bucket, "", ""))

    def delete_bucket(self, bucket: str) -> None:
        bdir = self._require_bucket(bucket)
        if not self.bucket_is_empty(bucket):
            raise S3Error("BucketNotEmpty", "The bucket you tried to delete is not empty", 409, BucketName=bucket)
        with self._locks.hold("\0bucket", bucket):
            for path in (self._uploads_dir(bucket), self._special_dir(bucket), self._meta_root(bucket)):
                shutil.rmtree(path, ignore_errors=True)
            shutil.rmtree(bdir, ignore_errors=True)
            if bdir.is_symlink():
                bdir.unlink()

    # ------------------------------------------------------------ reading
    def _candidates(self, bdir: Path, bucket: str, key: str) -> list[Path]:
        """Where the bytes of ``key`` may be, in precedence order."""
        out = [self._special_path(bucket, key)]
        natural = self._natural_path(bdir, key)
        if natural is not None:
            out.append(natural)
        return out

    def open_object(self, bucket: str, key: str) -> tuple[BinaryIO, ObjectInfo]:
        """Open the bytes of ``key`` and return them with the metadata that matches exactly those bytes."""
        bdir = self._require_bucket(bucket)
        check_key(key)
        fh = self._open_first(self._candidates(bdir, bucket, key))
        if fh is None:
            raise NoSuchKey(key)
        try:
            meta = _read_json(self._meta_path(bucket, key))
            if meta is not None and meta.get("sig") == _sig(os.fstat(fh.fileno())) and meta.get("key") == key:
                return fh, ObjectInfo.from_meta(meta, Path(fh.name))
        except BaseException:
            fh.close()
            raise
        # A write is being published, or the file changed outside the API: settle it under the key lock.
        fh.close()
        with self._locks.hold(bucket, key):
            return self._open_locked(bdir, bucket, key)

    def _open_locked(self, bdir: Path, bucket: str, key: str) -> tuple[BinaryIO, ObjectInfo]:
        fh = self._open_first(self._candidates(bdir, bucket, key))
        if fh is None:
            raise NoSuchKey(key)
        try:
            st = os.fstat(fh.fileno())
            meta = _read_json(self._meta_path(bucket, key))
            if meta is None or meta.get("sig") != _sig(st) or meta.get("key") != key:
                meta = self._adopt(bucket, key, fh.fileno(), st, meta)
            return fh, ObjectInfo.from_meta(meta, Path(fh.name))
        except BaseException:
            fh.close()
            raise

    @staticmethod
    def _open_first(paths: list[Path]) -> BinaryIO | None:
        for path in paths:
            try:
                return open(path, "rb")  # noqa: SIM115 - returned to the caller, who closes it
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                continue
        return None

    def _adopt(self, bucket: str, key: str, fd: int, st: os.stat_result, old: dict[str, Any] | None) -> dict[str, Any]:
        """A file changed (or appeared) outside the API: describe it from scratch and remember that."""
        meta = {
            "key": key, "size": st.st_size, "etag": f'"{_md5_of_fd(fd)}"', "last_modified": st.st_mtime,
            "content_type": DEFAULT_CONTENT_TYPE, "sig": _sig(st),
        }
        same = old is not None and old.get("key") == key and old.get("size") == st.st_size
        if same and old is not None and old.get("etag") == meta["etag"]:
            # same bytes, new inode/mtime (e.g. copied back by a tool): keep what the API knew about them
            meta = {**old, "sig": _sig(st)}
        _write_json(self._meta_path(bucket, key), meta)
        return meta

    def head(self, bucket: str, key: str) -> ObjectInfo:
        fh, info = self.open_object(bucket, key)
        fh.close()
        return info

    def object_path(self, bucket: str, key: str) -> Path:
        """Where the bytes of an existing object are; raises ``NoSuchKey`` (a ``KeyError``) if missing."""
        return self.head(bucket, key).path

    def get_bytes(self, bucket: str, key: str) -> bytes:
        fh, _ = self.open_object(bucket, key)
        with fh:
            return fh.read()

    # ------------------------------------------------------------ writing
    def stage(self, bucket: str) -> Staged:
        """A temp file in the bucket's own directory, so publishing it is a same-filesystem rename."""
        return Staged(self._require_bucket(bucket))

    def commit(
        self, bucket: str, key: str, staged: Staged, attributes: dict[str, Any] | None = None, *,
        etag: str | None = None, checksums: dict[str, str] | None = None, checksum_type: str | None = None,
        parts: list[int] | None = None, if_match: str | None = None, if_none_match: str | None = None,
    ) -> ObjectInfo:
        """Publish ``staged`` as ``key`` atomically; the write conditions are checked under the key lock."""
        bdir = self._require_bucket(bucket)
        check_key(key)
        staged.close()
        meta: dict[str, Any] = {k: v for k, v in (attributes or {}).items() if v is not None}
        meta.setdefault("content_type", DEFAULT_CONTENT_TYPE)
        meta.update(
            key=key, size=staged.digests.size, etag=etag or f'"{staged.digests.md5}"',
            checksums=checksums or {}, checksum_type=checksum_type, parts=parts,
        )
        with self._locks.hold(bucket, key):
            if if_match is not None or if_none_match is not None:
                self._check_write_conditions(bucket, key, if_match, if_none_match)
            meta["last_modified"] = time.time()
            path = self._place(bdir, bucket, key, staged.path, meta)
            staged.committed = True
        return ObjectInfo.from_meta(meta, path)

    def _check_write_conditions(self, bucket: str, key: str, if_match: str | None, if_none_match: str | None) -> None:
        try:
            current: ObjectInfo | None = self._head_unlocked(bucket, key)
        except NoSuchKey:
            current = None
        if if_none_match is not None and current is not None:
            if if_none_match.strip() == "*" or etag_matches(current.etag, if_none_match):
                raise precondition_failed("If-None-Match")
        if if_match is not None:
            if current is None:
                raise NoSuchKey(key)
            if not etag_matches(current.etag, if_match):
                raise precondition_failed("If-Match")

    def _head_unlocked(self, bucket: str, key: str) -> ObjectInfo:
        fh, info = self._open_locked(self._require_bucket(bucket), bucket, key)
        fh.close()
        return info

    def _place(self, bdir: Path, bucket: str, key: str, tmp: Path, meta: dict[str, Any]) -> Path:
        """Move ``tmp`` to the key's natural path if it can live there, else to ``.special``."""
        natural = self._natural_path(bdir, key)
        if natural is not None:
            root_real = os.path.realpath(bdir)
            for _ in range(5):
                try:
                    if not _inside(root_real, str(natural.parent)):
                        break
                    natural.parent.mkdir(parents=True, exist_ok=True)
                    if natural.is_dir():
                        break
                    meta["sig"] = _sig(os.stat(tmp))
                    meta["special"] = False
                    _write_json(self._meta_path(bucket, key), meta)
                    self._replace(tmp, natural)
                    with contextlib.suppress(FileNotFoundError):
                        self._special_path(bucket, key).unlink()
                    return natural
                except FileNotFoundError:
                    if not tmp.exists():
                        raise
                    continue  # a parent directory was pruned by a concurrent delete: retry
                except (FileExistsError, NotADirectoryError, IsADirectoryError):
                    break  # the natural path is taken by the other kind of node
        special = self._special_path(bucket, key)
        special.parent.mkdir(parents=True, exist_ok=True)
        meta["sig"] = _sig(os.stat(tmp))
        meta["special"] = True
        _write_json(self._meta_path(bucket, key), meta)
        self._replace(tmp, special)
        if key.endswith("/") and meta["size"] == 0:
            self._make_folder(bdir, key[:-1])
        return special

    @staticmethod
    def _replace(tmp: Path, target: Path) -> None:
        try:
            os.replace(tmp, target)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            # the bucket directory is a symlink to another filesystem: copy next to the target first
            fd, name = _mkstemp(target.parent)
            os.close(fd)
            shutil.copyfile(tmp, name)
            shutil.copystat(tmp, name)
            os.replace(name, target)
            tmp.unlink()

    def _make_folder(self, bdir: Path, rel: str) -> None:
        """Show a folder marker as a directory in the file browser (cosmetic, best effort)."""
        natural = self._natural_path(bdir, rel) if rel else None
        if natural is None or not _inside(os.path.realpath(bdir), str(natural.parent)):
            return
        with contextlib.suppress(OSError):
            natural.mkdir(parents=True, exist_ok=True)

    def write_stream(self, bucket: str, key: str, stream: BinaryIO | bytes, attributes: dict[str, Any] | None = None,
                     ) -> ObjectInfo:
        """Stream ``stream`` into ``key`` (no verification): the simplest internal write."""
        with self.stage(bucket) as staged:
            staged.write_from(stream)
            return self.commit(bucket, key, staged, attributes)

    def put_bytes(self, bucket: str, key: str, data: bytes, content_type: str | None = None) -> str:
        return self.write_stream(bucket, key, data, {"content_type": content_type}).etag

    def put_file(self, bucket: str, key: str, source: Path, content_type: str | None = None,
                 move: bool = False) -> str:
        """Store the file ``source`` as ``key``; returns the ETag. ``move=True`` renames when possible."""
        check_key(key)
        source = Path(source)
        with self.stage(bucket) as staged:
            moved = False
            if move:
                try:
                    os.replace(source, staged.path)
                    moved = True
                except OSError as exc:
                    if exc.errno != errno.EXDEV:
                        raise
            if not moved:
                with open(source, "rb") as fh:
                    staged.write_from(fh)
                return self._commit_file(bucket, key, staged, content_type, source if move else None)
            try:
                staged.close()
                with open(staged.path, "rb") as fh:
                    staged.digests = Digests(size=os.fstat(fh.fileno()).st_size, md5=_md5_of_fd(fh.fileno()))
                return self._commit_file(bucket, key, staged, content_type, None)
            except BaseException:
                if not staged.committed:  # give the caller its file back
                    with contextlib.suppress(OSError):
                        os.replace(staged.path, source)
                raise

    def _commit_file(self, bucket: str, key: str, staged: Staged, content_type: str | None,
                     unlink_after: Path | None) -> str:
        etag = self.commit(bucket, key, staged, {"content_type": content_type}).etag
        if unlink_after is not None:
            unlink_after.unlink()
        return etag

    def copy_object(self, src_bucket: str, src_key: str, dst_bucket: str, dst_key: str,
                    attributes: dict[str, Any] | None = None,
                    check: Callable[[ObjectInfo], None] | None = None) -> ObjectInfo:
        """Server-side copy; ``attributes=None`` keeps the source's attributes (COPY directive).

        ``check`` sees the source's metadata before any byte is copied (copy-source conditions).
        """
        self._require_bucket(dst_bucket)
        check_key(dst_key)
        fh, src = self.open_object(src_bucket, src_key)
        with fh:
            if check is not None:
                check(src)
            return self._copy_open(fh, src, dst_bucket, dst_key, attributes)

    def _copy_open(self, fh: BinaryIO, src: ObjectInfo, dst_bucket: str, dst_key: str,
                   attributes: dict[str, Any] | None) -> ObjectInfo:
        with self.stage(dst_bucket) as staged:
            copy_range(fh.fileno(), staged.fd, 0, src.size)
            staged.digests = Digests(size=src.size, md5=src.etag.strip('"').split("-")[0])
            return self.commit(
                dst_bucket, dst_key, staged, attributes_of(src) if attributes is None else attributes,
                etag=src.etag, checksums=src.checksums, checksum_type=src.checksum_type, parts=src.parts,
            )

    # ------------------------------------------------------------ deleting
    def delete(self, bucket: str, key: str) -> bool:
        """Remove ``key``; True if something was removed. Missing keys are not an error (S3 semantics)."""
        bdir = self._require_bucket(bucket)
        check_key(key)
        removed = False
        with self._locks.hold(bucket, key):
            with contextlib.suppress(FileNotFoundError):
                self._special_path(bucket, key).unlink()
                removed = True
            natural = self._natural_path(bdir, key)
            if natural is not None and _inside(os.path.realpath(bdir), str(natural.parent)):
                with contextlib.suppress(FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError):
                    if not natural.is_dir():
                        natural.unlink()
                        removed = True
            with contextlib.suppress(FileNotFoundError):
                self._meta_path(bucket, key).unlink()
        rel = key[:-1] if key.endswith("/") else key.rpartition("/")[0]
        self._prune(bdir, bucket, rel)
        return removed

    def _prune(self, bdir: Path, bucket: str, rel: str) -> None:
        """Remove now-empty directories above a deleted key, as S3 "folders" vanish with their last key."""
        while rel:
            natural = self._natural_path(bdir, rel)
            if natural is None or self._meta_path(bucket, rel + "/").exists():
                return
            if not _inside(os.path.realpath(bdir), str(natural)) or natural.is_symlink():
                return
            try:
                natural.rmdir()
            except OSError:
                return
            rel = rel.rpartition("/")[0]

    # ------------------------------------------------------------ listing
    def iter_entries(self, bucket: str, prefix: str = "", after: str = "", delimiter: str | None = None,
                     ) -> Iterator[tuple[str, Path | None]]:
        """Sorted listing entries ``(key, path)`` for objects and ``(common_prefix, None)`` for groups.

        Only keys starting with ``prefix`` and sorting after ``after`` are considered; a group equal
        to ``after`` is skipped, so a continuation point may be a key or a common prefix.
        """
        bdir = self._require_bucket(bucket)
        natural = self._walk_natural(bdir, prefix, after, delimiter)
        special = iter(sorted(self._special_entries(bucket, prefix, after)))
        merged = heapq.merge(special, natural, key=lambda item: item[0])
        last_group: str | None = None
        last_key: str | None = None
        for name, path in merged:
            if delimiter:
                index = name.find(delimiter, len(prefix))
                if index >= 0:
                    group = name[: index + len(delimiter)]
                    if group != last_group and group != after:
                        last_group = group
                        yield group, None
                    continue
            if path is None or name == last_key:
                continue
            last_key = name
            yield name, path

    def _special_entries(self, bucket: str, prefix: str, after: str) -> Iterator[tuple[str, Path]]:
        directory = self._special_dir(bucket)
        try:
            entries = list(os.scandir(directory))
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in entries:
            if entry.name.startswith(TMP_PREFIX):
                continue
            meta = _read_json(self._meta_root(bucket) / entry.name[:2] / f"{entry.name}.json")
            if meta is None:
                continue
            key = meta.get("key")
            if isinstance(key, str) and key.startswith(prefix) and key > after and _key_hash(key) == entry.name:
                yield key, Path(entry.path)

    def _walk_natural(self, bdir: Path, prefix: str, after: str, delimiter: str | None,
                      ) -> Iterator[tuple[str, Path | None]]:
        base, slash, partial = prefix.rpartition("/")
        if slash and not base:
            return  # natural keys never start with "/"
        if base:
            base_path = self._natural_path(bdir, base)
            if base_path is None:
                return
            start, rel = str(base_path), base + slash
        else:
            start, rel = str(bdir), ""
        yield from self._walk_dir(start, rel, partial, prefix, after, delimiter == "/", [])

    def _walk_dir(self, path: str, rel: str, name_prefix: str, prefix: str, after: str, group_dirs: bool,
                  stack: list[tuple[int, int]]) -> Iterator[tuple[str, Path | None]]:
        try:
            st = os.stat(path)
            entries = list(os.scandir(path))
        except OSError:
            return
        ident = (st.st_dev, st.st_ino)
        if ident in stack or len(stack) > 64:
            return  # a symlink loop made by hand
        items: list[tuple[str, os.DirEntry[str], bool]] = []
        for entry in entries:
            name = entry.name
            if name.startswith(TMP_PREFIX) or not name.startswith(name_prefix) or not _utf8_ok(name):
                continue
            try:
                if entry.is_dir():
                    items.append((name + "/", entry, True))
                elif entry.is_file():
                    items.append((name, entry, False))
            except OSError:
                continue
        items.sort(key=lambda item: item[0])
        stack.append(ident)
        try:
            for sort_name, entry, is_dir in items:
                key = rel + sort_name
                if not is_dir:
                    if key > after:
                        yield key, Path(entry.path)
                    continue
                if key <= after and not after.startswith(key):
                    continue  # the whole subtree sorts before the continuation point
                if group_dirs and len(key) > len(prefix) and not after.startswith(key):
                    if self._has_file(entry.path, len(stack)):
                        yield key, None  # one common prefix; no need to look inside
                    continue
                yield from self._walk_dir(entry.path, key, "", prefix, after, group_dirs, stack)
        finally:
            stack.pop()

    def _has_file(self, path: str, depth: int) -> bool:
        if depth > 64:
            return False
        try:
            entries = list(os.scandir(path))
        except OSError:
            return False
        dirs = []
        for entry in entries:
            if entry.name.startswith(TMP_PREFIX) or not _utf8_ok(entry.name):
                continue
            try:
                if entry.is_file():
                    return True
                if entry.is_dir():
                    dirs.append(entry.path)
            except OSError:
                continue
        return any(self._has_file(d, depth + 1) for d in dirs)

    def info_at(self, bucket: str, key: str, path: Path) -> ObjectInfo | None:
        """Metadata for a listed entry (re-validated against the file); None if it vanished meanwhile."""
        try:
            st = os.stat(path)
        except OSError:
            return None
        meta = _read_json(self._meta_path(bucket, key))
        if meta is not None and meta.get("sig") == _sig(st) and meta.get("key") == key:
            return ObjectInfo.from_meta(meta, path)
        try:
            return self.head(bucket, key)
        except NoSuchKey:
            return None

    def list_objects(self, bucket: str, prefix: str = "") -> list[ObjectInfo]:
        """Every object under ``prefix``, in key order (for the job runtime: channels, model dirs)."""
        out = []
        for key, path in self.iter_entries(bucket, prefix):
            if path is not None:
                info = self.info_at(bucket, key, path)
                if info is not None:
                    out.append(info)
        return out

    # ------------------------------------------------------------ multipart
    def _upload_dir(self, bucket: str, upload_id: str) -> Path:
        if not _UPLOAD_ID.fullmatch(upload_id or ""):
            raise NoSuchUpload(upload_id)
        return self._uploads_dir(bucket) / upload_id

    def create_upload(self, bucket: str, key: str, attributes: dict[str, Any],
                      checksum_algorithm: str | None = None) -> str:
        self._require_bucket(bucket)
        check_key(key)
        upload_id = secrets.token_urlsafe(36)
        directory = self._uploads_dir(bucket) / upload_id
        directory.mkdir(parents=True)
        _write_json(directory / "upload.json", {
            "key": key, "upload_id": upload_id, "initiated": time.time(),
            "attributes": {k: v for k, v in attributes.items() if v is not None},
            "checksum_algorithm": checksum_algorithm,
        })
        return upload_id

    def get_upload(self, bucket: str, key: str | None, upload_id: str) -> UploadInfo:
        self._require_bucket(bucket)
        data = _read_json(self._upload_dir(bucket, upload_id) / "upload.json")
        if data is None or (key is not None and data.get("key") != key):
            raise NoSuchUpload(upload_id)
        return UploadInfo(upload_id, data["key"], dt.datetime.fromtimestamp(float(data["initiated"]), UTC),
                          data.get("attributes") or {}, data.get("checksum_algorithm"))

    def stage_part(self, bucket: str, key: str, upload_id: str) -> Staged:
        self.get_upload(bucket, key, upload_id)
        try:
            return Staged(self._upload_dir(bucket, upload_id))
        except FileNotFoundError as exc:  # aborted meanwhile
            raise NoSuchUpload(upload_id) from exc

    def commit_part(self, bucket: str, key: str, upload_id: str, number: int, staged: Staged,
                    checksums: dict[str, str] | None = None, etag: str | None = None) -> PartInfo:
        if not 1 <= number <= MAX_PART_NUMBER:
            raise S3Error("InvalidArgument", f"Part number must be an integer between 1 and {MAX_PART_NUMBER}, "
                          "inclusive", 400, ArgumentName="partNumber", ArgumentValue=str(number))
        staged.close()
        directory = self._upload_dir(bucket, upload_id)
        info = {"number": number, "etag": etag or f'"{staged.digests.md5}"', "size": staged.digests.size,
                "last_modified": time.time(), "checksums": checksums or {}}
        with self._locks.hold("\0upload", upload_id, str(number)):
            self.get_upload(bucket, key, upload_id)
            try:
                _write_json(directory / f"{number:05d}.json", info)
                os.replace(staged.path, directory / f"{number:05d}.part")
            except FileNotFoundError as exc:  # aborted meanwhile
                raise NoSuchUpload(upload_id) from exc
            staged.committed = True
        return self._part_info(info)

    @staticmethod
    def _part_info(data: dict[str, Any]) -> PartInfo:
        return PartInfo(int(data["number"]), data["etag"], int(data["size"]),
                        dt.datetime.fromtimestamp(float(data["last_modified"]), UTC), dict(data.get("checksums") or {}))

    def list_parts(self, bucket: str, key: str, upload_id: str) -> tuple[UploadInfo, list[PartInfo]]:
        upload = self.get_upload(bucket, key, upload_id)
        directory = self._upload_dir(bucket, upload_id)
        parts = []
        for entry in os.scandir(directory):
            if entry.name.endswith(".json") and entry.name[:5].isdigit():
                data = _read_json(Path(entry.path))
                if data is not None and (directory / f"{entry.name[:5]}.part").exists():
                    parts.append(self._part_info(data))
        parts.sort(key=lambda p: p.number)
        return upload, parts

    def complete_upload(self, bucket: str, key: str, upload_id: str, requested: list[tuple[int, str]],
                        if_match: str | None = None, if_none_match: str | None = None) -> ObjectInfo:
        """Check the client's part list, concatenate the parts in the kernel, publish, clean up."""
        upload, available = self.list_parts(bucket, key, upload_id)
        by_number = {p.number: p for p in available}
        if not requested:
            raise S3Error("MalformedXML", "The XML you provided was not well-formed or did not validate against "
                          "our published schema", 400)
        numbers = [n for n, _ in requested]
        if any(b <= a for a, b in itertools.pairwise(numbers)):
            raise S3Error("InvalidPartOrder", "The list of parts was not in ascending order. Parts must be ordered "
                          "by part number.", 400, UploadId=upload_id)
        chosen: list[PartInfo] = []
        for number, etag in requested:
            part = by_number.get(number)
            if part is None or part.etag.strip('"') != (etag or "").strip('"'):
                raise S3Error(
                    "InvalidPart", "One or more of the specified parts could not be found.  The part may not "
                    "have been uploaded, or the specified entity tag may not have matched the part's entity tag.",
                    400, UploadId=upload_id, PartNumber=number, ETag=etag,
                )
            chosen.append(part)
        for part in chosen[:-1]:
            if part.size < MIN_PART_SIZE:
                raise S3Error("EntityTooSmall", "Your proposed upload is smaller than the minimum allowed size",
                              400, ProposedSize=part.size, MinSizeAllowed=MIN_PART_SIZE,
                              PartNumber=part.number, ETag=part.etag)
        directory = self._upload_dir(bucket, upload_id)
        combined = hashlib.md5(b"".join(bytes.fromhex(p.etag.strip('"')) for p in chosen))
        etag = f'"{combined.hexdigest()}-{len(chosen)}"'
        checksums: dict[str, str] = {}
        checksum_type = None
        if upload.checksum_algorithm == "CRC32" and all("CRC32" in p.checksums for p in chosen):
            crc = zlib.crc32(b"".join(base64.b64decode(p.checksums["CRC32"]) for p in chosen))
            checksums["CRC32"] = base64.b64encode(crc.to_bytes(4, "big")).decode() + f"-{len(chosen)}"
            checksum_type = "COMPOSITE"
        with self.stage(bucket) as staged:
            for part in chosen:
                src = os.open(directory / f"{part.number:05d}.part", os.O_RDONLY)
                try:
                    copy_range(src, staged.fd, 0, part.size)
                finally:
                    os.close(src)
            staged.digests = Digests(size=sum(p.size for p in chosen), md5=combined.hexdigest())
            info = self.commit(bucket, key, staged, upload.attributes, etag=etag, checksums=checksums,
                               checksum_type=checksum_type, parts=[p.size for p in chosen],
                               if_match=if_match, if_none_match=if_none_match)
        shutil.rmtree(directory, ignore_errors=True)
        return info

    def abort_upload(self, bucket: str, key: str, upload_id: str) -> None:
        self.get_upload(bucket, key, upload_id)
        shutil.rmtree(self._upload_dir(bucket, upload_id), ignore_errors=True)

    def list_uploads(self, bucket: str) -> list[UploadInfo]:
        self._require_bucket(bucket)
        out = []
        try:
            entries = list(os.scandir(self._uploads_dir(bucket)))
        except FileNotFoundError:
            return []
        for entry in entries:
            with contextlib.suppress(NoSuchUpload):
                out.append(self.get_upload(bucket, None, entry.name))
        out.sort(key=lambda u: (u.key, u.initiated, u.upload_id))
        return out


def etag_matches(etag: str, header: str) -> bool:
    """``If-Match``/``If-None-Match`` comparison: a list of (weak or strong) tags, or ``*``."""
    want = etag.strip().strip('"')
    for item in header.split(","):
        item = item.strip()
        if item == "*":
            return True
        if item.startswith("W/"):
            item = item[2:]
        if item.strip('"') == want:
            return True
    return False
