"""Request dependencies: the wired services, the caller's bearer token, and the caller's address."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from tenancy.bootstrap import Services
from tenancy.errors import InvalidTokenError
from tenancy.payments.payfast import client_address

__all__ = ["BearerToken", "ServicesDep", "client_ip"]


# Async (though they do no I/O): FastAPI runs a plain `def` dependency in its thread pool, a hop
# per request for nothing.
async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


# A security scheme (not a bare header read) so that OpenAPI marks every route that takes the
# caller's token; the authorization matrix test finds tenant-scoped routes that way.
_bearer = HTTPBearer(auto_error=False, description="The ID token from /auth/login or /auth/challenge")


async def get_bearer_token(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> str:
    if credentials is None or not credentials.credentials.strip():
        raise InvalidTokenError("Missing bearer token")
    return credentials.credentials.strip()


def client_ip(request: Request) -> str:
    """The address a request came from, for every client-address decision (throttles, the ITN
    source check): the socket peer, and X-Forwarded-For only when the peer is one of
    TENANCY_TRUSTED_PROXIES. The server runs uvicorn with proxy headers off, so the peer here is
    the real socket peer."""
    services: Services = request.app.state.services
    peer = request.client.host if request.client else ""
    return client_address(peer, request.headers.get("x-forwarded-for"), services.settings.trusted_proxies)


ServicesDep = Annotated[Services, Depends(get_services)]
BearerToken = Annotated[str, Depends(get_bearer_token)]
