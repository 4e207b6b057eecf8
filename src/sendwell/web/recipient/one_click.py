"""The unsubscribe POST (RFC 8058 one-click, and the page's own button): its fast path and group commit."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from sendwell.db.session import transaction
from sendwell.i18n import choose_language, normalise_language
from sendwell.optout import service
from sendwell.optout.followup_mails import mask_email
from sendwell.optout.gate import await_hand_off, hand_off_window, wait_for_hand_off
from sendwell.optout.tokens import SALT_UNSUBSCRIBE, TokenData
from sendwell.runtime import Runtime
from sendwell.web.recipient.links import read_link
from sendwell.web.recipient.rendering import PAGE_HEADERS, RecipientPages, client_of

ONE_CLICK_DONE = ("<!DOCTYPE html><html lang=\"en\"><meta charset=\"utf-8\"><title>Unsubscribed</title>"
                  "<p>You are unsubscribed. This took effect immediately.</p></html>\n")
INVALID = "Invalid link; nothing was changed.\n"
UNKNOWN = "Unknown recipient; nothing was changed.\n"


def one_click_router(runtime: Runtime, pages: RecipientPages, group: GroupCommit | None, wake: Any) -> APIRouter:
    """POST /u/TOKEN through routing: our own forms, multipart bodies, and every POST on PostgreSQL."""
    router = APIRouter()

    @router.post("/u/{token}")
    async def one_click(request: Request, token: str) -> Response:
        # RFC 8058 §3.1–3.2: no cookie, login or confirmation; any well-formed token POST is
        # the one-click, whatever the body (urlencoded, multipart, or none), and never a 3xx.
        data = read_link(runtime.settings.secret_keys, SALT_UNSUBSCRIBE, token)
        if data is None:
            return HTMLResponse(INVALID, status_code=400, headers=PAGE_HEADERS)
        method = await method_of(request)
        ip, ua = client_of(request)
        if group is not None:
            result = await group.submit(data, method, ip, ua)
        else:
            result = await run_in_threadpool(unsubscribe_one, data, method, ip, ua)
        if result is None:
            return HTMLResponse(UNKNOWN, status_code=404, headers=PAGE_HEADERS)
        wake()
        if method == "one_click":
            # A mail client's RFC 8058 POST: nobody reads the body, so it stays small and
            # cheap (this is the hot path); a person who opens the link gets the full page.
            return HTMLResponse(ONE_CLICK_DONE, headers=PAGE_HEADERS)
        lang = normalise_language(request.query_params.get("lang")) or choose_language(
            result.language, request.headers.get("accept-language"))
        return pages.page(request, "unsubscribed.html", lang, masked=mask_email(result.email), token=token,
                          reasons=service.REASONS)

    def unsubscribe_one(data: TokenData, method: str, ip: str, ua: str) -> service.OptOutResult | None:
        # Committed before the response is built: the opt-out is effective when the 200 leaves.
        with transaction(runtime.factory) as session:
            result = service.unsubscribe_contact(session, contact_id=data.contact_id, campaign_id=data.campaign_id,
                                                 method=method, ip=ip, user_agent=ua)
        if result is not None and result.hand_off_pending:  # see GroupCommit.submit
            wait_for_hand_off(runtime.engine, result.contact_id, window=hand_off_window(runtime.settings.smtp_timeout),
                              stale_after=timedelta(seconds=runtime.settings.heartbeat_timeout))
        return result

    return router


class GroupCommit:
    """Write the one-click opt-outs that arrive in one event-loop turn in one transaction.

    SQLite has one writer, so a thread pool adds no parallelism, only two thread hand-offs
    per request. Instead the POSTs that arrive in one turn of the event loop are written in
    one transaction; each 200 still leaves only after that commit (bench/unsubscribe.py).
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.pending: list[tuple[tuple[TokenData, str, str, str], asyncio.Future[Any]]] = []
        self.scheduled = False

    async def submit(self, data: TokenData, method: str, ip: str, ua: str) -> service.OptOutResult | None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self.pending.append(((data, method, ip, ua), future))
        if not self.scheduled:
            self.scheduled = True
            loop.call_soon(self.flush)
        result = await future
        if result is not None and result.hand_off_pending:
            # A mail to this person was being handed to SMTP when the opt-out committed: the
            # answer waits for that hand-off, so no mail leaves after it (optout/gate.py).
            await await_hand_off(self.runtime.engine, result.contact_id,
                                 window=hand_off_window(self.runtime.settings.smtp_timeout),
                                 stale_after=timedelta(seconds=self.runtime.settings.heartbeat_timeout))
        return result

    def flush(self) -> None:
        batch, self.pending, self.scheduled = self.pending, [], False
        try:
            with transaction(self.runtime.factory) as session:
                results = [service.unsubscribe_contact(session, contact_id=d.contact_id, campaign_id=d.campaign_id,
                                                       method=m, ip=ip, user_agent=ua)
                           for (d, m, ip, ua), _ in batch]
        except Exception as exc:  # nothing was committed: every request in the batch fails
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results):
            if not future.done():
                future.set_result(result)


class OneClickFastPath:
    """A mail client's RFC 8058 POST to /u/TOKEN, answered without routing and dependency injection.

    It is the one request that can arrive in bursts of thousands (a big campaign, a
    provider's unsubscribe button); it does exactly what the routed view does for a
    `one_click` (same token check, same service call in a committed transaction, same
    answers). Our own forms (they carry `source`) and multipart bodies go to the view.
    """

    def __init__(self, app: Any, read: Callable[[str], TokenData | None], group: GroupCommit,
                 wake: Callable[[], None]) -> None:
        self.app, self.read, self.group, self.wake = app, read, group, wake

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or scope["method"] != "POST" or not path.startswith("/u/") or "/" in path[3:]:
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        body, more = b"", True
        while more and len(body) <= 65536:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        fields = {} if content_type.startswith("multipart/") else parse_qs(body[:4096].decode("utf-8", "replace"))
        if more or content_type.startswith("multipart/") or "source" in fields or scope.get("query_string"):
            replayed = False

            async def replay() -> Any:
                # Hand the body already read to the view, then the rest of the stream.
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": body, "more_body": more}
                return await receive()

            return await self.app(scope, replay, send)
        data = self.read(path[3:])
        if data is None:
            return await _plain(send, 400, INVALID.encode())
        client = scope.get("client")
        result = await self.group.submit(data, "one_click", client[0] if client else "",
                                         headers.get(b"user-agent", b"").decode("latin-1"))
        if result is None:
            return await _plain(send, 404, UNKNOWN.encode())
        self.wake()
        await _plain(send, 200, ONE_CLICK_DONE.encode(), b"text/html; charset=utf-8")


# The same headers as the routed answers (the fast path must not differ from the view).
_RAW_PAGE_HEADERS = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in PAGE_HEADERS.items()]


async def _plain(send: Any, status: int, body: bytes, content_type: bytes = b"text/plain; charset=utf-8") -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode()),
                            *_RAW_PAGE_HEADERS]})
    await send({"type": "http.response.body", "body": body})


async def method_of(request: Request) -> str:
    """Which of our forms posted (they add `source`), else `one_click` (a mail client's POST)."""
    content_type = request.headers.get("content-type", "")
    try:
        if content_type.startswith("multipart/form-data"):
            form = await request.form()
            fields = {k: str(v) for k, v in form.items()}
        else:
            body = (await request.body())[:4096].decode("utf-8", "replace")
            fields = {k: v[0] for k, v in parse_qs(body).items()}
    except Exception:  # a mangled body is still a one-click request (COMPLIANCE notes)
        fields = {}
    return {"page": "page", "preferences": "preference_center"}.get(fields.get("source", ""), "one_click")

