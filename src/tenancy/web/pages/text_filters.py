"""Jinja filters for the pages: counted nouns (`domain.plurals`), and the `code` spans of the
runbook's texts, written in Markdown for Slack and the CLI, shown in the console as <code>."""

from __future__ import annotations

import re

from jinja2 import Environment
from markupsafe import Markup, escape

from tenancy.domain.plurals import plural, plural_noun

__all__ = ["code_spans", "install_filters"]

_CODE_SPAN = re.compile(r"`([^`\n]+)`")


def code_spans(text: object) -> Markup:
    """`text` escaped, with each `...` as <code>...</code>. Every piece of the text is escaped
    (an email, an error from a store can hold `<`): the <code> tags are the only markup added."""
    # With one group, split alternates: text outside backticks (even indexes), inside (odd).
    pieces = _CODE_SPAN.split(str(text))
    return Markup("").join(
        Markup("<code>{}</code>").format(piece) if index % 2 else escape(piece) for index, piece in enumerate(pieces)
    )


def install_filters(environment: Environment) -> None:
    """`{{ n|plural("job") }}` (1 job, 2 jobs), `{{ n|plural_noun("job") }}` (job, jobs) and
    `{{ text|code_spans }}`."""
    environment.filters.update(plural=plural, plural_noun=plural_noun, code_spans=code_spans)
