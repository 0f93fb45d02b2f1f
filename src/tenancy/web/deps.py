"""Request dependencies: the wired services, and the caller's bearer token."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from tenancy.bootstrap import Services
from tenancy.errors import InvalidTokenError

__all__ = ["BearerToken", "ServicesDep"]


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


# A security scheme (not a bare header read) so that OpenAPI marks every route that takes the
# caller's token; the authorization matrix test finds tenant-scoped routes that way.
_bearer = HTTPBearer(auto_error=False, description="The ID token from /auth/login or /auth/challenge")


def get_bearer_token(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> str:
    if credentials is None or not credentials.credentials.strip():
        raise InvalidTokenError("Missing bearer token")
    return credentials.credentials.strip()


ServicesDep = Annotated[Services, Depends(get_services)]
BearerToken = Annotated[str, Depends(get_bearer_token)]
