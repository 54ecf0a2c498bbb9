"""TRUSTED_PROXIES: forwarded client addresses are believed from trusted proxies only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from ipaddress import ip_network
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from routes.middleware import client_address, forwarded_chain
from service.core import throttle
from service.core.settings import Settings
from service.main import create_app
from tests.support.helpers import assert_problem

PROXY = "10.0.0.7"
TRUSTED = [ip_network("10.0.0.0/24"), ip_network("192.168.1.1")]


def test_settings_read_comma_separated_cidrs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUSTED_PROXIES", "10.0.0.0/24, 192.168.1.1,2001:db8::/32")
    settings = Settings(jwt_secret="x" * 32, fernet_key="A" * 43 + "=")
    assert [str(n) for n in settings.trusted_proxies] == [
        "10.0.0.0/24",
        "192.168.1.1/32",
        "2001:db8::/32",
    ]
    monkeypatch.setenv("TRUSTED_PROXIES", "")
    assert Settings(jwt_secret="x" * 32, fernet_key="A" * 43 + "=").trusted_proxies == []
    monkeypatch.setenv("TRUSTED_PROXIES", "not-an-address")
    with pytest.raises(ValueError, match="trusted_proxies"):
        Settings(jwt_secret="x" * 32, fernet_key="A" * 43 + "=")


def test_the_chain_is_walked_from_the_right_past_trusted_proxies() -> None:
    # An untrusted peer: its headers are ignored, whatever they say.
    assert client_address("203.0.113.9", ["198.51.100.1"], TRUSTED) == "203.0.113.9"
    # A trusted peer: the rightmost address it did not itself get from a trusted proxy.
    assert client_address(PROXY, ["198.51.100.1"], TRUSTED) == "198.51.100.1"
    assert client_address(PROXY, ["6.6.6.6", "198.51.100.1", "10.0.0.3"], TRUSTED) == (
        "198.51.100.1"
    )
    # Only trusted hops: the leftmost of them; no header: the peer itself.
    assert client_address(PROXY, ["10.0.0.3"], TRUSTED) == "10.0.0.3"
    assert client_address(PROXY, [], TRUSTED) == PROXY
    # A hop that is not an address stops the walk at the proxy that reported it.
    assert client_address(PROXY, ["198.51.100.1", "garbage"], TRUSTED) == PROXY
    assert client_address("testclient", ["198.51.100.1"], TRUSTED) == "testclient"


def test_forwarded_headers_are_parsed() -> None:
    xff = [(b"x-forwarded-for", b"1.1.1.1, 2.2.2.2"), (b"x-forwarded-for", b"3.3.3.3")]
    assert forwarded_chain(xff) == ["1.1.1.1", "2.2.2.2", "3.3.3.3"]
    rfc7239 = [
        (b"forwarded", b'for=192.0.2.60;proto=http, for="[2001:db8::1]:4711", for=5.5.5.5:80')
    ]
    assert forwarded_chain(rfc7239) == ["192.0.2.60", "2001:db8::1", "5.5.5.5"]
    # X-Forwarded-For wins: it is what the proxies append, a Forwarded could be the client's.
    assert forwarded_chain([*rfc7239, *xff]) == ["1.1.1.1", "2.2.2.2", "3.3.3.3"]


@pytest.fixture
async def proxied_app(settings: Settings, database: Any) -> AsyncIterator[FastAPI]:
    """The app behind a trusted proxy range."""
    configured = settings.model_copy(update={"trusted_proxies": TRUSTED})
    app = create_app(settings=configured, database=database)
    async with app.router.lifespan_context(app):
        yield app


def _client(app: FastAPI, peer: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=(peer, 5000))
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def _exhaust_login_cap(
    client: httpx.AsyncClient, limit: int, headers: dict[str, str]
) -> None:
    for i in range(limit):
        r = await client.post(
            "/v1/auth/token", data={"username": f"nobody{i}", "password": "x"}, headers=headers
        )
        assert r.status_code == 401, r.text


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    # Mid-window, so a minute boundary cannot reset the per-address count during the test.
    frozen = (datetime.now(UTC) + timedelta(minutes=1)).replace(second=30, microsecond=0)
    monkeypatch.setattr(throttle, "utcnow", lambda: frozen)


@pytest.mark.usefixtures("frozen_clock")
async def test_behind_a_trusted_proxy_each_client_has_its_own_bucket(
    proxied_app: FastAPI, settings: Settings
) -> None:
    limit = settings.register_max_per_minute
    async with _client(proxied_app, PROXY) as via_proxy:
        await _exhaust_login_cap(via_proxy, limit, {"X-Forwarded-For": "198.51.100.1"})
        blocked = await via_proxy.post(
            "/v1/auth/token",
            data={"username": "n", "password": "x"},
            headers={"X-Forwarded-For": "198.51.100.1"},
        )
        assert_problem(blocked, 429)
        # Another client behind the same proxy is not throttled with the first.
        other = await via_proxy.post(
            "/v1/auth/token",
            data={"username": "n", "password": "x"},
            headers={"X-Forwarded-For": "198.51.100.2"},
        )
        assert other.status_code == 401


@pytest.mark.usefixtures("frozen_clock")
async def test_an_untrusted_client_cannot_spoof_its_address(
    proxied_app: FastAPI, settings: Settings
) -> None:
    limit = settings.register_max_per_minute
    async with _client(proxied_app, "203.0.113.9") as direct:
        # Each request claims another address; all count against the real peer.
        for i in range(limit):
            r = await direct.post(
                "/v1/auth/token",
                data={"username": f"nobody{i}", "password": "x"},
                headers={"X-Forwarded-For": f"198.51.100.{i}", "Forwarded": f"for=192.0.2.{i}"},
            )
            assert r.status_code == 401
        spoofed = await direct.post(
            "/v1/auth/token",
            data={"username": "n", "password": "x"},
            headers={"X-Forwarded-For": "198.51.100.250"},
        )
        assert_problem(spoofed, 429)
    # Through the trusted proxy, a client cannot hide behind addresses it prepends either.
    async with _client(proxied_app, PROXY) as via_proxy:
        await _exhaust_login_cap(via_proxy, limit, {"X-Forwarded-For": "6.6.6.6, 198.51.100.7"})
        prepended = await via_proxy.post(
            "/v1/auth/token",
            data={"username": "n", "password": "x"},
            headers={"X-Forwarded-For": "7.7.7.7, 198.51.100.7"},
        )
        assert_problem(prepended, 429)


@pytest.mark.usefixtures("frozen_clock")
async def test_without_trusted_proxies_forwarded_headers_are_ignored(
    app: FastAPI, settings: Settings
) -> None:
    limit = settings.register_max_per_minute
    async with _client(app, PROXY) as peer:
        await _exhaust_login_cap(peer, limit, {"X-Forwarded-For": "198.51.100.1"})
        r = await peer.post(
            "/v1/auth/token",
            data={"username": "n", "password": "x"},
            headers={"X-Forwarded-For": "198.51.100.2"},
        )
        assert_problem(r, 429)
