"""Bearer-token authentication for the API: 401 without a live token, 403 without the scope."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from sendwell.access.service import allows, authenticate
from sendwell.db.models import ApiToken
from sendwell.db.session import transaction
from sendwell.runtime import Runtime
from sendwell.web.api.problems import ApiProblem

bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer swk_…` from `sendwell api-tokens create`")

# RFC 6750 §3: a 401 names the scheme; an insufficient scope is a 403.
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="sendwell"'}


def scope_guard(runtime: Runtime) -> Callable[[str], object]:
    """`require("contacts:read")` → a dependency that yields the authenticated token."""

    def require(scope: str) -> object:
        def dependency(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> ApiToken:
            if credentials is None or not credentials.credentials:
                raise ApiProblem(401, "send `Authorization: Bearer <token>`", kind="unauthenticated",
                                 headers=_CHALLENGE)
            with transaction(runtime.factory) as session:
                token = authenticate(session, secret=credentials.credentials)
            if token is None:
                raise ApiProblem(401, "the token is unknown or revoked", kind="unauthenticated",
                                 headers={"WWW-Authenticate": 'Bearer realm="sendwell", error="invalid_token"'})
            if not allows(token, scope):
                raise ApiProblem(403, f"this token lacks the scope {scope!r}", kind="insufficient-scope",
                                 headers={"WWW-Authenticate": f'Bearer realm="sendwell", error="insufficient_scope", scope="{scope}"'})
            return token

        return Depends(dependency)

    return require
