"""Who the API key belongs to: a quick way to check a key."""

from __future__ import annotations

from fastapi import APIRouter

from mls_sync.api.deps import CurrentUser
from mls_sync.api.schemas import UserOut

router = APIRouter(tags=["users"])


@router.get("/api/me", response_model=UserOut)
async def me(user: CurrentUser) -> UserOut:
    return UserOut.model_validate(user)
