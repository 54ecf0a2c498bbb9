"""The test suite's own layout rules (docs/architecture.md, `tests/`), checked on its sources."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "tests":  # from tests import x
            found.update(f"tests.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def _sibling_imports(path: Path) -> list[str]:
    return sorted(m for m in _imported_modules(path) if m.startswith("tests.test_"))


def test_no_test_module_imports_another() -> None:
    """Shared code lives in support modules (helpers, factories, …), fixtures in conftest.py."""
    offenders = {p.name: found for p in TESTS.glob("*.py") if (found := _sibling_imports(p))}
    assert offenders == {}


def test_the_rule_sees_a_sibling_import(tmp_path: Path) -> None:
    planted = tmp_path / "test_planted.py"
    planted.write_text(
        "from tests.test_leads import post_lead\nimport tests.test_cli\nfrom tests import test_ai\n"
    )
    assert _sibling_imports(planted) == ["tests.test_ai", "tests.test_cli", "tests.test_leads"]
