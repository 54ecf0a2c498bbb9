"""A pytest plugin (`-p tests.support.problem_audit`, see pyproject.toml): it audits every answer.

Every response any test receives through httpx (the ASGI clients, Starlette's test client under
Schemathesis, real sockets) is checked as it arrives:

- a problem+json 422 must read as text for people: no Python reprs (`<CampaignType.call:
  'call'>`), no pydantic prefixes ("Value error, "), no discriminator jargon, no class names;
- a 201 must say where the new resource is (`Location`);
- the service's own 500 ("An unexpected error occurred.") must not happen at all: the test
  fails with the traceback the service logged for that request (matched by `X-Request-ID`),
  unless the test caused it on purpose: the exception passed through a function of the test
  suite (a patched-in fault) or `unittest.mock`, or the test is in `EXPECTED_500` (a reason
  each).

A test whose requests got such an answer fails, naming the request; answers outside any test
(fixtures) fail the session. `AUDIT.counts` says how much was checked.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import traceback
from collections import Counter
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import pytest

LEAKS: dict[str, re.Pattern[str]] = {
    "a Python enum repr": re.compile(r"<[A-Za-z_][\w.]*: [^>]*>"),
    "a pydantic prefix": re.compile(r"\b(?:Value error|Assertion failed), "),
    "discriminator jargon": re.compile(r"Unable to extract tag|found using '"),
    "a Python class name": re.compile(r"instance of [A-Z]\w*"),
    "a Python object repr": re.compile(r"<[\w.]+ object at 0x[0-9a-f]+>"),
    "a pydantic internal location": re.compile(r"^[a-z][a-z-]*\[.*\]$"),
    # Libraries' own wording: the API words these checks itself (service/core/errors.py).
    "phonenumbers' wording": re.compile(r"The string supplied|seem to be a phone number|\(\d\) "),
    "email-validator's wording": re.compile(
        r"value is not a valid email address|An email address|after the @-sign|special-use"
    ),
    "a raw regex": re.compile(r"should match pattern|match pattern '"),
}
# 201s that have no URL of their own yet (each documented where it is answered).
NO_LOCATION = {("POST", "/v1/billing/history")}
# Tests that get the service's 500 on purpose without a fault of their own in the traceback.
EXPECTED_500 = {
    # A patched document stamp makes the driver refuse a 17 MiB document (DocumentTooLarge,
    # raised inside PyMongo): the test checks the 500 is problem+json and stores nothing.
    "tests/test_real_mongodb.py::test_the_api_answers_problem_json_when_a_document_is_too_large",
}
TESTS = Path(__file__).resolve().parents[1]
MOCK = str(Path(logging.__file__).resolve().parent.parent / "unittest" / "mock.py")
ERRORS_LOGGER = "routes.errors"  # where the service logs each 500 with its traceback


def injected(exc: BaseException | None) -> bool:
    """Whether an exception (or one in its chain) passed through test code or a mock."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        tb: TracebackType | None = exc.__traceback__
        while tb is not None:
            name = tb.tb_frame.f_code.co_filename
            if name == MOCK or Path(name).resolve().is_relative_to(TESTS):
                return True
            tb = tb.tb_next
        exc = exc.__cause__ or exc.__context__
    return False


class Tracebacks(logging.Handler):
    """Keeps the traceback the service logs with each 500, by request id."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.by_request: dict[str | None, tuple[str, bool]] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if not record.exc_info or record.exc_info[1] is None:
            return
        from service.core.observability import request_id_var

        exc = record.exc_info[1]
        text = "".join(traceback.format_exception(exc))
        self.by_request[request_id_var.get()] = (text, injected(exc))

    def take(self, request_id: str | None) -> tuple[str, bool] | None:
        return self.by_request.pop(request_id, None) or self.by_request.pop(None, None)


TRACEBACKS = Tracebacks()


def leaks(body: Any) -> list[str]:
    """What in a 422 problem body is Python rather than text for people."""
    texts: list[str] = [str(body.get("detail", ""))]
    for error in body.get("errors") or []:
        texts.append(str(error.get("msg", "")))
        texts.extend(str(part) for part in error.get("loc", []))
    return [
        f"{name}: {text!r}" for text in texts for name, rule in LEAKS.items() if rule.search(text)
    ]


@dataclass
class Audit:
    """Findings since the last `take()`, findings outside tests, counts over the session."""

    findings: list[str] = field(default_factory=list)
    outside_tests: list[str] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    current: str = ""  # the node id of the running test

    def check(self, response: httpx.Response) -> None:
        request = response.request
        where = f"{request.method} {request.url.path}"
        if response.status_code == 500 and response.headers.get("content-type", "").startswith(
            "application/problem+json"
        ):
            self.unexpected(response, where)
        if response.status_code == 201:
            self.counts["201"] += 1
            if "location" not in response.headers and (request.method, request.url.path) not in (
                NO_LOCATION
            ):
                self.findings.append(f"{where} answered 201 without Location")
        content_type = response.headers.get("content-type", "")
        if response.status_code != 422 or not content_type.startswith("application/problem+json"):
            return
        self.counts["422"] += 1
        try:
            body = json.loads(response.content)
        except ValueError:
            self.findings.append(f"{where} answered a 422 that is not JSON")
            return
        self.findings.extend(f"{where} answered 422 with {leak}" for leak in leaks(body))

    def unexpected(self, response: httpx.Response, where: str) -> None:
        """A 500 from the service: a finding with its traceback, unless the test caused it."""
        logged = TRACEBACKS.take(response.headers.get("x-request-id"))
        if (logged is not None and logged[1]) or self.current in EXPECTED_500:
            self.counts["500 (injected)"] += 1
            return
        self.counts["500"] += 1
        text = logged[0] if logged is not None else "(no traceback logged)\n"
        self.findings.append(f"{where} answered 500; the service logged:\n{text}")

    def take(self) -> list[str]:
        found, self.findings = self.findings, []
        return found


AUDIT = Audit()


def audit_answer(
    method: str, url: str, status: int, headers: list[tuple[str, str]], content: bytes
) -> None:
    """Audit an answer that came through another transport (Schemathesis' own, in the fuzz run)."""
    request = httpx.Request(method, url)
    AUDIT.check(httpx.Response(status, headers=headers, content=content, request=request))


def pytest_configure(config: pytest.Config) -> None:
    """Wrap httpx's `send` so every answer passes the audit."""
    sync_send, async_send = httpx.Client.send, httpx.AsyncClient.send

    # Streamed responses (`stream=True`) are left alone: reading them here would consume them.
    def send(self: httpx.Client, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        response = sync_send(self, request, **kwargs)
        if not kwargs.get("stream"):
            AUDIT.check(response)
        return response

    async def asend(
        self: httpx.AsyncClient, request: httpx.Request, **kwargs: Any
    ) -> httpx.Response:
        response = await async_send(self, request, **kwargs)
        if not kwargs.get("stream"):
            AUDIT.check(response)
        return response

    httpx.Client.send = send  # type: ignore[method-assign]
    httpx.AsyncClient.send = asend  # type: ignore[method-assign]
    # Not on the root logger: the service's logging set-up replaces the root's handlers.
    errors_logger = logging.getLogger(ERRORS_LOGGER)
    errors_logger.addHandler(TRACEBACKS)

    def restore() -> None:
        httpx.Client.send = sync_send  # type: ignore[method-assign]
        httpx.AsyncClient.send = async_send  # type: ignore[method-assign]
        errors_logger.removeHandler(TRACEBACKS)

    config.add_cleanup(restore)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    AUDIT.outside_tests += AUDIT.take()  # answers to fixtures are judged at the end
    AUDIT.current = item.nodeid
    try:
        result = yield
    finally:
        AUDIT.current = ""
    found = AUDIT.take()
    if found:
        shown = "\n  ".join(found[:5] if any("answered 500" in f for f in found) else found[:20])
        raise AssertionError(f"answers a person should not get ({len(found)}):\n  {shown}")
    return result


_DIR_VAR = "PROBLEM_AUDIT_DIR"


def pytest_sessionstart(session: pytest.Session) -> None:
    # Under pytest-xdist each worker audits its own tests; the controller adds them up.
    if not hasattr(session.config, "workerinput") and os.environ.get(_DIR_VAR) is None:
        os.environ[_DIR_VAR] = tempfile.mkdtemp(prefix="problem-audit-")


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    folder = Path(os.environ[_DIR_VAR])
    worker = getattr(config, "workerinput", {}).get("workerid", "main")
    outside = AUDIT.outside_tests + AUDIT.take()
    (folder / f"{worker}.json").write_text(json.dumps({"counts": AUDIT.counts, "outside": outside}))
    if hasattr(config, "workerinput"):
        return  # the controller judges once every worker has written
    counts: Counter[str] = Counter()
    found: list[str] = []
    for path in folder.glob("*.json"):
        data = json.loads(path.read_text())
        counts.update(data["counts"])
        found += data["outside"]
    config.stash[_TOTALS] = (counts, found)
    if found:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_TOTALS = pytest.StashKey[tuple[Counter[str], list[str]]]()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if _TOTALS not in config.stash:
        return
    counts, found = config.stash[_TOTALS]
    if found:
        terminalreporter.write_line("problem audit, outside tests:\n  " + "\n  ".join(found[:20]))
    shown = ", ".join(f"{n} x {code}" for code, n in sorted(counts.items()))
    terminalreporter.write_line(f"problem audit: checked {shown or 'nothing'}")
