"""The RateLimiter port, the same assertions on SQLite and on DynamoDB (moto)."""

from __future__ import annotations

import pytest

from tenancy.ports import RateLimiter

from aws_support import Backend
from helpers import ManualClock


@pytest.fixture
def limiter(backend: Backend) -> RateLimiter:
    assert backend.services.rate_limiter is not None
    return backend.services.rate_limiter


def test_hits_count_up_within_a_window(limiter: RateLimiter) -> None:
    assert limiter.count("login:account:a@example.com", window_seconds=60) == 0
    assert [limiter.hit("login:account:a@example.com", window_seconds=60) for _ in range(3)] == [1, 2, 3]
    assert limiter.count("login:account:a@example.com", window_seconds=60) == 3


def test_keys_are_counted_apart(limiter: RateLimiter) -> None:
    limiter.hit("login:account:a@example.com", window_seconds=60)
    limiter.hit("login:source:10.0.0.1", window_seconds=60)
    limiter.hit("login:source:10.0.0.1", window_seconds=60)

    assert limiter.count("login:account:a@example.com", window_seconds=60) == 1
    assert limiter.count("login:source:10.0.0.1", window_seconds=60) == 2
    assert limiter.count("login:account:b@example.com", window_seconds=60) == 0


def test_a_new_window_starts_from_zero(limiter: RateLimiter, clock: ManualClock) -> None:
    for _ in range(4):
        limiter.hit("itn:source:197.97.145.145", window_seconds=60)

    clock.advance(60)

    assert limiter.count("itn:source:197.97.145.145", window_seconds=60) == 0
    assert limiter.hit("itn:source:197.97.145.145", window_seconds=60) == 1


def test_reset_forgets_the_window(limiter: RateLimiter) -> None:
    limiter.hit("login:account:a@example.com", window_seconds=900)
    limiter.hit("login:account:a@example.com", window_seconds=900)

    limiter.reset("login:account:a@example.com", window_seconds=900)

    assert limiter.count("login:account:a@example.com", window_seconds=900) == 0
    assert limiter.hit("login:account:a@example.com", window_seconds=900) == 1


def test_release_takes_one_back_but_never_below_zero(limiter: RateLimiter) -> None:
    limiter.hit("login:source:10.0.0.1", window_seconds=900)
    limiter.hit("login:source:10.0.0.1", window_seconds=900)

    limiter.release("login:source:10.0.0.1", window_seconds=900)
    assert limiter.count("login:source:10.0.0.1", window_seconds=900) == 1
    limiter.release("login:source:10.0.0.1", window_seconds=900)
    limiter.release("login:source:10.0.0.1", window_seconds=900)
    limiter.release("login:source:never-seen", window_seconds=900)

    assert limiter.count("login:source:10.0.0.1", window_seconds=900) == 0
    assert limiter.count("login:source:never-seen", window_seconds=900) == 0


def test_dynamodb_counters_expire_by_ttl_after_their_window(aws_backend: Backend, clock: ManualClock) -> None:
    aws, limiter = aws_backend.moto, aws_backend.services.rate_limiter
    assert limiter is not None
    client = aws.session.client("dynamodb")
    limiter.hit("login:account:a@example.com", window_seconds=60)

    ttl = client.describe_time_to_live(TableName=aws.settings.rate_limits_table)["TimeToLiveDescription"]
    (item,) = client.scan(TableName=aws.settings.rate_limits_table)["Items"]
    assert ttl["TimeToLiveStatus"] == "ENABLED"
    assert ttl["AttributeName"] == "expires_at"
    assert int(item["expires_at"]["N"]) > clock.now().timestamp() + 60
