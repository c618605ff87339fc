"""A private certificate authority so the emulator can terminate TLS for ``*.amazonaws.com``.

Why this exists: some clients ignore ``AWS_ENDPOINT_URL`` (the SageMaker SDK builds its STS client with an
explicit ``https://sts.<region>.amazonaws.com`` endpoint; its telemetry GET goes straight to an S3 host).
The emulator is also their HTTPS proxy (``HTTPS_PROXY``), and to answer those requests locally instead of
letting them reach AWS it has to speak TLS as that host. Clients trust it because ``AWS_CA_BUNDLE`` /
``REQUESTS_CA_BUNDLE`` point at :meth:`LocalCA.write_bundle`'s output: our root followed by certifi's roots
(so tunnelled traffic to real public hosts still validates with the same bundle).

Layout of ``ca_dir`` (created on first use, reused afterwards, safe when several processes start at once)::

    ca-key.pem          root private key (mode 0600)
    ca-cert.pem         self-signed root, CN "SageMaker Emulator Local CA", ~10 years
    leaf-key.pem        the one private key shared by all leaf certificates (mode 0600); reusing it is
                        what makes minting a leaf cost a signature instead of a key generation
    leaf/<host>.pem     leaf certificate for <host> followed by the root (the chain served to clients)

Keys are EC P-256: generation and signing take well under a millisecond, and every TLS stack we care
about (OpenSSL via Python/boto3/requests, curl, Java 8+) accepts ECDSA server certificates.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
import re
import ssl
import tempfile
import threading
from pathlib import Path

import certifi
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["CA_COMMON_NAME", "LocalCA", "normalize_host", "parent_wildcard"]

CA_COMMON_NAME = "SageMaker Emulator Local CA"
CA_KEY_FILE = "ca-key.pem"
CA_CERT_FILE = "ca-cert.pem"
LEAF_KEY_FILE = "leaf-key.pem"
LEAF_DIR = "leaf"

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
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
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


def _leaf_file_name(host: str) -> str:
    return host.replace(":", "_") + ".pem"  # ':' only occurs in IPv6 literals; not allowed on Windows


class LocalCA:
    """The emulator's root CA plus a cache of per-host server :class:`ssl.SSLContext` objects.

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
        self._leaf_public_der = _public_der(leaf_key)
        self._ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        self._lock = threading.Lock()
        self._contexts: dict[str, ssl.SSLContext] = {}  # exact host -> context
        self._wildcard_contexts: dict[str, ssl.SSLContext] = {}  # "*.parent" -> context covering it

    # -- construction -------------------------------------------------------------------------------

    @classmethod
    def load_or_create(cls, ca_dir: Path) -> LocalCA:
        """Load the CA kept in ``ca_dir``, creating it on first use (race-safe across processes)."""
        ca_dir = Path(ca_dir)
        (ca_dir / LEAF_DIR).mkdir(parents=True, exist_ok=True)
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

    def write_bundle(self, path: Path) -> Path:
        """Write our root followed by certifi's public roots to ``path`` (atomically) and return it.

        Why both: ``AWS_CA_BUNDLE``/``REQUESTS_CA_BUNDLE`` replace the default trust store, and the same
        clients may also reach real public hosts (e.g. PyPI) through the proxy's plain tunnels.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        public_roots = Path(certifi.where()).read_bytes()
        data = self.cert_pem + b"\n" + public_roots
        _write_file(path, data, 0o644, exclusive=False)
        return path

    def ssl_context_for(self, host: str) -> ssl.SSLContext:
        """A server-side TLS context presenting a certificate for ``host`` signed by this CA.

        Cached in memory (also under the parent wildcard, so all buckets of one S3 endpoint share one
        context) and on disk under ``leaf/<host>.pem``. Raises ValueError for an invalid host name.
        """
        name = normalize_host(host)
        wildcard = parent_wildcard(name)
        with self._lock:
            context = self._contexts.get(name) or (wildcard and self._wildcard_contexts.get(wildcard))
            if not context:
                context = self._context_from_disk(name) or self._mint(name)
                self._contexts[name] = context
                if wildcard:
                    self._wildcard_contexts.setdefault(wildcard, context)
            return context

    # -- leaves -------------------------------------------------------------------------------------

    def _leaf_path(self, host: str) -> Path:
        return self.ca_dir / LEAF_DIR / _leaf_file_name(host)

    def _context_from_disk(self, host: str) -> ssl.SSLContext | None:
        path = self._leaf_path(host)
        cert = _read_cert(path)
        if cert is None or not self._leaf_usable(cert, host):
            return None
        try:
            return self._server_context(path)
        except (ssl.SSLError, OSError):
            return None

    def _leaf_usable(self, cert: x509.Certificate, host: str) -> bool:
        """A cached leaf is reused only if this very CA signed it for our leaf key and it is not expiring."""
        if cert.issuer != self.cert.subject or _public_der(cert.public_key()) != self._leaf_public_der:
            return False
        if _expires_soon(cert):
            return False
        try:
            cert.verify_directly_issued_by(self.cert)
            sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except (InvalidSignature, ValueError, TypeError, x509.ExtensionNotFound):
            return False
        names = {str(n).lower() for n in sans.get_values_for_type(x509.DNSName)}
        names |= {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
        return host in names

    def _mint(self, host: str) -> ssl.SSLContext:
        cert = self._build_leaf(host)
        path = self._leaf_path(host)
        _write_file(path, _cert_pem(cert) + self.cert_pem, 0o644, exclusive=False)
        return self._server_context(path)

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
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
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
