"""PayFast's own view of one purchase's subscription (its subscription API's `fetch`), asked for
that purchase's `diagnose`, `repair` and `verify` only: the weekly audit judges every purchase
from the stores alone and never calls PayFast."""

from __future__ import annotations

import dataclasses

import structlog

from tenancy.errors import TenancyError
from tenancy.ports import SubscriptionApi
from tenancy.runbook.evidence import CaseFile

__all__ = ["with_payfast_view"]

log = structlog.get_logger(__name__)


def with_payfast_view(case: CaseFile, api: SubscriptionApi) -> CaseFile:
    """The case with PayFast's view of its subscription (`payfast`), or with why PayFast could
    not be asked (`payfast_error`); the case unchanged when it has no subscription."""
    subscription = case.subscription
    if subscription is None or not subscription.token:
        return case
    try:
        return dataclasses.replace(case, payfast=api.fetch(subscription.token))
    except TenancyError as error:
        # PayFast down, refusing, or not knowing the token: the operator still needs the
        # diagnosis our own stores make, so the failure is evidence, never a failed diagnose.
        log.warning("payfast_fetch_failed", token=subscription.token, error=str(error), kind=type(error).__name__)
        return dataclasses.replace(case, payfast_error=str(error) or type(error).__name__)
