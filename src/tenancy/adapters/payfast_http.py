"""PayFast's server confirmation (check 5) over HTTP: POST the parameter string to its validate URL."""

from __future__ import annotations

import httpx

from tenancy.errors import TransientError

__all__ = ["HttpPaymentConfirmer"]


class HttpPaymentConfirmer:
    def __init__(self, validate_url: str, timeout_seconds: float) -> None:
        self._validate_url = validate_url
        self._client = httpx.Client(timeout=timeout_seconds, follow_redirects=False)

    def confirm(self, parameter_string: str) -> bool:
        try:
            response = self._client.post(
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
        self._client.close()
