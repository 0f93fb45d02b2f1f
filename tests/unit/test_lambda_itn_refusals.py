"""The Lambda ITN entrypoint answers every hostile ITN of the corpus as the HTTP route does: a
4xx with the reason, kept in the ledger as rejected, nothing queued, nothing raised (issue 11:
a decimal Overflow once escaped it). Run on the embedded stores: the handler shares the intake."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tenancy import lambdas
from tenancy.bootstrap import Services, build
from tenancy.domain.model import PaymentVerdict

from corpus_builder import CORPUS
from helpers import lambda_context, make_settings

PAYFAST_ADDRESS = "197.97.145.145"  # inside 197.97.145.144/28
CORPUS_FILES = sorted(CORPUS.glob("*.itn"))


CONTEXT: Any = lambda_context("itn")


@pytest.fixture(scope="module")
def lambda_services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    # Sandbox mode: every check on; the validate URL is never reached, as every case is refused before.
    built = build(make_settings(tmp_path_factory.mktemp("lambda-home")))
    lambdas.use_services(built)
    yield built
    lambdas.use_services(None)
    built.close()


def http_api_event(body: bytes) -> dict[str, Any]:
    """An API Gateway HTTP API (payload format 2.0) POST from PayFast's address, body in base64."""
    return {
        "version": "2.0",
        "routeKey": "POST /payments/payfast/itn",
        "rawPath": "/payments/payfast/itn",
        "headers": {"content-type": "application/x-www-form-urlencoded"},
        "requestContext": {"http": {"method": "POST", "path": "/payments/payfast/itn", "sourceIp": PAYFAST_ADDRESS}},
        "body": base64.b64encode(body).decode(),
        "isBase64Encoded": True,
    }


def rejected_count(services: Services) -> int:
    return sum(1 for batch in services.ledger.scan() for entry in batch if entry.verdict is PaymentVerdict.REJECTED)


@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda path: path.stem)
def test_the_lambda_refuses_each_hostile_itn_with_a_reason_and_keeps_it(lambda_services: Services, path: Path) -> None:
    reason = path.stem.split("__", 1)[1].replace("-", " ")
    before = rejected_count(lambda_services)

    response = lambdas.itn_handler(http_api_event(path.read_bytes()), CONTEXT)

    assert response["statusCode"] == 400, response
    detail = json.loads(response["body"])["detail"]
    assert reason.replace(" ", "") in detail.replace(" ", "").replace("-", ""), detail
    assert rejected_count(lambda_services) == before + 1
    assert lambda_services.journal.list_jobs() == []
    assert lambda_services.queue.depth() == (0, 0)


def test_an_overflowing_amount_is_a_400_with_the_amount_named(lambda_services: Services) -> None:
    [path] = CORPUS.glob("*-amount-exponent-overflow__*.itn")
    before = rejected_count(lambda_services)

    response = lambdas.itn_handler(http_api_event(path.read_bytes()), CONTEXT)

    assert response["statusCode"] == 400
    assert json.loads(response["body"]) == {
        "detail": "amount_gross '1e1000000' is not an amount in rands and cents like 299.00"
    }
    assert rejected_count(lambda_services) == before + 1
    kept = lambda_services.ledger.find(transaction_id="TXN-HOSTILE")
    assert {entry.verdict for entry in kept if entry.amount_gross == "1e1000000"} == {PaymentVerdict.REJECTED}
