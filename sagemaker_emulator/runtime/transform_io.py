"""Batch transform's side of S3: which objects a job reads, and the data capture manifests it writes.

Input objects come from an ``S3Prefix`` (every object under it, in key order) or a
``ManifestFile`` (``[{"prefix": "s3://bucket/prefix/"}, "relative/key", ...]``). Each keeps its
path relative to the prefix, because that is where its ``.out`` lands under ``S3OutputPath``:
``s3://b/in-prefix`` + ``in-prefix/dataset01/data.csv`` → ``<S3OutputPath>/dataset01/data.csv.out``;
a ``S3Uri`` naming one object gives ``<S3OutputPath>/<basename>.out``.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from .staging import StagingError, parse_s3_uri, relative_key


@dataclass
class InputObject:
    bucket: str
    key: str
    rel: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def list_inputs(store: Any, source: dict[str, Any], region: str) -> list[InputObject]:
    """The objects of an ``S3DataSource``; none at all is a ``ClientError`` as on AWS."""
    uri = source["S3Uri"]
    if source.get("S3DataType") == "ManifestFile":
        return read_manifest(store, uri)
    bucket, prefix = parse_s3_uri(uri)
    objects = []
    if store.bucket_exists(bucket):
        objects = [InputObject(bucket, o.key, relative_key(o.key, prefix))
                   for o in store.list_objects(bucket, prefix) if not o.key.endswith("/")]
    if not objects:
        raise StagingError(
            f'No S3 objects found under S3 URL "{uri}" given in input data source. Please ensure that the bucket '
            f"exists in the selected region ({region}) and that objects exist under that S3 prefix.")
    return sorted(objects, key=lambda o: o.key)


def read_manifest(store: Any, uri: str) -> list[InputObject]:
    """``[{"prefix": "s3://b/p/"}, "rel/key1", ...]``: the objects are prefix + each entry, in that order."""
    bucket, key = parse_s3_uri(uri)
    try:
        entries = json.loads(store.get_bytes(bucket, key))
    except ValueError as exc:
        raise StagingError(f"The manifest file {uri} is not valid JSON: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - NoSuchKey, NoSuchBucket ...
        raise StagingError(f"Could not read the manifest file {uri}: {exc}") from None
    if not (isinstance(entries, list) and entries and isinstance(entries[0], dict) and "prefix" in entries[0]
            and all(isinstance(e, str) for e in entries[1:])):
        raise StagingError(f'The manifest file {uri} must be a JSON array: [{{"prefix": "s3://bucket/prefix/"}}, '
                           '"relative/key", ...].')
    prefix_bucket, prefix = parse_s3_uri(entries[0]["prefix"])
    objects = [InputObject(prefix_bucket, prefix + rel, rel) for rel in entries[1:]]
    for obj in objects:
        try:
            store.head(obj.bucket, obj.key)
        except Exception:  # noqa: BLE001
            raise StagingError(f"The manifest file {uri} lists {obj.uri}, which does not exist.") from None
    if not objects:
        raise StagingError(f"The manifest file {uri} lists no objects.")
    return objects


def write_capture_manifests(store: Any, config: dict[str, Any], objects: list[InputObject], output_path: str,
                            uploaded: list[str]) -> None:
    """``DataCaptureConfig``: manifests of the inputs and outputs under ``<dest>/input|output/yyyy/mm/dd/hh/``."""
    dest = config["DestinationS3Uri"].rstrip("/")
    hour = time.strftime("%Y/%m/%d/%H", time.gmtime())
    in_prefix = objects[0].uri[: len(objects[0].uri) - len(objects[0].rel)]  # what the relative paths are under
    in_entries = [o.uri[len(in_prefix):] if o.uri.startswith(in_prefix) else o.uri for o in objects]
    out_prefix = output_path.rstrip("/") + "/"
    out_entries = [u[len(out_prefix):] for u in uploaded]
    try:
        for kind, prefix, entries in (("input", in_prefix, in_entries), ("output", out_prefix, out_entries)):
            bucket, key = parse_s3_uri(f"{dest}/{kind}/{hour}/{uuid.uuid4()}.json")
            store.put_bytes(bucket, key, json.dumps([{"prefix": prefix}, *entries]).encode(), "application/json")
    except Exception as exc:  # noqa: BLE001
        raise StagingError(f"Could not write the data capture manifests to {dest}: {exc}") from None
