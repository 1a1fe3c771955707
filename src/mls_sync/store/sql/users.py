"""Users, on SQL."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mls_sync.store.models import User


class SqlUsers:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def find(self, id_or_email: str) -> User | None:
        if "@" in id_or_email:
            stmt = select(User).where(User.email == id_or_email.strip().lower())
            return (await self._session.execute(stmt)).scalar_one_or_none()
        return await self._session.get(User, id_or_email)

    async def all(self) -> Sequence[User]:
        stmt = select(User).order_by(User.created_at, User.id)
        return (await self._session.execute(stmt)).scalars().all()

    async def by_api_key_hash(self, key_hash: str) -> User | None:
        stmt = select(User).where(User.api_key_hash == key_hash)
        return (await self._session.execute(stmt)).scalar_one_or_none()
