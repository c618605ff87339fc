"""The environment that points AWS clients at the emulator (``sagemaker-emulator env``).

``AWS_ENDPOINT_URL`` covers clients that honour it; the proxy variables and
CA bundle cover those that build explicit ``https://…amazonaws.com``
endpoints; the credentials are the emulator's own, never a real account's.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from .config import StatePaths, load_credentials

LOOPBACK = "127.0.0.1,localhost,::1"
#: variables ``env`` sets; ``helpers.workshop`` removes exactly these in ``sagemaker`` mode
MANAGED = (
    "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_REGION",
    "HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy", "NO_PROXY", "no_proxy",
    "AWS_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "SAGEMAKER_EMULATOR_STATE_DIR", "AWS_EC2_METADATA_DISABLED",
)


def environment(state_dir: Path, endpoint_url: str, region: str) -> dict[str, str]:
    paths = StatePaths(Path(state_dir))
    creds = load_credentials(paths)
    bundle = paths.ca / "bundle.pem"
    if not bundle.exists():
        from .ca import LocalCA

        LocalCA.load_or_create(paths.ca).write_bundle(bundle)
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
        "AWS_CA_BUNDLE": str(bundle),
        "REQUESTS_CA_BUNDLE": str(bundle),
        "SAGEMAKER_EMULATOR_STATE_DIR": str(paths.root),
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def environment_from_server_info(state_dir: Path) -> dict[str, str]:
    info = json.loads(StatePaths(Path(state_dir)).server_info.read_text())
    return environment(Path(state_dir), info["endpoint_url"], info.get("region", "us-east-1"))


def as_shell(env: dict[str, str]) -> str:
    return "".join(f"export {key}={shlex.quote(value)}\n" for key, value in env.items())
