"""The secrets Tenancy reads (PayFast's merchant key and passphrase, the webhook secret, the alert
destinations' keys, the service keys' pepper), by name, and where each is read: the settings on the
embedded backend, SSM Parameter Store on AWS (adapters.aws.secrets). One interface, two sources."""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol

from pydantic import SecretStr

from tenancy.config import Settings

__all__ = ["LIVE_REQUIRED", "PLACEHOLDER", "SecretName", "SecretSource", "SettingsSecrets", "parameter_name"]

# What `tenancy aws bootstrap` puts in a parameter it creates, until an operator sets the real value.
PLACEHOLDER = "CHANGE-ME"


class SecretName(StrEnum):
    """Each secret, named as its SSM parameter under TENANCY_SECRETS_PATH; its setting is the same
    name with underscores (`payfast-passphrase`: `payfast_passphrase`, TENANCY_PAYFAST_PASSPHRASE)."""

    PAYFAST_MERCHANT_KEY = "payfast-merchant-key"
    PAYFAST_PASSPHRASE = "payfast-passphrase"  # noqa: S105 - a parameter's name, not a secret
    WEBHOOK_SECRET = "webhook-secret"  # noqa: S105 - a parameter's name, not a secret
    ALERT_SLACK_WEBHOOK_URL = "alert-slack-webhook-url"
    ALERT_PAGERDUTY_ROUTING_KEY = "alert-pagerduty-routing-key"
    SERVICE_KEY_PEPPER = "service-key-pepper"

    @property
    def setting(self) -> str:
        """The Settings field that holds this secret."""
        return self.value.replace("-", "_")

    @property
    def variable(self) -> str:
        """The environment variable the embedded backend reads it from."""
        return f"TENANCY_{self.setting.upper()}"


# Live mode takes real money: it refuses to start while any of these is still a placeholder.
LIVE_REQUIRED = (SecretName.PAYFAST_MERCHANT_KEY, SecretName.PAYFAST_PASSPHRASE, SecretName.SERVICE_KEY_PEPPER)


def parameter_name(path: str, name: SecretName) -> str:
    """The secret's SSM parameter: `/site-builder/dev/` and `payfast-passphrase` make
    `/site-builder/dev/payfast-passphrase`."""
    return f"{path.rstrip('/')}/{name.value}"


class SecretSource(Protocol):
    def get(self, name: SecretName) -> str | None:
        """The secret's current value, None when it is not set. A source that can change (SSM)
        answers from a cache no older than its max age, so a rotated value is picked up."""
        ...


class SettingsSecrets:
    """The secrets as the settings hold them (TENANCY_* variables): the embedded backend's source."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def get(self, name: SecretName) -> str | None:
        value: object = getattr(self._settings, name.setting)
        if isinstance(value, SecretStr):
            return value.get_secret_value()
        return None if value is None else str(value)
