"""The benchmark's data: agents, each with their own MLS credential, connection and listings.

Every agent connects their own MLS account (one token, so one request budget, per
connection: each connection is a private feed of its user), holds `listings / connections`
listings, and has Facebook, LinkedIn and X connected. The sandbox MLS holds every listing once,
with ModificationTimestamps a second apart ending a day in the past: older than any
replication bookmark (which trails a run's start by the clock-skew margin), so an idle
incremental run finds nothing and a status flipped later is read again. (Distinct timestamps,
as an MLS's records have: a bookmark remembers the keys seen at its instant, and N records
sharing one would make it N keys long.)
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from mls_sync.domain.status import ListingStatus
from mls_sync.sandbox.platforms import PlatformSandbox
from mls_sync.sandbox.reso import ResoSandbox
from mls_sync.store import repositories as repo
from mls_sync.store.crypto import TokenCipher
from mls_sync.store.database import Database
from mls_sync.store.models import Listing, Post
from mls_sync.store.types import new_id, utcnow

PLATFORMS = ("facebook", "linkedin", "x")
# What a changed listing becomes in the MLS, in turn: sold (its posts come down), pending,
# withdrawn. Every listing starts Active on both sides.
CHANGES = ("Closed", "ActiveUnderContract", "Withdrawn")
SEED_AGE = timedelta(days=1)


@dataclass(frozen=True)
class Agent:
    user_id: str
    connection_id: str
    token: str  # the MLS credential the agent's connection uses (shared, in a shared feed)
    listing_keys: tuple[str, ...]
    feed_id: str = ""


@dataclass
class Fleet:
    """What was seeded, and what a sync of it must find."""

    agents: list[Agent]
    posts: dict[str, str] = field(default_factory=dict)  # listing key -> platform of its post

    @property
    def listing_count(self) -> int:
        return sum(len(a.listing_keys) for a in self.agents)

    def sold_posts(self, changes: dict[str, str]) -> int:
        """Posts that a sync applying `changes` must take down (those of sold listings)."""
        return sum(1 for key, status in changes.items() if status == "Closed" and key in self.posts)


def listing_key(n: int) -> str:
    return f"BK{n:06d}"


def assign_changes(keys: Sequence[str]) -> dict[str, str]:
    """The MLS status each of `keys` changes to, taking CHANGES in turn."""
    return {key: CHANGES[i % len(CHANGES)] for i, key in enumerate(keys)}


def split(listings: int, connections: int) -> list[range]:
    """Listing numbers per connection, as even as possible."""
    base, extra = divmod(listings, connections)
    ranges, start = [], 0
    for c in range(connections):
        size = base + (1 if c < extra else 0)
        ranges.append(range(start, start + size))
        start += size
    return ranges


def pick(keys: Sequence[str], share: float, rng: random.Random) -> list[str]:
    """round(share * len(keys)) keys, spread at random (deterministic for one seed)."""
    return sorted(rng.sample(list(keys), round(share * len(keys))))


async def seed_fleet(
    db: Database,
    cipher: TokenCipher,
    mls: ResoSandbox,
    platforms: PlatformSandbox,
    *,
    mls_url: str,
    listings: int,
    connections: int,
    posts: float,
    requests_per_second: float,
    seed: int = 1,
) -> Fleet:
    """Users, connections, platform connections, listings and posts in our database, and the
    same listings, at the same status, in the sandbox MLS. Each connection's budget is
    `requests_per_second` (a profile override, as the generic profile's own figure is 2/s)."""
    rng = random.Random(seed)
    all_keys = [listing_key(n) for n in range(listings)]
    with_posts = set(pick(all_keys, posts, rng))
    newest = datetime.now(UTC) - SEED_AGE
    for n, key in enumerate(all_keys):
        stamp = newest - timedelta(seconds=listings - 1 - n)
        mls.add_listing(key, mls_number_of(n), "Active", modification_timestamp=stamp)
    fleet = Fleet(agents=[])
    for c, numbers in enumerate(split(listings, connections)):
        token = f"bench-mls-token-{c}"
        mls.add_token(token)
        async with db.transaction() as session:
            user = await repo.create_user(session, f"agent{c}@bench.example")
            connection = await repo.create_mls_connection(
                session,
                cipher,
                user_id=user.id,
                base_url=mls_url,
                token=token,
                name=f"agent {c}",
                profile_overrides={"requests_per_second": requests_per_second},
            )
            for platform in PLATFORMS:
                platform_token = f"bench-{platform}-{c}"
                platforms.add_token(platform, platform_token)
                stored = await repo.upsert_platform_connection(
                    session, cipher, user_id=user.id, platform=platform, access_token=platform_token
                )
                # Looked after today: the cases measure the syncs' own requests (the token care
                # adds at most one request per platform connection a day, sync/token_care.py).
                stored.tokens_checked_at = utcnow()
            rows: list[Listing | Post] = []
            for n in numbers:
                key = all_keys[n]
                listing = Listing(
                    id=new_id(),
                    user_id=user.id,
                    mls_connection_id=connection.id,
                    feed_id=connection.feed_id,
                    listing_key=key,
                    mls_number=mls_number_of(n),
                    status=ListingStatus.ACTIVE,
                )
                rows.append(listing)
                if key in with_posts:
                    platform = PLATFORMS[n % len(PLATFORMS)]
                    post_id = post_id_for(platform, n)
                    platforms.add_post(platform, post_id)
                    fleet.posts[key] = platform
                    rows.append(
                        Post(listing_id=listing.id, platform=platform, platform_post_id=post_id)
                    )
            session.add_all(rows)
        fleet.agents.append(
            Agent(
                user.id,
                connection.id,
                token,
                tuple(all_keys[n] for n in numbers),
                connection.feed_id,
            )
        )
    return fleet


def flip(mls: ResoSandbox, fleet: Fleet, share: float, *, seed: int = 2) -> dict[str, str]:
    """Change `share` of the listings in the MLS, as they change between runs (each gets a
    new ModificationTimestamp); returns each changed key's new MLS status."""
    keys = [key for agent in fleet.agents for key in agent.listing_keys]
    changes = assign_changes(pick(keys, share, random.Random(seed)))
    for key, status in changes.items():
        mls.set_status(key, status)
    return changes


def mls_number_of(n: int) -> str:
    return f"BM{n:06d}"


def post_id_for(platform: str, n: int) -> str:
    if platform == "facebook":
        return f"1000_{n:06d}"
    if platform == "linkedin":
        return f"urn:li:share:{7000000000000000000 + n}"
    return str(1800000000000000000 + n)
