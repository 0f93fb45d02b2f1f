"""Contract-suite fixtures: every port's suite runs on both backends exactly as `bootstrap.build`
wires them, the embedded one on a temporary SQLite file and the AWS one on moto, in process, with
every resource created exactly as `tenancy aws bootstrap` creates it.

Every service and adapter of a backend reads one clock, `clock`, which stands still until the
test moves it on: a test waits out a delay or a visibility timeout by advancing it, never by
sleeping. moto's SQS keeps its own time (as SQS does), moved on by as much as the test moves `clock`.

A suite that needs settings besides the defaults overrides `backend_settings` in its module, and
one that needs a fixed moment overrides `clock`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import botocore.loaders
import botocore.session
import moto.sqs.models as moto_sqs
import pytest
from moto import mock_aws

from tenancy.adapters.aws.resources import ensure_resources
from tenancy.bootstrap import Services, build
from tenancy.config import PayfastMode

from aws_support import AWS_TEST_PEPPER, AwsContext, Backend, moto_cognito
from helpers import ManualClock, make_settings


@pytest.fixture(scope="module", autouse=True)
def one_botocore_loader() -> Iterator[None]:
    """Every boto3 session (each `bootstrap.build` opens one) reads botocore's JSON models anew,
    half a second a test; one loader, which keeps what it has read, serves a whole module."""
    loader = botocore.loaders.create_loader()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(botocore.session, "create_loader", lambda search_path_string=None: loader)
        yield


@pytest.fixture
def aws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsContext]:
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    with mock_aws():
        session = boto3.Session(region_name="eu-west-1")
        base = make_settings(
            tmp_path / "aws-home", backend="aws", aws_region="eu-west-1", service_key_pepper=AWS_TEST_PEPPER
        )
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


@pytest.fixture
def backend_settings() -> dict[str, Any]:
    """Settings (field name: value) the module's suite needs besides the defaults."""
    return {}


@pytest.fixture
def clock() -> ManualClock:
    """The time the backend's services and adapters read: now, standing still."""
    return ManualClock()


def _moto_sqs_follows(clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> None:
    """Moves moto's SQS time (delays, visibility timeouts, sent times) on by as much as the test
    moves `clock`, so one advance lets a message come back on both backends. Only its message
    times: a long poll still waits in real time."""
    real_millis = moto_sqs.unix_time_millis

    def millis(moment: datetime | None = None) -> float:
        return real_millis(moment) if moment is not None else real_millis() + clock.advanced_seconds * 1000

    monkeypatch.setattr(moto_sqs, "unix_time_millis", millis)


def _moto_dynamodb_is_atomic(monkeypatch: pytest.MonkeyPatch) -> None:
    """DynamoDB applies each request atomically; moto's in-process backend does not (a condition
    is checked, then the write made, and a transaction rolls back by restoring copies of whole
    tables), so concurrent requests race inside moto itself. One lock around each request gives
    moto the service's atomicity; the adapters' own code still runs in as many threads as a test
    starts."""
    from moto.dynamodb.responses import DynamoHandler

    lock = threading.Lock()
    call_action = DynamoHandler.call_action

    def one_request_at_a_time(self: DynamoHandler) -> object:
        with lock:
            return call_action(self)

    monkeypatch.setattr(DynamoHandler, "call_action", one_request_at_a_time)


def _built(kind: str, request: pytest.FixtureRequest, tmp_path: Path, overrides: dict[str, Any]) -> Backend:
    clock: ManualClock = request.getfixturevalue("clock")
    # There is no PayFast here: ITNs are checked offline (no source-address or validate round trip).
    overrides = {"payfast_mode": PayfastMode.OFFLINE, **overrides}
    if kind == "local":
        return Backend(build(make_settings(tmp_path / "home", **overrides), clock=clock), clock)
    aws: AwsContext = request.getfixturevalue("aws")
    monkeypatch = request.getfixturevalue("monkeypatch")
    _moto_sqs_follows(clock, monkeypatch)
    _moto_dynamodb_is_atomic(monkeypatch)
    services = build(aws.settings.model_copy(update=overrides), clock=clock)
    # The Cognito adapter fetches the pool's JWKS over HTTP; moto's in-process pool has no URL.
    return Backend(replace(services, identity=moto_cognito(aws)), clock, aws)


@pytest.fixture(params=["local", "aws"])
def backend(request: pytest.FixtureRequest, tmp_path: Path, backend_settings: dict[str, Any]) -> Iterator[Backend]:
    """Each backend in turn: the embedded one (SQLite) and the AWS one (moto)."""
    built = _built(request.param, request, tmp_path, backend_settings)
    yield built
    built.services.close()


@pytest.fixture
def aws_backend(request: pytest.FixtureRequest, tmp_path: Path, backend_settings: dict[str, Any]) -> Iterator[Backend]:
    """The AWS backend alone, wired as `backend` wires it: for what only AWS has (Lambda, SQS's looks)."""
    built = _built("aws", request, tmp_path, backend_settings)
    yield built
    built.services.close()


@pytest.fixture
def local_backend(
    request: pytest.FixtureRequest, tmp_path: Path, backend_settings: dict[str, Any]
) -> Iterator[Backend]:
    """The embedded backend alone, wired as `backend` wires it: for what only it has or lacks."""
    built = _built("local", request, tmp_path, backend_settings)
    yield built
    built.services.close()


@pytest.fixture
def services(backend: Backend) -> Services:
    """The backend's services (the contract suites' own, in place of tests/conftest.py's embedded ones)."""
    return backend.services
