"""Structured logging (structlog): one JSON object per line, secrets redacted before rendering,
to stderr and (given a log directory) appended to one file per component: itn.log,
provisioning.log, app.log, which `tenancy logs` searches like CloudWatch Logs."""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any, TextIO

import structlog

from tenancy.domain.model import LogComponent
from tenancy.private_files import PRIVATE_FILE_MODE, private_directory, tighten_descriptor

__all__ = ["REDACTED", "ComponentLogFiles", "component_for", "configure_logging", "redact_secrets"]

REDACTED = "[redacted]"
_SECRET_MARKERS = ("password", "passphrase", "secret", "token", "merchant_key", "session", "authorization")


def redact_secrets(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Replaces the value of any key that names a secret, however a caller spelled it."""
    for key in list(event):
        if key != "event" and _names_a_secret(key):
            event[key] = REDACTED
    return event


@functools.lru_cache(maxsize=4096)
def _names_a_secret(key: str) -> bool:
    # Every log line of every request passes here; its keys are the code's few names, so each
    # is judged once rather than lower-cased and searched for every marker on every line.
    lowered = key.lower()
    return any(marker in lowered for marker in _SECRET_MARKERS)


# Loggers are named after their module (`structlog.get_logger(__name__)`); these packages
# stand in for RB-001's Lambda log groups (site-builder-{env}-itn-handler, -provisioning).
_ITN_LOGGERS = ("tenancy.payments", "tenancy.web.routes.itn")
_PROVISIONING_LOGGERS = ("tenancy.provisioning", "tenancy.runbook")
# The web app's error handlers log for every route; what they say about the ITN route is ITN news.
_ITN_PATH = "/payments/payfast/itn"


def component_for(logger_name: str, event: Mapping[str, Any]) -> LogComponent:
    """The log an event belongs in, decided by the module that logged it."""
    if _within(logger_name, _ITN_LOGGERS) or event.get("path") == _ITN_PATH:
        return LogComponent.ITN
    if _within(logger_name, _PROVISIONING_LOGGERS):
        return LogComponent.PROVISIONING
    return LogComponent.APP


def _within(logger_name: str, packages: tuple[str, ...]) -> bool:
    return any(logger_name == package or logger_name.startswith(f"{package}.") for package in packages)


class _NamedPrintLogger(structlog.PrintLogger):
    """A PrintLogger that keeps the name it was asked for: PrintLoggerFactory drops it, and
    the file sink needs it to pick the component."""

    def __init__(self, file: TextIO | None = None, name: str = "") -> None:
        super().__init__(file)
        self.name = name


class _NamedPrintLoggerFactory:
    def __call__(self, *args: Any) -> structlog.PrintLogger:
        name = args[0] if args and isinstance(args[0], str) else ""
        # sys.stderr as it is now, not at configure time: whoever swaps it (pytest) gets the lines.
        return _NamedPrintLogger(sys.stderr, name)


def add_severity(_logger: Any, method_name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """`severity`: the level upper-cased, on every line of every sink, because CloudWatch filter
    terms are case-sensitive and RB-001 searches Lambda logs for `ERROR`."""
    event["severity"] = str(event.get("level", method_name)).upper()
    return event


class ComponentLogFiles:
    """A processor that appends each event, as one JSON line, to `<component>.log` in `directory`.

    The line also carries `severity` (the level upper-cased, so CloudWatch-style `ERROR` finds
    errors as it does in Lambda logs), `component` and `logger`. Each line is written with one
    O_APPEND write, so any number of processes can share the files without interleaving. A
    failing write is reported once on stderr and never fails the operation being logged.

    The logs carry emails and account events, so the directory is 0700 and the files 0600 (made
    so when created, and tightened when first opened here if an older version left them looser).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._render = structlog.processors.JSONRenderer()
        self._warned = False
        self._checked: set[Path] = set()
        try:
            # TENANCY_HOME/logs; TENANCY_HOME is made 0700 too when it is made here (see private_files).
            private_directory(directory)
        except OSError as error:
            self._warn_once(directory, error)

    def __call__(self, logger: Any, method_name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        name = getattr(logger, "name", "")
        name = name if isinstance(name, str) else ""
        component = component_for(name, event)
        line = {
            **event,
            "severity": str(event.get("level", method_name)).upper(),
            "component": component.value,
            "logger": name,
        }
        rendered = self._render(logger, method_name, line)
        text = rendered if isinstance(rendered, str) else rendered.decode()
        self._append(self.directory / f"{component.value}.log", f"{text}\n".encode())
        return event

    def _append(self, path: Path, data: bytes) -> None:
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE_FILE_MODE)
            try:
                if path not in self._checked:
                    # Once per file and process: a file an older version made 0640 stops being readable.
                    self._checked.add(path)
                    tighten_descriptor(descriptor)
                # Normally one write; a short one (a full disk) goes on from where it stopped.
                while data:
                    data = data[os.write(descriptor, data) :]
            finally:
                os.close(descriptor)
        except OSError as error:
            self._warn_once(path, error)

    def _warn_once(self, path: Path, error: OSError) -> None:
        # Not through structlog: this runs inside its processor chain.
        if not self._warned:
            self._warned = True
            warning = {"event": "log_file_unwritable", "level": "warning", "path": str(path), "error": str(error)}
            sys.stderr.write(json.dumps(warning) + "\n")


def _off_the_terminal(_logger: Any, _method: str, _event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """The last processor when the terminal gets no log lines: the files already have the event."""
    raise structlog.DropEvent


def configure_logging(
    level: str = "info", *, json_lines: bool = True, log_dir: Path | None = None, terminal: bool = True
) -> None:
    """Logs at `level` and above to stderr (JSON lines or, for a console, colours) and, with
    `log_dir`, appends every event to its component's file there as well. With `terminal` off
    (one-shot CLI commands, whose output is their own) events go to the files only, and the
    libraries' own logging shows only warnings and errors."""
    numeric_level = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    renderer: Any = structlog.processors.JSONRenderer() if json_lines else structlog.dev.ConsoleRenderer()
    file_sink = [ComponentLogFiles(log_dir)] if log_dir is not None else []
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            add_severity,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_secrets,
            structlog.processors.format_exc_info,
            *file_sink,
            renderer if terminal else _off_the_terminal,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=_NamedPrintLoggerFactory(),
        cache_logger_on_first_use=True,
    )
    library_level = numeric_level if terminal else max(numeric_level, logging.WARNING)
    logging.basicConfig(level=library_level, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
    # boto3's INFO lines (credentials found, endpoint chosen) come with every AWS command and
    # tell an operator nothing; its warnings and errors still show, and all of it at debug.
    for chatty in ("boto3", "botocore", "urllib3"):
        logging.getLogger(chatty).setLevel(numeric_level if numeric_level <= logging.DEBUG else logging.WARNING)
