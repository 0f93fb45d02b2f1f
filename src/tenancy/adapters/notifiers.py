"""Alert destinations (the `Notifier` port): the log, email through the Mailer port, a Slack
incoming webhook and PagerDuty's Events API v2.

The webhook URL and the routing key are secrets: they never reach a log line or an error
message, and httpx's own request log is kept from printing the webhook URL.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import httpx
import structlog
from pydantic import SecretStr

from tenancy.domain.model import OutgoingEmail
from tenancy.errors import ConfigurationError, TransientError
from tenancy.ports import Mailer, Notifier

__all__ = [
    "EmailNotifier",
    "LogNotifier",
    "PagerDutyNotifier",
    "SecretFollowingNotifier",
    "SlackNotifier",
    "UnconfiguredNotifier",
    "alert_line",
]

log = structlog.get_logger(__name__)


def alert_line(rule: str, severity: str, summary: str, resolved: bool) -> str:
    """The one line a human reads in Slack or an email subject."""
    state = "RESOLVED" if resolved else "FIRING"
    return f"[{state}] {rule} ({severity}): {summary}"


class _HideUrlFromHttpxLog(logging.Filter):
    """httpx logs every request's URL at INFO; a Slack webhook URL is itself the credential."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self._url = url

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(self._url in str(argument) for argument in (record.args or ()))


def _hide_from_httpx_log(url: str) -> None:
    logger = logging.getLogger("httpx")
    if not any(isinstance(existing, _HideUrlFromHttpxLog) and existing._url == url for existing in logger.filters):
        logger.addFilter(_HideUrlFromHttpxLog(url))


def _post_json(destination: str, url: str, document: dict[str, Any], timeout: float) -> None:
    """POSTs `document`; any failure becomes a TransientError naming the destination, never the URL."""
    try:
        response = httpx.post(url, json=document, timeout=timeout, follow_redirects=False)
    except httpx.HTTPError as error:
        raise TransientError(f"{destination} unreachable: {type(error).__name__}") from None
    if not response.is_success:
        raise TransientError(f"{destination} answered {response.status_code}")


class LogNotifier:
    """Every alert as a structured log line: the destination that is always there."""

    name = "log"

    def notify(self, *, rule: str, severity: str, summary: str, resolved: bool = False) -> None:
        # `alert_severity`: every log line's own `severity` is its level (logging_setup.add_severity),
        # which would overwrite the alert's.
        if resolved:
            log.info("alert_resolved", rule=rule, alert_severity=severity, summary=summary)
        else:
            log.warning("alert_firing", rule=rule, alert_severity=severity, summary=summary)


class EmailNotifier:
    name = "email"

    def __init__(self, mailer: Mailer, *, to: str, sender: str) -> None:
        self._mailer = mailer
        self._to = to
        self._sender = sender

    def notify(self, *, rule: str, severity: str, summary: str, resolved: bool = False) -> None:
        line = alert_line(rule, severity, summary, resolved)
        text = (
            f"{line}\n\n"
            "RB-001 (Tenant Provisioning Runbook), sections 6 and 7.\n"
            "Run `tenancy alerts check` for the current state and `tenancy dlq list` for failed jobs.\n"
        )
        self._mailer.send(
            OutgoingEmail(
                to=self._to,
                subject=f"[tenancy alert] {line}"[:200],
                text=text,
                sender=self._sender,
                tags={"kind": "alert", "rule": rule, "state": "resolved" if resolved else "firing"},
            )
        )


class SlackNotifier:
    """Posts `{"text": ...}` to a Slack incoming webhook."""

    name = "slack"

    def __init__(self, webhook_url: SecretStr, *, timeout_seconds: float = 5.0) -> None:
        self._webhook_url = webhook_url
        self._timeout = timeout_seconds
        _hide_from_httpx_log(webhook_url.get_secret_value())

    def notify(self, *, rule: str, severity: str, summary: str, resolved: bool = False) -> None:
        document = {"text": alert_line(rule, severity, summary, resolved)}
        _post_json(self.name, self._webhook_url.get_secret_value(), document, self._timeout)


class PagerDutyNotifier:
    """PagerDuty Events API v2: `trigger` while firing, `resolve` after; the rule id is the
    dedup key, so repeated triggers update one incident instead of opening new ones."""

    name = "pagerduty"

    def __init__(self, url: str, routing_key: SecretStr, *, source: str, timeout_seconds: float = 5.0) -> None:
        self._url = url
        self._routing_key = routing_key
        self._source = source
        self._timeout = timeout_seconds

    def notify(self, *, rule: str, severity: str, summary: str, resolved: bool = False) -> None:
        document: dict[str, Any] = {
            "routing_key": self._routing_key.get_secret_value(),
            "event_action": "resolve" if resolved else "trigger",
            "dedup_key": rule,
        }
        if not resolved:
            # PagerDuty caps the summary at 1024 characters.
            document["payload"] = {"summary": summary[:1024], "source": self._source, "severity": severity}
        _post_json(self.name, self._url, document, self._timeout)


class SecretFollowingNotifier:
    """A destination whose secret (Slack's webhook URL, PagerDuty's routing key) is read at each
    alert through `secret` (SSM, cached), so a rotated one is used from the next alert on without
    a restart: `make` builds the destination anew whenever the value changes."""

    def __init__(
        self, name: str, secret: Callable[[], str | None], make: Callable[[SecretStr], Notifier], missing_setting: str
    ) -> None:
        self.name = name
        self._secret = secret
        self._make = make
        self._missing_setting = missing_setting
        self._value: str | None = None
        self._current: Notifier | None = None

    def notify(self, *, rule: str, severity: str, summary: str, resolved: bool = False) -> None:
        value = self._secret()
        if self._current is None or value != self._value:
            self._value = value
            self._current = (
                self._make(SecretStr(value)) if value else UnconfiguredNotifier(self.name, self._missing_setting)
            )
        self._current.notify(rule=rule, severity=severity, summary=summary, resolved=resolved)


class UnconfiguredNotifier:
    """Stands in for a routed destination whose setting is missing, so the gap shows in every
    check's deliveries instead of alerts silently going nowhere."""

    def __init__(self, name: str, missing_setting: str) -> None:
        self.name = name
        self._missing_setting = missing_setting

    def notify(self, *, rule: str, severity: str, summary: str, resolved: bool = False) -> None:
        raise ConfigurationError(f"{self._missing_setting} is not set")
