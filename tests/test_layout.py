"""The shape of the code, checked: one folder per capability, domain code free of HTTP,
one place for each rule. A change that breaks one of these fails here, not in review."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "ris_app"
TOP_LEVEL = {"__init__.py", "clock.py", "config.py", "db.py", "errors.py", "wsgi.py"}
DOMAIN_PACKAGES = (
    "scheduling",
    "frontdesk",
    "worklist",
    "tracking",
    "reporting",
    "audit",
    "reminders",
    "billing",
    "registration",
    "analytics",
)
WEB_MODULES = {"api.py", "pages.py"}  # the only modules of a domain package that speak HTTP
WEB_SUFFIX = "_pages.py"  # ... besides pages split by who uses them (frontdesk: setup_pages, clash_pages)
MAX_LINES = 400
LONG_REASON = "Why this long:"


def _modules():
    return sorted(p for p in PKG.rglob("*.py") if "migrations" not in p.parts)


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _calls(path: Path, name: str) -> list[str]:
    """The functions of `path` that call `name` (a bare name or an attribute)."""
    found = []
    for fn in ast.walk(ast.parse(path.read_text())):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, ast.Call):
                    callee = node.func
                    called = callee.id if isinstance(callee, ast.Name) else getattr(callee, "attr", "")
                    if called == name:
                        found.append(f"{path.relative_to(PKG.parent)}:{fn.name}")
    return found


def test_the_top_of_the_package_holds_a_handful_of_modules():
    assert {p.name for p in PKG.glob("*.py")} == TOP_LEVEL


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PKG)))
def test_no_module_is_long_without_a_written_reason(path: Path):
    lines = len(path.read_text().splitlines())
    if lines > MAX_LINES:
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        assert LONG_REASON in doc, f"{lines} lines: split it, or say '{LONG_REASON} ...' in its docstring"


@pytest.mark.parametrize(
    "path",
    [
        p
        for pkg in DOMAIN_PACKAGES
        for p in sorted((PKG / pkg).glob("*.py"))
        if p.name not in WEB_MODULES and not p.name.endswith(WEB_SUFFIX)
    ],
    ids=lambda p: str(p.relative_to(PKG)),
)
def test_domain_code_knows_nothing_of_http(path: Path):
    imported = _imports(path)
    assert not {m for m in imported if m == "flask" or m.startswith(("flask.", "werkzeug", "ris_app.web"))}


@pytest.mark.parametrize("name", ["refresh_worklist_item", "on_step_status"])
def test_one_function_is_told_a_step_changed(name: str):
    callers = [c for p in _modules() for c in _calls(p, name)]
    assert callers == ["ris_app/scheduling/orders.py:step_changed"]
