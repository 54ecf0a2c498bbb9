"""The import rules of service/ (its package docstring states them): mechanisms never import
a domain module, the embedded backend imports no domain code, nothing imports the web layer."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MECHANISMS = ("service.core", "service.feeds", "service.storage", "service.embedded")
WEB = ("routes", "fastapi", "starlette")
# The ASGI entry points the contract names (`uvicorn service.main:app`) hand over to routes/.
ENTRY_POINTS = {"service.main", "service.serve"}
# (mechanism module, domain module it imports): why.
# None today: a mechanism that needs a domain's step takes it from a registry the domain fills
# (policies, migrate's backfills).
ALLOWED: dict[tuple[str, str], str] = {}


def imports_of(source: str, module: str) -> Iterator[tuple[int, str]]:
    """Every module an import statement names (relative imports resolved against `module`)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = module.rsplit(".", node.level)[0]
                base = f"{parent}.{base}" if base else parent
            if node.module is None or base in {"service", *MECHANISMS} or node.level:
                # `from service import x`: each name is a module.
                for alias in node.names:
                    yield node.lineno, f"{base}.{alias.name}"
            else:
                yield node.lineno, base


def _inside(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def violations(source: str, module: str) -> list[str]:
    """The import rules this module breaks."""
    out = []
    for line, name in imports_of(source, module):
        if _inside(name, WEB) and module not in ENTRY_POINTS:
            out.append(f"{module}:{line} imports the web layer ({name})")
        elif (
            _inside(module, MECHANISMS)
            and name.startswith("service.")
            and not _inside(name, MECHANISMS)
            and (module, name) not in ALLOWED
        ):
            out.append(f"{module}:{line} (a mechanism) imports the domain module {name}")
    return out


def service_modules() -> Iterator[tuple[str, Path]]:
    """Every module under service/, with its dotted name."""
    for path in sorted((ROOT / "service").rglob("*.py")):
        dotted = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        yield dotted.removesuffix(".__init__"), path


def test_service_keeps_its_import_rules() -> None:
    found = [v for module, path in service_modules() for v in violations(path.read_text(), module)]
    assert not found, "\n".join(found)


def test_the_rules_catch_planted_violations() -> None:
    assert violations("from service import campaigns\n", "service.core.repository") == [
        "service.core.repository:1 (a mechanism) imports the domain module service.campaigns"
    ]
    assert violations("from service.leads.commands import x\n", "service.feeds.workers")
    assert violations("import fastapi\n", "service.users")
    assert violations("from service.core import errors\n", "service.feeds.sequencer") == []
    assert violations("from service.leads import queries\n", "service.campaigns") == []
    assert violations("from service.leads import claims\n", "service.storage.migrations")
