"""ASGI middleware: client addresses behind trusted proxies, request ids, access logs and
metrics, request body size caps, and 304 answers to conditional GETs.

Written as plain ASGI (not BaseHTTPMiddleware) so the hot path adds no extra task or copy.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Sequence
from ipaddress import IPv4Network, IPv6Network, ip_address
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from routes.errors import PROBLEM_JSON
from routes.paths import RouteIndex
from service.core.deadlines import deadline
from service.core.observability import LATENCY, REQUESTS, request_id_var

log = logging.getLogger("service.access")

_REQUEST_ID_BYTES = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")


class RequestContextMiddleware:
    """Tags each request with an `X-Request-ID` (keeping a sane incoming one), logs, counts it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"")
        request_id = incoming.decode("latin-1") if _REQUEST_ID_BYTES.match(incoming) else None
        request_id = request_id or uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            template = _template(scope)
            method = scope["method"]
            counter, latency = _series(template, method, status)
            counter.inc()
            latency.observe(elapsed)
            if log.isEnabledFor(logging.INFO):  # the record's fields cost more than the check
                ctx = scope.get("state", {}).get("ctx")
                log.info(
                    "request",
                    extra={
                        "method": method,
                        "route": template,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                        "tenant_id": str(ctx.tenant_id) if ctx else None,
                        "actor_id": str(ctx.actor_id) if ctx else None,
                    },
                )
            request_id_var.reset(token)


# The metrics' children per (route, method, status): `labels()` takes a lock and builds its key
# on every call; the routes and statuses are a small fixed set, so each pair is looked up once.
_SERIES: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def _series(template: str, method: str, status: int) -> tuple[Any, Any]:
    key = (template, method, status)
    found = _SERIES.get(key)
    if found is None:
        found = (REQUESTS.labels(template, method, str(status)), LATENCY.labels(template, method))
        if len(_SERIES) < 4096:  # methods come from clients: never grow without bound
            _SERIES[key] = found
    return found


def _template(scope: Scope) -> str:
    """The matched route's full path template (`/v1/leads/{id}`), for metrics and logs."""
    route = scope.get("route")
    if route is None:
        return "unmatched"
    index: RouteIndex | None = getattr(
        getattr(scope.get("app"), "state", None), "route_index", None
    )
    found = index.template(route) if index is not None else None
    return found or getattr(route, "path", None) or "unmatched"


class RequestDeadlineMiddleware:
    """Runs each request's database work within `REQUEST_TIMEOUT_MS` (service/core/deadlines.py).

    Server selection included: in an outage the request answers 503 (routes/errors.py) once
    its budget is spent, not after a client-wide timeout. Batch work inside a request (a lead
    export's body) lifts it per batch with `deadlines.unbounded()`.
    """

    def __init__(
        self, app: ASGIApp, seconds: float, overrides: dict[str, float | None] | None = None
    ) -> None:
        self.app = app
        self.seconds = seconds
        # Per exact path: None = batch work without a request budget (a bulk import's chunks
        # are each bounded by MONGODB_BATCH_TIMEOUT_MS, server selection by MONGODB_TIMEOUT_MS).
        self.overrides = overrides or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with deadline(self.overrides.get(scope["path"], self.seconds)):
            await self.app(scope, receive, send)


class BodySizeLimitMiddleware:
    """Refuses request bodies over a cap with 413 problem+json; some paths get a larger cap."""

    def __init__(self, app: ASGIApp, *, default: int, overrides: dict[str, int]) -> None:
        self.app = app
        self.default = default
        self.overrides = overrides

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit = self.overrides.get(scope["path"], self.default)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await _too_large(send, limit)
            return
        received = 0

        async def limited_receive() -> Message:
            # Chunked bodies have no Content-Length: count what actually arrives.
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, f"The request body exceeds {limit} bytes.")
            return message

        await self.app(scope, limited_receive, send)


async def _too_large(send: Send, limit: int) -> None:
    body = json.dumps(
        {
            "type": "about:blank",
            "title": "Content Too Large",
            "status": 413,
            "detail": f"The request body exceeds {limit} bytes.",
        }
    ).encode()
    headers: list[Any] = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})


Network = IPv4Network | IPv6Network


def client_address(peer: str, forwarded_for: Sequence[str], trusted: Sequence[Network]) -> str:
    """The client's address: `peer`, or, when `peer` is a trusted proxy, the forwarded chain
    walked from the right past every trusted proxy.

    Each proxy appends the address it got the request from, so only the entries at the right
    end, written by proxies we trust, are believed; anything to the left of the first untrusted
    address could have been written by the client itself.
    """
    nearest = peer
    for hop in [peer, *reversed(forwarded_for)]:
        try:
            address = ip_address(hop)
        except ValueError:
            return nearest  # a hop we cannot read: believe no further than the proxy before it
        if not any(address in network for network in trusted):
            return hop
        nearest = hop
    return nearest


def forwarded_chain(headers: Sequence[tuple[bytes, bytes]]) -> list[str]:
    """The addresses in `X-Forwarded-For` (or, without it, RFC 7239 `Forwarded: for=`), in order.

    `X-Forwarded-For` wins when both are present: it is what common proxies (and uvicorn's own
    proxy support) append, so a `Forwarded` header would come from the client.
    """
    xff = [v.decode("latin-1") for k, v in headers if k == b"x-forwarded-for"]
    if xff:
        return [part.strip() for line in xff for part in line.split(",") if part.strip()]
    chain: list[str] = []
    for key, value in headers:
        if key != b"forwarded":
            continue
        for element in value.decode("latin-1").split(","):
            for pair in element.split(";"):
                name, _, raw = pair.strip().partition("=")
                if name.lower() == "for":
                    chain.append(_forwarded_node(raw.strip().strip('"')))
    return chain


def _forwarded_node(node: str) -> str:
    # `192.0.2.1:4711`, `"[2001:db8::1]:4711"`, `unknown`, `_hidden`: the address part only.
    if node.startswith("["):
        return node[1 : node.find("]")] if "]" in node else node
    return node.rsplit(":", 1)[0] if node.count(":") == 1 else node


class TrustedProxyMiddleware:
    """Sets the request's client address from forwarded headers sent by `TRUSTED_PROXIES`.

    Per-address limits (login, registration) and logs then see the real client; a client that
    is not a trusted proxy cannot move itself into another bucket with a forged header.
    """

    def __init__(self, app: ASGIApp, *, trusted: Sequence[Network]) -> None:
        self.app = app
        self.trusted = tuple(trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if scope["type"] == "http" and client:
            address = client_address(client[0], forwarded_chain(scope["headers"]), self.trusted)
            if address != client[0]:
                scope["client"] = (address, 0)
        await self.app(scope, receive, send)


# Headers a 304 keeps (RFC 9110 15.4.5); the body and its description go.
_NOT_MODIFIED_KEEPS = {b"etag", b"cache-control", b"content-location", b"date", b"expires", b"vary"}


def _opaque_tags(value: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in value.split(",") if tag.strip()}


class ConditionalGetMiddleware:
    """Answers 304 Not Modified to a GET whose `If-None-Match` names the response's ETag.

    Single-resource GETs send `ETag`; comparing here (weakly, as RFC 9110 says for
    If-None-Match) serves them all without each route repeating the check.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        wanted = ",".join(v.decode("latin-1") for k, v in scope["headers"] if k == b"if-none-match")
        if not wanted:
            await self.app(scope, receive, send)
            return
        tags = _opaque_tags(wanted)
        not_modified = False

        async def send_conditional(message: Message) -> None:
            nonlocal not_modified
            if message["type"] == "http.response.start" and message["status"] == 200:
                headers = message.get("headers", [])
                etag = next((v.decode("latin-1") for k, v in headers if k == b"etag"), None)
                if etag is not None and ("*" in tags or etag.removeprefix("W/") in tags):
                    not_modified = True
                    kept = [(k, v) for k, v in headers if k in _NOT_MODIFIED_KEEPS]
                    await send({"type": "http.response.start", "status": 304, "headers": kept})
                    return
            if not_modified:
                if message["type"] == "http.response.body" and not message.get("more_body"):
                    await send({"type": "http.response.body", "body": b""})
                return
            await send(message)

        await self.app(scope, receive, send_conditional)
