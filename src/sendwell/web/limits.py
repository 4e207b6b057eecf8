"""Request body size limits per route class, enforced before any route reads the body."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException
from starlette.responses import PlainTextResponse, Response

from sendwell.web.api.problems import problem_response

KB = 1024
MB = 1024 * KB
RECIPIENT_BYTES = 16 * KB  # unsubscribe, one-click, preference, confirmation and signup forms
WEBHOOK_BYTES = 1 * MB  # provider notifications (SES, SendGrid) come in small batches
API_BYTES = 10 * MB  # the largest is a bulk upsert of 1000 contacts
IMPORT_FILE_BYTES = 50 * MB  # the admin import wizard's upload (the file itself)
IMPORT_UPLOAD_BYTES = IMPORT_FILE_BYTES + 1 * MB  # room for the multipart framing and the form fields
DEFAULT_BYTES = 1 * MB
_RECIPIENT_PREFIXES = ("/u/", "/p/", "/k/", "/c/", "/f/", "/manage")


def limit_for(path: str) -> int:
    """The most body bytes a request to this path may send."""
    if path.startswith(_RECIPIENT_PREFIXES):
        return RECIPIENT_BYTES
    if path.startswith("/webhooks/"):
        return WEBHOOK_BYTES
    if path.startswith("/api/"):
        return API_BYTES
    if path.rstrip("/") == "/admin/import":
        return IMPORT_UPLOAD_BYTES
    return DEFAULT_BYTES


class BodyTooLarge(HTTPException):
    """Raised from `receive` once a streamed body passes its limit (FastAPI re-raises HTTP errors)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")
        self.limit = limit


def too_large(path: str, limit: int) -> Response:
    """The 413 answer: a problem document under the API, plain text elsewhere."""
    detail = f"the request body is larger than {limit} bytes"
    if path.startswith("/api/"):
        return problem_response(413, detail, kind="too-large")
    return PlainTextResponse(f"Request body too large: {detail}.", status_code=413)


class BodySizeLimit:
    """ASGI middleware: a declared Content-Length over the limit gets 413 before anything is read;
    a chunked body is counted as it streams and cut with 413 at the limit."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        limit = limit_for(path)
        # The (last) Content-Length header, without building a dict of every header (the one-click path).
        declared = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = value
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            return await too_large(path, limit)(scope, receive, send)
        received = 0
        started = False

        async def limited_receive() -> Any:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watched_send(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, watched_send)
        except BodyTooLarge:
            # Raised where no exception handler turned it into a response (a middleware read it).
            if started:
                raise
            await too_large(path, limit)(scope, receive, send)
