"""The purchase observer the system tells of every change to a purchase: it settles the
checkout's subscription first (a renewal kept, a job that finished provisioning), then has the
purchase judged again, so the finding judged is the settled state's."""

from __future__ import annotations

import structlog

from tenancy.billing.settle import SubscriptionBilling
from tenancy.errors import TenancyError
from tenancy.ports import PurchaseObserver

__all__ = ["SettlingObserver"]

log = structlog.get_logger(__name__)


class SettlingObserver:
    def __init__(self, billing: SubscriptionBilling, then: PurchaseObserver) -> None:
        self._billing = billing
        self._then = then

    def changed(self, transaction_id: str) -> None:
        # Never raises (the observer's contract): a settle that failed is left for the next
        # change, and the runbook names a renewal accepted but not applied.
        try:
            self._billing.settle(transaction_id)
        except TenancyError as error:
            log.warning("subscription_settle_failed", transaction_id=transaction_id, error=str(error))
        except Exception:
            log.exception("subscription_settle_crashed", transaction_id=transaction_id)
        self._then.changed(transaction_id)
