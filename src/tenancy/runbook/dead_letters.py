"""One dead-lettered job as the operator reads it: the queue's message beside the journal's job
(for `tenancy dlq` and the console's DLQ page)."""

from __future__ import annotations

from tenancy.domain.model import ProvisioningJob, QueuedMessage

__all__ = ["dead_letter_row"]


def dead_letter_row(job: ProvisioningJob | None, message: QueuedMessage) -> dict[str, object]:
    """The message with its job's email, plan, attempts and last error (None where no job is kept)."""
    return {
        "id": message.message_id,
        "transaction_id": message.transaction_id,
        "email": job.email if job else None,
        "plan": job.plan if job else None,
        "attempts": job.attempts if job else None,
        "receive_count": message.receive_count,
        "sent_at": message.sent_at,
        "last_error": message.last_error or (job.last_error if job else None),
    }
