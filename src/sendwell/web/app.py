"""The ASGI app: composition of the recipient pages, webhooks, tracking, API, admin, metrics and health."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, JSONResponse

from sendwell.followups import outbox_worker
from sendwell.runtime import Runtime
from sendwell.web.admin import mount_admin, warmup_page
from sendwell.web.admin.errors import mount_error_pages
from sendwell.web.admin.pages import Admin
from sendwell.web.api import mount_api
from sendwell.web.feedback_routes import feedback_router
from sendwell.web.health import failed, readiness
from sendwell.web.limits import BodySizeLimit
from sendwell.web.prometheus import metrics_router
from sendwell.web.recipient import mount_recipient
from sendwell.web.recipient.rendering import RecipientPages
from sendwell.web.recipient.signup import signup_router
from sendwell.web.tracking_routes import tracking_router

__all__ = ["create_app"]

FAVICON = Path(__file__).parent / "admin" / "static" / "favicon.ico"


def create_app(runtime: Runtime, *, outbox: bool = True) -> FastAPI:
    """The web app over one runtime (settings, database); `outbox` runs the follow-up dispatcher."""
    worker = outbox_worker(runtime) if outbox else None

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if worker is not None:
            worker.start()
            worker.wake()
        try:
            yield
        finally:
            if worker is not None:
                worker.stop()

    def wake() -> None:
        # Right after a commit that wrote follow-ups, so the thank-you leaves without waiting for a poll.
        if worker is not None:
            worker.wake()

    app = FastAPI(title="Sendwell", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.runtime = runtime
    app.state.outbox = worker

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        # Liveness only: the process answers. A database or Redis outage must not get the
        # container restarted (restarting fixes neither); /readyz says whether it can serve.
        # The key fingerprints (never the keys) tell at a glance which machine runs other keys.
        return JSONResponse({"status": "ok", "fingerprints": runtime.fingerprints})

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> FileResponse:
        # Browsers ask every site for it: the tab icon of the admin and of the recipient pages.
        return FileResponse(FAVICON, media_type="image/vnd.microsoft.icon",
                            headers={"Cache-Control": "public, max-age=86400"})

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        checks = readiness(runtime.settings, runtime.engine)
        down = failed(checks)
        body = {"status": "unavailable" if down else "ok", "failed": down, "checks": checks}
        return JSONResponse(body, status_code=503 if down else 200)

    mount_recipient(app, runtime, wake)
    app.include_router(signup_router(runtime, RecipientPages(runtime), wake))  # /f/ID signup forms
    app.include_router(tracking_router(runtime))
    app.include_router(feedback_router(runtime))  # provider webhooks
    mount_api(app, runtime, wake)
    mount_admin(app, runtime)  # the web admin under /admin
    app.include_router(warmup_page.router(Admin(runtime)))  # the admin's Warm-up page
    mount_error_pages(app, Admin(runtime))  # 404/405/500 as admin pages for browsers; JSON for the rest
    app.include_router(metrics_router(runtime))
    # Added last, so it wraps every other middleware: no body is read past its route's limit.
    app.add_middleware(BodySizeLimit)
    return app
