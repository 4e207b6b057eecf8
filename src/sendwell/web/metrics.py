"""GET /metrics for Prometheus, behind an API token with the `metrics:read` scope."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from sendwell.access.service import allows, authenticate
from sendwell.db.session import transaction
from sendwell.metrics import DatabaseCollector, exposition


def metrics_router(runtime) -> APIRouter:  # type: ignore[no-untyped-def]
    router = APIRouter()
    collector = DatabaseCollector(runtime)

    @router.get("/metrics", include_in_schema=False)
    def metrics(request: Request) -> Response:
        # Counts of mail, opt-outs and alerts are business data: Prometheus sends a bearer token
        # (`authorization: {credentials: …}` in its scrape config) like any API client.
        scheme, _, secret = request.headers.get("authorization", "").partition(" ")
        token = None
        if scheme.lower() == "bearer" and secret:
            with transaction(runtime.factory) as session:
                token = authenticate(session, secret=secret.strip())
        if token is None:
            return PlainTextResponse("a bearer token with the metrics:read scope is required\n", status_code=401,
                                     headers={"WWW-Authenticate": 'Bearer realm="sendwell"'})
        if not allows(token, "metrics:read"):
            return PlainTextResponse("this token lacks the metrics:read scope\n", status_code=403)
        return Response(exposition(runtime, collector), media_type=CONTENT_TYPE_LATEST)

    return router
