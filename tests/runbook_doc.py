"""RB-001 v1.1 (docs/runbooks/RB-001.md) as the test reads it: every fenced ```bash block, in order,
with the numbered section it sits under and its label (the first line's comment), and the
placeholder block's assignments."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

RUNBOOK = Path(__file__).resolve().parent.parent / "docs" / "runbooks" / "RB-001.md"

_HEADING = re.compile(r"^(#{2,3}) (\d+(?:\.\d+)?)\.? (.+)$")
_FENCE = re.compile(r"^```(\S*)\s*$")
_ASSIGNMENT = re.compile(r"^([A-Z][A-Z0-9_]*)=(.*)$")


@dataclass(frozen=True)
class Block:
    """One fenced bash block: its position among all of them, its section ("4.2"), its label (the
    text of its first line when that is a comment, else "") and its script."""

    index: int
    section: str
    label: str
    script: str


@dataclass(frozen=True)
class Heading:
    level: int
    number: str
    title: str


def headings(text: str) -> list[Heading]:
    """The numbered `##`/`###` headings, outside code fences."""
    found, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        match = None if fenced else _HEADING.match(line)
        if match:
            found.append(Heading(len(match.group(1)), match.group(2), match.group(3)))
    return found


def bash_blocks(text: str) -> list[Block]:
    """Every ```bash block in document order; any other fence (```text) is skipped whole."""
    blocks: list[Block] = []
    section, language, lines = "", None, []  # language is None outside a fence
    for line in text.splitlines():
        fence = _FENCE.match(line.strip())
        if language is None:
            heading = _HEADING.match(line)
            if heading:
                section = heading.group(2)
            elif fence:
                language, lines = fence.group(1), []
            continue
        if fence and not fence.group(1):
            if language == "bash":
                script = "\n".join(_dedent(lines))
                first = script.splitlines()[0] if script else ""
                label = first[1:].strip() if first.startswith("#") else ""
                blocks.append(Block(len(blocks), section, label, script))
            language = None
            continue
        lines.append(line)
    assert language is None, "a code fence of RB-001.md is never closed"
    return blocks


def _dedent(lines: list[str]) -> list[str]:
    indents = [len(line) - len(line.lstrip()) for line in lines if line.strip()]
    cut = min(indents, default=0)
    return [line[cut:] for line in lines]


def typed_placeholders(block: Block) -> dict[str, str]:
    """The placeholders an operator types (`NAME="value"`), not those looked up (`NAME=$(...)`)."""
    typed = {}
    for line in block.script.splitlines():
        match = _ASSIGNMENT.match(line)
        if match and match.group(2).startswith('"'):
            typed[match.group(1)] = match.group(2).split('"')[1]
    return typed
