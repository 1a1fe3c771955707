"""The feeds benchmark's data: one MLS Grid market, the agents who hold some of its listings,
and, for comparison, the same agents the per-agent way and agents with private feeds.

- The market: `records` Property records in an MLS Grid-mode sandbox (every request filters on
  its OriginatingSystemName, MARKET_SYSTEM), ModificationTimestamps a minute apart ending a day
  ago (an MLS's history: older than any bookmark, and distinct, as records' timestamps are),
  one vendor credential.
- The shared feed: the operator's (`owner_user_id=None`, provider "mlsgrid"), and `agents`
  users who joined it, each holding `held` listings of the market (under their
  ListAgentMlsId), `posts` of those with a published post on Facebook, LinkedIn or X.
- The per-agent model: `sample` more users, each with a connection of their own on the same
  vendor credential (a private feed each, as `repo.create_mls_connection` makes), holding the
  same listings as the first `sample` members, with posts of their own.
- Private feeds: a second sandbox MLS, a per-agent system (Spark's OpenID logins, Rapattoni's
  member logins), where each of `private_agents` users has a credential of their own.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from mls_sync.bench.fleet import PLATFORMS, SEED_AGE, Agent, assign_changes, pick, post_id_for
from mls_sync.domain.status import ListingStatus
from mls_sync.sandbox.platforms import PlatformSandbox
from mls_sync.sandbox.reso import ResoSandbox
from mls_sync.store import repositories as repo
from mls_sync.store.crypto import TokenCipher
from mls_sync.store.database import Database
from mls_sync.store.interface import UnitOfWork
from mls_sync.store.models import Listing, MlsConnection, Post
from mls_sync.store.types import new_id, utcnow

MARKET_SYSTEM = "benchmls"  # the market's OriginatingSystemName (an MLS Grid feed's MLS)
VENDOR_TOKEN = "bench-mlsgrid-vendor-token"  # MLS Grid's one credential for the whole market
RECORD_SPACING = timedelta(minutes=1)


def market_key(n: int) -> str:
    return f"MK{n:07d}"


def market_listing_id(n: int) -> str:
    return f"ML{n:07d}"


def private_key(n: int) -> str:
    return f"PK{n:06d}"


def mlsgrid_overrides(rps: float) -> dict[str, Any]:
    """The shared feed's (and the per-agent model's) profile overrides."""
    return {
        "originating_system_name": MARKET_SYSTEM,
        "requests_per_second": rps,
    }


@dataclass
class Market:
    """What was seeded, and what syncs of it must find."""

    feed_id: str
    keys: list[str]  # every record of the market, oldest first
    members: list[Agent]  # the shared feed's members
    posts: dict[str, str] = field(default_factory=dict)  # held key -> platform of its post
    listing_ids: dict[str, str] = field(default_factory=dict)  # held key -> our listing id
    post_ids: dict[str, str] = field(default_factory=dict)  # held key -> our post id
    solo: list[Agent] = field(default_factory=list)  # the per-agent model
    solo_posts: set[str] = field(default_factory=set)  # keys the per-agent model posted
    private: list[Agent] = field(default_factory=list)  # private feeds, own credentials

    @property
    def held(self) -> set[str]:
        return {key for agent in self.members for key in agent.listing_keys}

    @property
    def held_count(self) -> int:
        return sum(len(agent.listing_keys) for agent in self.members)

    def shared_plan(self) -> dict[str, list[str]]:
        return {self.feed_id: [agent.connection_id for agent in self.members]}

    def solo_plan(self) -> dict[str, list[str]]:
        return {agent.feed_id: [agent.connection_id] for agent in self.solo}

    def private_plan(self) -> dict[str, list[str]]:
        return {agent.feed_id: [agent.connection_id] for agent in self.private}

    def held_changes(self, changes: dict[str, str], agents: Sequence[Agent]) -> dict[str, str]:
        """The changes that touch a listing these agents hold."""
        keys = {key for agent in agents for key in agent.listing_keys}
        return {key: status for key, status in changes.items() if key in keys}

    def sold_posts(self, changes: dict[str, str], posted: set[str] | None = None) -> int:
        """Posts that applying `changes` must take down (those of sold listings)."""
        posted = set(self.posts) if posted is None else posted
        return sum(1 for key, status in changes.items() if status == "Closed" and key in posted)


async def seed_market(
    db: Database,
    cipher: TokenCipher,
    mls: ResoSandbox,
    platforms: PlatformSandbox,
    *,
    mls_url: str,
    records: int,
    agents: int,
    held: int,
    posts: float,
    rps: float,
    seed: int = 1,
) -> Market:
    """The market in the sandbox, the shared feed and its members (with their listings, posts
    and platform connections) in our database."""
    if agents * held > records:
        raise ValueError(f"{agents} agents holding {held} each need {agents * held} records")
    rng = random.Random(seed)
    keys = [market_key(n) for n in range(records)]
    numbers = rng.sample(range(records), agents * held)
    holdings = [sorted(numbers[a * held : (a + 1) * held]) for a in range(agents)]
    agent_of = {n: a for a, ns in enumerate(holdings) for n in ns}
    newest = datetime.now(UTC) - SEED_AGE
    mls.add_token(VENDOR_TOKEN)
    for n, key in enumerate(keys):
        holder = agent_of.get(n)
        mls.add_listing(
            key,
            market_listing_id(n),
            "Active",
            modification_timestamp=newest - RECORD_SPACING * (records - 1 - n),
            originating_system_name=MARKET_SYSTEM,
            list_agent_mls_id=None if holder is None else _agent_mls_id(holder),
        )
    with_posts = set(pick([keys[n] for n in numbers], posts, rng))
    async with db.transaction() as session:
        feed = await repo.create_feed(
            session,
            cipher,
            owner_user_id=None,
            base_url=mls_url,
            secret=VENDOR_TOKEN,
            name="Bench MLS (MLS Grid)",
            provider="mlsgrid",
            profile_overrides=mlsgrid_overrides(rps),
        )
    market = Market(feed_id=feed.id, keys=keys, members=[])
    for a, ns in enumerate(holdings):
        async with db.transaction() as session:
            user = await repo.create_user(session, f"agent{a}@bench.example")
            connection = await repo.join_feed(
                session,
                user_id=user.id,
                feed=feed,
                name=f"agent {a}",
                agent_mls_id=_agent_mls_id(a),
            )
            await _connect_platforms(session, cipher, platforms, user.id, f"agent{a}")
            rows, ids = _listings(connection, ns, with_posts, platforms, copy=0)
            session.add_all(rows)
        for n in ns:
            key = keys[n]
            market.listing_ids[key] = ids[key][0]
            if key in with_posts:
                market.posts[key] = PLATFORMS[n % len(PLATFORMS)]
                market.post_ids[key] = ids[key][1]
        market.members.append(
            Agent(user.id, connection.id, VENDOR_TOKEN, tuple(keys[n] for n in ns), feed.id)
        )
    return market


async def seed_per_agent(
    db: Database,
    cipher: TokenCipher,
    platforms: PlatformSandbox,
    market: Market,
    *,
    mls_url: str,
    sample: int,
    rps: float,
) -> None:
    """The per-agent model on the same market: `sample` users, each with their own connection
    (a private feed) on the one vendor credential, holding what the first `sample` members
    hold, with posts of their own on the same listings."""
    numbers = {key: n for n, key in enumerate(market.keys)}
    for a, member in enumerate(market.members[:sample]):
        async with db.transaction() as session:
            user = await repo.create_user(session, f"solo{a}@bench.example")
            connection = await repo.create_mls_connection(
                session,
                cipher,
                user_id=user.id,
                base_url=mls_url,
                token=VENDOR_TOKEN,
                name=f"solo {a}",
                provider="mlsgrid",
                profile_overrides=mlsgrid_overrides(rps),
            )
            await _connect_platforms(session, cipher, platforms, user.id, f"solo{a}")
            ns = [numbers[key] for key in member.listing_keys]
            posted = {key for key in member.listing_keys if key in market.posts}
            rows, _ = _listings(connection, ns, posted, platforms, copy=1)
            session.add_all(rows)
        market.solo_posts |= posted
        market.solo.append(
            Agent(user.id, connection.id, VENDOR_TOKEN, member.listing_keys, connection.feed_id)
        )


async def seed_private(
    db: Database,
    cipher: TokenCipher,
    mls: ResoSandbox,
    market: Market,
    *,
    mls_url: str,
    agents: int,
    held: int,
    rps: float,
) -> None:
    """Agents of a per-agent system, each with a credential, so a private feed, of their own;
    the sandbox holds their listings (`held` each) and nothing else."""
    newest = datetime.now(UTC) - SEED_AGE
    total = agents * held
    for n in range(total):
        mls.add_listing(
            private_key(n),
            f"PL{n:06d}",
            "Active",
            modification_timestamp=newest - RECORD_SPACING * (total - 1 - n),
        )
    for a in range(agents):
        token = f"bench-agent-token-{a}"
        mls.add_token(token)
        ns = range(a * held, (a + 1) * held)
        async with db.transaction() as session:
            user = await repo.create_user(session, f"private{a}@bench.example")
            connection = await repo.create_mls_connection(
                session,
                cipher,
                user_id=user.id,
                base_url=mls_url,
                token=token,
                name=f"private {a}",
                profile_overrides={"requests_per_second": rps},
            )
            session.add_all(
                [
                    Listing(
                        id=new_id(),
                        user_id=user.id,
                        mls_connection_id=connection.id,
                        feed_id=connection.feed_id,
                        listing_key=private_key(n),
                        mls_number=f"PL{n:06d}",
                        status=ListingStatus.ACTIVE,
                    )
                    for n in ns
                ]
            )
        market.private.append(
            Agent(user.id, connection.id, token, tuple(map(private_key, ns)), connection.feed_id)
        )


def change_market(
    mls: ResoSandbox, market: Market, share: float, *, seed: int = 2
) -> dict[str, str]:
    """Change `share` of the market's records, picked at random over the whole market (held or
    not), as they change between runs (each gets a new ModificationTimestamp, now); returns
    each changed key's new MLS status."""
    changes = assign_changes(pick(market.keys, share, random.Random(seed)))
    for key, status in changes.items():
        mls.set_status(key, status)
    return changes


def restamp(mls: ResoSandbox, key: str, status: str, at: datetime) -> None:
    """The record's status changed at `at` (its ModificationTimestamp), the rest kept."""
    current = dataclasses.asdict(mls.listing(key))
    for name in ("listing_key", "listing_id", "standard_status", "modification_timestamp"):
        current.pop(name)
    mls.add_listing(key, mls.listing(key).listing_id, status, modification_timestamp=at, **current)


def _agent_mls_id(a: int) -> str:
    return f"A{a:05d}"


async def _connect_platforms(
    session: UnitOfWork, cipher: TokenCipher, platforms: PlatformSandbox, user_id: str, name: str
) -> None:
    for platform in PLATFORMS:
        token = f"bench-{platform}-{name}"
        platforms.add_token(platform, token)
        stored = await repo.upsert_platform_connection(
            session, cipher, user_id=user_id, platform=platform, access_token=token
        )
        # Looked after today: the cases measure the syncs' own requests (the token care adds at
        # most one request per platform connection a day, sync/token_care.py).
        stored.tokens_checked_at = utcnow()


def _listings(
    connection: MlsConnection,
    numbers: Sequence[int],
    posted: set[str],
    platforms: PlatformSandbox,
    *,
    copy: int,
) -> tuple[list[Listing | Post], dict[str, tuple[str, str]]]:
    """The connection's listings of these market records (as `repo.add_listing` makes them,
    written together), and a post on the platform sandbox for each key in `posted`; returns
    the rows and each key's (listing id, post id or "")."""
    rows: list[Listing | Post] = []
    ids: dict[str, tuple[str, str]] = {}
    for n in numbers:
        key = market_key(n)
        listing = Listing(
            id=new_id(),
            user_id=connection.user_id,
            mls_connection_id=connection.id,
            feed_id=connection.feed_id,
            listing_key=key,
            mls_number=market_listing_id(n),
            status=ListingStatus.ACTIVE,
        )
        rows.append(listing)
        post_row_id = ""
        if key in posted:
            platform = PLATFORMS[n % len(PLATFORMS)]
            platform_post_id = post_id_for(platform, n + copy * 10_000_000)
            platforms.add_post(platform, platform_post_id)
            post = Post(
                id=new_id(),
                listing_id=listing.id,
                platform=platform,
                platform_post_id=platform_post_id,
            )
            rows.append(post)
            post_row_id = post.id
        ids[key] = (listing.id, post_row_id)
    return rows, ids
