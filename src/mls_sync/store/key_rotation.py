"""Re-encrypt every stored secret with the newest token key (MultiFernet.rotate).

Keys rotate in three steps: put a new key first in MLS_SYNC_TOKEN_KEYS (the old ones stay, so
everything stored still decrypts), run `mls-sync keys rotate` (this module), then drop the old
keys. Everything is rewritten in one transaction holding the rows' locks (a token refresh
waits for it rather than writing over it), so a rotation that fails changes nothing and can
simply be run again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select

from mls_sync.store.crypto import TokenCipher
from mls_sync.store.interface import Storage
from mls_sync.store.models import Base, MlsFeed, PlatformConnection
from mls_sync.store.open import sql_database

# Every column that holds a secret, by table: a new encrypted column must be added here.
ENCRYPTED_COLUMNS: dict[type[Base], tuple[str, ...]] = {
    MlsFeed: ("credentials_encrypted",),
    PlatformConnection: ("access_token_encrypted", "refresh_token_encrypted"),
}


@dataclass
class RotationReport:
    rows: int = 0
    secrets: int = 0


async def rotate_keys(db: Storage, cipher: TokenCipher) -> RotationReport:
    """Rewrite every encrypted value with the cipher's first key. Raises SecretDecryptError
    (and nothing changes) when a value does not decrypt with any configured key."""
    sql = sql_database(db, "mls-sync keys rotate")
    report = RotationReport()
    async with sql.transaction() as session:
        for model, columns in ENCRYPTED_COLUMNS.items():
            rows: Sequence[Base] = (
                (await session.execute(select(model).with_for_update())).scalars().all()
            )
            for row in rows:
                for column in columns:
                    value = getattr(row, column)
                    if value:
                        setattr(row, column, cipher.rotate(value))
                        report.secrets += 1
                report.rows += 1
    return report
