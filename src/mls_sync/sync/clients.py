"""Builds the RESO client for a stored feed: its profile, credentials, auth and budget."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import httpx

from mls_sync.config import Settings
from mls_sync.mls.auth import (
    Authenticator,
    OAuth2ClientCredentials,
    StaticBearer,
    TokenCache,
    parse_credentials,
)
from mls_sync.mls.client import ResoClient
from mls_sync.mls.limits import Budgets, RateBudgets
from mls_sync.mls.logins import LOGIN_KINDS, LoginState, LoginStore, MemoryLoginStore, OAuth2Login
from mls_sync.mls.overrides import check_against, checked_overrides
from mls_sync.mls.profiles import LOOKUP_KEY_FIELDS, VendorProfile, resolve_profile
from mls_sync.mls.shared_limits import SharedRateBudgets
from mls_sync.mls.transport import MlsTransport, RetryPolicy
from mls_sync.store.crypto import SecretDecryptError, TokenCipher
from mls_sync.store.database import Database
from mls_sync.store.interface import Storage
from mls_sync.store.models import MlsFeed
from mls_sync.store.sql.rate_buckets import SqlRateBuckets


class ConnectionConfigError(ValueError):
    """The stored feed cannot be used as it is (unknown profile, missing credentials)."""


class ClientFactory:
    def __init__(
        self,
        http: httpx.AsyncClient,
        cipher: TokenCipher,
        budgets: Budgets,
        *,
        retry: RetryPolicy,
        batch_size: int,
        token_cache: TokenCache | None = None,
        login_store: Callable[[MlsFeed], LoginStore] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._http = http
        # Where a login that renews keeps its tokens (sync/mls_logins.py: the feed's row);
        # without one (a probe, unit tests) a renewal lives as long as the client.
        self._login_store = login_store
        self._clock = clock
        self._cipher = cipher
        self._budgets = budgets
        self._retry = retry
        self._batch_size = batch_size
        self._tokens = token_cache or TokenCache()

    def profile(self, feed: MlsFeed) -> VendorProfile:
        """The feed's vendor profile with its overrides, each type- and range-checked (a value
        stored before the rules, out of range, fails the run with a clear message). Who may
        set which is checked where they are set (services/feeds.py); the budget takes the
        stricter of the profile's rates and the operator's settings either way."""
        try:
            overrides = checked_overrides(feed.profile_overrides, operator=True)
            profile = resolve_profile(feed.provider, {**overrides, "auth_kind": feed.auth_kind})
            check_against(profile)
        except (ValueError, TypeError) as exc:
            raise ConnectionConfigError(f"MLS connection misconfigured: {exc}") from None
        return profile

    def build(self, feed: MlsFeed) -> ResoClient:
        """Raises SecretDecryptError (wrong key) or ConnectionConfigError. What the feed
        leaves unset (key field, filter style) comes from its vendor profile."""
        profile = self.profile(feed)
        auth = self._auth(feed, profile)
        base_url = profile.current_url(feed.base_url)
        profile = profile.for_url(base_url)
        transport = MlsTransport(
            self._http,
            auth,
            profile=profile,
            budget=self._budgets.for_connection(profile, base_url, auth.credential_id),
            retry=self._retry,
        )
        key_field = feed.key_field or profile.key_field
        if profile.filterable_fields and key_field not in profile.filterable_fields:
            usable = sorted(profile.filterable_fields & set(LOOKUP_KEY_FIELDS))
            raise ConnectionConfigError(
                f"MLS connection misconfigured: {profile.name} cannot filter on {key_field}; "
                f"use {' or '.join(usable)}"
            )
        return ResoClient(
            self._http,
            base_url=base_url,
            key_field=key_field,
            filter_style=feed.filter_style or profile.filter_style,
            batch_size=min(self._batch_size, profile.batch_size),
            transport=transport,
            profile=profile,
        )

    def credential_id(self, feed: MlsFeed) -> str | None:
        """The feed's credential identity (mls/auth.py: a digest, never the secret), or None
        for a feed whose credentials cannot be read: feeds with the same one share a budget
        and a vendor's suspension."""
        try:
            return self._auth(feed, self.profile(feed)).credential_id
        except (SecretDecryptError, ConnectionConfigError):
            return None

    def _auth(self, feed: MlsFeed, profile: VendorProfile) -> Authenticator:
        plaintext = self._cipher.decrypt(feed.credentials_encrypted)
        try:
            credentials = parse_credentials(plaintext, profile.auth_kind)
            base_url = profile.current_url(feed.base_url)
            if profile.auth_kind == "bearer":
                return StaticBearer(str(credentials["token"]), base_url=base_url)
            if profile.auth_kind in LOGIN_KINDS:
                return self._login(feed, profile, credentials, base_url)
            token_url = str(credentials.get("token_url") or profile.token_url)
            return OAuth2ClientCredentials(
                self._http,
                base_url=base_url,
                token_url=profile.current_url(token_url),
                client_id=str(credentials["client_id"]),
                client_secret=str(credentials["client_secret"]),
                scope=credentials.get("scope", profile.scope),
                cache=self._tokens,
            )
        except (KeyError, ValueError) as exc:
            raise ConnectionConfigError(f"MLS connection misconfigured: missing {exc}") from None

    def _login(
        self, feed: MlsFeed, profile: VendorProfile, credentials: dict[str, Any], base_url: str
    ) -> OAuth2Login:
        state = LoginState.from_credentials(
            profile.auth_kind, credentials, token_url=profile.token_url
        )
        state = replace(state, token_url=profile.current_url(state.token_url))
        store = self._login_store(feed) if self._login_store else MemoryLoginStore(credentials)
        return OAuth2Login(
            self._http, state, store, base_url=base_url, cache=self._tokens, clock=self._clock
        )


def budgets_for(settings: Settings, db: Storage) -> Budgets:
    """MLS request budgets in this process, or shared by every process through PostgreSQL
    (workers on many machines: MLS_SYNC_SHARED_RATE_LIMITS, on with the procrastinate
    executor)."""
    per_hour, per_day = settings.mls_requests_per_hour, settings.mls_requests_per_day
    max_wait = settings.mls_budget_max_wait_seconds
    if settings.uses_shared_rate_limits and isinstance(db, Database) and not db.is_sqlite:
        return SharedRateBudgets(
            SqlRateBuckets(db),
            settings.mls_requests_per_second,
            requests_per_hour=per_hour,
            requests_per_day=per_day,
            max_wait=max_wait,
        )
    return RateBudgets(
        settings.mls_requests_per_second,
        requests_per_hour=per_hour,
        requests_per_day=per_day,
        max_wait=max_wait,
    )
