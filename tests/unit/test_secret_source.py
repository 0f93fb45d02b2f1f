"""The secrets' one interface (tenancy.secret_source): each secret is a setting the embedded
backend reads from its TENANCY_* variable; with TENANCY_SECRETS_PATH on AWS the settings leave
the secrets to SSM (tests/contract/test_secrets_ssm.py); and a service given a source reads the
secret from it at each use, so a rotated value is used without building the services again."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from pydantic import ValidationError

from tenancy.adapters.payfast_api import HttpSubscriptionApi
from tenancy.bootstrap import Services, build
from tenancy.config import PayfastMode, Settings
from tenancy.domain.model import PaymentVerdict
from tenancy.payments.simulator import build_itn, encode_form, new_subscription_token
from tenancy.secret_source import SecretName, SettingsSecrets, parameter_name

from helpers import make_settings
from payfast_api_standin import running_payfast_api

TOKEN = "2afa4575-5628-051a-d0ed-4e071b56a7b0"


class HeldSecrets:
    """A source whose values the test changes, as an operator rotates a parameter."""

    def __init__(self, values: dict[SecretName, str]) -> None:
        self.values = values

    def get(self, name: SecretName) -> str | None:
        return self.values.get(name)


def test_every_secret_is_a_setting_read_from_its_tenancy_variable() -> None:
    for name in SecretName:
        assert name.setting in Settings.model_fields
        assert name.variable == f"TENANCY_{name.value.replace('-', '_').upper()}"
    assert parameter_name("/site-builder/dev/", SecretName.PAYFAST_PASSPHRASE) == "/site-builder/dev/payfast-passphrase"
    assert parameter_name("/site-builder/dev", SecretName.PAYFAST_PASSPHRASE) == "/site-builder/dev/payfast-passphrase"


def test_the_embedded_backend_reads_its_secrets_from_the_settings(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        payfast_passphrase="embedded-passphrase",
        alert_slack_webhook_url="https://hooks.slack.invalid/services/x",
        service_key_pepper="p" * 32,
    )
    secrets = SettingsSecrets(settings)

    assert secrets.get(SecretName.PAYFAST_PASSPHRASE) == "embedded-passphrase"
    assert secrets.get(SecretName.ALERT_SLACK_WEBHOOK_URL) == "https://hooks.slack.invalid/services/x"
    assert secrets.get(SecretName.SERVICE_KEY_PEPPER) == "p" * 32
    assert secrets.get(SecretName.PAYFAST_MERCHANT_KEY) == settings.payfast_merchant_key.get_secret_value()
    assert secrets.get(SecretName.WEBHOOK_SECRET) is None
    assert secrets.get(SecretName.ALERT_PAGERDUTY_ROUTING_KEY) is None


def test_the_secrets_path_is_an_absolute_ssm_path(tmp_path: Path) -> None:
    assert make_settings(tmp_path, secrets_path="").secrets_path is None
    assert make_settings(tmp_path, env="prod").effective_secrets_path == "/site-builder/prod/"
    with pytest.raises(ValidationError, match="must be an SSM path starting with /"):
        make_settings(tmp_path, secrets_path="site-builder/dev/")


def test_live_mode_on_aws_leaves_the_credential_checks_to_the_secrets_read_from_ssm(tmp_path: Path) -> None:
    live = {"backend": "aws", "payfast_mode": PayfastMode.LIVE, "payfast_merchant_id": "10012345"}

    # Nothing in the environment: the passphrase is read (and judged) when the services are built.
    assert make_settings(tmp_path, **live, secrets_path="/site-builder/prod/").secrets_in_ssm
    with pytest.raises(ValidationError, match="TENANCY_PAYFAST_PASSPHRASE is required in live mode"):
        make_settings(tmp_path, **live, payfast_passphrase="")


@pytest.fixture
def offline(tmp_path: Path) -> Iterator[Services]:
    """Embedded services checking ITNs offline (no PayFast to confirm them with here)."""
    built = build(make_settings(tmp_path / "home", payfast_mode=PayfastMode.OFFLINE))
    yield built
    built.close()


def test_the_intake_checks_each_itn_with_the_passphrase_its_source_holds_now(offline: Services) -> None:
    held = HeldSecrets({SecretName.PAYFAST_PASSPHRASE: "first-passphrase"})
    rotating = dataclasses.replace(offline, secret_source=held)

    def verdict(passphrase: str) -> PaymentVerdict:
        transaction_id = f"TXN-{new_subscription_token()[:10].upper()}"
        fields = build_itn(
            transaction_id=transaction_id,
            email=f"{transaction_id.lower()}@example.com",
            plan="professional",
            amount="299.00",
            merchant_id=offline.settings.payfast_merchant_id,
            passphrase=passphrase,
            token=new_subscription_token(),
            billing_date=offline.clock.now().date().isoformat(),
        )
        return rotating.intake.receive(encode_form(fields), "197.97.145.145").verdict

    assert verdict("first-passphrase") is PaymentVerdict.ACCEPTED
    held.values[SecretName.PAYFAST_PASSPHRASE] = "second-passphrase"

    # The same intake, not built again: the new passphrase alone is accepted.
    assert verdict("second-passphrase") is PaymentVerdict.ACCEPTED
    assert verdict("first-passphrase") is PaymentVerdict.REJECTED


def test_the_subscription_api_signs_each_call_with_the_passphrase_its_source_holds_now() -> None:
    held = HeldSecrets({SecretName.PAYFAST_PASSPHRASE: "first-passphrase"})
    with running_payfast_api(merchant_id="10000100", passphrase="first-passphrase") as payfast:
        payfast.add(TOKEN, amount=29900, frequency=3, run_date="2027-01-06", cycles_complete=3)
        api = HttpSubscriptionApi(
            merchant_id="10000100",
            passphrase=partial(held.get, SecretName.PAYFAST_PASSPHRASE),
            base_url=payfast.url,
            sandbox=True,
            max_attempts=1,
        )
        assert api.fetch(TOKEN).token == TOKEN

        # Rotated at PayFast and in the source: the same client's next call is signed with the new one.
        payfast.passphrase = "second-passphrase"
        held.values[SecretName.PAYFAST_PASSPHRASE] = "second-passphrase"
        assert api.fetch(TOKEN).token == TOKEN
        api.close()


def test_services_answer_a_secret_as_their_source_holds_it_now(offline: Services) -> None:
    held = HeldSecrets({SecretName.PAYFAST_PASSPHRASE: "first-passphrase"})
    rotating = dataclasses.replace(offline, secret_source=held)

    # Without a source (the embedded backend), the settings answer.
    assert offline.current_secret(SecretName.PAYFAST_PASSPHRASE) == offline.settings.passphrase
    assert rotating.current_secret(SecretName.PAYFAST_PASSPHRASE) == "first-passphrase"
    held.values[SecretName.PAYFAST_PASSPHRASE] = "second-passphrase"
    assert rotating.current_secret(SecretName.PAYFAST_PASSPHRASE) == "second-passphrase"
