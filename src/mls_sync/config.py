"""Settings, read from the environment and an optional `.env` file (pydantic-settings).

Most names carry the `MLS_SYNC_` prefix; `DATABASE_URL` and `CRON_SECRET` are also read bare,
because that is how hosting platforms and the product spec name them.
"""

from __future__ import annotations

from enum import StrEnum
from functools import cached_property
from pathlib import Path

from apscheduler.triggers.cron import CronTrigger
from cryptography.fernet import Fernet
from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mls_sync.egress import EgressPolicy

# The platforms' current API versions; social/versions.py holds their sunset dates and a test
# keeps the two in step (this module imports nothing of ours).
GRAPH_DEFAULT = "v25.0"
LINKEDIN_DEFAULT = "202609"


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="MLS_SYNC_", env_file=".env", extra="ignore", populate_by_name=True
    )

    environment: Environment = Field(
        default=Environment.DEVELOPMENT,
        description="development or production; production refuses to start without "
        "MLS_SYNC_TOKEN_KEYS",
    )
    data_dir: Path = Field(
        default=Path("data"),
        description="where the default SQLite file and the development token key live",
    )
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "MLS_SYNC_DATABASE_URL"),
        description="SQLAlchemy URL, or dynamodb://PREFIX?region=...; unset means a SQLite "
        "file in data_dir",
    )
    token_keys: SecretStr | None = Field(
        default=None,
        description="Fernet keys, comma-separated, newest first (MultiFernet); unset in "
        "development generates one into data_dir",
    )
    cron_secret: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("CRON_SECRET", "MLS_SYNC_CRON_SECRET"),
        description="bearer secret of POST /api/cron/sync-mls-status, compared in constant "
        "time, at least 32 characters in production; unset: the cron endpoint answers 503",
    )

    admin_api_key: SecretStr | None = Field(
        default=None,
        description="the operator's bearer key for /api/admin/* (the shared MLS feeds), "
        "compared in constant time; unset: those routes answer 503",
    )

    metrics_token: SecretStr | None = Field(
        default=None,
        description="bearer token GET /metrics asks for (Prometheus: `authorization: "
        "{credentials_file: ...}`); unset: /metrics is open, for a private network only",
    )
    auth_failures_per_minute: int = Field(
        default=20,
        ge=0,
        le=10_000,
        description="refused API keys, cron secrets, admin keys, metrics tokens and dashboard "
        "sign-ins per client address per minute; then that address is answered 429 with "
        "Retry-After until the minute's oldest refusal passes; 0 turns the throttle off",
    )

    # Egress: where the service connects on users' behalf (mls_sync/egress.py)
    egress_allow: str = Field(
        default="",
        description="hosts, host:port pairs and CIDR networks (comma-separated) that MLS base "
        "and token URLs may reach although private or local, e.g. an MLS inside the VPC; "
        "everything public is allowed, nothing private unless named here",
    )
    egress_allow_loopback: bool | None = Field(
        default=None,
        description="whether MLS URLs may reach loopback (127.0.0.1, ::1); unset: yes in "
        "development (the sandbox, the demo), no in production",
    )

    # MLS side
    mls_batch_size: int = Field(
        default=50,
        ge=1,
        le=500,
        description="keys per MLS lookup request (a reconciliation's refetch of records the "
        "local copy lacks; a profile's batch_size may lower it)",
    )
    mls_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        le=600,
        description="per MLS request, from the first byte sent to the last one read (an MLS "
        "that drips its answer cannot hold a run); a timed-out request is not retried in the "
        "run, the next run asks again",
    )
    connection_run_seconds: float = Field(
        default=600.0,
        ge=1,
        le=86400,
        description="the longest one feed's run may take (its MLS requests and its posts' "
        "deletes); then it is cancelled, recorded as failed and its lease released: committed "
        "pages stay, the next run goes on from them",
    )
    mls_requests_per_second: float = Field(
        default=2.0,
        ge=0.1,
        le=1000,
        description="MLS requests per second per credential (spaced, no burst); MLS Grid "
        "suspends tokens above 2/s",
    )
    mls_requests_per_hour: int | None = Field(
        default=7200,
        ge=1,
        description="MLS requests per hour per credential, unless the profile is stricter",
    )
    mls_requests_per_day: int | None = Field(
        default=40000,
        ge=1,
        description="MLS requests per day per credential, unless the profile is stricter",
    )
    mls_budget_max_wait_seconds: float = Field(
        default=30.0, ge=0, le=600, description="longer waits for a budget slot fail the request"
    )
    mls_full_check_hours: float = Field(
        default=24.0,
        gt=0,
        description="a reconciliation of each feed this often (a key-only pull of the feed, "
        "then a local comparison of held listings: no per-listing requests)",
    )
    mls_clock_skew_seconds: float = Field(
        default=300.0, ge=0, description="the replication bookmark stays this far behind"
    )
    mls_retry_attempts: int = Field(
        default=3, ge=1, description="attempts in all of one MLS request (5xx, 429, network)"
    )
    mls_retry_backoff_seconds: float = Field(
        default=0.5,
        ge=0,
        description="first delay of the exponential backoff (full jitter) between attempts "
        "of an MLS request",
    )
    mls_max_retry_after_seconds: float = Field(
        default=60.0,
        ge=0,
        description="a 429 whose Retry-After is longer than this fails the request "
        "instead of waiting",
    )

    # Platform side: every base URL is configurable so the sandbox and tests can stand in.
    # API versions are retired by the platforms (social/versions.py has the published dates;
    # `mls-sync doctor` checks them): a retired one defers deletes and alerts until changed.
    facebook_graph_url: str = Field(
        default="https://graph.facebook.com",
        description="Facebook Graph API host (also Instagram with Facebook Login)",
    )
    facebook_api_version: str = Field(
        default=GRAPH_DEFAULT,
        pattern=r"^v\d+\.\d+$",
        description="Graph API version for Facebook Pages and Instagram with Facebook Login",
    )
    linkedin_api_url: str = Field(
        default="https://api.linkedin.com",
        description="LinkedIn REST API host",
    )
    linkedin_api_version: str = Field(
        default=LINKEDIN_DEFAULT,
        pattern=r"^\d{6}(\.\d{2})?$",
        description="LinkedIn-Version header (YYYYMM); each is served about one year",
    )
    x_api_url: str = Field(default="https://api.x.com", description="X API host")
    # Token endpoints and this application's OAuth clients, per platform (docs/platforms.md).
    # A platform without a client id cannot refresh tokens; its jobs wait, connections stay.
    facebook_app_id: str | None = Field(
        default=None,
        description="this application's Facebook app id, for fb_exchange_token",
    )
    facebook_app_secret: SecretStr | None = Field(
        default=None,
        description="Facebook app secret, used only for fb_exchange_token",
    )
    instagram_graph_url: str = Field(
        default="https://graph.instagram.com",
        description="Instagram Login API host",
    )
    instagram_api_version: str = Field(
        default=GRAPH_DEFAULT,
        pattern=r"^v\d+\.\d+$",
        description="Graph API version on graph.instagram.com (Instagram Login)",
    )
    instagram_token_url: str = Field(
        default="https://graph.instagram.com/refresh_access_token",
        description="Instagram Login token refresh endpoint",
    )
    linkedin_token_url: str = Field(
        default="https://www.linkedin.com/oauth/v2/accessToken",
        description="LinkedIn OAuth token endpoint",
    )
    linkedin_client_id: str | None = Field(
        default=None,
        description="this application's LinkedIn OAuth client id",
    )
    linkedin_client_secret: SecretStr | None = Field(
        default=None,
        description="LinkedIn OAuth client secret",
    )
    x_token_url: str = Field(
        default="https://api.x.com/2/oauth2/token",
        description="X OAuth 2.0 token endpoint",
    )
    x_client_id: str | None = Field(
        default=None,
        description="this application's X OAuth 2.0 client id",
    )
    x_client_secret: SecretStr | None = Field(
        default=None, description="unset for a public (PKCE-only) X client"
    )
    google_business_api_url: str = Field(
        default="https://mybusiness.googleapis.com",
        description="Google Business Profile API host",
    )
    google_token_url: str = Field(
        default="https://oauth2.googleapis.com/token",
        description="Google OAuth token endpoint",
    )
    google_client_id: str | None = Field(
        default=None,
        description="this application's Google OAuth client id",
    )
    google_client_secret: SecretStr | None = Field(
        default=None,
        description="Google OAuth client secret",
    )
    pinterest_api_url: str = Field(
        default="https://api.pinterest.com",
        description="Pinterest API host",
    )
    pinterest_token_url: str = Field(
        default="https://api.pinterest.com/v5/oauth/token",
        description="Pinterest OAuth token endpoint",
    )
    pinterest_client_id: str | None = Field(
        default=None,
        description="this application's Pinterest app id",
    )
    pinterest_client_secret: SecretStr | None = Field(
        default=None,
        description="Pinterest app secret",
    )
    tiktok_token_url: str = Field(
        default="https://open.tiktokapis.com/v2/oauth/token/",
        description="TikTok OAuth token endpoint",
    )
    tiktok_client_key: str | None = Field(
        default=None,
        description="this application's TikTok client key",
    )
    tiktok_client_secret: SecretStr | None = Field(default=None, description="TikTok client secret")
    platform_concurrency: int = Field(
        default=4, ge=1, description="deletes in flight per platform (each platform's own cap)"
    )
    platform_timeout_seconds: float = Field(
        default=20.0, gt=0, description="per platform request (deletes, refreshes, probes)"
    )
    # No attempt limit: a transiently failing delete is retried, backing off to 6 h, for as
    # long as it fails, because giving up would leave a sold listing advertised; stuck jobs
    # show on the dashboard and in /metrics (outbox depth, oldest job age) instead.
    unpublish_backoff_seconds: float = Field(
        default=60.0,
        gt=0,
        description="first retry delay of an unpublish job; doubles per attempt, at most 6 h",
    )
    # Tokens kept alive until the sale (sync/token_care.py), after every run over everyone.
    platform_token_warn_days: float = Field(
        default=7.0,
        gt=0,
        description="a token that cannot be refreshed and expires within this many days "
        "alerts (MlsSyncPlatformTokenExpiring) and shows on the dashboard",
    )
    platform_token_check_hours: float = Field(
        default=24.0,
        gt=0,
        description="each platform connection's tokens are refreshed or verified this often",
    )

    log_format: str = Field(
        default="auto",
        pattern="^(auto|console|json)$",
        description="console, json, or auto: console on a terminal, JSON lines otherwise",
    )
    log_level: str = Field(
        default="INFO", description="DEBUG, INFO, WARNING or ERROR (structlog, stderr)"
    )
    # CloudWatch Embedded Metric Format: one JSON line on stdout per run over every connection
    # (aws/emf.py), which CloudWatch Logs turns into metrics.
    emf_enabled: bool | None = Field(
        default=None, description="unset: on when running on AWS Lambda, off elsewhere"
    )
    emf_namespace: str = Field(
        default="MlsStatusSync",
        min_length=1,
        max_length=255,
        pattern=r"^[A-Za-z0-9 ._/#:-]+$",
        description="CloudWatch namespace of the EMF metrics (AWS/ is reserved for AWS)",
    )
    emf_dimensions: dict[str, str] = Field(
        default_factory=lambda: {"Service": "mls-sync"},
        description="dimension name -> value on every EMF metric, as JSON in the environment",
    )
    emf_per_connection: bool = Field(
        default=False,
        description="also one EMF line per connection, with a ConnectionId dimension "
        "(one custom metric set per connection: mind the cost)",
    )

    # Alerts after each run (observability/alerts.py; deploy/prometheus/alerts.yml uses the
    # same thresholds): to the log always, and to a webhook (JSON with a Slack `text`) if set.
    alert_error_rate: float = Field(
        default=0.10, ge=0, le=1, description="errors per listing checked above which a run alerts"
    )
    alert_run_seconds: float = Field(
        default=300.0, gt=0, description="a run longer than this alerts"
    )
    alert_webhook_url: SecretStr | None = Field(
        default=None, description="POST target of alerts (e.g. a Slack incoming webhook)"
    )
    alert_webhook_timeout_seconds: float = Field(
        default=5.0, gt=0, description="per alert webhook POST; a failure never fails the run"
    )

    # The service (`mls-sync serve`): where it listens and when its embedded scheduler syncs.
    api_host: str = Field(
        default="127.0.0.1", description="where `serve` listens (0.0.0.0 in a container)"
    )
    api_port: int = Field(default=8000, ge=1, le=65535, description="where `serve` listens")
    api_max_body_bytes: int = Field(
        default=1_048_576, ge=1024, description="larger request bodies are refused with 413"
    )
    schedule_cron: str = Field(
        default="*/15 * * * *",
        description="crontab expression (5 fields), or 6 with a leading seconds field; "
        "in the machine's time zone; day-of-week by name (mon-fri)",
    )
    scheduler_enabled: bool = Field(
        default=True, description="false where an external cron calls the endpoint instead"
    )
    shutdown_grace_seconds: float = Field(
        default=30.0, ge=0, description="how long SIGTERM lets a running sync finish"
    )
    # The dashboard at `/` (api/dashboard.py): users sign in with their API key.
    dashboard_session_secret: SecretStr | None = Field(
        default=None,
        description="signs the dashboard's sign-in cookies; unset: derived from the first "
        "token key (rotating that key then signs everyone out)",
    )
    dashboard_session_hours: float = Field(
        default=12.0, gt=0, description="a dashboard sign-in lasts this long"
    )
    dashboard_refresh_seconds: float = Field(
        default=10.0, gt=0, description="an open dashboard reloads its data this often"
    )
    # One run per feed across processes: a lease row in the database (sync/guard.py).
    lease_ttl_seconds: float = Field(
        default=60.0, gt=0, description="a dead holder's lease is taken over after this long"
    )
    lease_renew_seconds: float = Field(
        default=20.0, gt=0, description="a live holder renews its lease this often (< ttl)"
    )
    # Scale-out (worker/): who runs a sync, and the workers' own cadences.
    executor: str = Field(
        default="inline",
        pattern="^(inline|procrastinate)$",
        description="inline: syncs run in the process that asks; procrastinate: deferred "
        "to `mls-sync worker` processes on the same PostgreSQL",
    )
    shared_rate_limits: bool | None = Field(
        default=None,
        description="MLS budgets in a PostgreSQL row shared by every process; unset: on "
        "with the procrastinate executor",
    )
    worker_concurrency: int = Field(default=4, ge=1, description="jobs at once per worker")
    worker_retry_attempts: int = Field(
        default=8, ge=1, description="attempts of a job failing with a transient error"
    )
    worker_heartbeat_seconds: float = Field(
        default=10.0, gt=0, description="a worker proves it is alive this often"
    )
    worker_stalled_seconds: float = Field(
        default=30.0, gt=0, description="a worker silent this long is dead: its jobs are retried"
    )
    worker_stalled_check_cron: str = Field(
        default="* * * * *", description="how often workers look for jobs of dead workers"
    )

    @field_validator("schedule_cron")
    @classmethod
    def _valid_schedule(cls, value: str) -> str:
        cron_trigger(value)  # raises ValueError with the reason
        return value.strip()

    @field_validator("emf_namespace")
    @classmethod
    def _not_an_aws_namespace(cls, value: str) -> str:
        if value.startswith("AWS/"):
            raise ValueError("emf_namespace: the AWS/ prefix is reserved for AWS services")
        return value

    @field_validator("emf_dimensions")
    @classmethod
    def _valid_emf_dimensions(cls, value: dict[str, str]) -> dict[str, str]:
        # EMF allows 30 keys per dimension set; one stays free for ConnectionId.
        if not 1 <= len(value) <= 29:
            raise ValueError("emf_dimensions needs between 1 and 29 dimensions")
        for name, dim in value.items():
            if not (0 < len(name) <= 250 and 0 < len(dim) <= 1024) or name.startswith(":"):
                raise ValueError(f"emf_dimensions: {name!r}: {dim!r} is not a valid dimension")
        return value

    @field_validator("token_keys")
    @classmethod
    def _valid_token_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        for key in value.get_secret_value().split(","):
            if key.strip():
                try:
                    Fernet(key.strip().encode())
                except (ValueError, TypeError):
                    raise ValueError(
                        "MLS_SYNC_TOKEN_KEYS holds a key that is not a valid Fernet key "
                        "(32 url-safe base64-encoded bytes; `mls-sync keys generate` makes one)"
                    ) from None
        return value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        scheme = value.split("://", 1)[0]
        if scheme == "dynamodb":
            from mls_sync.database_url import parse_dynamodb_url

            parse_dynamodb_url(value)  # DynamoUrlError is a ValueError: one clear message
            return value
        if "://" not in value or not scheme.startswith(("sqlite", "postgresql", "postgres")):
            raise ValueError(
                "DATABASE_URL must look like sqlite:///path.db, postgresql://user@host/db "
                "or dynamodb://TABLE_PREFIX?region=..."
            )
        return value

    @model_validator(mode="after")
    def _lease_renewed_before_it_expires(self) -> Settings:
        if self.lease_renew_seconds >= self.lease_ttl_seconds:
            raise ValueError(
                "MLS_SYNC_LEASE_RENEW_SECONDS must be below MLS_SYNC_LEASE_TTL_SECONDS"
            )
        return self

    @field_validator("worker_stalled_check_cron")
    @classmethod
    def _valid_stalled_check(cls, value: str) -> str:
        cron_trigger(value)
        return value.strip()

    @model_validator(mode="after")
    def _workers_need_postgres(self) -> Settings:
        if self.executor == "procrastinate" and not self.async_database_url.startswith(
            "postgresql"
        ):
            raise ValueError("MLS_SYNC_EXECUTOR=procrastinate needs DATABASE_URL on PostgreSQL")
        return self

    @model_validator(mode="after")
    def _shared_limits_need_sql(self) -> Settings:
        if self.shared_rate_limits and self.async_database_url.startswith("dynamodb://"):
            raise ValueError(
                "MLS_SYNC_SHARED_RATE_LIMITS needs DATABASE_URL on PostgreSQL; "
                "it is not available with the DynamoDB backend"
            )
        return self

    @cached_property
    def egress_policy(self) -> EgressPolicy:
        """Where MLS requests may go: public addresses, what MLS_SYNC_EGRESS_ALLOW names,
        loopback in development; https only in production."""
        production = self.environment is Environment.PRODUCTION
        loopback = (
            not production if self.egress_allow_loopback is None else self.egress_allow_loopback
        )
        return EgressPolicy.parse(self.egress_allow, allow_loopback=loopback, https_only=production)

    @field_validator("egress_allow")
    @classmethod
    def _valid_egress_allow(cls, value: str) -> str:
        EgressPolicy.parse(value, allow_loopback=False, https_only=False)  # a clear error at start
        return value

    @property
    def uses_shared_rate_limits(self) -> bool:
        """Budgets shared through PostgreSQL: asked for, or implied by the worker executor."""
        if self.shared_rate_limits is None:
            return self.executor == "procrastinate"
        return self.shared_rate_limits

    @model_validator(mode="after")
    def _production_needs_real_secrets(self) -> Settings:
        if self.environment is not Environment.PRODUCTION:
            return self
        if self.token_keys is None:
            raise ValueError("MLS_SYNC_TOKEN_KEYS must be set in production")
        if self.cron_secret is not None and len(self.cron_secret.get_secret_value()) < 32:
            # A short secret can be guessed over HTTP; `mls-sync keys generate` makes a good one.
            raise ValueError("CRON_SECRET must be at least 32 characters in production")
        return self

    @cached_property
    def async_database_url(self) -> str:
        """The URL with the async driver SQLAlchemy needs (aiosqlite / asyncpg)."""
        url = self.database_url or f"sqlite:///{(self.data_dir / 'mls-sync.db').resolve()}"
        return to_async_url(url)


def cron_trigger(expression: str) -> CronTrigger:
    """The scheduler's trigger for a crontab expression (5 fields), or 6 fields whose first is
    seconds (short schedules for tests and demos). Numeric days of the week are refused:
    crontab counts 0 = Sunday and APScheduler 0 = Monday, so a number would silently shift."""
    fields = expression.split()
    if len(fields) not in (5, 6):
        raise ValueError(
            f"schedule_cron needs 5 fields (minute hour day month day-of-week) or 6 with a "
            f"leading seconds field, got {len(fields)}: {expression!r}"
        )
    if any(ch.isdigit() for ch in fields[-1]):
        raise ValueError("schedule_cron: write the day-of-week field with names (mon-fri, sun)")
    second = fields[0] if len(fields) == 6 else "0"
    minute, hour, day, month, day_of_week = fields[-5:]
    try:
        return CronTrigger(
            second=second,
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=day_of_week,
        )
    except ValueError as exc:
        raise ValueError(f"schedule_cron {expression!r} is not valid: {exc}") from None


def to_async_url(url: str) -> str:
    scheme, rest = url.split("://", 1)
    if scheme in ("sqlite", "sqlite+aiosqlite"):
        return f"sqlite+aiosqlite://{rest}"
    if scheme in ("postgres", "postgresql", "postgresql+asyncpg", "postgresql+psycopg"):
        return f"postgresql+asyncpg://{rest}"
    return url
