"""The MLflow front door: requests for an MLflow App, forwarded to the app's own ``mlflow server``.

Two kinds of caller reach an app through the gateway:

* the ``sagemaker-mlflow`` plugin (``mlflow.set_tracking_uri(<app ARN>)``): MLflow REST calls to
  ``https://mlflow.sagemaker.<region>.app.aws/api/2.0/mlflow/…`` carrying the app's ARN in
  ``x-sm-mlflow-app-arn`` and SigV4-signed for ``sagemaker`` — checked here like every other AWS
  request (access key, time, scope, signature over the body received) before anything is forwarded;
* a browser, on ``/_emulator/mlflow/<app id>/…``: ``auth?authToken=…`` (the presigned URL) checks the
  token's signature and expiry and sets a session cookie; every other page of the UI needs that
  cookie. Tokens and cookies are HMACs with the emulator's secret key, so only a URL the control
  plane made opens the UI.

Errors are answered in MLflow's own JSON shape (``error_code``, ``message``), which its client reads.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import logging
import re
import time
from typing import Any

from .protocol.errors import ServiceError
from .protocol.http import Headers, Request, Response
from .runtime.mlflow_server import PREFIX, route_prefix

log = logging.getLogger("sagemaker_emulator.mlflow")

APP_HEADER = "x-sm-mlflow-app-arn"
SERVER_HEADER = "x-mlflow-sm-tracking-server-arn"
COOKIE = "sm-emulator-mlflow"
#: headers not forwarded either way (hop-by-hop, or describing a body we re-frame)
_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
        "content-length", "host", "authorization", "x-amz-date", "x-amz-security-token", "x-amz-content-sha256"}
FORWARD_TIMEOUT_SECONDS = 120.0
#: where the plugin sends an app's (``mlflow.sagemaker.<region>.app.aws``) or a tracking server's requests
_MLFLOW_HOST = re.compile(r"^(?:mlflow\.sagemaker\.[a-z0-9-]+\.app|[a-z0-9-]+\.experiments\.sagemaker)\.aws\.?$")


def is_mlflow_host(host: str) -> bool:
    return bool(_MLFLOW_HOST.match(host.lower()))


def _arn_header(request: Request) -> str | None:
    return request.headers.get(APP_HEADER) or request.headers.get(SERVER_HEADER)


def handles(request: Request) -> bool:
    return _arn_header(request) is not None or request.raw_path.startswith(PREFIX + "/")


def _sign(emulator: Any, text: str) -> str:
    key = emulator.credentials.secret_key.encode()
    return base64.urlsafe_b64encode(hmac.new(key, text.encode(), hashlib.sha256).digest()).decode().rstrip("=")


def _token(emulator: Any, claims: dict[str, Any]) -> str:
    body = base64.urlsafe_b64encode(json.dumps(claims, sort_keys=True).encode()).decode().rstrip("=")
    return f"{body}.{_sign(emulator, body)}"


def _claims(emulator: Any, token: str) -> dict[str, Any] | None:
    body, _, signature = token.partition(".")
    if not body or not hmac.compare_digest(signature, _sign(emulator, body)):
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except ValueError:
        return None
    return claims if isinstance(claims, dict) and claims.get("until", 0) > time.time() else None


def presigned_url(emulator: Any, app_id: str, expires: int, session: int) -> str:
    """``<ui>/auth?authToken=…``: valid ``expires`` seconds; the UI session it opens lasts ``session``."""
    token = _token(emulator, {"app": app_id, "until": time.time() + expires, "session": session})
    return f"{emulator.endpoint_url}{route_prefix(app_id)}/auth?authToken={token}"


def _error(status: int, code: str, message: str) -> Response:
    body = json.dumps({"error_code": code, "message": message}).encode()
    return Response(status, Headers([("Content-Type", "application/json")]), body)


def dispatch(emulator: Any, request: Request) -> Response:
    """Authenticate, find the app's server, forward; never raises."""
    request.service, request.operation = "sagemaker-mlflow", "MlflowRequest"
    try:
        if _arn_header(request) is not None:
            app_id = _signed(emulator, request)
            path = route_prefix(app_id) + request.raw_path + (f"?{request.query_string}" if request.query_string
                                                               else "")
            body = request.body_stream.read() if request.body_stream is not None else b""
        else:
            app_id, path, redirect = _browser(emulator, request)
            if redirect is not None:
                return redirect
            body = request.body()
        answer = _forward(emulator, app_id, request, path, body)
        if answer.status == 200 and request.method == "POST" and request.raw_path.endswith(
                "/mlflow/model-versions/create"):
            _registered(emulator, app_id, answer)
        return answer
    except ServiceError as error:
        request.error_code = error.code
        return _error(error.status, error.code, error.message)
    except Exception:  # a bug here must not take the gateway down, nor answer in a protocol MLflow cannot read
        log.exception("MLflow request %s %s failed", request.method, request.raw_path)
        request.error_code = "INTERNAL_ERROR"
        return _error(500, "INTERNAL_ERROR", "The emulator failed to forward this MLflow request; see its log.")


def _registered(emulator: Any, app_id: str, answer: Response) -> None:
    """A model version was registered in MLflow: SageMaker mirrors it in its model registry (if the app says so)."""
    try:
        version = json.loads(answer.body)["model_version"]  # type: ignore[arg-type]
    except (ValueError, KeyError, TypeError):
        return
    emulator.sagemaker.register_mlflow_model_version(app_id, version)


def _signed(emulator: Any, request: Request) -> str:
    """The app a signed plugin request is for, once its signature checks out."""
    from . import gateway, routing, sigv4

    cred = sigv4.parse_credential(request)
    if cred is None:
        raise ServiceError("MissingAuthenticationTokenException", "Missing Authentication Token", 403)
    sigv4.check_access_key(cred, emulator.credentials.access_key)
    sigv4.check_time(cred)
    target = routing.host_target(request.host)
    app = request.headers.get(APP_HEADER)
    # apps are signed for "sagemaker", tracking servers for "sagemaker-mlflow" (the plugin's AuthBoto)
    sigv4.check_scope(cred, "sagemaker" if app else "sagemaker-mlflow", target.region, "rest-json")
    gateway._authenticate_payload(emulator, request, cred)
    arn = app or request.headers.get(SERVER_HEADER) or ""
    name = arn.rsplit("/", 1)[-1]
    if app:
        record, key, arn_field = emulator.state.get("MlflowApp", name), name, "Arn"
    else:
        record, key, arn_field = emulator.state.get("MlflowTrackingServer", name), f"ts-{name}", "TrackingServerArn"
    if record is None or record[arn_field].lower() != arn.lower():
        raise ServiceError("RESOURCE_DOES_NOT_EXIST", f"{arn} does not exist.", 404)
    return key


def _browser(emulator: Any, request: Request) -> tuple[str, str, Response | None]:
    """The app a browser asks for: ``auth`` turns a presigned token into a session cookie; other pages need it."""
    rest = request.raw_path[len(PREFIX) + 1:]
    app_id, _, page = rest.partition("/")
    path = request.raw_path + (f"?{request.query_string}" if request.query_string else "")
    if page == "auth":
        token = (request.query.get("authToken") or [""])[0]
        claims = _claims(emulator, token)
        if claims is None or claims.get("app") != app_id:
            raise ServiceError("INVALID_TOKEN", "The presigned URL is invalid or has expired; create a new one "
                                                "(CreatePresignedMlflowAppUrl).", 403)
        cookie = _token(emulator, {"app": app_id, "until": time.time() + int(claims.get("session", 43200))})
        headers = Headers([("Location", f"{route_prefix(app_id)}/"),
                           ("Set-Cookie", f"{COOKIE}-{app_id}={cookie}; Path={route_prefix(app_id)}; HttpOnly; "
                                          "SameSite=Lax")])
        return app_id, path, Response(302, headers, b"")
    cookies = dict(part.strip().split("=", 1) for part in (request.headers.get("Cookie") or "").split(";")
                   if "=" in part)
    claims = _claims(emulator, cookies.get(f"{COOKIE}-{app_id}", ""))
    if claims is None or claims.get("app") != app_id:
        raise ServiceError("UNAUTHENTICATED", "Open the MLflow UI with a presigned URL "
                                              "(CreatePresignedMlflowAppUrl); this session has none or it expired.",
                           401)
    return app_id, path, None


def _forward(emulator: Any, app_id: str, request: Request, path: str, body: bytes) -> Response:
    servers = getattr(emulator, "mlflow", None)
    port = servers.port(app_id) if servers is not None else None
    if port is None:
        raise ServiceError("TEMPORARILY_UNAVAILABLE", f"The MLflow server of app {app_id} is not running (the app is "
                                                      "starting, failed or was deleted).", 503)
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
    headers["Host"] = f"127.0.0.1:{port}"  # the server's own security middleware accepts local hosts only
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=FORWARD_TIMEOUT_SECONDS)
    try:
        connection.request(request.method, path, body=body or None, headers=headers)
        answer = connection.getresponse()
        data = answer.read()
        out = Headers([(k, v) for k, v in answer.getheaders() if k.lower() not in _HOP])
        return Response(answer.status, out, data)
    except OSError as exc:
        raise ServiceError("TEMPORARILY_UNAVAILABLE", f"The MLflow server of app {app_id} did not answer: {exc}",
                           503) from None
    finally:
        connection.close()
