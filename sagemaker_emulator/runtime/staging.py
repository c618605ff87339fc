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
    try:
        safe_extract(path, dest)
    except (tarfile.TarError, OSError) as exc:
        raise StagingError(f"Could not extract the archive {uri}: {exc}") from None


def check_code_location(value: str, label: str) -> None:
    """Code a job runs comes from S3 or from inside its own container (``/opt/ml/...``), never from
    an arbitrary host folder a request names (``/home/someone/project``, ``file:///etc``)."""
    from .container import container_path

    local = value.removeprefix("file://")
    if value and not value.startswith("s3://") and container_path(local) is None:
        raise StagingError(f"{label} {value[:256]!r} must be an s3:// URI or a path under /opt/ml/; the local "
                           "emulator does not run code from other folders of the host.")


def safe_extract(archive_path: Path, dest: Path) -> None:
    """Extract a tarball so that nothing lands outside ``dest``.

    Why: archives come from S3, i.e. from whoever can write the bucket. A member named
    ``/etc/x`` or ``../../x``, a symlink or hard link pointing outside, or a device file would
    otherwise let the archive write anywhere the daemon can. Python's ``data`` filter refuses
    all of these (and strips set-uid bits); before 3.11.4 the same rules are checked here.
    """
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive_path, "r:*") as archive:
        if hasattr(tarfile, "data_filter"):
            archive.extractall(dest, filter="data")
            return
        root = dest.resolve()
        for member in archive.getmembers():
            _check_member(member, root)
        archive.extractall(dest)  # noqa: S202 - every member was checked above


def _check_member(member: tarfile.TarInfo, root: Path) -> None:
    """The ``data`` filter's rules for one member (only used where ``tarfile.data_filter`` is missing)."""
    if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        raise tarfile.TarError(f"{member.name!r} is a special file")
    target = (root / member.name).resolve()
    if member.name.startswith("/") or (target != root and root not in target.parents):
        raise tarfile.TarError(f"{member.name!r} would be extracted outside the destination")
    if member.issym() or member.islnk():
        base = target.parent if member.issym() else root
        link = (base / member.linkname).resolve()
        if member.linkname.startswith("/") or (link != root and root not in link.parents):
            raise tarfile.TarError(f"{member.name!r} links outside the destination ({member.linkname!r})")


def tar_directory(source: Path, archive: Path) -> bool:
    """``source``'s contents as a gzipped tarball; False (and no file) when empty.

    Links are archived as links (``tarfile`` does not follow them); a ``source`` that is itself a
    link (the job replaced ``/opt/ml/model`` with one) is refused, so only the job's files go out.
    """
    if source.is_symlink():
        raise StagingError(f"{source.name} is a link; the job must write its files into the directory itself.")
    entries = sorted(source.iterdir()) if source.exists() else []
    if not entries:
        return False
    with tarfile.open(archive, "w:gz", compresslevel=6) as tar:
        for entry in entries:
            tar.add(entry, arcname=entry.name)
    return True


def inside(path: Path, root: Path) -> bool:
    """Whether ``path``, symlinks resolved, is ``root`` or lies under it."""
    resolved, top = path.resolve(), root.resolve()
    return resolved == top or top in resolved.parents


def upload_tree(store: Any, source: Path, uri: str, root: Path | None = None) -> int:
    """Upload every file under ``source`` to ``uri`` + relative path (processing outputs).

    ``root`` is the job's directory: the job's own code may have replaced ``source`` or a folder
    in it with a symlink, and the daemon must not upload what lies outside the job (``/etc``…).
    """
    bucket, prefix = parse_s3_uri(uri)
    if not store.bucket_exists(bucket):
        raise StagingError(f"The output bucket {bucket} does not exist (output location {uri}).")
    if root is not None and not inside(source, root):
        raise StagingError(f"The output directory {source.name} is a link to outside the job's directory.")
    count = 0
    base = prefix.rstrip("/")
    for path in sorted(source.rglob("*")):
        if root is not None and not inside(path, root):
            continue
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
