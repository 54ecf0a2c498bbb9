"""Conventions the code must keep (docs/architecture.md), checked on the source.

- Roles are the resource's policy's, checked by the service (service/core/policy.py): no route
  takes a role-bearing dependency and no route calls `ctx.require`.
- Lists answer `page_response(page, XPage)` (routes/deps.py): no route builds `{"items": ...}`
  nor returns `page.body()` itself (the page would skip being written from storage).
- Every aggregate root declares its `POLICY` in its domain module (service/core/policy.py).
- Routes build no Mongo query: no `$` operator, no raw collection, no repository or filter
  builder (the service does that).
- In service/, `ctx.require(...)` only where data decides (another user's read model) and in
  the audit log (no aggregate root, so no policy).
- No unbounded array in a stored document: every list field carries a `max_length`.
- Read shapes are `ReadView`s (schemas/common.py): no hand-written `to_x_read` function and no
  `from_model` constructor.
- docs/architecture.md names only paths that exist.

Each checker is also run on a planted violation, so a checker that finds nothing fails too.
"""

from __future__ import annotations

import ast
import re
import types
import typing
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from annotated_types import MaxLen
from pydantic import BaseModel, Field

from documents.base import RootDocument

ROUTES = Path(__file__).resolve().parent.parent / "routes"

# The role dependencies routes/deps.py used to offer; a new one by another name is caught by
# its body (a `Depends(...)` that mentions `Role`).
ROLE_DEPENDENCIES = frozenset({"Viewer", "Member", "Admin", "Owner", "require_role"})


def _mentions_role(node: ast.AST) -> bool:
    return any(
        isinstance(n, ast.Name) and (n.id == "Role" or n.id in ROLE_DEPENDENCIES)
        for n in ast.walk(node)
    )


def role_violations(source: str, path: str = "<planted>") -> list[str]:
    """Role checks in a route module: role-bearing dependencies and `.require(...)` calls."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        where = f"{path}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            arguments = node.args
            for arg in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]:
                if arg.annotation is not None and _mentions_role(arg.annotation):
                    found.append(f"{where}: parameter {arg.arg} takes a role dependency")
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr == "require":
                found.append(f"{where}: .require(...) in a route (the service checks roles)")
            elif isinstance(func, ast.Name) and func.id == "Depends" and _mentions_role(node):
                found.append(f"{where}: a role-bearing Depends(...)")
            elif isinstance(func, ast.Name) and func.id in ROLE_DEPENDENCIES:
                found.append(f"{where}: {func.id}(...) builds a role dependency")
    return found


def list_body_violations(source: str, path: str = "<planted>") -> list[str]:
    """Hand-built list bodies in a route module: dict literals with an `"items"` key, and a
    page's `body()` returned as is."""
    found = [
        f"{path}:{node.lineno}: a hand-built list body (answer page_response(page, XPage))"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Dict)
        and any(isinstance(k, ast.Constant) and k.value == "items" for k in node.keys)
    ]
    if path == "deps.py":  # `page_response` itself: the one place answering `page.body()`
        return found
    return found + [
        f"{path}:{node.lineno}: a page's body() returned (answer page_response(page, XPage))"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Return)
        and isinstance(node.value, ast.Call)
        and isinstance(node.value.func, ast.Attribute)
        and node.value.func.attr == "body"
    ]


def _route_modules() -> list[Path]:
    return sorted(ROUTES.glob("*.py"))


@pytest.mark.parametrize(
    "checker", [role_violations, list_body_violations], ids=["roles", "list_bodies"]
)
def test_routes_keep_the_conventions(checker: object) -> None:
    assert callable(checker)
    found = [v for p in _route_modules() for v in checker(p.read_text(), p.name)]
    assert found == []


ROLE_PLANTS = [
    # the old dependency aliases
    "async def create(body: Body, ctx: Admin) -> None: ...",
    "async def create(ctx: Member, body: Body) -> None: ...",
    # a role-bearing dependency spelled inline
    "async def create(ctx: Annotated[RequestContext, Depends(needs(Role.admin))]) -> None: ...",
    "Boss = Annotated[RequestContext, require_role(Role.owner)]",
    # a check in the route body
    "async def create(ctx: CurrentContext) -> None:\n    ctx.require(Role.member)",
]


@pytest.mark.parametrize("source", ROLE_PLANTS)
def test_the_role_checker_reports_a_planted_violation(source: str) -> None:
    assert role_violations(source) != []


def test_the_role_checker_accepts_the_plain_context() -> None:
    source = "async def create(body: Body, ctx: CurrentContext, if_match: IfMatch) -> None: ..."
    assert role_violations(source) == []


@pytest.mark.parametrize(
    "source",
    [
        'async def list_x(ctx: CurrentContext) -> Any:\n    return {"items": [], "total": 0}',
        'body = {"next_cursor": page.next_cursor, "items": [to_read(x) for x in page.items]}',
        "async def list_x(ctx: CurrentContext) -> Any:\n    return (await svc(ctx=ctx)).body()",
    ],
)
def test_the_list_body_checker_reports_a_planted_violation(source: str) -> None:
    assert list_body_violations(source) != []


def test_the_list_body_checker_accepts_page_response() -> None:
    source = "async def list_x(ctx: CurrentContext) -> Any:\n    return page_response(page, XPage)"
    assert list_body_violations(source) == []


def _subclasses(cls: type) -> list[type]:
    return [c for sub in cls.__subclasses__() for c in (sub, *_subclasses(sub))]


def roots_without_policy(declared: frozenset[type], base: type = RootDocument) -> list[str]:
    """Aggregate roots (a collection's own document class) with no declared policy."""
    roots = {c for c in _subclasses(base) if "Settings" in c.__dict__}
    return sorted(c.__name__ for c in roots - declared)


def test_every_aggregate_root_declares_its_policy() -> None:
    import routes.app  # noqa: F401 - imports every domain module, which declares its policy
    from service.core.policy import declared_models

    assert roots_without_policy(declared_models()) == []


def test_the_policy_checker_reports_a_planted_root() -> None:
    # A stand-in hierarchy: a planted RootDocument subclass would stay visible to other tests.
    class Base:
        pass

    class Planted(Base):
        class Settings:
            name = "planted"

    class PlantedSubtype(Planted):  # shares its root's collection and policy
        pass

    assert roots_without_policy(frozenset(), base=Base) == ["Planted"]
    assert roots_without_policy(frozenset({Planted}), base=Base) == []


ARCHITECTURE = ROUTES.parent / "docs" / "architecture.md"
PATH_PREFIXES = ("service/", "routes/", "tests/", "documents/", "schemas/")


def missing_paths(text: str, root: Path) -> list[str]:
    """Backticked repository paths in `text` that do not exist under `root` (`X` is a stand-in)."""
    named = {m for m in re.findall(r"`([^`\s]+)`", text) if m.startswith(PATH_PREFIXES)}
    return sorted(p for p in named if "X" not in p and not (root / p).exists())


def test_the_architecture_document_names_existing_paths() -> None:
    assert missing_paths(ARCHITECTURE.read_text(), ROUTES.parent) == []


def test_the_path_checker_reports_a_planted_path() -> None:
    text = "See `service/core/policy.py`, `routes/X.py` and `service/core/gone.py`."
    assert missing_paths(text, ROUTES.parent) == ["service/core/gone.py"]


# (module, function): why it is no ReadView yet.
HAND_WRITTEN_READS = {
    ("kanban.py", "to_kanban_board_read"): "the board's states and tasks are free-form maps "
    "answered as lists in the board's order (GlobalKanban.ordered_states/ordered_tasks)",
}


def read_shape_violations(source: str, path: str = "<planted>") -> list[str]:
    """Hand-written read shapes: `def to_x_read(...)` functions and `from_model` constructors."""
    return [
        f"{path}:{node.lineno}: {node.name} (use a ReadView: `to_x_read = X_VIEW.document`)"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and (re.fullmatch(r"to_\w+_read", node.name) or node.name == "from_model")
        and (path, node.name) not in HAND_WRITTEN_READS
    ]


def test_read_shapes_are_read_views() -> None:
    root = ROUTES.parent
    modules = sorted(p for d in ("schemas", "service", "routes") for p in (root / d).rglob("*.py"))
    found = [v for p in modules for v in read_shape_violations(p.read_text(), p.name)]
    assert found == []


@pytest.mark.parametrize(
    "source",
    [
        "def to_lead_read(doc: Lead) -> LeadRead:\n    return LeadRead(**doc.model_dump())",
        "class XRead(BaseModel):\n    @classmethod\n    def from_model(cls, doc): ...",
    ],
)
def test_the_read_shape_checker_reports_a_planted_violation(source: str) -> None:
    assert read_shape_violations(source) != []


def test_the_read_shape_checker_accepts_a_view() -> None:
    assert read_shape_violations("to_lead_read = LEAD_VIEW.document") == []


QUERY_NAMES = frozenset({"Repository", "tenant_filter", "uuid_filter", "equal_to", "time_range"})
JSON_SCHEMA_KEYS = frozenset({"$ref", "$defs"})  # the OpenAPI document's, not Mongo's


def query_violations(source: str, path: str = "<planted>") -> list[str]:
    """Mongo queries built in a route module: `$` operators, raw collections, filter builders."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        where = f"{path}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Dict):
            found += [
                f"{where}: Mongo operator {k.value}"
                for k in node.keys
                if isinstance(k, ast.Constant)
                and isinstance(k.value, str)
                and k.value.startswith("$")
                and k.value not in JSON_SCHEMA_KEYS
            ]
        elif isinstance(node, ast.Attribute) and node.attr == "get_pymongo_collection":
            found.append(f"{where}: a raw collection")
        elif isinstance(node, ast.Name) and node.id in QUERY_NAMES:
            found.append(f"{where}: {node.id} (queries are the service's)")
    return found


def test_routes_build_no_query() -> None:
    found = [v for p in _route_modules() for v in query_violations(p.read_text(), p.name)]
    assert found == []


@pytest.mark.parametrize(
    "source",
    [
        'query = {"email": {"$in": emails}}',
        "docs = await Lead.get_pymongo_collection().find({}).to_list()",
        "lead = await Repository(Lead, ctx).get(id)",
        "query = {**equal_to(filters, 'status')}",
    ],
)
def test_the_query_checker_reports_a_planted_violation(source: str) -> None:
    assert query_violations(source) != []


# Where the rule depends on data rather than on the resource's policy (module: why).
DATA_DECIDES = {
    "core/policy.py": "the policies' own check",
    "read_models.py": "another user's read model needs admin, one's own any role",
    "audit.py": "the audit log reads the journal, which is no aggregate root and has no policy",
}


def ctx_require_calls(source: str, path: str = "<planted>") -> list[str]:
    """`ctx.require(...)` calls (a role check outside the resource's policy)."""
    return [
        f"{path}:{node.lineno}: ctx.require(...) (use the resource's POLICY)"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "require"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "ctx"
    ]


def test_roles_are_checked_by_policies() -> None:
    service = ROUTES.parent / "service"
    found = [
        v
        for p in sorted(service.rglob("*.py"))
        if p.relative_to(service).as_posix() not in DATA_DECIDES
        for v in ctx_require_calls(p.read_text(), p.name)
    ]
    assert found == []


def test_the_ctx_require_checker_reports_a_planted_call() -> None:
    assert ctx_require_calls("def f(ctx):\n    ctx.require(Role.admin)") != []
    assert ctx_require_calls("def f(ctx):\n    POLICY.require(ctx, Action.read)") == []


# (model, field): why its list has no `max_length`.
UNBOUNDED_LISTS = {
    ("DomainEvent", "changes"): "one entry per changed field of one write, so bounded by the "
    "aggregate's own size (tests/test_journal_size.py)",
}


def _is_list(annotation: object) -> bool:
    origin = typing.get_origin(annotation)
    if origin is tuple:  # a fixed-length tuple is bounded; `tuple[X, ...]` is not
        return Ellipsis in typing.get_args(annotation)
    if origin in (list, set, frozenset):
        return True
    if origin in (typing.Union, types.UnionType, typing.Annotated):
        return any(_is_list(a) for a in typing.get_args(annotation))
    return False


def _models_in(annotation: object) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in typing.get_args(annotation):
        yield from _models_in(arg)


def unbounded_lists(models: Iterable[type[BaseModel]]) -> list[str]:
    """List fields without a `max_length` in these models and every model they embed."""
    seen: set[type[BaseModel]] = set()
    found: list[str] = []
    todo = [m for model in models for m in (model, *_subclasses(model))]
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, info in model.model_fields.items():
            bounded = any(isinstance(m, MaxLen) for m in info.metadata)
            excused = (model.__name__, name) in UNBOUNDED_LISTS
            if _is_list(info.annotation) and not bounded and not excused:
                found.append(f"{model.__name__}.{name}")
            todo.extend(_models_in(info.annotation))
    return sorted(found)


def test_stored_lists_are_bounded() -> None:
    from documents import ALL_DOCUMENTS

    assert unbounded_lists(ALL_DOCUMENTS) == []


def test_the_list_bound_checker_reports_a_planted_list() -> None:
    class Part(BaseModel):
        tags: list[str]
        pair: tuple[int, int]

    class Planted(BaseModel):
        parts: list[Part] = Field(max_length=5)
        notes: list[str] | None = None

    assert unbounded_lists([Planted]) == ["Part.tags", "Planted.notes"]
