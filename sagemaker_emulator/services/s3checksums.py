"""S3's additional checksums (CRC32, CRC32C, CRC64NVME, SHA1, SHA256): what a request claims, and the hashers.

Why a module of its own: the same rules apply wherever S3 accepts a body (PutObject, UploadPart,
DeleteObjects), and the rules are easy to get subtly wrong -- one claim per request, the value is the
base64 of a fixed-length digest, the claim may come as a header or as an ``aws-chunked`` trailer, and
``x-amz-sdk-checksum-algorithm`` must agree with it. A claim is checked for form *before* the body is
read and for value *after*, so a malformed claim costs nothing and a wrong one commits nothing.

CRC32, SHA1 and SHA256 come from the standard library. CRC32C and CRC64NVME need ``awscrt`` (the
library botocore itself uses for them); when it is not installed they are refused with a clear
``InvalidRequest`` instead of being accepted unverified -- botocore only sends them when awscrt is
present on the client, which in this project is the same environment.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..protocol.errors import ServiceError

#: digest length in bytes of every algorithm S3 knows, by its S3 name
LENGTHS = {"CRC32": 4, "CRC32C": 4, "CRC64NVME": 8, "SHA1": 20, "SHA256": 32}
#: ``x-amz-checksum-*`` headers that name a property of the request, not a checksum value
NOT_VALUES = frozenset({"x-amz-checksum-mode", "x-amz-checksum-type", "x-amz-checksum-algorithm"})
PREFIX = "x-amz-checksum-"


class Hasher(Protocol):
    def update(self, data: bytes) -> None: ...

    def digest(self) -> bytes: ...


class _Crc:
    """A running CRC behind the ``update``/``digest`` interface of hashlib."""

    def __init__(self, step: Callable[[bytes, int], int], width: int) -> None:
        self._step = step
        self._width = width
        self._value = 0

    def update(self, data: bytes) -> None:
        self._value = self._step(data, self._value)

    def digest(self) -> bytes:
        return self._value.to_bytes(self._width, "big")


def _crt_step(name: str) -> Callable[[bytes, int], int] | None:
    try:
        from awscrt import checksums  # type: ignore[import-not-found]
    except ImportError:
        return None
    return getattr(checksums, name, None)


_STEPS: dict[str, Callable[[bytes, int], int] | None] = {
    "CRC32": zlib.crc32,
    "CRC32C": _crt_step("crc32c"),
    "CRC64NVME": _crt_step("crc64nvme"),
}


def computable(algorithm: str) -> bool:
    """Whether this process can compute ``algorithm`` (CRC32C/CRC64NVME need awscrt)."""
    return algorithm in ("SHA1", "SHA256") or _STEPS.get(algorithm) is not None


def new_hasher(algorithm: str) -> Hasher:
    if algorithm == "SHA1":
        return hashlib.sha1()
    if algorithm == "SHA256":
        return hashlib.sha256()
    step = _STEPS.get(algorithm)
    if step is None:
        raise cannot_compute(algorithm)
    return _Crc(step, LENGTHS[algorithm])


def encode(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def compute(algorithms: Iterable[str], data: bytes) -> dict[str, str]:
    """Checksums of a body already in memory (DeleteObjects' XML), base64 by algorithm."""
    out = {}
    for algorithm in algorithms:
        hasher = new_hasher(algorithm)
        hasher.update(data)
        out[algorithm] = encode(hasher.digest())
    return out


def well_formed(algorithm: str, value: str) -> bool:
    """A claimed value is the standard base64 of exactly one digest of the algorithm."""
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    return len(raw) == LENGTHS[algorithm]


def header_name(algorithm: str) -> str:
    return PREFIX + algorithm.lower()


# ---------------------------------------------------------------- errors, in S3's words
def invalid_request(message: str) -> ServiceError:
    return ServiceError("InvalidRequest", message, 400)


def cannot_compute(algorithm: str) -> ServiceError:
    return invalid_request(
        f"The emulator cannot compute {algorithm} checksums here (they need the awscrt package); "
        "use CRC32, SHA1 or SHA256."
    )


def bad_digest(algorithm: str) -> ServiceError:
    return ServiceError("BadDigest", f"The {algorithm} you specified did not match the calculated checksum.", 400)


# ---------------------------------------------------------------- the claim
@dataclass
class Claim:
    """What one request says about its body's checksum: which algorithm, and the value if it came as a header.

    ``trailer`` is set when the value is announced in ``x-amz-trailer`` and arrives after the body.
    ``algorithm`` is None when the request asks for no checksum at all.
    """

    algorithm: str | None = None
    value: str | None = None
    trailer: str | None = None
    extra: set[str] = field(default_factory=set)

    @property
    def algorithms(self) -> set[str]:
        """What must be computed while the body streams."""
        return ({self.algorithm} if self.algorithm else set()) | self.extra


def _header_claims(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    found = {}
    for name, value in headers:
        if name.startswith(PREFIX) and name not in NOT_VALUES:
            algorithm = name[len(PREFIX):].upper()
            if algorithm in LENGTHS:
                found[algorithm] = value
    return found


def _trailer_claims(announced: str | None) -> dict[str, str]:
    found = {}
    for name in (announced or "").split(","):
        name = name.strip().lower()
        if name.startswith(PREFIX) and name not in NOT_VALUES and name[len(PREFIX):].upper() in LENGTHS:
            found[name[len(PREFIX):].upper()] = name
    return found


def read_claim(lower_headers: Iterable[tuple[str, str]], sdk_algorithm: Any) -> Claim:
    """Parse and check a request's checksum claim before its body is read (raises S3's InvalidRequest).

    ``lower_headers`` are (lower-case name, value) pairs; ``sdk_algorithm`` is the
    ``x-amz-sdk-checksum-algorithm`` value (the ``ChecksumAlgorithm`` member), if any.
    """
    headers = list(lower_headers)
    announced = next((v for k, v in headers if k == "x-amz-trailer"), None)
    values = _header_claims(headers)
    trailers = _trailer_claims(announced)
    if len(values) + len(trailers) > 1:
        raise invalid_request("Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.")
    sdk = str(sdk_algorithm).strip().upper() if sdk_algorithm else None
    if sdk is not None and sdk not in LENGTHS:
        raise invalid_request("Value for x-amz-sdk-checksum-algorithm header is invalid.")
    claimed = next(iter(values), None) or next(iter(trailers), None)
    if sdk is not None and claimed is not None and sdk != claimed:
        raise invalid_request("Value for x-amz-sdk-checksum-algorithm header is invalid.")
    algorithm = claimed or sdk
    value = values.get(algorithm) if algorithm else None
    if algorithm is not None and value is not None and not well_formed(algorithm, value):
        raise invalid_request(f"Value for {header_name(algorithm)} header is invalid.")
    if algorithm is not None and not computable(algorithm):
        raise cannot_compute(algorithm)
    return Claim(algorithm, value.strip() if value else None, trailers.get(algorithm) if algorithm else None)


def find_trailers(stream: Any) -> dict[str, str]:
    """The trailers an ``aws-chunked``/chunked body carried, collected by the chunk decoder under ``stream``
    (the gateway may hand a handler a hash check wrapped around it; readers wrap one another through
    ``source``)."""
    while stream is not None:
        trailers = getattr(stream, "trailers", None)
        if isinstance(trailers, dict) and trailers:
            return {str(k).lower(): str(v) for k, v in trailers.items()}
        stream = getattr(stream, "source", None)
    return {}


def verify(claim: Claim, computed: dict[str, str], trailers: dict[str, str]) -> None:
    """After the body: the claimed value (header or trailer) must equal what was computed."""
    if claim.algorithm is None:
        return
    value = claim.value
    if claim.trailer is not None:
        value = trailers.get(claim.trailer)
        if value is None:
            raise ServiceError("MalformedTrailerError", "The request contained trailing data that was not "
                               "well-formed or did not conform to our published schema.", 400)
        if not well_formed(claim.algorithm, value):
            raise invalid_request(f"Value for {claim.trailer} trailing header is invalid.")
    if value is not None and value.strip() != computed.get(claim.algorithm):
        raise bad_digest(claim.algorithm)


# ---------------------------------------------------------------- Content-MD5
def read_content_md5(value: str | None) -> bytes | None:
    """The 16 bytes a ``Content-MD5`` header claims; ``InvalidDigest`` when it is not base64 of 16 bytes."""
    if value is None:
        return None
    try:
        claimed = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        claimed = b""
    if len(claimed) != 16:
        raise ServiceError("InvalidDigest", "The Content-MD5 you specified was invalid.", 400, **{"Content-MD5": value})
    return claimed


def verify_content_md5(claimed: bytes | None, md5: bytes) -> None:
    if claimed is not None and claimed != md5:
        raise ServiceError("BadDigest", "The Content-MD5 you specified did not match what we received.", 400,
                           ExpectedDigest=encode(claimed), CalculatedDigest=encode(md5))
