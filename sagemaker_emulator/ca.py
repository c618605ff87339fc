"""A private certificate authority so the emulator can terminate TLS for AWS hosts, and the trust bundle.

Why this exists: some clients ignore ``AWS_ENDPOINT_URL`` (the SageMaker SDK builds its STS client with an
explicit ``https://sts.<region>.amazonaws.com`` endpoint; its telemetry GET goes straight to an S3 host).
The emulator is also their HTTPS proxy (``HTTPS_PROXY``), and to answer those requests locally instead of
letting them reach AWS it has to speak TLS as that host. Clients trust it because ``AWS_CA_BUNDLE`` /
``REQUESTS_CA_BUNDLE`` / ``SSL_CERT_FILE`` point at :meth:`LocalCA.write_bundle`'s output: our root, then the
trust the machine already had (the bundle the user named, else the system store), then certifi's roots, so
tunnelled traffic to real hosts still validates with the same bundle -- behind a company's TLS-inspecting
proxy too.

Layout of ``ca_dir`` (created on first use, reused afterwards, safe when several processes start at once)::

    ca-key.pem          root private key (mode 0600)
    ca-cert.pem         self-signed root, CN "SageMaker Emulator Local CA", ~10 years
    leaf-key.pem        the one private key shared by all leaf certificates (mode 0600); reusing it is
                        what makes minting a leaf cost a signature instead of a key generation
    bundle*.pem         trust bundles written by :meth:`LocalCA.write_bundle` (public certificates only)

Leaf certificates live in memory only (a bounded cache), never one file per host.

Keys are EC P-256: generation and signing take well under a millisecond, and every TLS stack we care
about (OpenSSL via Python/boto3/requests, curl, Java 8+) accepts ECDSA server certificates.
"""

from __future__ import annotations

import binascii
import collections
import contextlib
import datetime as dt
import ipaddress
import os
import re
import ssl
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import certifi
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "CA_COMMON_NAME",
    "LocalCA",
    "build_bundle",
    "normalize_host",
    "parent_wildcard",
    "system_trust_sources",
]

CA_COMMON_NAME = "SageMaker Emulator Local CA"
CA_KEY_FILE = "ca-key.pem"
CA_CERT_FILE = "ca-cert.pem"
LEAF_KEY_FILE = "leaf-key.pem"
#: leaf contexts kept in memory; beyond this the least recently used one is dropped (and re-minted if needed)
MAX_CACHED_CONTEXTS = 256

#: Where Linux distributions and BSDs keep the system's trusted roots as one PEM file.
SYSTEM_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu, Gentoo, Arch
    "/etc/pki/tls/certs/ca-bundle.crt",  # Fedora, RHEL 6
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",  # RHEL 7+, CentOS, Amazon Linux
    "/etc/ssl/ca-bundle.pem",  # openSUSE
    "/etc/pki/tls/cacert.pem",  # OpenELEC
    "/etc/ssl/cert.pem",  # Alpine, macOS, OpenBSD
)
#: Directories of single-certificate files, read only when no bundle file exists.
SYSTEM_CERT_DIRS = ("/etc/ssl/certs", "/etc/pki/tls/certs", "/system/etc/security/cacerts")
_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----\s*(.+?)\s*-----END CERTIFICATE-----", re.DOTALL)
_MAX_TRUST_FILE = 64 * 1024 * 1024  # a "bundle" bigger than this is not one; do not read it into memory

_CA_VALIDITY = dt.timedelta(days=3650)
# 397 days is the longest lifetime browsers/Apple accept for server certificates; nobody else cares.
_LEAF_VALIDITY = dt.timedelta(days=397)
# Re-mint (or regenerate the root) this long before expiry, so a long-running emulator never serves a
# certificate that expires mid-session.
_RENEW_MARGIN = dt.timedelta(days=2)
# Back-date certificates a little: a client whose clock is slightly behind must not see "not yet valid".
_BACKDATE = dt.timedelta(days=1)

_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOSTNAME_RE = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")
_MAX_CN = 64  # X.520 upper bound for commonName


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _public_der(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> bytes:
    public = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _write_file(path: Path, data: bytes, mode: int, *, exclusive: bool) -> None:
    """Atomically put ``data`` at ``path``: readers never see a half-written file.

    With ``exclusive`` the file is only created if absent (temp file + ``os.link``, which fails if the
    target exists), so when two processes race to create the CA exactly one key wins and both use it.
    Without it, ``os.replace`` (last writer wins) is used, which is fine for data that is equivalent
    whoever writes it. Callers always re-read the file afterwards and use what is on disk.
    """
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, mode)
        if not exclusive:
            os.replace(tmp, path)
            return
        try:
            os.link(tmp, path)
        except FileExistsError:
            return  # somebody else created it first: theirs is used
        except OSError:
            # Filesystem without hard links: fall back to last-writer-wins; re-reading keeps us consistent.
            if not path.exists():
                os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _parse_key(data: bytes) -> ec.EllipticCurvePrivateKey | None:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        return None
    return key if isinstance(key, ec.EllipticCurvePrivateKey) else None


def _parse_cert(data: bytes) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError:
        return None


def _read_cert(path: Path) -> x509.Certificate | None:
    data = _read_bytes(path)
    return None if data is None else _parse_cert(data)


def _set_aside(path: Path, seen: bytes) -> None:
    """Move an unusable file to ``<name>.bad`` so it can be re-created exclusively (and inspected later).

    Only if it still holds what we judged unusable, so a file another process has just created stays.
    """
    with contextlib.suppress(FileNotFoundError):
        if path.read_bytes() == seen:
            os.replace(path, path.with_name(path.name + ".bad"))


def _load_or_create_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """Return the key stored at ``path``, creating it (mode 0600) exactly once across processes."""
    data = _read_bytes(path)
    if data is not None:
        key = _parse_key(data)
        if key is not None:
            return key
        _set_aside(path, data)  # unparseable means corrupt: our writes are atomic, never half-done
    _write_file(path, _key_pem(ec.generate_private_key(ec.SECP256R1())), 0o600, exclusive=True)
    data = _read_bytes(path)
    key = None if data is None else _parse_key(data)
    if key is None:
        raise RuntimeError(f"could not create a private key at {path}")
    return key


def _expires_soon(cert: x509.Certificate) -> bool:
    return cert.not_valid_after_utc - _now() < _RENEW_MARGIN


def _build_ca_cert(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    """Self-signed root with the extensions strict verifiers (Python 3.13 VERIFY_X509_STRICT) require."""
    now = _now()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, CA_COMMON_NAME),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "SageMaker Emulator"),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(signs_certificates=True), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )


def _belongs_to(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> bool:
    return _public_der(cert.public_key()) == _public_der(key)


def _load_or_create_ca_cert(path: Path, key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    """Return the root stored at ``path`` if it belongs to ``key`` and is not about to expire, else renew it.

    Two roots made from the same key have the same subject and key identifier, so leaves signed by that
    key validate against either; a renewal race between processes is therefore harmless.
    """
    data = _read_bytes(path)
    if data is not None:
        cert = _parse_cert(data)
        if cert is not None and _belongs_to(cert, key) and not _expires_soon(cert):
            return cert
        _set_aside(path, data)
    _write_file(path, _cert_pem(_build_ca_cert(key)), 0o644, exclusive=True)
    cert = _read_cert(path)
    if cert is None or not _belongs_to(cert, key):
        raise RuntimeError(f"{path} does not match {path.parent / CA_KEY_FILE}")
    return cert


def normalize_host(host: str) -> str:
    """Lower-case ``host``, drop a trailing dot, and reject anything that is not a hostname or IP address.

    Why: the name ends up in a file name under ``leaf/`` and in a certificate; both must be safe.
    """
    name = host.strip().lower().rstrip(".")
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if _is_ip(name):
        return name
    if len(name) > 253 or not _HOSTNAME_RE.match(name):
        raise ValueError(f"not a valid host name: {host!r}")
    return name


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def parent_wildcard(host: str) -> str | None:
    """``mybucket.s3.us-east-1.amazonaws.com`` -> ``*.s3.us-east-1.amazonaws.com``; None when meaningless.

    Why: virtual-hosted S3 puts the bucket name in the host; one certificate carrying the parent's wildcard
    serves every bucket. Only for names with at least three labels (never ``*.com``), never for IPs.
    """
    if _is_ip(host):
        return None
    labels = host.split(".")
    if len(labels) < 3:
        return None
    return "*." + ".".join(labels[1:])


def system_trust_sources() -> list[Path]:
    """The files (or, failing those, directories) holding this machine's trusted roots.

    OpenSSL's compiled-in default (``openssl_cafile``, deliberately not ``cafile``, which follows
    ``SSL_CERT_FILE`` and may already name one of our own bundles) plus the usual distribution locations.
    """
    paths = ssl.get_default_verify_paths()
    found: dict[Path, Path] = {}
    for name in (paths.openssl_cafile, *SYSTEM_BUNDLES):
        candidate = Path(name) if name else None
        if candidate is not None and candidate.is_file():
            found.setdefault(candidate.resolve(), candidate)
    if found:
        return list(found.values())
    dirs = (paths.openssl_capath, *SYSTEM_CERT_DIRS)
    return [Path(name) for name in dict.fromkeys(dirs) if name and Path(name).is_dir()]


def _pem_certificates(data: bytes) -> Iterator[bytes]:
    """DER of every well-formed ``CERTIFICATE`` block in ``data``; anything unparseable is skipped."""
    for match in _PEM_CERT.finditer(data):
        try:
            der = binascii.a2b_base64(match.group(1))
        except binascii.Error:
            continue
        if _is_der_sequence(der):
            yield der


def _is_der_sequence(der: bytes) -> bool:
    """True when ``der`` is exactly one DER SEQUENCE: garbage between the PEM markers is dropped.

    Why not a full parse: OpenSSL takes ~0.4 ms per certificate, and cryptography warns about (and will
    one day refuse) real roots that bend RFC 5280, such as negative serial numbers, which OpenSSL accepts.
    """
    if len(der) < 2 or der[0] != 0x30:
        return False
    first = der[1]
    if first < 0x80:
        return 2 + first == len(der)
    size = first & 0x7F
    if not 0 < size <= 4 or len(der) < 2 + size:
        return False
    return 2 + size + int.from_bytes(der[2 : 2 + size], "big") == len(der)


def _source_files(source: Path) -> list[Path]:
    if source.is_dir():
        with contextlib.suppress(OSError):
            return sorted(p for p in source.iterdir() if p.is_file())
        return []
    return [source] if source.is_file() else []


def _trusted_der(sources: Iterable[Path]) -> Iterator[bytes]:
    for source in sources:
        for path in _source_files(source):
            try:
                if path.stat().st_size > _MAX_TRUST_FILE:
                    continue
                data = path.read_bytes()
            except OSError:
                continue
            yield from _pem_certificates(data)
    if sys.platform == "win32":  # Windows keeps its roots in the registry, not in files
        for store in ("ROOT", "CA"):
            for der, encoding, trust in ssl.enum_certificates(store):  # type: ignore[attr-defined]
                if encoding == "x509_asn" and (trust is True or "1.3.6.1.5.5.7.3.1" in trust):
                    yield der


def build_bundle(first_pem: bytes, sources: Iterable[Path]) -> bytes:
    """``first_pem`` followed by every certificate found in ``sources`` (PEM files or directories), once each.

    Unreadable or missing sources and malformed blocks are skipped: a bundle with fewer roots still works,
    a bundle with a broken block makes OpenSSL reject the whole file.
    """
    seen = set(_pem_certificates(first_pem))
    parts = [first_pem.rstrip(b"\n") + b"\n"]
    for der in _trusted_der(sources):
        if der not in seen:
            seen.add(der)
            parts.append(ssl.DER_cert_to_PEM_cert(der).encode("ascii"))
    return b"".join(parts)


class LocalCA:
    """The emulator's root CA plus a bounded cache of per-host server :class:`ssl.SSLContext` objects.

    Build it with :meth:`load_or_create`; the instance is thread-safe.
    """

    def __init__(
        self,
        ca_dir: Path,
        key: ec.EllipticCurvePrivateKey,
        cert: x509.Certificate,
        leaf_key: ec.EllipticCurvePrivateKey,
    ) -> None:
        self.ca_dir = ca_dir
        self.cert = cert
        self._key = key
        self._leaf_key = leaf_key
        self._ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        self._lock = threading.Lock()
        # "*.parent" (or the exact name when there is no useful wildcard) -> context; least recently used first.
        self._contexts: collections.OrderedDict[str, ssl.SSLContext] = collections.OrderedDict()

    # -- construction -------------------------------------------------------------------------------

    @classmethod
    def load_or_create(cls, ca_dir: Path) -> LocalCA:
        """Load the CA kept in ``ca_dir``, creating it on first use (race-safe across processes)."""
        ca_dir = Path(ca_dir)
        ca_dir.mkdir(parents=True, exist_ok=True)
        key = _load_or_create_key(ca_dir / CA_KEY_FILE)
        cert = _load_or_create_ca_cert(ca_dir / CA_CERT_FILE, key)
        leaf_key = _load_or_create_key(ca_dir / LEAF_KEY_FILE)
        return cls(ca_dir, key, cert, leaf_key)

    # -- public API ---------------------------------------------------------------------------------

    @property
    def cert_path(self) -> Path:
        """Path of the root certificate (PEM)."""
        return self.ca_dir / CA_CERT_FILE

    @property
    def cert_pem(self) -> bytes:
        """The root certificate as PEM bytes."""
        return _cert_pem(self.cert)

    def write_bundle(self, path: Path, trust: Sequence[Path] | None = None) -> Path:
        """Write our root, then ``trust`` (default: the system store), then certifi's roots to ``path``.

        Why all three: ``AWS_CA_BUNDLE``/``REQUESTS_CA_BUNDLE``/``SSL_CERT_FILE`` *replace* a client's trust
        store, and the same clients still reach real hosts through the proxy's plain tunnels -- behind a
        company's TLS inspection only the machine's own store (or the bundle the user named) has the CA
        those hosts are re-signed with. Certificates are deduplicated; the file is replaced atomically and
        only when its content changes.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        sources = list(trust) if trust else system_trust_sources()
        data = build_bundle(self.cert_pem, [*sources, Path(certifi.where())])
        if _read_bytes(path) != data:
            _write_file(path, data, 0o644, exclusive=False)
        return path

    def ssl_context_for(self, host: str) -> ssl.SSLContext:
        """A server-side TLS context presenting a certificate for ``host`` signed by this CA.

        Cached in memory under the parent wildcard (all buckets of one S3 endpoint share one context), at
        most :data:`MAX_CACHED_CONTEXTS` of them: a client naming endless random hosts costs a signature
        each, never unbounded memory or disk. Raises ValueError for an invalid host name.
        """
        name = normalize_host(host)
        key = parent_wildcard(name) or name
        with self._lock:
            context = self._contexts.get(key)
            if context is not None:
                self._contexts.move_to_end(key)
                return context
            context = self._mint(name)
            self._contexts[key] = context
            while len(self._contexts) > MAX_CACHED_CONTEXTS:
                self._contexts.popitem(last=False)
            return context

    # -- leaves -------------------------------------------------------------------------------------

    def _mint(self, host: str) -> ssl.SSLContext:
        """A fresh leaf for ``host``; its chain goes through a private temporary file only.

        Why a file at all: ``SSLContext.load_cert_chain`` reads nothing but paths. Why not keep it: minting
        costs one ECDSA signature, and a per-host file cache would let any client fill the disk.
        """
        chain = _cert_pem(self._build_leaf(host)) + self.cert_pem
        fd, tmp_name = tempfile.mkstemp(dir=self.ca_dir, prefix=".leaf.", suffix=".pem")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(chain)
            return self._server_context(Path(tmp_name))
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)

    def _build_leaf(self, host: str) -> x509.Certificate:
        now = _now()
        not_after = min(now + _LEAF_VALIDITY, self.cert.not_valid_after_utc)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)] if len(host) <= _MAX_CN else [])
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(self._leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(not_after)
            # An empty subject requires the SAN extension to be critical (RFC 5280 4.2.1.6).
            .add_extension(x509.SubjectAlternativeName(_san_entries(host)), critical=not len(subject))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(signs_certificates=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self._leaf_key.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(self._ski), critical=False
            )
            .sign(self._key, hashes.SHA256())
        )

    def _server_context(self, chain_path: Path) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        # Clients offering h2 (curl, httpx) must fall back to HTTP/1.1: the emulator speaks nothing else.
        context.set_alpn_protocols(["http/1.1"])
        context.load_cert_chain(chain_path, self.ca_dir / LEAF_KEY_FILE)
        return context


def _san_entries(host: str) -> list[x509.GeneralName]:
    if _is_ip(host):
        return [x509.IPAddress(ipaddress.ip_address(host))]
    entries: list[x509.GeneralName] = [x509.DNSName(host)]
    wildcard = parent_wildcard(host)
    if wildcard:
        entries.append(x509.DNSName(wildcard))
    return entries


def _key_usage(signs_certificates: bool) -> x509.KeyUsage:
    """ECDSA signatures only; the CA also signs certificates and CRLs, a leaf signs TLS handshakes."""
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
        key_agreement=False, key_cert_sign=signs_certificates, crl_sign=signs_certificates, encipher_only=False,
        decipher_only=False,
    )
