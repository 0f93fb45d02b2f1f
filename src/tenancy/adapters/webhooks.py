"""Lifecycle events to the Site Builder application as Standard Webhooks (the `EventPublisher` port).

Each event is one signed POST (standardwebhooks.com): `webhook-id` is the event's id, the same on
every attempt, so a receiver can drop a repeat whose first answer was lost; the signature covers
the id, the send time and the body's exact bytes. One attempt per `publish`: the lifecycle outbox
retries. The secret and the signature never reach an error message, and an error names only the
URL's host (a URL may carry a token in its path or query).

`NoSubscriberPublisher` stands in when no webhook URL is configured: no Site Builder is listening,
so there is nobody to tell, and the move is kept in the tenant's history all the same.
"""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import structlog
from standardwebhooks import Webhook
from standardwebhooks.webhooks import EmptyWebhookSecretError

from tenancy.domain.lifecycle import LifecycleEvent, encode_body
from tenancy.errors import ConfigurationError, PermanentError, TransientError

__all__ = ["NoSubscriberPublisher", "WebhookPublisher"]

log = structlog.get_logger(__name__)

# Answers that say "not now" rather than "never": a timeout on the receiver's side, throttling.
_RETRY_LATER_STATUSES = frozenset({408, 429})


def _host(url: str) -> str:
    """The URL's host, checked: refused at start rather than on the first event."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        raise ConfigurationError("the webhook URL is not a valid URL") from None
    if parsed.scheme not in {"http", "https"} or not parsed.host:
        raise ConfigurationError("the webhook URL must be an http(s) URL with a host")
    return parsed.host


def _signer(secret: str) -> Webhook:
    try:
        return Webhook(secret)
    except (ValueError, EmptyWebhookSecretError):
        # Bad base64 or an empty key. Not chained: the library's text could quote the secret.
        raise ConfigurationError("the webhook secret is not a whsec_ base64 key") from None


class WebhookPublisher:
    """Signs and POSTs each event to one URL. 2xx is delivered; 5xx, 408, 429, a timeout or no
    connection is TransientError; any other answer (a 4xx, a redirect) is PermanentError."""

    def __init__(
        self, url: str, secret: str, timeout_seconds: float, transport: httpx.BaseTransport | None = None
    ) -> None:
        self._url = url
        self._host = _host(url)
        self._signer = _signer(secret)
        # Redirects are not followed: a signed event goes only where it was configured to go.
        self._client = httpx.Client(timeout=timeout_seconds, follow_redirects=False, transport=transport)

    def publish(self, event: LifecycleEvent) -> None:
        body = encode_body(event.body())
        # Whole seconds: the header carries whole seconds, and the signature must cover the same value.
        sent_at = datetime.now(UTC).replace(microsecond=0)
        headers = {
            "webhook-id": event.event_id,
            "webhook-timestamp": str(int(sent_at.timestamp())),
            "webhook-signature": self._signer.sign(event.event_id, sent_at, body),
            "content-type": "application/json",
        }
        # Only the error's type from here on: httpx's own text may quote the request.
        try:
            response = self._client.post(self._url, content=body.encode(), headers=headers)
        except httpx.TimeoutException as error:
            raise TransientError(f"webhook to {self._host}: timed out ({type(error).__name__})") from None
        except httpx.TransportError as error:
            raise TransientError(f"webhook to {self._host}: unreachable ({type(error).__name__})") from None
        except httpx.HTTPError as error:
            raise TransientError(f"webhook to {self._host}: failed ({type(error).__name__})") from None
        status = response.status_code
        if response.is_success:
            log.info("lifecycle_event_delivered", event_id=event.event_id, event_type=event.type.value, host=self._host)
            return
        if status >= 500 or status in _RETRY_LATER_STATUSES:
            raise TransientError(f"webhook to {self._host}: answered {status}")
        raise PermanentError(f"webhook to {self._host}: answered {status}")

    def close(self) -> None:
        self._client.close()


class NoSubscriberPublisher:
    """The publisher when no webhook URL is set: each event is delivered to nobody, at once."""

    def publish(self, event: LifecycleEvent) -> None:
        # Not an error: a notice kept pending for a subscriber that does not exist would only
        # grow the outbox and, once dead, send an operator after a problem nobody has.
        return None

    def close(self) -> None:
        return None
