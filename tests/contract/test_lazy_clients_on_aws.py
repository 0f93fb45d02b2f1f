"""A Lambda's cold start builds no boto3 client: the AWS services build each on its first call."""

from __future__ import annotations

from collections.abc import Callable

import boto3
import pytest

from tenancy.bootstrap import build

from aws_support import AwsContext
from helpers import ManualClock


def test_building_the_aws_services_builds_no_client_until_a_store_is_called(
    aws: AwsContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[str] = []
    real_client: Callable[..., object] = boto3.Session.client

    def recorded(session: boto3.Session, service: str, *args: object, **kwargs: object) -> object:
        built.append(service)
        return real_client(session, service, *args, **kwargs)

    monkeypatch.setattr(boto3.Session, "client", recorded)
    services = build(aws.settings, clock=ManualClock())

    assert built == []
    assert services.journal.get("TXN-NOT-THERE") is None
    assert services.tenants.get("no-such-tenant") is None  # the same DynamoDB client serves every table
    assert built == ["dynamodb"]
    assert services.queue.depth() == (0, 0)
    assert built == ["dynamodb", "sqs"]
