"""`GET /tenants/me`: the caller's own tenant, chosen by the verified token alone."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from tenancy.domain.model import Tenant
from tenancy.web.deps import BearerToken, ServicesDep

__all__ = ["router"]

router = APIRouter(tags=["tenants"])


class LimitsView(BaseModel):
    max_sites: int
    max_generations_per_month: int
    max_storage_mb: int
    custom_domain_allowed: bool


class UsageView(BaseModel):
    sites_count: int
    generations_this_month: int
    storage_used_mb: int


class TenantView(BaseModel):
    tenant_id: str
    name: str
    plan: str
    status: str
    limits: LimitsView
    usage: UsageView
    storage_prefix: str
    created_at: str

    @classmethod
    def of(cls, tenant: Tenant) -> TenantView:
        limits, usage = tenant.limits, tenant.usage
        return cls(
            tenant_id=tenant.tenant_id,
            name=tenant.name,
            plan=tenant.plan,
            status=tenant.status.value,
            limits=LimitsView(
                max_sites=limits.max_sites,
                max_generations_per_month=limits.max_generations_per_month,
                max_storage_mb=limits.max_storage_mb,
                custom_domain_allowed=limits.custom_domain_allowed,
            ),
            usage=UsageView(
                sites_count=usage.sites_count,
                generations_this_month=usage.generations_this_month,
                storage_used_mb=usage.storage_used_mb,
            ),
            storage_prefix=tenant.storage_prefix,
            created_at=tenant.created_at,
        )


@router.get(
    "/tenants/me",
    responses={401: {"description": "Missing, invalid or expired token"}, 403: {"description": "Tenant not found"}},
)
async def my_tenant(token: BearerToken, services: ServicesDep) -> TenantView:
    tenant = await run_in_threadpool(services.accounts.tenant_for_token, token)
    return TenantView.of(tenant)
