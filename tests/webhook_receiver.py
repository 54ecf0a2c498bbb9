"""A real HTTP server on loopback that records webhook requests (for delivery tests)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


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
