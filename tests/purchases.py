"""Following a purchase from a test: the status key of an ITN built here (PayFast echoes the
checkout form's digest of it in custom_str3), and waiting for a job in the server's journal when
there is no key (a `tenancy itn send` demo payment has none, so it has no public status)."""

from __future__ import annotations

import time

from tenancy.domain.model import JobStatus, ProvisioningJob
from tenancy.payments.checkout import STATUS_KEY_FIELD, status_key_digest

from servers import RunningServer

__all__ = ["keyed", "status_key_for", "wait_for_job"]


def status_key_for(transaction_id: str) -> str:
    """The status key the tests give a purchase: any secret works, the server keeps only its digest."""
    return f"test-status-key-{transaction_id}"


def keyed(transaction_id: str) -> dict[str, str]:
    """`build_itn(custom=...)` for an ITN of a checkout whose status key is `status_key_for(transaction_id)`."""
    return {STATUS_KEY_FIELD: status_key_digest(status_key_for(transaction_id))}


def wait_for_job(
    server: RunningServer, transaction_id: str, wanted: JobStatus = JobStatus.SUCCEEDED, timeout: float = 20
) -> ProvisioningJob:
    """The job once it is `wanted`, read from the journal the server writes (as an operator's CLI reads it)."""
    services = server.services()
    try:
        deadline = time.monotonic() + timeout
        job = None
        while time.monotonic() < deadline:
            job = services.journal.get(transaction_id)
            if job is not None and job.status is wanted:
                return job
            time.sleep(0.05)
    finally:
        services.close()
    raise AssertionError(f"{transaction_id} did not reach {wanted.value}: {job}")
