"""Moving data between the local S3 store and a job's directories.

Downloads follow SageMaker's rules: an ``S3Prefix`` brings every object
under the prefix (path relative to the prefix's folder), ``ShardedByS3Key``
gives instance *i* of *n* every *n*-th object, ``Gzip`` inputs are
decompressed. Uploads write ``model.tar.gz``/``output.tar.gz`` and
processing outputs back into the store.
"""

from __future__ import annotations

import gzip
import shutil
import tarfile
from pathlib import Path
from typing import Any

from ..protocol.errors import ServiceError


class StagingError(Exception):
    """A data problem the job reports as a ``ClientError`` failure reason."""


def parse_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise StagingError(f'"{uri}" is not an S3 URI (expected s3://bucket/key).')
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


def relative_key(key: str, prefix: str) -> str:
    """Where an object lands in the channel: relative to the prefix when the prefix names a folder
    (``s3://b/data/train`` or ``…/train/`` → ``train.csv``), else relative to the prefix's folder."""
    if key == prefix:
        return key.rsplit("/", 1)[-1]
    if prefix.endswith("/") or key.startswith(prefix + "/"):
        return key[len(prefix):].lstrip("/")
    folder = prefix.rsplit("/", 1)[0] + "/" if "/" in prefix else ""
    return key[len(folder):]


def stage_prefix(
    store: Any, uri: str, dest: Path, *, sharded: bool = False, instance: int = 0, instances: int = 1,
    gzip_input: bool = False, role_arn: str = "", region: str = "",
) -> int:
    """Copy the objects under ``uri`` into ``dest``; return how many files were staged."""
    bucket, prefix = parse_s3_uri(uri)
    objects = []
    if store.bucket_exists(bucket):
        objects = [o for o in store.list_objects(bucket, prefix) if not o.key.endswith("/")]
    if not objects:
        raise StagingError(
            f'No S3 objects found under S3 URL "{uri}" given in input data source. Please ensure that the '
            f"bucket exists in the selected region ({region}), that objects exist under that S3 prefix, and "
            f'that the role "{role_arn}" has "s3:ListBucket" permissions on bucket "{bucket}".'
        )
    objects.sort(key=lambda o: o.key)
    if sharded:
        objects = objects[instance::instances]
    dest.mkdir(parents=True, exist_ok=True)
    for obj in objects:
        rel = relative_key(obj.key, prefix)
        target = (dest / rel).resolve()
        if dest.resolve() not in target.parents:
            raise StagingError(f"Object key {obj.key!r} cannot be staged inside the channel directory.")
        target.parent.mkdir(parents=True, exist_ok=True)
        if gzip_input:
            with gzip.open(obj.path, "rb") as src, open(target.with_suffix(""), "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
        else:
            shutil.copyfile(obj.path, target)
    return len(objects)


def extract_tarball(store: Any, uri: str, dest: Path) -> None:
    """Download and safely extract a ``.tar.gz`` (the script-mode ``sourcedir.tar.gz``)."""
    bucket, key = parse_s3_uri(uri)
    try:
        path = store.object_path(bucket, key)
    except (KeyError, FileNotFoundError, ServiceError) as exc:
        raise StagingError(f"The source code archive {uri} does not exist.") from exc
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "r:*") as archive:
        archive.extractall(dest, filter="data")


def tar_directory(source: Path, archive: Path) -> bool:
    """``source``'s contents as a gzipped tarball; False (and no file) when empty."""
    entries = sorted(source.iterdir()) if source.exists() else []
    if not entries:
        return False
    with tarfile.open(archive, "w:gz", compresslevel=6) as tar:
        for entry in entries:
            tar.add(entry, arcname=entry.name)
    return True


def upload_tree(store: Any, source: Path, uri: str) -> int:
    """Upload every file under ``source`` to ``uri`` + relative path (processing outputs)."""
    bucket, prefix = parse_s3_uri(uri)
    if not store.bucket_exists(bucket):
        raise StagingError(f"The output bucket {bucket} does not exist (output location {uri}).")
    count = 0
    base = prefix.rstrip("/")
    for path in sorted(source.rglob("*")):
        if path.is_file() and not path.is_symlink():
            rel = path.relative_to(source).as_posix()
            store.put_file(bucket, f"{base}/{rel}" if base else rel, path)
            count += 1
    return count


def upload_file(store: Any, path: Path, uri: str) -> None:
    bucket, key = parse_s3_uri(uri)
    if not store.bucket_exists(bucket):
        raise StagingError(f"The output bucket {bucket} does not exist (output location {uri}).")
    store.put_file(bucket, key, path, content_type="application/x-tar" if key.endswith(".tar.gz") else None)
