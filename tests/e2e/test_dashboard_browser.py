"""The dashboard in a real headless Chromium (Debian's package, driven by Playwright): the
service served by uvicorn on a loopback port over SQLite, the sandbox MLS and platforms behind
it. A user signs in with their API key, presses "sync now" on a connection whose listing sold
in the MLS, and sees the result; a run started elsewhere appears without a reload. A
screenshot is kept under test-artifacts/."""

from __future__ import annotations

import asyncio
import os
import struct
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from api_support import bearer, migrated_with_user, service_settings
from mls_sync.api import create_app
from mls_sync.config import Settings
from mls_sync.sandbox.platforms import PlatformSandbox
from mls_sync.sandbox.reso import ResoSandbox
from mls_sync.sandbox.server import BackgroundServer

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
WAIT_MS = 15_000


@pytest.fixture
def served(settings: Settings, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(url, API key) of the service on a fresh SQLite file; the page refreshes every second."""
    app_settings = service_settings(
        settings,
        database_url=f"sqlite:///{tmp_path / 'served.db'}",
        dashboard_refresh_seconds=1.0,
    )
    key = asyncio.run(migrated_with_user(app_settings, "agent@example.com"))
    with BackgroundServer(create_app(app_settings), lifespan="on") as server:
        yield server.url, key


@pytest.fixture
def chromium() -> Path:
    """Debian's Chromium; in CI its absence fails the test instead of skipping it."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


@pytest.fixture
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(chromium), args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


async def set_up_over_the_api(
    url: str, key: str, reso: ResoSandbox, reso_url: str, platforms: PlatformSandbox
) -> str:
    """One MLS connection holding MLS-001 (active), with a Facebook post; returns its id."""
    reso.add_listing("LK-1", "MLS-001", "Active")
    platforms.add_token("facebook", "fb-token")
    platforms.add_post("facebook", "10_20")
    async with httpx.AsyncClient(base_url=url, headers=bearer(key), timeout=10) as api:
        created = await api.post(
            "/api/mls-connections",
            json={"name": "Sandbox MLS", "baseUrl": reso_url, "token": "mls-token"},
        )
        connection_id: str = created.json()["id"]
        # Given in full: the feed's copy that would supply them loads at the first sync.
        listing = await api.post(
            "/api/listings",
            json={
                "mlsConnectionId": connection_id,
                "listingKey": "LK-1",
                "mlsNumber": "MLS-001",
                "status": "active",
            },
        )
        await api.put("/api/platform-connections/facebook", json={"accessToken": "fb-token"})
        await api.post(
            "/api/posts",
            json={
                "listingId": listing.json()["id"],
                "platform": "facebook",
                "platformPostId": "10_20",
            },
        )
    return connection_id


async def test_sign_in_sync_now_and_watch_runs_arrive_in_a_real_browser(
    served: tuple[str, str],
    reso: ResoSandbox,
    reso_url: str,
    platforms: PlatformSandbox,
    browser: Browser,
) -> None:
    url, key = served
    connection_id = await set_up_over_the_api(url, key, reso, reso_url, platforms)
    reso.set_status("LK-1", "Closed")  # the listing sells in the MLS

    page: Page = await browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(WAIT_MS)
    problems: list[str] = []  # script errors and CSP refusals of our own assets show up here
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)

    await page.goto(url + "/")
    await expect(page).to_have_url(url + "/sign-in")
    await page.get_by_label("API key").fill("mls_not-a-key")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_contain_text("That API key is not valid.")
    problems.clear()  # the refused sign-in's 401 is logged by the browser, as it should be

    await page.get_by_label("API key").fill(key)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(url + "/")
    await expect(page.get_by_text("Signed in as")).to_contain_text("agent@example.com")
    await expect(page.locator("#runs")).to_contain_text("No runs yet.")

    row = page.locator(f'tr[data-connection-id="{connection_id}"]')
    await expect(row).to_contain_text("Sandbox MLS")
    await row.get_by_role("button", name="Sync now").click()

    await expect(page.locator("#flash")).to_contain_text(
        "Sandbox MLS: 1 listings checked, 1 updated, 1 posts unpublished"
    )
    changes = page.locator("#changes tbody tr")
    await expect(changes).to_have_count(1)
    await expect(changes.first).to_contain_text("MLS-001")
    await expect(changes.first).to_contain_text("active → sold")
    runs = page.locator("#runs tbody tr")
    await expect(runs).to_have_count(1)
    await expect(runs.first).to_contain_text("dashboard")
    await expect(runs.first).to_contain_text("OK")
    assert not platforms.has_post("facebook", "10_20")

    # A run started elsewhere (here: the API) appears on the open page without a reload.
    reso.set_status("LK-1", "Active")
    async with httpx.AsyncClient(base_url=url, headers=bearer(key), timeout=10) as api:
        assert (await api.post(f"/api/mls-connections/{connection_id}/sync")).status_code == 200
    await expect(runs).to_have_count(2)
    await expect(changes.first).to_contain_text("sold → active")

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    shot.unlink(missing_ok=True)
    await page.screenshot(path=str(shot), full_page=True)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk
    assert (width, height) >= (1280, 900)
    assert len(data) > 20_000, "the screenshot looks blank"
    assert problems == []
