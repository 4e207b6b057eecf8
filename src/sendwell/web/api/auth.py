"""Bearer-token authentication for the API: 401 without a live token, 403 without the scope."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from sendwell.access.service import allows, authenticate
from sendwell.db.models import ApiToken
from sendwell.db.session import transaction
from sendwell.runtime import Runtime
from sendwell.web.api.problems import ApiProblem, problem_response

bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer swk_…` from `sendwell api-tokens create`")

# RFC 6750 §3: a 401 names the scheme; an insufficient scope is a 403.
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="sendwell"'}
_INVALID = {"WWW-Authenticate": 'Bearer realm="sendwell", error="invalid_token"'}
_MISSING_DETAIL = "send `Authorization: Bearer <token>`"
_INVALID_DETAIL = "the token is unknown or revoked"


def _live_token(runtime: Runtime, secret: str) -> ApiToken | None:
    with transaction(runtime.factory) as session:
        return authenticate(session, secret=secret)


def scope_guard(runtime: Runtime) -> Callable[[str], object]:
    """`require("contacts:read")` → a dependency that yields the authenticated token."""

    def require(scope: str) -> object:
        def dependency(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> ApiToken:
            if credentials is None or not credentials.credentials:
                raise ApiProblem(401, _MISSING_DETAIL, kind="unauthenticated", headers=_CHALLENGE)
            token = _live_token(runtime, credentials.credentials)
            if token is None:
                raise ApiProblem(401, _INVALID_DETAIL, kind="unauthenticated", headers=_INVALID)
            if not allows(token, scope):
                raise ApiProblem(403, f"this token lacks the scope {scope!r}", kind="insufficient-scope",
                                 headers={"WWW-Authenticate": f'Bearer realm="sendwell", error="insufficient_scope", scope="{scope}"'})
            return token

        return Depends(dependency)

    return require


def _bearer_secret(headers: dict[bytes, bytes]) -> str:
    scheme, _, secret = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
    return secret.strip() if scheme.lower() == "bearer" else ""


class BearerFirst:
    """ASGI middleware: a request that carries a body but no live token gets its 401 before the
    body is read; FastAPI parses a body before it runs a route's dependencies, so the scope
    guard alone would answer only after reading and validating it. Scopes stay with the guard."""

    def __init__(self, app: Any, runtime: Runtime) -> None:
        self.app, self.runtime = app, runtime

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        has_body = headers.get(b"content-length", b"0") != b"0" or b"transfer-encoding" in headers
        if not has_body:
            return await self.app(scope, receive, send)
        secret = _bearer_secret(headers)
        if not secret:
            response = problem_response(401, _MISSING_DETAIL, kind="unauthenticated", headers=_CHALLENGE)
        elif await run_in_threadpool(_live_token, self.runtime, secret) is None:
            response = problem_response(401, _INVALID_DETAIL, kind="unauthenticated", headers=_INVALID)
        else:
            return await self.app(scope, receive, send)
        await response(scope, receive, send)
