"""`mls-sync demo`: the whole sync, end to end, on a throwaway SQLite database and the sandbox.

It seeds one user, one MLS connection and twenty listings with posts, changes statuses in the
sandbox MLS so that every row of the transition table happens at least once (plus a listing the
MLS no longer has), runs one sync of the connection over real HTTP and returns the response.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr
from sqlalchemy import select

from mls_sync.actions import sync_mls_status
from mls_sync.config import Settings
from mls_sync.domain.results import SyncActionResponse, SyncResult
from mls_sync.domain.status import ListingStatus as S
from mls_sync.runtime import open_runtime
from mls_sync.sandbox.platforms import PlatformSandbox
from mls_sync.sandbox.reso import ResoSandbox
from mls_sync.sandbox.server import BackgroundServer
from mls_sync.store import repositories as repo
from mls_sync.store.crypto import TokenCipher
from mls_sync.store.database import Database
from mls_sync.store.migrate import upgrade
from mls_sync.store.models import Listing, Post

MLS_TOKEN = "demo-mls-token"
# instagram is left unconnected on purpose (the "No instagram connection" warning)
CONNECTED_PLATFORMS = ("facebook", "linkedin", "x", "google_business", "pinterest")
# X's access token has run out (they live two hours): the drain refreshes it, once, and stores
# the rotated refresh token before deleting.
EXPIRED_TOKEN_PLATFORMS = ("x",)
RESO_FOR = {S.COMING_SOON: "ComingSoon", S.ACTIVE: "Active", S.PENDING: "Pending", S.SOLD: "Closed"}


@dataclass(frozen=True)
class DemoListing:
    number: int
    ours: S
    mls_now: str | None  # None: unchanged; "" : the MLS no longer has it
    platforms: tuple[str, ...] = ()
    story: str = ""

    @property
    def key(self) -> str:
        return f"LK-{self.number:04d}"

    @property
    def mls_number(self) -> str:
        return f"MLS-{self.number:03d}"


SCENARIO: tuple[DemoListing, ...] = (
    DemoListing(
        1,
        S.ACTIVE,
        "Closed",
        ("facebook", "linkedin", "x", "instagram", "google_business", "pinterest"),
        "sold",
    ),
    DemoListing(2, S.PENDING, "Closed", ("facebook", "x"), "sold from pending"),
    DemoListing(3, S.ACTIVE, "ActiveUnderContract", ("facebook",), "went pending"),
    DemoListing(4, S.PENDING, "Active", ("linkedin",), "back on the market (restoration)"),
    DemoListing(5, S.SOLD, "Active", (), "relisted"),
    DemoListing(6, S.ACTIVE, "Withdrawn", ("x",), "withdrawn"),
    DemoListing(7, S.COMING_SOON, "Active", (), "coming soon, now active"),
    DemoListing(8, S.ACTIVE, "Active Under Contract", (), "pending, label form"),
    DemoListing(9, S.ACTIVE, "", ("facebook",), "gone from the MLS"),
    *(
        DemoListing(n, (S.ACTIVE, S.PENDING, S.COMING_SOON)[n % 3], None, ("facebook",))
        for n in range(10, 21)
    ),
)


async def run_demo(*, work_dir: Path | None = None) -> DemoReport:
    with tempfile.TemporaryDirectory(prefix="mls-sync-demo-") as tmp:
        folder = work_dir or Path(tmp)
        mls = ResoSandbox(tokens=[MLS_TOKEN])
        platforms = PlatformSandbox()
        with BackgroundServer(mls.app) as mls_server, BackgroundServer(platforms.app) as social:
            settings = Settings(
                data_dir=folder,
                database_url=f"sqlite:///{folder / 'demo.db'}",
                token_keys=SecretStr(TokenCipher.generate_key()),
                # str values, some for SecretStr fields: Settings validates them into their types.
                **PlatformSandbox.settings_for(social.url),  # type: ignore[arg-type]
            )
            db = Database(settings.async_database_url)
            try:
                await upgrade(db)
                async with open_runtime(settings, db=db) as runtime:
                    connection_id = await _seed(db, runtime.cipher, mls, platforms, mls_server.url)
                    _change_statuses(mls)
                    response = await sync_mls_status(
                        connection_id, engine=runtime.engine, trigger="demo"
                    )
                    posts = await _post_states(db)
            finally:
                await db.dispose()
        return DemoReport(response=response, posts=posts, platform_deletes=len(platforms.deletes))


@dataclass
class DemoReport:
    response: SyncActionResponse[SyncResult]
    posts: list[tuple[str, str, str, str | None]]  # (mls number, platform, status, last error)
    platform_deletes: int


async def _seed(
    db: Database, cipher: TokenCipher, mls: ResoSandbox, platforms: PlatformSandbox, mls_url: str
) -> str:
    async with db.transaction() as session:
        user = await repo.create_user(session, "agent@example.com")
        connection = await repo.create_mls_connection(
            session, cipher, user_id=user.id, base_url=mls_url, token=MLS_TOKEN, name="Sandbox MLS"
        )
        for platform in CONNECTED_PLATFORMS:
            token, refresh = f"demo-{platform}-token", f"demo-{platform}-refresh"
            platforms.add_token(platform, token, refresh_token=refresh)
            if platform in EXPIRED_TOKEN_PLATFORMS:
                platforms.expire_token(platform, token)
            await repo.upsert_platform_connection(
                session,
                cipher,
                user_id=user.id,
                platform=platform,
                access_token=token,
                refresh_token=refresh,
            )
        for item in SCENARIO:
            mls.add_listing(item.key, item.mls_number, RESO_FOR[item.ours])
            listing = await repo.add_listing(
                session,
                connection=connection,
                listing_key=item.key,
                mls_number=item.mls_number,
                status=item.ours,
            )
            for platform in item.platforms:
                post_id = _post_id(platform, item.number)
                if platform in CONNECTED_PLATFORMS:
                    platforms.add_post(platform, post_id)
                await repo.add_post(
                    session, listing=listing, platform=platform, platform_post_id=post_id
                )
        return connection.id


def _post_id(platform: str, number: int) -> str:
    if platform == "linkedin":
        return f"urn:li:share:70000000000000{number:04d}"
    if platform == "facebook":
        return f"1234567890_{number:04d}"
    if platform == "google_business":
        return f"accounts/1001/locations/2002/localPosts/{number:04d}"
    if platform == "pinterest":
        return f"98765432100{number:04d}"
    return f"18{number:017d}"


def _change_statuses(mls: ResoSandbox) -> None:
    for item in SCENARIO:
        if item.mls_now == "":
            mls.remove_listing(item.key)
        elif item.mls_now is not None:
            mls.set_status(item.key, item.mls_now)


async def _post_states(db: Database) -> list[tuple[str, str, str, str | None]]:
    async with db.transaction() as session:
        rows = await session.execute(
            select(Listing.mls_number, Post.platform, Post.status, Post.last_error)
            .join(Listing, Listing.id == Post.listing_id)
            .where(Listing.status == S.SOLD)
            .order_by(Listing.mls_number, Post.platform)
        )
        return [(number, platform, status, error) for number, platform, status, error in rows]
