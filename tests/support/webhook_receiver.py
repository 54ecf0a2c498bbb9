"""A real HTTP server on loopback that records webhook requests (for delivery tests)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from service.core.settings import Settings
from tests.support.helpers import Account


@dataclass
class Received:
    """One request as the receiver got it."""

    headers: dict[str, str]
    body: bytes
    status: int


@dataclass
class Receiver:
    """Requests received so far; `answer(n)` picks the status of the n-th request (0-based)."""

    url: str
    answer: Callable[[int], int] = lambda n: 204
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ok(self) -> list[Received]:
        """The requests answered with a 2xx."""
        with self.lock:
            return [r for r in self.requests if 200 <= r.status < 300]


@contextmanager
def receiver(answer: Callable[[int], int] | None = None) -> Iterator[Receiver]:
    """Serve on 127.0.0.1 (a free port) in a thread until the block ends."""
    box: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            rec = box["r"]
            with rec.lock:
                status = rec.answer(len(rec.requests))
                rec.requests.append(Received(dict(self.headers.items()), body, status))
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    box["r"] = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}/hook")
    if answer is not None:
        box["r"].answer = answer
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield box["r"]
    finally:
        server.shutdown()
        server.server_close()


# -- what the webhook tests share (test_webhooks, test_privacy_webhooks, test_first_hour) --


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Fast loops and short retry delays, so deliveries happen within a test."""
    return settings.model_copy(
        update={
            "worker_poll_seconds": 0.05,
            "webhook_retry_base_seconds": 0.05,
            "webhook_retry_max_seconds": 0.2,
            "webhook_timeout_seconds": 2.0,
        }
    )


async def subscribe(account: Account, url: str, types: list[str] | None = None) -> dict[str, Any]:
    """Subscribe `url` to these event types (every one by default); the created webhook."""
    r = await account.client.post("/v1/webhooks", json={"url": url, "event_types": types or ["*"]})
    assert r.status_code == 201, r.text
    return dict(r.json())


async def until(check: Callable[[], bool], seconds: float = 15.0) -> None:
    """Wait until `check()` holds (deliveries are asynchronous); fail after `seconds`."""
    for _ in range(int(seconds / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out waiting for deliveries")


async def delivery_log(owner: Account, hook_id: str, rows: int) -> list[dict[str, Any]]:
    """The endpoint's delivery log once it holds `rows` rows.

    A receiver sees a request before the dispatcher has written its answer to the log,
    so a test that counted received requests must still wait for the log.
    """
    items: list[dict[str, Any]] = []
    for _ in range(300):
        items = (await owner.client.get(f"/v1/webhooks/{hook_id}/deliveries")).json()["items"]
        if len(items) >= rows:
            return items
        await asyncio.sleep(0.05)
    raise AssertionError(f"the delivery log holds {len(items)} rows, not {rows}")


def verified(rec: Receiver, secret: str) -> list[dict[str, Any]]:
    """Every 2xx-answered delivery, its signature verified with standardwebhooks."""
    hook = Webhook(secret)
    out = []
    for r in rec.ok():
        body = hook.verify(r.body, r.headers)
        assert r.headers["webhook-id"] == body["data"]["id"]
        out.append(body)
    return out
