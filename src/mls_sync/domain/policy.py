"""The transition policy: a table of `(old, new) -> actions`, as data (DESIGN.md section 2).

Every change updates our listing; the table says what else happens. Rows not in the table get
`UPDATE` only. `ANY` matches every old status, so `(ANY, off_market)` covers withdrawals.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from mls_sync.domain.status import ListingStatus as S


class Action(StrEnum):
    UPDATE = "update"
    UNPUBLISH_POSTS = "unpublish_posts"
    COUNT_RESTORATION = "count_restoration"
    RELISTING = "relisting"


ANY = "*"

DEFAULT_POLICY: Mapping[tuple[str, S], frozenset[Action]] = {
    (S.ACTIVE, S.SOLD): frozenset({Action.UPDATE, Action.UNPUBLISH_POSTS}),
    (S.ACTIVE, S.PENDING): frozenset({Action.UPDATE}),
    (S.PENDING, S.ACTIVE): frozenset({Action.UPDATE, Action.COUNT_RESTORATION}),
    (S.PENDING, S.SOLD): frozenset({Action.UPDATE, Action.UNPUBLISH_POSTS}),
    (S.SOLD, S.ACTIVE): frozenset({Action.UPDATE, Action.RELISTING}),
    (ANY, S.OFF_MARKET): frozenset({Action.UPDATE}),
}


@dataclass(frozen=True)
class Decision:
    old: S
    new: S
    actions: frozenset[Action]

    @property
    def changed(self) -> bool:
        return self.old is not self.new

    @property
    def unpublishes_posts(self) -> bool:
        return Action.UNPUBLISH_POSTS in self.actions

    @property
    def is_restoration(self) -> bool:
        return Action.COUNT_RESTORATION in self.actions

    @property
    def is_relisting(self) -> bool:
        return Action.RELISTING in self.actions


class TransitionPolicy:
    def __init__(
        self,
        rows: Mapping[tuple[str, S], frozenset[Action]] = DEFAULT_POLICY,
        *,
        unpublish_when_off_market: bool = False,
    ) -> None:
        table = dict(rows)
        if unpublish_when_off_market:
            table[(ANY, S.OFF_MARKET)] = frozenset({Action.UPDATE, Action.UNPUBLISH_POSTS})
        self._rows = table

    def decide(self, old: S, new: S) -> Decision:
        if old is new:
            return Decision(old, new, frozenset())
        actions = self._rows.get((old, new)) or self._rows.get((ANY, new)) or {Action.UPDATE}
        return Decision(old, new, frozenset(actions))


DEFAULT = TransitionPolicy()


def decide(old: S, new: S) -> Decision:
    return DEFAULT.decide(old, new)
