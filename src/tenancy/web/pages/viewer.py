"""Who is signed in to the pages: the server-side session the cookie names, read on every request."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from tenancy.accounts.roles import OPERATOR_ROLE, roles_of
from tenancy.bootstrap import Services
from tenancy.web.pages.security import session_token

__all__ = ["LoginRequiredError", "OperatorsOnlyError", "Viewer", "current_viewer", "require_operator", "require_viewer"]


class LoginRequiredError(Exception):
    """The page needs a signed-in viewer; the handler sends the browser to the sign-in page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class OperatorsOnlyError(Exception):
    """A signed-in viewer without the operator role asked for the operations console."""


@dataclass(frozen=True, slots=True)
class Viewer:
    email: str
    tenant_id: str | None
    roles: frozenset[str]

    @property
    def is_operator(self) -> bool:
        return OPERATOR_ROLE in self.roles


def current_viewer(request: Request) -> Viewer | None:
    cached: Viewer | None = getattr(request.state, "viewer", None)
    if cached is not None:
        return cached
    services: Services = request.app.state.services
    session = services.sessions.browser_session(session_token(request))
    if session is None:
        return None
    viewer = Viewer(email=session.username, tenant_id=session.tenant_id, roles=frozenset(session.roles))
    request.state.viewer = viewer
    return viewer


def require_viewer(request: Request) -> Viewer:
    viewer = current_viewer(request)
    if viewer is None:
        # Back to the page after signing in; a form post cannot be replayed, so it is not kept.
        query = f"?{request.url.query}" if request.url.query else ""
        raise LoginRequiredError(f"{request.url.path}{query}" if request.method == "GET" else "")
    return viewer


def require_operator(request: Request) -> Viewer:
    """Operators only: the session must say so, and so must the identity user now. An operator
    disabled, demoted or removed since signing in loses the console at once, and every session of
    theirs ends."""
    viewer = require_viewer(request)
    if not viewer.is_operator:
        raise OperatorsOnlyError()
    services: Services = request.app.state.services
    user = services.identity.get_user(viewer.email)
    if user is None or not user.enabled or OPERATOR_ROLE not in roles_of(user.attributes):
        # Demoted, disabled or removed since signing in: every session of theirs ends now.
        services.sessions.end_everywhere(viewer.email, "operator_access_withdrawn")
        raise OperatorsOnlyError()
    return viewer
