"""RB-001 as a document: its numbered sections (number, title, anchor) read from its headings, and
its text rendered to HTML with those anchors as the headings' ids, for the console and the CLI.

The one source is `docs/runbooks/RB-001.md`. The package reaches it through `RB-001.md` beside
this module, a symbolic link to that file: from the source tree (an editable install) it reads the
file itself, and a built wheel carries the file's content as package data (setuptools copies what
a link points to), so an installed package has it too and no second copy is kept anywhere.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

__all__ = [
    "ALERT_SECTIONS",
    "DOCUMENT_NAME",
    "RUNBOOK_PATH",
    "RunbookDocument",
    "RunbookLinks",
    "RunbookSection",
    "anchor_of",
    "load_runbook",
    "parse_runbook",
    "runbook_page_path",
]

DOCUMENT_NAME = "RB-001"
RUNBOOK_PATH = "/ops/runbook"  # where the console renders the document
_PACKAGED_NAME = "RB-001.md"

# The alerts whose resolution is a section of the runbook (the others escalate: section 6).
ALERT_SECTIONS = {"dlq_not_empty": "4.6"}

# `4.2 Scenario: ...`, `1. Purpose`: the number, an optional dot, then the title.
_NUMBERED = re.compile(r"^(?P<number>\d+(?:\.\d+)*)\.?\s+(?P<title>\S.*)$")
_SLUG_DROPPED = re.compile(r"[^a-z0-9]+")


def anchor_of(section: str) -> str:
    """A section's anchor on the page: its number with dots as dashes (`4.2` -> `4-2`)."""
    return section.replace(".", "-")


def runbook_page_path(section: str | None = None) -> str:
    """The console's path to the runbook, at `section` when one is given (`/ops/runbook#4-2`)."""
    return f"{RUNBOOK_PATH}#{anchor_of(section)}" if section else RUNBOOK_PATH


@dataclass(frozen=True, slots=True)
class RunbookSection:
    """One numbered heading: `number` as findings name it (`4.2`), `title` without the number
    (`Scenario: Cognito User Creation Failed`), `level` (2 for `##`)."""

    number: str
    title: str
    level: int

    @property
    def anchor(self) -> str:
        return anchor_of(self.number)

    @property
    def heading(self) -> str:
        """`4.2 Scenario: Cognito User Creation Failed`, as the CLI prints it."""
        return f"{self.number} {self.title}"


@dataclass(frozen=True, slots=True)
class RunbookDocument:
    """The runbook's text, title (its `#` heading) and numbered sections; `source` is where it was read."""

    text: str
    title: str
    sections: tuple[RunbookSection, ...]
    source: str

    def section(self, number: str | None) -> RunbookSection | None:
        """The section numbered `number`, or None when the document has no such section."""
        return next((section for section in self.sections if section.number == number), None) if number else None

    def html(self) -> str:
        """The document as HTML: every heading with an `id` (a numbered one its anchor, others a
        slug of their text), code blocks and tables scrolling inside themselves (reachable by
        keyboard), raw HTML in the text escaped rather than passed through."""
        renderer = _markdown()
        tokens = renderer.parse(self.text)
        _label_headings_and_tables(tokens)
        return str(renderer.renderer.render(tokens, renderer.options, {}))


def parse_runbook(text: str, *, source: str = "") -> RunbookDocument:
    """The document `text`, its numbered headings read with a Markdown parser (a `# comment` in a
    fenced `bash` block is no heading)."""
    headings = list(_headings(_markdown().parse(text)))
    # The title is the first `#` heading (`RB-001: Tenant Provisioning Runbook`).
    title = next((heading for token, heading, _ in headings if token.tag == "h1"), DOCUMENT_NAME)
    sections = tuple(section for _, _, section in headings if section is not None)
    return RunbookDocument(text=text, title=title, sections=sections, source=source)


def _headings(tokens: Sequence[Token]) -> Iterator[tuple[Token, str, RunbookSection | None]]:
    """Each heading's token and text, with its section when it is a section's heading: a `##`
    heading numbered `4.`, or a deeper one whose number is within the `##` section it sits in
    (`### 4.2` under `## 4.`). So a changelog's `### 1.1 (2026-12-07)` under `## Changelog` is no
    section 1.1."""
    chapter: str | None = None  # the number of the `##` section we are in
    for index, token in enumerate(tokens):
        if token.type != "heading_open":
            continue
        text = tokens[index + 1].content.strip()
        level = int(token.tag[1:])
        match = _NUMBERED.match(text)
        number = match["number"] if match else ""
        section = None
        if level <= 2:
            chapter = number if level == 2 and number and "." not in number else None
            if chapter is not None and match:
                section = RunbookSection(number, match["title"].strip(), level)
        elif match and chapter is not None and number.split(".")[0] == chapter and "." in number:
            section = RunbookSection(number, match["title"].strip(), level)
        yield token, text, section


def load_runbook(path: Path | None = None) -> RunbookDocument | None:
    """RB-001 as shipped (see the module's docstring), or the file at `path`; None when it is not
    there (a package built without it, a link whose file was removed): the caller says so."""
    source: Traversable = path if path is not None else resources.files("tenancy.runbook") / _PACKAGED_NAME
    try:
        # A stray byte shows as a replacement character: the console never fails for the document.
        with source.open("rb") as stream:
            text = stream.read().decode("utf-8", errors="replace")
    except OSError:
        return None
    # Read on every call (an edited file shows at once), parsed once per text.
    return _parsed(text, str(source))


@functools.lru_cache(maxsize=4)
def _parsed(text: str, source: str) -> RunbookDocument:
    return parse_runbook(text, source=source)


def _markdown() -> MarkdownIt:
    # CommonMark with tables; no raw HTML: the page's only markup is the renderer's.
    renderer = MarkdownIt("commonmark", {"html": False}).enable("table")
    renderer.add_render_rule("fence", _scrolling_fence)
    renderer.add_render_rule("code_block", _scrolling_code_block)
    renderer.add_render_rule("table_open", _table_open)
    renderer.add_render_rule("table_close", _table_close)
    return renderer


def _label_headings_and_tables(tokens: Sequence[Token]) -> None:
    """Gives every heading its id, and every table the heading it sits under as its label."""
    seen: dict[str, int] = {}
    for token, text, section in _headings(tokens):
        identifier = section.anchor if section is not None else _slug(text)
        # Ids must be unique: a repeated slug (two `Example` headings) gets a suffix. A repeated
        # number is the document's mistake, which a test catches; the first keeps the anchor.
        seen[identifier] = seen.get(identifier, 0) + 1
        if seen[identifier] > 1:
            identifier = f"{identifier}-{seen[identifier]}"
        token.attrSet("id", identifier)
        token.meta["text"] = text
    heading = DOCUMENT_NAME
    for token in tokens:
        if token.type == "heading_open":
            heading = token.meta["text"]
        elif token.type == "table_open":
            token.meta["label"] = f"Table: {heading}"


def _slug(text: str) -> str:
    return _SLUG_DROPPED.sub("-", text.lower()).strip("-") or "section"


def _scrolling_fence(self: Any, tokens: Sequence[Token], index: int, options: OptionsDict, env: EnvType) -> str:
    """A fenced code block that scrolls sideways inside itself on a phone, so it can be focused to scroll."""
    return _focusable(str(self.fence(tokens, index, options, env)))


def _scrolling_code_block(self: Any, tokens: Sequence[Token], index: int, options: OptionsDict, env: EnvType) -> str:
    return _focusable(str(self.code_block(tokens, index, options, env)))


def _focusable(html: str) -> str:
    return html.replace("<pre>", '<pre tabindex="0">', 1)


def _table_open(self: Any, tokens: Sequence[Token], index: int, options: OptionsDict, env: EnvType) -> str:
    label = escapeHtml(str(tokens[index].meta.get("label", "Table")))
    opening = self.renderToken(tokens, index, options, env)
    return f'<div class="table-scroll" role="region" aria-label="{label}" tabindex="0">\n{opening}'


def _table_close(self: Any, tokens: Sequence[Token], index: int, options: OptionsDict, env: EnvType) -> str:
    return f"{self.renderToken(tokens, index, options, env)}</div>\n"


@dataclass(frozen=True, slots=True)
class RunbookLinks:
    """Where the console and the CLI send an operator for a finding's or an alert's section: the
    runbook page at its anchor, with the section's title when the document (None: missing) has it."""

    document: RunbookDocument | None

    def path(self, section: str | None) -> str:
        return runbook_page_path(section)

    def section(self, number: str | None) -> RunbookSection | None:
        return self.document.section(number) if self.document is not None else None

    def alert_section(self, rule: str) -> str | None:
        return ALERT_SECTIONS.get(rule)
