"""Health and provisioning status."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel

from tenancy.web.deps import ServicesDep

__all__ = ["router"]

router = APIRouter(tags=["system"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


class ProvisioningStatus(BaseModel):
    transaction_id: str
    status: str
    completed_steps: list[str]


@router.get("/provisioning/{transaction_id}", responses={404: {"description": "No such transaction"}})
def provisioning_status(transaction_id: str, services: ServicesDep) -> ProvisioningStatus:
    """Where a purchase's provisioning stands: what the checkout page polls. Shows no personal data."""
    job = services.journal.get(transaction_id[:64])
    if job is None:
        raise HTTPException(status_code=404, detail="No provisioning for this transaction")
    return ProvisioningStatus(
        transaction_id=job.transaction_id,
        status=job.status.value,
        completed_steps=[step.value for step in job.completed_steps],
    )
