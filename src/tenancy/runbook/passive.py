"""Look-ups for judging purchases again and again (the findings recorder after every change, the
operations console), which must change nothing and cost what one purchase costs.

- A queue: on SQS, listing the work queue receives its messages, and every look brings each
  waiting job one delivery nearer the dead-letter queue. Through `DeadLettersOnly` such a view sees
  only the dead letters, and diagnose judges the rest from the journal (its time-based
  `in_progress`); everything else, the repairs and redrives included, goes to the real queue.
- A purchase's tenant: on DynamoDB, finding a tenant by its transaction scans the whole table when
  the tenant does not exist yet, which is every purchase between its ITN and its tenant step: a
  scan per ITN. `TenantByKey` reads by key only.
"""

from __future__ import annotations

from tenancy.domain.ids import tenant_id_for
from tenancy.domain.model import QueuedMessage, QueueMessage, Tenant
from tenancy.ports import FindingsIndex, JobQueue, TenantStore

__all__ = ["DeadLettersOnly", "TenantByKey"]


class TenantByKey:
    """A purchase's tenant read by key only: the tenant id derived from its transaction (every
    tenant the project makes), else the id the findings index last recorded for it. An operator's
    hand-made tenant (RB-001 4.3's `ten_NEWID`) is a change made outside the system: the full
    audit, which reads every tenant anyway, finds it and records its id, and from then on this
    finds it too."""

    def __init__(self, tenants: TenantStore, index: FindingsIndex) -> None:
        self._tenants = tenants
        self._index = index

    def __call__(self, transaction_id: str) -> Tenant | None:
        derived = tenant_id_for(transaction_id)
        tenant = self._tenants.get(derived)
        if tenant is not None and tenant.billing.transaction_id == transaction_id:
            return tenant
        known = self._index.get(transaction_id)
        if known is None or not known.tenant_id or known.tenant_id == derived:
            return None
        tenant = self._tenants.get(known.tenant_id)
        return tenant if tenant is not None and tenant.billing.transaction_id == transaction_id else None


class DeadLettersOnly:
    listing_counts_as_delivery = False

    def __init__(self, queue: JobQueue) -> None:
        self._queue = queue

    def messages(self, *, transaction_id: str | None = None, dead_lettered: bool | None = None) -> list[QueuedMessage]:
        if dead_lettered is False:
            return []
        return self._queue.messages(transaction_id=transaction_id, dead_lettered=True)

    def send(self, transaction_id: str, delay_seconds: float = 0) -> None:
        self._queue.send(transaction_id, delay_seconds)

    def receive(self, max_messages: int, visibility_timeout: float) -> list[QueueMessage]:
        return self._queue.receive(max_messages, visibility_timeout)

    def delete(self, receipt: str) -> None:
        self._queue.delete(receipt)

    def retry_later(self, receipt: str, delay_seconds: float) -> None:
        self._queue.retry_later(receipt, delay_seconds)

    def dead_letter(self, receipt: str, error: str) -> None:
        self._queue.dead_letter(receipt, error)

    def send_dead_letter(self, transaction_id: str, error: str) -> None:
        self._queue.send_dead_letter(transaction_id, error)

    def depth(self) -> tuple[int, int]:
        return self._queue.depth()

    def redrive(self, message_id: str) -> bool:
        return self._queue.redrive(message_id)

    def remove_dead_letter(self, message_id: str) -> bool:
        return self._queue.remove_dead_letter(message_id)

    def purge(self, transaction_id: str) -> int:
        return self._queue.purge(transaction_id)
