"""EmbeddedIdentityProvider: Cognito's user lifecycle on SQLite, judged by what callers observe."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import argon2
import jwt
import pytest

from tenancy.adapters.local.database import Database
from tenancy.adapters.local.identity import EmbeddedIdentityProvider
from tenancy.adapters.local.signing_keys import SigningKeys
from tenancy.bootstrap import SystemClock
from tenancy.config import Settings
from tenancy.domain.model import AuthChallenge, IdentityUserStatus, Tokens
from tenancy.errors import (
    AccountNotFoundError,
    InvalidCredentialsError,
    InvalidInputError,
    InvalidSessionError,
    InvalidTokenError,
    ItemAlreadyExistsError,
    NotFoundError,
    PasswordPolicyError,
    TransientError,
)
from tenancy.ports import IdentityProvider

from helpers import ManualClock

EMAIL = "owner@example.com"
TEMPORARY = "TempPass123!"
NEW_PASSWORD = "N3w-Password!"
ATTRIBUTES = {
    "email": EMAIL,
    "email_verified": "true",
    "custom:tenant_id": "ten_abc",
    "custom:roles": "tenant_admin",
}
ISSUER = "http://127.0.0.1:8000"
AUDIENCE = "tenancy"


def _cheap_hasher(time_cost: int = 1) -> argon2.PasswordHasher:
    return argon2.PasswordHasher(time_cost=time_cost, memory_cost=8, parallelism=1, type=argon2.Type.ID)


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    database = Database(tmp_path / "t.db")
    yield database
    database.close()


@pytest.fixture
def keys(tmp_path: Path) -> SigningKeys:
    return SigningKeys.load_or_create(tmp_path / "keys")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 1, 18, 12, 0, tzinfo=UTC))


def _provider(
    database: Database, keys: SigningKeys, clock: ManualClock, hasher: argon2.PasswordHasher | None = None
) -> EmbeddedIdentityProvider:
    return EmbeddedIdentityProvider(
        database,
        keys,
        issuer=ISSUER,
        audience=AUDIENCE,
        token_ttl_seconds=3600,
        temporary_password_ttl=timedelta(days=7),
        challenge_ttl_seconds=180,
        hasher=hasher or _cheap_hasher(),
        clock=clock,
    )


@pytest.fixture
def provider(database: Database, keys: SigningKeys, clock: ManualClock) -> EmbeddedIdentityProvider:
    return _provider(database, keys, clock)


def _challenge(provider: EmbeddedIdentityProvider) -> AuthChallenge:
    provider.create_user(EMAIL, ATTRIBUTES, TEMPORARY)
    result = provider.authenticate(EMAIL, TEMPORARY)
    assert isinstance(result, AuthChallenge)
    return result


def _confirmed(provider: EmbeddedIdentityProvider) -> Tokens:
    session = _challenge(provider).session
    return provider.respond_to_new_password_challenge(EMAIL, session, NEW_PASSWORD)


def _status(provider: EmbeddedIdentityProvider) -> IdentityUserStatus:
    user = provider.get_user(EMAIL)
    assert user is not None
    return user.status


def test_it_meets_the_port(provider: EmbeddedIdentityProvider) -> None:
    port: IdentityProvider = provider
    assert port is provider


def test_a_created_user_waits_for_a_new_password(provider: EmbeddedIdentityProvider) -> None:
    created = provider.create_user("  Owner@Example.COM ", ATTRIBUTES, TEMPORARY)
    fetched = provider.get_user(EMAIL)

    assert fetched is not None
    assert fetched == created
    assert fetched.username == EMAIL
    assert fetched.status is IdentityUserStatus.FORCE_CHANGE_PASSWORD
    assert fetched.enabled
    assert fetched.attributes == {**ATTRIBUTES, "sub": fetched.sub}
    assert fetched.tenant_id == "ten_abc"


def test_an_unknown_user_is_none(provider: EmbeddedIdentityProvider) -> None:
    assert provider.get_user("nobody@example.com") is None


def test_a_second_create_for_the_same_email_is_refused(provider: EmbeddedIdentityProvider) -> None:
    provider.create_user(EMAIL, ATTRIBUTES, TEMPORARY)

    with pytest.raises(ItemAlreadyExistsError):
        provider.create_user(EMAIL.upper(), ATTRIBUTES, "Other123!")


def test_only_an_argon2id_hash_is_stored(provider: EmbeddedIdentityProvider, database: Database) -> None:
    provider.create_user(EMAIL, ATTRIBUTES, TEMPORARY)

    (row,) = database.read("SELECT password_hash FROM identity_users WHERE username = ?", (EMAIL,))
    assert row["password_hash"].startswith("$argon2id$")
    assert TEMPORARY not in row["password_hash"]


def test_a_wrong_password_is_refused(provider: EmbeddedIdentityProvider) -> None:
    provider.create_user(EMAIL, ATTRIBUTES, TEMPORARY)

    with pytest.raises(InvalidCredentialsError) as caught:
        provider.authenticate(EMAIL, "wrong-password")
    assert "wrong-password" not in str(caught.value)


def test_an_unknown_email_is_account_not_found(provider: EmbeddedIdentityProvider) -> None:
    with pytest.raises(AccountNotFoundError) as caught:
        provider.authenticate("nobody@example.com", TEMPORARY)
    assert caught.value.reason == "Account not found"


def test_the_temporary_password_leads_to_a_challenge(provider: EmbeddedIdentityProvider) -> None:
    challenge = _challenge(provider)

    assert challenge.challenge == "NEW_PASSWORD_REQUIRED"
    assert len(challenge.session) >= 40


def test_only_the_session_hash_is_stored(provider: EmbeddedIdentityProvider, database: Database) -> None:
    session = _challenge(provider).session

    stored = [row["session_hash"] for row in database.read("SELECT session_hash FROM identity_sessions")]
    assert stored
    assert session not in stored


@pytest.mark.parametrize(
    ("weak", "missing"),
    [
        ("Sh0rt!", "at least 8 characters"),
        ("alllower123!", "an uppercase letter"),
        ("ALLUPPER123!", "a lowercase letter"),
        ("NoDigits!!", "a number"),
        ("NoSymbols123", "a symbol"),
    ],
)
def test_a_weak_new_password_is_refused_and_the_session_survives(
    provider: EmbeddedIdentityProvider, weak: str, missing: str
) -> None:
    session = _challenge(provider).session

    with pytest.raises(PasswordPolicyError) as caught:
        provider.respond_to_new_password_challenge(EMAIL, session, weak)

    assert missing in caught.value.reason
    assert weak not in str(caught.value)
    assert isinstance(provider.respond_to_new_password_challenge(EMAIL, session, NEW_PASSWORD), Tokens)


def test_completing_the_challenge_gives_tokens_with_the_contract_claims(
    provider: EmbeddedIdentityProvider, keys: SigningKeys, clock: ManualClock
) -> None:
    tokens = _confirmed(provider)
    user = provider.get_user(EMAIL)
    assert user is not None

    claims = provider.verify_id_token(tokens.id_token)
    assert claims["sub"] == user.sub
    assert claims["email"] == EMAIL
    assert claims["email_verified"] is True
    assert claims["custom:tenant_id"] == "ten_abc"
    assert claims["custom:roles"] == "tenant_admin"
    assert claims["cognito:username"] == EMAIL
    assert claims["token_use"] == "id"
    assert (claims["iss"], claims["aud"]) == (ISSUER, AUDIENCE)
    assert claims["iat"] == int(clock.now().timestamp())
    assert claims["exp"] == int(clock.now().timestamp()) + 3600
    assert tokens.expires_in == 3600
    assert tokens.token_type == "Bearer"
    assert user.status is IdentityUserStatus.CONFIRMED

    access = keys.verify(tokens.access_token, None, ISSUER, now=clock.now())
    assert access["token_use"] == "access"
    assert access["client_id"] == AUDIENCE
    assert access["username"] == EMAIL
    assert access["custom:tenant_id"] == "ten_abc"


def test_an_access_token_is_not_an_id_token(provider: EmbeddedIdentityProvider) -> None:
    tokens = _confirmed(provider)

    with pytest.raises(InvalidTokenError):
        provider.verify_id_token(tokens.access_token)
    with pytest.raises(InvalidTokenError):
        provider.verify_id_token("not-a-token")


def test_an_id_token_expires(provider: EmbeddedIdentityProvider, clock: ManualClock) -> None:
    tokens = _confirmed(provider)
    clock.advance(seconds=3600)

    with pytest.raises(InvalidTokenError):
        provider.verify_id_token(tokens.id_token)


def test_a_session_works_once(provider: EmbeddedIdentityProvider) -> None:
    session = _challenge(provider).session
    provider.respond_to_new_password_challenge(EMAIL, session, NEW_PASSWORD)

    with pytest.raises(InvalidSessionError) as caught:
        provider.respond_to_new_password_challenge(EMAIL, session, "An0ther-Password!")
    assert session not in str(caught.value)


def test_a_session_belongs_to_its_user(provider: EmbeddedIdentityProvider) -> None:
    session = _challenge(provider).session
    provider.create_user("other@example.com", {"email": "other@example.com"}, TEMPORARY)

    with pytest.raises(InvalidSessionError):
        provider.respond_to_new_password_challenge("other@example.com", session, NEW_PASSWORD)


def test_an_unknown_session_is_refused(provider: EmbeddedIdentityProvider) -> None:
    _challenge(provider)

    with pytest.raises(InvalidSessionError):
        provider.respond_to_new_password_challenge(EMAIL, "made-up", NEW_PASSWORD)


def test_a_session_expires(provider: EmbeddedIdentityProvider, clock: ManualClock) -> None:
    session = _challenge(provider).session
    clock.advance(seconds=181)

    with pytest.raises(InvalidSessionError):
        provider.respond_to_new_password_challenge(EMAIL, session, NEW_PASSWORD)


def test_a_temporary_password_expires(provider: EmbeddedIdentityProvider, clock: ManualClock) -> None:
    provider.create_user(EMAIL, ATTRIBUTES, TEMPORARY)
    clock.advance(days=7, seconds=1)

    with pytest.raises(InvalidCredentialsError):
        provider.authenticate(EMAIL, TEMPORARY)


def test_concurrent_answers_to_one_session_confirm_once(provider: EmbeddedIdentityProvider) -> None:
    session = _challenge(provider).session
    barrier = threading.Barrier(2)

    def answer(password: str) -> Tokens | Exception:
        barrier.wait()
        try:
            return provider.respond_to_new_password_challenge(EMAIL, session, password)
        except InvalidSessionError as error:
            return error

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(answer, ["First-Pass1!", "Second-Pass2!"]))

    assert sorted(type(result).__name__ for result in results) == ["InvalidSessionError", "Tokens"]
    winner = ["First-Pass1!", "Second-Pass2!"][[isinstance(r, Tokens) for r in results].index(True)]
    assert isinstance(provider.authenticate(EMAIL, winner), Tokens)


def test_a_confirmed_user_gets_tokens_directly(provider: EmbeddedIdentityProvider) -> None:
    _confirmed(provider)

    tokens = provider.authenticate(EMAIL, NEW_PASSWORD)

    assert isinstance(tokens, Tokens)
    assert provider.verify_id_token(tokens.id_token)["custom:tenant_id"] == "ten_abc"
    with pytest.raises(InvalidCredentialsError):
        provider.authenticate(EMAIL, TEMPORARY)


def test_a_permanent_password_set_by_an_admin_logs_straight_in(provider: EmbeddedIdentityProvider) -> None:
    provider.create_user(EMAIL, ATTRIBUTES, TEMPORARY)

    provider.set_password(EMAIL, "Admin-Set-1!", permanent=True)

    assert _status(provider) is IdentityUserStatus.CONFIRMED
    assert isinstance(provider.authenticate(EMAIL, "Admin-Set-1!"), Tokens)


def test_a_new_temporary_password_asks_for_a_change_again(
    provider: EmbeddedIdentityProvider, clock: ManualClock
) -> None:
    _confirmed(provider)
    clock.advance(days=30)

    provider.set_password(EMAIL, "Fresh-Temp-1!", permanent=False)

    assert _status(provider) is IdentityUserStatus.FORCE_CHANGE_PASSWORD
    assert isinstance(provider.authenticate(EMAIL, "Fresh-Temp-1!"), AuthChallenge)


def test_setting_a_password_ends_open_challenges(provider: EmbeddedIdentityProvider) -> None:
    session = _challenge(provider).session

    provider.set_password(EMAIL, "Admin-Set-1!", permanent=True)

    with pytest.raises(InvalidSessionError):
        provider.respond_to_new_password_challenge(EMAIL, session, NEW_PASSWORD)


def test_a_reset_stops_the_old_password_and_refresh_tokens(provider: EmbeddedIdentityProvider) -> None:
    tokens = _confirmed(provider)

    provider.reset_password(EMAIL)

    assert _status(provider) is IdentityUserStatus.RESET_REQUIRED
    with pytest.raises(InvalidCredentialsError) as caught:
        provider.authenticate(EMAIL, NEW_PASSWORD)
    assert caught.value.reason == "Password reset required"
    with pytest.raises(InvalidTokenError):
        provider.refresh(tokens.refresh_token)


def test_a_disabled_user_cannot_log_in(provider: EmbeddedIdentityProvider, database: Database) -> None:
    _confirmed(provider)
    with database.transaction() as connection:
        connection.execute("UPDATE identity_users SET enabled = 0")

    with pytest.raises(InvalidCredentialsError):
        provider.authenticate(EMAIL, NEW_PASSWORD)


def test_attributes_are_merged(provider: EmbeddedIdentityProvider) -> None:
    created = provider.create_user(EMAIL, ATTRIBUTES, TEMPORARY)

    updated = provider.update_attributes(EMAIL, {"custom:tenant_id": "ten_new", "sub": "forged", "name": "Ann"})

    assert updated == provider.get_user(EMAIL)
    assert updated.attributes == {**ATTRIBUTES, "custom:tenant_id": "ten_new", "name": "Ann", "sub": created.sub}


def test_admin_calls_on_an_unknown_user_are_not_found(provider: EmbeddedIdentityProvider) -> None:
    with pytest.raises(NotFoundError):
        provider.update_attributes("nobody@example.com", {"name": "x"})
    with pytest.raises(NotFoundError):
        provider.set_password("nobody@example.com", NEW_PASSWORD, permanent=True)
    with pytest.raises(NotFoundError):
        provider.reset_password("nobody@example.com")


def test_refresh_gives_new_tokens_for_the_same_sign_in(provider: EmbeddedIdentityProvider, clock: ManualClock) -> None:
    tokens = _confirmed(provider)
    signed_in_at = int(clock.now().timestamp())
    clock.advance(hours=2)

    refreshed = provider.refresh(tokens.refresh_token)

    claims = provider.verify_id_token(refreshed.id_token)
    assert refreshed.refresh_token == tokens.refresh_token
    assert claims["auth_time"] == signed_in_at
    assert claims["iat"] == int(clock.now().timestamp())


def test_refresh_refuses_garbage_and_expired_tokens(provider: EmbeddedIdentityProvider, clock: ManualClock) -> None:
    tokens = _confirmed(provider)

    with pytest.raises(InvalidTokenError):
        provider.refresh("garbage")
    clock.advance(days=30)
    with pytest.raises(InvalidTokenError):
        provider.refresh(tokens.refresh_token)


def test_a_hash_with_old_parameters_is_upgraded_on_login(
    database: Database, keys: SigningKeys, clock: ManualClock
) -> None:
    _confirmed(_provider(database, keys, clock))
    stronger = _provider(database, keys, clock, hasher=_cheap_hasher(time_cost=2))

    assert isinstance(stronger.authenticate(EMAIL, NEW_PASSWORD), Tokens)

    (row,) = database.read("SELECT password_hash FROM identity_users WHERE username = ?", (EMAIL,))
    assert ",t=2," in row["password_hash"]
    assert isinstance(stronger.authenticate(EMAIL, NEW_PASSWORD), Tokens)


def test_a_locked_database_is_a_transient_error(provider: EmbeddedIdentityProvider, database: Database) -> None:
    database.connection().execute("PRAGMA busy_timeout = 0")
    holder = Database(database.path)
    holder.connection().execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(TransientError):
            provider.create_user(EMAIL, ATTRIBUTES, TEMPORARY)
    finally:
        holder.connection().execute("ROLLBACK")
        holder.close()


def test_from_settings_uses_argon2id_and_publishes_its_key(database: Database, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", password_hash_time_cost=1, password_hash_memory_kib=8)
    provider = EmbeddedIdentityProvider.from_settings(database, settings, SystemClock())
    provider.create_user(EMAIL, ATTRIBUTES, TEMPORARY)
    session = provider.authenticate(EMAIL, TEMPORARY)
    assert isinstance(session, AuthChallenge)

    tokens = provider.respond_to_new_password_challenge(EMAIL, session.session, NEW_PASSWORD)

    (jwk,) = provider.jwks()["keys"]
    claims = jwt.decode(
        tokens.id_token, jwt.PyJWK(jwk).key, algorithms=["RS256"], audience="tenancy", issuer=settings.base_url
    )
    assert claims["email"] == EMAIL
    assert (tmp_path / "home" / "keys" / "signing-key.pem").exists()


# --- forgotten password -------------------------------------------------------------------

RESET_PASSWORD = "Reset-Passw0rd!"


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**8:08d}"


def _reset_code(provider: EmbeddedIdentityProvider) -> str:
    code = provider.start_password_reset(EMAIL)
    assert code is not None
    return code


def _guess_wrong(provider: EmbeddedIdentityProvider, code: str, times: int) -> None:
    """`times` wrong codes, each refused."""
    for _ in range(times):
        with pytest.raises(InvalidCredentialsError):
            provider.confirm_password_reset(EMAIL, _wrong(code), RESET_PASSWORD)


def test_a_reset_code_is_eight_digits_and_only_its_hash_is_stored(
    provider: EmbeddedIdentityProvider, database: Database
) -> None:
    _confirmed(provider)

    code = provider.start_password_reset(EMAIL)

    assert code is not None
    assert len(code) == 8
    assert code.isdigit()
    (row,) = database.read("SELECT code_hash FROM identity_reset_codes WHERE username = ?", (EMAIL,))
    assert row["code_hash"].startswith("$argon2id$")
    assert code not in row["code_hash"]


def test_a_reset_ends_sessions_and_refresh_tokens(provider: EmbeddedIdentityProvider) -> None:
    tokens = _confirmed(provider)
    code = _reset_code(provider)

    provider.confirm_password_reset(EMAIL, code, RESET_PASSWORD)

    with pytest.raises(InvalidTokenError):
        provider.refresh(tokens.refresh_token)
    assert isinstance(provider.authenticate(EMAIL, RESET_PASSWORD), Tokens)


def test_a_reset_code_expires_after_an_hour(provider: EmbeddedIdentityProvider, clock: ManualClock) -> None:
    _confirmed(provider)
    code = _reset_code(provider)

    clock.advance(hours=1)

    with pytest.raises(InvalidCredentialsError, match="Invalid or expired code"):
        provider.confirm_password_reset(EMAIL, code, RESET_PASSWORD)
    assert isinstance(provider.authenticate(EMAIL, NEW_PASSWORD), Tokens)


def test_five_wrong_codes_use_the_code_up(provider: EmbeddedIdentityProvider) -> None:
    _confirmed(provider)
    code = _reset_code(provider)

    _guess_wrong(provider, code, 5)

    with pytest.raises(InvalidCredentialsError, match="Invalid or expired code"):
        provider.confirm_password_reset(EMAIL, code, RESET_PASSWORD)


def test_asking_again_after_five_wrong_codes_waits_out_the_used_up_codes_hour(
    provider: EmbeddedIdentityProvider, clock: ManualClock
) -> None:
    _confirmed(provider)
    code = _reset_code(provider)
    _guess_wrong(provider, code, 5)

    clock.advance(minutes=30)
    reissued = _reset_code(provider)
    with pytest.raises(InvalidCredentialsError, match="Invalid or expired code"):
        provider.confirm_password_reset(EMAIL, reissued, RESET_PASSWORD)
    clock.advance(minutes=30)  # the used-up code's hour is over: asking again did not stretch it
    fresh = _reset_code(provider)
    provider.confirm_password_reset(EMAIL, fresh, RESET_PASSWORD)
    assert isinstance(provider.authenticate(EMAIL, RESET_PASSWORD), Tokens)


def test_a_reissued_code_keeps_the_wrong_tries_of_the_live_one(provider: EmbeddedIdentityProvider) -> None:
    _confirmed(provider)
    code = _reset_code(provider)
    _guess_wrong(provider, code, 4)

    reissued = _reset_code(provider)
    with pytest.raises(InvalidCredentialsError):
        provider.confirm_password_reset(EMAIL, _wrong(reissued), RESET_PASSWORD)

    with pytest.raises(InvalidCredentialsError, match="Invalid or expired code"):
        provider.confirm_password_reset(EMAIL, reissued, RESET_PASSWORD)
    assert isinstance(provider.authenticate(EMAIL, NEW_PASSWORD), Tokens)


def test_a_code_asked_for_after_the_last_one_expired_gets_five_tries(
    provider: EmbeddedIdentityProvider, clock: ManualClock
) -> None:
    _confirmed(provider)
    code = _reset_code(provider)
    _guess_wrong(provider, code, 4)
    clock.advance(hours=1)

    fresh = _reset_code(provider)
    _guess_wrong(provider, fresh, 4)

    provider.confirm_password_reset(EMAIL, fresh, RESET_PASSWORD)
    assert isinstance(provider.authenticate(EMAIL, RESET_PASSWORD), Tokens)


class CountingHasher(argon2.PasswordHasher):
    """A cheap argon2 hasher that counts its hashes: a stand-in for how long an answer takes."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1, type=argon2.Type.ID)
        self.hashes = 0

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        self.hashes += 1
        return super().hash(password, salt=salt)


@pytest.mark.parametrize("account", ["confirmed", "unknown", "temporary_password", "disabled"])
def test_asking_for_a_reset_code_costs_one_hash_whoever_asks(
    database: Database, keys: SigningKeys, clock: ManualClock, account: str
) -> None:
    hasher = CountingHasher()
    provider = _provider(database, keys, clock, hasher)
    if account == "temporary_password":
        provider.create_user(EMAIL, ATTRIBUTES, TEMPORARY)
    elif account != "unknown":
        _confirmed(provider)
    if account == "disabled":
        with database.transaction() as connection:
            connection.execute("UPDATE identity_users SET enabled = 0")
    hashes_before = hasher.hashes

    with contextlib.suppress(AccountNotFoundError, InvalidCredentialsError):
        provider.start_password_reset(EMAIL)

    assert hasher.hashes - hashes_before == 1


def test_parallel_guesses_cannot_try_more_than_five_codes(provider: EmbeddedIdentityProvider) -> None:
    _confirmed(provider)
    code = _reset_code(provider)
    start = threading.Barrier(8)

    def guess(number: int) -> None:
        start.wait()
        with pytest.raises(InvalidCredentialsError):
            provider.confirm_password_reset(EMAIL, f"{(int(code) + number) % 10**8:08d}", RESET_PASSWORD)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(guess, range(1, 9)))

    with pytest.raises(InvalidCredentialsError):
        provider.confirm_password_reset(EMAIL, code, RESET_PASSWORD)


def test_a_new_reset_code_replaces_the_earlier_one(provider: EmbeddedIdentityProvider) -> None:
    _confirmed(provider)
    first = provider.start_password_reset(EMAIL)
    second = provider.start_password_reset(EMAIL)
    assert first is not None
    assert second is not None

    if first != second:
        with pytest.raises(InvalidCredentialsError):
            provider.confirm_password_reset(EMAIL, first, RESET_PASSWORD)
    provider.confirm_password_reset(EMAIL, second, RESET_PASSWORD)
    assert isinstance(provider.authenticate(EMAIL, RESET_PASSWORD), Tokens)


def test_a_deleted_user_takes_its_reset_code_along(provider: EmbeddedIdentityProvider, database: Database) -> None:
    _confirmed(provider)
    provider.start_password_reset(EMAIL)

    provider.delete_user(EMAIL)

    assert database.read("SELECT 1 FROM identity_reset_codes") == []


# --- issue 11: the account's state is told only to someone who knows its password --------------


class VerifyCountingHasher(argon2.PasswordHasher):
    """A cheap argon2 hasher that counts its password checks."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1, type=argon2.Type.ID)
        self.verifies = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self.verifies += 1
        return super().verify(hash, password)


def _put_in_state(provider: EmbeddedIdentityProvider, database: Database, clock: ManualClock, state: str) -> str:
    """The account in `state`; the password it had before, which still matches its stored hash."""
    if state == "temporary_password_expired":
        provider.create_user(EMAIL, ATTRIBUTES, TEMPORARY)
        clock.advance(days=8)
        return TEMPORARY
    _confirmed(provider)
    if state == "reset_required":
        provider.reset_password(EMAIL)
    elif state == "disabled":
        with database.transaction() as connection:
            connection.execute("UPDATE identity_users SET enabled = 0")
    return NEW_PASSWORD


STATE_REASONS = {
    "confirmed": None,
    "reset_required": "Password reset required",
    "disabled": "User is disabled",
    "temporary_password_expired": "Temporary password has expired and must be reset by an administrator",
}


@pytest.mark.parametrize("state", list(STATE_REASONS))
def test_a_wrong_password_is_answered_alike_whatever_the_accounts_state(
    database: Database, keys: SigningKeys, clock: ManualClock, state: str
) -> None:
    hasher = VerifyCountingHasher()
    provider = _provider(database, keys, clock, hasher)
    _put_in_state(provider, database, clock, state)
    checks_before = hasher.verifies

    with pytest.raises(InvalidCredentialsError) as caught:
        provider.authenticate(EMAIL, "Wrong-Passw0rd!")

    # Exactly the answer (type, reason, status) a wrong password gets on a plain account, at the
    # same cost: one password check.
    assert type(caught.value) is InvalidCredentialsError
    assert (caught.value.reason, caught.value.status_code) == ("Incorrect email or password", 401)
    assert str(caught.value) == "Incorrect email or password"
    assert hasher.verifies - checks_before == 1


@pytest.mark.parametrize("state", [state for state, reason in STATE_REASONS.items() if reason])
def test_the_right_password_then_learns_the_accounts_state(
    database: Database, keys: SigningKeys, clock: ManualClock, state: str
) -> None:
    provider = _provider(database, keys, clock)
    password = _put_in_state(provider, database, clock, state)

    with pytest.raises(InvalidCredentialsError) as caught:
        provider.authenticate(EMAIL, password)
    assert caught.value.reason == STATE_REASONS[state]


# --- issue 11: one spelling per account -------------------------------------------------------

KATE = "kate@example.com"
KATE_LOOKALIKES = [
    "\u212aate@example.com",  # KELVIN SIGN, which NFKC (and str.lower) turn into k
    "\uff4bate@example.com",  # FULLWIDTH LATIN SMALL LETTER K
    "k\u200bate@example.com",  # ZERO WIDTH SPACE
    "kate\u200d@example.com",  # ZERO WIDTH JOINER
    "\u202ekate@example.com",  # RIGHT-TO-LEFT OVERRIDE
    "k\u0430te@example.com",  # CYRILLIC SMALL LETTER A
    "kate@exampl\u0435.com",  # CYRILLIC SMALL LETTER IE, in the domain
]


@pytest.mark.parametrize("lookalike", KATE_LOOKALIKES)
def test_a_lookalike_email_neither_makes_a_second_account_nor_signs_in(
    provider: EmbeddedIdentityProvider, database: Database, lookalike: str
) -> None:
    provider.create_user(KATE, {**ATTRIBUTES, "email": KATE}, TEMPORARY)
    provider.set_password(KATE, NEW_PASSWORD, permanent=True)

    with pytest.raises(InvalidInputError):
        provider.create_user(lookalike, {**ATTRIBUTES, "email": lookalike}, TEMPORARY)
    with pytest.raises(InvalidInputError):
        provider.authenticate(lookalike, NEW_PASSWORD)
    with pytest.raises(InvalidInputError):
        provider.get_user(lookalike)
    with pytest.raises(InvalidInputError):
        provider.start_password_reset(lookalike)

    assert [row["username"] for row in database.read("SELECT username FROM identity_users")] == [KATE]
    assert isinstance(provider.authenticate(" KATE@Example.com ", NEW_PASSWORD), Tokens)
