"""Every table of every page sits in its own scroll box, so that on a phone a wide table scrolls
inside it and never the page: a labelled region the keyboard can reach (tabindex 0) and scroll.
The browser suite (tests/browser/test_mobile.py) checks the pages it visits at 390 px; this checks
every template, including a table added later to a page no browser test opens."""

from __future__ import annotations

import re
from pathlib import Path

import tenancy.web

TEMPLATES = Path(tenancy.web.__file__).parent / "templates"
WRAPPED_TABLE = re.compile(
    r'<div class="table-scroll" role="region" (?:aria-labelledby|aria-label)="[^"]+" tabindex="0">\s*<table[\s>]'
)


def test_every_table_is_in_a_labelled_keyboard_scroll_box() -> None:
    unwrapped = []
    for template in sorted(TEMPLATES.rglob("*.html")):
        text = template.read_text()
        tables, wrapped = len(re.findall(r"<table[\s>]", text)), len(WRAPPED_TABLE.findall(text))
        if tables != wrapped:
            unwrapped.append(f"{template.relative_to(TEMPLATES)}: {tables} tables, {wrapped} wrapped")
    assert unwrapped == [], "wrap each table in a scroll box (see account.html):\n" + "\n".join(unwrapped)


def test_the_scroll_box_scrolls_sideways_in_the_stylesheet() -> None:
    css = (TEMPLATES.parent / "static" / "site.css").read_text()
    assert re.search(r"\.table-scroll \{[^}]*overflow-x: auto", css)
