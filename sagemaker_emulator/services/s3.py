"""Amazon S3: buckets and objects as plain files in the state directory, spoken to as real S3.

Every byte lives in ``S3Store`` (see ``s3store`` for the key → file mapping); this module is the
wire-facing half: it turns parsed S3 requests into store calls with S3's exact semantics -- error
codes, conditional and ranged reads, checksum verification while streaming, listing pagination
and ``EncodingType=url`` -- so boto3, ``upload_file``/``download_file``, the AWS CLI and the
SageMaker SDK behave exactly as they do against AWS.

The job runtime uses ``emulator.s3.store`` directly (no HTTP) to stage channels and save models.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote, quote_plus, unquote

from botocore.model import OperationModel

from ..bodies import LimitedReader
from ..protocol import xmlcodec
from ..protocol.errors import ServiceError
from ..protocol.http import Headers, Request, Response
from ..protocol.protocols import RestXmlProtocol
from . import s3checksums as checksums
from .base import Service
from .context import Context
from .s3_public import PublicSamples, mirror_from_env
from .s3store import (
    DEFAULT_CONTENT_TYPE,
    MAX_PART_NUMBER,
    Digests,
    NoSuchBucket,
    ObjectInfo,
    S3Error,
    S3Store,
    Staged,
    addressable_bucket_name,
    check_key,
    entity_too_large,
    etag_matches,
    precondition_failed,
    valid_bucket_name,
)

#: output key a handler sets to answer with another 2xx status than the model's (206 for ranges)
STATUS = "__status__"
#: the largest object a single PutObject stores, and the largest part (S3's limits: 5 GiB each)
MAX_PUT_SIZE = 5 * 1024**3
MAX_PART_SIZE = 5 * 1024**3
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
#: a region name as a LocationConstraint may give it (``EU`` is S3's legacy alias of eu-west-1)
_REGION = re.compile(r"EU|[a-z]{2}(-[a-z]+)+-[0-9]{1,2}", re.ASCII)
_RANGE = re.compile(r"^bytes=([0-9]*)-([0-9]*)$", re.ASCII)
#: more digits than any byte offset has: such a number is "past every end", never parsed as an int
_MAX_DIGITS = 19


@dataclass
class BodyChecks:
    """The integrity claims of one upload: an S3 checksum, a Content-MD5, a signed payload hash."""

    claim: checksums.Claim
    md5: bytes | None
    sha256: str | None

    def verify(self, digests: Digests, trailers: dict[str, str]) -> None:
        checksums.verify_content_md5(self.md5, digests.md5_bytes)
        if self.sha256 and digests.sha256 != self.sha256:
            raise S3Error("XAmzContentSHA256Mismatch",
                          "The provided 'x-amz-content-sha256' header does not match what was computed.", 400,
                          ClientComputedContentSHA256=self.sha256, S3ComputedContentSHA256=digests.sha256)
        checksums.verify(self.claim, digests.checksums, trailers)


class S3Protocol(RestXmlProtocol):
    """rest-xml plus the three places where S3 departs from what its model can express."""

    def serialize(self, op: OperationModel, output: dict[str, Any], request_id: str) -> Response:
        status = output.pop(STATUS, None)
        if op.name == "GetBucketLocation":
            # botocore reads the region from the *root* element's text, not from a child element
            root = xmlcodec.ET.Element("LocationConstraint")
            root.set("xmlns", self._namespace() or "")
            root.text = output.get("LocationConstraint") or None
            headers = Headers(self._base_headers(request_id) + [("Content-Type", "application/xml")])
            return Response(200, headers, xmlcodec.to_bytes(root))
        response = super().serialize(op, output, request_id)
        if status is not None:
            response.status = status
        return response

    def serialize_error(self, error: ServiceError, request_id: str, request: Request | None) -> Response:
        response = super().serialize_error(error, request_id, request)
        if error.status == 304:  # Not Modified must not carry a body
            response.body = b""
            del response.headers["Content-Type"]
        return response


def _enc(value: str | None, encode: bool) -> str | None:
    """S3's ``EncodingType=url``: form-encode names (botocore decodes them with unquote_plus)."""
    if value is None or not encode:
        return value
    return quote_plus(value, safe="/")


def _token(after: str) -> str:
    return base64.urlsafe_b64encode(("v1:" + after).encode()).decode()


def _untoken(token: str) -> str:
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
    except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
        raise _bad_token() from exc
    if not text.startswith("v1:"):
        raise _bad_token()
    return text[3:]


def _bad_token() -> S3Error:
    return S3Error("InvalidArgument", "The continuation token provided is incorrect", 400,
                   ArgumentName="continuation-token")


def _seconds(stamp: dt.datetime) -> int:
    return int(stamp.timestamp())


def _offset(digits: str) -> int:
    """A decimal byte offset of any length: past 19 digits it exceeds every size, so it is not parsed.

    Why: ``int()`` of a 5,000-digit header raises (Python's digit limit) and a 4,000-digit one costs
    quadratic time; either way a hostile ``Range`` must not reach it.
    """
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= _MAX_DIGITS else 1 << 64


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """``bytes=a-b`` / ``bytes=a-`` / ``bytes=-n`` → inclusive (start, end); None = ignore the header.

    S3 ignores syntactically invalid or multi-range headers and ranges whose end precedes their
    start (whole object, 200), and answers a range that starts past the end, a zero-length suffix
    or any range of an empty object with 416 InvalidRange.
    """
    match = _RANGE.match(header.strip().replace(" ", ""))
    if not match or (not match.group(1) and not match.group(2)):
        return None
    first, last = match.group(1), match.group(2)
    if first:
        start = _offset(first)
        end = _offset(last) if last else size - 1
        if last and end < start:
            return None
        if start >= size:
            raise _invalid_range(header, size)
        return start, min(end, size - 1)
    suffix = _offset(last)
    if suffix == 0 or size == 0:
        raise _invalid_range(header, size)
    return max(0, size - suffix), size - 1


def _trailers(request: Request) -> dict[str, str]:
    """The trailers that followed the body: on the request if the gateway put them there, else on its reader."""
    found = getattr(request, "trailers", None)
    if isinstance(found, dict) and found:
        return {str(k).lower(): str(v) for k, v in found.items()}
    return checksums.find_trailers(request.body_stream)


def _malformed_xml() -> S3Error:
    return S3Error("MalformedXML", "The XML you provided was not well-formed or did not validate against our "
                   "published schema", 400)


def _invalid_range(header: str, size: int) -> S3Error:
    shown = header if len(header) <= 256 else header[:256] + "..."  # echo a hostile header, not all of it
    return S3Error("InvalidRange", "The requested range is not satisfiable", 416,
                   RangeRequested=shown, ActualObjectSize=size)


def parse_copy_source(value: str) -> tuple[str, str, str | None]:
    """``x-amz-copy-source``: ``[/]bucket/key[?versionId=v]``, URL-encoded → (bucket, key, version)."""
    path, _, query = value.partition("?")
    version = parse_qs(query).get("versionId", [None])[0]
    bucket, _, key = unquote(path).lstrip("/").partition("/")
    if not bucket or not key:
        raise S3Error("InvalidArgument", "Invalid copy source object key", 400,
                      ArgumentName="x-amz-copy-source", ArgumentValue=value)
    return bucket, key, version


class S3(Service):
    name = "s3"
    validates = False

    def __init__(self, emulator: Any) -> None:
        super().__init__(emulator)
        self.protocol = S3Protocol(self.model)
        self.store = S3Store(emulator.paths.s3, emulator.region)
        #: AWS's public sample-data buckets, read-only (see s3_public)
        self.public = PublicSamples(self.store, emulator.paths.cache / "public-data", mirror_from_env())
        self.owner = {
            "DisplayName": "sagemaker-emulator",
            "ID": hashlib.sha256(f"sagemaker-emulator:{emulator.account_id}".encode()).hexdigest(),
        }

    # ------------------------------------------------------------ helpers
    def _check_owner(self, ctx: Context, params: dict[str, Any], member: str = "ExpectedBucketOwner") -> None:
        expected = params.get(member)
        if expected is not None and expected != ctx.account_id:
            raise S3Error("AccessDenied", "Access Denied", 403)

    def _bucket(self, ctx: Context, params: dict[str, Any]) -> str:
        """The request's bucket, after the owner check; NoSuchBucket if it does not exist."""
        self._check_owner(ctx, params)
        bucket = params["Bucket"]
        if not addressable_bucket_name(bucket):
            raise S3Error("InvalidBucketName", "The specified bucket is not valid.", 400, BucketName=bucket)
        if self.public.serves(bucket):
            self.public.guard(bucket, getattr(ctx.request, "operation", None), params.get("Key"))
        if not self.store.bucket_exists(bucket):
            raise NoSuchBucket(bucket)
        return bucket

    def _key(self, params: dict[str, Any]) -> str:
        key = params["Key"]
        check_key(key)
        return key

    @staticmethod
    def _attributes(params: dict[str, Any]) -> dict[str, Any]:
        """The object attributes a PUT/COPY(REPLACE)/CreateMultipartUpload request sets."""
        encoding = params.get("ContentEncoding")
        if encoding:
            # aws-chunked is transfer framing, not a property of the object (S3 drops it too)
            kept = [e.strip() for e in encoding.split(",") if e.strip() and e.strip() != "aws-chunked"]
            encoding = ",".join(kept) or None
        expires = params.get("Expires")
        return {
            "content_type": params.get("ContentType") or DEFAULT_CONTENT_TYPE,
            "metadata": params.get("Metadata") or {},
            "content_encoding": encoding,
            "content_disposition": params.get("ContentDisposition"),
            "cache_control": params.get("CacheControl"),
            "content_language": params.get("ContentLanguage"),
            "expires": expires.timestamp() if isinstance(expires, dt.datetime) else None,
            "storage_class": params.get("StorageClass"),
            "website_redirect_location": params.get("WebsiteRedirectLocation"),
        }

    @staticmethod
    def _wants_sha256(request: Request) -> str | None:
        declared = request.headers.get("X-Amz-Content-SHA256") or ""
        return declared.lower() if _HEX64.fullmatch(declared) else None

    @staticmethod
    def _require_length(request: Request, limit: int) -> None:
        """S3 refuses a body of unknown length (411) and one declared larger than it stores, before reading it.

        Why check the headers and not only ``content_length``: a missing header must never turn into a
        silent empty object, whatever default the transport picked for it.
        """
        headers = request.headers
        chunked = "chunked" in (headers.get("Transfer-Encoding") or "").lower()
        if headers.get("Content-Length") is None and not chunked:
            raise S3Error("MissingContentLength", "You must provide the Content-Length HTTP header.", 411)
        declared = request.content_length
        if declared is not None and declared > limit:
            raise entity_too_large(declared, limit)

    def _body_checks(self, request: Request, params: dict[str, Any]) -> BodyChecks:
        """Everything the request claims about its body, checked for form before a byte of it is read."""
        claim = checksums.read_claim(request.headers.lower_items(), params.get("ChecksumAlgorithm"))
        md5 = checksums.read_content_md5(request.headers.get("Content-MD5"))  # not every model has the member
        return BodyChecks(claim, md5, self._wants_sha256(request))

    @staticmethod
    def _receive(request: Request, params: dict[str, Any], staged: Staged, checks: BodyChecks, limit: int,
                 ) -> dict[str, str]:
        """Stream the body into ``staged`` and verify every claim; return the checksum to record with it.

        Any failure raises before the caller commits, so the temp file is dropped and nothing changes.
        """
        compute = checks.claim.algorithms | ({"SHA256"} if checks.sha256 else set())
        digests = staged.write_from(params.get("Body"), compute, limit=limit)
        if request.content_length is not None and digests.size < request.content_length:
            raise S3Error("IncompleteBody",
                          "You did not provide the number of bytes specified by the Content-Length HTTP header",
                          400)
        checks.verify(digests, _trailers(request))
        algorithm = checks.claim.algorithm
        return {algorithm: digests.checksums[algorithm]} if algorithm else {}

    @staticmethod
    def _checksum_output(checksums: dict[str, str], checksum_type: str | None) -> dict[str, Any]:
        out: dict[str, Any] = {f"Checksum{algo}": value for algo, value in checksums.items()}
        if checksums and checksum_type:
            out["ChecksumType"] = checksum_type
        return out

    def _object_headers(self, info: ObjectInfo) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ETag": info.etag, "LastModified": info.last_modified, "ContentType": info.content_type,
            "AcceptRanges": "bytes",
        }
        if info.metadata:
            out["Metadata"] = info.metadata
        for member, value in (
            ("ContentEncoding", info.content_encoding), ("ContentDisposition", info.content_disposition),
            ("CacheControl", info.cache_control), ("ContentLanguage", info.content_language),
            ("Expires", info.expires), ("WebsiteRedirectLocation", info.website_redirect_location),
        ):
            if value is not None:
                out[member] = value
        if info.storage_class and info.storage_class != "STANDARD":
            out["StorageClass"] = info.storage_class
        return out

    @staticmethod
    def _check_read_conditions(params: dict[str, Any], info: ObjectInfo) -> None:
        """RFC 7232 order, as S3 applies it: If-Match, If-Unmodified-Since, If-None-Match, If-Modified-Since."""
        modified = _seconds(info.last_modified)
        if_match = params.get("IfMatch")
        if if_match is not None:
            if not etag_matches(info.etag, if_match):
                raise precondition_failed("If-Match")
        elif params.get("IfUnmodifiedSince") is not None and modified > _seconds(params["IfUnmodifiedSince"]):
            raise precondition_failed("If-Unmodified-Since")
        not_modified = False
        if params.get("IfNoneMatch") is not None:
            not_modified = etag_matches(info.etag, params["IfNoneMatch"])
        elif params.get("IfModifiedSince") is not None:
            not_modified = modified <= _seconds(params["IfModifiedSince"])
        if not_modified:
            raise ServiceError("NotModified", "Not Modified", 304, headers={
                "ETag": info.etag,
                "Last-Modified": info.last_modified.strftime("%a, %d %b %Y %H:%M:%S GMT"),
            })

    @staticmethod
    def _selection(params: dict[str, Any], info: ObjectInfo, out: dict[str, Any]) -> tuple[int, int, bool]:
        """The bytes a read asks for: (start, end inclusive, ranged) from ``partNumber`` or ``Range``."""
        part_number = params.get("PartNumber")
        if part_number is not None:
            if params.get("Range"):
                raise S3Error("InvalidRequest", "Cannot specify both Range header and partNumber query parameter",
                              400)
            if not 1 <= part_number <= MAX_PART_NUMBER:
                raise S3Error("InvalidArgument",
                              f"Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive", 400,
                              ArgumentName="partNumber", ArgumentValue=str(part_number))
            sizes = info.parts or [info.size]
            if part_number > len(sizes):
                raise S3Error("InvalidPartNumber", "The requested partnumber is not satisfiable", 416,
                              PartNumberRequested=part_number, ActualPartCount=len(sizes))
            start = sum(sizes[: part_number - 1])
            out["PartsCount"] = len(sizes)
            return start, start + sizes[part_number - 1] - 1, info.parts is not None
        if params.get("Range"):
            selected = parse_range(params["Range"], info.size)
            if selected is not None:
                return selected[0], selected[1], True
        return 0, info.size - 1, False

    def _read(self, ctx: Context, params: dict[str, Any], with_body: bool) -> dict[str, Any]:
        """GetObject and HeadObject: conditions, part/range selection, headers, and the open file."""
        bucket = self._bucket(ctx, params)
        key = self._key(params)
        fh, info = self.store.open_object(bucket, key)
        try:
            self._check_read_conditions(params, info)
            out = self._object_headers(info)
            start, end, ranged = self._selection(params, info, out)
            length = max(0, end - start + 1)
            out["ContentLength"] = length
            if ranged:
                out["ContentRange"] = f"bytes {start}-{end}/{info.size}"
                out[STATUS] = 206
            elif str(params.get("ChecksumMode") or "").upper() == "ENABLED":
                out.update(self._checksum_output(info.checksums, info.checksum_type))
            for member, override in (
                ("ContentType", "ResponseContentType"), ("ContentDisposition", "ResponseContentDisposition"),
                ("ContentEncoding", "ResponseContentEncoding"), ("ContentLanguage", "ResponseContentLanguage"),
                ("CacheControl", "ResponseCacheControl"), ("Expires", "ResponseExpires"),
            ):
                if params.get(override) is not None:
                    out[member] = params[override]
            if with_body and length > 0:
                fh.seek(start)
                out["Body"] = fh  # the gateway sends it with sendfile and closes it
                return out
            if with_body:
                out["Body"] = b""
            fh.close()
            return out
        except BaseException:
            fh.close()
            raise

    def _owner_entry(self) -> dict[str, str]:
        return dict(self.owner)

    # ------------------------------------------------------------ buckets
    def CreateBucket(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        self._check_owner(ctx, params)
        bucket = params["Bucket"]
        if not valid_bucket_name(bucket):
            raise S3Error("InvalidBucketName", "The specified bucket is not valid.", 400, BucketName=bucket)
        if self.public.serves(bucket):
            raise S3Error("BucketAlreadyExists", "The requested bucket name is not available. The bucket namespace "
                          "is shared by all users of the system. Please select a different name and try again.",
                          409, BucketName=bucket)
        constraint = (params.get("CreateBucketConfiguration") or {}).get("LocationConstraint")
        if constraint == "us-east-1" or (constraint is not None and not _REGION.fullmatch(constraint)):
            raise S3Error("InvalidLocationConstraint", "The specified location-constraint is not valid", 400,
                          LocationConstraint=constraint)
        if ctx.region != "us-east-1" and constraint != ctx.region:
            raise S3Error(
                "IllegalLocationConstraintException",
                f"The {constraint or 'unspecified'} location constraint is incompatible for the region specific "
                "endpoint this request was sent to.", 400,
            )
        if not self.store.create_bucket(bucket, constraint or "us-east-1"):
            raise S3Error("BucketAlreadyOwnedByYou",
                          "Your previous request to create the named bucket succeeded and you already own it.",
                          409, BucketName=bucket)
        return {"Location": f"/{bucket}", "BucketArn": f"arn:aws:s3:::{bucket}"}

    def HeadBucket(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        bucket = self._bucket(ctx, params)
        return {"BucketRegion": self.store.bucket_info(bucket).region, "AccessPointAlias": False,
                "BucketArn": f"arn:aws:s3:::{bucket}"}

    def ListBuckets(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        prefix = params.get("Prefix") or ""
        region = params.get("BucketRegion")
        after = params.get("ContinuationToken") or ""
        limit = params.get("MaxBuckets") or 10000
        if not 1 <= limit <= 10000:
            raise S3Error("InvalidArgument", "max-buckets must be between 1 and 10000", 400)
        buckets = [b for b in self.store.list_buckets() if not self.public.serves(b.name)
                   and b.name.startswith(prefix) and b.name > after and (region is None or b.region == region)]
        out: dict[str, Any] = {
            "Buckets": [{"Name": b.name, "CreationDate": b.created, "BucketRegion": b.region}
                        for b in buckets[:limit]],
            "Owner": self._owner_entry(),
        }
        if prefix:
            out["Prefix"] = prefix
        if len(buckets) > limit:
            out["ContinuationToken"] = buckets[limit - 1].name
        return out

    def GetBucketLocation(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        bucket = self._bucket(ctx, params)
        region = self.store.bucket_info(bucket).region
        return {"LocationConstraint": None if region == "us-east-1" else region}

    def DeleteBucket(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        bucket = self._bucket(ctx, params)
        self.store.delete_bucket(bucket)
        return {}

    # ------------------------------------------------------------ objects
    def PutObject(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        bucket = self._bucket(ctx, params)
        key = self._key(params)
        self._require_length(ctx.request, MAX_PUT_SIZE)
        checks = self._body_checks(ctx.request, params)
        with self.store.stage(bucket) as staged:
            recorded = self._receive(ctx.request, params, staged, checks, MAX_PUT_SIZE)
            info = self.store.commit(
                bucket, key, staged, self._attributes(params), checksums=recorded,
                checksum_type="FULL_OBJECT" if recorded else None,
                if_match=params.get("IfMatch"), if_none_match=params.get("IfNoneMatch"),
            )
        return {"ETag": info.etag, **self._checksum_output(recorded, "FULL_OBJECT")}

    def GetObject(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        return self._read(ctx, params, with_body=True)

    def HeadObject(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        return self._read(ctx, params, with_body=False)

    def DeleteObject(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        bucket = self._bucket(ctx, params)
        key = self._key(params)
        if params.get("IfMatch") is not None:
            try:
                current = self.store.head(bucket, key)
            except KeyError:
                current = None
            if current is None or not etag_matches(current.etag, params["IfMatch"]):
                raise precondition_failed("If-Match")
        self.store.delete(bucket, key)
        return {}

    def _verify_small_body(self, request: Request, params: dict[str, Any]) -> None:
        """DeleteObjects: AWS requires Content-MD5 or an x-amz-checksum-* for its XML body, and checks it.

        Why insist: a batch delete whose list was corrupted in transit would delete the wrong keys;
        every AWS SDK sends one of the two, so only a hand-made request can miss it.
        """
        checks = self._body_checks(request, params)
        if checks.md5 is None and checks.claim.value is None and checks.claim.trailer is None:
            raise S3Error("InvalidRequest", "Missing required header for this request: Content-MD5", 400)
        body = request.body()
        digests = Digests(size=len(body), md5=hashlib.md5(body).hexdigest(),
                          checksums=checksums.compute(checks.claim.algorithms | {"SHA256"}, body))
        checks.verify(digests, _trailers(request))

    def DeleteObjects(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        bucket = self._bucket(ctx, params)
        self._verify_small_body(ctx.request, params)
        spec = params.get("Delete") or {}
        objects = spec.get("Objects") or []
        if not objects or len(objects) > 1000:
            raise _malformed_xml()
        deleted: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for item in objects:
            key = item.get("Key") or ""
            try:
                check_key(key)
                self.store.delete(bucket, key)
            except S3Error as error:
                errors.append({"Key": key, "Code": error.code, "Message": error.message})
                continue
            entry = {"Key": key}
            if item.get("VersionId"):
                entry["VersionId"] = item["VersionId"]
            deleted.append(entry)
        out: dict[str, Any] = {}
        if not spec.get("Quiet"):
            out["Deleted"] = deleted
        if errors:
            out["Errors"] = errors
        return out

    def _source_check(self, params: dict[str, Any]) -> Any:
        """The ``x-amz-copy-source-if-*`` conditions, evaluated against the source's metadata."""

        def check(src: ObjectInfo) -> None:
            modified = _seconds(src.last_modified)
            if_match = params.get("CopySourceIfMatch")
            if if_match is not None and not etag_matches(src.etag, if_match):
                raise precondition_failed("x-amz-copy-source-If-Match")
            since = params.get("CopySourceIfUnmodifiedSince")
            if if_match is None and since is not None and modified > _seconds(since):
                raise precondition_failed("x-amz-copy-source-If-Unmodified-Since")
            none_match = params.get("CopySourceIfNoneMatch")
            if none_match is not None and etag_matches(src.etag, none_match):
                raise precondition_failed("x-amz-copy-source-If-None-Match")
            since = params.get("CopySourceIfModifiedSince")
            if none_match is None and since is not None and modified <= _seconds(since):
                raise precondition_failed("x-amz-copy-source-If-Modified-Since")

        return check

    def CopyObject(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        bucket = self._bucket(ctx, params)
        key = self._key(params)
        self._check_owner(ctx, params, "ExpectedSourceBucketOwner")
        src_bucket, src_key, version = parse_copy_source(params["CopySource"])
        check_key(src_key)
        if self.public.serves(src_bucket):
            self.public.guard(src_bucket, "GetObject", src_key)
        directive = (params.get("MetadataDirective") or "COPY").upper()
        if directive not in ("COPY", "REPLACE"):
            raise S3Error("InvalidArgument", "Unknown metadata directive.", 400,
                          ArgumentName="x-amz-metadata-directive", ArgumentValue=directive)
        if (src_bucket, src_key) == (bucket, key) and directive == "COPY" and not params.get("StorageClass") \
                and not params.get("WebsiteRedirectLocation"):
            raise S3Error(
                "InvalidRequest",
                "This copy request is illegal because it is trying to copy an object to itself without changing "
                "the object's metadata, storage class, website redirect location or encryption attributes.", 400,
            )
        attributes = self._attributes(params) if directive == "REPLACE" else None
        info = self.store.copy_object(src_bucket, src_key, bucket, key, attributes, check=self._source_check(params))
        out: dict[str, Any] = {"CopyObjectResult": {"ETag": info.etag, "LastModified": info.last_modified,
                                                    **self._checksum_output(info.checksums, info.checksum_type)}}
        if version:
            out["CopySourceVersionId"] = version
        return out

    # ------------------------------------------------------------ listing
    def _page(self, bucket: str, prefix: str, after: str, delimiter: str | None, max_keys: int,
              ) -> tuple[list[ObjectInfo], list[str], bool, str | None]:
        contents: list[ObjectInfo] = []
        prefixes: list[str] = []
        last: str | None = None
        truncated = False
        if max_keys == 0:
            return contents, prefixes, truncated, last
        for name, path in self.store.iter_entries(bucket, prefix, after, delimiter):
            if len(contents) + len(prefixes) >= max_keys:
                truncated = True
                break
            if path is None:
                prefixes.append(name)
            else:
                info = self.store.info_at(bucket, name, path)
                if info is None:
                    continue
                contents.append(info)
            last = name
        return contents, prefixes, truncated, last

    @staticmethod
    def _list_args(params: dict[str, Any]) -> tuple[str, str | None, int, bool]:
        encoding = params.get("EncodingType")
        if encoding is not None and encoding != "url":
            raise S3Error("InvalidArgument", "Invalid Encoding Method specified in Request", 400,
                          ArgumentName="encoding-type", ArgumentValue=encoding)
        max_keys = params.get("MaxKeys")
        if max_keys is None:
            max_keys = 1000
        if max_keys < 0:
            raise S3Error("InvalidArgument", "Provided max-keys not an integer or within integer range", 400,
                          ArgumentName="max-keys", ArgumentValue=str(max_keys))
        return params.get("Prefix") or "", params.get("Delimiter") or None, min(max_keys, 1000), encoding == "url"

    def _content_entry(self, info: ObjectInfo, encode: bool, owner: bool) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "Key": _enc(info.key, encode), "LastModified": info.last_modified, "ETag": info.etag,
            "Size": info.size, "StorageClass": info.storage_class or "STANDARD",
        }
        if info.checksums:
            entry["ChecksumAlgorithm"] = sorted(info.checksums)
            if info.checksum_type:
                entry["ChecksumType"] = info.checksum_type
        if owner:
            entry["Owner"] = self._owner_entry()
        return entry

    def ListObjectsV2(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        bucket = self._bucket(ctx, params)
        prefix, delimiter, max_keys, encode = self._list_args(params)
        token = params.get("ContinuationToken")
        start_after = params.get("StartAfter")
        after = _untoken(token) if token else (start_after or "")
        contents, prefixes, truncated, last = self._page(bucket, prefix, after, delimiter, max_keys)
        out: dict[str, Any] = {
            "Name": bucket, "Prefix": _enc(prefix, encode), "MaxKeys": max_keys,
            "KeyCount": len(contents) + len(prefixes), "IsTruncated": truncated,
            "Contents": [self._content_entry(i, encode, bool(params.get("FetchOwner"))) for i in contents],
            "CommonPrefixes": [{"Prefix": _enc(p, encode)} for p in prefixes],
        }
        if delimiter:
            out["Delimiter"] = _enc(delimiter, encode)
        if encode:
            out["EncodingType"] = "url"
        if token:
            out["ContinuationToken"] = token
        if start_after:
            out["StartAfter"] = _enc(start_after, encode)
        if truncated and last is not None:
            out["NextContinuationToken"] = _token(last)
        return out

    def ListObjects(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        bucket = self._bucket(ctx, params)
        prefix, delimiter, max_keys, encode = self._list_args(params)
        marker = params.get("Marker") or ""
        contents, prefixes, truncated, last = self._page(bucket, prefix, marker, delimiter, max_keys)
        out: dict[str, Any] = {
            "Name": bucket, "Prefix": _enc(prefix, encode), "Marker": _enc(marker, encode), "MaxKeys": max_keys,
            "IsTruncated": truncated,
            "Contents": [self._content_entry(i, encode, True) for i in contents],
            "CommonPrefixes": [{"Prefix": _enc(p, encode)} for p in prefixes],
        }
        if delimiter:
            out["Delimiter"] = _enc(delimiter, encode)
            if truncated and last is not None:
                out["NextMarker"] = _enc(last, encode)
        if encode:
            out["EncodingType"] = "url"
        return out

    # ------------------------------------------------------------ multipart
    def CreateMultipartUpload(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        bucket = self._bucket(ctx, params)
        key = self._key(params)
        algorithm = (params.get("ChecksumAlgorithm") or "").upper() or None
        if algorithm is not None and algorithm not in checksums.LENGTHS:
            raise checksums.invalid_request("Value for x-amz-checksum-algorithm header is invalid.")
        if algorithm is not None and not checksums.computable(algorithm):
            raise checksums.cannot_compute(algorithm)
        if params.get("ChecksumType") == "FULL_OBJECT":
            algorithm = None  # full-object CRCs of multipart uploads are not computed here: record none
        upload_id = self.store.create_upload(bucket, key, self._attributes(params), algorithm)
        out: dict[str, Any] = {"Bucket": bucket, "Key": key, "UploadId": upload_id}
        if algorithm:
            out["ChecksumAlgorithm"] = algorithm
            out["ChecksumType"] = "COMPOSITE"
        return out

    def _part_number(self, params: dict[str, Any]) -> int:
        number = params.get("PartNumber")
        if number is None or not 1 <= number <= MAX_PART_NUMBER:
            raise S3Error("InvalidArgument",
                          f"Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive", 400,
                          ArgumentName="partNumber", ArgumentValue=str(number))
        return number

    def UploadPart(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        bucket = self._bucket(ctx, params)
        key = self._key(params)
        number = self._part_number(params)
        upload_id = params["UploadId"]
        self._require_length(ctx.request, MAX_PART_SIZE)
        checks = self._body_checks(ctx.request, params)
        with self.store.stage_part(bucket, key, upload_id) as staged:
            recorded = self._receive(ctx.request, params, staged, checks, MAX_PART_SIZE)
            part = self.store.commit_part(bucket, key, upload_id, number, staged, recorded)
        return {"ETag": part.etag, **self._checksum_output(recorded, None)}

    def UploadPartCopy(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        bucket = self._bucket(ctx, params)
        key = self._key(params)
        number = self._part_number(params)
        upload_id = params["UploadId"]
        self._check_owner(ctx, params, "ExpectedSourceBucketOwner")
        src_bucket, src_key, version = parse_copy_source(params["CopySource"])
        self.store.get_upload(bucket, key, upload_id)
        fh, src = self.store.open_object(src_bucket, src_key)
        with fh:
            self._source_check(params)(src)
            start, length = 0, src.size
            text = params.get("CopySourceRange")
            if text:
                match = _RANGE.match(text.strip())
                if not match or not match.group(1) or not match.group(2) or \
                        _offset(match.group(2)) < _offset(match.group(1)):
                    raise S3Error("InvalidArgument", "The x-amz-copy-source-range value must be of the form "
                                  "bytes=first-last where first and last are the zero-based offsets of the first "
                                  "and last bytes to copy", 400, ArgumentName="x-amz-copy-source-range",
                                  ArgumentValue=text)
                start, end = _offset(match.group(1)), _offset(match.group(2))
                if end >= src.size:
                    raise _invalid_range(text, src.size)
                length = end - start + 1
            fh.seek(start)
            with self.store.stage_part(bucket, key, upload_id) as staged:
                staged.write_from(LimitedReader(fh, length))
                part = self.store.commit_part(bucket, key, upload_id, number, staged)
        out: dict[str, Any] = {"CopyPartResult": {"ETag": part.etag, "LastModified": part.last_modified}}
        if version:
            out["CopySourceVersionId"] = version
        return out

    @staticmethod
    def _completed_parts(params: dict[str, Any]) -> list[tuple[int, str]]:
        """The (PartNumber, ETag) list of a CompleteMultipartUpload body, checked as S3's schema checks it.

        A part without a number or an ETag does not validate (MalformedXML); a number below 1 is an
        InvalidArgument; a number above 10,000 names a part that cannot exist (InvalidPart, in the store).
        """
        parts = (params.get("MultipartUpload") or {}).get("Parts") or []
        requested = []
        for part in parts:
            number, etag = part.get("PartNumber"), part.get("ETag")
            if not isinstance(number, int) or not etag:
                raise _malformed_xml()
            if number < 1:
                raise S3Error("InvalidArgument", "PartNumber must be >= 1", 400,
                              ArgumentName="PartNumber", ArgumentValue=str(number))
            requested.append((number, str(etag)))
        if not requested:
            raise _malformed_xml()
        return requested

    def CompleteMultipartUpload(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        bucket = self._bucket(ctx, params)
        key = self._key(params)
        requested = self._completed_parts(params)
        info = self.store.complete_upload(bucket, key, params["UploadId"], requested,
                                          if_match=params.get("IfMatch"), if_none_match=params.get("IfNoneMatch"))
        request = ctx.request
        host = request.host or "localhost"
        return {
            "Location": f"{request.scheme}://{host}/{bucket}/{quote(key, safe='/')}",
            "Bucket": bucket, "Key": key, "ETag": info.etag,
            **self._checksum_output(info.checksums, info.checksum_type),
        }

    def AbortMultipartUpload(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        bucket = self._bucket(ctx, params)
        self.store.abort_upload(bucket, self._key(params), params["UploadId"])
        return {}

    def ListParts(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        bucket = self._bucket(ctx, params)
        key = self._key(params)
        upload_id = params["UploadId"]
        upload, parts = self.store.list_parts(bucket, key, upload_id)
        marker = params.get("PartNumberMarker") or 0
        max_parts = params.get("MaxParts")
        max_parts = 1000 if max_parts is None else max(0, min(max_parts, 1000))
        remaining = [p for p in parts if p.number > marker]
        page = remaining[:max_parts]
        out: dict[str, Any] = {
            "Bucket": bucket, "Key": key, "UploadId": upload_id, "PartNumberMarker": marker,
            "MaxParts": max_parts, "IsTruncated": len(remaining) > len(page),
            "Parts": [{"PartNumber": p.number, "LastModified": p.last_modified, "ETag": p.etag, "Size": p.size,
                       **{f"Checksum{a}": v for a, v in p.checksums.items()}} for p in page],
            "Initiator": self._owner_entry(), "Owner": self._owner_entry(),
            "StorageClass": upload.attributes.get("storage_class") or "STANDARD",
        }
        if page:
            out["NextPartNumberMarker"] = page[-1].number
        if upload.checksum_algorithm:
            out["ChecksumAlgorithm"] = upload.checksum_algorithm
            out["ChecksumType"] = "COMPOSITE"
        return out

    def ListMultipartUploads(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        bucket = self._bucket(ctx, params)
        prefix, delimiter, _, encode = self._list_args({**params, "MaxKeys": None})
        max_uploads = params.get("MaxUploads")
        max_uploads = 1000 if max_uploads is None else max(0, min(max_uploads, 1000))
        key_marker = params.get("KeyMarker") or ""
        id_marker = params.get("UploadIdMarker") or ""
        uploads = [u for u in self.store.list_uploads(bucket) if u.key.startswith(prefix)]
        if key_marker:
            if id_marker:
                ids = [u.upload_id for u in uploads if u.key == key_marker]
                skip_to = ids.index(id_marker) + 1 if id_marker in ids else len(ids)
                same = [u for u in uploads if u.key == key_marker][skip_to:]
                uploads = same + [u for u in uploads if u.key > key_marker]
            else:
                uploads = [u for u in uploads if u.key > key_marker]
        entries: list[tuple[str, Any]] = []
        truncated = False
        last_group = None
        for upload in uploads:
            group = None
            if delimiter:
                index = upload.key.find(delimiter, len(prefix))
                if index >= 0:
                    group = upload.key[: index + len(delimiter)]
            if group is not None and group in (last_group, key_marker):
                continue
            if len(entries) >= max_uploads:
                truncated = True
                break
            if group is not None:
                last_group = group
                entries.append(("prefix", group))
            else:
                entries.append(("upload", upload))
        out: dict[str, Any] = {
            "Bucket": bucket, "KeyMarker": _enc(key_marker, encode), "UploadIdMarker": id_marker,
            "Prefix": _enc(prefix, encode), "MaxUploads": max_uploads, "IsTruncated": truncated,
            "Uploads": [{
                "UploadId": u.upload_id, "Key": _enc(u.key, encode), "Initiated": u.initiated,
                "StorageClass": u.attributes.get("storage_class") or "STANDARD",
                "Owner": self._owner_entry(), "Initiator": self._owner_entry(),
                **({"ChecksumAlgorithm": u.checksum_algorithm, "ChecksumType": "COMPOSITE"}
                   if u.checksum_algorithm else {}),
            } for kind, u in entries if kind == "upload"],
            "CommonPrefixes": [{"Prefix": _enc(p, encode)} for kind, p in entries if kind == "prefix"],
        }
        if delimiter:
            out["Delimiter"] = _enc(delimiter, encode)
        if encode:
            out["EncodingType"] = "url"
        if truncated and entries:
            kind, last = entries[-1]
            if kind == "upload":
                out["NextKeyMarker"] = _enc(last.key, encode)
                out["NextUploadIdMarker"] = last.upload_id
            else:
                out["NextKeyMarker"] = _enc(last, encode)
        return out
