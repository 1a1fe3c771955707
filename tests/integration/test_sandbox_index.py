"""The sandbox MLS finds candidates by key or timestamp (as an MLS's indexes do) instead of
scanning every listing, and still answers exactly what the filter says."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from mls_sync.sandbox.odata import FieldType, narrowing_of, parse_filter
from mls_sync.sandbox.reso import ResoSandbox, format_timestamp
from mls_sync.sandbox.server import BackgroundServer

FIELDS = {
    "ListingKey": FieldType.STRING,
    "StandardStatus": FieldType.STRING,
    "ModificationTimestamp": FieldType.DATETIME,
}
LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)


def test_key_lists_and_eq_chains_narrow_to_their_keys() -> None:
    in_list = narrowing_of(parse_filter("ListingKey in ('A','B')", FIELDS))
    chain = narrowing_of(parse_filter("ListingKey eq 'A' or ListingKey eq 'C'", FIELDS))
    anded = narrowing_of(
        parse_filter("ListingKey in ('A','B') and StandardStatus eq 'Active'", FIELDS)
    )

    assert in_list.values["ListingKey"] == {"A", "B"}
    assert chain.values["ListingKey"] == {"A", "C"}
    assert anded.values == {"ListingKey": {"A", "B"}, "StandardStatus": {"Active"}}


def test_what_cannot_be_narrowed_is_not() -> None:
    mixed_or = narrowing_of(parse_filter("ListingKey eq 'A' or StandardStatus eq 'X'", FIELDS))
    negated = narrowing_of(parse_filter("not (ListingKey eq 'A')", FIELDS))
    unequal = narrowing_of(parse_filter("ListingKey ne 'A'", FIELDS))

    assert mixed_or.values == {} and negated.values == {} and unequal.values == {}


def test_a_timestamp_lower_bound_narrows_to_the_latest_of_its_bounds() -> None:
    text = (
        "ModificationTimestamp ge 2026-01-01T00:00:00Z and "
        "ModificationTimestamp gt 2026-02-01T00:00:00Z"
    )

    bound = narrowing_of(parse_filter(text, FIELDS)).at_least["ModificationTimestamp"]

    assert bound == datetime(2026, 2, 1, tzinfo=UTC)


@pytest.fixture
def mls() -> Iterator[tuple[ResoSandbox, httpx.Client]]:
    reso = ResoSandbox(tokens=["t"])
    for n in range(300):
        reso.add_listing(f"K{n:03d}", f"M{n:03d}", "Active", modification_timestamp=LONG_AGO)
    with (
        BackgroundServer(reso.app) as server,
        httpx.Client(base_url=server.url, headers={"Authorization": "Bearer t"}) as client,
    ):
        yield reso, client


def _keys(client: httpx.Client, filter_text: str) -> list[str]:
    response = client.get("/Property", params={"$filter": filter_text, "$select": "ListingKey"})
    response.raise_for_status()
    return [record["ListingKey"] for record in response.json()["value"]]


def test_a_key_query_answers_only_listings_that_exist_and_match(
    mls: tuple[ResoSandbox, httpx.Client],
) -> None:
    reso, client = mls
    reso.set_status("K002", "Closed")

    found = _keys(client, "ListingKey in ('K001','K002','NOPE') and StandardStatus eq 'Active'")

    assert found == ["K001"]


def test_a_replication_query_sees_every_change_made_after_an_earlier_query(
    mls: tuple[ResoSandbox, httpx.Client],
) -> None:
    reso, client = mls
    since = format_timestamp(LONG_AGO + timedelta(seconds=1))
    assert _keys(client, f"ModificationTimestamp ge {since}") == []

    reso.set_status("K150", "Closed")
    reso.add_listing("K999", "M999", "Active")
    reso.remove_listing("K001")

    assert _keys(client, f"ModificationTimestamp ge {since}") == ["K150", "K999"]
    assert len(_keys(client, "ModificationTimestamp ge 2019-01-01T00:00:00Z")) == 200  # a page
