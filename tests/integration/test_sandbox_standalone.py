"""`mls-sync sandbox`: the long-running sandbox, its vendor options and its control API."""

from __future__ import annotations

import httpx

from mls_sync.sandbox.server import BackgroundServer
from mls_sync.sandbox.standalone import MLS_TOKEN, MlsBehaviour, build_sandbox

AUTH = {"Authorization": f"Bearer {MLS_TOKEN}"}


def test_default_sandbox_serves_seeded_listings_and_takes_status_changes() -> None:
    sandbox = build_sandbox(listings=3)
    with BackgroundServer(sandbox.app) as server, httpx.Client(base_url=server.url) as http:
        changed = http.put("/_sandbox/listings/LK-0002", json={"status": "Closed"})
        answer = http.get(
            "/Property", params={"$filter": "ListingKey in ('LK-0002')"}, headers=AUTH
        )
    assert changed.status_code == 200
    [record] = answer.json()["value"]
    assert (record["ListingId"], record["StandardStatus"]) == ("MLS-002", "Closed")


def test_vendor_options_change_what_the_mls_accepts_and_sends() -> None:
    behaviour = MlsBehaviour(supports_in=False, status_labels=True, entity_events=True)
    sandbox = build_sandbox(listings=2, behaviour=behaviour)
    sandbox.reso.set_status("LK-0001", "ActiveUnderContract")
    with BackgroundServer(sandbox.app) as server, httpx.Client(base_url=server.url) as http:
        with_in = http.get(
            "/Property", params={"$filter": "ListingKey in ('LK-0001')"}, headers=AUTH
        )
        with_or = http.get("/Property", params={"$filter": "ListingKey eq 'LK-0001'"}, headers=AUTH)
        events = http.get("/EntityEvent", headers=AUTH)
    assert with_in.status_code == 400
    assert with_or.json()["value"][0]["StandardStatus"] == "Active Under Contract"
    assert events.status_code == 200 and events.json()["value"]


def test_mls_grid_mode_requires_gzip() -> None:
    sandbox = build_sandbox(listings=1, behaviour=MlsBehaviour(vendor="mlsgrid"))
    with BackgroundServer(sandbox.app) as server, httpx.Client(base_url=server.url) as http:
        plain = http.get("/Property", headers={**AUTH, "Accept-Encoding": "identity"})
    assert plain.status_code == 400
