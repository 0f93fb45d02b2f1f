"""`tenancy aws bootstrap`: create the AWS backend's resources (or find them), and the secrets'
SSM parameters, and print the `TENANCY_*` settings that point every other command at them."""

from __future__ import annotations

import secrets
import shlex
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit

import typer

from tenancy.cli.common import load_settings, print_json
from tenancy.config import Settings
from tenancy.secret_source import PLACEHOLDER, SecretName, SettingsSecrets

if TYPE_CHECKING:  # boto3 is imported by the command itself: every other command starts without it
    import boto3

__all__ = ["OutputFormat", "aws_app", "register"]

aws_app = typer.Typer(help="The AWS backend (DynamoDB, SQS, Cognito, SES, CloudWatch).", no_args_is_help=True)


class OutputFormat(StrEnum):
    ENV = "env"
    JSON = "json"


def register(app: typer.Typer) -> None:
    app.add_typer(aws_app, name="aws")


@aws_app.command("bootstrap")
def bootstrap(
    env: Annotated[
        str | None, typer.Option(help="The environment (TENANCY_ENV): names the pool, functions and alarms.")
    ] = None,
    output_format: Annotated[
        OutputFormat, typer.Option("--format", help="`export NAME=value` lines, or one JSON document.")
    ] = OutputFormat.ENV,
) -> None:
    """Create whatever is missing (tables, queue and DLQ, user pool, SES sender, log groups,
    alarms, the secrets' SSM parameters) and print the settings to export. Safe to run again: it
    changes nothing that exists. Endpoints come from AWS_ENDPOINT_URL, so this bootstraps moto
    just as well."""
    import boto3

    from tenancy.adapters.aws.resources import ensure_resources
    from tenancy.adapters.aws.secrets import ensure_secret_parameters

    settings = load_settings()
    if env is not None:
        settings = settings.model_copy(update={"env": env})
    session = boto3.Session(region_name=settings.aws_region)
    resources = ensure_resources(session, settings)
    path = settings.effective_secrets_path
    created = ensure_secret_parameters(
        session.client("ssm", region_name=settings.aws_region), path, lambda name: _initial_value(settings, name)
    )
    values = {**resources.as_settings(), "TENANCY_ENV": settings.env, "TENANCY_SECRETS_PATH": path}
    jwks_url = settings.cognito_jwks_url or _local_jwks_url(session, resources.user_pool_id)
    if jwks_url:
        values["TENANCY_COGNITO_JWKS_URL"] = jwks_url
    for name in created:
        # Names only, never a value; on stderr, so `eval "$(...)"` and JSON stay clean.
        typer.echo(f"created the SSM parameter {name}", err=True)
    if created:
        typer.echo(
            f"Parameters holding {PLACEHOLDER!r} count as unset (live mode refuses them): set each with"
            " `aws ssm put-parameter --type SecureString --overwrite --name NAME --value VALUE`.",
            err=True,
        )
    if output_format is OutputFormat.JSON:
        print_json(values)
        return
    for name, value in values.items():
        typer.echo(f"export {name}={shlex.quote(value)}")


def _initial_value(settings: Settings, name: SecretName) -> str:
    """What a new parameter starts with: the value this shell's TENANCY_* variable gives (moving a
    deployment's secrets to SSM keeps them, the pepper above all: changing it voids every service
    key), else a random pepper (nobody needs to know it), else the placeholder."""
    if name.setting in settings.model_fields_set:
        value = SettingsSecrets(settings).get(name)
        if value:
            return value
    if name is SecretName.SERVICE_KEY_PEPPER:
        return secrets.token_hex(32)
    return PLACEHOLDER


def _local_jwks_url(session: boto3.Session, user_pool_id: str) -> str | None:
    """Where an AWS stand-in (moto) publishes the pool's signing keys. Real Cognito publishes
    them at the address Settings derives from the region, so nothing is printed for it."""
    endpoint = session.client("cognito-idp").meta.endpoint_url
    host = urlsplit(endpoint).hostname or ""
    if host.endswith(".amazonaws.com") or host.endswith(".amazonaws.com.cn"):
        return None
    return f"{endpoint.rstrip('/')}/{user_pool_id}/.well-known/jwks.json"
