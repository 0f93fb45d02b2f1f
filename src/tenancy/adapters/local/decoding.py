"""Decoding the embedded stores' JSON and enum columns into the domain's values. Most rows share a
few spellings (a plan's limits, a finished job's steps, no reasons), and the values are immutable,
so each spelling is decoded once: a scan or a batched look-up builds thousands of records."""

from __future__ import annotations

import json
from functools import lru_cache

from tenancy.domain.model import JobStatus, PaymentVerdict, Step, TenantStatus, Usage
from tenancy.domain.plans import Limits

__all__ = ["job_status", "limits", "payment_verdict", "reasons", "steps", "tenant_status", "usage"]

_SPELLINGS = 4096
_JOB_STATUSES = {status.value: status for status in JobStatus}
_VERDICTS = {verdict.value: verdict for verdict in PaymentVerdict}
_TENANT_STATUSES = {status.value: status for status in TenantStatus}


def job_status(value: str) -> JobStatus:
    # The enum's own lookup for anything else, so a value it refuses is refused as before.
    return _JOB_STATUSES.get(value) or JobStatus(value)


def payment_verdict(value: str) -> PaymentVerdict:
    return _VERDICTS.get(value) or PaymentVerdict(value)


def tenant_status(value: str) -> TenantStatus:
    return _TENANT_STATUSES.get(value) or TenantStatus(value)


@lru_cache(maxsize=_SPELLINGS)
def steps(text: str) -> tuple[Step, ...]:
    return tuple(Step(step) for step in json.loads(text))


@lru_cache(maxsize=_SPELLINGS)
def reasons(text: str) -> tuple[str, ...]:
    return tuple(json.loads(text))


@lru_cache(maxsize=_SPELLINGS)
def limits(text: str) -> Limits:
    return Limits(**json.loads(text))


@lru_cache(maxsize=_SPELLINGS)
def usage(text: str) -> Usage:
    return Usage(**json.loads(text))
