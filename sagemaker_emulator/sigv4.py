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


def payload_hash(request: Request, cred: Credential) -> str:
    declared = request.headers.get("X-Amz-Content-SHA256")
    if cred.presigned:
        return declared or "UNSIGNED-PAYLOAD"
    if declared:
        return declared
    return hashlib.sha256(request.body()).hexdigest()


def canonical_request(request: Request, cred: Credential) -> str:
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
        payload_hash(request, cred),
    ])


@functools.lru_cache(maxsize=64)
def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """Four chained HMACs; the result changes once a day per region and service, so it is cached."""
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.digest(key, part.encode(), "sha256")
    return key


def expected_signature(request: Request, cred: Credential, secret: str) -> str:
    scope = f"{cred.date}/{cred.region}/{cred.service}/aws4_request"
    digest = hashlib.sha256(canonical_request(request, cred).encode()).hexdigest()
    to_sign = "\n".join([ALGORITHM, cred.amz_date, scope, digest])
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
    try:
        stamp = _parse_amz_date(cred.amz_date)
    except ValueError as exc:
        raise ServiceError("IncompleteSignature", "X-Amz-Date is missing or malformed.", 403) from exc
    now = now or dt.datetime.now(dt.UTC)
    if abs(now - stamp) > MAX_SKEW and not cred.presigned:
        raise ServiceError(
            "RequestTimeTooSkewed",
            "The difference between the request time and the current time is too large.", 403,
        )


def verify(request: Request, cred: Credential, access_key: str, secret: str) -> None:
    """Raise the AWS error a wrong key or signature earns; return quietly when valid."""
    if cred.access_key != access_key:
        if cred.service == "s3":
            raise ServiceError(
                "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.", 403,
                AWSAccessKeyId=cred.access_key,
            )
        code = "InvalidClientTokenId" if cred.service in ("sts", "iam") else "UnrecognizedClientException"
        raise ServiceError(code, "The security token included in the request is invalid.", 403)
    check_time(cred)
    if not hmac.compare_digest(expected_signature(request, cred, secret), cred.signature):
        raise ServiceError(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
            403,
        )
