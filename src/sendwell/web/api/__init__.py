"""The REST API under /api/v1: a FastAPI sub-application with its own OpenAPI and problem+json errors."""

from __future__ import annotations

import re
from collections.abc import Callable

from fastapi import FastAPI
from starlette.routing import Mount

from sendwell.runtime import Runtime
from sendwell.web.api import (
    api_events,
    campaign_manage,
    campaigns,
    contacts,
    domain,
    events,
    feedback,
    reports,
    segments,
    sequences,
    signups,
    suppressions,
    topics,
    webhooks,
)
from sendwell.web.api.auth import BearerFirst, scope_guard
from sendwell.web.api.problems import install_problem_handlers, problem_openapi

PREFIX = "/api/v1"
DESCRIPTION = """Sendwell's REST API. Authenticate with `Authorization: Bearer <token>` (create one
with `sendwell api-tokens create --name N --scope S`). Errors are RFC 9457
`application/problem+json`. Lists are pages in id order: pass `next_after` as `after`."""


def create_api(runtime: Runtime, wake: Callable[[], None] = lambda: None) -> FastAPI:
    """The API app over one runtime; mounted at /api/v1 by sendwell.web.app.create_app."""
    api = FastAPI(title="Sendwell API", version="1", description=DESCRIPTION,
                  docs_url=None, redoc_url=None, openapi_url="/openapi.json")
    install_problem_handlers(api)
    require = scope_guard(runtime)
    for module in (contacts, topics, segments, campaigns, campaign_manage, events, suppressions, reports, feedback,
                   domain, sequences, api_events):
        api.include_router(module.router(runtime, require))
    # `wake` nudges the outbox dispatcher of `sendwell serve` after a commit that queued work.
    api.include_router(webhooks.router(runtime, require, wake))
    api.include_router(signups.router(runtime, require, wake))
    api.add_middleware(BearerFirst, runtime=runtime)  # no body is read for a caller without a live token
    api.openapi = lambda: problem_openapi(api)  # type: ignore[method-assign]
    return api


class _ApiMount(Mount):
    """A mount whose path pattern also matches paths holding a newline (`%0A`).

    Starlette's `.*` stops at a newline, so such a path would miss the API and get the outer
    app's plain-JSON 404 instead of a problem document.
    """

    def __init__(self, path: str, app: FastAPI) -> None:
        super().__init__(path, app=app)
        self.path_regex = re.compile(self.path_regex.pattern, re.DOTALL)


def mount_api(app: FastAPI, runtime: Runtime, wake: Callable[[], None] = lambda: None) -> None:
    """Mount the API at /api/v1 on the web app."""
    app.router.routes.append(_ApiMount(PREFIX, create_api(runtime, wake)))
