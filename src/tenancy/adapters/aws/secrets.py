"""The secrets on AWS: SecureString parameters in SSM Parameter Store under one path
(TENANCY_SECRETS_PATH, e.g. `/site-builder/dev/`), read at cold start and read again once the
cached copy is older than its max age, so a rotated value is picked up without a redeploy.

A parameter still holding PLACEHOLDER counts as not set: the fallback source (the settings'
defaults, e.g. PayFast's public sandbox credentials) answers for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import structlog
from botocore.exceptions import ClientError

from tenancy.adapters.aws._errors import aws_errors, error_code
from tenancy.errors import ConfigurationError, TenancyError
from tenancy.ports import Clock
from tenancy.secret_source import PLACEHOLDER, SecretName, SecretSource, parameter_name

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient

__all__ = ["SsmSecrets", "ensure_secret_parameters", "parameter_name"]

log = structlog.get_logger(__name__)


class SsmSecrets:
    """Every secret of one path, fetched in one GetParameters call (decrypted) and
    kept for `max_age` of `clock`'s time. A refresh that fails keeps the values already read for
    another `max_age` (an ITN is still checked while SSM is unreachable, without waiting on it)."""

    def __init__(
        self, client: SSMClient, path: str, *, clock: Clock, max_age: timedelta, fallback: SecretSource
    ) -> None:
        self._client = client
        self._path = path
        self._clock = clock
        self._max_age = max_age
        self._fallback = fallback
        self._values: dict[SecretName, str] = {}
        self._read_at: datetime | None = None

    def load(self) -> None:
        """The cold start's read: every secret's parameter must exist (a placeholder will do),
        else a ConfigurationError names the missing ones and the command that creates them."""
        self._values = self._fetch()
        self._read_at = self._clock.now()
        missing = [parameter_name(self._path, name) for name in SecretName if name not in self._values]
        if missing:
            raise ConfigurationError(
                f"missing SSM parameter{'s' if len(missing) > 1 else ''} {', '.join(missing)}:"
                " run `tenancy aws bootstrap` to create them, then set each with"
                " `aws ssm put-parameter --type SecureString --overwrite --name NAME --value VALUE`"
            )

    def get(self, name: SecretName) -> str | None:
        self._refresh_if_old()
        value = self._values.get(name)
        if value is None or value == PLACEHOLDER:
            return self._fallback.get(name)
        return value

    def is_placeholder(self, name: SecretName) -> bool:
        """Whether the secret's parameter still holds what `tenancy aws bootstrap` put there."""
        self._refresh_if_old()
        return self._values.get(name) == PLACEHOLDER

    def _refresh_if_old(self) -> None:
        now = self._clock.now()
        if self._read_at is not None and now - self._read_at < self._max_age:
            return
        try:
            fresh = self._fetch()
        except TenancyError as error:
            if self._read_at is None:
                raise
            log.warning("secrets_refresh_failed", path=self._path, error=str(error))
            self._read_at = now
            return
        # A parameter deleted since the last read keeps its last value: a deletion is not a rotation.
        self._values = {**self._values, **fresh}
        self._read_at = now

    def _fetch(self) -> dict[SecretName, str]:
        """One GetParameters of every secret's name (at most ten a call: there are six), so the
        functions need `ssm:GetParameters` on `parameter/<path>/*` and nothing wider."""
        known = {parameter_name(self._path, name): name for name in SecretName}
        with aws_errors(f"reading the secrets under {self._path}"):
            answer = self._client.get_parameters(Names=list(known), WithDecryption=True)
        return {
            known[parameter["Name"]]: parameter["Value"]
            for parameter in answer.get("Parameters", [])
            if parameter.get("Name") in known and "Value" in parameter
        }


def ensure_secret_parameters(
    client: SSMClient, path: str, initial_value: Callable[[SecretName], str], names: Iterable[SecretName] = SecretName
) -> list[str]:
    """Creates each secret's parameter that is missing, as a SecureString holding
    `initial_value(name)`; never overwrites one that exists. Returns the full names created."""
    wanted = {parameter_name(path, name): name for name in names}
    existing: set[str] = set()
    with aws_errors(f"listing the secrets under {path}"):
        for chunk in _chunks(sorted(wanted), 10):  # GetParameters takes at most ten names
            existing.update(parameter["Name"] for parameter in client.get_parameters(Names=chunk)["Parameters"])
    created: list[str] = []
    for full_name, name in wanted.items():
        if full_name in existing:
            continue
        with aws_errors(f"creating the SSM parameter {full_name}"):
            try:
                client.put_parameter(
                    Name=full_name,
                    Value=initial_value(name),
                    Type="SecureString",
                    Overwrite=False,
                    Description=f"Tenancy's {name.setting} (set it with put-parameter --overwrite)",
                )
            except ClientError as error:
                if error_code(error) != "ParameterAlreadyExists":
                    raise
                continue  # made meanwhile by another bootstrap: kept as it is
        created.append(full_name)
    return created


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
