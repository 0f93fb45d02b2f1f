"""Health and provisioning status."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel

from tenancy.provisioning.status import find_purchase
from tenancy.web.deps import ServicesDep

__all__ = ["router"]

router = APIRouter(tags=["system"])


# HEAD as well as GET: uptime monitors and some load balancers probe with HEAD. (Its own route,
# out of the schema: one route with both methods gives the OpenAPI document a duplicate operation id.)
@router.head("/healthz", include_in_schema=False)
@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


class ProvisioningStatus(BaseModel):
    transaction_id: str
    status: str
    completed_steps: list[str]


StatusKey = Annotated[
    str, Query(description="The checkout's status key: the `key` of the return URL PayFast sent the buyer to.")
]


@router.get(
    "/provisioning/{transaction_id}",
    responses={404: {"description": "No provisioning for this transaction and key (or no such transaction)"}},
)
def provisioning_status(transaction_id: str, services: ServicesDep, key: StatusKey = "") -> ProvisioningStatus:
    """Where a purchase's provisioning stands, for the holder of its checkout's status key. Without
    the right key the answer is the 404 of an unknown transaction. Shows no personal data."""
    purchase = find_purchase(transaction_id[:64], key, services.journal, services.ledger)
    job = purchase.job if purchase is not None else None
    if job is None:
        raise HTTPException(status_code=404, detail="No provisioning for this transaction")
    return ProvisioningStatus(
        transaction_id=job.transaction_id,
        status=job.status.value,
        completed_steps=[step.value for step in job.completed_steps],
    )
