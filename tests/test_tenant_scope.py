"""The tenant-scope lint: every raw collection read or write in domain code is tenant-scoped.

`Repository` scopes what goes through it; this lint covers the rest, the raw driver calls
(`Model.get_pymongo_collection().find(...)`). In a domain module each such call's filter (or
an aggregation's first `$match`) must be *scoped*: built by `tenant_filter`, by a
repository's `scope`, by a function of the same module that returns a scoped value, or a
dict literal with a `tenant_id` key, possibly combined with `|`. Mechanism packages (core,
storage, feeds, the embedded backend, the operators' CLI) work across tenants by design and
are not linted; the few domain calls that run before a tenant is known are allow-listed with
their reason.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Packages whose job is cross-tenant: the lint does not look inside them.
MECHANISMS = (
    "service/core/",
    "service/storage/",
    "service/feeds/",
    "service/embedded/",
    "service/cli/",
    "service/projections/runner.py",  # applies every tenant's feed to the read models
    "service/database.py",
)

FILTER_METHODS = {
    "find",
    "find_one",
    "find_one_and_update",
    "find_one_and_delete",
    "find_one_and_replace",
    "update_one",
    "update_many",
    "replace_one",
    "delete_one",
    "delete_many",
    "count_documents",
    "distinct",
}
SCOPING_CALLS = {"tenant_filter", "scope"}
# Calls that keep their first argument's scope (they add conditions to it).
COMBINATORS = {"with_condition"}
# A parameter with this name holds a repository's `scope()` by convention.
SCOPED_PARAMETERS = {"scope"}

# (module, function): why this raw call may go unscoped.
ALLOWED: dict[tuple[str, str], str] = {
    ("service/leads/claims.py", "backfill"): "migrate's walk over every tenant's leads, by _id",
    ("service/campaigns.py", "backfill_link_states"): "migrate's walk over every tenant's "
    "campaign links, by _id (each write's guard carries the link's tenant)",
    ("service/leads/retention.py", "_tenants"): "the retention worker walks every tenant",
    ("service/campaigns.py", "sync_link_states"): "bulk_write: each UpdateMany's filter is "
    "built by tenant_filter",
}


@dataclass(frozen=True)
class Finding:
    """One raw collection call whose filter is not provably tenant-scoped."""

    path: str
    line: int
    function: str
    method: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line} {self.function}(): .{self.method}() is not tenant-scoped"


def _call_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Name):
            return func.id
        if isinstance(func, ast.Attribute):
            return func.attr
    return None


def _is_raw_collection(node: ast.expr, raw_names: set[str]) -> bool:
    """`X.get_pymongo_collection()` itself, or a local name bound to one."""
    if _call_name(node) == "get_pymongo_collection":
        return True
    return isinstance(node, ast.Name) and node.id in raw_names


class _Module:
    """What one module's functions bind and return, for the scoping rules."""

    def __init__(self, tree: ast.Module, known: AbstractSet[str] = frozenset()) -> None:
        self.scoped_functions: set[str] = set(known)
        functions = [
            n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
        ]
        # Functions returning a scoped value, to a fixed point (one may build on another).
        changed = True
        while changed:
            changed = False
            for fn in functions:
                if fn.name in self.scoped_functions:
                    continue
                names = self.scoped_names(fn)
                returns = [n.value for n in ast.walk(fn) if isinstance(n, ast.Return) and n.value]
                if returns and all(self.scoped(r, names) for r in returns):
                    self.scoped_functions.add(fn.name)
                    changed = True

    def scoped(self, node: ast.expr, names: set[str]) -> bool:
        """Whether this expression is a tenant-scoped filter."""
        if isinstance(node, ast.Name):
            return node.id in names
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            return self.scoped(node.left, names) or self.scoped(node.right, names)
        if isinstance(node, ast.Dict):  # {"tenant_id": ...} or {**scoped, ...}
            return any(
                (isinstance(k, ast.Constant) and k.value == "tenant_id")
                or (k is None and self.scoped(v, names))
                for k, v in zip(node.keys, node.values, strict=True)
            )
        name = _call_name(node)
        if name in COMBINATORS and isinstance(node, ast.Call) and node.args:
            return self.scoped(node.args[0], names)
        return name is not None and (name in SCOPING_CALLS or name in self.scoped_functions)

    def scoped_names(self, fn: ast.AST) -> set[str]:
        """Local names bound to a scoped value (assignments, in source order, to a fixed point)."""
        names: set[str] = set()
        if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            names = {a.arg for a in fn.args.args + fn.args.kwonlyargs if a.arg in SCOPED_PARAMETERS}
        changed = True
        while changed:
            changed = False
            for node in ast.walk(fn):
                if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    if self.scoped(node.value, names):
                        for t in targets:
                            if isinstance(t, ast.Name) and t.id not in names:
                                names.add(t.id)
                                changed = True
        return names

    def pipeline_scoped(self, node: ast.expr, names: set[str]) -> bool:
        """An aggregation is scoped when its first stage matches a scoped filter, or when its
        pipeline is built by a call that is handed the caller's context or a scoped filter."""
        if isinstance(node, ast.List) and node.elts:
            first = node.elts[0]
            if isinstance(first, ast.Dict):
                for key, value in zip(first.keys, first.values, strict=True):
                    if isinstance(key, ast.Constant) and key.value == "$match":
                        return self.scoped(value, names)
            return False
        if isinstance(node, ast.Name):
            return node.id in names
        if isinstance(node, ast.Call):
            args = [*node.args, *(k.value for k in node.keywords)]
            return any(
                (isinstance(a, ast.Name) and a.id == "ctx") or self.scoped(a, names) for a in args
            )
        return False


def _pipeline_names(module: _Module, fn: ast.AST, names: set[str]) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(fn):
        if isinstance(node, ast.Assign) and module.pipeline_scoped(node.value, names):
            out.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return out


def scoped_functions(sources: list[str]) -> set[str]:
    """Names of functions, across modules, that return a scoped filter (to a fixed point)."""
    known: set[str] = set()
    while True:
        found = set().union(*(_Module(ast.parse(s), known).scoped_functions for s in sources))
        if found == known:
            return known
        known = found


def findings_in(source: str, path: str, known: AbstractSet[str] = frozenset()) -> Iterator[Finding]:
    """Every unscoped raw collection call in one module's source."""
    tree = ast.parse(source)
    module = _Module(tree, known)
    for fn in ast.walk(tree):
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        names = module.scoped_names(fn)
        pipelines = _pipeline_names(module, fn, names)
        raw_names = {
            t.id
            for n in ast.walk(fn)
            if isinstance(n, ast.Assign) and _call_name(n.value) == "get_pymongo_collection"
            for t in n.targets
            if isinstance(t, ast.Name)
        }
        for call in ast.walk(fn):
            if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)):
                continue
            method = call.func.attr
            if not _is_raw_collection(call.func.value, raw_names):
                continue
            if method in FILTER_METHODS:
                ok = bool(call.args) and module.scoped(call.args[0], names)
            elif method == "aggregate":
                ok = bool(call.args) and module.pipeline_scoped(call.args[0], names | pipelines)
            elif method == "bulk_write":
                ok = False  # each operation's filter would need its own proof: allow-list it
            else:
                continue  # inserts carry their tenant in the document; index and admin calls
            if not ok and (path, fn.name) not in ALLOWED:
                yield Finding(path, call.lineno, fn.name, method)


def domain_modules() -> list[Path]:
    """The modules the lint reads: service/ outside the mechanism packages."""
    out = []
    for path in sorted((ROOT / "service").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if not rel.startswith(MECHANISMS):
            out.append(path)
    return out


def test_every_raw_collection_call_in_domain_code_is_tenant_scoped() -> None:
    sources = {path.relative_to(ROOT).as_posix(): path.read_text() for path in domain_modules()}
    known = scoped_functions(list(sources.values()))
    found = [str(f) for path, source in sources.items() for f in findings_in(source, path, known)]
    assert not found, "\n".join(found)


def test_the_allow_list_names_functions_that_exist() -> None:
    for (path, function), reason in ALLOWED.items():
        source = (ROOT / path).read_text()
        assert f"def {function}(" in source, f"{path}:{function} is allow-listed but gone"
        assert reason.strip()


PLANTED = """
from service.core.repository import tenant_filter

def link_filter(ctx, cid):
    return tenant_filter(ctx, {"campaign_id": cid})

async def scoped(ctx, cid):
    links = Link.get_pymongo_collection()
    query = link_filter(ctx, cid) | {"x": 1}
    await links.find_one(query)
    await links.update_many({"tenant_id": ctx.tenant_id, "x": 1}, {"$set": {"y": 2}})
    await Link.get_pymongo_collection().aggregate([{"$match": tenant_filter(ctx)}])

async def leaky(ctx, cid):
    links = Link.get_pymongo_collection()
    await links.delete_many({"campaign_id": cid})
    await Link.get_pymongo_collection().aggregate([{"$match": {"campaign_id": cid}}])
    await links.find_one({"_id": cid})
"""


def test_the_lint_finds_a_planted_unscoped_call_and_passes_scoped_ones() -> None:
    found = sorted(findings_in(PLANTED, "service/planted.py"), key=lambda f: f.line)
    assert [(f.function, f.method) for f in found] == [
        ("leaky", "delete_many"),
        ("leaky", "aggregate"),
        ("leaky", "find_one"),
    ]
