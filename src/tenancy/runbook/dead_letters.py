"""One dead-lettered job as the operator reads it: the queue's message beside the journal's job
(for `tenancy dlq` and the console's DLQ page), and what removing a stale message decided."""

from __future__ import annotations

from dataclasses import dataclass

from tenancy.domain.model import ProvisioningJob, QueuedMessage
from tenancy.runbook.findings import Advise, Diagnosis

__all__ = ["DeadLetterDecision", "dead_letter_row"]


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


@dataclass(frozen=True, slots=True)
class DeadLetterDecision:
    """A dead-lettered message judged by its purchase, as `diagnose` names it now: a message whose
    purchase is healthy is a stale copy of a job that has healed since (it can only keep the DLQ
    alarm firing); any other still says something is wrong."""

    message: QueuedMessage
    diagnosis: Diagnosis | None  # None: the message names no purchase (not one of ours)
    removed: bool = False

    @property
    def healed(self) -> bool:
        return self.diagnosis is not None and self.diagnosis.healthy

    @property
    def reason(self) -> str:
        """Why it may go or must stay, in one line."""
        if self.diagnosis is None:
            return "names no purchase (not a provisioning message): remove it by its id if it is not needed"
        if self.healed:
            return f"the purchase is healthy: {self.diagnosis.summary}"
        return f"the purchase is {self.diagnosis.finding.value}: {self.diagnosis.summary}"

    def as_document(self, advise: Advise) -> dict[str, object]:
        """For people: `advise` words the next step of a purchase that still needs one."""
        return {
            "id": self.message.message_id,
            "transaction_id": self.message.transaction_id or None,
            "finding": self.diagnosis.finding.value if self.diagnosis else None,
            "healed": self.healed,
            "reason": self.reason,
            "next_action": None if self.healed or self.diagnosis is None else advise(self.diagnosis),
            "removed": self.removed,
        }
