"""Server-side AWS Signature Version 4 verification.

Every request must be signed with the emulator's own credentials, exactly as
AWS requires, so a notebook that accidentally carries real credentials (or
none) fails here the same way it would fail against AWS, and a stray local
process cannot drive the emulator without reading the 0600 credentials file.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import re
from dataclasses import dataclass
from urllib.parse import quote, unquote

from .protocol.errors import ServiceError
from .protocol.http import Request

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOADS = {
    "UNSIGNED-PAYLOAD",
    "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
    "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
}
MAX_SKEW = dt.timedelta(minutes=15)
MAX_PRESIGN_SECONDS = 7 * 24 * 3600
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


@dataclass(frozen=True)
class Credential:
    """What the Authorization header (or presigned query) claims."""

    access_key: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str
    amz_date: str
    presigned: bool = False
    expires: str | None = None  # presigned only: X-Amz-Expires as sent

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/aws4_request"


def parse_credential(request: Request) -> Credential | None:
    """Extract the SigV4 claim, or None for an unsigned request."""
    auth = request.headers.get("Authorization")
    if auth:
        if not auth.startswith(ALGORITHM + " "):
            raise ServiceError("IncompleteSignature", "Authorization header requires AWS4-HMAC-SHA256.", 403)
        fields: dict[str, str] = {}
        for part in auth[len(ALGORITHM) + 1 :].split(","):
            key, _, value = part.strip().partition("=")
            fields[key] = value
        try:
            scope = fields["Credential"].split("/")
            return Credential(
                scope[0], scope[1], scope[2], scope[3],
                tuple(fields["SignedHeaders"].split(";")), fields["Signature"],
                request.headers.get("X-Amz-Date", ""),
            )
        except (KeyError, IndexError) as exc:
            raise ServiceError(
                "IncompleteSignature", "Authorization header is missing Credential, SignedHeaders or Signature.",
                403,
            ) from exc
    query = request.query
    if query.get("X-Amz-Algorithm", [""])[0] == ALGORITHM:
        scope = query.get("X-Amz-Credential", [""])[0].split("/")
        if len(scope) < 5:
            raise ServiceError("AuthorizationQueryParametersError", "X-Amz-Credential is malformed.", 400)
        return Credential(
            scope[0], scope[1], scope[2], scope[3],
            tuple(query.get("X-Amz-SignedHeaders", [""])[0].split(";")),
            query.get("X-Amz-Signature", [""])[0], query.get("X-Amz-Date", [""])[0], presigned=True,
            expires=query.get("X-Amz-Expires", [None])[0],
        )
    return None


def _remove_dot_segments(path: str) -> str:
    out: list[str] = []
    for seg in path.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if out:
                out.pop()
        else:
            out.append(seg)
    result = "/" + "/".join(out)
    if path.endswith("/") and result != "/":
        result += "/"
    return result


def canonical_uri(request: Request, service: str) -> str:
    if service == "s3":
        return request.raw_path or "/"
    return quote(_remove_dot_segments(request.raw_path or "/"), safe="/~")


def canonical_query(query_string: str, drop_signature: bool) -> str:
    pairs = []
    for pair in filter(None, query_string.split("&")):
        key, _, value = pair.partition("=")
        key, value = unquote(key.replace("+", " ")), unquote(value.replace("+", " "))
        if drop_signature and key == "X-Amz-Signature":
            continue
        pairs.append((quote(key, safe="-_.~"), quote(value, safe="-_.~")))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def declared_payload_hash(request: Request, cred: Credential) -> str | None:
    """The payload hash the client signed, when it signed one: a hex digest or an ``UNSIGNED-PAYLOAD``/
    ``STREAMING-…`` literal; None when the signature covers the hash of the body itself.

    Why so strict: an ``X-Amz-Content-SHA256`` header that is not itself signed could be swapped along with
    the body, so it is trusted only when signed (S3 refuses it unsigned); every other service signs the body.
    """
    if cred.service != "s3":
        return None
    if cred.presigned:
        return request.query.get("X-Amz-Content-Sha256", ["UNSIGNED-PAYLOAD"])[0]
    declared = request.headers.get("X-Amz-Content-SHA256")
    if not declared:
        raise ServiceError("InvalidRequest", "Missing required header for this request: x-amz-content-sha256", 400)
    if "x-amz-content-sha256" not in cred.signed_headers:
        raise ServiceError("AccessDenied", "There were headers present in the request which were not signed", 403,
                           HeadersNotSigned="x-amz-content-sha256")
    if declared not in UNSIGNED_PAYLOADS and not _is_sha256_hex(declared):
        raise ServiceError("InvalidArgument", "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, "
                           "STREAMING-UNSIGNED-PAYLOAD-TRAILER, STREAMING-AWS4-HMAC-SHA256-PAYLOAD, "
                           "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER or a valid sha256 value.", 400,
                           ArgumentName="x-amz-content-sha256", ArgumentValue=declared[:128])
    return declared


def _is_sha256_hex(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdefABCDEF" for c in value)


def canonical_request(request: Request, cred: Credential, payload: str) -> str:
    headers = []
    for name in cred.signed_headers:
        value = request.headers.get(name)
        if value is None:
            value = ""
        headers.append(f"{name}:{' '.join(value.split())}")
    return "\n".join([
        request.method,
        canonical_uri(request, cred.service),
        canonical_query(request.query_string, cred.presigned),
        "\n".join(headers) + "\n",
        ";".join(cred.signed_headers),
        payload,
    ])


@functools.lru_cache(maxsize=64)
def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """Four chained HMACs; the result changes once a day per region and service, so it is cached."""
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.digest(key, part.encode(), "sha256")
    return key


def expected_signature(request: Request, cred: Credential, secret: str, payload: str) -> str:
    digest = hashlib.sha256(canonical_request(request, cred, payload).encode()).hexdigest()
    to_sign = "\n".join([ALGORITHM, cred.amz_date, cred.scope, digest])
    key = signing_key(secret, cred.date, cred.region, cred.service)
    return hmac.digest(key, to_sign.encode(), "sha256").hex()


@functools.lru_cache(maxsize=16)
def _parse_amz_date(value: str) -> dt.datetime:
    """``20261125T022550Z`` → aware datetime. ``strptime`` costs ~20 µs and every request carries one of a few
    recent stamps, so the result is cached; the fixed format is checked before slicing it."""
    if len(value) != 16 or value[8] != "T" or value[15] != "Z" or not (value[:8] + value[9:15]).isdigit():
        raise ValueError(value)
    return dt.datetime(int(value[0:4]), int(value[4:6]), int(value[6:8]), int(value[9:11]), int(value[11:13]),
                       int(value[13:15]), tzinfo=dt.UTC)


def check_time(cred: Credential, now: dt.datetime | None = None) -> None:
    """The request's date: within 15 minutes of now, or (presigned) within its ``X-Amz-Expires``."""
    try:
        stamp = _parse_amz_date(cred.amz_date)
    except ValueError as exc:
        if cred.presigned:
            raise _query_error("X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"") from exc
        raise ServiceError("IncompleteSignature", "X-Amz-Date is missing or malformed.", 403) from exc
    now = now or dt.datetime.now(dt.UTC)
    if cred.presigned:
        _check_expiry(cred, stamp, now)
    elif abs(now - stamp) > MAX_SKEW:
        raise ServiceError(
            "RequestTimeTooSkewed",
            "The difference between the request time and the current time is too large.", 403,
        )


def _query_error(message: str) -> ServiceError:
    return ServiceError("AuthorizationQueryParametersError", message, 400)


def _check_expiry(cred: Credential, stamp: dt.datetime, now: dt.datetime) -> None:
    """S3's rules for presigned URLs: 1 second to 7 days, not before their date, not after it plus expiry."""
    if cred.expires is None:
        raise _query_error("Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, "
                           "X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.")
    if not cred.expires.isdigit() or len(cred.expires) > 10:
        raise _query_error("X-Amz-Expires should be a number")
    seconds = int(cred.expires)
    if seconds > MAX_PRESIGN_SECONDS:
        raise _query_error("X-Amz-Expires must be less than a week (in seconds) that is 604800")
    if seconds < 1:
        raise _query_error("X-Amz-Expires must be non-negative")
    if stamp - now > MAX_SKEW:
        raise ServiceError("AccessDenied", "Request is not valid yet", 403)
    expires_at = stamp + dt.timedelta(seconds=seconds)
    if now > expires_at:
        raise ServiceError("AccessDenied", "Request has expired", 403, **{
            "X-Amz-Expires": str(seconds), "Expires": expires_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "ServerTime": now.strftime("%Y-%m-%dT%H:%M:%SZ")})


def check_access_key(cred: Credential, access_key: str) -> None:
    if hmac.compare_digest(cred.access_key, access_key):
        return
    if cred.service == "s3":
        raise ServiceError(
            "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.", 403,
            AWSAccessKeyId=cred.access_key,
        )
    code = "InvalidClientTokenId" if cred.service in ("sts", "iam") else "UnrecognizedClientException"
    raise ServiceError(code, "The security token included in the request is invalid.", 403)


def check_scope(cred: Credential, service: str, region: str | None, protocol: str) -> None:
    """The credential scope names the day of ``X-Amz-Date``, a real region (the one the host names, if it
    names one) and the service the request is for, as AWS checks before it looks at the signature."""
    problem: tuple[str, str] | None = None
    if cred.date != cred.amz_date[:8]:
        problem = ("date", f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from "
                           f"HTTP: '{cred.date}' != '{cred.amz_date[:8]}', from '{cred.amz_date}'.")
    elif not valid_region(cred.region) or (region is not None and cred.region != region):
        problem = ("region", "Credential should be scoped to a valid region.")
    elif cred.service != service:
        problem = ("service", f"Credential should be scoped to correct service: '{service}'.")
    if problem is None:
        return
    if service == "s3":
        raise _s3_scope_error(cred, problem[0], region or cred.region)
    code = "SignatureDoesNotMatch" if protocol == "query" else "InvalidSignatureException"
    raise ServiceError(code, problem[1], 403)


def _s3_scope_error(cred: Credential, kind: str, expected_region: str) -> ServiceError:
    status = 400
    if cred.presigned:
        prefix, code = "Error parsing the X-Amz-Credential parameter; ", "AuthorizationQueryParametersError"
    else:
        prefix, code = "The authorization header is malformed; ", "AuthorizationHeaderMalformed"
    if kind == "date":
        return ServiceError(code, prefix + "Invalid credential date. Date is not the same as X-Amz-Date.", status)
    if kind == "region":
        return ServiceError(code, prefix + f"the region '{cred.region}' is wrong; expecting '{expected_region}'",
                            status, Region=expected_region)
    return ServiceError(code, prefix + f"incorrect service '{cred.service}'. This endpoint belongs to 's3'.", status)


def valid_region(name: str) -> bool:
    return any(pattern.match(name) for pattern in _region_patterns())


@functools.cache
def _region_patterns() -> tuple[re.Pattern[str], ...]:
    """Every partition's region pattern, from botocore's own ``partitions.json``."""
    from botocore.loaders import create_loader

    partitions = create_loader().load_data("partitions")["partitions"]
    return tuple(re.compile(p["regionRegex"]) for p in partitions)


def check_signature(request: Request, cred: Credential, secret: str, payload: str) -> None:
    """Raise ``SignatureDoesNotMatch`` unless the signature is the one ``secret`` makes for this request."""
    if not hmac.compare_digest(expected_signature(request, cred, secret, payload), cred.signature):
        raise signature_mismatch()


def signature_mismatch() -> ServiceError:
    return ServiceError(
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided. "
        "Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
        403,
    )


class ChunkVerifier:
    """Checks a signed streaming upload as it arrives: each chunk signature signs its data and the previous
    signature, starting from the request's, so no chunk can be swapped, dropped or added; for
    ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER`` the ``x-amz-trailer-signature`` signs the trailing headers
    (the checksum S3 then verifies) and the final chunk's signature, closing the chain."""

    def __init__(self, cred: Credential, secret: str) -> None:
        self._cred = cred
        self._key = signing_key(secret, cred.date, cred.region, cred.service)
        self._previous = cred.signature

    def _sign(self, kind: str, digest: str) -> str:
        to_sign = "\n".join([kind, self._cred.amz_date, self._cred.scope, self._previous, digest])
        return hmac.digest(self._key, to_sign.encode(), "sha256").hex()

    def chunk(self, extension: str, data: bytes) -> None:
        name, _, claimed = extension.partition("=")
        if name.strip() != "chunk-signature":
            raise ServiceError("InvalidRequest", "A chunk of a signed streaming upload has no chunk-signature.", 400)
        expected = self._sign("AWS4-HMAC-SHA256-PAYLOAD", EMPTY_SHA256 + "\n" + hashlib.sha256(data).hexdigest())
        if not hmac.compare_digest(expected, claimed.strip()):
            raise signature_mismatch()
        self._previous = expected

    def trailers(self, lines: list[tuple[str, str]]) -> None:
        claimed = [value for name, value in lines if name == "x-amz-trailer-signature"]
        if len(claimed) != 1:
            raise ServiceError("InvalidRequest", "A signed streaming upload with trailers must end with exactly one "
                               "x-amz-trailer-signature.", 400)
        canonical = "".join(f"{name}:{value}\n" for name, value in lines if name != "x-amz-trailer-signature")
        expected = self._sign("AWS4-HMAC-SHA256-TRAILER", hashlib.sha256(canonical.encode()).hexdigest())
        if not hmac.compare_digest(expected, claimed[0]):
            raise signature_mismatch()
