"""Joining a team by the invitation email's link (`/join/<token>`): who invites whom to which team
as what, and a form to choose a password; accepting it (`services.team.accept`) signs the new
member in, as choosing a new password on a first sign-in does. A link that cannot be used (unknown,
used, withdrawn, expired, or its team closed) gets a page saying what happened and what to do."""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response

from tenancy.bootstrap import Services
from tenancy.domain.clock import format_timestamp
from tenancy.domain.members import Invitation, InvitationStatus, parse_invitation_token, secret_matches
from tenancy.domain.model import AuthChallenge, Tenant
from tenancy.domain.passwords import password_policy_failures
from tenancy.errors import AuthenticationError, InvalidInputError, TenancyError
from tenancy.web.deps import ServicesDep, client_ip
from tenancy.web.pages.rendering import redirect, render
from tenancy.web.pages.security import read_form, session_token, set_session
from tenancy.web.pages.team_view import ROLE_CHOICES, timestamp_words
from tenancy.web.pages.viewer import current_viewer

__all__ = ["router"]

log = structlog.get_logger(__name__)

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True, slots=True)
class LinkProblem:
    """Why a link cannot be used, in the invitee's words: a title, what happened, what to do."""

    kind: str  # unknown | used | revoked | expired | closed
    title: str
    happened: str
    next_step: str
    sign_in: bool = False  # the next step is signing in


_UNKNOWN = LinkProblem(
    "unknown",
    "This invitation link does not work",
    "We do not know this link: it may be incomplete (copy the whole link from the email), or it was replaced "
    "by a newer invitation email.",
    "Open the link in the newest invitation email you got, or ask the person who invited you to send it again.",
)
_PROBLEMS = {
    InvitationStatus.ACCEPTED: LinkProblem(
        "used",
        "This invitation was used already",
        "Someone accepted this invitation and chose a password: each link works once.",
        "If it was you, sign in with your email and the password you chose.",
        sign_in=True,
    ),
    InvitationStatus.REVOKED: LinkProblem(
        "revoked",
        "This invitation was withdrawn",
        "An admin of the team withdrew this invitation, so its link no longer works.",
        "If you should still join, ask the person who invited you to invite you again.",
    ),
    InvitationStatus.EXPIRED: LinkProblem(
        "expired",
        "This invitation has expired",
        "An invitation link works for 7 days, and this one's time has run out.",
        "Ask the person who invited you to send the invitation again: the new email has a new link.",
    ),
}
_CLOSED = LinkProblem(
    "closed",
    "This team cannot take new members now",
    "The site you were invited to is not active at the moment, so nobody can join it.",
    "Ask the person who invited you; they can invite you again once the site is active.",
)


@router.get("/join/{token}")
def join_page(request: Request, services: ServicesDep, token: str) -> Response:
    try:
        invitation, tenant = services.team.invitation_for(token)
    except InvalidInputError:
        return _problem_page(request, services, token)
    return _form(request, services, invitation, tenant)


@router.post("/join/{token}")
async def accept(request: Request, services: ServicesDep, token: str) -> Response:
    form = await read_form(request)
    password, repeated = form.get("new_password", ""), form.get("confirm_password", "")
    try:
        invitation, tenant = await run_in_threadpool(services.team.invitation_for, token)
    except InvalidInputError:
        return _problem_page(request, services, token)
    problems = _password_problems(password, repeated)
    if problems:
        return _form(request, services, invitation, tenant, errors=problems, status_code=400)
    try:
        user = await run_in_threadpool(services.team.accept, token, password)
    except AuthenticationError as error:  # the identity provider's own password policy
        return _form(request, services, invitation, tenant, errors=[error.reason], status_code=400)
    except InvalidInputError as refusal:
        # Used or withdrawn in the meantime; or the email joined another account since it was invited.
        log.info("join_refused", invitation_id=invitation.invitation_id, reason=str(refusal))
        problem = _problem(services, token)
        if problem is not _UNKNOWN:
            return _render_problem(request, problem, 400)
        return _render_problem(request, _refused(str(refusal)), 400)
    return await run_in_threadpool(_signed_in, request, services, user.email, password)


def _signed_in(request: Request, services: Services, email: str, password: str) -> Response:
    """The new member, signed in to their account: with the password just chosen, as a sign-in
    would (the identity provider's tokens make the server-side session). Any other session of
    this browser ends first. Should signing in fail, the member has joined all the same: to the
    sign-in page."""
    previous = session_token(request)
    if previous is not None:
        services.sessions.end(previous)
    try:
        result = services.accounts.login(email, password, client_ip(request))
    except TenancyError as failure:
        log.warning("join_sign_in_failed", kind=type(failure).__name__)
        return redirect("/auth/login?next=/account")
    if isinstance(result, AuthChallenge):  # not expected: the password was set as permanent
        return redirect("/auth/login?next=/account")
    claims = services.identity.verify_id_token(result.id_token)
    response = redirect("/account?team=joined#team")
    set_session(response, services.sessions.start_browser(claims), services.settings)
    return response


def _form(
    request: Request,
    services: Services,
    invitation: Invitation,
    tenant: Tenant,
    *,
    errors: list[str] | None = None,
    status_code: int = 200,
) -> Response:
    viewer = current_viewer(request)
    role = next(choice for choice in ROLE_CHOICES if choice.value == invitation.role.value)
    context = {
        "team": tenant.name,
        "email": invitation.email,
        "inviter": invitation.invited_by,
        "role": role,
        "expires": timestamp_words(invitation.expires_at),
        "errors": errors or [],
        # Someone else signed in on this browser (the inviter trying the link, perhaps): joining signs them out.
        "other_viewer": viewer if viewer is not None and viewer.email != invitation.email else None,
    }
    return render(request, "join.html", context, status_code=status_code, viewer=viewer)


def _problem_page(request: Request, services: Services, token: str) -> Response:
    problem = _problem(services, token)
    log.info("join_link_refused", kind=problem.kind)
    return _render_problem(request, problem, 404 if problem is _UNKNOWN else 410)


def _render_problem(request: Request, problem: LinkProblem, status_code: int) -> Response:
    context = {"problem": problem}
    return render(request, "join_problem.html", context, status_code=status_code, viewer=current_viewer(request))


def _problem(services: Services, token: str) -> LinkProblem:
    """Why `services.team.invitation_for` refused the link: told apart only for the holder of the
    right secret (anyone else learns nothing of the invitation), unknown otherwise."""
    parsed = parse_invitation_token(token)
    invitation = services.team_store.get_invitation(parsed[0]) if parsed else None
    if parsed is None or invitation is None or not secret_matches(invitation, parsed[1]):
        return _UNKNOWN
    if invitation.status in _PROBLEMS:
        return _PROBLEMS[invitation.status]
    if invitation.expires_at <= format_timestamp(services.clock.now()):
        return _PROBLEMS[InvitationStatus.EXPIRED]
    tenant = services.tenants.get(invitation.tenant_id)
    if tenant is None or not tenant.status.has_access:
        return _CLOSED
    return _UNKNOWN


def _refused(reason: str) -> LinkProblem:
    return LinkProblem(
        "refused",
        "You could not join this team",
        reason if reason.endswith(".") else f"{reason}.",
        "Ask the person who invited you to invite another email address of yours.",
    )


def _password_problems(password: str, repeated: str) -> list[str]:
    """Every problem of the chosen password at once, before the identity provider is asked (it
    would name only one): as the new-password and reset pages say them."""
    failures = password_policy_failures(password)
    problems = [f"The password must have {', '.join(failures)}"] if failures else []
    return problems + (["The passwords do not match"] if password != repeated else [])
