"""Settings, read from the environment and an optional `.env` file (pydantic-settings).

Most names carry the `MLS_SYNC_` prefix; `DATABASE_URL` and `CRON_SECRET` are also read bare,
because that is how hosting platforms and the product spec name them.
"""

from __future__ import annotations

from enum import StrEnum
from functools import cached_property
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="MLS_SYNC_", env_file=".env", extra="ignore", populate_by_name=True
    )

    environment: Environment = Environment.DEVELOPMENT
    data_dir: Path = Field(default=Path("data"), description="SQLite file and dev key live here")
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "MLS_SYNC_DATABASE_URL"),
        description="SQLAlchemy URL; unset means a SQLite file in data_dir",
    )
    token_keys: SecretStr | None = Field(
        default=None,
        description="Fernet keys, comma-separated, newest first (MultiFernet); unset in "
        "development generates one into data_dir",
    )
    cron_secret: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("CRON_SECRET", "MLS_SYNC_CRON_SECRET")
    )

    # MLS side
    mls_batch_size: int = Field(default=50, ge=1, le=500)
    mls_timeout_seconds: float = Field(default=30.0, gt=0)
    mls_requests_per_second: float = Field(
        default=2.0, gt=0, description="per MLS credential; MLS Grid suspends tokens above 2/s"
    )
    mls_concurrency: int = Field(default=4, ge=1, description="batches in flight per connection")

    # Platform side: every base URL is configurable so the sandbox and tests can stand in.
    facebook_graph_url: str = "https://graph.facebook.com"
    facebook_api_version: str = "v21.0"
    linkedin_api_url: str = "https://api.linkedin.com"
    linkedin_api_version: str = "202411"
    x_api_url: str = "https://api.x.com"
    platform_timeout_seconds: float = Field(default=20.0, gt=0)
    unpublish_max_attempts: int = Field(default=8, ge=1)
    unpublish_backoff_seconds: float = Field(default=60.0, gt=0)

    log_format: str = Field(default="auto", pattern="^(auto|console|json)$")
    log_level: str = "INFO"

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        scheme = value.split("://", 1)[0]
        if "://" not in value or not scheme.startswith(("sqlite", "postgresql", "postgres")):
            raise ValueError(
                "DATABASE_URL must look like sqlite:///path.db or postgresql://user@host/db"
            )
        return value

    @model_validator(mode="after")
    def _production_needs_real_secrets(self) -> Settings:
        if self.environment is Environment.PRODUCTION and self.token_keys is None:
            raise ValueError("MLS_SYNC_TOKEN_KEYS must be set in production")
        return self

    @cached_property
    def async_database_url(self) -> str:
        """The URL with the async driver SQLAlchemy needs (aiosqlite / asyncpg)."""
        url = self.database_url or f"sqlite:///{(self.data_dir / 'mls-sync.db').resolve()}"
        return to_async_url(url)


def to_async_url(url: str) -> str:
    scheme, rest = url.split("://", 1)
    if scheme in ("sqlite", "sqlite+aiosqlite"):
        return f"sqlite+aiosqlite://{rest}"
    if scheme in ("postgres", "postgresql", "postgresql+asyncpg", "postgresql+psycopg"):
        return f"postgresql+asyncpg://{rest}"
    return url
