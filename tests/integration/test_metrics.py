"""`GET /metrics`: Prometheus text with what runs did (duration, listings checked, status
changes, unpublished posts, errors by kind), what the MLS was asked (requests and 429s by host)
and what the database holds now (connections by state, the outbox); SQLite and PostgreSQL.

Counters are process-wide, so each test compares the scraped values before and after."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

import httpx
from prometheus_client.parser import text_string_to_metric_families

from api_support import api_client
from factories import seed_connection, seed_listing, seed_posts
from mls_sync.domain.status import ConnectionState
from mls_sync.domain.status import ListingStatus as S
from mls_sync.runtime import Runtime
from mls_sync.sandbox.platforms import PlatformSandbox
from mls_sync.sandbox.reso import ResoSandbox
from mls_sync.store import repositories as repo
from mls_sync.store.models import UnpublishJob
from mls_sync.store.types import utcnow

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(api: httpx.AsyncClient) -> Samples:
    response = await api.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, labels: Mapping[str, str] | None = None) -> float:
    return samples.get((name, frozenset((labels or {}).items())), 0.0)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, labels) - value(before, name, labels)


async def test_a_run_shows_in_the_run_listing_change_unpublish_and_error_metrics(
    runtime: Runtime, reso: ResoSandbox, reso_url: str, platforms: PlatformSandbox
) -> None:
    seeded = await seed_connection(
        runtime, reso, reso_url, {"K1": S.ACTIVE, "K2": S.PENDING, "K3": S.ACTIVE}
    )
    await seed_posts(runtime, platforms, seeded.listings["K1"], ("facebook", "linkedin"))
    reso.set_status("K1", "Closed")
    reso.set_status("K2", "Active")
    reso.remove_listing("K3")

    async with api_client(runtime) as api:
        before = await scrape(api)
        outcome = await runtime.engine.sync_connection(seeded.connection_id, trigger="api")
        after = await scrape(api)

    assert outcome.success and outcome.result.unpublished_posts == 2
    # The feed's run is measured once, with every member's listings; the connection's own
    # row is not measured again (nothing counts twice).
    run = {"trigger": "api", "scope": "feed", "outcome": "success"}
    assert delta(before, after, "mls_sync_run_duration_seconds_count", **run) == 1
    assert delta(before, after, "mls_sync_run_duration_seconds_bucket", le="+Inf", **run) == 1
    assert delta(before, after, "mls_sync_run_duration_seconds_sum", **run) > 0
    member = {"trigger": "api", "scope": "connection", "outcome": "success"}
    assert delta(before, after, "mls_sync_run_duration_seconds_count", **member) == 0
    assert delta(before, after, "mls_sync_listings_checked_total", trigger="api") == 3
    changes = "mls_sync_status_changes_total"
    assert delta(before, after, changes, old_status="active", new_status="sold") == 1
    assert delta(before, after, changes, old_status="pending", new_status="active") == 1
    for platform in ("facebook", "linkedin"):
        assert delta(before, after, "mls_sync_posts_unpublished_total", platform=platform) == 1
    assert delta(before, after, "mls_sync_errors_total", kind="listing") == 1  # K3 gone
    assert delta(before, after, "mls_sync_errors_total", kind="mls_request") == 0
    assert delta(before, after, "mls_sync_mls_requests_total", profile="generic") == len(
        reso.requests
    )
    assert delta(before, after, "mls_sync_mls_rate_limited_total", profile="generic") == 0


async def test_mls_failures_count_by_kind_and_429s_by_profile(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    seeded = await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE, "K2": S.ACTIVE})
    # One 429 (retried, then answered), then a request that fails on every attempt.
    attempts = runtime.settings.mls_retry_attempts

    async with api_client(runtime) as api:
        before = await scrape(api)
        reso.fail_next.extend([429])
        assert (await runtime.engine.sync_connection(seeded.connection_id)).success
        reso.fail_next.extend([503] * attempts)
        failed = await runtime.engine.sync_connection(seeded.connection_id, full=True)
        reso.fail_next.extend([401])
        expired = await runtime.engine.sync_connection(seeded.connection_id, full=True)
        after = await scrape(api)

    assert not failed.success and not expired.success
    assert delta(before, after, "mls_sync_mls_rate_limited_total", profile="generic") == 1
    assert delta(before, after, "mls_sync_mls_requests_total", profile="generic") == len(
        reso.requests
    )
    # The feed's failed replication request (once, however many listings it holds), then
    # the refused credentials.
    assert delta(before, after, "mls_sync_errors_total", kind="mls_request") == 1
    assert delta(before, after, "mls_sync_errors_total", kind="mls_auth") == 1
    # Both failures are the feed's: its run is observed, not its member connection's.
    failure = {"trigger": "manual", "outcome": "failure"}
    assert delta(before, after, "mls_sync_run_duration_seconds_count", scope="feed", **failure) == 2
    assert (
        delta(before, after, "mls_sync_run_duration_seconds_count", scope="connection", **failure)
        == 0
    )


async def test_connections_by_state_and_the_outbox_are_read_from_the_database(
    runtime: Runtime, reso: ResoSandbox, reso_url: str, platforms: PlatformSandbox
) -> None:
    async with api_client(runtime) as api:
        empty = await scrape(api)
        active = await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE})
        expired = await seed_connection(
            runtime, reso, reso_url, {"K2": S.ACTIVE}, user_id=active.user_id
        )
        listing = await seed_listing(runtime, key="SOLD")
        await seed_posts(runtime, platforms, listing, ("facebook", "x"), connect=False)
        async with runtime.db.transaction() as session:
            # The feed's credentials were refused: every member of it is expired.
            await repo.mark_feed(session, expired.feed_id, ConnectionState.EXPIRED, "expired")
            await repo.upsert_platform_connection(
                session,
                runtime.cipher,
                user_id=active.user_id,
                platform="facebook",
                access_token="t",
            )
            assert await session.outbox.enqueue(listing.id) == 2
            jobs = (await session.execute(UnpublishJob.__table__.select())).all()
            oldest = min(job.created_at for job in jobs)
            for job in jobs:  # queued an hour ago: the age is read, not guessed
                await session.execute(
                    UnpublishJob.__table__.update()
                    .where(UnpublishJob.id == job.id)
                    .values(created_at=oldest - timedelta(hours=1))
                )
        scraped_at = utcnow()
        now = await scrape(api)

    for state in ConnectionState:
        assert value(empty, "mls_sync_mls_connections", {"state": state.value}) == 0
    # seed_listing makes a connection of its own (active)
    assert value(now, "mls_sync_mls_connections", {"state": "active"}) == 2
    assert value(now, "mls_sync_mls_connections", {"state": "expired"}) == 1
    assert value(now, "mls_sync_mls_connections", {"state": "error"}) == 0
    assert (
        value(now, "mls_sync_platform_connections", {"platform": "facebook", "state": "active"})
        == 1
    )
    assert value(empty, "mls_sync_outbox_jobs") == 0
    assert value(empty, "mls_sync_outbox_oldest_job_age_seconds") == 0
    assert value(now, "mls_sync_outbox_jobs") == 2
    age = value(now, "mls_sync_outbox_oldest_job_age_seconds")
    expected = (scraped_at - (oldest - timedelta(hours=1))).total_seconds()
    assert 3600 <= age <= expected + 5


async def test_every_error_kind_is_exported_from_the_start(runtime: Runtime) -> None:
    async with api_client(runtime) as api:
        text = (await api.get("/metrics")).text
    for kind in (
        "mls_auth",
        "mls_request",
        "listing",
        "unpublish",
        "config",
        "deadline",
        "internal",
    ):
        assert f'mls_sync_errors_total{{kind="{kind}"}}' in text
