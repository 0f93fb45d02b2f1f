"""Helpers shared by the test suites (importable as `helpers`: tests/ is on pytest's pythonpath)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tenancy.bootstrap import Services
from tenancy.config import Settings
from tenancy.domain.clock import format_timestamp
from tenancy.domain.ids import invoice_number_for, tenant_id_for
from tenancy.domain.model import JobStatus, ProvisioningJob

# Cheap argon2id parameters keep the suite fast; the algorithm and code path are the real ones.
FAST_HASHING = {"password_hash_time_cost": 1, "password_hash_memory_kib": 8}


def make_settings(home: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "home": home,
        "payfast_mode": "sandbox",
        "payfast_source_ranges": ("127.0.0.0/8", "197.97.145.144/28"),
        "payfast_validate_url": "http://127.0.0.1:9/never-called",
        "retry_base_seconds": 0.0,
        "worker_poll_seconds": 0.05,
        **FAST_HASHING,
    }
    values.update(overrides)
    return Settings(**values)


def journal_job(services: Services, transaction_id: str, email: str, plan: str = "professional") -> ProvisioningJob:
    """A queued job for `transaction_id`, written to the journal (not yet to the queue)."""
    now = format_timestamp(services.clock.now())
    job = ProvisioningJob(
        transaction_id=transaction_id,
        tenant_id=tenant_id_for(transaction_id),
        invoice_number=invoice_number_for(transaction_id),
        email=email,
        plan=plan,
        tenant_name="Acme Studio",
        status=JobStatus.QUEUED,
        created_at=now,
        updated_at=now,
    )
    assert services.journal.create(job)
    return job
