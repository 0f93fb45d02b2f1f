"""Settings, read from `TENANCY_*` environment variables (pydantic-settings).

Nothing is read at import time: `Settings()` is built by the entrypoints and passed on.
"""

from __future__ import annotations

import ipaddress
from email.utils import parseaddr
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from tenancy.faults import Faults

__all__ = [
    "ALERT_DESTINATIONS",
    "ALERT_TARGETS",
    "DEFAULT_ALERT_ROUTES",
    "PAYFAST_SANDBOX_MERCHANT_ID",
    "PAYFAST_SANDBOX_MERCHANT_KEY",
    "PAYFAST_SANDBOX_PASSPHRASE",
    "PAYFAST_SOURCE_RANGES",
    "Backend",
    "PayfastMode",
    "Settings",
]

# PayFast's public sandbox credentials (shared/spec/payfast-itn.md): fine for sandbox and
# offline demos, refused in live mode.
PAYFAST_SANDBOX_MERCHANT_ID = "10000100"
PAYFAST_SANDBOX_MERCHANT_KEY = "46f0cd694581a"
PAYFAST_SANDBOX_PASSPHRASE = "jt7NOE43FZPn"  # noqa: S105 - public sandbox value
PAYFAST_SOURCE_RANGES = (
    "197.97.145.144/28",
    "41.74.179.192/27",
    "102.216.36.0/28",
    "102.216.36.128/28",
    "144.126.193.139/32",
)
_VALIDATE_URLS = {
    "live": "https://www.payfast.co.za/eng/query/validate",
    "sandbox": "https://sandbox.payfast.co.za/eng/query/validate",
}
# Live and sandbox share the host; sandbox calls carry the query parameter `testing=true`.
_PAYFAST_API_URL = "https://api.payfast.co.za"
_PROCESS_URLS = {
    "live": "https://www.payfast.co.za/eng/process",
    "sandbox": "https://sandbox.payfast.co.za/eng/process",
}


class Backend(StrEnum):
    LOCAL = "local"
    AWS = "aws"


class PayfastMode(StrEnum):
    SANDBOX = "sandbox"
    LIVE = "live"
    OFFLINE = "offline"  # skips only the source-IP and server-confirmation checks


CommaList = Annotated[tuple[str, ...], NoDecode]
AlertRoutes = Annotated[dict[str, tuple[str, ...]], NoDecode]

# Who RB-001 section 6 escalates to (runbook.findings.ESCALATION) and how alerts reach them.
ALERT_TARGETS = ("engineering", "finance", "security", "on_call")
ALERT_DESTINATIONS = ("log", "email", "slack", "pagerduty")
DEFAULT_ALERT_ROUTES: dict[str, tuple[str, ...]] = {
    "engineering": ("slack",),
    "finance": ("email",),
    "security": ("email",),
    "on_call": ("pagerduty",),
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TENANCY_", extra="ignore")

    backend: Backend = Backend.LOCAL
    home: Path = Path("./var")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    env: str = "dev"
    login_url: str | None = None
    # Where buyers' browsers and PayFast reach this service (checkout's notify/return URLs, the
    # welcome email's link); the listening address when unset.
    public_url: str | None = None
    # Session and CSRF cookies are Secure: browsers keep them over HTTPS, and on http://localhost.
    cookie_secure: bool = True
    email_from: str = "noreply@kimmyai.io"
    # Named wherever a customer is told to contact support (failure pages, emails); unset: support@
    # the sender's domain.
    support_email: str | None = None
    smtp_url: str | None = None
    log_level: str = "info"

    payfast_mode: PayfastMode = PayfastMode.SANDBOX
    payfast_merchant_id: str = PAYFAST_SANDBOX_MERCHANT_ID
    payfast_merchant_key: SecretStr = SecretStr(PAYFAST_SANDBOX_MERCHANT_KEY)
    payfast_passphrase: SecretStr | None = SecretStr(PAYFAST_SANDBOX_PASSPHRASE)
    payfast_validate_url: str | None = None
    payfast_validate_timeout_seconds: float = Field(default=10.0, gt=0)
    # PayFast's subscription API (payfast-subscriptions.md); sandbox mode adds `testing=true`.
    payfast_api_url: str | None = None
    payfast_api_timeout_seconds: float = Field(default=10.0, gt=0)
    payfast_source_ranges: CommaList = PAYFAST_SOURCE_RANGES
    trusted_proxies: CommaList = ()
    plans_file: Path | None = None

    workers: int = Field(default=1, ge=0, le=32)
    worker_poll_seconds: float = Field(default=0.2, gt=0)
    visibility_timeout_seconds: float = Field(default=60.0, gt=0)
    retry_base_seconds: float = Field(default=1.0, ge=0)
    retry_factor: float = Field(default=2.0, ge=1)
    retry_cap_seconds: float = Field(default=300.0, ge=0)
    retry_max_attempts: int = Field(default=5, ge=1)
    # A job nobody has touched for this long is in no worker's hands (provisioning.sweep), and the
    # embedded worker looks for such jobs this often; a soak shortens both to heal within seconds.
    stalled_after_seconds: float = Field(default=900.0, gt=0)
    stalled_sweep_seconds: float = Field(default=300.0, gt=0)
    # The weekly audit (runbook.audit_schedule): a full audit that refreshes the findings index,
    # run by the embedded server and workers when the last one is this old (0: never scheduled).
    audit_interval_hours: float = Field(default=168.0, ge=0)
    audit_check_seconds: float = Field(default=300.0, gt=0)
    # The tenant lifecycle (shared/design/tenant-lifecycle.md): its periods, and how often the
    # embedded worker's sweep applies what is due and delivers the notices moves queued.
    grace_days: int = Field(default=7, ge=0)
    suspended_days: int = Field(default=30, ge=0)
    retention_days: int = Field(default=90, ge=0)
    lifecycle_sweep_seconds: float = Field(default=300.0, gt=0)
    notice_poll_seconds: float = Field(default=5.0, gt=0)
    # Lifecycle events for the Site Builder application: Standard Webhooks to this URL, signed with
    # this `whsec_...` secret (embedded), or EventBridge PutEvents on this bus (AWS). No URL: the
    # events are kept as delivered to no one.
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    event_bus_name: str | None = None
    # The service API's keys are kept as HMAC-SHA256 digests keyed with this pepper (at least 32
    # characters). Embedded, it defaults to a random one made once under TENANCY_HOME/keys; on
    # AWS every function must share it, so it must be set.
    service_key_pepper: SecretStr | None = None
    # On AWS, where the secrets above (PayFast's key and passphrase, the webhook secret, the alert
    # keys, the pepper) are read: SecureString parameters in SSM Parameter Store under this path,
    # e.g. /site-builder/dev/ (adapters.aws.secrets), kept this many seconds before being read
    # again so that a rotated value is picked up without a redeploy. Unset: the settings hold them.
    secrets_path: str | None = None
    secrets_max_age_seconds: float = Field(default=300.0, ge=0, le=86400)
    # TEST-ONLY fault injection (tenancy.faults), e.g. `crash_after:identity_user:once`; never set it
    # in a deployment. The reliability suite crashes and slows real worker processes with it, and
    # the soak makes mail, Cognito, the stores and the queue fail at a rate (`rate:store_throttled:0.02`).
    faults: str = ""

    # Throttles (README "Reliability"): login failures per account and per source, ITNs per source.
    login_max_failures_per_account: int = Field(default=5, ge=1)
    login_max_failures_per_source: int = Field(default=20, ge=1)
    login_lockout_seconds: int = Field(default=900, ge=1)
    # Failures of one account from every address before its sign-ins start to wait (never a lock).
    login_slow_down_after: int = Field(default=10, ge=1)
    login_max_delay_seconds: float = Field(default=8.0, ge=0, le=60)
    # Server-side sign-in sessions: a browser's, and an API client's refresh-token family.
    session_hours: int = Field(default=12, ge=1, le=24 * 30)
    refresh_token_days: int = Field(default=30, ge=1, le=3650)
    itn_max_per_minute_per_source: int = Field(default=300, ge=1)

    token_ttl_seconds: int = Field(default=3600, gt=0)
    temporary_password_ttl_days: int = Field(default=7, gt=0)
    challenge_ttl_seconds: int = Field(default=180, gt=0)
    token_audience: str = "tenancy"  # noqa: S105 - an audience, not a secret
    token_issuer: str | None = None
    password_hash_time_cost: int = Field(default=3, ge=1)
    password_hash_memory_kib: int = Field(default=65536, ge=8)

    # The AWS backend (README "AWS"): names from shared/spec/data-contract.md.
    aws_region: str = Field(
        default="eu-west-1", validation_alias=AliasChoices("TENANCY_AWS_REGION", "AWS_REGION", "AWS_DEFAULT_REGION")
    )
    tenants_table: str = "tenants"
    users_table: str = "users"
    provisioning_table: str = "provisioning"
    payments_table: str = "payments"
    repairs_table: str = "repairs"
    mail_log_table: str = "mail-log"
    rate_limits_table: str = "rate-limits"
    sessions_table: str = "sessions"
    findings_table: str = "findings"
    subscriptions_table: str = "subscriptions"
    lifecycle_table: str = "lifecycle"
    usage_answers_table: str = "usage-answers"
    service_keys_table: str = "service-keys"
    invitations_table: str = "invitations"
    # Development against moto only: keep temporary passwords in the SES mail log (no inbox there).
    mail_log_keeps_secrets: bool = False
    queue_url: str | None = None
    dlq_url: str | None = None
    user_pool_id: str | None = None
    user_pool_client_id: str | None = None
    cognito_jwks_url: str | None = None

    # `tenancy alerts` and /metrics (README "Alerts and metrics").
    alert_window_minutes: int = Field(default=60, gt=0)
    alert_error_rate: float = Field(default=0.2, ge=0, le=1)
    alert_error_rate_min_jobs: int = Field(default=5, ge=1)
    alert_failures_threshold: int = Field(default=3, ge=0)
    alert_security_threshold: int = Field(default=5, ge=0)
    alert_unresolved_minutes: int = Field(default=60, gt=0)
    alert_suspensions_per_day: int = Field(default=10, ge=0)
    alert_routes: AlertRoutes = Field(default_factory=lambda: dict(DEFAULT_ALERT_ROUTES))
    alert_email_to: str | None = None
    alert_slack_webhook_url: SecretStr | None = None
    alert_pagerduty_url: str = "https://events.pagerduty.com/v2/enqueue"
    alert_pagerduty_routing_key: SecretStr | None = None
    alert_http_timeout_seconds: float = Field(default=5.0, gt=0)
    # `tenancy serve` runs the `alerts watch` loop in a thread this often; 0 or
    # TENANCY_ALERT_WATCH=false turns it off (run `tenancy alerts watch` elsewhere instead).
    alert_watch: bool = True
    alert_watch_seconds: float = Field(default=60.0, ge=0, le=86400)
    # /metrics (README "Alerts and metrics"): with a token, every scrape must send
    # `Authorization: Bearer <token>`; without one, only loopback clients are answered.
    metrics_token: SecretStr | None = None
    # One computation serves every scrape within this many seconds (concurrent scrapes share it).
    metrics_cache_seconds: float = Field(default=5.0, ge=0, le=300)
    # /docs and /redoc (Swagger UI and ReDoc, whose scripts come from a CDN): off unless set.
    api_docs: bool = False

    @field_validator("payfast_source_ranges", "trusted_proxies", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("payfast_source_ranges", "trusted_proxies")
    @classmethod
    def _valid_networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for cidr in value:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ValueError(f"{cidr!r} is not an IP address or CIDR range") from None
        return value

    @field_validator("alert_routes", mode="before")
    @classmethod
    def _parse_routes(cls, value: object) -> object:
        """`engineering=slack,finance=email+log,...`: targets not named keep only the log."""
        if not isinstance(value, str):
            return value
        routes: dict[str, tuple[str, ...]] = {}
        for part in filter(None, (piece.strip() for piece in value.split(","))):
            target, _, destinations = part.partition("=")
            routes[target.strip()] = tuple(name.strip() for name in destinations.split("+") if name.strip())
        return routes

    @field_validator("alert_routes")
    @classmethod
    def _known_routes(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for target, destinations in value.items():
            if target not in ALERT_TARGETS:
                raise ValueError(f"unknown alert target {target[:40]!r} (known: {', '.join(ALERT_TARGETS)})")
            unknown = [name for name in destinations if name not in ALERT_DESTINATIONS]
            if unknown:
                known = ", ".join(ALERT_DESTINATIONS)
                raise ValueError(f"unknown alert destination {unknown[0][:40]!r} (known: {known})")
        return value

    @field_validator(
        "alert_email_to",
        "alert_slack_webhook_url",
        "alert_pagerduty_routing_key",
        "metrics_token",
        "service_key_pepper",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("metrics_token")
    @classmethod
    def _long_metrics_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().strip()) < 16:
            raise ValueError("TENANCY_METRICS_TOKEN must be at least 16 characters (e.g. `openssl rand -hex 32`)")
        return value

    @field_validator("service_key_pepper")
    @classmethod
    def _long_pepper(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().strip()) < 32:
            raise ValueError("TENANCY_SERVICE_KEY_PEPPER must be at least 32 characters (e.g. `openssl rand -hex 32`)")
        return value

    @field_validator("secrets_path", mode="before")
    @classmethod
    def _absolute_secrets_path(cls, value: object) -> object:
        if value == "":
            return None
        if isinstance(value, str) and not value.startswith("/"):
            raise ValueError("TENANCY_SECRETS_PATH must be an SSM path starting with /, e.g. /site-builder/dev/")
        return value

    @field_validator("support_email", mode="before")
    @classmethod
    def _plain_support_address(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip() or None
        if isinstance(value, str) and (value.count("@") != 1 or any(c.isspace() or c in '<>"' for c in value)):
            raise ValueError("TENANCY_SUPPORT_EMAIL must be a plain email address, e.g. support@example.com")
        return value

    @field_validator("faults")
    @classmethod
    def _valid_faults(cls, value: str) -> str:
        Faults.parse(value)
        return value

    @field_validator("webhook_secret", mode="before")
    @classmethod
    def _webhook_secret_shape(cls, value: object) -> object:
        if value == "":
            return None
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if isinstance(text, str) and not text.startswith("whsec_"):
            # The value itself is never echoed: it is a secret even when malformed.
            raise ValueError("TENANCY_WEBHOOK_SECRET must be a Standard Webhooks secret: whsec_ and base64")
        return value

    @field_validator("payfast_passphrase", mode="before")
    @classmethod
    def _blank_passphrase_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _live_needs_own_credentials(self) -> Settings:
        # Secrets read from SSM are not here yet: bootstrap checks them once read (`secrets_problem`).
        problem = None if self.secrets_in_ssm else self.secrets_problem()
        if problem is not None:
            raise ValueError(problem)
        return self

    def secrets_problem(self) -> str | None:
        """Why these secrets cannot work (live mode on sandbox credentials, a webhook without its
        secret), or None."""
        if self.payfast_mode is PayfastMode.LIVE:
            if self.payfast_passphrase is None:
                return "TENANCY_PAYFAST_PASSPHRASE is required in live mode"
            if (
                self.payfast_merchant_id == PAYFAST_SANDBOX_MERCHANT_ID
                or self.payfast_merchant_key.get_secret_value() == PAYFAST_SANDBOX_MERCHANT_KEY
                or self.payfast_passphrase.get_secret_value() == PAYFAST_SANDBOX_PASSPHRASE
            ):
                return "live mode refuses PayFast's public sandbox credentials; set your own"
        if self.webhook_url and self.webhook_secret is None:
            return "TENANCY_WEBHOOK_URL needs TENANCY_WEBHOOK_SECRET (whsec_...) to sign its events"
        return None

    @property
    def effective_secrets_path(self) -> str:
        """TENANCY_SECRETS_PATH, or the path `tenancy aws bootstrap` and the SAM template use."""
        return self.secrets_path or f"/site-builder/{self.env}/"

    @property
    def secrets_in_ssm(self) -> bool:
        """On AWS with TENANCY_SECRETS_PATH: the secrets come from SSM Parameter Store, not from here."""
        return self.backend is Backend.AWS and self.secrets_path is not None

    @property
    def effective_event_bus_name(self) -> str:
        """The EventBridge bus lifecycle events go to on AWS (the SAM template makes it)."""
        return self.event_bus_name or f"site-builder-{self.env}-tenants"

    def function_name(self, role: str) -> str:
        """`site-builder-{env}-itn-handler` / `site-builder-{env}-provisioning` (data contract)."""
        return f"site-builder-{self.env}-{role}"

    def log_group(self, role: str) -> str:
        return f"/aws/lambda/{self.function_name(role)}"

    @property
    def effective_cognito_jwks_url(self) -> str:
        if self.cognito_jwks_url:
            return self.cognito_jwks_url
        return f"https://cognito-idp.{self.aws_region}.amazonaws.com/{self.user_pool_id}/.well-known/jwks.json"

    @property
    def fault_plan(self) -> Faults:
        return Faults.parse(self.faults)

    @property
    def alert_watch_interval(self) -> float:
        """Seconds between the server's alert checks; 0 when its watcher is off."""
        return self.alert_watch_seconds if self.alert_watch else 0.0

    @property
    def database_path(self) -> Path:
        return self.home / "tenancy.db"

    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def public_base_url(self) -> str:
        return (self.public_url or self.base_url).rstrip("/")

    @property
    def effective_login_url(self) -> str:
        return self.login_url or f"{self.public_base_url}/auth/login"

    @property
    def effective_support_email(self) -> str:
        """TENANCY_SUPPORT_EMAIL, or support@ the domain of TENANCY_EMAIL_FROM."""
        if self.support_email:
            return self.support_email
        return f"support@{parseaddr(self.email_from)[1].rpartition('@')[2] or 'localhost'}"

    @property
    def effective_token_issuer(self) -> str:
        return self.token_issuer or self.base_url

    @property
    def effective_validate_url(self) -> str:
        if self.payfast_validate_url:
            return self.payfast_validate_url
        return _VALIDATE_URLS["live" if self.payfast_mode is PayfastMode.LIVE else "sandbox"]

    @property
    def effective_payfast_api_url(self) -> str:
        """TENANCY_PAYFAST_API_URL, or PayFast's own (one host for live and sandbox)."""
        return (self.payfast_api_url or _PAYFAST_API_URL).rstrip("/")

    @property
    def payfast_process_url(self) -> str:
        return _PROCESS_URLS["live" if self.payfast_mode is PayfastMode.LIVE else "sandbox"]

    @property
    def passphrase(self) -> str | None:
        return None if self.payfast_passphrase is None else self.payfast_passphrase.get_secret_value()
