"""The ``sagemaker-emulator`` command as a learner uses it: start, reuse, env, status, stop."""

from __future__ import annotations

import datetime as dt
import http.server
import ipaddress
import json
import os
import re
import ssl
import subprocess
import sys
import threading
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import boto3
import certifi
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CLI = [sys.executable, "-m", "sagemaker_emulator.cli"]


def run(*args: str, state: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args, "--state-dir", str(state)], capture_output=True, text=True,
                          timeout=120, env=env or os.environ.copy())


@pytest.fixture
def daemon(tmp_path: Path):
    state = tmp_path / "state"
    started = run("start", state=state)
    assert started.returncode == 0, started.stderr
    yield state, json.loads(started.stdout)
    run("stop", state=state)


def test_start_is_idempotent_and_status_reports_the_daemon(daemon):
    state, info = daemon
    again = run("start", state=state)
    assert json.loads(again.stdout)["pid"] == info["pid"], "a second start must reuse the running daemon"
    status = run("status", state=state)
    assert status.returncode == 0
    body = json.loads(status.stdout)
    assert body["running"] is True
    assert body["endpoint_url"] == info["endpoint_url"]
    assert body["state_dir"] == str(state.resolve())
    assert (state / "credentials.json").stat().st_mode & 0o777 == 0o600
    assert (state / "ca" / "ca-key.pem").stat().st_mode & 0o777 == 0o600


def test_env_makes_the_aws_cli_and_boto3_talk_to_it(daemon):
    state, info = daemon
    exported = run("env", state=state)
    assert exported.returncode == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # the project's own AWS CLI
    script = exported.stdout + "aws sts get-caller-identity --output json\n"
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["Account"] == "123456789012"
    assert f"AWS_ENDPOINT_URL={info['endpoint_url']}" in exported.stdout
    assert "HTTPS_PROXY=" in exported.stdout and "AWS_CA_BUNDLE=" in exported.stdout


def test_stop_stops_and_status_says_so(tmp_path: Path):
    state = tmp_path / "state"
    info = json.loads(run("start", state=state).stdout)
    assert run("stop", state=state).returncode == 0
    status = run("status", state=state)
    assert status.returncode == 3
    assert json.loads(status.stdout)["running"] is False
    from sagemaker_emulator.cli import _alive

    assert not _alive(info["pid"]), "the daemon process must be gone (a zombie awaiting its reaper counts as gone)"
    assert run("env", state=state).returncode == 1


def test_state_dir_from_environment_variable(tmp_path: Path):
    state = tmp_path / "from-env"
    env = {**os.environ, "SAGEMAKER_EMULATOR_STATE_DIR": str(state)}
    out = subprocess.run([*CLI, "start"], capture_output=True, text=True, env=env, timeout=120)
    try:
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["state_dir"] == str(state.resolve())
    finally:
        subprocess.run([*CLI, "stop"], env=env, timeout=60, capture_output=True)


def test_serve_refuses_non_loopback(tmp_path: Path):
    out = run("serve", "--host", "0.0.0.0", state=tmp_path / "s")
    assert out.returncode != 0
    assert "loopback" in out.stderr


# -- ``env``: trust is extended, not replaced ----------------------------------------------------------


@dataclass
class Corporate:
    """A throwaway company CA, its bundle file, and an HTTPS server on 127.0.0.1 with a leaf it signed."""

    ca_file: Path
    url: str


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _corporate_pki(folder: Path) -> tuple[Path, Path, Path]:
    """(ca.pem, leaf chain, leaf key): what a TLS-inspecting proxy re-signs every host with."""
    now = dt.datetime.now(dt.UTC)
    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("Example Corp TLS Inspection CA"))
          .issuer_name(_name("Example Corp TLS Inspection CA")).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
          .not_valid_after(now + dt.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(_name("127.0.0.1")).issuer_name(ca.subject)
            .public_key(leaf_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    ca_file, chain, key = folder / "corp-ca.pem", folder / "leaf.pem", folder / "leaf-key.pem"
    ca_file.write_bytes(ca.public_bytes(pem))
    chain.write_bytes(leaf.public_bytes(pem) + ca.public_bytes(pem))
    key.write_bytes(leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return ca_file, chain, key


@pytest.fixture(scope="module")
def corporate(tmp_path_factory: pytest.TempPathFactory):
    ca_file, chain, key = _corporate_pki(tmp_path_factory.mktemp("corp"))

    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - stdlib naming
            body = b"hello from the intranet"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield Corporate(ca_file, f"https://127.0.0.1:{server.server_address[1]}/")
    server.shutdown()
    server.server_close()


def _environment(emulator, environ: dict[str, str]) -> dict[str, str]:
    from sagemaker_emulator.envvars import environment

    return environment(emulator.paths.root, emulator.endpoint_url, "us-east-1", environ=environ)


def test_env_bundle_extends_the_trust_the_machine_had(emulator, corporate: Corporate, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch):
    """Behind TLS inspection (a company CA in REQUESTS_CA_BUNDLE), HTTPS to other hosts keeps working."""
    env = _environment(emulator, {"REQUESTS_CA_BUNDLE": str(corporate.ca_file)})
    bundle = env["REQUESTS_CA_BUNDLE"]
    assert env["AWS_CA_BUNDLE"] == env["SSL_CERT_FILE"] == bundle != str(corporate.ca_file)
    assert json.loads(env["SAGEMAKER_EMULATOR_PRIOR_TRUST"]) == {"REQUESTS_CA_BUNDLE": str(corporate.ca_file)}
    # What the bundle used to be (our root + certifi) does not trust the company's hosts ...
    replaced = tmp_path / "replaced.pem"
    replaced.write_bytes(emulator.ca.cert_pem + Path(certifi.where()).read_bytes())
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(corporate.url, verify=str(replaced), timeout=10)
    # ... the exported one does: directly, through the emulator's tunnel, and for the stdlib (SSL_CERT_FILE).
    assert requests.get(corporate.url, verify=bundle, timeout=10).text == "hello from the intranet"
    with requests.Session() as session:
        session.trust_env = False  # NO_PROXY would skip the proxy for 127.0.0.1
        tunnelled = session.get(corporate.url, proxies={"https": env["HTTPS_PROXY"]}, verify=bundle, timeout=10)
    assert tunnelled.text == "hello from the intranet"
    monkeypatch.setenv("SSL_CERT_FILE", bundle)
    assert urllib.request.urlopen(corporate.url, context=ssl.create_default_context(), timeout=10).status == 200
    # An AWS host through the proxy verifies with the same bundle, and is answered by the emulator.
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    sts = boto3.client("sts", endpoint_url="https://sts.us-east-1.amazonaws.com")
    assert sts.get_caller_identity()["Account"] == "123456789012"


def _certificates(path: str) -> list[bytes]:
    return re.findall(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", Path(path).read_bytes(),
                      re.DOTALL)


def test_env_twice_does_not_nest(emulator, corporate: Corporate):
    first = _environment(emulator, {"REQUESTS_CA_BUNDLE": str(corporate.ca_file), "PATH": "/bin"})
    again = _environment(emulator, {"REQUESTS_CA_BUNDLE": str(corporate.ca_file), "PATH": "/bin", **first})
    assert again == first, "the emulator's own bundle is never taken as trust the machine had"
    certs = _certificates(first["REQUESTS_CA_BUNDLE"])
    assert len(certs) == len(set(certs)), "each certificate once"
    assert certs[0] == _certificates(str(emulator.ca.cert_path))[0]
    assert _certificates(str(corporate.ca_file))[0] in certs


def test_env_without_named_trust_uses_the_system_store(emulator):
    from sagemaker_emulator.ca import system_trust_sources

    env = _environment(emulator, {})
    assert json.loads(env["SAGEMAKER_EMULATOR_PRIOR_TRUST"]) == {}
    certs = set(_certificates(env["REQUESTS_CA_BUNDLE"]))
    system = [c for source in system_trust_sources() if source.is_file() for c in _certificates(str(source))]
    assert system and set(system) <= certs
    assert set(_certificates(certifi.where())) <= certs
    assert Path(env["REQUESTS_CA_BUNDLE"]).stat().st_mode & 0o777 == 0o644


def test_workshop_honours_the_trust_from_before_the_emulator(emulator, corporate: Corporate):
    """A kernel that inherited the emulator's environment (``make lab``) keeps the company CA either way."""
    from helpers import workshop

    kernel = {"REQUESTS_CA_BUNDLE": str(corporate.ca_file), "PATH": "/bin"}
    kernel.update(_environment(emulator, kernel))
    # local mode: clear, then compute again in-process -- the same bundle, the company CA still in it
    local = dict(kernel)
    workshop.clear_emulator_environment(local)
    assert local == {"REQUESTS_CA_BUNDLE": str(corporate.ca_file), "PATH": "/bin"}
    assert _environment(emulator, local)["REQUESTS_CA_BUNDLE"] == kernel["REQUESTS_CA_BUNDLE"]
    # sagemaker mode keeps a trust setting that is the user's own
    own = {"AWS_CA_BUNDLE": str(corporate.ca_file)}
    assert workshop.clear_emulator_environment(own) == [] and own == {"AWS_CA_BUNDLE": str(corporate.ca_file)}
