"""Model artifacts as SageMaker stores them: ``model.tar.gz`` archives built in memory for the tests."""

from __future__ import annotations

import io
import tarfile


def tarball(files: dict[str, bytes]) -> bytes:
    """A gzipped tar holding ``files`` (name → bytes), the shape of a ``ModelDataUrl`` artifact."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def xgboost_tarball(booster) -> bytes:
    """What a built-in XGBoost training job writes: ``xgboost-model`` (UBJSON) in ``model.tar.gz``."""
    return tarball({"xgboost-model": bytes(booster.save_raw("ubj"))})


#: a ``model.tar.gz`` the built-in XGBoost server cannot load: the endpoint fails its health check
BROKEN_MODEL = tarball({"not-a-model.txt": b"hello"})


def ensure_bucket(s3, name: str) -> None:
    """Create bucket ``name`` unless this emulator already has it (module fixtures share one emulator)."""
    from botocore.exceptions import ClientError

    try:
        s3.create_bucket(Bucket=name)
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
