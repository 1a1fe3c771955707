"""MLS logins that renew themselves: a per-agent Spark OpenID Connect login (refresh token)
and a Rapattoni member login (password grant), against the sandbox's token endpoint, which
rotates refresh tokens and refuses one used twice, as real servers that rotate do.

The rules (mls/logins.py): a renewed login is saved before it is used; one renewal per login
across workers; only a refused renewal ends the login, and then the feed is expired with the
product's message, which the user sees on the dashboard."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from conftest import ALL_BACKENDS
from mls_sync.domain.errors import InvalidInput
from mls_sync.domain.status import ConnectionState
from mls_sync.mls.auth import TokenCache, parse_credentials
from mls_sync.mls.errors import MLS_CONNECTION_EXPIRED
from mls_sync.mls.limits import RateBudgets
from mls_sync.mls.transport import RetryPolicy
from mls_sync.runtime import Runtime
from mls_sync.sandbox.reso import ResoSandbox
from mls_sync.services import connections
from mls_sync.services.dashboard import dashboard_data
from mls_sync.store import repositories as repo
from mls_sync.store.models import MlsFeed
from mls_sync.sync import runs
from mls_sync.sync.clients import ClientFactory
from mls_sync.sync.mls_logins import FeedLoginStore, feed_login_stores

pytestmark = pytest.mark.parametrize("database_url", ALL_BACKENDS, indirect=True)

APP, APP_SECRET = "spark-app", "app-secret"
MEMBER, PASSWORD = "M12345", "member-password"
DAY = 86400.0


class Clock:
    """Wall-clock seconds that a test moves: the sandbox's and the service's, together."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def mls(reso: ResoSandbox, clock: Clock) -> Iterator[ResoSandbox]:
    reso.oauth.clock = clock
    reso.oauth.add_client(APP, APP_SECRET)
    reso.oauth.add_member(MEMBER, PASSWORD)
    reso.add_listing("K1", "MLS-K1", "Active")
    yield reso


async def _connect(runtime: Runtime, reso_url: str, **credentials: Any) -> str:
    """A user's private feed through the service (as the API and CLI make one); its id."""
    async with runtime.db.transaction() as session:
        user = await repo.create_user(session, "agent@example.com")
        view = await connections.create_connection(
            session,
            runtime.cipher,
            user_id=user.id,
            base_url=reso_url,
            credentials=connections.MlsCredentials(
                client_id=APP,
                client_secret=APP_SECRET,
                token_url=f"{reso_url}/token",
                **credentials,
            ),
            key_field="ListingKey",
        )
        return view.feed_id


async def _stored_login(runtime: Runtime, feed_id: str) -> dict[str, Any]:
    async with runtime.db.transaction() as session:
        feed = await session.get(MlsFeed, feed_id)
        assert feed is not None
        return parse_credentials(runtime.cipher.decrypt(feed.credentials_encrypted), feed.auth_kind)


def _factory(runtime: Runtime, clock: Clock, http: httpx.AsyncClient) -> ClientFactory:
    """What one worker builds clients with: its own token cache, the logins kept in the
    database the workers share."""
    return ClientFactory(
        http,
        runtime.cipher,
        RateBudgets(100.0),
        retry=RetryPolicy(attempts=1),
        batch_size=10,
        token_cache=TokenCache(),
        login_store=feed_login_stores(runtime.db, runtime.cipher),
        clock=clock,
    )


async def _ask_once(factory: ClientFactory, runtime: Runtime, feed_id: str) -> None:
    async with runtime.db.transaction() as session:
        feed = await session.get(MlsFeed, feed_id)
    assert feed is not None
    found = await factory.build(feed).fetch_by_keys(["K1"])
    assert set(found) == {"K1"}


async def test_a_signed_in_login_renews_itself_and_saves_the_rotated_refresh_token(
    runtime: Runtime, mls: ResoSandbox, reso_url: str
) -> None:
    _, refresh = mls.oauth.sign_in("agent")
    feed_id = await _connect(runtime, reso_url, auth_kind="oauth2_refresh", refresh_token=refresh)

    outcome = await runs.sync_feed(runtime.engine, feed_id, trigger="manual")

    assert outcome.success, outcome.message
    assert mls.oauth.grants == ["refresh_token"]
    saved = await _stored_login(runtime, feed_id)
    assert saved["refresh_token"] != refresh  # rotated, and the new one is what is kept
    assert mls.oauth.valid(saved["access_token"])
    # The next run uses the saved access token: no renewal while it lives.
    again = await runs.sync_feed(runtime.engine, feed_id, trigger="manual")
    assert again.success and mls.oauth.grants == ["refresh_token"]


async def test_a_member_login_lives_for_months_without_its_user(
    runtime: Runtime, mls: ResoSandbox, reso_url: str, clock: Clock
) -> None:
    # Rapattoni's shape: 7-day access tokens and a refresh token that lasts 30 days.
    mls.oauth.lifetime, mls.oauth.refresh_lifetime = 7 * DAY, 30 * DAY
    feed_id = await _connect(
        runtime, reso_url, auth_kind="oauth2_password", username=MEMBER, password=PASSWORD
    )
    async with httpx.AsyncClient(timeout=10) as http:
        for _day in range(180):  # a run a day for six months, each a fresh client
            await _ask_once(_factory(runtime, clock, http), runtime, feed_id)
            clock.advance(DAY)

    # Signed in with the password once; renewed with the refresh token about weekly since.
    assert mls.oauth.grants[0] == "password"
    assert set(mls.oauth.grants[1:]) == {"refresh_token"}
    assert 180 / 7 - 1 <= len(mls.oauth.grants) <= 180 / 7 + 2
    assert mls.oauth.reuse_refused == 0
    assert mls.oauth.live_refresh_tokens() == 1


async def test_a_spent_refresh_token_falls_back_to_the_members_password(
    runtime: Runtime, mls: ResoSandbox, reso_url: str
) -> None:
    feed_id = await _connect(
        runtime, reso_url, auth_kind="oauth2_password", username=MEMBER, password=PASSWORD
    )
    assert (await runs.sync_feed(runtime.engine, feed_id, trigger="manual")).success
    mls.oauth.revoke_logins()  # every refresh token refused from now on
    mls.oauth.expire_all()

    outcome = await runs.sync_feed(runtime.engine, feed_id, trigger="manual")

    assert outcome.success, outcome.message
    assert mls.oauth.grants == ["password", "refresh_token", "password"]


async def test_two_workers_renew_a_login_once_between_them(
    runtime: Runtime, mls: ResoSandbox, reso_url: str, clock: Clock
) -> None:
    _, refresh = mls.oauth.sign_in("agent")
    feed_id = await _connect(runtime, reso_url, auth_kind="oauth2_refresh", refresh_token=refresh)
    async with httpx.AsyncClient(timeout=10) as http:
        workers = [_factory(runtime, clock, http) for _ in range(3)]
        await asyncio.gather(*(_ask_once(w, runtime, feed_id) for w in workers))

    # One renewal; the others waited for it and read what it saved. Had two sent the same
    # refresh token, the second would have been refused and the login ended.
    assert mls.oauth.grants == ["refresh_token"]
    assert mls.oauth.reuse_refused == 0


async def test_a_refused_renewal_expires_the_feed_and_the_user_sees_it(
    runtime: Runtime, mls: ResoSandbox, reso_url: str, database_url: str
) -> None:
    _, refresh = mls.oauth.sign_in("agent")
    feed_id = await _connect(runtime, reso_url, auth_kind="oauth2_refresh", refresh_token=refresh)
    mls.oauth.revoke_logins()  # the agent changed their MLS password

    outcome = await runs.sync_feed(runtime.engine, feed_id, trigger="manual")

    assert not outcome.success
    assert outcome.message == MLS_CONNECTION_EXPIRED
    async with runtime.db.transaction() as session:
        feed = await session.get(MlsFeed, feed_id)
        assert feed is not None and feed.state == ConnectionState.EXPIRED
        (member,) = await session.connections.of_feed(feed_id)
        shown = await connections.get_connection(session, member.id, user_id=member.user_id)
        assert (shown.state, shown.state_message) == (
            ConnectionState.EXPIRED,
            MLS_CONNECTION_EXPIRED,
        )
        if not database_url.startswith("dynamodb"):  # the dashboard is SQL's
            page = await dashboard_data(session, member.user_id)
            assert [c.state_message for c in page.connections] == [MLS_CONNECTION_EXPIRED]
            assert [r.kind for r in page.needs_reauth] == ["MLS"]


async def test_a_renewal_never_overwrites_a_login_the_user_replaced_meanwhile(
    runtime: Runtime, mls: ResoSandbox, reso_url: str
) -> None:
    _, refresh = mls.oauth.sign_in("agent")
    feed_id = await _connect(runtime, reso_url, auth_kind="oauth2_refresh", refresh_token=refresh)
    before = await _stored_login(runtime, feed_id)
    _, fresh = mls.oauth.sign_in("agent")
    async with runtime.db.transaction() as session:  # the user signs in again
        feed = await session.get(MlsFeed, feed_id)
        assert feed is not None
        again = connections.MlsCredentials(
            auth_kind="oauth2_refresh", client_id=APP, refresh_token=fresh
        )
        await repo.replace_mls_credentials(
            session, feed, runtime.cipher, again.secret(), auth_kind=again.auth_kind
        )

    store = FeedLoginStore(runtime.db, runtime.cipher, feed_id)
    await store.save({**before, "refresh_token": "renewed-from-the-old-login"})

    assert (await _stored_login(runtime, feed_id))["refresh_token"] == fresh


@pytest.mark.parametrize(
    ("credentials", "field"),
    [
        ({"auth_kind": "oauth2_refresh"}, "refreshToken"),
        ({"auth_kind": "oauth2_password", "password": PASSWORD}, "username"),
        ({"auth_kind": "oauth2_password", "username": MEMBER}, "password"),
    ],
)
async def test_a_login_missing_what_it_signs_in_with_is_refused_and_nothing_is_saved(
    runtime: Runtime, mls: ResoSandbox, reso_url: str, credentials: dict[str, str], field: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        await _connect(runtime, reso_url, **credentials)
    assert refused.value.field == field
    async with runtime.db.transaction() as session:
        assert list(await session.feeds.all()) == []
