"""service/database.py: what connecting sets up around the client."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from service.core.settings import Settings
from service.database import EMBEDDED_SWITCH_INTERVAL, connect


@pytest.fixture
def switch_interval() -> Iterator[None]:
    """The interpreter's switch interval, put back after the test (it is process-wide)."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.005)
    yield
    sys.setswitchinterval(before)


@pytest.mark.usefixtures("switch_interval")
async def test_the_embedded_engine_gets_a_short_switch_interval() -> None:
    """Issue 27: with the engine on a thread of this process, the event loop waits at most
    1 ms for the GIL per wake-up (5 ms by default); a shorter one set elsewhere is kept."""
    database = connect(Settings(mongodb_url=None, embedded_db_path=""))
    try:
        assert sys.getswitchinterval() == pytest.approx(EMBEDDED_SWITCH_INTERVAL, abs=1e-5)
        sys.setswitchinterval(0.0002)
        await database.close()
        database = connect(Settings(mongodb_url=None, embedded_db_path=""))
        assert sys.getswitchinterval() == pytest.approx(0.0002, abs=1e-5)
    finally:
        await database.close()


@pytest.mark.usefixtures("switch_interval")
async def test_a_server_client_leaves_the_switch_interval_alone() -> None:
    """No engine thread in this process: nothing to hand the GIL back from."""
    database = connect(Settings(mongodb_url="mongodb://127.0.0.1:1/", mongodb_timeout_ms=1500))
    try:
        assert sys.getswitchinterval() == pytest.approx(0.005, abs=1e-5)
    finally:
        await database.close()
