"""The click-tracking redirect (and the trap link behind the same path) and the optional open pixel."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, RedirectResponse, Response

from sendwell.db.session import transaction
from sendwell.insight.tracking import PIXEL_GIF, read_link_token, read_open_token, record_click, record_open


def tracking_router(runtime) -> APIRouter:  # type: ignore[no-untyped-def]
    router = APIRouter()

    def client(request: Request) -> dict[str, str]:
        return {"ip": request.client.host if request.client else "",
                "user_agent": request.headers.get("user-agent", ""), "method": request.method}

    # HEAD too: link checkers send it, and it is one of the signs of a machine.
    @router.api_route("/r/{token}", methods=["GET", "HEAD"])
    def click(request: Request, token: str) -> Response:
        settings = runtime.settings
        try:
            send_id, url, trap = read_link_token(settings.secret_keys, token)
        except ValueError:
            # Never redirect on a token we did not sign: that would be an open redirect.
            return PlainTextResponse("This link is not valid.", status_code=404)
        with transaction(runtime.factory) as session:
            record_click(session, send_id=send_id, url=url, trap=trap,
                         machine_seconds=settings.machine_click_seconds, **client(request))
        # Machines get the same redirect as people: only the stored verdict differs.
        return RedirectResponse(url, status_code=302)

    @router.api_route("/o/{token}.gif", methods=["GET", "HEAD"])
    def pixel(request: Request, token: str) -> Response:
        settings = runtime.settings
        try:
            send_id = read_open_token(settings.secret_keys, token)
        except ValueError:
            return PlainTextResponse("Not found.", status_code=404)
        # With open tracking off (the default) an old mail's pixel still loads, and nothing is stored.
        if settings.open_tracking:
            with transaction(runtime.factory) as session:
                record_open(session, send_id=send_id, **client(request))
        return Response(PIXEL_GIF, media_type="image/gif",
                        headers={"Cache-Control": "no-store, no-cache, must-revalidate, max-age=0"})

    return router
