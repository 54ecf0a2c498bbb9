"""The OpenAPI document, shaped for people and for client generators.

- Operation ids are `<resource>_<action>` (`leads_create`, `campaigns_list`), made here from
  each route's tag and function name, not typed per route.
- Component names read well: a discriminated union is one named schema (`LeadRead`), a page
  of it `LeadPage`, a form body `AuthTokenForm`.
- Every error is problem+json with a typed body: `ValidationProblem` (422), `ConflictProblem`
  (409), `RetryProblem` (429, 503), `Problem` otherwise.
- Response headers are declared where they are sent: `X-Request-ID` on every response;
  `ETag`, `Location` and `Idempotent-Replayed` on the operations whose code calls
  `set_etag`, `set_location` and `set_replayed` (routes/deps.py), so the document follows the
  code; `Retry-After` on 429 and 503. GETs that send an ETag take `If-None-Match` (304).

`python -m routes.openapi` prints the document (what `make lint` gives Spectral).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.encoders import jsonable_encoder
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts

from routes.deps import CREDENTIAL_SCHEMES, get_context
from schemas.common import ConflictProblem, Problem, RetryProblem, ValidationProblem

TAGS: list[dict[str, str]] = [
    {"name": "health", "description": "Liveness, readiness and Prometheus metrics."},
    {"name": "auth", "description": "Registration (a new tenant, or joining one) and login."},
    {"name": "users", "description": "The caller's user aggregate, 2FA, and the tenant's users."},
    {"name": "api-keys", "description": "Keys for internal services (shown once)."},
    {"name": "teams", "description": "Teams, their members and their invitations."},
    {"name": "campaigns", "description": "Call, social, text and email campaigns and their leads."},
    {"name": "leads", "description": "MLS and generic leads: dedupe, bulk import, timeline."},
    {"name": "events", "description": "Touchpoints (immutable facts), idempotent ingestion."},
    {"name": "blogs", "description": "Blog plans, schedules, the calendar and publishing."},
    {"name": "kanban", "description": "The caller's kanban board: states and tasks."},
    {"name": "research", "description": "Research topics and their results."},
    {"name": "ai", "description": "The caller's AI configuration and context; model usage."},
    {"name": "billing", "description": "Subscription, billing info, payment methods, history."},
    {"name": "integrations", "description": "Third-party integrations (write-only credentials)."},
    {"name": "saved searches", "description": "Named filters over leads, campaigns or events."},
    {"name": "analytics", "description": "Campaign and tenant analytics (aggregation pipelines)."},
    {"name": "audit", "description": "The tenant's change journal, for admins."},
    {"name": "read models", "description": "Precomputed views (CQRS projections)."},
    {"name": "changes", "description": "The tenant's change feed, oldest first, resumable."},
    {"name": "webhooks", "description": "Signed deliveries of changes (Standard Webhooks)."},
    {"name": "tenant", "description": "The tenant's settings: region, time zone, quiet hours."},
    {"name": "suppressions", "description": "The tenant's do-not-contact list, per channel."},
]

_ERROR_TITLES = {
    400: "The request body could not be parsed",
    401: "Missing, invalid or expired credentials",
    403: "The caller's role is too low",
    404: "Not found (or another tenant's)",
    405: "Method not allowed",
    409: "Conflict",
    412: "If-Match names another version",
    413: "Request body too large",
    415: "The body's media type is not the one this operation reads",
    422: "Invalid input",
    429: "Too many requests",
    503: "The database is unavailable",
}
_PUBLIC = {401, 404, 413, 422, 429, 503}
_AUTHENTICATED = _PUBLIC | {401, 403, 409, 412}
_PROBLEMS = {409: ConflictProblem, 422: ValidationProblem, 429: RetryProblem, 503: RetryProblem}
# The security schemes of callers (routes/deps.py); `/metrics` has a token of its own.
_API_CREDENTIALS = {"HTTPBearer", "APIKeyHeader"}
_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options", "trace"})

HEADERS: dict[str, dict[str, Any]] = {
    "X-Request-ID": {
        "description": "The request's id (a sane incoming `X-Request-ID` is kept); in the logs.",
        "schema": {"type": "string", "maxLength": 128},
    },
    "ETag": {
        "description": 'The resource\'s version as a strong entity-tag (`"3"`), for `If-Match`.',
        "schema": {"type": "string"},
    },
    "Location": {
        "description": "The path of the created resource.",
        "schema": {"type": "string"},
    },
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer", "minimum": 1},
    },
    "Idempotent-Replayed": {
        "description": "`true` when this is the stored answer to an earlier request with the "
        "same `Idempotency-Key`; absent on a first answer.",
        "schema": {"type": "string", "enum": ["true"]},
    },
}
# Header name → the routes/deps.py helper whose call makes an operation send it.
_SENT_BY = {"ETag": "set_etag", "Location": "set_location", "Idempotent-Replayed": "set_replayed"}
_IF_NONE_MATCH = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "description": "An ETag you hold (or `*`): 304 Not Modified, without a body, while it is "
    "current.",
    "schema": {"type": "string"},
}


# -- operation ids ------------------------------------------------------------------------------


def _slug(tag: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", tag.lower()).strip("_")


def _word_forms(resource: str) -> set[str]:
    """The words naming a resource, singular and plural (`saved_searches` → saved, search…)."""
    forms = {"resource"}
    for word in resource.split("_"):
        forms |= {word, word.removesuffix("s"), word.removesuffix("es")}
        if word.endswith("ies"):
            forms.add(word[:-3] + "y")
    return forms


def operation_id(route: APIRoute) -> str:
    """`<resource>_<action>`: the tag, then the function name without the resource's words."""
    resource = _slug(str(route.tags[0])) if route.tags else "api"
    forms = _word_forms(resource)
    action = "_".join(w for w in route.name.lower().split("_") if w and w not in forms)
    if not action:  # `health` in `health`: name the verb
        action = sorted(route.methods or {"get"})[0].lower()
    return f"{resource}_{action}"


# -- component names ----------------------------------------------------------------------------

_REF = "#/components/schemas/"


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _union_name(refs: list[str]) -> str:
    """The common CamelCase suffix of the members' names (`CallCampaignRead`… → CampaignRead)."""
    names = [r.removeprefix(_REF) for r in refs]
    suffix = names[0]
    for name in names[1:]:
        while not name.endswith(suffix):
            suffix = suffix[1:]
    suffix = suffix[next((i for i, c in enumerate(suffix) if c.isupper()), len(suffix)) :]
    return suffix or "Or".join(names)


def _hoist_unions(schema: dict[str, Any], components: dict[str, Any]) -> None:
    """Name each inline discriminated union once (`LeadRead`) and refer to it everywhere."""
    named: dict[str, str] = {}
    already_named = {id(component) for component in components.values()}
    for node in list(_walk(schema)):
        options = node.get("oneOf")
        if not options or "discriminator" not in node or id(node) in already_named:
            continue
        refs = [o.get("$ref") for o in options if isinstance(o, dict)]
        if not all(refs) or len(refs) != len(options):
            continue
        key = json.dumps({"oneOf": options, "discriminator": node["discriminator"]}, sort_keys=True)
        name = named.get(key)
        if name is None:
            name = _union_name([str(r) for r in refs])
            while name in components:
                name += "Union"
            components[name] = {"oneOf": options, "discriminator": node["discriminator"]}
            named[key] = name
        for member in ("oneOf", "discriminator"):
            node.pop(member)
        node["$ref"] = _REF + name


def _readable_name(name: str, schema: dict[str, Any], forms: set[str]) -> str | None:
    """A better name for a generated component (`Page_…_` → LeadPage, `Body_…` → …Form)."""
    if name.startswith("Page_"):
        items = schema.get("properties", {}).get("items", {}).get("items", {})
        ref = str(items.get("$ref", ""))
        if ref.startswith(_REF):
            return ref.removeprefix(_REF).removesuffix("Read") + "Page"
    if name.startswith("Body_"):
        words = name.removeprefix("Body_").split("_")
        return "".join(w.capitalize() for w in words) + ("Form" if name in forms else "Body")
    if not re.fullmatch(r"[A-Z][A-Za-z0-9]*", name):
        return "".join(w[:1].upper() + w[1:] for w in re.split(r"[^A-Za-z0-9]+", name) if w)
    return None


def _form_bodies(schema: dict[str, Any]) -> set[str]:
    """The components that are form request bodies."""
    found = set()
    for item in schema.get("paths", {}).values():
        for operation in item.values():
            content = (
                operation.get("requestBody", {}).get("content", {})
                if isinstance(operation, dict)
                else {}
            )
            for media_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
                ref = str(content.get(media_type, {}).get("schema", {}).get("$ref", ""))
                if ref.startswith(_REF):
                    found.add(ref.removeprefix(_REF))
    return found


def _rename_components(schema: dict[str, Any], components: dict[str, Any]) -> None:
    renames: dict[str, str] = {}
    forms = _form_bodies(schema)
    for name, component in components.items():
        better = _readable_name(name, component, forms)
        if better and better not in components and better not in renames.values():
            renames[name] = better
    if not renames:
        return
    for node in _walk(schema):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_REF) and ref[len(_REF) :] in renames:
            node["$ref"] = _REF + renames[ref[len(_REF) :]]
    for old, new in renames.items():
        component = components.pop(old)
        component["title"] = new
        components[new] = component


# -- errors, headers, parameters ----------------------------------------------------------------


def _problem(code: int, description: str) -> dict[str, Any]:
    model = _PROBLEMS.get(code, Problem)
    content = {"application/problem+json": {"schema": {"$ref": _REF + model.__name__}}}
    return {"description": description, "content": content}


def _document_errors(operation: dict[str, Any]) -> None:
    """Every error an operation can answer, as problem+json with its typed body."""
    schemes = {name for requirement in operation.get("security", []) for name in requirement}
    codes = _AUTHENTICATED if schemes & _API_CREDENTIALS else _PUBLIC
    if "requestBody" in operation:
        # Undecodable bodies answer 400; bodies in another media type 415.
        codes = codes | {400, 415}
    responses = operation["responses"]
    for code in sorted(codes):
        responses.setdefault(str(code), {"description": _ERROR_TITLES[code]})
    for key, response in responses.items():
        if key.isdigit() and int(key) >= 400:
            described = response.get("description") or _ERROR_TITLES.get(int(key), "Error")
            response.clear()
            response.update(_problem(int(key), described))


def _sends(endpoint: Callable[..., Any] | None, helper: str, depth: int = 1) -> bool:
    """Whether `endpoint` calls `helper`, itself or through a function of its own module or
    of routes/deps.py (`read_response` sets the ETag).

    The document follows the code: an endpoint sends a header when it calls its helper.
    """
    code = getattr(endpoint, "__code__", None)
    if code is None:
        return False
    if helper in code.co_names:
        return True
    module = getattr(endpoint, "__module__", None)
    scope: dict[str, Any] = getattr(endpoint, "__globals__", {})
    return depth > 0 and any(
        _sends(scope[name], helper, depth - 1)
        for name in code.co_names
        if callable(scope.get(name))
        and getattr(scope[name], "__module__", None) in (module, "routes.deps")
    )


def _document_headers(
    method: str, operation: dict[str, Any], endpoint: Callable[..., Any] | None
) -> None:
    responses: dict[str, Any] = operation["responses"]
    sent = {h for h, helper in _SENT_BY.items() if _sends(endpoint, helper)}
    if method == "get" and "ETag" in sent:
        operation.setdefault("parameters", []).append(dict(_IF_NONE_MATCH))
        responses["304"] = {"description": "Not Modified: the ETag in If-None-Match is current."}
    for key, response in responses.items():
        names = ["X-Request-ID"]
        if key.startswith("2") or key == "304":
            names += [h for h in ("ETag", "Idempotent-Replayed") if h in sent]
            if key == "201" and "Location" in sent:
                names.append("Location")
        if key in ("429", "503"):
            names.append("Retry-After")
        response["headers"] = {n: {"$ref": f"#/components/headers/{n}"} for n in names}


def _closed_pattern_properties(components: dict[str, Any]) -> None:
    """Maps with constrained keys (`patternProperties`) refuse other keys: say so.

    Pydantic validates dict keys, so a key outside the pattern is a 422; without
    `additionalProperties: false` the schema would call such a body valid.
    """
    for node in _walk(components):
        if "patternProperties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False


def _without_null(schema: dict[str, Any]) -> None:
    options = schema.get("anyOf")
    if not options or {"type": "null"} not in options:
        return
    rest = [o for o in options if o != {"type": "null"}]
    del schema["anyOf"]
    if len(rest) == 1:
        schema.update(rest[0])
    else:
        schema["anyOf"] = rest


def _no_null_inputs(operation: dict[str, Any], components: dict[str, Any]) -> None:
    """Optional parameters and form fields are left out, never sent as `null`.

    FastAPI documents `str | None` as `anyOf: [string, null]`, which tells clients that the
    literal text `null` is a valid header, query value or form field.
    """
    for parameter in operation.get("parameters", []):
        _without_null(parameter.get("schema", {}))
    form = (
        operation.get("requestBody", {}).get("content", {}).get("application/x-www-form-urlencoded")
    )
    if form is None:
        return
    schema = form.get("schema", {})
    ref = str(schema.get("$ref", ""))
    if ref.startswith(_REF):
        schema = components.get(ref.removeprefix(_REF), {})
    for prop in schema.get("properties", {}).values():
        _without_null(prop)


def _describe(operation: dict[str, Any]) -> None:
    # An operation without a docstring is described by its summary.
    if not operation.get("description"):
        operation["description"] = operation.get("summary", "")


def _endpoints(app: FastAPI) -> dict[tuple[str, str], Callable[..., Any]]:
    found: dict[tuple[str, str], Callable[..., Any]] = {}
    for context in iter_route_contexts(list(app.routes)):
        route = context.original_route
        if isinstance(route, APIRoute) and context.path_format:
            for method in route.methods or ():
                found[(context.path_format, method.lower())] = route.endpoint
    return found


def _authenticates(dependant: Dependant) -> bool:
    return any(d.call is get_context or _authenticates(d) for d in dependant.dependencies)


def _document_credentials(app: FastAPI, schema: dict[str, Any]) -> None:
    """Both credential schemes on every operation that authenticates its caller.

    `get_context` reads the headers itself (no security sub-dependencies on the hot path), so
    FastAPI does not see the schemes: they are added here as it would have added them.
    """
    schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
    for scheme in CREDENTIAL_SCHEMES:
        schemes[scheme.scheme_name] = jsonable_encoder(
            scheme.model, by_alias=True, exclude_none=True
        )
    requirement: list[dict[str, list[str]]] = [{s.scheme_name: []} for s in CREDENTIAL_SCHEMES]
    paths = schema.get("paths", {})
    for context in iter_route_contexts(list(app.routes)):
        route = context.original_route
        if not (isinstance(route, APIRoute) and route.include_in_schema and context.path_format):
            continue
        if not _authenticates(route.dependant):
            continue
        for method in route.methods or ():
            operation = paths.get(context.path_format, {}).get(method.lower())
            if operation is not None:
                operation.setdefault("security", []).extend(requirement)


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document, post-processed as the module docstring says."""
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        tags=TAGS,
        servers=app.servers,
        contact=app.contact,
        license_info=app.license_info,
    )
    _document_credentials(app, schema)
    components: dict[str, Any] = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (Problem, ValidationProblem, ConflictProblem, RetryProblem):
        defs = model.model_json_schema(ref_template=_REF + "{model}")
        components.update(defs.pop("$defs", {}))
        components[model.__name__] = defs
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    schema["components"]["headers"] = HEADERS
    _closed_pattern_properties(components)
    endpoints = _endpoints(app)
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if method not in _HTTP_METHODS or "responses" not in operation:
                continue
            _describe(operation)
            _document_errors(operation)
            _document_headers(method, operation, endpoints.get((path, method)))
            _no_null_inputs(operation, components)
    _hoist_unions(schema, components)
    _rename_components(schema, components)
    _document_metrics(
        schema,
        metrics_on=getattr(app.state, "settings", None) is not None
        and app.state.settings.metrics_token is not None,
    )
    return schema


def _document_metrics(schema: dict[str, Any], *, metrics_on: bool) -> None:
    """`GET /metrics` as this instance answers it: 200/401 with its token, or 404 without one.

    The document is the one served (it follows the settings), so a client or a fuzzer is not
    told to send a token that an instance with metrics off answers with 404.
    """
    operation = schema.get("paths", {}).get("/metrics", {}).get("get")
    if operation is None:
        return
    responses = operation["responses"]
    if metrics_on:
        responses.pop("404", None)
        return
    operation["security"] = []
    operation["description"] = (
        "Metrics are off on this instance (`METRICS_TOKEN` is unset): always 404. With "
        "`METRICS_TOKEN` set, `Authorization: Bearer <METRICS_TOKEN>` reads Prometheus metrics."
    )
    responses.pop("401", None)  # 200 stays documented: what the operation gives when on
    schemes = schema.get("components", {}).get("securitySchemes", {})
    schemes.pop("MetricsToken", None)


def install_openapi(app: FastAPI) -> None:
    """Replace the app's OpenAPI builder with `build_openapi` (built once, on first use)."""

    def openapi() -> dict[str, Any]:
        if not app.openapi_schema:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def main() -> None:
    """Print the OpenAPI document as JSON (`python -m routes.openapi > openapi.json`)."""
    from routes.app import create_app
    from service.core.settings import Settings

    # Throwaway secrets: the document does not depend on them, and none is generated noisily.
    settings = Settings(app_env="test", jwt_secret="x" * 32, fernet_key=_FERNET_PLACEHOLDER)
    json.dump(create_app(settings=settings).openapi(), sys.stdout, indent=2)
    sys.stdout.write("\n")


_FERNET_PLACEHOLDER = "A" * 43 + "="

if __name__ == "__main__":
    main()
