"""The user's own proxy, which the emulator chains to for the traffic it passes through.

Why: behind an explicit company proxy (``HTTPS_PROXY=http://proxy.corp:3128``) a kernel with the
emulator's environment sends every request to the emulator. AWS hosts are answered locally, but PyPI,
GitHub or a dataset mirror must still leave through the company's proxy, or ``%pip install`` and
downloads break. So ``env`` records the proxy variables the environment had before it replaced them
(``SAGEMAKER_EMULATOR_PRIOR_PROXY``, as it records trust), the daemon reads them when it starts, and its
tunnels (``CONNECT``) and plain-HTTP forwards for non-AWS hosts go through that proxy unless the user's
``NO_PROXY`` exempts the host. AWS hosts never do: they are answered locally, whatever the user's proxy
settings say, so "nothing reaches AWS" holds behind any proxy. ``sagemaker`` mode puts the recorded
variables back.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import logging
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

log = logging.getLogger(__name__)

PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy")
#: JSON object of the proxy variables' values from before the emulator's environment was applied
PRIOR_PROXY = "SAGEMAKER_EMULATOR_PRIOR_PROXY"
_HEAD_LIMIT = 64 * 1024


def prior_proxy(environ: Mapping[str, str]) -> dict[str, str]:
    """The proxy variables as they were before any emulator environment was applied to ``environ``.

    A value the emulator did not set (it sets the proxies to its own ``AWS_ENDPOINT_URL`` and ``NO_PROXY`` to
    loopback) is the user's own and wins; otherwise the value recorded in ``PRIOR_PROXY`` is used.
    """
    from .envvars import LOOPBACK

    saved = decode_record(environ.get(PRIOR_PROXY), PROXY_VARIABLES)
    emulated = "SAGEMAKER_EMULATOR_STATE_DIR" in environ
    ours = {environ.get("AWS_ENDPOINT_URL"), LOOPBACK} if emulated else set()
    prior: dict[str, str] = {}
    for name in PROXY_VARIABLES:
        value = environ.get(name)
        if not value or value in ours:
            value = saved.get(name)
        if value:
            prior[name] = value
    return prior


def decode_record(text: str | None, names: tuple[str, ...]) -> dict[str, str]:
    """A JSON record of variables ``env`` replaced (trust, proxies): only ``names``, only non-empty strings."""
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if k in names and isinstance(v, str) and v}


@dataclass(frozen=True)
class Upstream:
    """An HTTP proxy to chain to, with the hosts its ``NO_PROXY`` sends direct."""

    host: str
    port: int
    authorization: str | None = None
    no_proxy: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"http://{self.host}:{self.port}"

    def applies(self, host: str) -> bool:
        """Whether traffic for ``host`` goes through this proxy (``NO_PROXY`` as curl and requests read it)."""
        host = host.strip("[]").lower().rstrip(".")
        for entry in self.no_proxy:
            if entry == "*" or host == entry or host.endswith("." + entry.lstrip(".")) or _in_network(host, entry):
                return False
        return True

    def headers(self) -> dict[str, str]:
        return {"Proxy-Authorization": self.authorization} if self.authorization else {}

    def open_tunnel(self, host: str, port: int, timeout: float) -> socket.socket:
        """A socket through this proxy to ``host:port`` (``CONNECT``); OSError naming the proxy if refused."""
        sock = socket.create_connection((self.host, self.port), timeout=timeout)
        try:
            head = f"CONNECT {_authority(host, port)} HTTP/1.1\r\nHost: {_authority(host, port)}\r\n"
            head += "".join(f"{k}: {v}\r\n" for k, v in self.headers().items())
            sock.sendall((head + "\r\n").encode("latin-1"))
            status = _read_status(sock)
        except BaseException:
            sock.close()
            raise
        if status.split(b" ")[1:2] != [b"200"]:
            sock.close()
            raise OSError(f"the proxy {self} answered {status.decode('latin-1', 'replace')[:120]!r}")
        return sock


def _authority(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _in_network(host: str, entry: str) -> bool:
    try:
        return ipaddress.ip_address(host) in ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return False


def _read_status(sock: socket.socket) -> bytes:
    """The status line of the proxy's answer, after reading its whole head (byte by byte: what follows the
    head belongs to the tunnel)."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        byte = sock.recv(1)
        if not byte:
            raise OSError("the proxy closed the connection before answering CONNECT")
        head += byte
        if len(head) > _HEAD_LIMIT:
            raise OSError("the proxy's answer to CONNECT has an overlong head")
    return head.split(b"\r\n", 1)[0]


def from_environ(environ: Mapping[str, str]) -> Upstream | None:
    """The proxy the daemon chains to, from the user's variables (``prior_proxy``), or None.

    Only ``http://`` proxies are chained (what company proxies and ``cntlm`` speak); another scheme is
    logged and ignored rather than half-supported.
    """
    prior = prior_proxy(environ)
    url = prior.get("HTTPS_PROXY") or prior.get("https_proxy") or prior.get("HTTP_PROXY") or prior.get("http_proxy")
    if not url:
        return None
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme != "http" or not parts.hostname:
        log.warning("not chaining to the proxy %r: only http:// proxies are supported", url)
        return None
    authorization = None
    if parts.username is not None:
        token = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        authorization = "Basic " + base64.b64encode(token).decode()
    no_proxy = prior.get("NO_PROXY") or prior.get("no_proxy") or ""
    entries = tuple(e.strip().lower().rstrip(".") for e in no_proxy.split(",") if e.strip())
    try:
        port = parts.port or 80
    except ValueError:
        log.warning("not chaining to the proxy %r: its port is not a number", url)
        return None
    return Upstream(parts.hostname, port, authorization, entries)
