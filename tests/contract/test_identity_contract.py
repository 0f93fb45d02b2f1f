"""The IdentityProvider contract, run with the same assertions against the embedded provider
(SQLite) and CognitoIdentityProvider (on moto's Cognito).

Where moto answers differently from Cognito, the test says so and asserts moto's answer, and
a stubbed client proves the adapter handles Cognito's real one (the `*_as_cognito_answers` tests).
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import jwt
import pytest
from botocore.stub import Stubber
from cryptography.hazmat.primitives.asymmetric import rsa

from tenancy.adapters.aws.cognito import CognitoIdentityProvider
from tenancy.adapters.local.signing_keys import SigningKeys
from tenancy.domain.model import AuthChallenge, IdentityUserStatus, Tokens
from tenancy.errors import (
    AccountNotFoundError,
    AuthenticationError,
    ConfigurationError,
    InvalidCredentialsError,
    InvalidInputError,
    InvalidSessionError,
    InvalidTokenError,
    ItemAlreadyExistsError,
    NotFoundError,
    PasswordPolicyError,
    PermanentError,
    TransientError,
)
from tenancy.ports import IdentityProvider

from aws_support import AwsContext, Backend, moto_public_jwks

EMAIL = "owner@example.com"
TEMPORARY = "TempPass123!"
NEW_PASSWORD = "N3w-Password!"
ATTRIBUTES = {
    "email": EMAIL,
    "email_verified": "true",
    "custom:tenant_id": "ten_abc",
    "custom:roles": "tenant_admin",
}
REGION = "eu-west-1"


def _challenge(identity: IdentityProvider, email: str = EMAIL) -> AuthChallenge:
    identity.create_user(email, {**ATTRIBUTES, "email": email}, TEMPORARY)
    result = identity.authenticate(email, TEMPORARY)
    assert isinstance(result, AuthChallenge)
    return result


def _confirmed(identity: IdentityProvider) -> Tokens:
    return identity.respond_to_new_password_challenge(EMAIL, _challenge(identity).session, NEW_PASSWORD)


def _status(identity: IdentityProvider) -> IdentityUserStatus:
    user = identity.get_user(EMAIL)
    assert user is not None
    return user.status


def _tampered(token: str, **claims: object) -> str:
    header, payload, signature = token.split(".")
    decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged = base64.urlsafe_b64encode(json.dumps({**decoded, **claims}).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


# --- the contract, both backends --------------------------------------------------------------


def test_a_created_user_waits_for_a_new_password(backend: Backend) -> None:
    created = backend.services.identity.create_user("  Owner@Example.COM ", ATTRIBUTES, TEMPORARY)
    fetched = backend.services.identity.get_user(EMAIL)

    assert fetched is not None
    assert fetched == created
    assert fetched.username == EMAIL
    assert fetched.status is IdentityUserStatus.FORCE_CHANGE_PASSWORD
    assert fetched.enabled
    assert fetched.sub
    assert fetched.attributes == {**ATTRIBUTES, "sub": fetched.sub}
    assert fetched.tenant_id == "ten_abc"


def test_a_second_create_for_the_same_email_is_refused(backend: Backend) -> None:
    backend.services.identity.create_user(EMAIL, ATTRIBUTES, TEMPORARY)

    with pytest.raises(ItemAlreadyExistsError):
        backend.services.identity.create_user(EMAIL.upper(), ATTRIBUTES, "Other123!")


def test_an_unknown_user_is_none(backend: Backend) -> None:
    assert backend.services.identity.get_user("nobody@example.com") is None


def test_attributes_are_merged_and_sub_stays(backend: Backend) -> None:
    created = backend.services.identity.create_user(EMAIL, ATTRIBUTES, TEMPORARY)

    updated = backend.services.identity.update_attributes(EMAIL, {"custom:tenant_id": "ten_new", "sub": "forged"})

    assert updated == backend.services.identity.get_user(EMAIL)
    assert updated.attributes == {**ATTRIBUTES, "custom:tenant_id": "ten_new", "sub": created.sub}


def test_admin_calls_on_an_unknown_user_are_not_found(backend: Backend) -> None:
    with pytest.raises(NotFoundError):
        backend.services.identity.update_attributes("nobody@example.com", {"custom:roles": "x"})
    with pytest.raises(NotFoundError):
        backend.services.identity.set_password("nobody@example.com", NEW_PASSWORD, permanent=True)
    with pytest.raises(NotFoundError):
        backend.services.identity.reset_password("nobody@example.com")


def test_a_disabled_user_can_neither_sign_in_nor_refresh(backend: Backend) -> None:
    identity = backend.services.identity
    tokens = _confirmed(identity)
    identity.disable_user(EMAIL)
    user = identity.get_user(EMAIL)
    assert user is not None
    assert not user.enabled
    with pytest.raises(AuthenticationError):
        identity.authenticate(EMAIL, NEW_PASSWORD)
    assert tokens.refresh_token is not None
    with pytest.raises(AuthenticationError):
        identity.refresh(tokens.refresh_token)
    with pytest.raises(NotFoundError):
        identity.disable_user("nobody@example.com")


def test_the_temporary_password_leads_to_a_challenge_then_tokens_with_the_contract_claims(backend: Backend) -> None:
    challenge = _challenge(backend.services.identity)
    assert challenge.challenge == "NEW_PASSWORD_REQUIRED"
    assert challenge.session

    tokens = backend.services.identity.respond_to_new_password_challenge(EMAIL, challenge.session, NEW_PASSWORD)

    user = backend.services.identity.get_user(EMAIL)
    assert user is not None
    assert user.status is IdentityUserStatus.CONFIRMED
    assert (tokens.token_type, tokens.expires_in) == ("Bearer", 3600)
    assert tokens.refresh_token
    claims = backend.services.identity.verify_id_token(tokens.id_token)
    assert claims["sub"] == user.sub
    assert claims["custom:tenant_id"] == "ten_abc"
    assert claims["custom:roles"] == "tenant_admin"
    assert claims["cognito:username"] == EMAIL
    assert claims["token_use"] == "id"
    # The client bootstrap creates reads email explicitly (moto adds only ReadAttributes).
    assert claims["email"] == EMAIL


def test_a_session_works_once(backend: Backend) -> None:
    session = _challenge(backend.services.identity).session
    backend.services.identity.respond_to_new_password_challenge(EMAIL, session, NEW_PASSWORD)

    with pytest.raises(InvalidSessionError) as caught:
        backend.services.identity.respond_to_new_password_challenge(EMAIL, session, "An0ther-Password!")
    assert session not in str(caught.value)


def test_a_garbage_session_is_refused(backend: Backend) -> None:
    _challenge(backend.services.identity)

    for garbage in ("not-a-session", "n0t-a-sess10n-but-long-enough-to-be-sent-" * 2):
        with pytest.raises(InvalidSessionError):
            backend.services.identity.respond_to_new_password_challenge(EMAIL, garbage, NEW_PASSWORD)


def test_a_weak_new_password_is_refused_and_the_session_survives(backend: Backend) -> None:
    session = _challenge(backend.services.identity).session

    with pytest.raises(PasswordPolicyError) as caught:
        backend.services.identity.respond_to_new_password_challenge(EMAIL, session, "alllower123!")

    assert "alllower123!" not in str(caught.value)
    assert isinstance(backend.services.identity.respond_to_new_password_challenge(EMAIL, session, NEW_PASSWORD), Tokens)


def test_a_wrong_password_is_refused(backend: Backend) -> None:
    backend.services.identity.create_user(EMAIL, ATTRIBUTES, TEMPORARY)

    with pytest.raises(InvalidCredentialsError) as caught:
        backend.services.identity.authenticate(EMAIL, "wrong-password")
    assert caught.value.reason == "Incorrect email or password"
    assert "wrong-password" not in str(caught.value)


def test_an_unknown_email_is_account_not_found(backend: Backend) -> None:
    with pytest.raises(AccountNotFoundError) as caught:
        backend.services.identity.authenticate("nobody@example.com", TEMPORARY)
    assert caught.value.reason == "Account not found"


def test_a_permanent_password_set_by_an_admin_logs_straight_in(backend: Backend) -> None:
    backend.services.identity.create_user(EMAIL, ATTRIBUTES, TEMPORARY)

    backend.services.identity.set_password(EMAIL, "Admin-Set-1!", permanent=True)

    assert _status(backend.services.identity) is IdentityUserStatus.CONFIRMED
    tokens = backend.services.identity.authenticate(EMAIL, "Admin-Set-1!")
    assert isinstance(tokens, Tokens)
    assert backend.services.identity.verify_id_token(tokens.id_token)["custom:tenant_id"] == "ten_abc"
    with pytest.raises(InvalidCredentialsError):
        backend.services.identity.authenticate(EMAIL, TEMPORARY)


def test_a_new_temporary_password_asks_for_a_change_again(backend: Backend) -> None:
    _confirmed(backend.services.identity)

    backend.services.identity.set_password(EMAIL, "Fresh-Temp-1!", permanent=False)

    assert _status(backend.services.identity) is IdentityUserStatus.FORCE_CHANGE_PASSWORD
    assert isinstance(backend.services.identity.authenticate(EMAIL, "Fresh-Temp-1!"), AuthChallenge)


def test_a_reset_stops_the_old_password(backend: Backend) -> None:
    _confirmed(backend.services.identity)

    backend.services.identity.reset_password(EMAIL)

    assert _status(backend.services.identity) is IdentityUserStatus.RESET_REQUIRED
    if backend.on_moto:
        # Cognito answers PasswordResetRequiredException whatever the password, which the adapter
        # answers as a wrong password (see ..._as_cognito_answers below); moto instead offers the
        # new-password challenge for the old password. No tokens either way.
        assert isinstance(backend.services.identity.authenticate(EMAIL, NEW_PASSWORD), AuthChallenge)
    else:
        # Only the right password learns that a reset is required.
        with pytest.raises(InvalidCredentialsError) as caught:
            backend.services.identity.authenticate(EMAIL, NEW_PASSWORD)
        assert caught.value.reason == "Password reset required"


def _wrong_password_refusal(identity: IdentityProvider, email: str) -> InvalidCredentialsError:
    with pytest.raises(InvalidCredentialsError) as caught:
        identity.authenticate(email, "Wrong-Passw0rd!")
    return caught.value


def test_a_wrong_password_for_a_reset_required_account_is_answered_as_for_any_account(backend: Backend) -> None:
    """Issue 11: "Password reset required" told to whoever asked let a stranger learn the
    account's state. A wrong password now gets one answer, whatever state the account is in."""
    _confirmed(backend.services.identity)
    plain = "plain@example.com"
    backend.services.identity.create_user(plain, {**ATTRIBUTES, "email": plain}, TEMPORARY)
    backend.services.identity.set_password(plain, NEW_PASSWORD, permanent=True)
    backend.services.identity.reset_password(EMAIL)
    assert _status(backend.services.identity) is IdentityUserStatus.RESET_REQUIRED

    for_reset = _wrong_password_refusal(backend.services.identity, EMAIL)
    for_plain = _wrong_password_refusal(backend.services.identity, plain)

    assert type(for_reset) is type(for_plain) is InvalidCredentialsError
    assert (for_reset.reason, for_reset.status_code, str(for_reset)) == (
        for_plain.reason,
        for_plain.status_code,
        str(for_plain),
    )
    assert for_reset.reason == "Incorrect email or password"


KATE = "kate@example.com"
# Each looks like kate@example.com, or is it plus an invisible character.
KATE_LOOKALIKES = [
    "\u212aate@example.com",  # KELVIN SIGN: NFKC, and str.lower() before issue 11, make it a k
    "\uff4bate@example.com",  # FULLWIDTH LATIN SMALL LETTER K
    "k\u0430te@example.com",  # CYRILLIC SMALL LETTER A
    "k\u200bate@example.com",  # ZERO WIDTH SPACE
    "\u202ekate@example.com",  # RIGHT-TO-LEFT OVERRIDE
]


@pytest.mark.parametrize("lookalike", KATE_LOOKALIKES, ids=ascii)
def test_a_lookalike_email_neither_makes_a_second_account_nor_signs_in_as_another(
    backend: Backend, lookalike: str
) -> None:
    backend.services.identity.create_user(KATE, {**ATTRIBUTES, "email": KATE}, TEMPORARY)
    backend.services.identity.set_password(KATE, NEW_PASSWORD, permanent=True)

    with pytest.raises(InvalidInputError):
        backend.services.identity.create_user(lookalike, {**ATTRIBUTES, "email": lookalike}, TEMPORARY)
    with pytest.raises(InvalidInputError):
        backend.services.identity.authenticate(lookalike, NEW_PASSWORD)
    with pytest.raises(InvalidInputError):
        backend.services.identity.get_user(lookalike)

    assert [user.username for batch in backend.services.identity.scan_users() for user in batch] == [KATE]
    # Case and surrounding space are the one difference that still names the same account.
    assert isinstance(backend.services.identity.authenticate(" KATE@Example.COM ", NEW_PASSWORD), Tokens)


def test_a_user_still_on_a_temporary_password_may_not_be_resettable(backend: Backend) -> None:
    """ports.IdentityProvider.reset_password: Cognito (and moto with it) refuses to reset a user in
    FORCE_CHANGE_PASSWORD; the embedded provider allows it. Callers give such a user a new
    temporary password instead, which both backends accept."""
    backend.services.identity.create_user(EMAIL, ATTRIBUTES, TEMPORARY)

    if backend.on_moto:
        with pytest.raises(PermanentError, match="cannot be reset"):
            backend.services.identity.reset_password(EMAIL)
    else:
        backend.services.identity.reset_password(EMAIL)
    backend.services.identity.set_password(EMAIL, "Fresh-Temp-1!", permanent=False)
    assert isinstance(backend.services.identity.authenticate(EMAIL, "Fresh-Temp-1!"), AuthChallenge)


def test_refresh_gives_new_tokens_for_the_same_user(backend: Backend) -> None:
    tokens = _confirmed(backend.services.identity)

    refreshed = backend.services.identity.refresh(tokens.refresh_token)

    assert refreshed.refresh_token == tokens.refresh_token
    claims = backend.services.identity.verify_id_token(refreshed.id_token)
    assert claims["sub"] == backend.services.identity.verify_id_token(tokens.id_token)["sub"]
    assert claims["custom:tenant_id"] == "ten_abc"


def test_signing_out_everywhere_revokes_the_users_refresh_tokens(backend: Backend) -> None:
    tokens = _confirmed(backend.services.identity)

    backend.services.identity.sign_out_everywhere(EMAIL)
    backend.services.identity.sign_out_everywhere("nobody@example.com")  # an unknown user is no error

    with pytest.raises((InvalidTokenError, KeyError) if backend.on_moto else InvalidTokenError):
        # moto forgets the token, and its unguarded lookup raises KeyError (see the test below).
        backend.services.identity.refresh(tokens.refresh_token)


def test_refresh_refuses_a_garbage_token(backend: Backend) -> None:
    if backend.on_moto:
        # moto looks the token up unguarded and its KeyError escapes; Cognito answers
        # NotAuthorizedException, which the adapter maps (test_refresh_..._as_cognito_answers).
        with pytest.raises(KeyError):
            backend.services.identity.refresh("garbage")
    else:
        with pytest.raises(InvalidTokenError):
            backend.services.identity.refresh("garbage")


def test_a_deleted_user_is_gone(backend: Backend) -> None:
    _confirmed(backend.services.identity)

    backend.services.identity.delete_user(EMAIL)
    backend.services.identity.delete_user(EMAIL)  # removing what is gone does nothing

    assert backend.services.identity.get_user(EMAIL) is None
    with pytest.raises(AccountNotFoundError):
        backend.services.identity.authenticate(EMAIL, NEW_PASSWORD)


def test_a_user_is_found_by_its_subject_exactly(backend: Backend) -> None:
    """A tenant's `owner_user_id` is its owner's `sub` (RB-001 4.3): the runbook finds the owner
    of a tenant written by hand through it."""
    created = backend.services.identity.create_user(EMAIL, ATTRIBUTES, TEMPORARY)
    other = backend.services.identity.create_user(
        "other@example.com", {**ATTRIBUTES, "email": "other@example.com"}, TEMPORARY
    )

    found = backend.services.identity.get_user_by_subject(created.sub)

    assert found == backend.services.identity.get_user(EMAIL)
    assert found is not None
    assert found.sub != other.sub
    identity = backend.services.identity
    assert identity.get_user_by_subject(other.sub) == identity.get_user("other@example.com")
    # Exact only: no prefix, no stranger's subject, nothing for what no provider issues.
    for subject in (created.sub[:8], "00000000-0000-0000-0000-000000000000", "", 'x" or sub ^= "', "\\"):
        assert backend.services.identity.get_user_by_subject(subject) is None, subject
    backend.services.identity.delete_user(EMAIL)
    assert backend.services.identity.get_user_by_subject(created.sub) is None


def test_scan_users_yields_everyone_in_batches(backend: Backend) -> None:
    emails = [f"user{number}@example.com" for number in range(5)]
    for email in emails:
        backend.services.identity.create_user(email, {**ATTRIBUTES, "email": email}, TEMPORARY)

    batches = list(backend.services.identity.scan_users(batch_size=2))

    assert [len(batch) for batch in batches] == [2, 2, 1]
    assert sorted(user.username for batch in batches for user in batch) == emails
    assert all(user.sub and user.tenant_id == "ten_abc" for batch in batches for user in batch)


def test_verify_refuses_tampered_garbage_and_access_tokens(backend: Backend) -> None:
    tokens = _confirmed(backend.services.identity)

    for token in (
        _tampered(tokens.id_token, **{"custom:tenant_id": "ten_someone_else"}),
        _tampered(tokens.id_token, exp=4102444800),
        "not-a-token",
        tokens.access_token,
    ):
        with pytest.raises(InvalidTokenError):
            backend.services.identity.verify_id_token(token)


def test_a_session_belongs_to_its_user(backend: Backend) -> None:
    session = _challenge(backend.services.identity).session
    _challenge(backend.services.identity, "other@example.com")

    if backend.on_moto:
        # moto keys a session by its id alone and completes it for whichever USERNAME is sent;
        # Cognito binds the session to the user it was issued for (NotAuthorizedException).
        tokens = backend.services.identity.respond_to_new_password_challenge("other@example.com", session, NEW_PASSWORD)
        assert backend.services.identity.verify_id_token(tokens.id_token)["cognito:username"] == "other@example.com"
    else:
        with pytest.raises(InvalidSessionError):
            backend.services.identity.respond_to_new_password_challenge("other@example.com", session, NEW_PASSWORD)


# --- forgotten password: ForgotPassword and ConfirmForgotPassword --------------------------------
# moto checks a reset code only when it starts with "moto-confirmation-code:", the shape of the
# codes it issues (it hands them out in a response header, not by email), and accepts any other
# code. So the wrong code below is refused by both backends; where a test needs the right code,
# the embedded provider returns it and moto is given any code without that prefix.

WRONG_CODE = "moto-confirmation-code:000000"  # moto issues 100000-999999 after its prefix
RESET_PASSWORD = "Reset-Passw0rd!"


def _reset_code(backend: Backend) -> str:
    code = backend.services.identity.start_password_reset(EMAIL)
    if backend.on_moto:
        assert code is None  # Cognito emails the code itself
        return "123456"
    assert code is not None
    assert code.isdigit()
    return code


def test_a_reset_code_sets_a_new_password_for_good(backend: Backend) -> None:
    _confirmed(backend.services.identity)

    code = _reset_code(backend)
    # Asking for a code locks nobody out: the password works until the reset is confirmed.
    assert isinstance(backend.services.identity.authenticate(EMAIL, NEW_PASSWORD), Tokens)
    backend.services.identity.confirm_password_reset(EMAIL, code, RESET_PASSWORD)

    assert _status(backend.services.identity) is IdentityUserStatus.CONFIRMED
    tokens = backend.services.identity.authenticate(EMAIL, RESET_PASSWORD)
    assert isinstance(tokens, Tokens)
    assert backend.services.identity.verify_id_token(tokens.id_token)["custom:tenant_id"] == "ten_abc"
    with pytest.raises(InvalidCredentialsError):
        backend.services.identity.authenticate(EMAIL, NEW_PASSWORD)


def test_a_wrong_reset_code_is_refused_and_changes_nothing(backend: Backend) -> None:
    _confirmed(backend.services.identity)
    _reset_code(backend)

    with pytest.raises(InvalidCredentialsError) as caught:
        backend.services.identity.confirm_password_reset(EMAIL, WRONG_CODE, RESET_PASSWORD)

    assert caught.value.reason == "Invalid or expired code"
    assert WRONG_CODE not in str(caught.value)
    assert isinstance(backend.services.identity.authenticate(EMAIL, NEW_PASSWORD), Tokens)
    with pytest.raises(InvalidCredentialsError):
        backend.services.identity.authenticate(EMAIL, RESET_PASSWORD)


def test_a_reset_code_works_once(backend: Backend) -> None:
    _confirmed(backend.services.identity)
    code = _reset_code(backend)
    backend.services.identity.confirm_password_reset(EMAIL, code, RESET_PASSWORD)

    if backend.on_moto:
        # moto accepts any code without its prefix, used or not; Cognito refuses a used code
        # (ExpiredCodeException or CodeMismatchException, mapped in ..._as_cognito_answers below).
        backend.services.identity.confirm_password_reset(EMAIL, code, "Again-Passw0rd!")
        assert isinstance(backend.services.identity.authenticate(EMAIL, "Again-Passw0rd!"), Tokens)
    else:
        with pytest.raises(InvalidCredentialsError, match="Invalid or expired code"):
            backend.services.identity.confirm_password_reset(EMAIL, code, "Again-Passw0rd!")
        assert isinstance(backend.services.identity.authenticate(EMAIL, RESET_PASSWORD), Tokens)


def test_a_weak_password_is_refused_and_the_code_stays_usable(backend: Backend) -> None:
    _confirmed(backend.services.identity)
    code = _reset_code(backend)

    if backend.on_moto:
        # moto does not check the pool's password policy here; Cognito answers
        # InvalidPasswordException (see ..._as_cognito_answers below).
        backend.services.identity.confirm_password_reset(EMAIL, code, "alllower123!")
        assert isinstance(backend.services.identity.authenticate(EMAIL, "alllower123!"), Tokens)
        return
    with pytest.raises(PasswordPolicyError) as caught:
        backend.services.identity.confirm_password_reset(EMAIL, code, "alllower123!")
    assert "alllower123!" not in str(caught.value)
    backend.services.identity.confirm_password_reset(EMAIL, code, RESET_PASSWORD)
    assert isinstance(backend.services.identity.authenticate(EMAIL, RESET_PASSWORD), Tokens)


def test_a_reset_code_ends_an_administrators_reset(backend: Backend) -> None:
    _confirmed(backend.services.identity)
    backend.services.identity.reset_password(EMAIL)

    backend.services.identity.confirm_password_reset(EMAIL, _reset_code(backend), RESET_PASSWORD)

    if backend.on_moto:
        # moto changes the password but leaves the status, so it still answers the new-password
        # challenge (as it does for the old password in test_a_reset_stops_the_old_password);
        # Cognito confirms the user, who then signs in.
        assert _status(backend.services.identity) is IdentityUserStatus.RESET_REQUIRED
        assert isinstance(backend.services.identity.authenticate(EMAIL, RESET_PASSWORD), AuthChallenge)
    else:
        assert _status(backend.services.identity) is IdentityUserStatus.CONFIRMED
        assert isinstance(backend.services.identity.authenticate(EMAIL, RESET_PASSWORD), Tokens)


def test_a_user_still_on_a_temporary_password_cannot_start_a_reset(backend: Backend) -> None:
    backend.services.identity.create_user(EMAIL, ATTRIBUTES, TEMPORARY)

    if backend.on_moto:
        # moto starts it anyway; Cognito answers NotAuthorizedException ("User password cannot be
        # reset in the current state."), mapped in test_reset_refusals_as_cognito_answers.
        assert backend.services.identity.start_password_reset(EMAIL) is None
    else:
        with pytest.raises(InvalidCredentialsError) as caught:
            backend.services.identity.start_password_reset(EMAIL)
        assert caught.value.reason == "Password cannot be reset in the current state"
    assert isinstance(backend.services.identity.authenticate(EMAIL, TEMPORARY), AuthChallenge)


def test_an_unknown_user_cannot_start_a_reset(backend: Backend) -> None:
    if backend.on_moto:
        # moto answers success for any username; Cognito, with the client's
        # PreventUserExistenceErrors=LEGACY, answers UserNotFoundException (stubbed below).
        assert backend.services.identity.start_password_reset("nobody@example.com") is None
    else:
        with pytest.raises(AccountNotFoundError):
            backend.services.identity.start_password_reset("nobody@example.com")


def test_an_operator_without_a_tenant_gets_tokens_with_its_role_and_no_tenant(backend: Backend) -> None:
    operator = "ops@example.com"
    attributes = {"email": operator, "email_verified": "true", "custom:roles": "operator"}
    backend.services.identity.create_user(operator, attributes, TEMPORARY)
    challenge = backend.services.identity.authenticate(operator, TEMPORARY)
    assert isinstance(challenge, AuthChallenge)

    tokens = backend.services.identity.respond_to_new_password_challenge(operator, challenge.session, NEW_PASSWORD)

    claims = backend.services.identity.verify_id_token(tokens.id_token)
    assert claims["custom:roles"] == "operator"
    assert "custom:tenant_id" not in claims
    assert claims["email"] == operator


# --- moto against Cognito: what moto does not answer, stubbed as Cognito answers it ------------


STUBBED_SESSION = "AYABeC" + "x" * 60  # Cognito's sessions are long opaque strings


@pytest.fixture
def stubbed() -> Iterator[tuple[CognitoIdentityProvider, Stubber]]:
    client = boto3.client(
        "cognito-idp", region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    with Stubber(client) as stubber:
        yield (
            CognitoIdentityProvider(client, f"{REGION}_pool", "client", jwks_url="http://127.0.0.1:9/jwks.json"),
            stubber,
        )
        stubber.assert_no_pending_responses()


def test_sign_in_refusals_as_cognito_answers(stubbed: tuple[CognitoIdentityProvider, Stubber]) -> None:
    provider, stubber = stubbed
    answers = [
        # Cognito (PreventUserExistenceErrors=LEGACY) answers this to a RESET_REQUIRED user whatever the
        # password, so it is answered as a wrong password: it must not tell a stranger the state.
        ("PasswordResetRequiredException", "Password reset required for the user", "Incorrect email or password"),
        ("NotAuthorizedException", "Incorrect username or password.", "Incorrect email or password"),
        ("NotAuthorizedException", "User is disabled.", "User is disabled"),
        (
            "NotAuthorizedException",
            "Temporary password has expired and must be reset by an administrator.",
            "Temporary password has expired and must be reset by an administrator",
        ),
    ]
    for code, message, reason in answers:
        stubber.add_client_error("admin_initiate_auth", service_error_code=code, service_message=message)
        with pytest.raises(InvalidCredentialsError) as caught:
            provider.authenticate(EMAIL, "Old-Password-1!")
        assert caught.value.reason == reason


def test_session_refusals_as_cognito_answers(stubbed: tuple[CognitoIdentityProvider, Stubber]) -> None:
    provider, stubber = stubbed
    for code in ("NotAuthorizedException", "CodeMismatchException", "ExpiredCodeException"):
        stubber.add_client_error(
            "admin_respond_to_auth_challenge", service_error_code=code, service_message="Invalid session for the user."
        )
        with pytest.raises(InvalidSessionError):
            provider.respond_to_new_password_challenge(EMAIL, STUBBED_SESSION, NEW_PASSWORD)
    stubber.add_client_error(
        "admin_respond_to_auth_challenge",
        service_error_code="InvalidPasswordException",
        service_message="Password does not conform to policy: Password must have uppercase characters",
    )
    with pytest.raises(PasswordPolicyError) as caught:
        provider.respond_to_new_password_challenge(EMAIL, STUBBED_SESSION, "weak-password-1!")
    assert caught.value.reason == "Password must have uppercase characters"


def test_refresh_refusal_and_throttling_as_cognito_answers(stubbed: tuple[CognitoIdentityProvider, Stubber]) -> None:
    provider, stubber = stubbed
    stubber.add_client_error(
        "admin_initiate_auth", service_error_code="NotAuthorizedException", service_message="Invalid Refresh Token"
    )
    with pytest.raises(InvalidTokenError):
        provider.refresh("revoked")
    stubber.add_client_error("admin_initiate_auth", service_error_code="TooManyRequestsException")
    with pytest.raises(TransientError):
        provider.authenticate(EMAIL, NEW_PASSWORD)


def test_reset_refusals_as_cognito_answers(stubbed: tuple[CognitoIdentityProvider, Stubber]) -> None:
    provider, stubber = stubbed
    stubber.add_response(
        "forgot_password",
        {"CodeDeliveryDetails": {"Destination": "o***@e***", "DeliveryMedium": "EMAIL", "AttributeName": "email"}},
        {"ClientId": "client", "Username": EMAIL},
    )
    assert provider.start_password_reset(" Owner@Example.com ") is None
    stubber.add_client_error("forgot_password", service_error_code="UserNotFoundException")
    with pytest.raises(AccountNotFoundError):
        provider.start_password_reset(EMAIL)
    for message, reason in (
        ("User password cannot be reset in the current state.", "Password cannot be reset in the current state"),
        ("User is disabled.", "User is disabled"),
    ):
        stubber.add_client_error(
            "forgot_password", service_error_code="NotAuthorizedException", service_message=message
        )
        with pytest.raises(InvalidCredentialsError) as refused:
            provider.start_password_reset(EMAIL)
        assert refused.value.reason == reason

    for code in ("CodeMismatchException", "ExpiredCodeException", "TooManyFailedAttemptsException",
                 "UserNotFoundException"):  # fmt: skip
        stubber.add_client_error("confirm_forgot_password", service_error_code=code)
        with pytest.raises(InvalidCredentialsError) as caught:
            provider.confirm_password_reset(EMAIL, "123456", RESET_PASSWORD)
        assert caught.value.reason == "Invalid or expired code"
    stubber.add_client_error(
        "confirm_forgot_password",
        service_error_code="InvalidPasswordException",
        service_message="Password does not conform to policy: Password must have uppercase characters",
    )
    with pytest.raises(PasswordPolicyError) as weak:
        provider.confirm_password_reset(EMAIL, "123456", "weak-password-1!")
    assert weak.value.reason == "Password must have uppercase characters"
    stubber.add_client_error("confirm_forgot_password", service_error_code="LimitExceededException")
    with pytest.raises(TransientError):
        provider.confirm_password_reset(EMAIL, "123456", RESET_PASSWORD)


def test_moto_puts_email_in_the_id_token_only_for_a_client_that_reads_it(aws: AwsContext) -> None:
    """Cognito lets a client with no ReadAttributes read the standard attributes, so its ID token
    carries `email`; moto adds only the client's ReadAttributes (and every custom:*)."""
    cognito = aws.session.client("cognito-idp", region_name=REGION)
    reader = cognito.create_user_pool_client(
        UserPoolId=aws.resources.user_pool_id,
        ClientName="reads-email",
        ExplicitAuthFlows=["ALLOW_ADMIN_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
        ReadAttributes=["email", "email_verified", "custom:tenant_id", "custom:roles"],
    )["UserPoolClient"]["ClientId"]
    provider = CognitoIdentityProvider(
        cognito, aws.resources.user_pool_id, reader, jwks_url="http://127.0.0.1:9/unused", jwks=moto_public_jwks()
    )

    claims = provider.verify_id_token(_confirmed(provider).id_token)

    assert claims["email"] == EMAIL
    assert claims["custom:tenant_id"] == "ten_abc"


# --- the production path: the JWKS fetched from the pool's URL ---------------------------------


class JwksServer:
    """Serves a JWKS at /jwks.json on localhost and counts the requests; assign `document` to
    serve another (a key rotation)."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.requests = 0
        self.document = document
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests += 1
                body = json.dumps(server.document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}/jwks.json"
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    def __enter__(self) -> JwksServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()


def test_the_jwks_is_fetched_from_the_pool_url_once(tmp_path: Path) -> None:
    keys = SigningKeys(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    pool = f"{REGION}_Pool123"
    client = boto3.client(
        "cognito-idp", region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    claims = {
        "sub": "a-sub",
        "aud": "the-client",
        "iss": f"https://cognito-idp.{REGION}.amazonaws.com/{pool}",
        "token_use": "id",
        "custom:tenant_id": "ten_abc",
        "iat": 2_000_000_000 - 10**9,
        "exp": 4_102_444_800,
    }
    with JwksServer(keys.jwks()) as server:
        provider = CognitoIdentityProvider(client, pool, "the-client", jwks_url=server.url)

        assert provider.verify_id_token(keys.sign(claims))["custom:tenant_id"] == "ten_abc"
        assert provider.verify_id_token(keys.sign({**claims, "sub": "another"}))["sub"] == "another"
        assert provider.jwks() == keys.jwks()
        for refused in (
            {**claims, "aud": "another-client"},
            {**claims, "iss": "https://cognito-idp.eu-west-1.amazonaws.com/another-pool"},
            {**claims, "token_use": "access"},
            {**claims, "exp": 1_000_000_000},
        ):
            with pytest.raises(InvalidTokenError):
                provider.verify_id_token(keys.sign(refused))
        assert server.requests == 1

    stranger = SigningKeys(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    with pytest.raises(InvalidTokenError):
        provider.verify_id_token(stranger.sign(claims))


def test_an_unreachable_jwks_url_is_transient_and_not_cached() -> None:
    client = boto3.client(
        "cognito-idp", region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    keys = SigningKeys(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    token = keys.sign({"sub": "s", "aud": "c", "iss": "x", "token_use": "id", "iat": 1, "exp": 4_102_444_800})
    with JwksServer(keys.jwks()) as server:
        url = server.url
    provider = CognitoIdentityProvider(client, "pool", "c", jwks_url=url, http_timeout=1.0)

    with pytest.raises(TransientError):
        provider.verify_id_token(token)
    with pytest.raises(TransientError):
        provider.jwks()


# --- key rotation: an unknown kid refetches the JWKS, at most once per interval -------------------

ROTATION_POOL = f"{REGION}_Rotating"
ROTATION_CLAIMS = {
    "sub": "a-sub",
    "aud": "the-client",
    "iss": f"https://cognito-idp.{REGION}.amazonaws.com/{ROTATION_POOL}",
    "token_use": "id",
    "custom:tenant_id": "ten_abc",
    "iat": 2_000_000_000 - 10**9,
    "exp": 4_102_444_800,
}


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _both(*keys: SigningKeys) -> dict[str, Any]:
    return {"keys": [entry for key in keys for entry in key.jwks()["keys"]]}


def _rotating_provider(
    url: str, clock: FakeClock, *, jwks: dict[str, Any] | None = None, http_timeout: float = 5.0
) -> CognitoIdentityProvider:
    client = boto3.client(
        "cognito-idp", region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    return CognitoIdentityProvider(
        client,
        ROTATION_POOL,
        "the-client",
        jwks_url=url,
        jwks=jwks,
        http_timeout=http_timeout,
        jwks_refresh_interval=60.0,
        clock=clock,
    )


def _forged(kid: str, key: rsa.RSAPrivateKey) -> str:
    return jwt.encode(ROTATION_CLAIMS, key, algorithm="RS256", headers={"kid": kid})


def test_a_token_signed_by_a_rotated_in_key_is_accepted_after_one_refetch() -> None:
    old, new = SigningKeys(_rsa_key()), SigningKeys(_rsa_key())
    clock = FakeClock()
    with JwksServer(old.jwks()) as server:
        provider = _rotating_provider(server.url, clock)
        assert provider.verify_id_token(old.sign(ROTATION_CLAIMS))["sub"] == "a-sub"
        assert server.requests == 1

        # Cognito publishes the new key beside the old one, and starts signing with it.
        server.document = _both(old, new)
        clock.now += 61

        assert provider.verify_id_token(new.sign(ROTATION_CLAIMS))["custom:tenant_id"] == "ten_abc"
        assert server.requests == 2
        assert provider.verify_id_token(old.sign(ROTATION_CLAIMS))["sub"] == "a-sub"
        assert provider.verify_id_token(new.sign({**ROTATION_CLAIMS, "sub": "b-sub"}))["sub"] == "b-sub"
        assert provider.jwks() == _both(old, new)
        assert server.requests == 2


def test_unknown_kids_refetch_at_most_once_per_interval() -> None:
    old, new, later = SigningKeys(_rsa_key()), SigningKeys(_rsa_key()), SigningKeys(_rsa_key())
    stranger = _rsa_key()
    clock = FakeClock()
    with JwksServer(old.jwks()) as server:
        provider = _rotating_provider(server.url, clock)
        provider.verify_id_token(old.sign(ROTATION_CLAIMS))
        assert server.requests == 1
        server.document = _both(old, new)

        # The first fetch is fresh: within the interval after it, an unknown kid fetches nothing.
        clock.now += 59
        with pytest.raises(InvalidTokenError):
            provider.verify_id_token(new.sign(ROTATION_CLAIMS))
        assert server.requests == 1

        clock.now += 1
        assert provider.verify_id_token(new.sign(ROTATION_CLAIMS))["sub"] == "a-sub"
        assert server.requests == 2

        # A second unknown kid within the interval: no fetch, refused as before.
        server.document = _both(old, new, later)
        clock.now += 30
        with pytest.raises(InvalidTokenError):
            provider.verify_id_token(later.sign(ROTATION_CLAIMS))
        for number in range(20):
            with pytest.raises(InvalidTokenError):
                provider.verify_id_token(_forged(f"forged-{number}", stranger))
        assert server.requests == 2

        # After the interval a new fetch happens, and finds the key.
        clock.now += 30
        assert provider.verify_id_token(later.sign(ROTATION_CLAIMS))["sub"] == "a-sub"
        assert server.requests == 3

        # A kid still unknown after its refetch is refused like any unknown kid.
        clock.now += 60
        with pytest.raises(InvalidTokenError):
            provider.verify_id_token(_forged("still-unknown", stranger))
        assert server.requests == 4
        assert provider.verify_id_token(new.sign(ROTATION_CLAIMS))["sub"] == "a-sub"
        assert server.requests == 4


def test_a_flood_of_unknown_kids_from_many_threads_fetches_once() -> None:
    old, new = SigningKeys(_rsa_key()), SigningKeys(_rsa_key())
    stranger = _rsa_key()
    clock = FakeClock()
    with JwksServer(old.jwks()) as server:
        provider = _rotating_provider(server.url, clock)
        provider.verify_id_token(old.sign(ROTATION_CLAIMS))
        server.document = _both(old, new)
        clock.now += 120
        tokens = [_forged(f"forged-{number}", stranger) for number in range(64)] + [new.sign(ROTATION_CLAIMS)]

        def verify(token: str) -> bool:
            try:
                provider.verify_id_token(token)
            except InvalidTokenError:
                return False
            return True

        with ThreadPoolExecutor(max_workers=16) as pool:
            accepted = list(pool.map(verify, tokens))

        # Whichever token triggered it, the one refetch found the new key and nothing else.
        assert accepted == [False] * 64 + [True]
        assert server.requests == 2
        assert provider.verify_id_token(new.sign(ROTATION_CLAIMS))["sub"] == "a-sub"
        assert server.requests == 2


def test_a_given_jwks_is_the_initial_cache_and_the_url_refreshes_it() -> None:
    old, new = SigningKeys(_rsa_key()), SigningKeys(_rsa_key())
    clock = FakeClock()
    with JwksServer(_both(old, new)) as server:
        provider = _rotating_provider(server.url, clock, jwks=old.jwks())

        assert provider.verify_id_token(old.sign(ROTATION_CLAIMS))["sub"] == "a-sub"
        assert provider.jwks() == old.jwks()
        assert server.requests == 0
        # Nothing was fetched yet, so the first unknown kid refetches at once.
        assert provider.verify_id_token(new.sign(ROTATION_CLAIMS))["sub"] == "a-sub"
        assert server.requests == 1
        assert provider.jwks() == _both(old, new)


def test_a_given_jwks_without_a_url_is_never_refreshed() -> None:
    old, new = SigningKeys(_rsa_key()), SigningKeys(_rsa_key())
    client = boto3.client(
        "cognito-idp", region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    provider = CognitoIdentityProvider(client, ROTATION_POOL, "the-client", jwks=old.jwks())

    assert provider.verify_id_token(old.sign(ROTATION_CLAIMS))["sub"] == "a-sub"
    with pytest.raises(InvalidTokenError):
        provider.verify_id_token(new.sign(ROTATION_CLAIMS))
    with pytest.raises(ConfigurationError):
        CognitoIdentityProvider(client, ROTATION_POOL, "the-client")


def test_a_failed_refetch_is_transient_and_counts_against_the_interval() -> None:
    old, new = SigningKeys(_rsa_key()), SigningKeys(_rsa_key())
    clock = FakeClock()
    with JwksServer(_both(old, new)) as server:
        url = server.url
    provider = _rotating_provider(url, clock, jwks=old.jwks(), http_timeout=1.0)

    with pytest.raises(TransientError):
        provider.verify_id_token(new.sign(ROTATION_CLAIMS))
    # Within the interval the failing URL is not tried again: the kid is simply unknown.
    with pytest.raises(InvalidTokenError):
        provider.verify_id_token(new.sign(ROTATION_CLAIMS))
    assert provider.verify_id_token(old.sign(ROTATION_CLAIMS))["sub"] == "a-sub"
    clock.now += 60
    with pytest.raises(TransientError):
        provider.verify_id_token(new.sign(ROTATION_CLAIMS))
