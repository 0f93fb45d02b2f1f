"""Customer login: `/auth/login`, the new-password challenge, token refresh, and the JWKS."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from tenancy.domain.model import AuthChallenge, Tokens
from tenancy.payments.payfast import client_address
from tenancy.web.deps import ServicesDep

__all__ = ["router"]

router = APIRouter(tags=["auth"])

_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"description": '"Account not found", wrong password, or an invalid session'},
    403: {"description": '"Tenant not found": the account has no active tenant'},
    429: {"description": "Too many failed sign-ins for the account or from the address; see Retry-After"},
}


class LoginRequest(BaseModel):
    email: str = Field(min_length=3, max_length=254)
    password: str = Field(min_length=1, max_length=256)


class ChallengeRequest(BaseModel):
    email: str = Field(min_length=3, max_length=254)
    session: str = Field(min_length=1, max_length=512)
    new_password: str = Field(min_length=1, max_length=256)


class RefreshRequest(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=512)


class TokensResponse(BaseModel):
    id_token: str
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str

    @classmethod
    def of(cls, tokens: Tokens) -> TokensResponse:
        return cls(
            id_token=tokens.id_token,
            access_token=tokens.access_token,
            refresh_token=tokens.refresh_token,
            expires_in=tokens.expires_in,
            token_type=tokens.token_type,
        )


class ChallengeResponse(BaseModel):
    challenge: str
    session: str


@router.post("/auth/login", responses=_ERRORS)
async def login(body: LoginRequest, request: Request, services: ServicesDep) -> TokensResponse | ChallengeResponse:
    peer = request.client.host if request.client else ""
    source = client_address(peer, request.headers.get("x-forwarded-for"), services.settings.trusted_proxies)
    result = await run_in_threadpool(services.accounts.login, body.email, body.password, source)
    if isinstance(result, AuthChallenge):
        return ChallengeResponse(challenge=result.challenge, session=result.session)
    return TokensResponse.of(result)


@router.post("/auth/challenge", responses=_ERRORS)
async def new_password_challenge(body: ChallengeRequest, services: ServicesDep) -> TokensResponse:
    tokens = await run_in_threadpool(
        services.accounts.complete_new_password, body.email, body.session, body.new_password
    )
    return TokensResponse.of(tokens)


@router.post("/auth/refresh", responses=_ERRORS)
async def refresh(body: RefreshRequest, services: ServicesDep) -> TokensResponse:
    tokens = await run_in_threadpool(services.identity.refresh, body.refresh_token)
    return TokensResponse.of(tokens)


@router.get("/.well-known/jwks.json")
def jwks(services: ServicesDep) -> dict[str, Any]:
    return services.identity.jwks()
