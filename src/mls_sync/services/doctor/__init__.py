"""`mls-sync doctor` and `GET /api/doctor`: is this deployment able to do its job right now?

Each check answers one question with `pass`, `warn` or `fail` and a short detail a person can
act on: the settings load, the database is reachable and migrated, the token key is there and
decrypts what is stored, every MLS connection answers with its credentials, the platforms still
serve the API versions we send, and no platform token is about to lapse unnoticed.

Two rules shape the checks:
- MLS budgets are sacred (MLS Grid suspends tokens that go over): exactly one cheap request per
  connection, drawn from the connection's normal budget, and none for a connection already
  known to be expired.
- A report never holds a secret: details come from our own error messages, which never carry a
  credential, and MLS hosts are shown without their URL (which could embed one).

Nothing here prints: the edges (cli_doctor.py, api/doctor.py) render the `Check`s. The clock is
injected, so tests move time instead of waiting for it.

The checks live in `deployment` (settings, database, token key, stored secrets), `mls` (the
connections in scope, and one request per MLS connection) and `platforms` (API versions and
platform tokens); this module runs them in order and is what the edges import.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import httpx

from mls_sync.config import Settings
from mls_sync.egress import EgressTransport
from mls_sync.mls.client import ResoClient
from mls_sync.mls.transport import RetryPolicy
from mls_sync.services.doctor._text import _one_line, _utc
from mls_sync.services.doctor.checks import AnyDatabase, Check, Status
from mls_sync.services.doctor.deployment import (
    DATABASE_TIMEOUT_SECONDS,
    check_database,
    check_settings,
    check_stored_secrets,
    check_token_key,
    head_revision,
)
from mls_sync.services.doctor.mls import (
    MLS_CHECK_CONCURRENCY,
    PROBE_KEY,
    Holdings,
    MlsClientFor,
    RestCredential,
    check_mls_connections,
    check_mls_feed,
    load_holdings,
)
from mls_sync.services.doctor.platforms import (
    VERSION_WARN_DAYS,
    check_api_version,
    check_api_versions,
    check_platform_tokens,
    user_probe_tokens,
)
from mls_sync.social.base import PlatformClient
from mls_sync.social.registry import build_platform_clients, platform_configs
from mls_sync.store.crypto import SecretDecryptError, TokenCipher
from mls_sync.store.models import MlsFeed, User
from mls_sync.store.open import open_database
from mls_sync.sync.clients import ClientFactory, budgets_for
from mls_sync.sync.mls_logins import feed_login_stores
from mls_sync.sync.suspensions import suspend_credential

__all__ = [
    "DATABASE_TIMEOUT_SECONDS",
    "MLS_CHECK_CONCURRENCY",
    "PROBE_KEY",
    "VERSION_WARN_DAYS",
    "AnyDatabase",
    "Check",
    "Holdings",
    "MlsClientFor",
    "Status",
    "check_api_version",
    "check_api_versions",
    "check_database",
    "check_mls_connections",
    "check_mls_feed",
    "check_platform_tokens",
    "check_settings",
    "check_stored_secrets",
    "check_token_key",
    "diagnose",
    "diagnose_deployment",
    "diagnose_user",
    "head_revision",
    "is_ok",
    "load_holdings",
    "report",
    "user_probe_tokens",
]


def is_ok(checks: Iterable[Check]) -> bool:
    """No check failed (warnings do not make a deployment unhealthy)."""
    return all(check.status is not Status.FAIL for check in checks)


def report(checks: Sequence[Check]) -> dict[str, Any]:
    """`{"ok": bool, "checks": [{"name", "status", "detail"}]}`, what `--json` prints."""
    return {"ok": is_ok(checks), "checks": [check.to_wire() for check in checks]}


# the two entry points: the operator's whole deployment, and one user's own view


async def diagnose_deployment(
    load_settings: Callable[[], Settings] = Settings,
    *,
    now: datetime,
    user: str | None = None,
) -> list[Check]:
    """The operator's report (`mls-sync doctor`): settings from the environment, every user's
    connections (or one user's, by email or id), version probes without any user's token.

    It opens only what it checks, and not through `open_runtime`: the runtime would generate a
    development token key (hiding that none is configured) and start the executor, and a
    doctor must report a broken database rather than fail to open on it.
    """
    settings, settings_check = check_settings(load_settings)
    if settings is None:
        return [settings_check]  # the rest would only repeat that nothing can be read
    try:
        db = open_database(settings.async_database_url)
    except RuntimeError as exc:  # dynamodb:// without the optional extra installed
        return [settings_check, Check("database", Status.FAIL, _one_line(exc))]
    mls_http = httpx.AsyncClient(
        timeout=httpx.Timeout(settings.mls_timeout_seconds),
        transport=EgressTransport(settings.egress_policy, httpx.AsyncHTTPTransport()),
    )
    platform_http = httpx.AsyncClient(timeout=httpx.Timeout(settings.platform_timeout_seconds))
    try:
        key_cipher, _ = check_token_key(settings)  # `diagnose` reports on it
        factory = (
            ClientFactory(
                mls_http,
                key_cipher,
                budgets_for(settings, db),
                # One attempt: a doctor asks once; the sync's retries are for the sync.
                retry=RetryPolicy(attempts=1, max_retry_after=settings.mls_max_retry_after_seconds),
                batch_size=1,
                login_store=feed_login_stores(db, key_cipher),
            )
            if key_cipher is not None
            else None
        )

        def mls_client(feed: MlsFeed) -> ResoClient:
            if factory is None:
                raise SecretDecryptError("no token key is configured")
            return factory.build(feed)

        async def rest(feed: MlsFeed, until: datetime) -> None:
            if factory is not None:  # (a probe answered, so there is one)
                await suspend_credential(db, factory, feed, until)

        checks = await diagnose(
            settings,
            db,
            now=now,
            mls_client=mls_client,
            platform_clients=build_platform_clients(platform_http, platform_configs(settings)),
            cipher=key_cipher,
            user=user,
            rest=rest,
        )
        return [settings_check, *checks]
    finally:
        await mls_http.aclose()
        await platform_http.aclose()
        await db.dispose()


async def diagnose_user(
    user: User,
    *,
    settings: Settings,
    db: AnyDatabase,
    cipher: TokenCipher,
    mls_client: MlsClientFor,
    now: datetime,
    http: httpx.AsyncClient | None = None,
    rest: RestCredential | None = None,
) -> list[Check]:
    """One user's report (`GET /api/doctor`): their own MLS and platform connections only, and
    version probes with their own platform token where they have one. The edge passes the
    service's own pieces: its database, its cipher and its sync engine's `mls_client`, so the
    MLS request draws on the same budget as their syncs."""
    own_http = http is None
    platform_http = http or httpx.AsyncClient(
        timeout=httpx.Timeout(settings.platform_timeout_seconds)
    )
    try:
        checks = await diagnose(
            settings,
            db,
            now=now,
            mls_client=mls_client,
            platform_clients=build_platform_clients(platform_http, platform_configs(settings)),
            cipher=cipher,
            user=user.id,
            probe_with_user_tokens=True,
            deployment_checks=False,
            rest=rest,
        )
    finally:
        if own_http:
            await platform_http.aclose()
    return checks


async def diagnose(
    settings: Settings,
    db: AnyDatabase,
    *,
    now: datetime,
    mls_client: MlsClientFor,
    platform_clients: Mapping[str, PlatformClient],  # as `build_platform_clients` keys them
    cipher: TokenCipher | None = None,
    user: str | None = None,
    probe_with_user_tokens: bool = False,
    deployment_checks: bool = True,
    rest: RestCredential | None = None,
) -> list[Check]:
    """Checks 2 to 6 for valid settings. `cipher`: the one in use (the service's); None
    derives it from the settings without creating a key. `user` (id or email) limits the
    connection checks to that user's; `probe_with_user_tokens` sends their platform token
    with the version probes (the operator's probes go without one). Without
    `deployment_checks` (a user's own report) the database and token-key lines, which are the
    operator's business and name files and revisions, are left out."""
    checks: list[Check] = []
    database = await check_database(db)
    key_cipher, key_check = check_token_key(settings)
    if deployment_checks:
        checks.extend([database, key_check])
    cipher = cipher or key_cipher
    holdings: Holdings | None = None
    if database.status is not Status.FAIL:
        found = await load_holdings(db, user)
        if isinstance(found, Check):
            checks.append(found)
        else:
            holdings = found
    if holdings is not None:
        secrets = check_stored_secrets(cipher, holdings)
        if secrets is not None:
            checks.append(secrets)
        checks.extend(await check_mls_connections(holdings, mls_client, rest))
    tokens = user_probe_tokens(holdings, cipher) if probe_with_user_tokens and holdings else {}
    checks.extend(await check_api_versions(platform_clients, today=_utc(now).date(), tokens=tokens))
    if holdings is not None:
        checks.extend(
            check_platform_tokens(
                holdings,
                platform_clients,
                now=now,
                warn_days=settings.platform_token_warn_days,
            )
        )
    return checks
