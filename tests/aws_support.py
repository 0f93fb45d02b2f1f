"""What AWS-backed tests share: the moto context the `aws` fixture (tests/contract/conftest.py) yields."""

from __future__ import annotations

from dataclasses import dataclass

import boto3

from tenancy.adapters.aws.resources import AwsResources
from tenancy.config import Settings


@dataclass(frozen=True)
class AwsContext:
    session: boto3.Session
    settings: Settings  # points at the resources below, TENANCY_BACKEND=aws
    resources: AwsResources
