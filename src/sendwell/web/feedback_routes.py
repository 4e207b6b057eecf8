"""Provider webhook routes (SES via SNS, SendGrid); thin: verify, process, commit, answer."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from sendwell.db.session import transaction
from sendwell.feedback.providers import (
    SENDGRID_SIGNATURE,
    SENDGRID_TIMESTAMP,
    SnsVerifier,
    WebhookRejected,
    fetch_url,
    handle_sendgrid,
    handle_sns,
    parse_sns,
    verify_sendgrid,
)
from sendwell.runtime import Runtime

MAX_BODY = 2 * 1024 * 1024


def feedback_router(runtime: Runtime) -> APIRouter:
    """POST /webhooks/ses and /webhooks/sendgrid. Tests may replace `sns_verifier` / `sns_confirm` on app.state."""
    router = APIRouter()
    default_verifier = SnsVerifier()

    def _reject(exc: Exception, status: int = 403) -> JSONResponse:
        return JSONResponse({"error": " ".join(str(exc).split())}, status_code=status)

    @router.post("/webhooks/ses")
    async def ses(request: Request) -> JSONResponse:
        body = await request.body()
        if len(body) > MAX_BODY:
            return _reject(ValueError("body too large"), 413)
        try:
            message = parse_sns(body)
        except WebhookRejected as exc:
            return _reject(exc, 400)
        verifier = getattr(request.app.state, "sns_verifier", None) or default_verifier
        confirm = getattr(request.app.state, "sns_confirm", None) or fetch_url

        def work() -> dict:
            with transaction(runtime.factory) as session:
                return handle_sns(session, message=message, settings=runtime.settings,
                                  verifier=verifier, confirm=confirm)

        try:
            result = await run_in_threadpool(work)
        except WebhookRejected as exc:
            return _reject(exc)
        return JSONResponse(result)

    @router.post("/webhooks/sendgrid")
    async def sendgrid(request: Request) -> JSONResponse:
        body = await request.body()
        if len(body) > MAX_BODY:
            return _reject(ValueError("body too large"), 413)
        try:
            verify_sendgrid(public_key=runtime.settings.sendgrid_public_key,
                            signature=request.headers.get(SENDGRID_SIGNATURE, ""),
                            timestamp=request.headers.get(SENDGRID_TIMESTAMP, ""), body=body)
        except WebhookRejected as exc:
            return _reject(exc)

        def work() -> dict:
            with transaction(runtime.factory) as session:
                return handle_sendgrid(session, body=body, settings=runtime.settings)

        try:
            result = await run_in_threadpool(work)
        except WebhookRejected as exc:
            return _reject(exc, 400)
        return JSONResponse(result)

    return router
