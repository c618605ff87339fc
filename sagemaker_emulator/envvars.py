"""The environment that points AWS clients at the emulator (``sagemaker-emulator env``).

``AWS_ENDPOINT_URL`` covers clients that honour it; the proxy variables and
CA bundle cover those that build explicit ``https://…amazonaws.com``
endpoints; the credentials are the emulator's own, never a real account's.

Trust is extended, not replaced: the exported bundle holds the local CA, the
trust the environment had *before* the emulator's variables were applied (the
bundles named by ``REQUESTS_CA_BUNDLE``/``AWS_CA_BUNDLE``/``SSL_CERT_FILE``,
else the system store) and certifi. Those earlier values are exported too, in
``SAGEMAKER_EMULATOR_PRIOR_TRUST``, so that computing the environment again in
a process that inherited it (a kernel started by ``make lab``, the daemon's
jobs, ``env`` run twice) still knows them, and ``sagemaker`` mode can put
them back.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from .config import StatePaths, load_credentials
from .images.registry import REMOTE_FUNCTION_IMAGE
from .upstream import PRIOR_PROXY, decode_record, prior_proxy

LOOPBACK = "127.0.0.1,localhost,::1"
#: the variables that replace a client's trust store; the emulator sets all three to its bundle
TRUST_VARIABLES = ("REQUESTS_CA_BUNDLE", "AWS_CA_BUNDLE", "SSL_CERT_FILE")
#: JSON object of the trust variables' values from before the emulator's environment was applied
PRIOR_TRUST = "SAGEMAKER_EMULATOR_PRIOR_TRUST"
#: variables ``env`` sets; ``helpers.workshop`` removes exactly these in ``sagemaker`` mode
MANAGED = (
    "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_REGION",
    "HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy", "NO_PROXY", "no_proxy",
    *TRUST_VARIABLES, PRIOR_TRUST, PRIOR_PROXY, "SAGEMAKER_EMULATOR_STATE_DIR", "AWS_EC2_METADATA_DISABLED",
)
#: also exported, but not in ``MANAGED``: Studio sets ``SAGEMAKER_INTERNAL_IMAGE_URI`` itself, and a blanket
#: removal in ``sagemaker`` mode would take Studio's value away (remove it only when it is ours)
DEFAULTED = ("SAGEMAKER_INTERNAL_IMAGE_URI", "MLFLOW_DISABLE_TELEMETRY")


def is_emulator_default(name: str, value: str) -> bool:
    """Whether ``value`` of a ``DEFAULTED`` variable is the one ``env`` sets (then ``sagemaker`` mode removes it)."""
    if name == "SAGEMAKER_INTERNAL_IMAGE_URI":
        head, _, tail = REMOTE_FUNCTION_IMAGE.partition("{region}")
        return value.startswith(head) and value.endswith(tail) and re.fullmatch(
            r"[a-z0-9-]+", value[len(head):len(value) - len(tail)]) is not None
    return name == "MLFLOW_DISABLE_TELEMETRY" and value == "true"


_BUNDLE_NAME = re.compile(r"bundle(?:-[0-9a-f]{16})?\.pem")
_written: dict[Path, tuple[object, ...]] = {}  # bundle -> fingerprint of what it was last built from
_written_lock = threading.Lock()


def is_emulator_bundle(value: str) -> bool:
    """True when ``value`` names a bundle some emulator state directory wrote (``<state>/ca/bundle*.pem``).

    Why: such a value is the emulator's own setting, not trust the machine had; taking it as a source would
    nest bundles, and ``sagemaker`` mode must remove it rather than keep it.
    """
    path = Path(value)
    return bool(_BUNDLE_NAME.fullmatch(path.name)) and path.parent.name == "ca"


def prior_trust(environ: Mapping[str, str]) -> dict[str, str]:
    """The trust variables as they were before any emulator environment was applied to ``environ``.

    A value that is not an emulator bundle is the user's own (possibly set after an earlier ``env``) and
    wins; otherwise the value recorded in ``SAGEMAKER_EMULATOR_PRIOR_TRUST`` is used.
    """
    saved = decode_record(environ.get(PRIOR_TRUST), TRUST_VARIABLES)
    prior: dict[str, str] = {}
    for name in TRUST_VARIABLES:
        value = environ.get(name)
        if not value or is_emulator_bundle(value):
            value = saved.get(name)
        if value and not is_emulator_bundle(value):
            prior[name] = value
    return prior


def trust_sources(prior: Mapping[str, str]) -> list[Path]:
    """The existing files/directories the prior trust variables name, each once, in variable order."""
    paths = [Path(prior[name]).expanduser() for name in TRUST_VARIABLES if name in prior]
    return [path for path in dict.fromkeys(paths) if path.exists()]


def bundle_path(ca_dir: Path, sources: Sequence[Path]) -> Path:
    """``bundle.pem`` for the system store; ``bundle-<hash>.pem`` per set of user-named sources.

    Why one file per set: two shells with different trust sharing one state directory must not rewrite
    each other's bundle under a running client.
    """
    if not sources:
        return ca_dir / "bundle.pem"
    key = "\0".join(str(path.resolve()) for path in sources)
    return ca_dir / f"bundle-{hashlib.sha256(key.encode()).hexdigest()[:16]}.pem"


def _fingerprint(ca_dir: Path, sources: Sequence[Path], bundle: Path) -> tuple[object, ...]:
    """Cheap stat-based identity of every input of a bundle (and of the bundle itself)."""
    import certifi

    def stat(path: Path) -> tuple[object, ...]:
        try:
            info = path.stat()
        except OSError:
            return (str(path), None)
        return (str(path), info.st_mtime_ns, info.st_size, info.st_ino)

    return tuple(stat(path) for path in (ca_dir / "ca-cert.pem", Path(certifi.where()), *sources, bundle))


def ensure_bundle(ca_dir: Path, sources: Sequence[Path]) -> Path:
    """Write (or refresh) the bundle for ``sources`` and return its path; a no-op when nothing changed.

    Why the memo: every job the daemon starts computes this environment; rebuilding a bundle of a few
    hundred certificates each time would cost tens of milliseconds for nothing.
    """
    from .ca import LocalCA

    bundle = bundle_path(ca_dir, sources)
    with _written_lock:
        if bundle.exists() and _written.get(bundle) == _fingerprint(ca_dir, sources, bundle):
            return bundle
        LocalCA.load_or_create(ca_dir).write_bundle(bundle, list(sources) or None)
        _written[bundle] = _fingerprint(ca_dir, sources, bundle)
    return bundle


def environment(state_dir: Path, endpoint_url: str, region: str,
                environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables that point AWS clients at the emulator, given the current environment ``environ``.

    ``environ`` (default ``os.environ``) is only read, for the trust it already had.
    """
    paths = StatePaths(Path(state_dir))
    creds = load_credentials(paths)
    environ = os.environ if environ is None else environ
    prior = prior_trust(environ)
    bundle = str(ensure_bundle(paths.ca, trust_sources(prior)))
    return {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_ACCESS_KEY_ID": creds.access_key,
        "AWS_SECRET_ACCESS_KEY": creds.secret_key,
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        "HTTPS_PROXY": endpoint_url,
        "HTTP_PROXY": endpoint_url,
        "https_proxy": endpoint_url,
        "http_proxy": endpoint_url,
        "NO_PROXY": LOOPBACK,
        "no_proxy": LOOPBACK,
        **dict.fromkeys(TRUST_VARIABLES, bundle),
        PRIOR_TRUST: json.dumps(prior, sort_keys=True),
        PRIOR_PROXY: json.dumps(prior_proxy(environ), sort_keys=True),  # the daemon chains to the user's proxy
        "SAGEMAKER_EMULATOR_STATE_DIR": str(paths.root),
        "AWS_EC2_METADATA_DISABLED": "true",
        # @step/@remote's default image outside Studio (the SDK refuses Python 3.11 without one)
        "SAGEMAKER_INTERNAL_IMAGE_URI": REMOTE_FUNCTION_IMAGE.format(region=region),
        "MLFLOW_DISABLE_TELEMETRY": "true",  # mlflow 3 reports usage to a non-AWS host on import
    }


def as_shell(env: dict[str, str]) -> str:
    return "".join(f"export {key}={shlex.quote(value)}\n" for key, value in env.items())
