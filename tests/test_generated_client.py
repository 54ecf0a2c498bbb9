"""A client generated from the OpenAPI document (openapi-python-client) works against the app."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from uuid import uuid4

import httpx
import pytest
from fastapi import FastAPI

GENERATOR = Path(sys.executable).parent / "openapi-python-client"


@pytest.fixture
def generated(app: FastAPI, tmp_path: Path) -> Iterator[ModuleType]:
    """The generated client package, importable for this test only."""
    document = tmp_path / "openapi.json"
    document.write_text(json.dumps(app.openapi()))
    package = f"lead_ignite_client_{uuid4().hex[:8]}"
    # Its ruff post-hooks run from the venv that runs the tests.
    env = {**os.environ, "PATH": f"{GENERATOR.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    run = subprocess.run(
        [
            *(str(GENERATOR), "generate", "--path", str(document), "--meta", "none"),
            *("--output-path", str(tmp_path / package)),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    # A clean document generates without warnings (a skipped schema or endpoint would be one).
    assert "Warning" not in run.stdout, run.stdout
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module(package)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m.startswith(package)]:
            del sys.modules[name]


def _module(package: ModuleType, name: str) -> Any:
    return importlib.import_module(f"{package.__name__}.{name}")


async def test_a_generated_client_runs_a_workflow(generated: ModuleType, app: FastAPI) -> None:
    api = lambda name: _module(generated, f"api.{name}")  # noqa: E731
    models = _module(generated, "models")
    transport = httpx.ASGITransport(app=app)
    anonymous = generated.Client(base_url="http://test", httpx_args={"transport": transport})

    registered = await api("auth.auth_register").asyncio_detailed(
        client=anonymous,
        body=models.RegisterRequest(
            username="gen", email="gen@example.com", password="long-password-123"
        ),
    )
    assert registered.status_code == 201, registered.content
    assert registered.headers["location"] == f"/v1/users/{registered.parsed.id}"
    token = await api("auth.auth_token").asyncio(
        client=anonymous,
        body=models.AuthTokenForm(username="gen", password="long-password-123"),
    )
    assert isinstance(token, models.TokenResponse)
    client = generated.AuthenticatedClient(
        base_url="http://test", token=token.access_token, httpx_args={"transport": transport}
    )

    created = await api("leads.leads_create").asyncio_detailed(
        client=client,
        body=models.GenericLeadCreate(type_="generic", email="ana@example.com", first_name="Ana"),
    )
    assert created.status_code == 201
    lead = created.parsed
    assert isinstance(lead, models.GenericLeadRead) and lead.email == "ana@example.com"
    assert created.headers["etag"] == '"1"'

    updated = await api("leads.leads_update").asyncio(
        lead.id, client=client, body=models.LeadUpdate(last_name="Ruiz"), if_match='"1"'
    )
    assert isinstance(updated, models.GenericLeadRead) and updated.version == 2
    stale = await api("leads.leads_update").asyncio(
        lead.id, client=client, body=models.LeadUpdate(last_name="X"), if_match='"1"'
    )
    assert isinstance(stale, models.Problem) and stale.status == 412

    clash = await api("leads.leads_create").asyncio(
        client=client, body=models.GenericLeadCreate(type_="generic", email="ANA@example.com")
    )
    assert isinstance(clash, models.ConflictProblem)
    assert clash.existing_id == lead.id and clash.field == "email"

    page = await api("leads.leads_list").asyncio(client=client)
    assert isinstance(page, models.LeadPage)
    assert [item.id for item in page.items] == [lead.id]

    bulk = await api("leads.leads_bulk_import").asyncio(
        client=client,
        body=models.LeadBulkImport(
            leads=[
                models.GenericLeadCreate(type_="generic", phone="+14155550100"),
                models.MLSLeadCreate(type_="mls", mls_id="MLS-1"),
            ]
        ),
    )
    assert isinstance(bulk, models.LeadBulkResult)
    assert (bulk.created, bulk.duplicates, bulk.failed) == (2, 0, [])

    invalid = await api("leads.leads_list").asyncio(client=client, limit=500)
    assert isinstance(invalid, models.ValidationProblem)
    assert invalid.errors[0].loc == ["query", "limit"]
