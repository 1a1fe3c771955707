"""The operator's checks of the deployment itself: the settings load, the database is reachable
and at the newest migration this code knows (on DynamoDB: both tables exist), a token key is
configured as this environment requires, and it decrypts every stored secret in scope. They
come first because everything else depends on them: without a database there are no
connections to check, and without a key no credential can be read. None of them creates
anything (no development key, no tables), so a report shows what is missing rather than hide it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from pydantic_settings import SettingsError

from mls_sync.config import Environment, Settings
from mls_sync.services.doctor._text import _one_line
from mls_sync.services.doctor.checks import AnyDatabase, Check, Status
from mls_sync.services.doctor.mls import Holdings
from mls_sync.store.crypto import DEV_KEY_FILE, SecretDecryptError, TokenCipher
from mls_sync.store.database import Database
from mls_sync.store.errors import TablesMissingError
from mls_sync.store.migrate import alembic_config, current_revision

DATABASE_TIMEOUT_SECONDS = 10.0


# 1. settings


def check_settings(load: Callable[[], Settings] = Settings) -> tuple[Settings | None, Check]:
    """The settings, or None and one fail line with pydantic's reason (never a traceback)."""
    try:
        settings = load()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())) or "settings"
        message = str(first["msg"]).removeprefix("Value error, ")
        return None, Check("settings", Status.FAIL, f"invalid ({where}): {message}")
    except SettingsError as exc:  # a JSON-valued variable that is not JSON
        return None, Check("settings", Status.FAIL, f"invalid: {_one_line(exc)}")
    where = "production" if settings.environment is Environment.PRODUCTION else "development"
    return settings, Check("settings", Status.PASS, f"valid ({where})")


# 2. the database


async def check_database(db: AnyDatabase) -> Check:
    """Reachable, and on SQL at the newest migration this code knows."""
    if not isinstance(db, Database):
        return await _check_dynamodb(db)
    kind = "SQLite" if db.is_sqlite else "PostgreSQL"
    try:
        # A host that drops packets would otherwise hold the report for the driver's minute.
        async with asyncio.timeout(DATABASE_TIMEOUT_SECONDS):
            current = await current_revision(db)
    except TimeoutError:
        return Check(
            "database",
            Status.FAIL,
            f"cannot reach {kind}: no answer within {DATABASE_TIMEOUT_SECONDS:g} s "
            "(the checks that need it were skipped)",
        )
    except Exception as exc:  # refused, unknown host, bad password, unreadable file: all "down"
        return Check(
            "database",
            Status.FAIL,
            f"cannot reach {kind}: {_db_reason(exc)} (the checks that need it were skipped)",
        )
    script = _migrations()
    head = script.get_current_head()
    if current == head:
        return Check("database", Status.PASS, f"{kind} reachable, migrated (revision {head})")
    if current is None:
        return Check(
            "database",
            Status.FAIL,
            f"{kind} has no tables yet: run `mls-sync db upgrade` "
            "(the checks that need them were skipped)",
        )
    known = {revision.revision for revision in script.walk_revisions()}
    if current in known:
        detail = f"{kind} is at revision {current}, this version needs {head}"
        detail += ": run `mls-sync db upgrade`"
    else:
        detail = (
            f"{kind} is at revision {current}, which this version of mls-sync does not know "
            f"(it needs {head}): a newer release migrated it"
        )
    # The tables exist but differ from what the code reads: reading them could only mislead.
    return Check("database", Status.FAIL, f"{detail} (the checks that need it were skipped)")


def head_revision() -> str | None:
    """The newest migration this version of the code ships."""
    head: str | None = _migrations().get_current_head()
    return head


def _migrations() -> Any:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config())


async def _check_dynamodb(db: Any) -> Check:
    """DynamoDB has no schema migrations: both tables exist, or `db upgrade` creates them."""
    tables = f"{db.tables.data_table} and {db.tables.coordination_table}"
    try:
        await db.ping()  # the data table
        client = await db.client()
        await client.describe_table(TableName=db.tables.coordination_table)
    except TablesMissingError as exc:
        return Check("database", Status.FAIL, str(exc))
    except Exception as exc:  # botocore's: no endpoint, no credentials, no permission
        code = getattr(exc, "response", {}).get("Error", {}).get("Code")
        if code == "ResourceNotFoundException":
            return Check("database", Status.FAIL, db.missing_tables_message())
        return Check("database", Status.FAIL, f"cannot use DynamoDB: {_one_line(exc)}")
    return Check(
        "database",
        Status.PASS,
        f"DynamoDB tables {tables} exist (no migrations on DynamoDB: "
        "`mls-sync db upgrade` creates missing tables)",
    )


# 3. the token key, and the secrets it must decrypt


def check_token_key(settings: Settings) -> tuple[TokenCipher | None, Check]:
    """The cipher the settings name, without generating a development key (which would hide
    that none is configured), and whether that is good enough for this environment."""
    if settings.token_keys is not None:
        keys = [k for k in settings.token_keys.get_secret_value().split(",") if k.strip()]
        try:
            cipher = TokenCipher(keys)
        except ValueError as exc:
            return None, Check("token key", Status.FAIL, str(exc))
        return cipher, Check(
            "token key",
            Status.PASS,
            f"MLS_SYNC_TOKEN_KEYS holds {len(keys)} key{'s' if len(keys) != 1 else ''}",
        )
    if settings.environment is Environment.PRODUCTION:
        return None, Check(
            "token key",
            Status.FAIL,
            "MLS_SYNC_TOKEN_KEYS is not set, and production needs it "
            "(`mls-sync keys generate` makes a key)",
        )
    path = settings.data_dir / DEV_KEY_FILE
    if not path.exists():
        return None, Check(
            "token key",
            Status.WARN,
            f"no key yet: development generates {path} on first use "
            "(set MLS_SYNC_TOKEN_KEYS in production)",
        )
    try:
        cipher = TokenCipher([path.read_text().strip()])
    except (OSError, ValueError):
        return None, Check(
            "token key", Status.FAIL, f"the development key file {path} holds no valid key"
        )
    return cipher, Check(
        "token key",
        Status.PASS,
        f"development key file {path} (set MLS_SYNC_TOKEN_KEYS in production)",
    )


def check_stored_secrets(cipher: TokenCipher | None, holdings: Holdings) -> Check | None:
    """Every stored secret in scope decrypts (None when nothing is stored). Decryption is
    local and cheap, so all are tried: after a rotation some may still need the old key."""
    secrets = [item.feed.credentials_encrypted for item in holdings.mls]
    for platform in holdings.platforms:
        secrets.append(platform.access_token_encrypted)
        if platform.refresh_token_encrypted:
            secrets.append(platform.refresh_token_encrypted)
    if not secrets:
        return None
    count = f"{len(secrets)} stored secret{'s' if len(secrets) != 1 else ''}"
    if cipher is None:
        return Check(
            "stored secrets",
            Status.FAIL,
            f"{count} but no token key to read them: set MLS_SYNC_TOKEN_KEYS to the key that "
            "encrypted them",
        )
    unreadable = sum(not _decrypts(cipher, secret) for secret in secrets)
    if unreadable:
        return Check(
            "stored secrets",
            Status.FAIL,
            f"{unreadable} of {count} cannot be decrypted with the configured token keys: the "
            "key that encrypted them was rotated away. Put it back in MLS_SYNC_TOKEN_KEYS after "
            "the new one (NEW,OLD), then run `mls-sync keys rotate`",
        )
    return Check("stored secrets", Status.PASS, f"the token keys decrypt all {count}")


def _decrypts(cipher: TokenCipher, ciphertext: str) -> bool:
    try:
        cipher.decrypt(ciphertext)
    except SecretDecryptError:
        return False
    return True


def _db_reason(exc: BaseException) -> str:
    # SQLAlchemy wraps the driver's error (and appends the statement and a docs link).
    orig = getattr(exc, "orig", None)
    return _one_line(orig if orig is not None else exc)
