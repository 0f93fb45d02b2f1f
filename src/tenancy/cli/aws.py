"""`tenancy aws bootstrap`: create the AWS backend's resources (or find them) and print the
`TENANCY_*` settings that point every other command at them."""

from __future__ import annotations

import shlex
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit

import typer

from tenancy.cli.common import load_settings, print_json

if TYPE_CHECKING:  # boto3 is imported by the command itself: every other command starts without it
    import boto3

__all__ = ["PEPPER_REMINDER", "OutputFormat", "aws_app", "register"]

PEPPER_REMINDER = (
    "Also set TENANCY_SERVICE_KEY_PEPPER (at least 32 characters, e.g. `openssl rand -hex 32`), the same for"
    " every process and function: the service API's keys are stored under it, and it has no default on AWS."
)

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
    alarms) and print the settings to export. Safe to run again: it changes nothing that exists.
    Endpoints come from AWS_ENDPOINT_URL, so this bootstraps moto just as well."""
    import boto3

    from tenancy.adapters.aws.resources import ensure_resources

    settings = load_settings()
    if env is not None:
        settings = settings.model_copy(update={"env": env})
    session = boto3.Session(region_name=settings.aws_region)
    resources = ensure_resources(session, settings)
    values = {**resources.as_settings(), "TENANCY_ENV": settings.env}
    jwks_url = settings.cognito_jwks_url or _local_jwks_url(session, resources.user_pool_id)
    if jwks_url:
        values["TENANCY_COGNITO_JWKS_URL"] = jwks_url
    if settings.service_key_pepper is None:
        # A secret is never printed (nor made here): on stderr, so `eval "$(...)"` and JSON stay clean.
        typer.echo(PEPPER_REMINDER, err=True)
    if output_format is OutputFormat.JSON:
        print_json(values)
        return
    for name, value in values.items():
        typer.echo(f"export {name}={shlex.quote(value)}")


def _local_jwks_url(session: boto3.Session, user_pool_id: str) -> str | None:
    """Where an AWS stand-in (moto) publishes the pool's signing keys. Real Cognito publishes
    them at the address Settings derives from the region, so nothing is printed for it."""
    endpoint = session.client("cognito-idp").meta.endpoint_url
    host = urlsplit(endpoint).hostname or ""
    if host.endswith(".amazonaws.com") or host.endswith(".amazonaws.com.cn"):
        return None
    return f"{endpoint.rstrip('/')}/{user_pool_id}/.well-known/jwks.json"
