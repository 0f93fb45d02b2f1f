"""The IdentityProvider port on a Cognito user pool: RB-001 4.2's admin-created users, the
ADMIN_USER_PASSWORD_AUTH flow with its new-password challenge, and ID tokens verified
against the pool's JWKS."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any, Final

import httpx
import jwt
import structlog
from botocore.exceptions import ClientError

from tenancy.adapters.aws._errors import aws_errors, error_code
from tenancy.adapters.aws._fanout import each
from tenancy.domain.ids import normalize_email, normalized_email_or_none
from tenancy.domain.model import AuthChallenge, IdentityUser, IdentityUserStatus, Tokens
from tenancy.errors import (
    AccountNotFoundError,
    ConfigurationError,
    InvalidCredentialsError,
    InvalidInputError,
    InvalidSessionError,
    InvalidTokenError,
    NotFoundError,
    PasswordPolicyError,
    PermanentError,
    TransientError,
)

if TYPE_CHECKING:
    from mypy_boto3_cognito_idp import CognitoIdentityProviderClient
    from mypy_boto3_cognito_idp.type_defs import (
        AttributeTypeTypeDef,
        AuthenticationResultTypeTypeDef,
        UserTypeTypeDef,
    )

__all__ = ["CognitoIdentityProvider"]

log = structlog.get_logger(__name__)

_NEW_PASSWORD_REQUIRED: Final = "NEW_PASSWORD_REQUIRED"  # noqa: S105 - a challenge name, not a password
_ALGORITHM = "RS256"
_CLOCK_SKEW_SECONDS = 60
# The least time between two fetches of the JWKS prompted by tokens naming an unknown `kid`.
_JWKS_REFRESH_INTERVAL_SECONDS = 60.0
_USER_NOT_FOUND = "UserNotFoundException"
_LIST_USERS_MAX = 60
_SESSION_MIN_LENGTH, _SESSION_MAX_LENGTH = 20, 2048  # the API's bounds on `Session`  # ListUsers refuses a larger Limit
# Cognito generates `sub` and refuses writes to it; the embedded provider ignores them the same way.
_READ_ONLY_ATTRIBUTES = frozenset({"sub"})
_STATUSES = {
    "CONFIRMED": IdentityUserStatus.CONFIRMED,
    "FORCE_CHANGE_PASSWORD": IdentityUserStatus.FORCE_CHANGE_PASSWORD,
    "RESET_REQUIRED": IdentityUserStatus.RESET_REQUIRED,
    # Signs in through its federated provider, so nothing is pending on this side.
    "EXTERNAL_PROVIDER": IdentityUserStatus.CONFIRMED,
}
# Any other status (UNCONFIRMED, COMPROMISED, ARCHIVED, UNKNOWN) cannot sign in with its
# password until an administrator acts: the nearest mirrored status is RESET_REQUIRED.
_UNUSABLE_PASSWORD = IdentityUserStatus.RESET_REQUIRED
# Cognito's NotAuthorizedException messages, told to the user in the embedded provider's words.
_REFUSAL_REASONS = {
    "User is disabled.": "User is disabled",
    "Temporary password has expired and must be reset by an administrator.": (
        "Temporary password has expired and must be reset by an administrator"
    ),
}
_POLICY_PREFIX = "Password does not conform to policy: "
_INVALID_CODE = "Invalid or expired code"

ErrorFactory = Callable[[ClientError], Exception]


def _message(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Message", ""))


def _credentials_refused(error: ClientError) -> Exception:
    # Only known messages are passed on: moto, for one, puts the username in the message.
    reason = _REFUSAL_REASONS.get(_message(error))
    return InvalidCredentialsError(reason)


def _policy_refused(error: ClientError) -> Exception:
    message = _message(error)
    return PasswordPolicyError(message.removeprefix(_POLICY_PREFIX) if message.startswith(_POLICY_PREFIX) else None)


def _reset_refused(error: ClientError) -> Exception:
    # ForgotPassword's NotAuthorizedException: disabled, or never chose a password of their own.
    if _message(error) == "User is disabled.":
        return InvalidCredentialsError("User is disabled")
    return InvalidCredentialsError("Password cannot be reset in the current state")


def _code_refused(_: ClientError) -> Exception:
    return InvalidCredentialsError(_INVALID_CODE)


def _session_refused(_: ClientError) -> Exception:
    return InvalidSessionError()


def _token_refused(_: ClientError) -> Exception:
    return InvalidTokenError()


@contextmanager
def _cognito_errors(doing: str, specific: Mapping[str, ErrorFactory]) -> Iterator[None]:
    """`specific` maps the Cognito error codes this call gives a meaning to; the rest take
    the generic AWS mapping (throttling -> TransientError, and so on)."""
    with aws_errors(doing):
        try:
            yield
        except ClientError as error:
            factory = specific.get(error_code(error))
            if factory is None:
                raise
            raise factory(error) from None


def _attribute_list(attributes: Mapping[str, str]) -> list[AttributeTypeTypeDef]:
    return [{"Name": name, "Value": value} for name, value in attributes.items() if name not in _READ_ONLY_ATTRIBUTES]


def _user(user: UserTypeTypeDef, attributes: list[AttributeTypeTypeDef]) -> IdentityUser:
    values = {attribute["Name"]: attribute.get("Value", "") for attribute in attributes}
    status = user.get("UserStatus", "UNKNOWN")
    return IdentityUser(
        username=user.get("Username", ""),
        sub=values.get("sub", ""),
        status=_STATUSES.get(status, _UNUSABLE_PASSWORD),
        enabled=user.get("Enabled", True),
        attributes=values,
        created_at=user["UserCreateDate"],
    )


def _tokens(result: AuthenticationResultTypeTypeDef, refresh_token: str | None = None) -> Tokens:
    return Tokens(
        id_token=result["IdToken"],
        access_token=result["AccessToken"],
        # REFRESH_TOKEN_AUTH answers without one: the refresh token used stays valid.
        refresh_token=result.get("RefreshToken") or refresh_token or "",
        expires_in=result.get("ExpiresIn", 0),
        token_type=result.get("TokenType", "Bearer"),
    )


def _signing_keys(jwks: Mapping[str, Any]) -> dict[str, jwt.PyJWK]:
    keys: dict[str, jwt.PyJWK] = {}
    for entry in jwks.get("keys", []):
        if not isinstance(entry, dict):
            continue
        try:
            parsed = jwt.PyJWK(entry)
        except jwt.PyJWTError:
            continue  # a key of a kind this verifier never accepts anyway
        if parsed.key_id:
            keys[parsed.key_id] = parsed
    return keys


class CognitoIdentityProvider:
    """The IdentityProvider port for the AWS backend; usernames are the email as `normalize_email` spells it.

    ID tokens are verified against the pool's JWKS: `jwks` when given, else fetched from
    `jwks_url` on first use. When Cognito rotates its keys, a token naming a `kid` the cached
    JWKS lacks makes the adapter fetch `jwks_url` again, at most once per
    `jwks_refresh_interval` seconds (judged by `clock`) however many such tokens arrive, so
    forged tokens with made-up kids cannot make it hammer Cognito.
    """

    def __init__(
        self,
        client: CognitoIdentityProviderClient,
        user_pool_id: str,
        client_id: str,
        *,
        jwks_url: str | None = None,
        jwks: Mapping[str, Any] | None = None,
        http_timeout: float = 5.0,
        jwks_refresh_interval: float = _JWKS_REFRESH_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if jwks_url is None and jwks is None:
            raise ConfigurationError("the Cognito adapter needs the user pool's JWKS or its URL")
        self._client = client
        self._user_pool_id = user_pool_id
        self._client_id = client_id
        self._jwks_url = jwks_url
        self._http_timeout = http_timeout
        self._refresh_interval = jwks_refresh_interval
        self._clock = clock
        # Replaced together, never mutated, under `_jwks_lock`; `_keys` is also read without it.
        self._jwks: dict[str, Any] | None = dict(jwks) if jwks is not None else None
        self._keys: dict[str, jwt.PyJWK] | None = _signing_keys(self._jwks) if self._jwks is not None else None
        # When `jwks_url` was last fetched, or a refresh last tried to, by `clock`; None: never.
        self._fetched_at: float | None = None
        self._jwks_lock = threading.Lock()

    def create_user(self, username: str, attributes: dict[str, str], temporary_password: str) -> IdentityUser:
        username = normalize_email(username)
        if not username:
            raise InvalidInputError("the username (email) is empty")
        with _cognito_errors(f"creating identity user {username}", {"InvalidPasswordException": _policy_refused}):
            response = self._client.admin_create_user(
                UserPoolId=self._user_pool_id,
                Username=username,
                UserAttributes=_attribute_list(attributes),
                TemporaryPassword=temporary_password,
                # The project sends its own welcome email (data contract).
                MessageAction="SUPPRESS",
            )
        created = response["User"]
        return _user(created, created.get("Attributes", []))

    def get_user(self, username: str) -> IdentityUser | None:
        username = normalize_email(username)
        with aws_errors(f"reading identity user {username}"):
            try:
                response = self._client.admin_get_user(UserPoolId=self._user_pool_id, Username=username)
            except ClientError as error:
                if error_code(error) == _USER_NOT_FOUND:
                    return None
                raise
        return _user(
            {
                "Username": response["Username"],
                "UserStatus": response.get("UserStatus", "UNKNOWN"),
                "Enabled": response.get("Enabled", True),
                "UserCreateDate": response["UserCreateDate"],
            },
            response.get("UserAttributes", []),
        )

    def get_users(self, usernames: Sequence[str]) -> dict[str, IdentityUser]:
        # Cognito has no batched read: one AdminGetUser per user, a few at a time.
        valid = [username for username in usernames if normalized_email_or_none(username)]
        return {username: user for username, user in each(self.get_user, valid).items() if user is not None}

    def get_user_by_subject(self, sub: str) -> IdentityUser | None:
        # A quote or backslash would end or escape the filter's string; Cognito issues UUIDs.
        if not sub or any(character in sub for character in '"\\'):
            return None
        with aws_errors("finding an identity user by subject"):
            page = self._client.list_users(UserPoolId=self._user_pool_id, Filter=f'sub = "{sub}"', Limit=1)
        for listed in page.get("Users", []):
            user = _user(listed, listed.get("Attributes", []))
            if user.sub == sub:  # the filter is exact; checked again rather than trusted
                return user
        return None

    def update_attributes(self, username: str, attributes: dict[str, str]) -> IdentityUser:
        username = normalize_email(username)
        writable = _attribute_list(attributes)
        if writable:
            with aws_errors(f"updating identity user {username}"):
                self._client.admin_update_user_attributes(
                    UserPoolId=self._user_pool_id, Username=username, UserAttributes=writable
                )
        user = self.get_user(username)
        if user is None:
            # Only reachable when nothing was writable: Cognito said so above otherwise.
            raise NotFoundError(f"identity user {username} not found")
        return user

    def set_password(self, username: str, password: str, *, permanent: bool) -> None:
        username = normalize_email(username)
        with _cognito_errors(f"setting the password of {username}", {"InvalidPasswordException": _policy_refused}):
            self._client.admin_set_user_password(
                UserPoolId=self._user_pool_id, Username=username, Password=password, Permanent=permanent
            )

    def reset_password(self, username: str) -> None:
        """Cognito refuses this (NotAuthorizedException, a PermanentError here) for a user who
        never set a password of their own (FORCE_CHANGE_PASSWORD), and for one without a
        verified email or phone number."""
        username = normalize_email(username)
        with aws_errors(f"resetting the password of {username}"):
            self._client.admin_reset_user_password(UserPoolId=self._user_pool_id, Username=username)

    def start_password_reset(self, username: str) -> None:
        """Cognito emails the code itself, so there is none to return. The pool client's
        PreventUserExistenceErrors=LEGACY makes an unknown user an error rather than a silent success."""
        username = normalize_email(username)
        refusals: dict[str, ErrorFactory] = {
            _USER_NOT_FOUND: lambda _: AccountNotFoundError(),
            "NotAuthorizedException": _reset_refused,
        }
        with _cognito_errors(f"starting a password reset for {username}", refusals):
            self._client.forgot_password(ClientId=self._client_id, Username=username)

    def confirm_password_reset(self, username: str, code: str, new_password: str) -> None:
        username = normalize_email(username)
        refusals: dict[str, ErrorFactory] = {
            "CodeMismatchException": _code_refused,
            "ExpiredCodeException": _code_refused,
            "TooManyFailedAttemptsException": _code_refused,
            # Saying the user does not exist would tell a guesser what the reset form never does.
            _USER_NOT_FOUND: _code_refused,
            "NotAuthorizedException": _credentials_refused,
            "InvalidPasswordException": _policy_refused,
        }
        with _cognito_errors(f"confirming a password reset for {username}", refusals):
            self._client.confirm_forgot_password(
                ClientId=self._client_id, Username=username, ConfirmationCode=code, Password=new_password
            )

    def authenticate(self, username: str, password: str) -> Tokens | AuthChallenge:
        username = normalize_email(username)
        refusals: dict[str, ErrorFactory] = {
            "NotAuthorizedException": _credentials_refused,
            _USER_NOT_FOUND: lambda _: AccountNotFoundError(),
            # Cognito answers this for a RESET_REQUIRED user whatever the password: its password is
            # deactivated, and AWS's guide for imported users signs in with a random one to get it
            # (with PreventUserExistenceErrors=LEGACY, as here; ENABLED may answer
            # NotAuthorizedException instead). So it never means "right password": it gets the wrong
            # password's answer and tells a stranger nothing of the account's state. The owner's way
            # out is the forgotten-password form. (moto checks the password first, then offers the
            # new-password challenge: see the identity contract tests.)
            "PasswordResetRequiredException": lambda _: InvalidCredentialsError(),
            "UserNotConfirmedException": lambda _: InvalidCredentialsError("User is not confirmed"),
        }
        with _cognito_errors(f"signing in {username}", refusals):
            response = self._client.admin_initiate_auth(
                UserPoolId=self._user_pool_id,
                ClientId=self._client_id,
                AuthFlow="ADMIN_USER_PASSWORD_AUTH",
                AuthParameters={"USERNAME": username, "PASSWORD": password},
            )
        challenge = response.get("ChallengeName")
        if challenge == _NEW_PASSWORD_REQUIRED:
            return AuthChallenge(_NEW_PASSWORD_REQUIRED, response["Session"])
        if challenge:
            # MFA and custom challenges are not configured on the pool this project creates.
            raise PermanentError(f"signing in {username}: unsupported challenge {challenge}")
        return _tokens(response["AuthenticationResult"])

    def respond_to_new_password_challenge(self, username: str, session: str, new_password: str) -> Tokens:
        username = normalize_email(username)
        if not _SESSION_MIN_LENGTH <= len(session) <= _SESSION_MAX_LENGTH:
            # botocore would refuse it before sending, as a parameter error rather than a bad session.
            raise InvalidSessionError()
        refusals: dict[str, ErrorFactory] = {
            "InvalidPasswordException": _policy_refused,
            "NotAuthorizedException": _session_refused,
            "CodeMismatchException": _session_refused,
            "ExpiredCodeException": _session_refused,
            # moto's answer for an unknown or used session. From Cognito it would mean the pool or
            # client is gone, which the sign-in that issued this session has just disproved.
            "ResourceNotFoundException": _session_refused,
        }
        with _cognito_errors(f"completing the new-password challenge of {username}", refusals):
            response = self._client.admin_respond_to_auth_challenge(
                UserPoolId=self._user_pool_id,
                ClientId=self._client_id,
                ChallengeName=_NEW_PASSWORD_REQUIRED,
                Session=session,
                ChallengeResponses={"USERNAME": username, "NEW_PASSWORD": new_password},
            )
        if "AuthenticationResult" not in response:
            raise PermanentError(f"unsupported challenge {response.get('ChallengeName')} after a new password")
        return _tokens(response["AuthenticationResult"])

    def delete_user(self, username: str) -> None:
        username = normalize_email(username)
        with aws_errors(f"deleting identity user {username}"):
            try:
                self._client.admin_delete_user(UserPoolId=self._user_pool_id, Username=username)
            except ClientError as error:
                if error_code(error) != _USER_NOT_FOUND:
                    raise

    def disable_user(self, username: str) -> None:
        username = normalize_email(username)
        with aws_errors(f"disabling identity user {username}"):
            self._client.admin_disable_user(UserPoolId=self._user_pool_id, Username=username)
        # Cognito refuses a disabled user's refresh tokens; revoked too, so that no copy of the
        # pool (moto's, for one) lets one through.
        self.sign_out_everywhere(username)

    def scan_users(self, batch_size: int = 1000) -> Iterator[list[IdentityUser]]:
        """Every user in batches of `batch_size`, gathered from ListUsers pages of at most 60."""
        batch: list[IdentityUser] = []
        token: str | None = None
        while True:
            with aws_errors("listing identity users"):
                if token is None:
                    page = self._client.list_users(
                        UserPoolId=self._user_pool_id, Limit=min(batch_size, _LIST_USERS_MAX)
                    )
                else:
                    page = self._client.list_users(
                        UserPoolId=self._user_pool_id, Limit=min(batch_size, _LIST_USERS_MAX), PaginationToken=token
                    )
            for listed in page.get("Users", []):
                batch.append(_user(listed, listed.get("Attributes", [])))
                if len(batch) == batch_size:
                    yield batch
                    batch = []
            token = page.get("PaginationToken")
            if not token:
                break
        if batch:
            yield batch

    def refresh(self, refresh_token: str) -> Tokens:
        with _cognito_errors("refreshing tokens", {"NotAuthorizedException": _token_refused}):
            response = self._client.admin_initiate_auth(
                UserPoolId=self._user_pool_id,
                ClientId=self._client_id,
                AuthFlow="REFRESH_TOKEN_AUTH",
                AuthParameters={"REFRESH_TOKEN": refresh_token},
            )
        if "AuthenticationResult" not in response:
            raise InvalidTokenError()
        return _tokens(response["AuthenticationResult"], refresh_token)

    def sign_out_everywhere(self, username: str) -> None:
        try:
            with aws_errors("signing the user out everywhere"):
                self._client.admin_user_global_sign_out(
                    UserPoolId=self._user_pool_id, Username=normalize_email(username)
                )
        except NotFoundError:
            return  # no such user: nothing of theirs to revoke

    def jwks(self) -> dict[str, Any]:
        """The pool's JWKS: the one given at construction or fetched from `jwks_url`, as last
        refreshed after a token named a `kid` it lacked."""
        with self._jwks_lock:
            return self._loaded()[0]

    def verify_id_token(self, token: str) -> dict[str, object]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidTokenError() from None
        # Checked before decoding so a token naming another algorithm (`none`, HS256) never reaches a verifier.
        if header.get("alg") != _ALGORITHM:
            raise InvalidTokenError()
        kid = header.get("kid")
        key = self._signing_key(kid) if isinstance(kid, str) else None
        if key is None:
            raise InvalidTokenError()
        try:
            claims: dict[str, object] = jwt.decode(
                token,
                key.key,
                algorithms=[_ALGORITHM],
                audience=self._client_id,
                issuer=self._issuer,
                leeway=_CLOCK_SKEW_SECONDS,
                options={"require": ["exp", "iat", "iss", "aud", "sub", "token_use"]},
            )
        except jwt.PyJWTError:
            raise InvalidTokenError() from None
        if claims.get("token_use") != "id":
            raise InvalidTokenError()
        return claims

    @cached_property
    def _issuer(self) -> str:
        # Read on the first token checked, not at start: the client may not be built yet (lazily,
        # for a Lambda's cold start).
        return f"https://cognito-idp.{self._client.meta.region_name}.amazonaws.com/{self._user_pool_id}"

    def _loaded(self) -> tuple[dict[str, Any], dict[str, jwt.PyJWK]]:
        """Under `_jwks_lock`: the JWKS and its keys, fetched first if there are none yet."""
        if self._jwks is not None and self._keys is not None:
            return self._jwks, self._keys
        # A failure is not remembered: with no keys at all nothing verifies, so the next call tries again.
        return self._install(self._fetch_jwks())

    def _signing_key(self, kid: str) -> jwt.PyJWK | None:
        keys = self._keys
        if keys is not None and kid in keys:
            return keys[kid]  # the common case, without waiting behind a refresh in flight
        with self._jwks_lock:
            # Threads that queued here behind a refresh find its keys, or find it too recent to repeat.
            key = self._loaded()[1].get(kid)
            if key is None and self._refresh_due():
                # Counted before fetching, so a failing URL is not hammered either: a failed refresh
                # is a TransientError, and unknown kids are refused until the interval has passed.
                self._fetched_at = self._clock()
                log.info("cognito_jwks_refresh", reason="token names an unknown kid")
                key = self._install(self._fetch_jwks())[1].get(kid)
            return key

    def _refresh_due(self) -> bool:
        if self._jwks_url is None:
            return False
        return self._fetched_at is None or self._clock() - self._fetched_at >= self._refresh_interval

    def _install(self, jwks: dict[str, Any]) -> tuple[dict[str, Any], dict[str, jwt.PyJWK]]:
        """Under `_jwks_lock`: a fetched JWKS replaces the cached one; keys gone from it are refused."""
        keys = _signing_keys(jwks)
        self._jwks, self._keys = jwks, keys
        if self._fetched_at is None:
            self._fetched_at = self._clock()  # the first fetch counts: its keys are fresh
        return jwks, keys

    def _fetch_jwks(self) -> dict[str, Any]:
        if self._jwks_url is None:
            raise ConfigurationError("no JWKS URL to fetch the user pool's keys from")
        try:
            response = httpx.get(self._jwks_url, timeout=self._http_timeout)
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as error:
            raise TransientError(f"fetching the user pool's JWKS: {type(error).__name__}") from None
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise TransientError("fetching the user pool's JWKS: not a JWKS document")
        return document
