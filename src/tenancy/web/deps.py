"""Request dependencies: the wired services, and the caller's bearer token."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from tenancy.bootstrap import Services
from tenancy.errors import InvalidTokenError

__all__ = ["BearerToken", "ServicesDep"]


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def get_bearer_token(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidTokenError("Missing bearer token")
    return token.strip()


ServicesDep = Annotated[Services, Depends(get_services)]
BearerToken = Annotated[str, Depends(get_bearer_token)]
