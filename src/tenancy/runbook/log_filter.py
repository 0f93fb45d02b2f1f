"""CloudWatch Logs filter patterns (`aws logs filter-log-events --filter-pattern`), parsed once and
matched against log lines, so RB-001's log searches run unchanged against the embedded backend.

Two kinds, as CloudWatch documents them:

- Terms, matched case-sensitively against the raw line: `ERROR TXN-1` (every term),
  `"exact phrase"`, `?ERROR ?WARNING` (any of those), `-DEBUG` (none of those), `%regex%`.
- JSON, matched against the line's fields: `{ $.event = "step_done" && $.attempt > 2 }`, with
  `=`, `!=`, `<`, `<=`, `>`, `>=`, `&&`, `||`, parentheses, `*` wildcards in string values,
  `%regex%` values, `IS TRUE`, `IS FALSE`, `IS NULL` and `NOT EXISTS`. Selectors walk objects
  and arrays: `$.reasons[0]`, `$.a.b`.

Space-delimited patterns (`[ip, user, ...]`) describe unstructured lines; our lines are JSON, so
they are refused with a hint rather than half supported.
"""

from __future__ import annotations

import json
import math
import operator
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tenancy.errors import InvalidInputError

__all__ = ["FilterPattern", "parse_filter_pattern"]


class FilterPattern(ABC):
    """A parsed pattern. `fields` is the line's parsed JSON when the caller has it already."""

    @abstractmethod
    def matches(self, message: str, fields: Mapping[str, Any] | None = None) -> bool: ...


def parse_filter_pattern(pattern: str | None) -> FilterPattern:
    """The pattern, parsed; an empty or missing pattern matches every line.
    Raises InvalidInputError, saying what is wrong, for a pattern CloudWatch would refuse."""
    text = (pattern or "").strip()
    if not text:
        return _MatchAll()
    if text.startswith("{"):
        return _parse_json_pattern(text)
    if text.startswith("["):
        raise _invalid(
            text, 'space-delimited [...] patterns are not supported (lines are JSON); use { $.field = "value" }'
        )
    return _parse_term_pattern(text)


def _invalid(pattern: str, reason: str) -> InvalidInputError:
    return InvalidInputError(f"filter pattern {pattern!r}: {reason}")


class _MatchAll(FilterPattern):
    def matches(self, message: str, fields: Mapping[str, Any] | None = None) -> bool:
        return True


# --- terms ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Term:
    """A literal (quoted or not) or a `%regex%`, looked for anywhere in the line."""

    text: str
    regex: re.Pattern[str] | None = None

    def found_in(self, message: str) -> bool:
        if self.regex is not None:
            return self.regex.search(message) is not None
        return self.text in message


@dataclass(frozen=True)
class _TermPattern(FilterPattern):
    required: tuple[_Term, ...]
    any_of: tuple[_Term, ...]
    excluded: tuple[_Term, ...]

    def matches(self, message: str, fields: Mapping[str, Any] | None = None) -> bool:
        return (
            all(term.found_in(message) for term in self.required)
            and (not self.any_of or any(term.found_in(message) for term in self.any_of))
            and not any(term.found_in(message) for term in self.excluded)
        )


_TERM = re.compile(r'(?P<prefix>[?-]?)(?:"(?P<quoted>(?:[^"\\]|\\.)*)"|(?P<bare>[^\s"]+))(?=\s|$)')


def _parse_term_pattern(text: str) -> FilterPattern:
    groups: dict[str, list[_Term]] = {"": [], "?": [], "-": []}
    position = _skip_spaces(text, 0)
    while position < len(text):
        found = _TERM.match(text, position)
        if found is None:
            raise _invalid(text, f"cannot read a term at position {position + 1} (unbalanced quote?)")
        groups[found["prefix"]].append(_term(text, found["quoted"], found["bare"]))
        position = _skip_spaces(text, found.end())
    return _TermPattern(tuple(groups[""]), tuple(groups["?"]), tuple(groups["-"]))


def _skip_spaces(text: str, position: int) -> int:
    while position < len(text) and text[position].isspace():
        position += 1
    return position


def _term(pattern: str, quoted: str | None, bare: str | None) -> _Term:
    if quoted is not None:
        return _Term(_unescape(quoted))
    assert bare is not None  # the regex matched one of the two alternatives
    if len(bare) >= 2 and bare.startswith("%") and bare.endswith("%"):
        return _Term(bare, _compile_regex(pattern, bare[1:-1]))
    return _Term(bare)


def _unescape(quoted: str) -> str:
    """The text between double quotes, with `\\"` (and any other backslash escape) taken literally."""
    return re.sub(r"\\(.)", r"\1", quoted)


def _compile_regex(pattern: str, expression: str) -> re.Pattern[str]:
    try:
        return re.compile(expression)
    except re.error as error:
        raise _invalid(pattern, f"bad regular expression %{expression}%: {error}") from None


# --- JSON -----------------------------------------------------------------------------------

Selector = tuple[str | int, ...]
_MISSING = object()


class _Node(ABC):
    @abstractmethod
    def evaluate(self, document: Mapping[str, Any]) -> bool: ...


@dataclass(frozen=True)
class _And(_Node):
    left: _Node
    right: _Node

    def evaluate(self, document: Mapping[str, Any]) -> bool:
        return self.left.evaluate(document) and self.right.evaluate(document)


@dataclass(frozen=True)
class _Or(_Node):
    left: _Node
    right: _Node

    def evaluate(self, document: Mapping[str, Any]) -> bool:
        return self.left.evaluate(document) or self.right.evaluate(document)


@dataclass(frozen=True)
class _Value:
    """The right-hand side of a comparison: a number, a string (with `*` wildcards) or a regex."""

    text: str
    number: float | None = None
    regex: re.Pattern[str] | None = None

    def equals(self, value: Any) -> bool:
        if self.number is not None and _is_number(value):
            return bool(value == self.number)
        as_text = _as_text(value)
        if as_text is None:
            return False
        if self.regex is not None:
            return self.regex.search(as_text) is not None
        return _wildcard(self.text).fullmatch(as_text) is not None


@dataclass(frozen=True)
class _Comparison(_Node):
    selector: Selector
    operator: str
    value: _Value

    def evaluate(self, document: Mapping[str, Any]) -> bool:
        found = _select(document, self.selector)
        # A missing field matches neither `=` nor `!=`: absence is what NOT EXISTS asks about.
        if found is _MISSING:
            return False
        if self.operator == "=":
            return self.value.equals(found)
        if self.operator == "!=":
            return not self.value.equals(found)
        if not _is_number(found) or self.value.number is None:
            return False
        return _NUMERIC[self.operator](float(found), self.value.number)


@dataclass(frozen=True)
class _Check(_Node):
    """`IS TRUE`, `IS FALSE`, `IS NULL`, `NOT EXISTS`."""

    selector: Selector
    check: str

    def evaluate(self, document: Mapping[str, Any]) -> bool:
        found = _select(document, self.selector)
        if self.check == "NOT EXISTS":
            return found is _MISSING
        if self.check == "IS NULL":
            return found is None
        # `is`, not `==`: 1 and 0 are not TRUE and FALSE.
        return found is (self.check == "IS TRUE")


_NUMERIC: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


@dataclass(frozen=True)
class _JsonPattern(FilterPattern):
    expression: _Node

    def matches(self, message: str, fields: Mapping[str, Any] | None = None) -> bool:
        document = fields if fields is not None else _parse_document(message)
        return document is not None and self.expression.evaluate(document)


def _parse_document(message: str) -> Mapping[str, Any] | None:
    try:
        document = json.loads(message)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def _select(document: Any, selector: Selector) -> Any:
    current = document
    for step in selector:
        if isinstance(step, int):
            if not isinstance(current, list) or step >= len(current):
                return _MISSING
        elif not isinstance(current, Mapping) or step not in current:
            return _MISSING
        current = current[step]
    return current


def _is_number(value: Any) -> bool:
    # JSON's true/false arrive as bool, a subclass of int; they are not numbers here.
    return isinstance(value, int | float) and not isinstance(value, bool)


def _as_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float) or value is None:
        return json.dumps(value)
    return None


def _wildcard(text: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in text.split("*")), re.DOTALL)


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<regex>%(?:[^%\\]|\\.)+%)
      | (?P<symbol>&&|\|\||!=|<=|>=|=|<|>|\(|\))
      | (?P<word>[^\s()=!<>&|"%]+)
    )""",
    re.VERBOSE,
)
_SELECTOR_STEP = re.compile(r"\.(?P<name>[^.\[\]]+)|\[(?P<index>\d+)\]")
_CHECKS = {("IS", "TRUE"), ("IS", "FALSE"), ("IS", "NULL"), ("NOT", "EXISTS")}


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str


def _parse_json_pattern(text: str) -> FilterPattern:
    if not text.endswith("}"):
        raise _invalid(text, "a JSON pattern must end with }")
    tokens = _tokenize(text, text[1:-1])
    if not tokens:
        raise _invalid(text, "the JSON pattern is empty")
    parser = _JsonParser(text, tokens)
    expression = parser.expression()
    parser.expect_end()
    return _JsonPattern(expression)


def _tokenize(pattern: str, body: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while body[position:].strip():
        found = _TOKEN.match(body, position)
        if found is None or found.lastgroup is None:
            raise _invalid(pattern, f"unexpected {body[position:].strip()[:20]!r}")
        tokens.append(_Token(found.lastgroup, found[found.lastgroup]))
        position = found.end()
    return tokens


class _JsonParser:
    """Recursive descent: `||` binds looser than `&&`; parentheses group."""

    def __init__(self, pattern: str, tokens: Sequence[_Token]) -> None:
        self._pattern = pattern
        self._tokens = tokens
        self._position = 0

    def expression(self) -> _Node:
        node = self._conjunction()
        while self._accept("||"):
            node = _Or(node, self._conjunction())
        return node

    def expect_end(self) -> None:
        if self._position < len(self._tokens):
            raise self._error(f"unexpected {self._tokens[self._position].text!r}")

    def _conjunction(self) -> _Node:
        node = self._primary()
        while self._accept("&&"):
            node = _And(node, self._primary())
        return node

    def _primary(self) -> _Node:
        if self._accept("("):
            node = self.expression()
            if not self._accept(")"):
                raise self._error("missing )")
            return node
        selector = self._selector(self._next("a selector like $.field"))
        operator = self._next("an operator (=, !=, <, <=, >, >=, IS, NOT EXISTS)")
        if (operator.text.upper(), self._peek_text().upper()) in _CHECKS:
            check = f"{operator.text.upper()} {self._next('').text.upper()}"
            return _Check(selector, check)
        if operator.kind != "symbol" or operator.text not in ("=", "!=", "<", "<=", ">", ">="):
            raise self._error(f"expected an operator after the selector, not {operator.text!r}")
        value = self._value(self._next("a value"))
        if operator.text not in ("=", "!=") and value.number is None:
            raise self._error(f"{operator.text} compares numbers, not {value.text!r}")
        return _Comparison(selector, operator.text, value)

    def _selector(self, token: _Token) -> Selector:
        text = token.text
        if token.kind != "word" or not text.startswith("$"):
            raise self._error(f"expected a selector like $.field, not {text!r}")
        steps: list[str | int] = []
        position = 1
        while position < len(text):
            step = _SELECTOR_STEP.match(text, position)
            if step is None:
                raise self._error(f"cannot read the selector {text!r}")
            steps.append(int(step["index"]) if step["index"] is not None else step["name"])
            position = step.end()
        if not steps:
            raise self._error("the selector $ needs a field: $.field")
        return tuple(steps)

    def _value(self, token: _Token) -> _Value:
        if token.kind == "string":
            return _Value(_unescape(token.text[1:-1]))
        if token.kind == "regex":
            return _Value(token.text, regex=_compile_regex(self._pattern, token.text[1:-1]))
        if token.kind != "word":
            raise self._error(f"expected a value, not {token.text!r}")
        return _Value(token.text, number=_number(token.text))

    def _accept(self, symbol: str) -> bool:
        if self._position < len(self._tokens) and self._tokens[self._position].text == symbol:
            self._position += 1
            return True
        return False

    def _next(self, expected: str) -> _Token:
        if self._position >= len(self._tokens):
            raise self._error(f"expected {expected} at the end")
        token = self._tokens[self._position]
        self._position += 1
        return token

    def _peek_text(self) -> str:
        return self._tokens[self._position].text if self._position < len(self._tokens) else ""

    def _error(self, reason: str) -> InvalidInputError:
        return _invalid(self._pattern, reason)


def _number(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    # float() also reads "nan" and "inf", which CloudWatch treats as plain words.
    return number if math.isfinite(number) else None
