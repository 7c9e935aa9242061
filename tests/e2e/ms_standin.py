"""A stand-in for Microsoft's token endpoint and Graph's sendMail, on loopback, over HTTPS.

NOT Microsoft: a small `http.server` in a thread that follows the documented contracts closely
enough for msal and ldmail to talk to it as they would to the real services:

- Entra ID (what msal asks for, with `instance_discovery=False`):
  `GET /{tenant}/v2.0/.well-known/openid-configuration` (OpenID discovery: issuer,
  authorization and token endpoints), and `POST /{tenant}/oauth2/v2.0/token` with
  `grant_type=client_credentials`, `client_id`, `scope` and `client_secret`, or a
  `client_assertion` (a JWT signed with the app's certificate, `x5t` = its thumbprint). It
  answers `{"token_type": "Bearer", "expires_in": N, "access_token": …}`, or Entra's error
  body (`invalid_client`, AADSTS7000215) for a wrong secret.
- Graph: `POST /v1.0/users/{user}/sendMail` with the MIME message base64-encoded and
  `Content-Type: text/plain`: 202 Accepted, 401 for a token it did not issue (or expired),
  and scripted answers per recipient (429 with Retry-After, 400, …).

msal insists on an https authority, so the stand-in serves TLS with a certificate from its own
throw-away CA; `ca_file` is what a test puts in SSL_CERT_FILE.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import email
import hashlib
import ipaddress
import json
import secrets
import ssl
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from time import monotonic, sleep
from typing import Any
from urllib.parse import parse_qs, unquote

SMTP_SCOPE = "https://outlook.office365.com/.default"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
TENANT = "contoso.onmicrosoft.com"
CLIENT = "11111111-2222-3333-4444-555555555555"


@dataclass
class Issued:
    token: str
    scope: str
    client_id: str
    expires: float  # monotonic


@dataclass
class Post:
    """One sendMail request as the stand-in saw it."""

    user: str
    content_type: str
    status: int
    data: bytes  # the decoded MIME message ("" when it was not valid base64)

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.data, policy=default_policy)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class Reply:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    trickle: bool = False  # the whole answer one byte every half second, headers included


def tls_files(folder: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1 and localhost signed by it:
    (ca.pem, server.pem, server.key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ldmail test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


def app_certificate(folder: Path) -> tuple[Path, str, bytes]:
    """An app registration's certificate: (PEM with key and certificate, SHA-1 thumbprint,
    the certificate's DER) as Entra ID would hold it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ldmail sender")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    der = cert.public_bytes(serialization.Encoding.DER)
    path = folder / "app.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption())
                     + cert.public_bytes(serialization.Encoding.PEM))
    return path, hashlib.sha1(der).hexdigest().upper(), der


class MsStandin:
    """The stand-in server. `base` is its https address (the authority and graph_url)."""

    def __init__(self, folder: Path, *, tenant: str = TENANT, client_id: str = CLIENT,
                 client_secret: str | None = None, certificate_der: bytes | None = None) -> None:
        self.tenant, self.client_id = tenant, client_id
        self.client_secret = client_secret
        self.certificate_der = certificate_der
        self.ca_file, cert, key = tls_files(folder)
        self._lock = threading.Lock()
        self._issued: dict[str, Issued] = {}
        self.token_requests: list[dict[str, str]] = []  # the form fields of each
        self.discoveries = 0
        self.lifetimes: deque[int] = deque()  # expires_in of the next tokens (then 3599)
        self.posts: list[Post] = []
        self._replies: dict[str, deque[Reply]] = {}
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                standin._get(self)

            def do_POST(self) -> None:  # noqa: N802
                standin._post(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.base = f"https://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> MsStandin:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- script and inspection --------------------------------------------------------------

    def sendmail_replies(self, recipient: str, *replies: Reply) -> None:
        """Answer the next sendMail requests for a message to `recipient` with these."""
        with self._lock:
            self._replies.setdefault(recipient.lower(), deque()).extend(replies)

    def forget_replies(self) -> None:
        """Answer every sendMail request normally again."""
        with self._lock:
            self._replies.clear()

    def valid(self, token: str, scope: str) -> bool:
        with self._lock:
            issued = self._issued.get(token)
        return issued is not None and issued.scope == scope and monotonic() < issued.expires

    def revoke_all(self) -> None:
        with self._lock:
            self._issued.clear()

    @property
    def tokens(self) -> list[str]:
        with self._lock:
            return list(self._issued)

    def accepted(self) -> list[Post]:
        with self._lock:
            return [post for post in self.posts if post.status == 202]

    # -- the two services -------------------------------------------------------------------

    def _json(self, request: BaseHTTPRequestHandler, status: int, body: Any,
              headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        request.send_response(status)
        for name, value in (headers or {}).items():
            request.send_header(name, value)
        if body is not None:
            request.send_header("Content-Type", "application/json; charset=utf-8")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    def _get(self, request: BaseHTTPRequestHandler) -> None:
        parts = request.path.split("?")[0].strip("/").split("/")
        if parts[1:] == ["v2.0", ".well-known", "openid-configuration"]:
            tenant = parts[0]
            if tenant != self.tenant:
                self._json(request, 400, {"error": "invalid_tenant", "error_description":
                                          f"AADSTS90002: Tenant '{tenant}' not found."})
                return
            with self._lock:
                self.discoveries += 1
            root = f"{self.base}/{tenant}"
            self._json(request, 200, {
                "issuer": f"{root}/v2.0",
                "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
                "token_endpoint": f"{root}/oauth2/v2.0/token",
                "jwks_uri": f"{root}/discovery/v2.0/keys",
                "response_types_supported": ["code", "id_token", "token"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": ["client_secret_post",
                                                          "private_key_jwt"],
            })
            return
        self._json(request, 404, {"error": "not found"})

    def _post(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length)
        parts = request.path.split("?")[0].strip("/").split("/")
        if parts[1:] == ["oauth2", "v2.0", "token"]:
            self._token(request, parts[0], body)
        elif len(parts) == 4 and parts[:2] == ["v1.0", "users"] and parts[3] == "sendMail":
            self._send_mail(request, unquote(parts[2]), body)
        else:
            self._json(request, 404, {"error": {"code": "NotFound", "message": request.path}})

    def _token(self, request: BaseHTTPRequestHandler, tenant: str, body: bytes) -> None:
        form = {key: values[0] for key, values in parse_qs(body.decode()).items()}
        with self._lock:
            self.token_requests.append(form)
        trace = "\r\nTrace ID: 0f1e2d3c\r\nCorrelation ID: 4b5a6978\r\nTimestamp: 2026-12-01"
        if tenant != self.tenant or form.get("grant_type") != "client_credentials":
            self._json(request, 400, {"error": "invalid_request", "error_description":
                                      f"AADSTS90002: Tenant '{tenant}' not found.{trace}"})
            return
        if form.get("client_id") != self.client_id:
            self._json(request, 400, {"error": "unauthorized_client", "error_description": (
                f"AADSTS700016: Application with identifier '{form.get('client_id')}' was not "
                f"found in the directory '{tenant}'.{trace}"), "error_codes": [700016]})
            return
        if not self._authentic(form):
            self._json(request, 401, {"error": "invalid_client", "error_description": (
                "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent "
                "in the request is the client secret value, not the client secret ID, for a "
                f"secret added to app '{self.client_id}'.{trace}"), "error_codes": [7000215]})
            return
        scope = form.get("scope", "")
        with self._lock:
            lifetime = self.lifetimes.popleft() if self.lifetimes else 3599
            token = "eyJ0eXAi." + secrets.token_urlsafe(24)
            self._issued[token] = Issued(token, scope, self.client_id, monotonic() + lifetime)
        self._json(request, 200, {"token_type": "Bearer", "expires_in": lifetime,
                                  "ext_expires_in": lifetime, "access_token": token})

    def _authentic(self, form: dict[str, str]) -> bool:
        if self.client_secret is not None:
            return form.get("client_secret") == self.client_secret
        assertion = form.get("client_assertion")
        kind = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        if self.certificate_der is None or assertion is None or \
                form.get("client_assertion_type") != kind:
            return False
        import jwt
        from cryptography import x509

        certificate = x509.load_der_x509_certificate(self.certificate_der)
        header = jwt.get_unverified_header(assertion)
        thumb = base64.urlsafe_b64encode(hashlib.sha1(self.certificate_der).digest()).rstrip(b"=")
        if header.get("x5t", "").rstrip("=").encode() != thumb:  # msal keeps the padding
            return False
        try:
            claims = jwt.decode(assertion, certificate.public_key(),  # type: ignore[arg-type]
                                algorithms=["RS256", "PS256"], options={"verify_aud": False})
        except jwt.InvalidTokenError:
            return False
        return bool(claims.get("iss") == self.client_id == claims.get("sub"))

    def _send_mail(self, request: BaseHTTPRequestHandler, user: str, body: bytes) -> None:
        auth = request.headers.get("Authorization", "")
        content_type = request.headers.get("Content-Type", "")
        try:
            data = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            data = b""
        recipient = ""
        if data:
            parsed = email.message_from_bytes(data, policy=default_policy)
            recipient = str(parsed.get("To", "")).rpartition("<")[2].rstrip(">").lower()
        with self._lock:
            scripted = self._replies.get(recipient)
            reply = scripted.popleft() if scripted else None
        token = auth.removeprefix("Bearer ")
        if not auth.startswith("Bearer ") or not self.valid(token, GRAPH_SCOPE):
            reply = Reply(401, body={"error": {"code": "InvalidAuthenticationToken",
                                               "message": "Access token has expired or is not "
                                               "yet valid."}})
        elif not data or not content_type.startswith("text/plain"):
            reply = Reply(400, body={"error": {"code": "ErrorMimeContentInvalidBase64String",
                                               "message": "Invalid base64 string for MIME "
                                               "content."}})
        elif reply is None:
            reply = Reply(202)
        with self._lock:
            self.posts.append(Post(user, content_type, reply.status, data))
        if reply.trickle:
            _trickle(request, reply)
        else:
            self._json(request, reply.status, reply.body, reply.headers)


def _trickle(request: BaseHTTPRequestHandler, reply: Reply) -> None:
    """A server that answers, but slower than any client should wait: one byte each half
    second, until the client hangs up."""
    data = b"" if reply.body is None else json.dumps(reply.body).encode()
    head = "".join(f"{name}: {value}\r\n" for name, value in reply.headers.items())
    answer = (f"HTTP/1.1 {reply.status} Slow\r\nContent-Length: {len(data)}\r\n{head}\r\n"
              .encode() + data)
    try:
        for byte in answer:
            request.wfile.write(bytes([byte]))
            request.wfile.flush()
            sleep(0.5)
    except OSError:
        pass
    request.close_connection = True


SECRET_ENV = "LDMAIL_TEST_CLIENT_SECRET"


def trust(standin: MsStandin, monkeypatch: Any) -> None:
    """Make ldmail (msal through requests, Graph through httpx) trust the stand-in's CA, as an
    operator behind a TLS-inspecting proxy would trust the proxy's."""
    for name in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
        monkeypatch.setenv(name, str(standin.ca_file))
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)


def serve(tmp_path: Path, monkeypatch: Any) -> Iterator[MsStandin]:
    """Body of the `standin` fixture the test modules declare: a stand-in with a fresh client
    secret in the environment, trusted by ldmail, stopped afterwards."""
    secret = "s3cr3t~" + secrets.token_urlsafe(18)
    monkeypatch.setenv(SECRET_ENV, secret)
    with MsStandin(tmp_path / "standin", client_secret=secret) as server:
        trust(server, monkeypatch)
        yield server


def oauth2_block(standin: MsStandin, **extra: Any) -> dict[str, Any]:
    """ldmail.yaml's transport.oauth2 for the stand-in's app registration."""
    return {"tenant_id": standin.tenant, "client_id": standin.client_id,
            "client_secret_env": SECRET_ENV, "authority": standin.base, **extra}
