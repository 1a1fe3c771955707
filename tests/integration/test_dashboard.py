"""The dashboard at `/`, over HTTP: sign-in with an API key, the signed cookie, what a user
sees (only their own data, escaped), and the CSRF-safe "sync now" button."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from api_support import api_client, bearer, new_user
from factories import join, publish, seed_connection, seed_shared_feed
from mls_sync.api.dashboard_session import FLASH_COOKIE, SESSION_COOKIE, SessionCodec
from mls_sync.domain.replica import ReplicaRow
from mls_sync.domain.status import ConnectionState, ListingStatus
from mls_sync.runtime import Runtime
from mls_sync.sandbox.platforms import PlatformSandbox
from mls_sync.sandbox.reso import ResoSandbox
from mls_sync.services import users
from mls_sync.store import repositories as repo
from mls_sync.store.models import Listing, SyncRun, UnpublishJob, User
from mls_sync.store.types import utcnow


@pytest.fixture
async def web(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(runtime) as client:
        yield client


async def sign_in(web: httpx.AsyncClient, key: str) -> httpx.Response:
    return await web.post("/sign-in", data={"api_key": key})


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None, "the page has no CSRF field"
    return found.group(1)


async def page(web: httpx.AsyncClient) -> str:
    response = await web.get("/")
    assert response.status_code == 200, response.text
    return response.text


async def listing_status(runtime: Runtime, listing_id: str) -> str:
    async with runtime.db.transaction() as session:
        listing = await session.get(Listing, listing_id)
        assert listing is not None
        return listing.status


# signing in


async def test_the_page_asks_for_an_api_key_first(web: httpx.AsyncClient) -> None:
    response = await web.get("/")
    assert response.status_code == 303
    assert response.headers["location"] == "/sign-in"
    form = await web.get("/sign-in")
    assert form.status_code == 200
    assert form.headers["content-type"].startswith("text/html")
    assert 'name="api_key"' in form.text
    assert "script-src 'self'" in form.headers["content-security-policy"]


async def test_signing_in_sets_a_signed_http_only_same_site_cookie(
    runtime: Runtime, web: httpx.AsyncClient
) -> None:
    _, key = await new_user(runtime, "agent@example.com")
    response = await sign_in(web, key)
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    cookie = next(c for c in response.headers.get_list("set-cookie") if SESSION_COOKIE in c)
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "samesite", "path", "max-age"} <= attributes
    assert "samesite=lax" in cookie.lower()
    assert key not in cookie  # the key itself never travels again
    assert "Signed in as <strong>agent@example.com</strong>" in await page(web)


async def test_a_wrong_key_is_refused_with_a_clear_message(
    runtime: Runtime, web: httpx.AsyncClient
) -> None:
    _, key = await new_user(runtime)
    response = await sign_in(web, key[:-2] + "xx")
    assert response.status_code == 401
    assert "That API key is not valid." in response.text
    assert SESSION_COOKIE not in response.headers.get("set-cookie", "")
    assert (await web.get("/")).status_code == 303


async def test_a_forged_or_foreign_cookie_is_no_sign_in(
    runtime: Runtime, web: httpx.AsyncClient
) -> None:
    user_id, key = await new_user(runtime)
    await sign_in(web, key)
    genuine = web.cookies[SESSION_COOKIE]
    web.cookies.set(SESSION_COOKIE, genuine[:-4] + ("AAAA" if genuine[-4:] != "AAAA" else "BBBB"))
    assert (await web.get("/")).status_code == 303
    # Well-formed, for the right user, but signed with another secret.
    async with runtime.db.transaction() as session:
        user = await session.get(User, user_id)
        assert user is not None
        _, foreign = SessionCodec(b"another secret", max_age_seconds=3600).open(
            user.id, user.api_key_hash
        )
    web.cookies.set(SESSION_COOKIE, foreign)
    assert (await web.get("/")).status_code == 303


async def test_a_new_api_key_ends_sign_ins_made_with_the_old_one(
    runtime: Runtime, web: httpx.AsyncClient
) -> None:
    user_id, key = await new_user(runtime)
    await sign_in(web, key)
    assert (await web.get("/")).status_code == 200
    async with runtime.db.transaction() as session:
        user = await session.get(User, user_id)
        assert user is not None
        await users.issue_api_key(session, user)
    assert (await web.get("/")).status_code == 303


async def test_sign_out_needs_the_page_token_and_ends_the_sign_in(
    runtime: Runtime, web: httpx.AsyncClient
) -> None:
    _, key = await new_user(runtime)
    await sign_in(web, key)
    token = csrf_of(await page(web))
    assert (await web.post("/sign-out", data={"csrf": "forged"})).status_code == 403
    assert (await web.get("/")).status_code == 200
    response = await web.post("/sign-out", data={"csrf": token})
    assert (response.status_code, response.headers["location"]) == (303, "/sign-in")
    assert (await web.get("/")).status_code == 303


# what the page shows


async def test_a_user_sees_only_their_own_connections_runs_and_changes(
    runtime: Runtime, reso: ResoSandbox, reso_url: str, web: httpx.AsyncClient
) -> None:
    mine_id, my_key = await new_user(runtime, "me@example.com")
    theirs_id, _ = await new_user(runtime, "them@example.com")
    mine = await seed_connection(
        runtime, reso, reso_url, {"MINE1": ListingStatus.ACTIVE}, user_id=mine_id
    )
    theirs = await seed_connection(
        runtime, reso, reso_url, {"THEIRS1": ListingStatus.ACTIVE}, user_id=theirs_id
    )
    reso.set_status("MINE1", "Pending")
    reso.set_status("THEIRS1", "Closed")
    for seeded in (mine, theirs):
        await runtime.engine.sync_connection(seeded.connection_id)

    await sign_in(web, my_key)
    html = await page(web)
    assert "MLS-MINE1" in html
    assert mine.connection_id in html
    assert "MLS-THEIRS1" not in html
    assert theirs.connection_id not in html
    async with runtime.db.transaction() as session:
        their_runs = await session.runs.newest(user_id=theirs_id)
    assert their_runs and all(run.id not in html for run in their_runs)


async def test_members_of_one_shared_feed_see_only_their_own_listings_and_runs(
    runtime: Runtime, reso: ResoSandbox, reso_url: str, web: httpx.AsyncClient
) -> None:
    alice_id, alice_key = await new_user(runtime, "alice@example.com")
    bob_id, _ = await new_user(runtime, "bob@example.com")
    reso.add_listing("A1", "MLS-A1", "Active")
    reso.add_listing("B1", "MLS-B1", "Active")
    feed_id = await seed_shared_feed(runtime, reso_url, token="mls-token")
    alice = await join(runtime, feed_id, user_id=alice_id, holding={"A1": ListingStatus.ACTIVE})
    bob = await join(runtime, feed_id, user_id=bob_id, holding={"B1": ListingStatus.ACTIVE})
    reso.set_status("A1", "Pending")
    reso.set_status("B1", "Closed")

    # Alice's sync runs the feed for both: Bob's listing changed, so he gets a row too.
    await runtime.engine.sync_connection(alice.connection_id)

    await sign_in(web, alice_key)
    html = await page(web)
    assert "MLS-A1" in html and alice.connection_id in html
    assert "MLS-B1" not in html and bob.connection_id not in html
    async with runtime.db.transaction() as session:
        every_run = await session.runs.newest(user_id=None)
    feed_rows = [r for r in every_run if r.scope == "feed"]
    bobs_rows = [r for r in every_run if r.user_id == bob_id]
    assert (len(feed_rows), len(bobs_rows)) == (1, 1)
    # Neither Bob's row nor the feed's (totals over every member) is shown to Alice.
    assert all(run.id not in html for run in feed_rows + bobs_rows)


async def test_a_connection_whose_feed_is_still_loading_says_how_far_it_got(
    runtime: Runtime, reso: ResoSandbox, reso_url: str, web: httpx.AsyncClient
) -> None:
    user_id, key = await new_user(runtime)
    seeded = await seed_connection(
        runtime, reso, reso_url, {"K1": ListingStatus.ACTIVE}, user_id=user_id
    )
    for n in (2, 3):
        reso.add_listing(f"K{n}", f"MLS-K{n}", "Active")
    async with runtime.db.transaction() as session:  # what an interrupted first load leaves
        await session.replica.upsert(
            seeded.feed_id,
            [
                ReplicaRow(f"K{n}", f"MLS-K{n}", "Active", None, utcnow(), None, None)
                for n in (1, 2)
            ],
            seen_at=utcnow(),
        )
    await sign_in(web, key)

    assert "loading the MLS feed: 2 records so far" in await page(web)

    assert (await runtime.engine.sync_connection(seeded.connection_id)).success  # loaded
    assert "loading the MLS feed" not in await page(web)


async def test_mls_data_is_escaped_on_the_page(
    runtime: Runtime, reso: ResoSandbox, reso_url: str, web: httpx.AsyncClient
) -> None:
    user_id, key = await new_user(runtime)
    hostile = '<img src=x onerror="alert(1)">'
    seeded = await seed_connection(
        runtime, reso, reso_url, {"K1": ListingStatus.ACTIVE}, user_id=user_id
    )
    async with runtime.db.transaction() as session:
        listing = await session.get(Listing, seeded.listings["K1"].id)
        assert listing is not None
        listing.mls_number = hostile
    reso.set_status("K1", "Closed")
    await runtime.engine.sync_connection(seeded.connection_id)

    await sign_in(web, key)
    html = await page(web)
    assert hostile not in html
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in html


async def test_connections_needing_reauthentication_and_stuck_jobs_are_listed(
    runtime: Runtime,
    reso: ResoSandbox,
    reso_url: str,
    platforms: PlatformSandbox,
    web: httpx.AsyncClient,
) -> None:
    user_id, key = await new_user(runtime)
    seeded = await seed_connection(
        runtime,
        reso,
        reso_url,
        {"K1": ListingStatus.SOLD, "K2": ListingStatus.SOLD},
        user_id=user_id,
    )
    stuck_post = await publish(
        runtime, platforms, seeded.listings["K1"], "facebook", post_id="1_11"
    )
    await publish(runtime, platforms, seeded.listings["K2"], "facebook", post_id="2_22")
    async with runtime.db.transaction() as session:
        await repo.mark_feed(session, seeded.feed_id, ConnectionState.EXPIRED, "MLS said 401")
        for listing in seeded.listings.values():
            await session.outbox.enqueue(listing.id)
        await session.flush()
        jobs = (await session.scalars(select(UnpublishJob))).all()
        for job in jobs:
            if job.post_id == stuck_post:
                job.attempts = 3
                job.last_error = "Network error: Request timeout"
                job.next_attempt_at = utcnow() + timedelta(minutes=10)
        # The other job was queued just now: about to be drained, not stuck.

    await sign_in(web, key)
    html = await page(web)
    reauth = html.split('id="reauth"')[1].split("</section>")[0]
    assert "MLS said 401" in reauth and "expired" in reauth
    stuck = html.split('id="stuck-jobs"')[1].split("</section>")[0]
    assert "1_11" in stuck and "Network error: Request timeout" in stuck
    assert "2_22" not in stuck


# "sync now"


async def test_sync_now_runs_the_connection_and_the_page_shows_the_result(
    runtime: Runtime,
    reso: ResoSandbox,
    reso_url: str,
    platforms: PlatformSandbox,
    web: httpx.AsyncClient,
) -> None:
    user_id, key = await new_user(runtime)
    seeded = await seed_connection(
        runtime,
        reso,
        reso_url,
        {"K1": ListingStatus.ACTIVE, "K2": ListingStatus.ACTIVE},
        user_id=user_id,
    )
    reso.set_status("K1", "Closed")
    reso.remove_listing("K2")
    await sign_in(web, key)
    token = csrf_of(await page(web))

    response = await web.post(
        f"/dashboard/connections/{seeded.connection_id}/sync", data={"csrf": token}
    )
    assert (response.status_code, response.headers["location"]) == (303, "/")
    assert await listing_status(runtime, seeded.listings["K1"].id) == ListingStatus.SOLD

    html = await page(web)
    flash = re.search(r'id="flash" class="flash (?:ok|error)" role="status">([^<]*)<', html)
    assert flash is not None
    assert "2 listings checked, 1 updated" in flash.group(1)
    changes = html.split('id="changes"')[1].split("</section>")[0]
    assert "MLS-K1" in changes and "active" in changes and "sold" in changes
    errors = html.split('id="errors"')[1].split("</section>")[0]
    assert "MLS-K2" in errors and "Listing not found in MLS" in errors
    async with runtime.db.transaction() as session:
        runs = await session.runs.newest(user_id=user_id)
    assert [run.trigger for run in runs] == ["dashboard"]
    assert f'data-run-id="{runs[0].id}"' in html
    # The outcome is shown once, not on every later visit.
    assert FLASH_COOKIE not in web.cookies
    assert 'id="flash"' not in await page(web)


async def test_sync_now_without_the_page_token_or_from_another_site_does_nothing(
    runtime: Runtime, reso: ResoSandbox, reso_url: str, web: httpx.AsyncClient
) -> None:
    user_id, key = await new_user(runtime)
    seeded = await seed_connection(
        runtime, reso, reso_url, {"K1": ListingStatus.ACTIVE}, user_id=user_id
    )
    reso.set_status("K1", "Closed")
    await sign_in(web, key)
    token = csrf_of(await page(web))
    url = f"/dashboard/connections/{seeded.connection_id}/sync"

    assert (await web.post(url, data={})).status_code == 403
    assert (await web.post(url, data={"csrf": token + "x"})).status_code == 403
    forged = await web.post(url, data={"csrf": token}, headers={"Origin": "https://evil.example"})
    assert forged.status_code == 403
    assert "This form has expired" in forged.text
    async with runtime.db.transaction() as session:
        assert (await session.scalars(select(SyncRun))).all() == []
    assert await listing_status(runtime, seeded.listings["K1"].id) == ListingStatus.ACTIVE


async def test_another_users_connection_cannot_be_synced_from_the_page(
    runtime: Runtime, reso: ResoSandbox, reso_url: str, web: httpx.AsyncClient
) -> None:
    owner_id, _ = await new_user(runtime, "owner@example.com")
    _, intruder_key = await new_user(runtime, "intruder@example.com")
    seeded = await seed_connection(
        runtime, reso, reso_url, {"K1": ListingStatus.ACTIVE}, user_id=owner_id
    )
    reso.set_status("K1", "Closed")
    await sign_in(web, intruder_key)
    token = csrf_of(await page(web))

    await web.post(f"/dashboard/connections/{seeded.connection_id}/sync", data={"csrf": token})
    assert "MLS connection not found" in await page(web)
    assert await listing_status(runtime, seeded.listings["K1"].id) == ListingStatus.ACTIVE


async def test_signed_out_sync_now_and_refresh_are_refused(
    runtime: Runtime, reso: ResoSandbox, reso_url: str, web: httpx.AsyncClient
) -> None:
    seeded = await seed_connection(runtime, reso, reso_url, {"K1": ListingStatus.ACTIVE})
    reso.set_status("K1", "Closed")
    response = await web.post(f"/dashboard/connections/{seeded.connection_id}/sync", data={})
    assert (response.status_code, response.headers["location"]) == (303, "/sign-in")
    assert (await web.get("/dashboard/live")).status_code == 401
    assert await listing_status(runtime, seeded.listings["K1"].id) == ListingStatus.ACTIVE


# living next to the JSON API


async def test_the_page_refreshes_from_a_fragment_and_its_assets_are_served_locally(
    runtime: Runtime, web: httpx.AsyncClient
) -> None:
    _, key = await new_user(runtime)
    await sign_in(web, key)
    html = await page(web)
    assert 'src="/static/dashboard.js"' in html
    assert "http://" not in html and "https://" not in html  # nothing from a CDN
    fragment = await web.get("/dashboard/live")
    assert fragment.status_code == 200
    assert 'id="runs"' in fragment.text and "<html" not in fragment.text
    script = await web.get("/static/dashboard.js")
    assert script.status_code == 200 and "/dashboard/live" not in script.text  # read from data-src
    assert (await web.get("/static/dashboard.css")).status_code == 200


async def test_the_json_api_and_its_schema_are_unchanged(
    runtime: Runtime, web: httpx.AsyncClient
) -> None:
    _, key = await new_user(runtime)
    assert (await web.get("/healthz")).json() == {"status": "ok"}
    assert (await web.get("/api/me", headers=bearer(key))).status_code == 200
    paths = set((await web.get("/openapi.json")).json()["paths"])
    assert not {"/", "/sign-in", "/sign-out", "/dashboard/live"} & paths
