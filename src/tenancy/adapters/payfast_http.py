"""PayFast's server confirmation (check 5) over HTTP: POST the parameter string to its validate URL."""

from __future__ import annotations

import threading

import httpx

from tenancy.errors import TransientError

__all__ = ["HttpPaymentConfirmer"]


class HttpPaymentConfirmer:
    def __init__(self, validate_url: str, timeout_seconds: float) -> None:
        self._validate_url = validate_url
        self._timeout_seconds = timeout_seconds
        self._client: httpx.Client | None = None
        self._client_lock = threading.Lock()

    def _http(self) -> httpx.Client:
        # Made on first use: its TLS context (the CA bundle read and parsed) costs a tenth of a
        # second at every Lambda cold start, and only the ITN function ever confirms a payment.
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = httpx.Client(timeout=self._timeout_seconds, follow_redirects=False)
        return self._client

    def confirm(self, parameter_string: str) -> bool:
        try:
            response = self._http().post(
                self._validate_url,
                content=parameter_string.encode("utf-8"),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
        except httpx.HTTPError as error:
            raise TransientError(f"PayFast validate unreachable: {type(error).__name__}") from None
        if response.status_code >= 500 or response.status_code == 429:
            raise TransientError(f"PayFast validate answered {response.status_code}")
        # PayFast's SDK compares the whole body with "VALID"; anything else is a refusal.
        return response.status_code == 200 and response.text == "VALID"

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
