"""Nothing a user sees cites a document the product does not ship (issue 11).

The design notes (DOMAIN.md, ARCHITECTURE.md …) stay with the developers; pages,
messages, the configuration a state directory gets, the shipped data files and the
documentation cite the law or standard itself, or the product's own docs.  Developer
comments and docstrings may keep citing the notes.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from ssgate._config import render_default_config

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("ssgate", "gateway", "auth", "certs", "provisioning", "declare_app", "audit", "web")
PACKAGES += ("oversight",)
UNSHIPPED = ("DOMAIN", "ARCHITECTURE", "STYLE.md", "STACK.md")


def _cites(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if any(w in line for w in UNSHIPPED)]


def _user_files() -> list[Path]:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for package in PACKAGES:
        for pattern in ("*.html", "*.toml", "*.css"):
            files += sorted((ROOT / package).rglob(pattern))
    return files


@pytest.mark.parametrize("path", _user_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_pages_data_and_docs_cite_no_design_note(path: Path) -> None:
    assert _cites(path.read_text(encoding="utf-8")) == []


def test_the_configuration_a_state_directory_gets_cites_no_design_note() -> None:
    assert _cites(render_default_config(hostname="gw.example.test")) == []


def _string_constants(path: Path) -> list[str]:
    """Every string literal of a module except docstrings (what code can show)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


def test_no_message_or_page_text_in_the_code_cites_a_design_note() -> None:
    found = [
        f"{path.relative_to(ROOT)}: {cited}"
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if "migrations/versions" not in str(path)
        for text in _string_constants(path)
        for cited in _cites(text)
    ]
    assert found == []
