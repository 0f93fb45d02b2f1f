"""A purchase's failed provisioning attempts as the stores remember them, for RB-001 section 7's
weekly audit. The journal counts a job's runs, but a repair or a redrive starts that count again
(a fresh set of attempts), so each writes what it wiped into the trail entry it keeps: the audit
adds the journal's count and the trail's together, and the attempts are reported after they heal."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from tenancy.domain.clock import parse_timestamp
from tenancy.domain.model import JobStatus, ProvisioningJob, QueuedMessage, RepairRecord
from tenancy.domain.plurals import plural
from tenancy.runbook.findings import Finding

__all__ = [
    "ATTEMPTS_KEY",
    "REDRIVEN",
    "REMOVED",
    "AttemptOutcome",
    "AttemptTracker",
    "PurchaseAttempts",
    "TrailHistory",
    "attempts_before",
    "failed_attempts",
    "history_of",
]

# The outcomes of the trail entries the dead-letter queue's commands write (a repair's outcome is
# one of RepairResult's); the audit tells the three kinds apart by them.
REDRIVEN = "redriven"
REMOVED = "removed"
# Where a trail entry's `before` keeps the attempts (see `attempts_before`).
ATTEMPTS_KEY = "attempts"

# Trail entries written before `ATTEMPTS_KEY` existed hold only diagnose's evidence lines; the
# journal's line says the job's status and runs (`describe` in runbook.diagnose writes it).
_JOURNAL_LINE = re.compile(r"^journal: \S+ (?P<status>[a-z_]+), attempt (?P<attempts>\d+)(?P<rest>.*)$")
_LAST_ERROR = "; last error: "
_AFTER_ERROR = re.compile(r"; (?:next attempt at |review: )")


def failed_attempts(job: ProvisioningJob) -> int:
    """The job's runs that failed: every run while it waits for a retry or sits in the dead-letter
    queue; every run but the last otherwise (the last succeeded, stopped for review, or is running)."""
    if job.status in {JobStatus.DEAD_LETTERED, JobStatus.RETRYING}:
        return job.attempts
    return max(job.attempts - 1, 0)


def attempts_before(
    job: ProvisioningJob | None, messages: Iterable[QueuedMessage], *, clears_attempts: bool
) -> dict[str, object]:
    """What a trail entry keeps under `ATTEMPTS_KEY` about the job as the action found it: its failed
    runs, how many of them the action wiped from the journal (`clears_attempts`: a repair that reruns
    the job, a redrive), whether it had reached the dead-letter queue and its last error."""
    parked = [message for message in messages if message.dead_lettered]
    failed = failed_attempts(job) if job is not None else 0
    last_error = (job.last_error if job is not None else None) or next(
        (message.last_error for message in reversed(parked) if message.last_error), None
    )
    return {
        ATTEMPTS_KEY: {
            "job_status": job.status.value if job is not None else None,
            "failed": failed,
            "cleared": failed if clears_attempts else 0,
            "dead_lettered": bool(parked) or (job is not None and job.status is JobStatus.DEAD_LETTERED),
            "last_error": last_error,
        }
    }


@dataclass(frozen=True, slots=True)
class TrailHistory:
    """What one trail entry says about the purchase's attempts."""

    cleared: int  # failed runs the entry's action wiped from the journal's count
    dead_lettered: bool  # the job had reached the dead-letter queue
    last_error: str | None


def history_of(entry: RepairRecord) -> TrailHistory:
    """The attempts an entry recorded; for an entry older than `ATTEMPTS_KEY`, read from the
    evidence it kept (a repair then reran the job unless it fixed a tenant id mismatch)."""
    kept = entry.before.get(ATTEMPTS_KEY)
    if isinstance(kept, Mapping):
        cleared = kept.get("cleared")
        last_error = kept.get("last_error")
        return TrailHistory(
            cleared=cleared if isinstance(cleared, int) and cleared > 0 else 0,
            dead_lettered=kept.get("dead_lettered") is True,
            last_error=last_error if isinstance(last_error, str) and last_error else None,
        )
    evidence = entry.before.get("evidence")
    lines = [line for line in evidence if isinstance(line, str)] if isinstance(evidence, list) else []
    in_dlq = any(line.startswith("queue: ") and "in the dead-letter queue" in line for line in lines)
    for line in lines:
        match = _JOURNAL_LINE.match(line)
        if match is None:
            continue
        status = match["status"]
        runs = int(match["attempts"])
        failed = runs if status in {JobStatus.DEAD_LETTERED, JobStatus.RETRYING} else max(runs - 1, 0)
        clears = entry.outcome not in {REDRIVEN, REMOVED} and entry.finding != "tenant_id_mismatch"
        rest = match["rest"]
        error = _AFTER_ERROR.split(rest.split(_LAST_ERROR, 1)[1], 1)[0] if _LAST_ERROR in rest else None
        return TrailHistory(
            cleared=failed if clears else 0,
            dead_lettered=in_dlq or status == JobStatus.DEAD_LETTERED,
            last_error=error or None,
        )
    return TrailHistory(cleared=0, dead_lettered=in_dlq, last_error=None)


# --- The weekly audit's view ------------------------------------------------------------------


class AttemptOutcome(StrEnum):
    """Where a purchase that failed in the window stands now."""

    HEALED = "healed"  # diagnose calls it healthy
    IN_PROGRESS = "in_progress"  # a worker still has it (a retry is due)
    OPEN = "open"  # a finding stands

    @classmethod
    def of(cls, finding: Finding) -> AttemptOutcome:
        if finding is Finding.HEALTHY:
            return cls.HEALED
        return cls.IN_PROGRESS if finding is Finding.IN_PROGRESS else cls.OPEN


@dataclass(frozen=True, slots=True)
class PurchaseAttempts:
    """One purchase that failed in the window, healed since or not: its failed runs (the journal's
    and those repairs and redrives wiped), whether it reached the dead-letter queue, what operators
    did, its last error, and its finding now."""

    transaction_id: str
    email: str | None
    tenant_id: str | None
    failed_attempts: int
    dead_lettered: bool
    repairs: int
    redrives: int
    removed_from_dlq: int  # stale dead-letter messages removed
    last_error: str | None
    last_at: str | None  # the latest record of it in the window: the job written, a trail entry
    finding: Finding  # as diagnose names it now

    @property
    def outcome(self) -> AttemptOutcome:
        return AttemptOutcome.of(self.finding)

    @property
    def history(self) -> str:
        """What happened, in words: `5 failed attempts, dead-lettered, 1 repair`."""
        parts = [plural(self.failed_attempts, "failed attempt")]
        if self.dead_lettered:
            parts.append("dead-lettered")
        if self.repairs:
            parts.append(plural(self.repairs, "repair"))
        if self.redrives:
            parts.append(plural(self.redrives, "redrive"))
        if self.removed_from_dlq:
            parts.append(plural(self.removed_from_dlq, "stale dead-letter message") + " removed")
        return ", ".join(parts)

    @property
    def now(self) -> str:
        """Where it stands, in words: `healed`, `in progress`, `open: provisioning_failed`."""
        if self.outcome is AttemptOutcome.OPEN:
            return f"open: {self.finding.value}"
        return self.outcome.value.replace("_", " ")

    def as_document(self) -> dict[str, Any]:
        return {
            "transaction_id": self.transaction_id,
            "email": self.email,
            "tenant_id": self.tenant_id,
            "failed_attempts": self.failed_attempts,
            "dead_lettered": self.dead_lettered,
            "repairs": self.repairs,
            "redrives": self.redrives,
            "removed_from_dlq": self.removed_from_dlq,
            "last_error": self.last_error,
            "last_at": self.last_at,
            "outcome": self.outcome.value,
            "finding": self.finding.value,
        }


_FAILING = frozenset({JobStatus.DEAD_LETTERED, JobStatus.RETRYING})


@dataclass
class _Tally:
    cleared: int = 0
    dead_lettered: bool = False
    repairs: int = 0
    redrives: int = 0
    removed: int = 0
    trail_error: str | None = None
    message_error: str | None = None
    last_at: str | None = None
    email: str | None = None
    tenant_id: str | None = None


class AttemptTracker:
    """Collects, purchase by purchase, what the stores remember of failures in a window: jobs that
    failed a run or were dead-lettered and were written in it, trail entries (repairs, redrives,
    removals) made in it, and dead-lettered messages. Keys are stripped transaction ids."""

    def __init__(self, since: datetime) -> None:
        self._since = since
        self._tallies: dict[str, _Tally] = {}

    def note_job(self, job: ProvisioningJob) -> bool:
        """True when the job failed a run or was dead-lettered and was written in the window:
        the audit must classify it even if it was bought before."""
        # The cheap test first: nearly every job ran once and succeeded.
        if job.attempts <= 1 and job.status not in _FAILING:
            return False
        if parse_timestamp(job.updated_at) < self._since:
            return False
        key = job.transaction_id.strip()
        if not key:
            return False
        self._tallies.setdefault(key, _Tally())
        return True

    def note_entry(self, entry: RepairRecord) -> bool:
        """True when the trail entry is about a purchase and was made in the window."""
        key = (entry.transaction_id or "").strip()
        if not key or parse_timestamp(entry.at) < self._since:
            return False
        tally = self._tallies.setdefault(key, _Tally())
        if entry.outcome == REDRIVEN:
            tally.redrives += 1
        elif entry.outcome == REMOVED:
            tally.removed += 1
        else:
            tally.repairs += 1
        history = history_of(entry)
        tally.cleared += history.cleared
        tally.dead_lettered = tally.dead_lettered or history.dead_lettered or entry.outcome in {REDRIVEN, REMOVED}
        # Entries come oldest first: the newest error wins.
        tally.trail_error = history.last_error or tally.trail_error
        tally.last_at = max(tally.last_at or entry.at, entry.at)
        tally.email = tally.email or entry.email
        tally.tenant_id = tally.tenant_id or entry.tenant_id
        return True

    def note_message(self, message: QueuedMessage) -> None:
        """A dead-lettered message of a purchase the audit looks at."""
        key = message.transaction_id.strip()
        if not key or not message.dead_lettered:
            return
        tally = self._tallies.setdefault(key, _Tally())
        tally.dead_lettered = True
        tally.message_error = tally.message_error or message.last_error

    @property
    def transactions(self) -> frozenset[str]:
        return frozenset(self._tallies)

    def rows(
        self,
        finding_now: Callable[[str], Finding],
        job_of: Callable[[str], ProvisioningJob | None],
        email_of: Callable[[str], str | None],
    ) -> tuple[PurchaseAttempts, ...]:
        """One row per purchase, the one most recently touched last."""
        rows: list[PurchaseAttempts] = []
        for key, tally in self._tallies.items():
            job = job_of(key)
            failed, dead_lettered, error, last_at = tally.cleared, tally.dead_lettered, None, tally.last_at
            # The journal's own count, unless the job was last written before the window (its runs
            # then came before it too; a trail entry brought the purchase in).
            if job is not None and parse_timestamp(job.updated_at) >= self._since:
                failed += failed_attempts(job)
                dead_lettered = dead_lettered or job.status is JobStatus.DEAD_LETTERED
                error = job.last_error
                last_at = max(last_at or job.updated_at, job.updated_at)
            rows.append(
                PurchaseAttempts(
                    transaction_id=key,
                    email=email_of(key) or tally.email,
                    tenant_id=job.tenant_id if job is not None else tally.tenant_id,
                    failed_attempts=failed,
                    dead_lettered=dead_lettered,
                    repairs=tally.repairs,
                    redrives=tally.redrives,
                    removed_from_dlq=tally.removed,
                    last_error=error or tally.trail_error or tally.message_error,
                    last_at=last_at,
                    finding=finding_now(key),
                )
            )
        rows.sort(key=lambda row: (row.last_at or "", row.transaction_id))
        return tuple(rows)
