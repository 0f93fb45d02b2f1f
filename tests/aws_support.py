"""What AWS-backed tests share: the moto context the `aws` fixture (tests/contract/conftest.py) yields."""

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
from tenancy.config import Settings


@dataclass(frozen=True)
class AwsContext:
    session: boto3.Session
    settings: Settings  # points at the resources below, TENANCY_BACKEND=aws
    resources: AwsResources


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
