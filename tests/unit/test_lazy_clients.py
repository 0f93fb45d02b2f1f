"""The AWS backend's boto3 clients are built on their first use, once, whatever the threads."""

from __future__ import annotations

import threading

import boto3
import pytest
from botocore.config import Config

from tenancy.adapters.aws.clients import LazyClients


@pytest.fixture
def clients(monkeypatch: pytest.MonkeyPatch) -> LazyClients:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    return LazyClients(boto3.Session(region_name="eu-west-1"), Config(connect_timeout=1))


def test_a_client_is_built_on_its_first_use_not_when_handed_out(clients: LazyClients) -> None:
    sqs, ses = clients.client("sqs"), clients.client("ses")

    assert clients.built == ()
    assert sqs.meta.region_name == "eu-west-1"
    assert clients.built == ("sqs",)
    assert sqs.meta.config.connect_timeout == 1  # the config it was given
    assert ses.meta.service_model.service_name == "ses"
    assert clients.built == ("sqs", "ses")


def test_handles_of_one_service_share_one_client(clients: LazyClients) -> None:
    first, second = clients.client("dynamodb"), clients.client("dynamodb")

    assert first.meta is second.meta
    assert clients.built == ("dynamodb",)


def test_threads_racing_for_a_new_client_build_it_once(clients: LazyClients) -> None:
    handle = clients.client("sqs")
    start = threading.Barrier(8)
    seen: list[object] = []

    def use() -> None:
        start.wait()
        seen.append(handle.meta)

    threads = [threading.Thread(target=use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(seen) == 8
    assert all(meta is seen[0] for meta in seen)
    assert clients.built == ("sqs",)
