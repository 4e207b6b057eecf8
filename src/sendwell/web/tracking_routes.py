"""The click-tracking redirect."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, RedirectResponse, Response

from sendwell.db.session import transaction
from sendwell.insight.tracking import read_click_token, record_click


def tracking_router(runtime) -> APIRouter:  # type: ignore[no-untyped-def]
    router = APIRouter()

    @router.get("/r/{token}")
    def click(request: Request, token: str) -> Response:
        try:
            send_id, url = read_click_token(runtime.settings.secret_keys, token)
        except ValueError:
            # Never redirect on a token we did not sign: that would be an open redirect.
            return PlainTextResponse("This link is not valid.", status_code=404)
        with transaction(runtime.factory) as session:
            record_click(session, send_id=send_id, url=url,
                         ip=request.client.host if request.client else "",
                         user_agent=request.headers.get("user-agent", ""))
        return RedirectResponse(url, status_code=302)

    return router
