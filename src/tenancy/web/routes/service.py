"""The service API, for the Site Builder application (another service), called with a service
key (`Authorization: Bearer tnc_<name>.<secret>`, made by `tenancy service-keys create`):

- `GET /service/tenants/{tenant_id}/entitlements`: status, plan, limits, usage in the current
  period, what remains of each limit, and the period's start and end.
- `POST /service/tenants/{tenant_id}/usage`: records usage (a delta, or a level for sites and
  storage) atomically against the quota, once per idempotency key: 200 with the usage after and
  what remains; 409 quota exceeded (nothing changed); 403 the tenant has no access now; 404 no
  such tenant. A repeated key answers the first answer (header `Idempotent-Replayed: true`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

from tenancy.domain.usage import Entitlements, Metric, UsageChange, UsageOutcome, refusal_reason
from tenancy.errors import InvalidInputError, InvalidTokenError, TenantInactiveError
from tenancy.web.deps import ServicesDep

__all__ = ["router"]

router = APIRouter(prefix="/service", tags=["service"])

# Its own scheme (not "HTTPBearer"): a service key is not a person's token, and the tenant
# routes' authorization matrix finds those by the scheme's name.
_service_key = HTTPBearer(
    scheme_name="ServiceKey", auto_error=False, description="A service key from `tenancy service-keys create`"
)
_MAX_AMOUNT = 1_000_000_000


async def service_key(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_service_key)]) -> str:
    """The key presented; checked by the route, in the same worker-thread call as its work (one
    hop to the thread pool per request, not two)."""
    if credentials is None or not credentials.credentials.strip():
        raise InvalidTokenError("Missing service key")
    return credentials.credentials


ServiceCaller = Annotated[str, Depends(service_key)]


class Counts(BaseModel):
    generations: int
    sites: int
    storage_mb: int


class Limits(BaseModel):
    max_sites: int
    max_generations_per_month: int
    max_storage_mb: int
    custom_domain_allowed: bool


class UsageNow(BaseModel):
    sites_count: int
    generations_this_month: int
    storage_used_mb: int


class Period(BaseModel):
    start: str  # ISO date, the first day of the period
    end: str  # ISO date, the first day after it


class EntitlementsView(BaseModel):
    tenant_id: str
    status: str
    plan: str
    active: bool  # whether usage may be recorded now
    reason: str | None  # why not, when not active ("payment overdue", "subscription ended")
    limits: Limits
    usage: UsageNow
    remaining: Counts
    period: Period

    @classmethod
    def of(cls, entitlements: Entitlements) -> EntitlementsView:
        limits, usage = entitlements.limits, entitlements.usage
        reason = refusal_reason(entitlements.status)
        return cls(
            tenant_id=entitlements.tenant_id,
            status=entitlements.status.value,
            plan=entitlements.plan,
            active=reason is None,
            reason=reason,
            limits=Limits(
                max_sites=limits.max_sites,
                max_generations_per_month=limits.max_generations_per_month,
                max_storage_mb=limits.max_storage_mb,
                custom_domain_allowed=limits.custom_domain_allowed,
            ),
            usage=UsageNow(
                sites_count=usage.sites_count,
                generations_this_month=usage.generations_this_month,
                storage_used_mb=usage.storage_used_mb,
            ),
            remaining=Counts(**{metric.value: entitlements.remaining(metric) for metric in Metric}),
            period=Period(start=entitlements.period.start.isoformat(), end=entitlements.period.end.isoformat()),
        )


class UsageRequest(BaseModel):
    """Exactly one of `delta` (any metric; negative lowers it, never below zero) and `set`
    (sites and storage_mb only: their truth lives in the application)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    metric: Literal["generations", "sites", "storage_mb"]
    # Strict: `true` or "5" is a caller's bug to name, not an amount to guess (lax ints take both).
    delta: StrictInt | None = Field(default=None, ge=-_MAX_AMOUNT, le=_MAX_AMOUNT)
    set_to: StrictInt | None = Field(default=None, alias="set", ge=0, le=_MAX_AMOUNT)
    idempotency_key: str = Field(min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$")

    @model_validator(mode="after")
    def _one_change(self) -> UsageRequest:
        if (self.delta is None) == (self.set_to is None):
            raise ValueError("give exactly one of delta and set")
        if self.set_to is not None and self.metric == "generations":
            raise ValueError("generations is a count: record it with delta, not set")
        return self

    def change(self) -> UsageChange:
        absolute = self.set_to is not None
        amount = self.set_to if self.set_to is not None else self.delta
        assert amount is not None  # one of the two, by the validator
        return UsageChange(Metric(self.metric), amount, self.idempotency_key, absolute=absolute)


class UsageRecorded(BaseModel):
    tenant_id: str
    metric: str
    usage: UsageNow  # every count after the record (or as found, for a refusal)
    used: int  # this metric's level after the record
    limit: int
    remaining: int
    replayed: bool  # answered from the first request with this idempotency key


class QuotaExceeded(BaseModel):
    detail: Literal["quota exceeded"]
    metric: str
    limit: int
    usage: int  # this metric's level now
    requested: int  # the delta, or the level asked for
    replayed: bool


class Refused(BaseModel):
    detail: str
    status: str
    reason: str


@router.get(
    "/tenants/{tenant_id}/entitlements",
    responses={401: {"description": "Missing, unknown or revoked service key"}, 404: {"description": "No such tenant"}},
)
def entitlements(tenant_id: str, key: ServiceCaller, services: ServicesDep) -> EntitlementsView:
    services.service_keys.authenticate(key)
    return EntitlementsView.of(services.usage.entitlements(tenant_id))


@router.post(
    "/tenants/{tenant_id}/usage",
    response_model=UsageRecorded,
    responses={
        401: {"description": "Missing, unknown or revoked service key"},
        403: {"model": Refused, "description": "The tenant has no access now (suspended, cancelled...)"},
        404: {"description": "No such tenant"},
        409: {"model": QuotaExceeded, "description": "The change would pass the limit; nothing changed"},
        422: {"description": "Malformed request, or an idempotency key reused for a different record"},
    },
)
def record_usage(tenant_id: str, body: UsageRequest, key: ServiceCaller, services: ServicesDep) -> JSONResponse:
    # A plain `def`: FastAPI runs it in its thread pool (the key check and the record, one hop).
    services.service_keys.authenticate(key)
    try:
        outcome = services.usage.record(tenant_id, body.change())
    except TenantInactiveError as error:
        refused = Refused(detail="tenant not active", status=error.status, reason=error.reason)
        return JSONResponse(refused.model_dump(), status_code=403)
    except InvalidInputError as error:
        return JSONResponse({"detail": str(error)}, status_code=422)
    headers = {"Idempotent-Replayed": "true"} if outcome.replayed else {}
    if not outcome.applied:
        return JSONResponse(_quota_exceeded(outcome).model_dump(), status_code=409, headers=headers)
    return JSONResponse(_recorded(outcome).model_dump(), headers=headers)


def _recorded(outcome: UsageOutcome) -> UsageRecorded:
    usage = outcome.usage
    return UsageRecorded(
        tenant_id=outcome.tenant_id,
        metric=outcome.change.metric.value,
        usage=UsageNow(
            sites_count=usage.sites_count,
            generations_this_month=usage.generations_this_month,
            storage_used_mb=usage.storage_used_mb,
        ),
        used=outcome.used,
        limit=outcome.limit,
        remaining=max(0, outcome.limit - outcome.used),
        replayed=outcome.replayed,
    )


def _quota_exceeded(outcome: UsageOutcome) -> QuotaExceeded:
    return QuotaExceeded(
        detail="quota exceeded",
        metric=outcome.change.metric.value,
        limit=outcome.limit,
        usage=outcome.used,
        requested=outcome.change.amount,
        replayed=outcome.replayed,
    )
