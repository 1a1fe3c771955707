"""Users and their API keys. A key is shown once, when issued; only its hash is stored."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from mls_sync.domain.errors import Conflict, InvalidInput, NotFound
from mls_sync.services.records import UnitOfWork, User
from mls_sync.store import api_keys
from mls_sync.store import repositories as repo

MAX_EMAIL = 320


class UserExistsError(Conflict):
    """A user with this email exists already."""


async def add_user(uow: UnitOfWork, email: str) -> tuple[User, str]:
    """A new user and their first API key (plaintext, shown once)."""
    if "@" not in email or any(c.isspace() for c in email) or len(email) > MAX_EMAIL:
        raise InvalidInput("email", f"{email!r} is not an email address")
    if await uow.users.find(email) is not None:
        raise UserExistsError(f"A user with email {email.strip().lower()} exists already")
    user = await repo.create_user(uow, email)
    return user, api_keys.issue(user)


async def find_user(uow: UnitOfWork, who: str) -> User:
    """The user with this id or email (the operator's commands name users either way)."""
    user = await uow.users.find(who)
    if user is None:
        raise NotFound(f"No user {who!r}")
    return user


async def issue_api_key(uow: UnitOfWork, user: User) -> str:
    """A new key; the old one stops working when the unit of work commits."""
    key = api_keys.issue(user)
    await uow.flush()
    return key


async def list_users(uow: UnitOfWork) -> Sequence[User]:
    return await uow.users.all()


async def authenticate(uow: UnitOfWork, api_key: str) -> User | None:
    """The key's user, or None for a key that is not (or no longer) valid."""
    return await api_keys.authenticate(uow, api_key)


async def end_web_sessions(uow: UnitOfWork, user_id: str, *, at: datetime | None = None) -> None:
    """Every dashboard sign-in of the user signed before `at` (now) stops working."""
    user = await find_user(uow, user_id)
    user.web_sessions_ended_at = at or datetime.now(UTC)
    await uow.flush()
