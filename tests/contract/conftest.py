"""Contract-suite fixtures: the AWS backend on moto, in process, with every resource created
exactly as `tenancy aws bootstrap` creates it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from tenancy.adapters.aws.resources import ensure_resources

from aws_support import AwsContext
from helpers import make_settings


@pytest.fixture
def aws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsContext]:
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    with mock_aws():
        session = boto3.Session(region_name="eu-west-1")
        base = make_settings(tmp_path / "aws-home", backend="aws", aws_region="eu-west-1")
        resources = ensure_resources(session, base)
        settings = base.model_copy(
            update={
                "queue_url": resources.queue_url,
                "dlq_url": resources.dlq_url,
                "user_pool_id": resources.user_pool_id,
                "user_pool_client_id": resources.user_pool_client_id,
            }
        )
        yield AwsContext(session, settings, resources)
