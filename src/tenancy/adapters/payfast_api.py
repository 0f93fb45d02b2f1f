"""PayFast's subscription API over HTTP (the `SubscriptionApi` port), with httpx.

Every call is signed afresh (`payments.subscription_api`), retried with exponential backoff when
PayFast cannot be reached or answers 5xx/429, and its failure mapped into Tenancy's error tree
here: 404 -> NotFoundError, any other refusal -> PermanentError with PayFast's reason, still
failing after the retries -> TransientError. The passphrase and the signature never reach an
error message or a log line.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
import structlog

from tenancy.domain.billing import PayfastSubscription
from tenancy.errors import InvalidInputError, NotFoundError, PermanentError, TransientError
from tenancy.payments.payfast import encode_value
from tenancy.payments.subscription_api import FieldValue, api_timestamp, signed_headers

__all__ = ["DEFAULT_API_URL", "HttpSubscriptionApi"]

log = structlog.get_logger(__name__)

DEFAULT_API_URL = "https://api.payfast.co.za"
_REASON_LIMIT = 200
# PayFast's refusal of a second cancel says the subscription is cancelled; any other 400 to a
# cancel ("cannot cancel: ...") is a real refusal.
_SAYS_CANCELLED = re.compile(r"\bcancell?ed\b", re.IGNORECASE)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class _RetryableError(Exception):
    """One attempt failed in a way that may pass; `reason` is safe to show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class HttpSubscriptionApi:
    """The subscription API of one merchant. `sandbox` adds PayFast's `testing=true` switch;
    `sleep` and `clock` are injectable so tests neither wait nor depend on the time."""

    def __init__(
        self,
        *,
        merchant_id: str,
        # Or a function answering the current one (read through SSM's cache): a rotated
        # passphrase signs the next call, without a restart.
        passphrase: str | Callable[[], str | None] | None,
        base_url: str = DEFAULT_API_URL,
        sandbox: bool = False,
        timeout_seconds: float = 10.0,
        max_attempts: int = 3,
        backoff_seconds: float = 0.5,
        backoff_cap_seconds: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = _utc_now,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._merchant_id = merchant_id
        self._passphrase = passphrase
        self._base_url = base_url.rstrip("/")
        self._query = {"testing": "true"} if sandbox else {}
        self._max_attempts = max_attempts
        self._backoff_seconds = backoff_seconds
        self._backoff_cap_seconds = backoff_cap_seconds
        self._sleep = sleep
        self._clock = clock
        self._client = httpx.Client(timeout=timeout_seconds, follow_redirects=False, transport=transport)

    def fetch(self, token: str) -> PayfastSubscription:
        answer = self._call("fetch", "GET", token)
        return _subscription(token, answer)

    def pause(self, token: str, cycles: int = 1) -> None:
        _check_count("cycles", cycles, minimum=1)
        self._call("pause", "PUT", token, {"cycles": cycles})

    def unpause(self, token: str) -> None:
        self._call("unpause", "PUT", token)

    def cancel(self, token: str) -> None:
        self._call("cancel", "PUT", token)

    def update(
        self,
        token: str,
        *,
        amount_cents: int | None = None,
        frequency: int | None = None,
        run_date: str | None = None,
        cycles: int | None = None,
    ) -> None:
        body: dict[str, FieldValue] = {}
        if amount_cents is not None:
            _check_count("amount_cents", amount_cents, minimum=1)
            body["amount"] = amount_cents
        if frequency is not None:
            body["frequency"] = int(frequency)
        if run_date is not None:
            body["run_date"] = run_date
        if cycles is not None:
            _check_count("cycles", cycles, minimum=0)
            body["cycles"] = cycles
        if body:
            self._call("update", "PATCH", token, body)

    def close(self) -> None:
        self._client.close()

    def _call(self, call: str, method: str, token: str, body: Mapping[str, FieldValue] | None = None) -> Any:
        """The answer's JSON (None if it has none) after at most `max_attempts` tries."""
        # Every call is retried: fetch, cancel and update repeat harmlessly; a pause or unpause
        # whose answer was lost may meet "already paused"/"not paused" on its retry (a PermanentError
        # the caller can settle with a fetch).
        url = f"{self._base_url}/subscriptions/{quote(token, safe='')}/{call}"
        for attempt in range(1, self._max_attempts + 1):
            try:
                return self._attempt(call, method, url, token, body)
            except _RetryableError as failure:
                if attempt == self._max_attempts:
                    raise TransientError(
                        f"PayFast subscription API {call}: {failure.reason} after {attempt} attempts"
                    ) from None
                delay = min(self._backoff_seconds * 2 ** (attempt - 1), self._backoff_cap_seconds)
                log.warning("payfast_api_retry", call=call, attempt=attempt, reason=failure.reason, delay=delay)
                self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _attempt(self, call: str, method: str, url: str, token: str, body: Mapping[str, FieldValue] | None) -> Any:
        # A fresh timestamp, hence a fresh signature, on every attempt: PayFast may refuse stale ones.
        passphrase = self._passphrase() if callable(self._passphrase) else self._passphrase
        headers = signed_headers(
            merchant_id=self._merchant_id,
            passphrase=passphrase,
            timestamp=api_timestamp(self._clock()),
            fields={**self._query, **(body or {})},
        )
        try:
            response = self._client.request(
                method, url, params=self._query, headers=headers, json=dict(body) if body else None
            )
        except httpx.TransportError as error:
            # Only the error's type: its text may quote the request.
            raise _RetryableError(f"unreachable ({type(error).__name__})") from None
        if response.status_code >= 500 or response.status_code == 429:
            raise _RetryableError(f"answered {response.status_code}")
        if response.is_success:
            return _json_or_none(response)
        reason = self._reason(response, headers["signature"], passphrase)
        if response.status_code == 404:
            raise NotFoundError(f"PayFast knows no subscription {token!r} ({call}: {reason})")
        if call == "cancel" and response.status_code == 400 and _SAYS_CANCELLED.search(reason):
            # PayFast refuses to cancel twice; the subscription is cancelled, which is what was asked.
            log.info("payfast_api_already_cancelled", token=token)
            return None
        raise PermanentError(f"PayFast refused {call} of {token!r}: {response.status_code} {reason}")

    def _reason(self, response: httpx.Response, signature: str, passphrase: str | None) -> str:
        """PayFast's own words for a refusal, short, with anything secret taken out."""
        answer = _json_or_none(response)
        reason: object = None
        if isinstance(answer, dict):
            data = answer.get("data")
            if isinstance(data, dict):
                reason = data.get("message") if isinstance(data.get("message"), str) else data.get("response")
            if not isinstance(reason, str):
                reason = answer.get("message")
        text = reason if isinstance(reason, str) and reason.strip() else response.text or response.reason_phrase
        for secret in (passphrase, signature):
            if secret:
                for form in (secret, quote(secret, safe=""), encode_value(secret)):
                    text = text.replace(form, "***")
        return " ".join(text.split())[:_REASON_LIMIT]


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _check_count(name: str, value: int, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidInputError(f"{name} must be a whole number of at least {minimum}, not {value!r}")


def _subscription(token: str, answer: Any) -> PayfastSubscription:
    """`data.response` of a fetch answer as a PayfastSubscription."""
    data = answer.get("data") if isinstance(answer, dict) else None
    found = data.get("response") if isinstance(data, dict) else None
    if not isinstance(found, dict):
        raise PermanentError(f"PayFast's fetch answer for {token!r} has no data.response")
    try:
        return PayfastSubscription(
            token=str(found.get("token") or token),
            status_text=str(found["status_text"]).upper(),
            amount_cents=int(found["amount"]),
            frequency=int(found["frequency"]),
            cycles=int(found.get("cycles") or 0),
            cycles_complete=int(found.get("cycles_complete") or 0),
            # The date part: a run_date sent with a time of day would otherwise never compare equal.
            run_date=str(found["run_date"])[:10],
        )
    except (KeyError, TypeError, ValueError) as error:
        raise PermanentError(f"PayFast's fetch answer for {token!r} is not readable: {error!r}") from None
