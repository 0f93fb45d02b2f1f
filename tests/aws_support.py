"""What the contract suites share: the backend under test as bootstrap wires it (`Backend`, built
by the `backend` fixture in tests/contract/conftest.py) and, on AWS, the moto context it runs on."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import moto

from tenancy.adapters.aws.cognito import CognitoIdentityProvider
from tenancy.adapters.aws.resources import AwsResources
from tenancy.bootstrap import Services
from tenancy.config import Settings

from helpers import ManualClock

# The service keys' pepper on AWS, which has no default there (bootstrap.service_key_pepper).
AWS_TEST_PEPPER = "aws-test-pepper-0123456789abcdef0123456789"


@dataclass(frozen=True)
class AwsContext:
    session: boto3.Session
    settings: Settings  # points at the resources below, TENANCY_BACKEND=aws
    resources: AwsResources


@dataclass(frozen=True)
class Backend:
    """One backend's services as `bootstrap.build` wires them, the clock they all read (a test
    moves it on to wait out a delay or a timeout) and, on AWS, the moto context, for what a test
    reads or breaks behind the adapters' backs."""

    services: Services
    clock: ManualClock
    aws: AwsContext | None = None

    @property
    def name(self) -> str:
        return "local" if self.aws is None else "aws"

    @property
    def on_moto(self) -> bool:
        return self.aws is not None

    @property
    def moto(self) -> AwsContext:
        """The moto context; only an AWS backend has one."""
        assert self.aws is not None, "only the AWS backend runs on moto"
        return self.aws


def moto_public_jwks() -> dict[str, Any]:
    """The JWKS of the fixed key moto signs every Cognito token with (it ships inside moto)."""
    resources = Path(moto.__file__).parent / "cognitoidp" / "resources"
    plain, packed = resources / "jwks-public.json", resources / "jwks-public.json.gz"
    text = plain.read_text() if plain.exists() else gzip.decompress(packed.read_bytes()).decode()
    document: dict[str, Any] = json.loads(text)
    return document


def moto_cognito(aws: AwsContext) -> CognitoIdentityProvider:
    """The Cognito adapter on moto's pool, with moto's signing keys given, not fetched: an
    in-process moto pool has no JWKS URL to fetch them from."""
    return CognitoIdentityProvider(
        aws.session.client("cognito-idp", region_name=aws.settings.aws_region),
        aws.resources.user_pool_id,
        aws.resources.user_pool_client_id,
        jwks_url=aws.settings.effective_cognito_jwks_url,
        jwks=moto_public_jwks(),
    )
