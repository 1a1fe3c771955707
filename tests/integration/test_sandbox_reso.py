"""The sandbox RESO Web API server, exercised over real HTTP as an MLS client would."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from mls_sync.sandbox.reso import ResoSandbox
from mls_sync.sandbox.server import BackgroundServer

TOKEN = "sandbox-token"
T0 = datetime(2026, 11, 29, 1, 2, 3, 456000, tzinfo=UTC)

Serve = Callable[[ResoSandbox], httpx.Client]


class CurrentSandbox:
    """An ASGI app forwarding to whichever sandbox the running test serves, so one real
    server (started once per module) can serve a fresh sandbox per test."""

    def __init__(self) -> None:
        self.sandbox = ResoSandbox()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.sandbox.app(scope, receive, send)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[BackgroundServer, CurrentSandbox]]:
    current = CurrentSandbox()
    with BackgroundServer(current) as running:
        yield running, current


@pytest.fixture
def serve(server: tuple[BackgroundServer, CurrentSandbox]) -> Iterator[Serve]:
    """Serve a sandbox over real HTTP; answer a client authenticated with TOKEN."""
    running, current = server
    clients: list[httpx.Client] = []

    def start(sandbox: ResoSandbox) -> httpx.Client:
        current.sandbox = sandbox
        client = httpx.Client(base_url=running.url, headers={"Authorization": f"Bearer {TOKEN}"})
        clients.append(client)
        return client

    yield start
    for client in clients:
        client.close()


@pytest.fixture
def sandbox() -> ResoSandbox:
    reso = ResoSandbox()
    for n in range(1, 6):
        reso.add_listing(f"K{n}", f"MLS{n}", "Active", list_price=100_000 * n)
    return reso


@pytest.fixture
def client(serve: Serve, sandbox: ResoSandbox) -> httpx.Client:
    return serve(sandbox)


def query(client: httpx.Client, **params: str) -> httpx.Response:
    """GET /Property with OData options given as filter=..., select=... (no `$` in Python)."""
    return client.get("/Property", params={f"${k}": v for k, v in params.items()})


def keys(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [record["ListingKey"] for record in response.json()["value"]]


def base_of(client: httpx.Client) -> str:
    return str(client.base_url).rstrip("/")


def error_of(response: httpx.Response) -> dict[str, Any]:
    return response.json()["error"]


# -- $filter -------------------------------------------------------------------------------------


def test_filter_by_listing_key_in_list_returns_only_those(client: httpx.Client) -> None:
    assert keys(query(client, filter="ListingKey in ('K4','K2','nope')")) == ["K2", "K4"]


def test_filter_by_or_chain_of_listing_keys(client: httpx.Client) -> None:
    response = query(
        client, filter="ListingKey eq 'K1' or ListingKey eq 'K3' or ListingKey eq 'K5'"
    )
    assert keys(response) == ["K1", "K3", "K5"]


def test_filter_by_listing_id(client: httpx.Client) -> None:
    assert keys(query(client, filter="ListingId eq 'MLS3'")) == ["K3"]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("ListPrice gt 300000", ["K4", "K5"]),
        ("ListPrice le 200000.5 and ListingKey ne 'K1'", ["K2"]),
        ("not (ListingKey in ('K1','K2','K3'))", ["K4", "K5"]),
        ("(ListingKey eq 'K1' or ListingKey eq 'K2') and ListPrice ge 200000", ["K2"]),
        ("ListingKey eq 'K1' or ListingKey eq 'K2' and ListPrice ge 200000", ["K1", "K2"]),
        ("ListPrice eq null", []),
    ],
)
def test_filter_supports_comparisons_logic_and_precedence(
    client: httpx.Client, expression: str, expected: list[str]
) -> None:
    assert keys(query(client, filter=expression)) == expected


def test_string_literals_unescape_doubled_quotes(serve: Serve) -> None:
    sandbox = ResoSandbox()
    sandbox.add_listing("O'Brien-1", "MLS1", "Active")
    assert keys(query(serve(sandbox), filter="ListingKey eq 'O''Brien-1'")) == ["O'Brien-1"]


@pytest.mark.parametrize(
    "expression",
    [
        "ListingKey eq",
        "ListingKey eq 'K1",
        "(ListingKey eq 'K1'",
        "ListingKey equals 'K1'",
        "ListingKey eq 'K1' K2",
        "ListPrice eq 'cheap'",
        "ModificationTimestamp ge '2026-11-29T00:00:00Z'",
        "contains(ListingKey,'K')",
        "ListingKey eq 'K1' ; drop",
        "",
    ],
)
def test_unparsable_filter_is_a_400_odata_error(client: httpx.Client, expression: str) -> None:
    response = query(client, filter=expression)
    assert response.status_code == 400
    assert error_of(response)["code"] == "BadRequest"
    assert error_of(response)["message"]


def test_unknown_filter_field_is_a_400_naming_the_field(client: httpx.Client) -> None:
    response = query(client, filter="MlsNumber eq 'MLS1'")
    assert response.status_code == 400
    assert "MlsNumber" in error_of(response)["message"]


# -- $select, $orderby, $count -------------------------------------------------------------------


def test_select_returns_only_the_selected_fields(client: httpx.Client) -> None:
    body = query(client, select="ListingKey,StandardStatus", filter="ListingKey eq 'K1'").json()
    assert body["value"] == [{"ListingKey": "K1", "StandardStatus": "Active"}]


def test_unknown_select_field_is_a_400(client: httpx.Client) -> None:
    response = query(client, select="ListingKey,Bedrooms")
    assert response.status_code == 400
    assert "Bedrooms" in error_of(response)["message"]


def test_records_carry_reso_field_names_and_z_timestamps(serve: Serve) -> None:
    sandbox = ResoSandbox()
    sandbox.add_listing("K1", "MLS1", "Closed", list_price=5, modification_timestamp=T0)
    assert query(serve(sandbox)).json()["value"] == [
        {
            "ListingKey": "K1",
            "ListingId": "MLS1",
            "StandardStatus": "Closed",
            "ModificationTimestamp": "2026-11-29T01:02:03.456Z",
            "OriginatingSystemName": "sandbox",
            "ListPrice": 5,
        }
    ]


def test_orderby_desc_reverses_the_default_listing_key_order(client: httpx.Client) -> None:
    assert keys(query(client, orderby="ListPrice desc")) == ["K5", "K4", "K3", "K2", "K1"]


def test_count_true_reports_every_match_not_just_the_page(serve: Serve) -> None:
    sandbox = ResoSandbox(max_page_size=2)
    for n in range(5):
        sandbox.add_listing(f"K{n}", f"MLS{n}", "Active")
    body = query(serve(sandbox), count="true").json()
    assert body["@odata.count"] == 5
    assert len(body["value"]) == 2


def test_body_carries_the_odata_context(client: httpx.Client) -> None:
    body = query(client).json()
    assert body["@odata.context"] == f"{base_of(client)}/$metadata#Property"
    assert "@odata.nextLink" not in body


# -- paging --------------------------------------------------------------------------------------


def fetch_all(client: httpx.Client, **params: str) -> tuple[list[str], int]:
    """Follow @odata.nextLink to the end; return the keys and the number of pages."""
    response = query(client, **params)
    found, pages = keys(response), 1
    while next_link := response.json().get("@odata.nextLink"):
        assert next_link.startswith(base_of(client) + "/Property?")
        response = client.get(next_link)
        found, pages = found + keys(response), pages + 1
    return found, pages


def test_paging_follows_next_links_and_returns_every_record_once(serve: Serve) -> None:
    sandbox = ResoSandbox(max_page_size=3)
    for n in range(10):
        sandbox.add_listing(f"K{n:02}", f"MLS{n}", "Active")
    found, pages = fetch_all(serve(sandbox))
    assert found == [f"K{n:02}" for n in range(10)]
    assert pages == 4


def test_next_link_keeps_the_filter_and_select(serve: Serve) -> None:
    sandbox = ResoSandbox(max_page_size=2)
    for n in range(6):
        sandbox.add_listing(f"K{n}", f"MLS{n}", "Closed" if n % 2 else "Active")
    found, pages = fetch_all(
        serve(sandbox), filter="StandardStatus eq 'Closed'", select="ListingKey"
    )
    assert (found, pages) == (["K1", "K3", "K5"], 2)


def test_top_caps_the_total_across_pages(serve: Serve) -> None:
    sandbox = ResoSandbox(max_page_size=2)
    for n in range(10):
        sandbox.add_listing(f"K{n}", f"MLS{n}", "Active")
    found, pages = fetch_all(serve(sandbox), top="5")
    assert (found, pages) == (["K0", "K1", "K2", "K3", "K4"], 3)


def test_skip_starts_later_in_the_default_order(client: httpx.Client) -> None:
    assert keys(query(client, skip="3")) == ["K4", "K5"]


@pytest.mark.parametrize(("option", "value"), [("top", "-1"), ("top", "ten"), ("skip", "1.5")])
def test_bad_top_or_skip_is_a_400(client: httpx.Client, option: str, value: str) -> None:
    response = query(client, **{option: value})
    assert response.status_code == 400
    assert f"${option}" in error_of(response)["message"]


# -- auth ----------------------------------------------------------------------------------------


def test_missing_token_is_a_401_with_bearer_challenge(client: httpx.Client) -> None:
    response = httpx.get(f"{base_of(client)}/Property")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert error_of(response)["code"] == "Unauthorized"


def test_revoked_token_is_a_401_and_a_new_token_works(
    client: httpx.Client, sandbox: ResoSandbox
) -> None:
    sandbox.revoke_token(TOKEN)
    assert query(client).status_code == 401
    sandbox.add_token("fresh")
    assert query(client, top="1").status_code == 401
    assert client.get("/Property", headers={"Authorization": "Bearer fresh"}).status_code == 200


# -- state changes -------------------------------------------------------------------------------


def test_set_status_changes_the_answer_and_bumps_the_timestamp(
    client: httpx.Client, sandbox: ResoSandbox
) -> None:
    before = sandbox.listing("K2").modification_timestamp
    sandbox.set_status("K2", "Closed")
    record = query(client, filter="ListingKey eq 'K2'").json()["value"][0]
    assert record["StandardStatus"] == "Closed"
    assert datetime.fromisoformat(record["ModificationTimestamp"]) > before


def test_set_status_timestamps_strictly_increase() -> None:
    sandbox = ResoSandbox()
    sandbox.add_listing("K1", "MLS1", "Active")
    stamps = []
    for status in ["Pending", "Active", "Closed", "Active"] * 5:
        sandbox.set_status("K1", status)
        stamps.append(sandbox.listing("K1").modification_timestamp)
    assert all(earlier < later for earlier, later in itertools.pairwise(stamps))


def test_set_status_moves_past_a_future_timestamp() -> None:
    sandbox = ResoSandbox()
    sandbox.add_listing("K1", "MLS1", "Active", modification_timestamp=T0 + timedelta(days=999))
    sandbox.add_listing("K2", "MLS2", "Active")
    sandbox.set_status("K2", "Closed")
    assert (
        sandbox.listing("K2").modification_timestamp > sandbox.listing("K1").modification_timestamp
    )


def test_removed_listing_is_no_longer_returned(client: httpx.Client, sandbox: ResoSandbox) -> None:
    sandbox.remove_listing("K3")
    assert keys(query(client, filter="ListingKey in ('K2','K3')")) == ["K2"]
    with pytest.raises(KeyError):
        sandbox.listing("K3")


def test_label_form_status_values_pass_through_unchanged(
    client: httpx.Client, sandbox: ResoSandbox
) -> None:
    sandbox.set_status("K1", "Active Under Contract")
    response = query(client, filter="StandardStatus eq 'Active Under Contract'")
    assert response.json()["value"][0]["StandardStatus"] == "Active Under Contract"


def test_replication_by_modification_timestamp_ge_in_timestamp_order(serve: Serve) -> None:
    sandbox = ResoSandbox()
    for key, minutes in [("A", 30), ("B", 10), ("C", 20), ("D", 0)]:
        sandbox.add_listing(
            key, key, "Active", modification_timestamp=T0 + timedelta(minutes=minutes)
        )
    response = query(
        serve(sandbox),
        filter="ModificationTimestamp ge 2026-11-29T01:12:03.456Z",
        orderby="ModificationTimestamp asc",
    )
    assert keys(response) == ["B", "C", "A"]


def test_timestamp_literals_compare_as_instants_across_offsets(serve: Serve) -> None:
    sandbox = ResoSandbox()
    sandbox.add_listing("K1", "MLS1", "Active", modification_timestamp=T0)
    client = serve(sandbox)
    assert keys(query(client, filter="ModificationTimestamp eq 2026-11-29T02:02:03.456+01:00"))
    assert not keys(query(client, filter="ModificationTimestamp gt 2026-11-29T01:02:03.4561Z"))


# -- fault injection and observation ------------------------------------------------------------


def test_fail_next_answers_the_next_requests_in_order_then_recovers(
    client: httpx.Client, sandbox: ResoSandbox
) -> None:
    sandbox.fail_next.extend([503, 500, 401])
    statuses = [query(client).status_code for _ in range(4)]
    assert statuses == [503, 500, 401, 200]
    assert sandbox.fail_next == []


def test_injected_failures_carry_an_odata_error_body(
    client: httpx.Client, sandbox: ResoSandbox
) -> None:
    sandbox.fail_next.append(503)
    assert error_of(query(client))["code"] == "ServiceUnavailable"


def test_slow_keys_delay_only_the_request_that_mentions_the_key(
    client: httpx.Client, sandbox: ResoSandbox
) -> None:
    # Wide margins both ways: a loaded CI machine may take seconds over a fast answer, so the
    # fast request may wait 5 s while the slow key sleeps 3 s against a 1 s timeout.
    sandbox.slow_keys["K2"] = 3.0
    fast = client.get("/Property", params={"$filter": "ListingKey in ('K1','K3')"}, timeout=5.0)
    assert keys(fast) == ["K1", "K3"]
    with pytest.raises(httpx.ReadTimeout):
        client.get("/Property", params={"$filter": "ListingKey in ('K2')"}, timeout=1.0)


def test_latency_delays_every_answer(client: httpx.Client, sandbox: ResoSandbox) -> None:
    sandbox.latency = 0.2
    assert query(client).elapsed.total_seconds() >= 0.2


def test_every_property_request_is_recorded(client: httpx.Client, sandbox: ResoSandbox) -> None:
    query(client, filter="ListingKey eq 'K1'")
    httpx.get(f"{base_of(client)}/Property")
    assert sandbox.request_count == 2
    first, second = sandbox.requests
    assert first.params == {"$filter": "ListingKey eq 'K1'"}
    assert first.token == TOKEN
    assert first.headers["authorization"] == f"Bearer {TOKEN}"
    assert (first.method, first.path) == ("GET", "/Property")
    assert second.token is None


# -- service document and metadata ---------------------------------------------------------------


def test_service_document_names_the_property_entity_set(client: httpx.Client) -> None:
    body = client.get("/").json()
    assert {"name": "Property", "kind": "EntitySet", "url": "Property"} in body["value"]


def test_metadata_is_csdl_naming_property_and_its_fields(client: httpx.Client) -> None:
    response = client.get("/$metadata")
    assert response.headers["content-type"].startswith("application/xml")
    assert '<EntityType Name="Property">' in response.text
    assert '<Property Name="ModificationTimestamp" Type="Edm.DateTimeOffset"' in response.text


def test_mls_grid_mode_pages_by_top_and_follows_on_with_next_links(serve: Serve) -> None:
    """MLS Grid's $top is the page size, not a cap on the answer: every record arrives, a
    page of $top at a time, each nextLink keeping $top and moving $skip on."""
    reso = ResoSandbox(max_page_size=5000)
    reso.vendor = "mlsgrid"
    for n in range(12):
        reso.add_listing(f"K{n:02d}", f"MLS{n}", "Active", originating_system_name="mred")
    client = serve(reso)
    url: str | None = "/Property"
    params: dict[str, str] | None = {
        "$filter": "OriginatingSystemName eq 'mred'",
        "$top": "5",
        "$orderby": "ListingKey",
    }
    pages: list[list[str]] = []
    while url is not None:
        response = client.get(url, params=params, headers={"Accept-Encoding": "gzip"})
        pages.append(keys(response))
        url, params = response.json().get("@odata.nextLink"), None
        if url is not None:
            assert "%24top=5" in url or "$top=5" in url
    assert [len(page) for page in pages] == [5, 5, 2]
    assert [key for page in pages for key in page] == [f"K{n:02d}" for n in range(12)]
