"""The OpenAPI document: clean for client generators, and true to what the service answers."""

from __future__ import annotations

import re
from importlib.metadata import version
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from routes.app import create_app

HTTP_METHODS = {"get", "put", "post", "delete", "patch"}


@pytest.fixture
async def schema(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]


async def test_one_version_string(client: httpx.AsyncClient, schema: dict[str, Any]) -> None:
    package = version("lead-ignite-data-service")
    assert schema["info"]["version"] == package
    assert (await client.get("/health")).json()["version"] == package


async def test_every_api_path_is_under_v1(schema: dict[str, Any]) -> None:
    outside = {p for p in schema["paths"] if not p.startswith("/v1/")}
    assert outside == {"/", "/health", "/ready", "/metrics"}


async def test_operation_ids_are_resource_then_action(schema: dict[str, Any]) -> None:
    ids = [op["operationId"] for _, _, op in _operations(schema)]
    assert len(ids) == len(set(ids)), "operation ids must be unique"
    assert all(re.fullmatch(r"[a-z]+(?:_[a-z0-9]+)+", i) for i in ids), ids
    by_route = {(m, p): op["operationId"] for p, m, op in _operations(schema)}
    assert by_route[("post", "/v1/leads")] == "leads_create"
    assert by_route[("get", "/v1/leads")] == "leads_list"
    assert by_route[("get", "/v1/campaigns/{id}")] == "campaigns_get"
    assert by_route[("post", "/v1/campaigns/{id}/restore")] == "campaigns_restore"
    assert by_route[("get", "/v1/saved-searches/{id}/history")] == "saved_searches_history"
    assert by_route[("post", "/v1/auth/token")] == "auth_token"


async def test_component_names_read_well(schema: dict[str, Any]) -> None:
    names = set(schema["components"]["schemas"])
    assert all(re.fullmatch(r"[A-Z][A-Za-z0-9]*", n) for n in names), sorted(names)
    assert {"LeadRead", "LeadCreate", "LeadPage", "CampaignRead", "CampaignPage"} <= names
    assert {"EventRead", "AuthTokenForm", "ValidationProblem", "ConflictProblem"} <= names
    lead_page = schema["components"]["schemas"]["LeadPage"]
    assert lead_page["properties"]["items"]["items"] == {"$ref": "#/components/schemas/LeadRead"}
    assert "discriminator" in schema["components"]["schemas"]["LeadRead"]


async def test_tags_and_descriptions(schema: dict[str, Any]) -> None:
    defined = {t["name"]: t.get("description") for t in schema["tags"]}
    assert all(defined.values())
    for path, method, operation in _operations(schema):
        assert operation.get("description"), f"{method} {path} has no description"
        assert operation["tags"] and set(operation["tags"]) <= set(defined), (path, method)


async def test_errors_are_typed_problems(schema: dict[str, Any]) -> None:
    ref = "#/components/schemas/"
    for path, method, operation in _operations(schema):
        for code, response in operation["responses"].items():
            if int(code) < 400:
                continue
            expected = {
                "409": "ConflictProblem",
                "422": "ValidationProblem",
                "429": "RetryProblem",
                "503": "RetryProblem",
            }.get(code, "Problem")
            content = response["content"]
            assert list(content) == ["application/problem+json"], (path, method, code)
            assert content["application/problem+json"]["schema"] == {"$ref": ref + expected}
        if "requestBody" in operation:
            assert {"400", "415"} <= set(operation["responses"]), (path, method)
    components = schema["components"]["schemas"]
    item = components["ValidationProblem"]["properties"]["errors"]["items"]
    assert item == {"$ref": ref + "ProblemError"}
    assert {"loc", "msg", "type"} <= set(components["ProblemError"]["required"])
    assert {"existing_id", "field"} <= set(components["ConflictProblem"]["properties"])
    assert "retry_after" in components["RetryProblem"]["properties"]


async def test_bulk_rows_are_documented_as_lead_creates(schema: dict[str, Any]) -> None:
    # Any row is taken (a bad one is reported in `failed`), so the schema says "LeadCreate, or
    # anything": a fuzzer expects no 422 for a bad row, a client still gets the lead types.
    body = schema["components"]["schemas"]["LeadBulkImport"]["properties"]["leads"]
    assert body["items"]["anyOf"] == [{"$ref": "#/components/schemas/LeadCreate"}, {}]
    assert "failed" in body["items"]["description"]
    failed = schema["components"]["schemas"]["BulkFailure"]["properties"]["errors"]
    assert failed["items"] == {"$ref": "#/components/schemas/ProblemError"}


async def test_response_headers_are_declared_where_sent(schema: dict[str, Any]) -> None:
    def headers(path: str, method: str, code: str) -> set[str]:
        return set(schema["paths"][path][method]["responses"][code].get("headers", {}))

    assert {"ETag", "Location", "X-Request-ID"} <= headers("/v1/leads", "post", "201")
    assert {"ETag", "Location", "Idempotent-Replayed"} <= headers("/v1/events", "post", "201")
    assert "ETag" in headers("/v1/leads/{id}", "get", "200")
    assert "ETag" in headers("/v1/leads/{id}/restore", "post", "200")
    assert "ETag" not in headers("/v1/leads", "get", "200")
    assert "Retry-After" in headers("/v1/auth/token", "post", "429")
    assert "Retry-After" in headers("/v1/leads", "get", "503")
    for path, method, operation in _operations(schema):
        for code, response in operation["responses"].items():
            assert "X-Request-ID" in response["headers"], (path, method, code)
        if "201" in operation["responses"] and path != "/v1/billing/history":
            assert "Location" in operation["responses"]["201"]["headers"], (path, method)
    # Single-resource GETs take If-None-Match and document 304.
    get_lead = schema["paths"]["/v1/leads/{id}"]["get"]
    assert "If-None-Match" in {p["name"] for p in get_lead["parameters"]}
    assert "304" in get_lead["responses"]
    assert "304" not in schema["paths"]["/v1/leads"]["get"]["responses"]


async def test_if_match_is_documented_as_one_strong_or_star(schema: dict[str, Any]) -> None:
    patch = schema["paths"]["/v1/leads/{id}"]["patch"]
    if_match = next(p for p in patch["parameters"] if p["name"].lower() == "if-match")
    pattern = re.compile(if_match["schema"]["pattern"])
    assert all(pattern.fullmatch(v) for v in ("*", '"3"', 'W/"3"', "3"))
    assert not any(pattern.fullmatch(v) for v in ('"3", "4"', "null", '"3'))


async def test_metrics_document_their_token(settings: Any, database: Any) -> None:
    # The document is the one served: with a token, /metrics needs it and never answers 404.
    on = settings.model_copy(update={"metrics_token": SecretStr("m" * 32)})
    metrics = create_app(settings=on, database=database).openapi()["paths"]["/metrics"]["get"]
    assert metrics["security"] == [{"MetricsToken": []}]
    assert {"200", "401"} <= set(metrics["responses"])
    assert not {"403", "404"} & set(metrics["responses"])


async def test_metrics_off_are_documented_as_a_404_without_a_token(
    schema: dict[str, Any], client: httpx.AsyncClient
) -> None:
    metrics = schema["paths"]["/metrics"]["get"]
    assert metrics["security"] == []  # no Authorization to send: the answer is 404 anyway
    assert "404" in metrics["responses"] and "401" not in metrics["responses"]
    assert "MetricsToken" not in schema["components"].get("securitySchemes", {})
    assert (await client.get("/metrics")).status_code == 404
