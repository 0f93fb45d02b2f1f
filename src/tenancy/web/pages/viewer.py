"""Who is signed in to the pages: the session cookie's ID token, verified on every request."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from tenancy.accounts.roles import OPERATOR_ROLE, roles_of
from tenancy.bootstrap import Services
from tenancy.errors import AuthenticationError
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
    token: str

    @property
    def is_operator(self) -> bool:
        return OPERATOR_ROLE in self.roles


def current_viewer(request: Request) -> Viewer | None:
    token = session_token(request)
    if token is None:
        return None
    services: Services = request.app.state.services
    try:
        claims = services.identity.verify_id_token(token)
    except AuthenticationError:
        return None
    tenant_id = claims.get("custom:tenant_id")
    return Viewer(
        email=str(claims.get("email", "")),
        tenant_id=tenant_id if isinstance(tenant_id, str) and tenant_id else None,
        roles=roles_of(claims),
        token=token,
    )


def require_viewer(request: Request) -> Viewer:
    viewer = current_viewer(request)
    if viewer is None:
        # Back to the page after signing in; a form post cannot be replayed, so it is not kept.
        query = f"?{request.url.query}" if request.url.query else ""
        raise LoginRequiredError(f"{request.url.path}{query}" if request.method == "GET" else "")
    return viewer


def require_operator(request: Request) -> Viewer:
    """Operators only: the verified token must say so, and so must the identity user now. A
    token lives for up to an hour; an operator disabled or demoted since loses the console at once."""
    viewer = require_viewer(request)
    if not viewer.is_operator:
        raise OperatorsOnlyError()
    services: Services = request.app.state.services
    user = services.identity.get_user(viewer.email)
    if user is None or not user.enabled or OPERATOR_ROLE not in roles_of(user.attributes):
        raise OperatorsOnlyError()
    return viewer
