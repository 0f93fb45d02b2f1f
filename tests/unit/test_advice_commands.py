"""Every `tenancy ...` command the product tells an operator to run (alert texts, diagnose's next
actions, CLI messages, console pages) exists: it names a command, not a group, each option it
names is that command's, and `tenancy <command> --help` succeeds.

The texts are read from the source (tests/source_text.py): every string literal of src/tenancy
(docstrings and comments left out: they are for developers) and every template."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from source_text import SOURCE, string_literals, templates
from tenancy.cli import app

COMMAND = re.compile(r"`tenancy ([^`]+)`|<code>tenancy ([^<]+)</code>")
# A string that is a command line by itself (diagnose's `tenancy repair ... --yes  (why)`).
WHOLE_LINE = re.compile(r"tenancy ([a-z][^(]*?)(?:  \(.*)?", re.DOTALL)
WORD = re.compile(r"[a-z][a-z-]*")


@dataclass(frozen=True)
class Advice:
    where: str
    command: str  # what follows `tenancy `

    def __str__(self) -> str:
        return f"`tenancy {self.command}` ({self.where})"


def advice_in_source() -> list[Advice]:
    found: list[Advice] = []
    for literal in string_literals():
        found += [Advice(literal.where, match.group(1) or match.group(2)) for match in COMMAND.finditer(literal.text)]
        whole = WHOLE_LINE.fullmatch(literal.text)
        if whole is not None:
            found.append(Advice(literal.where, whole.group(1).strip()))
    for path in templates():
        for match in COMMAND.finditer(path.read_text()):
            found.append(Advice(str(path.relative_to(SOURCE)), match.group(1) or match.group(2)))
    return found


def is_group(command: Any) -> bool:
    # Typer vendors its own click: tell a group by its subcommands, not by click's class.
    return isinstance(getattr(command, "commands", None), dict)


def resolve(command: str) -> tuple[list[str], Any, list[str]]:
    """(the command's path, the command, the options the text names), walking the real CLI."""
    current: Any = typer.main.get_command(app)
    path: list[str] = []
    words = command.split()
    while is_group(current) and words and WORD.fullmatch(words[0]):
        child = current.commands.get(words[0])
        if child is None:
            break
        path.append(words.pop(0))
        current = child
    options = [word.split("=", 1)[0] for word in words if word.startswith("--")]
    return path, current, options


ADVICE = advice_in_source()


def test_the_source_names_commands_at_all() -> None:
    # The extraction itself works: these are known to be advised somewhere.
    commands = {advice.command for advice in ADVICE}
    assert "dlq list" in commands
    assert "dlq remove --healed" in commands
    assert any(command.startswith("repair {}") for command in commands)


@pytest.mark.parametrize("advice", ADVICE, ids=str)
def test_every_advised_command_exists_with_the_options_it_names(advice: Advice) -> None:
    path, command, options = resolve(advice.command)

    assert path, f"{advice}: no such command"
    assert not is_group(command), f"{advice}: `tenancy {' '.join(path)}` is a group, not a command"
    known = {name for parameter in command.params for name in (*parameter.opts, *parameter.secondary_opts)}
    assert set(options) <= known, f"{advice}: `tenancy {' '.join(path)}` has no {sorted(set(options) - known)}"
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, f"{advice}: --help failed: {result.output}"
