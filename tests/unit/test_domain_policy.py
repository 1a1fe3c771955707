"""The transition policy table, row by row (product spec, 'Status Transitions')."""

import pytest

from mls_sync.domain.policy import Action, TransitionPolicy, decide
from mls_sync.domain.status import ListingStatus as S


@pytest.mark.parametrize(("old", "new"), [(S.ACTIVE, S.SOLD), (S.PENDING, S.SOLD)])
def test_selling_updates_and_unpublishes_posts(old: S, new: S) -> None:
    decision = decide(old, new)
    assert decision.actions == {Action.UPDATE, Action.UNPUBLISH_POSTS}
    assert decision.unpublishes_posts


def test_active_to_pending_only_updates() -> None:
    assert decide(S.ACTIVE, S.PENDING).actions == {Action.UPDATE}


def test_pending_back_to_active_counts_a_restoration() -> None:
    decision = decide(S.PENDING, S.ACTIVE)
    assert decision.is_restoration
    assert not decision.unpublishes_posts


def test_sold_to_active_is_a_relisting_without_unpublishing() -> None:
    decision = decide(S.SOLD, S.ACTIVE)
    assert decision.is_relisting
    assert not decision.unpublishes_posts
    assert not decision.is_restoration


@pytest.mark.parametrize("old", [S.ACTIVE, S.PENDING, S.COMING_SOON, S.SOLD])
def test_any_status_to_off_market_updates_only_by_default(old: S) -> None:
    assert decide(old, S.OFF_MARKET).actions == {Action.UPDATE}


def test_off_market_unpublishing_can_be_switched_on() -> None:
    policy = TransitionPolicy(unpublish_when_off_market=True)
    assert policy.decide(S.ACTIVE, S.OFF_MARKET).unpublishes_posts


@pytest.mark.parametrize(
    ("old", "new"),
    [(S.COMING_SOON, S.ACTIVE), (S.OFF_MARKET, S.ACTIVE), (S.SOLD, S.PENDING)],
)
def test_other_changes_update_only(old: S, new: S) -> None:
    assert decide(old, new).actions == {Action.UPDATE}


@pytest.mark.parametrize("status", list(S))
def test_no_change_means_no_action(status: S) -> None:
    decision = decide(status, status)
    assert not decision.changed
    assert decision.actions == frozenset()
