"""The team API: a tenant's members and invitations, for its people (read by every member,
changed by tenant admins only: the caller's role is read from its users record on every request,
never trusted from the form), and joining by an invitation link.

- `GET /tenants/me/members`: seats, members, pending invitations.
- `POST /tenants/me/members` `{email, role}`: invites (201); 409 when every seat is held.
- `PATCH /tenants/me/members/{user_id}` `{role}`; `DELETE /tenants/me/members/{user_id}`.
- `POST /tenants/me/invitations/{invitation_id}/resend`; `DELETE /tenants/me/invitations/{invitation_id}`.
- `POST /tenants/me/owner` `{user_id}`: the owner hands ownership to another tenant admin.
- `GET /invitations/{token}`, `POST /invitations/{token}/accept` `{password}`: no sign-in needed.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from tenancy.bootstrap import Services
from tenancy.domain.members import Invitation, Role, manages_team
from tenancy.domain.model import Tenant, UserRecord
from tenancy.errors import ConflictError, InvalidInputError, SeatsTakenError
from tenancy.web.deps import BearerToken, ServicesDep

__all__ = ["router"]

router = APIRouter(tags=["members"])

RoleName = Literal["tenant_admin", "editor", "viewer"]


class MemberView(BaseModel):
    user_id: str
    email: str
    role: str
    status: str  # active | disabled (removed)
    owner: bool
    joined_at: str
    last_sign_in_at: str | None  # null: never signed in since joining

    @classmethod
    def of(cls, user: UserRecord, tenant: Tenant) -> MemberView:
        return cls(
            user_id=user.user_id,
            email=user.email,
            role=user.role,
            status=user.status.value,
            owner=user.user_id == tenant.owner_user_id,
            joined_at=user.created_at,
            last_sign_in_at=user.last_sign_in_at,
        )


class InvitationView(BaseModel):
    invitation_id: str
    email: str
    role: str
    status: str
    invited_by: str
    expires_at: str

    @classmethod
    def of(cls, invitation: Invitation) -> InvitationView:
        return cls(
            invitation_id=invitation.invitation_id,
            email=invitation.email,
            role=invitation.role.value,
            status=invitation.status.value,
            invited_by=invitation.invited_by,
            expires_at=invitation.expires_at,
        )


class Seats(BaseModel):
    used: int  # members and pending invitations
    limit: int  # the plan's max_users


class TeamView(BaseModel):
    tenant_id: str
    seats: Seats
    members: list[MemberView]
    invitations: list[InvitationView]  # pending ones


class InviteRequest(BaseModel):
    email: str = Field(min_length=3, max_length=254)
    role: RoleName


class RoleRequest(BaseModel):
    role: RoleName


class JoinView(BaseModel):
    team: str
    email: str
    role: str
    expires_at: str


class Joined(BaseModel):
    tenant_id: str
    email: str
    role: str


def _caller(services: Services, token: str, *, manage: bool) -> tuple[Tenant, UserRecord]:
    """The caller's tenant and users record; 403 unless a tenant admin when `manage`."""
    tenant, member = services.accounts.member_for_token(token)
    if manage and not manages_team(member):
        raise _ForbiddenError("only a tenant admin can manage the team")
    return tenant, member


class _ForbiddenError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _refused(error: Exception) -> JSONResponse:
    if isinstance(error, _ForbiddenError):
        return JSONResponse({"detail": error.reason}, status_code=403)
    if isinstance(error, SeatsTakenError | ConflictError):
        return JSONResponse({"detail": str(error)}, status_code=409)
    return JSONResponse({"detail": str(error)}, status_code=400)


def _team(services: Services, tenant: Tenant) -> TeamView:
    used, limit = services.team.seats(tenant)
    return TeamView(
        tenant_id=tenant.tenant_id,
        seats=Seats(used=used, limit=limit),
        members=[MemberView.of(user, tenant) for user in services.team.members(tenant.tenant_id)],
        invitations=[
            InvitationView.of(each) for each in services.team.invitations(tenant.tenant_id, pending_only=True)
        ],
    )


_REFUSALS = (_ForbiddenError, SeatsTakenError, ConflictError, InvalidInputError)


@router.get("/tenants/me/members", responses={401: {"description": "No valid token"}})
def team(token: BearerToken, services: ServicesDep) -> TeamView:
    tenant, _member = _caller(services, token, manage=False)
    return _team(services, tenant)


@router.post(
    "/tenants/me/members",
    status_code=201,
    responses={403: {"description": "Not a tenant admin"}, 409: {"description": "Every seat is held"}},
)
def invite(body: InviteRequest, token: BearerToken, services: ServicesDep) -> JSONResponse:
    try:
        tenant, member = _caller(services, token, manage=True)
        invited = services.team.invite(tenant, body.email, Role(body.role), by=member.email)
    except _REFUSALS as error:
        return _refused(error)
    return JSONResponse(InvitationView.of(invited.invitation).model_dump(), status_code=201)


@router.patch("/tenants/me/members/{user_id}", responses={403: {"description": "Not a tenant admin"}})
def set_role(user_id: str, body: RoleRequest, token: BearerToken, services: ServicesDep) -> JSONResponse:
    try:
        tenant, member = _caller(services, token, manage=True)
        changed = services.team.set_role(tenant, user_id, Role(body.role), by=member.email)
    except _REFUSALS as error:
        return _refused(error)
    return JSONResponse(MemberView.of(changed, tenant).model_dump())


@router.delete("/tenants/me/members/{user_id}", responses={403: {"description": "Not a tenant admin"}})
def remove(user_id: str, token: BearerToken, services: ServicesDep) -> JSONResponse:
    try:
        tenant, member = _caller(services, token, manage=True)
        if user_id == member.user_id:
            raise InvalidInputError("you cannot remove yourself: ask another tenant admin")
        removed = services.team.remove(tenant, user_id, by=member.email)
    except _REFUSALS as error:
        return _refused(error)
    return JSONResponse(MemberView.of(removed, tenant).model_dump())


@router.post("/tenants/me/invitations/{invitation_id}/resend", responses={403: {"description": "Not a tenant admin"}})
def resend(invitation_id: str, token: BearerToken, services: ServicesDep) -> JSONResponse:
    try:
        tenant, member = _caller(services, token, manage=True)
        invited = services.team.resend(tenant, invitation_id, by=member.email)
    except _REFUSALS as error:
        return _refused(error)
    return JSONResponse(InvitationView.of(invited.invitation).model_dump())


@router.delete("/tenants/me/invitations/{invitation_id}", responses={403: {"description": "Not a tenant admin"}})
def revoke(invitation_id: str, token: BearerToken, services: ServicesDep) -> JSONResponse:
    try:
        tenant, member = _caller(services, token, manage=True)
        revoked = services.team.revoke(tenant, invitation_id, by=member.email)
    except _REFUSALS as error:
        return _refused(error)
    return JSONResponse(InvitationView.of(revoked).model_dump() | {"status": "revoked"})


@router.post("/tenants/me/owner", responses={403: {"description": "Not the owner"}})
def transfer(user_id: Annotated[str, Body(embed=True)], token: BearerToken, services: ServicesDep) -> JSONResponse:
    try:
        tenant, member = _caller(services, token, manage=True)
        if member.user_id != tenant.owner_user_id:
            raise _ForbiddenError("only the owner can hand the ownership on")
        updated = services.team.transfer_ownership(tenant, user_id, by=member.email)
    except _REFUSALS as error:
        return _refused(error)
    return JSONResponse({"tenant_id": updated.tenant_id, "owner_user_id": updated.owner_user_id})


@router.get("/invitations/{token}", responses={400: {"description": "Unknown, used, revoked or expired"}})
def invitation(token: str, services: ServicesDep) -> JSONResponse:
    try:
        found, tenant = services.team.invitation_for(token)
    except InvalidInputError as error:
        return _refused(error)
    return JSONResponse(
        JoinView(team=tenant.name, email=found.email, role=found.role.value, expires_at=found.expires_at).model_dump()
    )


@router.post(
    "/invitations/{token}/accept",
    status_code=201,
    responses={400: {"description": "Unknown, used, revoked or expired; or a weak password"}},
)
def accept(
    token: str, password: Annotated[str, Body(embed=True, min_length=1, max_length=256)], services: ServicesDep
) -> JSONResponse:
    try:
        user = services.team.accept(token, password)
    except InvalidInputError as error:
        return _refused(error)
    return JSONResponse(
        Joined(tenant_id=user.tenant_id, email=user.email, role=user.role).model_dump(), status_code=201
    )
