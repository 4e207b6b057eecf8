"""Request body limits: too large or unauthenticated bodies are refused before the app reads them."""

from __future__ import annotations

import socket
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from sendwell.access.service import create_token
from sendwell.db.session import transaction
from sendwell.runtime import Runtime
from sendwell.web.app import create_app
from sendwell.web.limits import API_BYTES, RECIPIENT_BYTES, WEBHOOK_BYTES

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

MB = 1024 * 1024


class Counting:
    """The real app behind a wrapper that counts the body bytes the app pulled from the server."""

    def __init__(self, app: Any) -> None:
        self.app, self.read = app, 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def counted() -> Any:
            message = await receive()
            self.read += len(message.get("body", b""))
            return message

        await self.app(scope, counted, send)


@pytest.fixture
def app(runtime: Runtime) -> Counting:
    return Counting(create_app(runtime, outbox=False))


@pytest.fixture
def client(app: Counting) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


def rss() -> int:
    """This process's resident memory in bytes (the TestClient runs the app in this process)."""
    with open("/proc/self/status", encoding="ascii") as fh:
        line = next(line for line in fh if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def test_a_50_mb_bulk_upsert_without_a_token_is_refused_unread(client: TestClient, app: Counting) -> None:
    body = b"[" + b'{"email": "a@example.com"},' * (50 * MB // 27) + b"{}]"
    before = rss()
    response = client.post("/api/v1/contacts/bulk-upsert", content=body,
                           headers={"Content-Type": "application/json"})
    assert response.status_code in (401, 413), response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert app.read == 0
    assert rss() - before < 20 * MB


@pytest.mark.parametrize("authorization", [None, "Bearer swk_not-a-real-token", "Basic dXNlcjpwYXNz"])
def test_an_api_body_under_the_limit_without_a_live_token_gets_401_unread(
        client: TestClient, app: Counting, authorization: str | None) -> None:
    headers = {"Content-Type": "application/json"} | ({"Authorization": authorization} if authorization else {})
    response = client.post("/api/v1/contacts/bulk-upsert", content=b"[" + b" " * (5 * MB) + b"]", headers=headers)
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert app.read == 0


def test_a_token_still_gets_its_bulk_upsert_and_the_api_limit_applies(
        client: TestClient, app: Counting, runtime: Runtime) -> None:
    with transaction(runtime.factory) as session:
        secret = create_token(session, name="limits", scopes=["contacts:write"]).secret
    headers = {"Authorization": f"Bearer {secret}"}
    ok = client.post("/api/v1/contacts/bulk-upsert", json=[{"email": "limits@example.com"}], headers=headers)
    assert ok.status_code == 200, ok.text
    app.read = 0
    big = client.post("/api/v1/contacts/bulk-upsert", content=b" " * (API_BYTES + 1),
                      headers=headers | {"Content-Type": "application/json"})
    assert big.status_code == 413
    assert big.headers["content-type"] == "application/problem+json"
    assert app.read == 0


@pytest.mark.parametrize(("path", "limit"), [("/webhooks/ses", WEBHOOK_BYTES), ("/webhooks/sendgrid", WEBHOOK_BYTES),
                                             ("/u/some-token", RECIPIENT_BYTES), ("/p/some-token", RECIPIENT_BYTES),
                                             ("/admin/login", 1 * MB)])
def test_a_declared_length_over_the_route_limit_gets_413_unread(
        client: TestClient, app: Counting, path: str, limit: int) -> None:
    response = client.post(path, content=b"x" * (limit + 1), headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert app.read == 0


@pytest.fixture
def server(app: Counting) -> Iterator[int]:
    """The app served by uvicorn on a loopback port, for bodies sent chunked over a real socket."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert srv.started
    yield port
    srv.should_exit = True
    thread.join(10)


CHUNK = 256 * 1024


def post_chunked(port: int, path: str, total: int, headers: str = "") -> bytes:
    """Send `total` bytes as a chunked POST until the server answers or hangs up; the raw answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                     f"{headers}Transfer-Encoding: chunked\r\n\r\n".encode())
        try:
            for _ in range(total // CHUNK):
                conn.sendall(b"%x\r\n%s\r\n" % (CHUNK, b" " * CHUNK))
            conn.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server answered and closed while we were still sending
        answer = b""
        try:
            while data := conn.recv(65536):
                answer += data
                if b"\r\n\r\n" in answer:
                    break
        except OSError:
            pass
        return answer


def test_a_chunked_webhook_body_is_cut_at_the_limit(server: int, app: Counting) -> None:
    answer = post_chunked(server, "/webhooks/ses", 20 * MB)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert app.read <= WEBHOOK_BYTES + CHUNK


def test_a_chunked_api_body_without_a_token_gets_401_unread(server: int, app: Counting) -> None:
    answer = post_chunked(server, "/api/v1/contacts/bulk-upsert", 10 * MB)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert app.read == 0


def test_a_chunked_api_body_with_a_token_is_cut_at_the_limit(server: int, app: Counting, runtime: Runtime) -> None:
    with transaction(runtime.factory) as session:
        secret = create_token(session, name="limits", scopes=["contacts:write"]).secret
    answer = post_chunked(server, "/api/v1/contacts/bulk-upsert", 30 * MB, f"Authorization: Bearer {secret}\r\n")
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"application/problem+json" in answer
    assert app.read <= API_BYTES + CHUNK
