"""No "(s)" plurals in text a person reads (issue 12: never `1 job(s)`): counts go through
`tenancy.domain.plurals.plural`, in Python and in the templates (its Jinja filters).

The scan reads the product's words as tests/source_text.py gives them (string literals without
docstrings, every template) plus the browser scripts. A "(s)" that is not a plural is allowed
here by name, with the reason."""

from __future__ import annotations

import re
from collections.abc import Iterator

from source_text import SOURCE, string_literals, templates

# A word with "(s)" stuck to it: `payment(s)`, `http(s)`; not a regex group such as `(\s)`.
WORD_WITH_S = re.compile(r"[A-Za-z-]*[A-Za-z]\(s\)")

# (file under src/tenancy, the word) for each "(s)" that is not a plural.
ALLOWED = {
    ("adapters/webhooks.py", "http(s)"),  # the URL scheme: http or https
}


def words_with_s() -> Iterator[tuple[str, str, str]]:
    """(file under src/tenancy, where in it, the word) for each "(s)" word in the product's text."""
    for literal in string_literals():
        path = literal.where.rsplit(":", 1)[0]
        for match in WORD_WITH_S.finditer(literal.text):
            yield path, literal.where, match.group()
    for page in [*templates(), *sorted((SOURCE / "web" / "static").rglob("*.js"))]:
        path = str(page.relative_to(SOURCE))
        for number, line in enumerate(page.read_text().splitlines(), start=1):
            for match in WORD_WITH_S.finditer(line):
                yield path, f"{path}:{number}", match.group()


def test_no_text_a_person_reads_counts_with_s_in_parentheses() -> None:
    found = [f"{where}: {word}" for path, where, word in words_with_s() if (path, word) not in ALLOWED]

    assert not found, "count with tenancy.domain.plurals.plural, not '(s)':\n" + "\n".join(found)


def test_the_scan_sees_the_allowed_words_so_it_is_not_blind() -> None:
    # Each allowed "(s)" is still there and found by the same scan: an allowance never goes stale
    # and an empty result above means the scan read the source.
    assert {(path, word) for path, _, word in words_with_s()} >= ALLOWED
