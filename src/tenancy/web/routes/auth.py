"""Customer login: `/auth/login`, the new-password challenge, token refresh and rotation, sign-out,
and the JWKS."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, ValidationError
from starlette.responses import Response

from tenancy.domain.model import AuthChallenge, Tokens
from tenancy.errors import InvalidInputError
from tenancy.web.deps import ServicesDep, client_ip
from tenancy.web.pages.signin import sign_out_browser

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


class LogoutRequest(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=512)
    everywhere: bool = Field(
        default=False, description="End every session of the account (browsers too), not only this one"
    )


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
    source = client_ip(request)
    # A slow-down for an account under attack is waited out here, holding no thread.
    await asyncio.sleep(await run_in_threadpool(services.accounts.sign_in_delay, body.email))
    result = await run_in_threadpool(services.accounts.login, body.email, body.password, source)
    if isinstance(result, AuthChallenge):
        return ChallengeResponse(challenge=result.challenge, session=result.session)
    return TokensResponse.of(await run_in_threadpool(services.sessions.start_api, result))


@router.post("/auth/challenge", responses=_ERRORS)
async def new_password_challenge(body: ChallengeRequest, services: ServicesDep) -> TokensResponse:
    tokens = await run_in_threadpool(
        services.accounts.complete_new_password, body.email, body.session, body.new_password
    )
    return TokensResponse.of(await run_in_threadpool(services.sessions.start_api, tokens))


@router.post("/auth/refresh", responses=_ERRORS)
async def refresh(body: RefreshRequest, services: ServicesDep) -> TokensResponse:
    """New tokens and the next refresh token: each refresh token works once. Using one twice ends
    its whole family (whoever holds either copy must sign in again)."""
    tokens = await run_in_threadpool(services.sessions.refresh, body.refresh_token)
    return TokensResponse.of(tokens)


@router.post(
    "/auth/logout",
    status_code=204,
    responses={204: {"description": "Signed out (also when the refresh token was already over)"}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": LogoutRequest.model_json_schema()}},
        }
    },
)
async def logout(request: Request, services: ServicesDep) -> Response:
    """Ends the refresh token's session and every ID token of its account issued so far (other
    sessions refresh theirs); with `everywhere`, every session of the account, browsers too. The
    browser's sign-out form posts here as well, and ends the browser's session."""
    if "application/json" not in request.headers.get("content-type", ""):
        return await sign_out_browser(request, services)
    try:
        body = LogoutRequest.model_validate_json(await request.body())
    except ValidationError:
        raise InvalidInputError("send a JSON object with your refresh_token") from None
    ended = await run_in_threadpool(services.sessions.end, body.refresh_token)
    if ended is not None and body.everywhere:
        await run_in_threadpool(services.sessions.end_everywhere, ended.username, "signed_out_everywhere")
    return Response(status_code=204)


@router.get("/.well-known/jwks.json")
def jwks(services: ServicesDep) -> dict[str, Any]:
    return services.identity.jwks()
