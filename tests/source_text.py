"""The text a person reads, as the source holds it: every string literal of src/tenancy (f-strings
with their fields as `{}`; docstrings and comments left out, they are for developers) and every
template. Scan tests (advised commands, counted nouns) read the product's words from here, so they
all see the same text."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SOURCE", "Literal", "string_literals", "templates"]

SOURCE = Path(__file__).resolve().parents[1] / "src" / "tenancy"


@dataclass(frozen=True)
class Literal:
    where: str  # path relative to src/tenancy, and line
    text: str


def _docstrings(tree: ast.AST) -> set[int]:
    """The ids of the nodes that are docstrings."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _text(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(str(part.value) if isinstance(part, ast.Constant) else "{}" for part in node.values)
    return None


def string_literals() -> Iterator[Literal]:
    """Each string literal of the product's Python, whole (an f-string once, not its parts)."""
    for path in sorted(SOURCE.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        skipped = _docstrings(tree)
        inside_fstrings = {
            id(part) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for part in node.values
        }
        for node in ast.walk(tree):
            if id(node) in skipped or id(node) in inside_fstrings:
                continue
            text = _text(node)
            if text is not None:
                yield Literal(f"{path.relative_to(SOURCE)}:{getattr(node, 'lineno', '?')}", text)


def templates() -> list[Path]:
    """Every page template (the console's included)."""
    return sorted((SOURCE / "web" / "templates").rglob("*.html"))
