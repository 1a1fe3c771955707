"""The RESO StandardStatus mapping (DESIGN.md section 2)."""

import pytest

from mls_sync.domain.reso import (
    LISTING_NOT_FOUND,
    ListingGoneError,
    StatusMapper,
    StatusMappingError,
    map_standard_status,
)
from mls_sync.domain.status import ListingStatus as S


@pytest.mark.parametrize(
    ("wire", "ours"),
    [
        ("ComingSoon", S.COMING_SOON),
        ("Active", S.ACTIVE),
        ("ActiveUnderContract", S.PENDING),
        ("Pending", S.PENDING),
        ("Closed", S.SOLD),
        ("Withdrawn", S.OFF_MARKET),
        ("Expired", S.OFF_MARKET),
        ("Canceled", S.OFF_MARKET),
        ("Hold", S.OFF_MARKET),
    ],
)
def test_enum_form_maps_to_our_status(wire: str, ours: S) -> None:
    assert map_standard_status(wire) is ours


@pytest.mark.parametrize(
    ("label", "ours"),
    [
        ("Coming Soon", S.COMING_SOON),
        ("Active Under Contract", S.PENDING),
        ("active under contract", S.PENDING),
        ("CLOSED", S.SOLD),
    ],
)
def test_label_form_maps_like_the_enum_form(label: str, ours: S) -> None:
    assert map_standard_status(label) is ours


@pytest.mark.parametrize("wire", ["Sold!", "Leased", "Contingent", "ActiveContingent"])
def test_unknown_value_is_an_error_never_a_guess(wire: str) -> None:
    with pytest.raises(StatusMappingError, match="Unknown MLS status"):
        map_standard_status(wire)


@pytest.mark.parametrize("wire", ["Delete", "Incomplete"])
def test_deleted_or_incomplete_record_reads_as_not_found(wire: str) -> None:
    with pytest.raises(ListingGoneError) as caught:
        map_standard_status(wire)
    assert str(caught.value) == LISTING_NOT_FOUND


@pytest.mark.parametrize("wire", [None, "", "   ", 42, ["Active"]])
def test_missing_or_non_text_status_is_an_error(wire: object) -> None:
    with pytest.raises(StatusMappingError):
        map_standard_status(wire)


def test_connection_overrides_add_a_local_vocabulary() -> None:
    mapper = StatusMapper({"Contingent": "pending", "Sold": "sold"})
    assert mapper.map("Contingent") is S.PENDING
    assert mapper.map("Sold") is S.SOLD
    assert mapper.map("Active") is S.ACTIVE


def test_override_to_an_unknown_status_is_refused_up_front() -> None:
    with pytest.raises(ValueError, match="not one of"):
        StatusMapper({"Contingent": "under_offer"})
