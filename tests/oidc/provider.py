"""A small, real OpenID Connect provider for the tests, built with Authlib.

It serves discovery, JWKS (an RS256 key made at start with `cryptography`), the authorization
endpoint (which approves, without a form, whichever user the test has signed in at the provider),
the token endpoint (code exchange, client secret by HTTP Basic or POST, PKCE), userinfo and
RP-initiated logout (end_session). It runs as a WSGI app on a threading wsgiref server on a free
loopback port, so the panel under test talks to it over real HTTP exactly as it would to Keycloak
or Entra ID: nothing in the exchange is mocked.

Test controls (plain attributes, read on every request):
- `signed_in`: the username the provider considers signed in; None makes it refuse (access_denied).
- `users[username].groups`: the groups claim; change it between sign-ins to move someone.
- `id_token_fault`: None, "expired", "tampered", "wrong_audience" or "wrong_issuer" to send a
  token the client must refuse.
- `requests`: every request the provider saw, as (method, path, params).
- `end_sessions`: the validated RP-initiated logout requests (id token claims, redirect).
"""

from __future__ import annotations

import base64
import json
import secrets
import socketserver
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs
from wsgiref.headers import Headers
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from authlib.common.security import generate_token
from authlib.oauth2 import AuthorizationServer, ResourceProtector
from authlib.oauth2.rfc6749 import ClientMixin, OAuth2Payload, OAuth2Request, TokenMixin
from authlib.oauth2.rfc6749.errors import OAuth2Error
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant
from authlib.oauth2.rfc6750 import BearerTokenGenerator, BearerTokenValidator
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import AuthorizationCodeMixin, UserInfo
from authlib.oidc.core.grants import OpenIDCode
from authlib.oidc.rpinitiated import EndSessionEndpoint
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc.jwk import KeySet, RSAKey

ISSUER_PATH = "/idp"  # an issuer with a path, as Keycloak's realms have
SCOPES = ["openid", "email", "profile", "groups"]
ID_TOKEN_FAULTS = {None, "expired", "tampered", "wrong_audience", "wrong_issuer"}


@dataclass
class ProviderUser:
    username: str
    email: str
    name: str
    groups: list[str]
    sub: str = field(default_factory=lambda: secrets.token_hex(8))


@dataclass
class Client(ClientMixin):
    client_id: str
    client_secret: str
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str]

    @property
    def client_metadata(self) -> dict[str, Any]:
        return {"post_logout_redirect_uris": self.post_logout_redirect_uris}

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope: str) -> str:
        return " ".join(s for s in (scope or "").split() if s in SCOPES)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(self.client_secret, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if endpoint == "token":
            return method in ("client_secret_basic", "client_secret_post")
        return True

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass
class AuthorizationCode(AuthorizationCodeMixin):
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    username: str
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time


@dataclass
class Token(TokenMixin):
    access_token: str
    client: Client
    username: str
    scope: str
    issued_at: int
    expires_in: int

    def check_client(self, client: Client) -> bool:
        return client.client_id == self.client.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_in

    def is_expired(self) -> bool:
        return time.time() > self.issued_at + self.expires_in

    def is_revoked(self) -> bool:
        return False

    def get_user(self) -> str:
        return self.username

    def get_client(self) -> Client:
        return self.client


class _Payload(OAuth2Payload):
    def __init__(self, datalist: dict[str, list[str]]):
        self._datalist = datalist

    @property
    def data(self) -> dict[str, str]:
        return {key: values[0] for key, values in self._datalist.items()}

    @property
    def datalist(self) -> dict[str, list[str]]:
        return self._datalist


class WsgiRequest(OAuth2Request):
    """Authlib's request for a plain WSGI environ (what its Django and Flask integrations do)."""

    def __init__(self, environ: dict[str, Any], base_url: str):
        path = environ.get("PATH_INFO", "")
        query = environ.get("QUERY_STRING", "")
        super().__init__(
            environ["REQUEST_METHOD"],
            f"{base_url}{path}" + (f"?{query}" if query else ""),
            headers=_headers(environ),
        )
        self.path = path
        self.query = parse_qs(query, keep_blank_values=True)
        body = b""
        if environ["REQUEST_METHOD"] == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length else b""
        self.body_form = parse_qs(body.decode(), keep_blank_values=True)
        merged: dict[str, list[str]] = {}
        for source in (self.query, self.body_form):
            for key, values in source.items():
                merged.setdefault(key, []).extend(values)
        self.payload = _Payload(merged)

    @property
    def args(self) -> dict[str, str]:
        return {key: values[0] for key, values in self.query.items()}

    @property
    def form(self) -> dict[str, str]:
        return {key: values[0] for key, values in self.body_form.items()}


def _headers(environ: dict[str, Any]) -> Headers:
    pairs = [
        (key[5:].replace("_", "-").title(), value)
        for key, value in environ.items()
        if key.startswith("HTTP_")
    ]
    if environ.get("CONTENT_TYPE"):
        pairs.append(("Content-Type", environ["CONTENT_TYPE"]))
    return Headers(pairs)


class _CodeGrant(AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def save_authorization_code(self, code: str, request: WsgiRequest) -> None:
        data = request.payload.data
        self.server.provider.codes[code] = AuthorizationCode(
            code=code,
            client_id=request.client.client_id,
            redirect_uri=data.get("redirect_uri", ""),
            scope=request.scope,
            username=request.user,
            nonce=data.get("nonce"),
            code_challenge=data.get("code_challenge"),
            code_challenge_method=data.get("code_challenge_method"),
            auth_time=int(time.time()),
        )

    def query_authorization_code(self, code: str, client: Client) -> AuthorizationCode | None:
        found = self.server.provider.codes.get(code)
        return found if found and found.client_id == client.client_id else None

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        self.server.provider.codes.pop(authorization_code.code, None)

    def authenticate_user(self, authorization_code: AuthorizationCode) -> str:
        return authorization_code.username


class _OpenIDCode(OpenIDCode):
    def __init__(self, provider: TestProvider):
        super().__init__(require_nonce=False)
        self.provider = provider

    def exists_nonce(self, nonce: str, request: WsgiRequest) -> bool:
        return any(code.nonce == nonce for code in self.provider.codes.values())

    def resolve_client_private_key(self, client: Client) -> RSAKey:
        return self.provider.key

    def get_client_algorithm(self, client: Client) -> str:
        return "RS256"

    def get_encode_header(self, client: Client) -> dict[str, str]:
        return {"alg": "RS256", "kid": self.provider.key.kid}

    def get_client_claims(self, client: Client) -> dict[str, Any]:
        provider = self.provider
        claims: dict[str, Any] = {"iss": provider.issuer, "aud": [client.client_id]}
        if provider.id_token_fault == "expired":
            # Issued two hours ago, expired an hour ago: no clock needs to move.
            now = int(time.time())
            claims.update(iat=now - 7200, exp=now - 3600, auth_time=now - 7200)
        elif provider.id_token_fault == "wrong_audience":
            claims["aud"] = ["another-client"]
        elif provider.id_token_fault == "wrong_issuer":
            claims["iss"] = "https://impostor.example"
        return claims

    def generate_user_info(self, user: str, scope: str) -> UserInfo:
        return self.provider.user_info(user, scope)

    def encode_id_token(self, token: dict[str, Any], request: WsgiRequest) -> str:
        id_token = super().encode_id_token(token, request)
        if self.provider.id_token_fault == "tampered":
            # Someone on the way rewrites the claims (more groups) but cannot re-sign them.
            header, payload, signature = id_token.split(".")
            claims = json.loads(_b64decode(payload))
            claims["groups"] = [*claims.get("groups", []), "ops-admins"]
            id_token = ".".join([header, _b64encode(json.dumps(claims).encode()), signature])
        return id_token


class _EndSession(EndSessionEndpoint):
    def get_server_jwks(self) -> dict[str, Any]:
        return self.server.provider.jwks()

    def end_session(self, end_session_request: Any) -> None:
        provider = self.server.provider
        provider.end_sessions.append(
            {
                "id_token_claims": end_session_request.id_token_claims,
                "redirect_uri": end_session_request.redirect_uri,
            }
        )
        provider.signed_in = None


class _AccessTokens(BearerTokenValidator):
    def __init__(self, provider: TestProvider):
        super().__init__()
        self.provider = provider

    def authenticate_token(self, token_string: str) -> Token | None:
        return self.provider.tokens.get(token_string)


class _Server(AuthorizationServer):
    def __init__(self, provider: TestProvider):
        super().__init__(scopes_supported=SCOPES)
        self.provider = provider
        self.register_token_generator(
            "default",
            BearerTokenGenerator(
                access_token_generator=lambda **kwargs: generate_token(42),
                expires_generator=lambda client, grant_type: 3600,
            ),
        )
        self.register_grant(_CodeGrant, [_OpenIDCode(provider), CodeChallenge(required=False)])
        self.register_endpoint(_EndSession)

    def query_client(self, client_id: str) -> Client | None:
        return self.provider.clients.get(client_id)

    def save_token(self, token: dict[str, Any], request: WsgiRequest) -> None:
        self.provider.tokens[token["access_token"]] = Token(
            access_token=token["access_token"],
            client=request.client,
            username=request.user,
            scope=token.get("scope", ""),
            issued_at=int(time.time()),
            expires_in=int(token.get("expires_in", 3600)),
        )

    def create_oauth2_request(self, request: WsgiRequest) -> WsgiRequest:
        return request

    def create_json_request(self, request: Any) -> Any:
        raise NotImplementedError

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]):
        return status, body, headers

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return None


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class TestProvider:
    """Start with `start()`, stop with `stop()`; `issuer` is known once started."""

    __test__ = False  # not a test class, whatever pytest thinks of the name

    def __init__(self) -> None:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self.key = RSAKey.import_key(pem, {"use": "sig", "alg": "RS256"})
        self.key.ensure_kid()
        self.users: dict[str, ProviderUser] = {}
        self.clients: dict[str, Client] = {}
        self.codes: dict[str, AuthorizationCode] = {}
        self.tokens: dict[str, Token] = {}
        self.signed_in: str | None = None
        self.id_token_fault: str | None = None
        self.advertise_end_session = True
        self.requests: list[tuple[str, str, dict[str, list[str]]]] = []
        self.end_sessions: list[dict[str, Any]] = []
        self.base_url = ""
        self._server: _ThreadingServer | None = None
        self._thread: threading.Thread | None = None
        self._authz = _Server(self)
        self._userinfo_protector = ResourceProtector()
        self._userinfo_protector.register_token_validator(_AccessTokens(self))

    # -- set-up by the tests ------------------------------------------------------------------
    @property
    def issuer(self) -> str:
        return f"{self.base_url}{ISSUER_PATH}"

    def add_user(self, username: str, *, groups: list[str], email: str = "") -> ProviderUser:
        user = ProviderUser(
            username=username,
            email=email or f"{username}@corp.example",
            name=username.replace(".", " ").title(),
            groups=list(groups),
        )
        self.users[username] = user
        return user

    def add_client(
        self,
        client_id: str,
        client_secret: str,
        *,
        redirect_uris: list[str],
        post_logout_redirect_uris: list[str],
    ) -> Client:
        client = Client(client_id, client_secret, redirect_uris, post_logout_redirect_uris)
        self.clients[client_id] = client
        return client

    def sign_in_as(self, username: str | None) -> None:
        if username is not None and username not in self.users:
            raise KeyError(username)
        self.signed_in = username

    def seen(self, path_suffix: str) -> list[dict[str, list[str]]]:
        """The parameters of every request whose path ends with path_suffix."""
        return [params for _, path, params in self.requests if path.endswith(path_suffix)]

    def start(self) -> TestProvider:
        self._server = make_server(
            "127.0.0.1", 0, self.wsgi, server_class=_ThreadingServer, handler_class=_QuietHandler
        )
        self.base_url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # -- what the provider knows --------------------------------------------------------------
    def jwks(self) -> dict[str, Any]:
        return KeySet([self.key]).as_dict(private=False)

    def user_info(self, username: str, scope: str) -> UserInfo:
        user = self.users[username]
        claims = UserInfo(
            sub=user.sub,
            name=user.name,
            preferred_username=user.username,
            email=user.email,
            email_verified=True,
        ).filter(scope)
        if "groups" in scope.split():
            claims["groups"] = list(user.groups)
        return claims

    def discovery(self) -> dict[str, Any]:
        issuer = self.issuer
        document = {
            "issuer": issuer,
            "authorization_endpoint": f"{issuer}/authorize",
            "token_endpoint": f"{issuer}/token",
            "userinfo_endpoint": f"{issuer}/userinfo",
            "jwks_uri": f"{issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": SCOPES,
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
            ],
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": ["sub", "email", "name", "preferred_username", "groups"],
        }
        if self.advertise_end_session:
            document["end_session_endpoint"] = f"{issuer}/end_session"
        return document

    # -- HTTP ---------------------------------------------------------------------------------
    def wsgi(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        request = WsgiRequest(environ, self.base_url)
        self.requests.append((request.method, request.path, request.payload.datalist))
        path = request.path.removeprefix(ISSUER_PATH)
        routes = {
            "/.well-known/openid-configuration": self._discovery,
            "/jwks": self._jwks,
            "/authorize": self._authorize,
            "/token": self._token,
            "/userinfo": self._userinfo,
            "/end_session": self._end_session,
        }
        handler = routes.get(path) if request.path.startswith(ISSUER_PATH) else None
        if handler is None:
            status, body, headers = 404, {"error": "not_found"}, []
        else:
            status, body, headers = handler(request)
        return _respond(start_response, status, body, headers)

    def _discovery(self, request: WsgiRequest):
        return 200, self.discovery(), []

    def _jwks(self, request: WsgiRequest):
        return 200, self.jwks(), []

    def _authorize(self, request: WsgiRequest):
        try:
            grant = self._authz.get_consent_grant(request, end_user=self.signed_in)
        except OAuth2Error as error:
            return self._authz.handle_error_response(request, error)
        return self._authz.create_authorization_response(
            request, grant_user=self.signed_in, grant=grant
        )

    def _token(self, request: WsgiRequest):
        return self._authz.create_token_response(request)

    def _userinfo(self, request: WsgiRequest):
        try:
            token = self._userinfo_protector.validate_request(["openid"], request)
        except OAuth2Error as error:
            return error()
        return 200, dict(self.user_info(token.get_user(), token.get_scope())), []

    def _end_session(self, request: WsgiRequest):
        response = self._authz.create_endpoint_response("end_session", request)
        if response is None:
            return 200, "Signed out at the test provider.", [("Content-Type", "text/plain")]
        return response


def _respond(start_response: Any, status: int, body: Any, headers: list[tuple[str, str]]):
    if isinstance(body, dict):
        payload = json.dumps(body).encode()
        headers = [*headers, ("Content-Type", "application/json")]
    else:
        payload = str(body or "").encode()
    names = {name.lower() for name, _ in headers}
    if "content-type" not in names:
        headers = [*headers, ("Content-Type", "text/plain; charset=utf-8")]
    reason = {200: "OK", 302: "Found", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found"}
    start_response(f"{status} {reason.get(status, 'Status')}", headers)
    return [payload]


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
