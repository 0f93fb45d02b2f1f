"""The secrets on AWS (issue 19), on moto's SSM: read from SecureString parameters under
TENANCY_SECRETS_PATH when the services are built, a rotated one picked up once the cache is older
than TENANCY_SECRETS_MAX_AGE_SECONDS (no rebuild, no redeploy), a missing one a start-up error
naming it; `tenancy aws bootstrap` creates the parameters it finds missing and overwrites none;
live mode refuses to start on a placeholder."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn

import pytest
import structlog
from botocore.exceptions import EndpointConnectionError
from typer.testing import CliRunner

from tenancy import lambdas
from tenancy.adapters.aws.secrets import SsmSecrets, ensure_secret_parameters
from tenancy.bootstrap import Services, build, service_key_pepper
from tenancy.cli import app, main
from tenancy.cli import common as cli_common
from tenancy.config import PAYFAST_SANDBOX_MERCHANT_KEY, PAYFAST_SANDBOX_PASSPHRASE, PayfastMode, Settings
from tenancy.domain.model import PaymentVerdict
from tenancy.errors import ConfigurationError
from tenancy.logging_setup import configure_logging
from tenancy.payments.simulator import build_itn, encode_form, new_subscription_token
from tenancy.secret_source import PLACEHOLDER, SecretName, SettingsSecrets, parameter_name

from aws_support import AwsContext
from helpers import ManualClock
from servers import WebhookReceiver

PATH = "/site-builder/dev/"
PAYFAST_ADDRESS = "197.97.145.145"
MERCHANT_ID = "10012345"
REAL = {
    SecretName.PAYFAST_MERCHANT_KEY: "merchant-key-from-ssm",
    SecretName.PAYFAST_PASSPHRASE: "passphrase-from-ssm",
    SecretName.WEBHOOK_SECRET: "whsec_c2VjcmV0LWZyb20tc3Nt",
    SecretName.ALERT_SLACK_WEBHOOK_URL: "https://hooks.slack.invalid/services/from-ssm",
    SecretName.ALERT_PAGERDUTY_ROUTING_KEY: "routing-key-from-ssm",
    SecretName.SERVICE_KEY_PEPPER: "pepper-from-ssm-0123456789abcdef0123456789",
}


def ssm_settings(aws: AwsContext, **overrides: Any) -> Settings:
    """The moto context's settings with the secrets left to SSM: none of them given as a setting."""
    given = {name: value for name, value in aws.settings.model_dump().items() if name not in secret_settings()}
    defaults = {"payfast_mode": PayfastMode.OFFLINE, "payfast_merchant_id": MERCHANT_ID, "secrets_path": PATH}
    return Settings(**{**given, **defaults, **overrides})


def secret_settings() -> set[str]:
    return {name.setting for name in SecretName}


def put(aws: AwsContext, values: dict[SecretName, str]) -> None:
    ssm = aws.session.client("ssm")
    for name, value in values.items():
        ssm.put_parameter(Name=parameter_name(PATH, name), Value=value, Type="SecureString", Overwrite=True)


def itn_verdict(services: Services, passphrase: str) -> tuple[PaymentVerdict, tuple[str, ...]]:
    """A first charge of Professional signed with `passphrase`, as PayFast would send it."""
    transaction_id = f"TXN-{new_subscription_token()[:10].upper()}"
    fields = build_itn(
        transaction_id=transaction_id,
        email=f"{transaction_id.lower()}@example.com",
        plan="professional",
        amount="299.00",
        merchant_id=MERCHANT_ID,
        passphrase=passphrase,
        token=new_subscription_token(),
        billing_date=services.clock.now().date().isoformat(),
    )
    record = services.intake.receive(encode_form(fields), PAYFAST_ADDRESS)
    return record.verdict, record.reasons


def test_the_secrets_are_read_from_their_ssm_parameters_when_the_services_are_built(aws: AwsContext) -> None:
    put(aws, REAL)

    services = build(ssm_settings(aws), clock=ManualClock())

    settings = services.settings
    assert settings.payfast_merchant_key.get_secret_value() == REAL[SecretName.PAYFAST_MERCHANT_KEY]
    assert settings.passphrase == REAL[SecretName.PAYFAST_PASSPHRASE]
    assert settings.webhook_secret is not None
    assert settings.webhook_secret.get_secret_value() == REAL[SecretName.WEBHOOK_SECRET]
    assert settings.alert_slack_webhook_url is not None
    assert settings.alert_slack_webhook_url.get_secret_value() == REAL[SecretName.ALERT_SLACK_WEBHOOK_URL]
    assert settings.alert_pagerduty_routing_key is not None
    assert settings.alert_pagerduty_routing_key.get_secret_value() == REAL[SecretName.ALERT_PAGERDUTY_ROUTING_KEY]
    assert service_key_pepper(settings) == REAL[SecretName.SERVICE_KEY_PEPPER].encode()
    assert itn_verdict(services, REAL[SecretName.PAYFAST_PASSPHRASE])[0] is PaymentVerdict.ACCEPTED


def test_a_missing_parameter_is_a_start_up_error_naming_it(aws: AwsContext) -> None:
    put(aws, {name: value for name, value in REAL.items() if name is not SecretName.PAYFAST_PASSPHRASE})

    with pytest.raises(ConfigurationError) as refused:
        build(ssm_settings(aws), clock=ManualClock())

    message = str(refused.value)
    assert "missing SSM parameter /site-builder/dev/payfast-passphrase:" in message
    assert "tenancy aws bootstrap" in message
    # Only the missing one is named, and no value is shown.
    assert "payfast-merchant-key" not in message
    assert not any(value in message for value in REAL.values())


def test_a_rotated_passphrase_is_picked_up_without_a_rebuild_once_the_cache_is_old(aws: AwsContext) -> None:
    put(aws, REAL)
    clock = ManualClock()
    services = build(ssm_settings(aws, secrets_max_age_seconds=300), clock=clock)
    old, new = REAL[SecretName.PAYFAST_PASSPHRASE], "rotated-passphrase"
    assert itn_verdict(services, old)[0] is PaymentVerdict.ACCEPTED

    put(aws, {SecretName.PAYFAST_PASSPHRASE: new})
    # Within the max age the cached passphrase still answers: SSM is not read for every ITN.
    clock.advance(299)
    assert itn_verdict(services, new) == (PaymentVerdict.REJECTED, ("signature mismatch",))
    clock.advance(2)

    # The same services (no rebuild, no redeploy) now check with the rotated passphrase alone.
    assert itn_verdict(services, new)[0] is PaymentVerdict.ACCEPTED
    assert itn_verdict(services, old) == (PaymentVerdict.REJECTED, ("signature mismatch",))


def test_placeholders_count_as_unset_outside_live_mode(aws: AwsContext) -> None:
    ensure_secret_parameters(aws.session.client("ssm"), PATH, lambda name: PLACEHOLDER)

    settings = build(ssm_settings(aws, payfast_merchant_id="10000100"), clock=ManualClock()).settings

    # Sandbox and offline fall back to PayFast's public sandbox credentials; the rest stay unset.
    assert settings.payfast_merchant_key.get_secret_value() == PAYFAST_SANDBOX_MERCHANT_KEY
    assert settings.passphrase == PAYFAST_SANDBOX_PASSPHRASE
    assert settings.webhook_secret is None
    assert settings.alert_slack_webhook_url is None
    assert settings.alert_pagerduty_routing_key is None
    assert settings.service_key_pepper is None


def test_live_mode_refuses_to_start_while_a_required_secret_is_a_placeholder(aws: AwsContext) -> None:
    ssm = aws.session.client("ssm")
    ensure_secret_parameters(
        ssm, PATH, lambda name: REAL[name] if name is SecretName.SERVICE_KEY_PEPPER else PLACEHOLDER
    )
    live = ssm_settings(aws, payfast_mode=PayfastMode.LIVE)

    with pytest.raises(ConfigurationError) as refused:
        build(live, clock=ManualClock())

    message = str(refused.value)
    assert "live mode refuses to start" in message
    assert "/site-builder/dev/payfast-merchant-key, /site-builder/dev/payfast-passphrase" in message
    assert "service-key-pepper" not in message  # it holds a real value
    # The optional ones (webhook, Slack, PagerDuty) may stay placeholders; with the real PayFast
    # values set, live mode starts.
    put(aws, {name: REAL[name] for name in (SecretName.PAYFAST_MERCHANT_KEY, SecretName.PAYFAST_PASSPHRASE)})
    started = build(live, clock=ManualClock()).settings
    assert started.passphrase == REAL[SecretName.PAYFAST_PASSPHRASE]
    assert started.alert_slack_webhook_url is None


def test_live_mode_refuses_the_public_sandbox_credentials_stored_in_ssm(aws: AwsContext) -> None:
    put(aws, {**REAL, SecretName.PAYFAST_PASSPHRASE: PAYFAST_SANDBOX_PASSPHRASE})

    with pytest.raises(ConfigurationError, match="sandbox credentials"):
        build(ssm_settings(aws, payfast_mode=PayfastMode.LIVE), clock=ManualClock())


def test_a_secret_ssm_holds_is_judged_as_its_setting_is_without_showing_it(aws: AwsContext) -> None:
    short = "a-short-pepper"
    put(aws, {**REAL, SecretName.SERVICE_KEY_PEPPER: short})

    with pytest.raises(ConfigurationError) as refused:
        build(ssm_settings(aws), clock=ManualClock())

    message = str(refused.value)
    assert "/site-builder/dev/service-key-pepper" in message
    assert "at least 32 characters" in message
    assert short not in message


def test_a_secret_given_as_a_plain_variable_is_refused_when_the_secrets_live_in_ssm(aws: AwsContext) -> None:
    put(aws, REAL)

    with pytest.raises(ConfigurationError) as refused:
        build(ssm_settings(aws, payfast_passphrase="from-the-environment"), clock=ManualClock())

    assert "TENANCY_PAYFAST_PASSPHRASE must not be set with TENANCY_SECRETS_PATH" in str(refused.value)


def bootstrap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, str], str]:
    monkeypatch.setenv("TENANCY_HOME", str(tmp_path / "cli-home"))
    monkeypatch.setenv("TENANCY_AWS_REGION", "eu-west-1")
    result = CliRunner().invoke(app, ["aws", "bootstrap", "--format", "json"])
    assert result.exit_code == 0, result.output
    exported: dict[str, str] = json.loads(result.stdout)
    return exported, result.stderr


def test_bootstrap_creates_each_missing_parameter_as_a_secure_string_and_prints_only_its_name(
    aws: AwsContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in SecretName:
        monkeypatch.delenv(name.variable, raising=False)

    exported, stderr = bootstrap(tmp_path, monkeypatch)

    assert exported["TENANCY_SECRETS_PATH"] == PATH
    ssm = aws.session.client("ssm")
    stored = {
        parameter["Name"]: parameter
        for parameter in ssm.get_parameters_by_path(Path=PATH, WithDecryption=True)["Parameters"]
    }
    assert set(stored) == {parameter_name(PATH, name) for name in SecretName}
    assert {parameter["Type"] for parameter in stored.values()} == {"SecureString"}
    pepper = stored[parameter_name(PATH, SecretName.SERVICE_KEY_PEPPER)]["Value"]
    # The pepper is nobody's to choose: a random one; the others wait for an operator.
    assert len(pepper) == 64
    assert {parameter["Value"] for name, parameter in stored.items() if not name.endswith("pepper")} == {PLACEHOLDER}
    assert all(f"created the SSM parameter {name}" in stderr for name in stored)
    assert pepper not in stderr + json.dumps(exported)


def test_bootstrap_never_overwrites_a_parameter_that_exists(
    aws: AwsContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bootstrap(tmp_path, monkeypatch)
    put(aws, {SecretName.PAYFAST_PASSPHRASE: "set-by-an-operator"})
    ssm = aws.session.client("ssm")
    pepper_name = parameter_name(PATH, SecretName.SERVICE_KEY_PEPPER)
    pepper = ssm.get_parameter(Name=pepper_name, WithDecryption=True)["Parameter"]["Value"]

    _, stderr = bootstrap(tmp_path, monkeypatch)

    assert "created the SSM parameter" not in stderr
    passphrase = ssm.get_parameter(Name=parameter_name(PATH, SecretName.PAYFAST_PASSPHRASE), WithDecryption=True)
    assert passphrase["Parameter"]["Value"] == "set-by-an-operator"
    assert ssm.get_parameter(Name=pepper_name, WithDecryption=True)["Parameter"]["Value"] == pepper


def test_what_bootstrap_creates_lets_the_aws_backend_start_in_sandbox_mode(
    aws: AwsContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exported, _ = bootstrap(tmp_path, monkeypatch)

    services = build(ssm_settings(aws, secrets_path=exported["TENANCY_SECRETS_PATH"]), clock=ManualClock())

    assert services.settings.passphrase == PAYFAST_SANDBOX_PASSPHRASE
    assert len(service_key_pepper(services.settings)) == 64


def test_a_rotated_slack_webhook_url_is_used_from_the_next_alert_on(aws: AwsContext, webhooks: WebhookReceiver) -> None:
    put(aws, {**REAL, SecretName.ALERT_SLACK_WEBHOOK_URL: f"{webhooks.url}/services/T000/B000/first"})
    clock = ManualClock()
    services = build(ssm_settings(aws, alert_routes="engineering=slack"), clock=clock)
    slack = next(notifier for notifier in services.alert_dispatcher.routes["engineering"] if notifier.name == "slack")
    slack.notify(rule="dlq_not_empty", severity="error", summary="1 job(s) in the dead-letter queue")

    put(aws, {SecretName.ALERT_SLACK_WEBHOOK_URL: f"{webhooks.url}/services/T000/B000/second"})
    clock.advance(services.settings.secrets_max_age_seconds)
    slack.notify(rule="dlq_not_empty", severity="error", summary="1 job(s) in the dead-letter queue")

    assert [received.path for received in webhooks.received] == [
        "/services/T000/B000/first",
        "/services/T000/B000/second",
    ]


def test_a_refresh_that_fails_keeps_the_secrets_already_read(aws: AwsContext, monkeypatch: pytest.MonkeyPatch) -> None:
    put(aws, REAL)
    clock = ManualClock()
    ssm = aws.session.client("ssm")
    source = SsmSecrets(
        ssm, PATH, clock=clock, max_age=timedelta(minutes=5), fallback=SettingsSecrets(ssm_settings(aws))
    )
    source.load()

    def unreachable(**_: object) -> NoReturn:
        raise EndpointConnectionError(endpoint_url="https://ssm.eu-west-1.amazonaws.com")

    monkeypatch.setattr(ssm, "get_parameters", unreachable)
    clock.advance(minutes=6)

    # An ITN is still checked with the passphrase read before SSM went away.
    assert source.get(SecretName.PAYFAST_PASSPHRASE) == REAL[SecretName.PAYFAST_PASSPHRASE]
    monkeypatch.undo()
    put(aws, {SecretName.PAYFAST_PASSPHRASE: "rotated-passphrase"})
    # The failed read counts as a read: SSM is asked again only after another max age.
    assert source.get(SecretName.PAYFAST_PASSPHRASE) == REAL[SecretName.PAYFAST_PASSPHRASE]
    clock.advance(minutes=5)
    assert source.get(SecretName.PAYFAST_PASSPHRASE) == "rotated-passphrase"


def test_a_command_started_without_a_parameter_says_which_in_one_line(
    aws: AwsContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    put(aws, {name: value for name, value in REAL.items() if name is not SecretName.SERVICE_KEY_PEPPER})
    for variable, value in {**aws.resources.as_settings(), "TENANCY_SECRETS_PATH": PATH}.items():
        monkeypatch.setenv(variable, value)
    monkeypatch.setenv("TENANCY_HOME", str(tmp_path / "cli-home"))
    # The command configures logging, with loggers cached on first use: a logger first used by a
    # later test would write to this test's log directory for the rest of the session.
    monkeypatch.setattr(cli_common, "configure_logging", configure_logging_uncached)
    saved = structlog.get_config()

    try:
        with pytest.raises(SystemExit) as exited:
            main(["mail", "list"])
    finally:
        structlog.configure(**saved)

    assert exited.value.code == 1
    stderr = capsys.readouterr().err
    assert stderr.startswith("error: missing SSM parameter /site-builder/dev/service-key-pepper:")
    assert "Traceback" not in stderr


def configure_logging_uncached(level: str, **options: Any) -> None:
    """The real configuration, minus logger caching: a logger cached here would keep this test's
    processors for the rest of the session."""
    configure_logging(level, **options)
    structlog.configure(cache_logger_on_first_use=False)


@pytest.fixture
def lambda_environment(aws: AwsContext, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """The environment deploy/template.yaml gives a function (no secret in it), and a container
    that has not built its services yet."""
    for variable, value in {**aws.resources.as_settings(), "TENANCY_SECRETS_PATH": PATH}.items():
        monkeypatch.setenv(variable, value)
    monkeypatch.setenv("TENANCY_HOME", str(tmp_path / "lambda-home"))
    monkeypatch.setenv("TENANCY_PAYFAST_MODE", "offline")
    saved = structlog.get_config()
    monkeypatch.setattr(lambdas, "configure_logging", configure_logging_uncached)
    lambdas.use_services(None)
    yield
    lambdas.use_services(None)
    structlog.configure(**saved)


@pytest.mark.usefixtures("lambda_environment")
def test_a_function_reads_the_secrets_from_ssm_at_its_cold_start(aws: AwsContext) -> None:
    put(aws, REAL)

    services = lambdas.services()

    assert services.settings.passphrase == REAL[SecretName.PAYFAST_PASSPHRASE]
    assert service_key_pepper(services.settings) == REAL[SecretName.SERVICE_KEY_PEPPER].encode()
    services.close()


@pytest.mark.usefixtures("lambda_environment")
def test_a_function_whose_parameter_is_missing_fails_its_cold_start_naming_it(aws: AwsContext) -> None:
    put(aws, {name: value for name, value in REAL.items() if name is not SecretName.PAYFAST_MERCHANT_KEY})

    # Every handler's first act is `services()`: the invocation fails with this one line, before any work.
    with pytest.raises(ConfigurationError, match="missing SSM parameter /site-builder/dev/payfast-merchant-key:"):
        lambdas.services()
