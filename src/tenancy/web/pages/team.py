"""The account page's Team forms: invite, resend or withdraw an invitation, change a member's
role, remove a member, hand the ownership on, through `services.team`. Each acts on the signed-in
viewer's own tenant (the server-side session names it, never a form field), only for its tenant
admins (their users record read now, see `pages.team_view`); a refusal is shown on the page."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import structlog
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response

from tenancy.bootstrap import Services
from tenancy.domain.members import Role
from tenancy.domain.model import Tenant
from tenancy.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    SeatsTakenError,
    TenancyError,
    TenantBlockedError,
    TenantNotFoundError,
    TransientError,
)
from tenancy.web.deps import ServicesDep
from tenancy.web.pages.account import CONFIRM_FIELD, account_page
from tenancy.web.pages.rendering import redirect, render
from tenancy.web.pages.security import read_form
from tenancy.web.pages.team_view import is_tenant_admin, member_of
from tenancy.web.pages.viewer import Viewer, require_viewer

__all__ = ["router"]

log = structlog.get_logger(__name__)

router = APIRouter(include_in_schema=False)

_Done = TypeVar("_Done")


@router.post("/account/team/invite")
async def invite(request: Request, services: ServicesDep) -> Response:
    managed = await _managed(request, services)
    if isinstance(managed, Response):
        return managed
    viewer, form, tenant = managed
    email, role = form.get("email", "").strip(), _role(form.get("role", ""))
    if "@" not in email or role is None:
        message = "Nobody was invited: enter the email address and choose a role, then press Invite."
        return account_page(request, services, viewer, error=message, status_code=400)
    return await _act(
        request, services, viewer, "Nobody was invited",
        lambda: services.team.invite(tenant, email, role, by=viewer.email), "invited",
    )  # fmt: skip


@router.post("/account/team/invitations/{invitation_id}/resend")
async def resend(request: Request, services: ServicesDep, invitation_id: str) -> Response:
    managed = await _managed(request, services)
    if isinstance(managed, Response):
        return managed
    viewer, _form, tenant = managed
    return await _act(
        request, services, viewer, "The invitation was not sent again",
        lambda: services.team.resend(tenant, invitation_id, by=viewer.email), "resent",
    )  # fmt: skip


@router.post("/account/team/invitations/{invitation_id}/revoke")
async def revoke(request: Request, services: ServicesDep, invitation_id: str) -> Response:
    managed = await _managed(request, services)
    if isinstance(managed, Response):
        return managed
    viewer, _form, tenant = managed
    return await _act(
        request, services, viewer, "The invitation was not withdrawn",
        lambda: services.team.revoke(tenant, invitation_id, by=viewer.email), "revoked",
    )  # fmt: skip


@router.post("/account/team/members/{user_id}/role")
async def set_role(request: Request, services: ServicesDep, user_id: str) -> Response:
    managed = await _managed(request, services)
    if isinstance(managed, Response):
        return managed
    viewer, form, tenant = managed
    role = _role(form.get("role", ""))
    if role is None:
        message = "The role was not changed: choose Admin, Editor or Viewer, then press Change role."
        return account_page(request, services, viewer, error=message, status_code=400)
    return await _act(
        request, services, viewer, "The role was not changed",
        lambda: services.team.set_role(tenant, user_id, role, by=viewer.email), "role_changed",
    )  # fmt: skip


@router.post("/account/team/members/{user_id}/remove")
async def remove(request: Request, services: ServicesDep, user_id: str) -> Response:
    managed = await _managed(request, services)
    if isinstance(managed, Response):
        return managed
    viewer, _form, tenant = managed
    me = member_of(services, viewer)
    if me is not None and me.user_id == user_id:
        message = "You were not removed: you cannot remove yourself. Ask another admin of your team."
        return account_page(request, services, viewer, error=message, status_code=400)
    return await _act(
        request, services, viewer, "The member was not removed",
        lambda: services.team.remove(tenant, user_id, by=viewer.email), "removed",
    )  # fmt: skip


@router.post("/account/team/owner")
async def transfer_ownership(request: Request, services: ServicesDep) -> Response:
    managed = await _managed(request, services)
    if isinstance(managed, Response):
        return managed
    viewer, form, tenant = managed
    me = member_of(services, viewer)
    if me is None or me.user_id != tenant.owner_user_id:
        message = "Only the owner of a site can hand its ownership on. Ask your site's owner."
        return render(request, "error.html", {"title": "Owner only", "message": message}, status_code=403,
                      viewer=viewer)  # fmt: skip
    user_id = form.get("user_id", "").strip()
    if not user_id or form.get(CONFIRM_FIELD) != "yes":
        message = (
            "Ownership was not handed on: choose the admin to hand it to, tick the box to confirm, "
            "and press the button again."
        )
        return account_page(request, services, viewer, error=message, status_code=400)
    return await _act(
        request, services, viewer, "Ownership was not handed on",
        lambda: services.team.transfer_ownership(tenant, user_id, by=viewer.email), "owner_changed",
    )  # fmt: skip


def _role(name: str) -> Role | None:
    try:
        return Role.named(name)
    except ValueError:
        return None


async def _act(
    request: Request, services: Services, viewer: Viewer, not_done: str, change: Callable[[], _Done], done: str
) -> Response:
    """Makes the change, then back to the Team section with its news; a refusal is said on the page
    (what did not happen, and why), as the team API answers it (409 for seats and the last admin)."""
    try:
        await run_in_threadpool(change)
    except SeatsTakenError as refusal:
        message = (
            f"{not_done}: every seat of your plan is held ({refusal.seats} of {refusal.seats}; members and pending "
            "invitations hold one each). Remove a member, withdraw an invitation, or move to a plan with more seats."
        )
        return account_page(request, services, viewer, error=message, status_code=409)
    except ConflictError as refusal:
        message = f"{not_done}: {_sentence(str(refusal))} Reload the page to see the team as it is now."
        return account_page(request, services, viewer, error=message, status_code=409)
    except NotFoundError:
        message = f"{not_done}: it is not in your team (any more). Reload the page to see the team as it is now."
        return account_page(request, services, viewer, error=message, status_code=404)
    except InvalidInputError as refusal:
        log.info("team_change_refused", tenant_id=viewer.tenant_id, reason=str(refusal))
        return account_page(request, services, viewer, error=f"{not_done}: {_sentence(str(refusal))}", status_code=400)
    except TenancyError as failure:
        log.warning("team_change_failed", tenant_id=viewer.tenant_id, kind=type(failure).__name__)
        status = 503 if isinstance(failure, TransientError) else 502
        message = (
            f"{not_done}: something failed on our side. Reload the page in a minute to see where things stand, "
            f"then try again; if it fails again, email {services.settings.effective_support_email}."
        )
        return account_page(request, services, viewer, error=message, status_code=status)
    return redirect(f"/account?team={done}#team")


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else f"{text}."


async def _managed(request: Request, services: Services) -> tuple[Viewer, dict[str, str], Tenant] | Response:
    """What every Team form starts with: the signed-in viewer, their checked form (origin and CSRF),
    and their tenant if they manage it; else the page that says why not."""
    viewer = require_viewer(request)
    form = await read_form(request)
    tenant = _managed_tenant(request, services, viewer)
    if isinstance(tenant, Response):
        return tenant
    return viewer, form, tenant


def _managed_tenant(request: Request, services: Services, viewer: Viewer) -> Tenant | Response:
    """The viewer's tenant if they are one of its admins and it has access; else the page that says why not."""
    try:
        tenant = services.accounts.active_tenant(viewer.tenant_id) if viewer.tenant_id else None
    except TenantBlockedError:
        # Suspended or cancelled: the page says what happened and how to pay.
        return account_page(request, services, viewer)
    except TenantNotFoundError:
        tenant = None
    if tenant is None:
        message = "Tenant not found: this account has no active site."
        return render(request, "error.html", {"title": "Tenant not found", "message": message,
                                              "account_link": False}, status_code=403, viewer=viewer)  # fmt: skip
    if not is_tenant_admin(services, viewer):
        message = "Only an admin of your team can change the team. Ask one of your team's admins to make the change."
        return render(request, "error.html", {"title": "Admins only", "message": message}, status_code=403,
                      viewer=viewer)  # fmt: skip
    return tenant
