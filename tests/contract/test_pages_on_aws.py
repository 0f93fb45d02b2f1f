"""The same pages over the AWS backend (DynamoDB, SQS, Cognito, SES on moto): a buyer checks out,
pays (offline simulation), is provisioned by the worker, signs in and sees the account page."""

from __future__ import annotations

import re
from typing import Any

import pytest

from aws_support import Backend
from helpers import pay, work
from page_client import checkout, choose_new_password, page_client, sign_in, simulate_to_return


@pytest.fixture
def backend_settings() -> dict[str, Any]:
    # moto has no inbox: the SES mail log keeps the temporary password for the test to read.
    return {"mail_log_keeps_secrets": True}


def test_a_buyer_goes_from_checkout_to_the_account_page_on_aws(aws_backend: Backend) -> None:
    services = aws_backend.services
    with page_client(services) as client:
        page = checkout(client, plan="starter", email="aws-buyer@example.com")
        transaction_id, key = simulate_to_return(client, page)
        work(services)
        ready = client.get("/checkout/status", params={"txn": transaction_id, "key": key}).json()
        keyless = client.get("/checkout/status", params={"txn": transaction_id})
        welcome = services.mailer.outbox("aws-buyer@example.com")[0].text
        match = re.search(r"Temporary password: (\S+)", welcome)
        assert match
        challenge = sign_in(client, "aws-buyer@example.com", match.group(1))
        done = choose_new_password(client, challenge.text, "Aws-Chosen-Passw0rd!")
        account = client.get("/account")

    assert ready["state"] == "ready"
    assert keyless.status_code == 404  # the key's digest read back from DynamoDB's ledger
    assert "Choose a new password" in challenge.text
    assert (done.status_code, done.headers["location"]) == (303, "/account")
    assert account.status_code == 200
    assert 'id="plan">Starter<' in account.text
    assert 'max="20"' in account.text


def test_console_pages_never_receive_from_the_work_queue(aws_backend: Backend) -> None:
    """On SQS a look at a queue is a receive: were the console to look, every reload would bring
    each waiting job one delivery nearer the dead-letter queue."""
    services, aws = aws_backend.services, aws_backend.moto
    operator = "console@example.com"
    services.identity.create_user(operator, {"email": operator, "custom:roles": "operator"}, "Temp-Passw0rd!")
    services.identity.set_password(operator, "Console-Passw0rd!", permanent=True)
    transaction_id = pay(services, email="waiting@example.com")  # queued; no worker runs
    with page_client(services) as client:
        assert sign_in(client, operator, "Console-Passw0rd!").headers["location"] == "/ops"
        pages = [client.get(path) for path in ("/ops", "/ops/jobs", f"/ops/cases/{transaction_id}",
                                               "/ops/audit", "/ops/audit.csv", "/ops/dlq")]  # fmt: skip
    sqs = aws.session.client("sqs")
    received = sqs.receive_message(QueueUrl=aws.resources.queue_url, AttributeNames=["ApproximateReceiveCount"])

    assert [page.status_code for page in pages] == [200] * 6
    assert "waiting@example.com" in pages[1].text
    [message] = received["Messages"]
    assert message["Attributes"]["ApproximateReceiveCount"] == "1"  # this test's own receive only
